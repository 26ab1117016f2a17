//! Reading and writing `.npy` / `.npz` files into and from the arrays of [`super::io`] (see its
//! documentation for what is accepted and how errors read).

use std::fmt;
use std::io::{Cursor, Read};
use std::path::Path;

use crate::Result;
use crate::error::fmt_shape;
use npyz::{DType, Endianness, NpyHeader, Order, TypeChar, WriterBuilder};

use super::io::{Array, Dtype, Elem, Tensor, guarded, io_err, num_elements};

// ---------------------------------------------------------------------------------------------
// Reading.

/// Reads a `.npy` file (see the module documentation for what is accepted).
pub fn read_npy(path: impl AsRef<Path>) -> Result<Array> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| io_err(path, format!("cannot read: {e}")))?;
    guarded(path, ".npy file", || parse_npy(&bytes).map_err(|reason| io_err(path, reason)))
}

/// An open `.npz` archive (a zip of `.npy` files, as `numpy.savez` writes).
pub struct Npz {
    path: std::path::PathBuf,
    archive: npyz::npz::NpzArchive<Cursor<Vec<u8>>>,
}

impl Npz {
    /// Opens an `.npz` archive (read into memory).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| io_err(path, format!("cannot read: {e}")))?;
        Self::from_bytes(&path.to_string_lossy(), bytes)
    }

    /// An `.npz` archive held in memory; `name` stands for the file in error messages (as the
    /// path does for [`open`](Self::open)).
    ///
    /// Errors: [`Error::Io`](crate::Error::Io) on `name` if `bytes` is not a zip archive. The
    /// arrays are only parsed by [`get`](Self::get). Cost: the zip's central directory.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<Self> {
        let path = Path::new(name);
        let archive = guarded(path, ".npz archive", || {
            npyz::npz::NpzArchive::new(Cursor::new(bytes))
                .map_err(|e| io_err(path, format!("not a valid .npz (zip) archive: {}", one_line(&e))))
        })?;
        Ok(Self { path: path.to_path_buf(), archive })
    }

    /// The names of the arrays in the archive, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.archive.array_names().map(str::to_string).collect();
        names.sort();
        names
    }

    /// Reads the array `name`, or `None` if the archive has no such array.
    pub fn get(&mut self, name: &str) -> Result<Option<Array>> {
        let path = self.path.clone();
        let zip = self.archive.zip_archive();
        guarded(&path, ".npz archive", || {
            let at = |reason: String| io_err(&path, format!("array `{name}`: {reason}"));
            let mut entry = match zip.by_name(&npyz::npz::file_name_from_array_name(name)) {
                Ok(entry) => entry,
                Err(npyz::zip::result::ZipError::FileNotFound) => return Ok(None),
                Err(e) => return Err(at(format!("cannot read: {}", one_line(&e)))),
            };
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(|e| at(format!("cannot read: {}", one_line(&e))))?;
            parse_npy(&bytes).map(Some).map_err(at)
        })
    }

    /// Reads the array `name`; a missing array is an [`Error::Io`] listing those present.
    pub fn require(&mut self, name: &str) -> Result<Array> {
        match self.get(name)? {
            Some(a) => Ok(a),
            None => Err(io_err(
                &self.path,
                format!("no array `{name}` in the archive (it has: {})", self.names().join(", ")),
            )),
        }
    }
}

fn one_line(e: &dyn fmt::Display) -> String {
    e.to_string().replace('\n', " ")
}

/// Parses a whole `.npy` file held in memory (see the module documentation of [`super::io`]
/// for what is accepted). The error is a reason, without the path.
///
/// Never panics and allocates at most about the size of `bytes` (the header's sizes are checked
/// against the file before anything is allocated). The header is checked before npyz parses it
/// (see `check_header`: at most 10 000 bytes, brackets nested at most 4 deep, a shape whose
/// product fits in `u64`), so the cost is O(`bytes.len()`).
pub fn parse_npy(bytes: &[u8]) -> std::result::Result<Array, String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.starts_with(b"PK\x03\x04") {
        return Err("this is a zip archive (an .npz?), not a .npy file".into());
    }
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a NumPy .npy file (bad magic; expected \\x93NUMPY)".into());
    }
    // Check the header length against the file before npyz allocates a buffer of that size.
    let (header_len, prefix) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        2 | 3 => return Err("truncated .npy header".into()),
        v => return Err(format!("unsupported .npy format version {v}.{}", bytes[7])),
    };
    if header_len > bytes.len() - prefix {
        return Err(format!(
            "truncated .npy header ({header_len} header bytes announced, {} present)",
            bytes.len() - prefix
        ));
    }
    check_header(&bytes[prefix..prefix + header_len])?;
    let mut rest = bytes;
    let header = NpyHeader::from_reader(&mut rest).map_err(|e| format!("malformed .npy header: {}", one_line(&e)))?;

    let dtype = match header.dtype() {
        DType::Plain(ts) if ts.type_char() == TypeChar::Float && ts.size_field() == 4 => (Dtype::F32, ts.endianness()),
        DType::Plain(ts) if ts.type_char() == TypeChar::Float && ts.size_field() == 8 => (Dtype::F64, ts.endianness()),
        other => {
            return Err(format!(
                "unsupported dtype {}: expected float32 or float64 ('<f4', '<f8', or big-endian)",
                other.descr()
            ));
        }
    };
    let shape: Vec<usize> = header
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| "a dimension does not fit in memory".to_string())?;
    let len = num_elements(&shape).ok_or_else(|| format!("shape {} is too large", fmt_shape(&shape)))?;
    let item = if dtype.0 == Dtype::F32 { 4 } else { 8 };
    let need = len.checked_mul(item).ok_or_else(|| format!("shape {} is too large", fmt_shape(&shape)))?;
    if rest.len() < need {
        return Err(format!(
            "truncated data: shape {} of {} needs {need} bytes, the file has {}",
            fmt_shape(&shape),
            dtype.0,
            rest.len()
        ));
    }
    if rest.len() > need {
        return Err(format!(
            "{} unexpected bytes after the data of shape {} of {}",
            rest.len() - need,
            fmt_shape(&shape),
            dtype.0
        ));
    }
    let fortran = header.order() == Order::Fortran;
    Ok(match dtype {
        (Dtype::F32, e) => {
            Array::F32(finish(shape, decode::<4, f32>(rest, e, f32::from_le_bytes, f32::from_be_bytes)?, fortran))
        }
        (Dtype::F64, e) => {
            Array::F64(finish(shape, decode::<8, f64>(rest, e, f64::from_le_bytes, f64::from_be_bytes)?, fortran))
        }
    })
}

/// The longest header read: NumPy's own default limit (`max_header_size`), for the same reason
/// (parsing the Python literal may be slow). NumPy writes headers of 128 bytes or so.
const MAX_HEADER: usize = 10_000;

/// The deepest nesting of brackets read. A float array's header needs 2 (the dict and the shape
/// tuple); npyz's parser of Python literals backtracks exponentially in the depth of
/// brackets that do not close (20 levels of `[` take seconds, 22 minutes).
const MAX_DEPTH: usize = 4;

/// Checks the header text before npyz parses it: its length (at most [`MAX_HEADER`]), its
/// nesting depth (at most [`MAX_DEPTH`]), and the sizes it declares ([`check_header_sizes`]).
fn check_header(text: &[u8]) -> std::result::Result<(), String> {
    if text.len() > MAX_HEADER {
        return Err(format!("header too long: {} bytes (at most {MAX_HEADER} are read)", text.len()));
    }
    let mut depth = 0usize;
    for &c in text {
        match c {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!("malformed .npy header: brackets nested more than {MAX_DEPTH} deep"));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    check_header_sizes(text)
}

/// Refuses a header whose integer literals, zeros left out, multiply to more than `u64::MAX`.
///
/// npyz multiplies the dimensions of the shape (and their prefix products, the strides)
/// without checking: a shape such as `(2**40, 2**40, 2**40)` panics inside it in a build with
/// overflow checks and gives a wrapped size otherwise. Every dimension is one of the header's
/// integer literals, and every prefix product of the nonzero ones is at most the product of
/// all, so a header that passes cannot overflow there. (A literal that is not a dimension,
/// which a float array's header does not have, only makes the test stricter.) Cost O(header).
fn check_header_sizes(text: &[u8]) -> std::result::Result<(), String> {
    let too_large = || "shape too large: its dimensions multiply to more than 2^64 elements".to_string();
    let mut product: u64 = 1;
    // Python integer literals are runs of letters, digits and `_` that start with a digit.
    for token in text.split(|c| !(c.is_ascii_alphanumeric() || *c == b'_')) {
        if !token.first().is_some_and(u8::is_ascii_digit) {
            continue;
        }
        match int_literal(token) {
            Literal::NotAnInteger | Literal::Value(0) => {}
            Literal::Value(v) => product = product.checked_mul(v).ok_or_else(too_large)?,
            Literal::TooLarge => return Err(too_large()),
        }
    }
    Ok(())
}

/// What a token of a `.npy` header (a run of `[0-9A-Za-z_]` starting with a digit) holds.
enum Literal {
    /// A float, a name or something malformed: left to the header parser.
    NotAnInteger,
    /// An integer that fits in `u64`.
    Value(u64),
    /// An integer beyond `u64::MAX`.
    TooLarge,
}

/// Reads a Python integer literal: decimal, `0x`, `0o` or `0b`, with `_` separators and an
/// optional Python 2 `L` suffix.
fn int_literal(token: &[u8]) -> Literal {
    let token = token.strip_suffix(b"L").or_else(|| token.strip_suffix(b"l")).unwrap_or(token);
    let (radix, body) = match token {
        [b'0', b'x' | b'X', rest @ ..] => (16, rest),
        [b'0', b'o' | b'O', rest @ ..] => (8, rest),
        [b'0', b'b' | b'B', rest @ ..] => (2, rest),
        _ => (10, token),
    };
    let mut value: Option<u64> = Some(0);
    let mut digits = 0usize;
    for &c in body {
        if c == b'_' {
            continue;
        }
        let Some(d) = (c as char).to_digit(radix) else { return Literal::NotAnInteger };
        digits += 1;
        value = value.and_then(|v| v.checked_mul(u64::from(radix))).and_then(|v| v.checked_add(u64::from(d)));
    }
    match value {
        _ if digits == 0 => Literal::NotAnInteger,
        Some(v) => Literal::Value(v),
        None => Literal::TooLarge,
    }
}

fn decode<const N: usize, T>(
    bytes: &[u8],
    endianness: Endianness,
    le: fn([u8; N]) -> T,
    be: fn([u8; N]) -> T,
) -> std::result::Result<Vec<T>, String> {
    let conv = match endianness {
        Endianness::Little => le,
        Endianness::Big => be,
        Endianness::Irrelevant => return Err("float data with byte order '|' (irrelevant) is malformed".into()),
    };
    Ok(bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            // `chunks_exact(N)` yields slices of exactly N bytes: the lengths match.
            a.copy_from_slice(c);
            conv(a)
        })
        .collect())
}

/// Wraps decoded data, transposing Fortran-order data to C order.
fn finish<T: Copy>(shape: Vec<usize>, data: Vec<T>, fortran: bool) -> Tensor<T> {
    if !fortran || shape.len() < 2 || data.is_empty() {
        return Tensor { shape, data };
    }
    // Fortran strides: the first dimension is contiguous.
    let mut fstride = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        fstride[k] = fstride[k - 1] * shape[k - 1];
    }
    let mut out = Vec::with_capacity(data.len());
    let mut idx = vec![0usize; shape.len()];
    let mut off = 0usize;
    for _ in 0..data.len() {
        // `off` is the Fortran offset of an in-range multi-index, hence < data.len().
        out.push(data[off]);
        // Advance the C-order multi-index (last dimension fastest), updating the offset.
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            off += fstride[k];
            if idx[k] < shape[k] {
                break;
            }
            off -= fstride[k] * shape[k];
            idx[k] = 0;
        }
    }
    Tensor { shape, data: out }
}

// ---------------------------------------------------------------------------------------------
// Writing.

fn npy_bytes<T: Elem>(shape: &[usize], data: &[T], w: impl std::io::Write) -> std::io::Result<()> {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::<T>::new().default_dtype().shape(&shape).writer(w).begin_nd()?;
    writer.extend(data.iter().copied())?;
    writer.finish()
}

fn check_len(shape: &[usize], len: usize) -> std::result::Result<(), String> {
    if num_elements(shape) != Some(len) {
        return Err(format!("cannot write {len} values as shape {}", fmt_shape(shape)));
    }
    Ok(())
}

/// Writes `data` (row-major) as a `.npy` array of `shape` and dtype `T`.
pub fn write_npy<T: Elem>(path: impl AsRef<Path>, shape: &[usize], data: &[T]) -> Result<()> {
    let path = path.as_ref();
    check_len(shape, data.len()).map_err(|r| io_err(path, r))?;
    let mut bytes = Vec::new();
    npy_bytes(shape, data, &mut bytes).map_err(|e| io_err(path, format!("cannot encode: {e}")))?;
    std::fs::write(path, bytes).map_err(|e| io_err(path, format!("cannot write: {e}")))
}

fn npz_entry<T: Elem, W: std::io::Write + std::io::Seek>(
    npz: &mut npyz::npz::NpzWriter<W>,
    name: &str,
    shape: &[usize],
    data: &[T],
) -> std::io::Result<()> {
    let options = npyz::zip::write::FileOptions::default().compression_method(npyz::zip::CompressionMethod::Stored);
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npz.array::<T>(name, options)?.default_dtype().shape(&shape).begin_nd()?;
    writer.extend(data.iter().copied())?;
    writer.finish()
}

/// Writes named arrays as an uncompressed `.npz` archive (`numpy.load` reads it back, keys as
/// given). Names must be distinct and non-empty.
pub fn write_npz(path: impl AsRef<Path>, arrays: &[(&str, &Array)]) -> Result<()> {
    let path = path.as_ref();
    for (i, (name, a)) in arrays.iter().enumerate() {
        if name.is_empty() || arrays[..i].iter().any(|(other, _)| other == name) {
            return Err(io_err(path, format!("array name `{name}` is empty or given twice")));
        }
        let len = match a {
            Array::F32(t) => t.data.len(),
            Array::F64(t) => t.data.len(),
        };
        check_len(a.shape(), len).map_err(|r| io_err(path, format!("array `{name}`: {r}")))?;
    }
    let encode = || -> std::io::Result<Vec<u8>> {
        let mut npz = npyz::npz::NpzWriter::new(Cursor::new(Vec::new()));
        for (name, a) in arrays {
            match a {
                Array::F32(t) => npz_entry(&mut npz, name, &t.shape, &t.data)?,
                Array::F64(t) => npz_entry(&mut npz, name, &t.shape, &t.data)?,
            }
        }
        Ok(npz.zip_writer().finish()?.into_inner())
    };
    let bytes = encode().map_err(|e| io_err(path, format!("cannot encode: {e}")))?;
    std::fs::write(path, bytes).map_err(|e| io_err(path, format!("cannot write: {e}")))
}

// Test-only: the unwrap/expect/panic sites below are compiled under `cfg(test)` alone and
// are unreachable from the public API and the CLI.
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cli::io::*;
    use crate::Error;

    /// Reads every array of an `.npz` archive, by name.
    fn read_npz(path: impl AsRef<Path>) -> Result<BTreeMap<String, Array>> {
        let mut npz = Npz::open(path)?;
        let mut out = BTreeMap::new();
        for name in npz.names() {
            let a = npz.require(&name)?;
            out.insert(name, a);
        }
        Ok(out)
    }

    fn npy_with_header(header: &str, data: &[u8]) -> Vec<u8> {
        let mut text = header.to_string();
        while !(10 + text.len() + 1).is_multiple_of(64) {
            text.push(' ');
        }
        text.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(text.len() as u16).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn f64_bytes(v: &[f64], big: bool) -> Vec<u8> {
        v.iter().flat_map(|x| if big { x.to_be_bytes() } else { x.to_le_bytes() }).collect()
    }

    #[test]
    fn npy_roundtrip_f32_f64() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_npy(&p, &[2, 3], &[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(
            read_npy(&p).unwrap(),
            Array::F64(Tensor { shape: vec![2, 3], data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0] })
        );
        write_npy(&p, &[3], &[1.5f32, 2.0, -3.0]).unwrap();
        assert_eq!(read_npy(&p).unwrap(), Array::F32(Tensor { shape: vec![3], data: vec![1.5, 2.0, -3.0] }));
        write_npy(&p, &[], &[7.0f64]).unwrap();
        assert_eq!(read_npy(&p).unwrap().shape(), &[] as &[usize]);
        assert!(write_npy(&p, &[2, 2], &[1.0f64]).is_err());
    }

    #[test]
    fn fortran_order_and_big_endian() {
        // 2×3 array [[0,1,2],[3,4,5]] stored column by column.
        let f = [0.0, 3.0, 1.0, 4.0, 2.0, 5.0];
        let bytes = npy_with_header("{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }", &f64_bytes(&f, true));
        let a = parse_npy(&bytes).unwrap();
        assert_eq!(a, Array::F64(Tensor { shape: vec![2, 3], data: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0] }));
        // 3-D Fortran: element (i, j, k) at i + 2j + 6k.
        let shape = [2usize, 3, 4];
        let fdata: Vec<f64> = (0..24).map(|k| k as f64).collect();
        let bytes =
            npy_with_header("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3, 4), }", &f64_bytes(&fdata, false));
        let t = parse_npy(&bytes).unwrap().into_tensor::<f64>();
        for i in 0..shape[0] {
            for j in 0..shape[1] {
                for k in 0..shape[2] {
                    assert_eq!(t.data[(i * 3 + j) * 4 + k], (i + 2 * j + 6 * k) as f64);
                }
            }
        }
    }

    #[test]
    fn malformed_npy_is_an_error() {
        let ok = npy_with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
            &f64_bytes(&[1.0, 2.0], false),
        );
        assert!(parse_npy(&ok).is_ok());
        assert!(parse_npy(&ok[..ok.len() - 1]).unwrap_err().contains("truncated"));
        let mut long = ok.clone();
        long.push(0);
        assert!(parse_npy(&long).unwrap_err().contains("unexpected bytes"));
        assert!(parse_npy(b"garbage garbage garbage").is_err());
        assert!(parse_npy(&ok[..20]).is_err());
        let int = npy_with_header("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", &[0; 16]);
        assert!(parse_npy(&int).unwrap_err().contains("<i8"));
        let half = npy_with_header("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", &[0; 4]);
        assert!(parse_npy(&half).is_err());
        let huge = npy_with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }",
            &[],
        );
        let err = guarded(Path::new("huge.npy"), ".npy file", || {
            parse_npy(&huge).map_err(|r| io_err(Path::new("huge.npy"), r))
        });
        assert!(err.is_err());
        // A header length beyond the end of the file.
        let mut lying = ok.clone();
        lying[8] = 0xff;
        lying[9] = 0xff;
        assert!(parse_npy(&lying).unwrap_err().contains("truncated"));
    }

    #[test]
    fn npz_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npz");
        let a = Array::F64(Tensor { shape: vec![2, 2], data: vec![1.0, 2.0, 3.0, 4.0] });
        let b = Array::F32(Tensor { shape: vec![3], data: vec![1.0, 2.0, 3.0] });
        write_npz(&p, &[("a", &a), ("b", &b)]).unwrap();
        let all = read_npz(&p).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["a"], a);
        assert_eq!(all["b"], b);
        let mut npz = Npz::open(&p).unwrap();
        assert_eq!(npz.names(), ["a", "b"]);
        assert!(npz.get("c").unwrap().is_none());
        let err = npz.require("c").unwrap_err().to_string();
        assert!(err.contains("`c`") && err.contains("a, b"), "{err}");
        assert!(write_npz(&p, &[("a", &a), ("a", &b)]).is_err());
        std::fs::write(&p, b"not a zip").unwrap();
        assert!(Npz::open(&p).is_err());
    }

    #[test]
    fn reads_reference_npz() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/band_kd4.npz");
        let mut npz = Npz::open(path).unwrap();
        let ab = npz.require("ab").unwrap();
        assert_eq!((ab.shape(), ab.dtype()), (&[2usize, 5, 40][..], Dtype::F64));
    }

    #[test]
    fn finite_check() {
        let t = Tensor { shape: vec![2, 2], data: vec![1.0, 2.0, f64::INFINITY, 0.0] };
        match check_finite("x", &t) {
            Err(Error::NonFinite { index, value, .. }) => assert_eq!((index, value.as_str()), (vec![1, 0], "inf")),
            other => panic!("{other:?}"),
        }
    }
}
