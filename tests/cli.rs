//! The `banded` binary on good and bad files (run as a subprocess in a temporary directory).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use banded::{BandBatch, BatchMatrix, Cholesky, Params};
use common::cli::{assert_fails, assert_ok, assert_roofline_consistent, banded, stderr};
use common::{assert_same_bits, npz_array, rel_err};
use npyz::WriterBuilder;

/// Writes a C-order `.npy` with the default dtype of `T` (little-endian on every CI machine).
fn write<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[usize], data: &[T]) {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = npyz::WriteOptions::new().default_dtype().shape(&shape).writer(file).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// Reads a `.npy` written by the binary: (shape, values widened to f64, descr).
fn read(path: &Path) -> (Vec<usize>, Vec<f64>, String) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    let descr = npy.dtype().descr().trim_matches('\'').to_string();
    let data = if descr.contains("f4") {
        npy.into_vec::<f32>().unwrap().into_iter().map(f64::from).collect()
    } else {
        npy.into_vec::<f64>().unwrap()
    };
    (shape, data, descr)
}

/// The reference system `band_kd4.npz`: ab (2, 5, 40), rhs (2, 40, 2), x, logdet (SciPy).
struct Reference {
    ab: Vec<f64>,
    rhs: Vec<f64>,
    x: Vec<f64>,
    logdet: Vec<f64>,
}

const B: usize = 2;
const W: usize = 5;
const N: usize = 40;
const R: usize = 2;

fn reference() -> Reference {
    let (s, ab) = npz_array("band_kd4.npz", "ab");
    assert_eq!(s, [B, W, N]);
    let (s, rhs) = npz_array("band_kd4.npz", "rhs");
    assert_eq!(s, [B, N, R]);
    let (_, x) = npz_array("band_kd4.npz", "x");
    let (_, logdet) = npz_array("band_kd4.npz", "logdet");
    Reference { ab, rhs, x, logdet }
}

/// Column `r` of every system of a `(B, N, R)` array: shape `(B, N)`.
fn column(a: &[f64], r: usize) -> Vec<f64> {
    a.chunks_exact(R).map(|row| row[r]).collect()
}

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn run(&self, args: &[&str]) -> Output {
        banded(args, self.path())
    }
}

#[test]
fn solve_f64_every_rhs_shape() {
    let r = reference();
    let d = Dir::new();
    write(&d.file("ab.npy"), &[B, W, N], &r.ab);
    write(&d.file("ab0.npy"), &[W, N], &r.ab[..W * N]);

    // (batch, n, nrhs), with --logdet.
    write(&d.file("rhs.npy"), &[B, N, R], &r.rhs);
    assert_ok(&d.run(&["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x.npy", "--logdet", "ld.npy"]));
    let (shape, x, descr) = read(&d.file("x.npy"));
    assert_eq!((shape, descr.as_str()), (vec![B, N, R], "<f8"));
    assert!(rel_err(&x, &r.x) < 1e-10, "{}", rel_err(&x, &r.x));
    let (shape, ld, _) = read(&d.file("ld.npy"));
    assert_eq!(shape, [B]);
    assert!(rel_err(&ld, &r.logdet) < 1e-10);

    // --cholesky: SciPy's cholesky_banded on the band (its ignored corner holds whatever ab
    // held there; ours holds 0).
    assert_ok(&d.run(&["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x.npy", "--cholesky", "l.npy"]));
    let (shape, l, _) = read(&d.file("l.npy"));
    assert_eq!(shape, [B, W, N]);
    let (_, mut l_ref) = npz_array("band_kd4.npz", "cholesky");
    for (k, v) in l_ref.iter_mut().enumerate() {
        let (dd, j) = ((k / N) % W, k % N);
        if j + dd >= N {
            assert_eq!(l[k], 0.0);
            *v = 0.0;
        }
    }
    assert!(rel_err(&l, &l_ref) < 1e-10, "{}", rel_err(&l, &l_ref));

    // (batch, n): one right-hand side per system.
    write(&d.file("rhs2.npy"), &[B, N], &column(&r.rhs, 1));
    assert_ok(&d.run(&["solve", "--ab", "ab.npy", "--rhs", "rhs2.npy", "--out", "x2.npy"]));
    let (shape, x, _) = read(&d.file("x2.npy"));
    assert_eq!(shape, [B, N]);
    assert!(rel_err(&x, &column(&r.x, 1)) < 1e-10);

    // 2-D AB: (n, nrhs) and (n,).
    write(&d.file("rhs0.npy"), &[N, R], &r.rhs[..N * R]);
    assert_ok(&d.run(&["solve", "--ab", "ab0.npy", "--rhs", "rhs0.npy", "--out", "x0.npy", "--logdet", "ld0.npy"]));
    let (shape, x, _) = read(&d.file("x0.npy"));
    assert_eq!(shape, [N, R]);
    assert!(rel_err(&x, &r.x[..N * R]) < 1e-10);
    let (shape, ld, _) = read(&d.file("ld0.npy"));
    assert_eq!(shape, [1]);
    assert!(rel_err(&ld, &r.logdet[..1]) < 1e-10);

    write(&d.file("rhs1.npy"), &[N], &column(&r.rhs, 0)[..N]);
    assert_ok(&d.run(&["solve", "--ab", "ab0.npy", "--rhs", "rhs1.npy", "--out", "x1.npy"]));
    let (shape, x, _) = read(&d.file("x1.npy"));
    assert_eq!(shape, [N]);
    assert!(rel_err(&x, &column(&r.x, 0)[..N]) < 1e-10);
}

#[test]
fn solve_f32_answers_in_f32() {
    let r = reference();
    let d = Dir::new();
    let ab32: Vec<f32> = r.ab.iter().map(|&v| v as f32).collect();
    let rhs32: Vec<f32> = r.rhs.iter().map(|&v| v as f32).collect();
    write(&d.file("ab.npy"), &[B, W, N], &ab32);
    write(&d.file("rhs.npy"), &[B, N, R], &rhs32);
    write(&d.file("rhs2.npy"), &[B, N], &column(&r.rhs, 0).iter().map(|&v| v as f32).collect::<Vec<_>>());
    write(&d.file("ab0.npy"), &[W, N], &ab32[..W * N]);
    write(&d.file("rhs0.npy"), &[N, R], &rhs32[..N * R]);
    write(&d.file("rhs1.npy"), &[N], &column(&r.rhs, 0).iter().take(N).map(|&v| v as f32).collect::<Vec<_>>());

    // The exact answer in f32 is the library's f32 result on the same inputs.
    let a = BandBatch::from_lower_band(&ab32, B, N, W - 1).unwrap();
    let chol = Cholesky::factor(&a, &Params::default()).unwrap();
    let x_lib = chol.solve(&BatchMatrix::new(rhs32.clone(), B, N, R).unwrap(), &Params::default()).unwrap();
    let x_lib: Vec<f64> = x_lib.as_slice().iter().map(|&v| f64::from(v)).collect();
    let ld_lib: Vec<f64> = chol.logdet().into_iter().map(f64::from).collect();

    assert_ok(&d.run(&["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x.npy", "--logdet", "ld.npy"]));
    let (shape, x, descr) = read(&d.file("x.npy"));
    assert_eq!((shape, descr.as_str()), (vec![B, N, R], "<f4"));
    assert_eq!(x, x_lib);
    assert!(rel_err(&x, &r.x) < 1e-4, "{}", rel_err(&x, &r.x));
    let (shape, ld, descr) = read(&d.file("ld.npy"));
    assert_eq!((shape, descr.as_str()), (vec![B], "<f4"));
    assert_eq!(ld, ld_lib);

    for (ab, rhs, shape) in
        [("ab.npy", "rhs2.npy", vec![B, N]), ("ab0.npy", "rhs0.npy", vec![N, R]), ("ab0.npy", "rhs1.npy", vec![N])]
    {
        assert_ok(&d.run(&["solve", "--ab", ab, "--rhs", rhs, "--out", "y.npy"]));
        let (got, y, descr) = read(&d.file("y.npy"));
        assert_eq!((got, descr.as_str()), (shape, "<f4"));
        assert!(y.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn mixed_dtypes_compute_in_f64() {
    let r = reference();
    let d = Dir::new();
    write(&d.file("ab.npy"), &[B, W, N], &r.ab);
    write(&d.file("rhs.npy"), &[B, N, R], &r.rhs.iter().map(|&v| v as f32).collect::<Vec<_>>());
    assert_ok(&d.run(&["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x.npy"]));
    let (_, x, descr) = read(&d.file("x.npy"));
    assert_eq!(descr, "<f8");
    assert!(rel_err(&x, &r.x) < 1e-6);
}

#[test]
fn batch_equal_to_n_reads_rhs_as_batch_by_n() {
    // 3 systems of order 3: diagonal A_s = (s+1)·I, RHS (3, 3) is one column per system.
    let d = Dir::new();
    let mut ab = vec![0.0f64; 3 * 2 * 3];
    for s in 0..3 {
        for j in 0..3 {
            ab[s * 6 + j] = (s + 1) as f64;
        }
    }
    write(&d.file("ab.npy"), &[3, 2, 3], &ab);
    write(&d.file("rhs.npy"), &[3, 3], &[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    assert_ok(&d.run(&["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x.npy"]));
    let (shape, x, _) = read(&d.file("x.npy"));
    assert_eq!(shape, [3, 3]);
    assert!(rel_err(&x, &[1.0, 2.0, 3.0, 2.0, 2.5, 3.0, 7.0 / 3.0, 8.0 / 3.0, 3.0]) < 1e-14, "{x:?}");
}

/// A `.npy` with a hand-written header (format 1.0).
fn raw_npy(path: &Path, header: &str, data: &[u8]) {
    let mut text = header.to_string();
    while !(10 + text.len() + 1).is_multiple_of(64) {
        text.push(' ');
    }
    text.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(data);
    std::fs::write(path, out).unwrap();
}

#[test]
fn fortran_order_and_big_endian_are_read_correctly() {
    let r = reference();
    let d = Dir::new();
    // AB (2, 5, 40) in Fortran order: element (s, k, j) at s + 2k + 10j.
    let mut f = vec![0.0f64; B * W * N];
    for s in 0..B {
        for k in 0..W {
            for j in 0..N {
                f[s + B * k + B * W * j] = r.ab[(s * W + k) * N + j];
            }
        }
    }
    let bytes: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
    raw_npy(&d.file("ab.npy"), "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 5, 40), }", &bytes);
    let bytes: Vec<u8> = r.rhs.iter().flat_map(|v| v.to_be_bytes()).collect();
    raw_npy(&d.file("rhs.npy"), "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 40, 2), }", &bytes);
    assert_ok(&d.run(&["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x.npy"]));
    let (_, x, _) = read(&d.file("x.npy"));
    assert!(rel_err(&x, &r.x) < 1e-10);
}

#[test]
fn bad_inputs_fail_with_one_line() {
    let r = reference();
    let d = Dir::new();
    write(&d.file("ab.npy"), &[B, W, N], &r.ab);
    write(&d.file("rhs.npy"), &[B, N, R], &r.rhs);
    let solve = |ab: &str, rhs: &str| d.run(&["solve", "--ab", ab, "--rhs", rhs, "--out", "x.npy"]);

    // Missing and garbage files.
    let err = assert_fails(&solve("missing.npy", "rhs.npy"));
    assert!(err.contains("missing.npy"), "{err}");
    std::fs::write(d.file("garbage.npy"), b"this is not a numpy file at all").unwrap();
    let err = assert_fails(&solve("ab.npy", "garbage.npy"));
    assert!(err.contains("garbage.npy"), "{err}");
    // Truncated data, a header announcing a huge shape, a header that does not parse.
    let bytes = std::fs::read(d.file("ab.npy")).unwrap();
    std::fs::write(d.file("short.npy"), &bytes[..bytes.len() - 3]).unwrap();
    assert!(assert_fails(&solve("short.npy", "rhs.npy")).contains("truncated"));
    raw_npy(
        &d.file("huge.npy"),
        "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }",
        &[],
    );
    assert_fails(&solve("huge.npy", "rhs.npy"));
    raw_npy(&d.file("hdr.npy"), "{'descr': '<f8', 'shape': (3,", &[0; 24]);
    assert_fails(&solve("hdr.npy", "rhs.npy"));

    // Wrong shapes: AB rank, RHS rank, mismatched n, mismatched batch, empty dimensions.
    write(&d.file("ab1.npy"), &[N], &r.ab[..N]);
    assert!(assert_fails(&solve("ab1.npy", "rhs.npy")).contains("--ab"));
    write(&d.file("rhs4.npy"), &[1, B, N, R], &r.rhs);
    assert!(assert_fails(&solve("ab.npy", "rhs4.npy")).contains("--rhs"));
    write(&d.file("rhs_n.npy"), &[B, N - 1, R], &r.rhs[..B * (N - 1) * R]);
    let err = assert_fails(&solve("ab.npy", "rhs_n.npy"));
    assert!(err.contains("--rhs") && err.contains("(2, 40, nrhs)") && err.contains("(2, 39, 2)"), "{err}");
    write(&d.file("rhs_b.npy"), &[1, N, R], &r.rhs[..N * R]);
    assert_fails(&solve("ab.npy", "rhs_b.npy"));
    write(&d.file("rhs_nb.npy"), &[N, R], &r.rhs[..N * R]);
    assert_fails(&solve("ab.npy", "rhs_nb.npy"));
    write::<f64>(&d.file("ab_empty.npy"), &[0, N], &[]);
    assert_fails(&solve("ab_empty.npy", "rhs.npy"));
    write::<f64>(&d.file("rhs_empty.npy"), &[B, N, 0], &[]);
    assert_fails(&solve("ab.npy", "rhs_empty.npy"));

    // Wrong dtypes.
    write(&d.file("int.npy"), &[B, W, N], &vec![1i64; B * W * N]);
    let err = assert_fails(&solve("int.npy", "rhs.npy"));
    assert!(err.contains("int.npy") && err.contains("dtype"), "{err}");
    write(&d.file("int32.npy"), &[B, N, R], &vec![1i32; B * N * R]);
    assert_fails(&solve("ab.npy", "int32.npy"));

    // NaN and infinity.
    let mut nan = r.ab.clone();
    nan[(W + 2) * N + 3] = f64::NAN; // (1, 2, 3)
    write(&d.file("nan.npy"), &[B, W, N], &nan);
    let err = assert_fails(&solve("nan.npy", "rhs.npy"));
    assert!(err.contains("NaN") && err.contains("[1, 2, 3]") && err.contains("--ab"), "{err}");
    let mut inf = r.rhs.clone();
    inf[5] = f64::INFINITY;
    write(&d.file("inf.npy"), &[B, N, R], &inf);
    let err = assert_fails(&solve("ab.npy", "inf.npy"));
    assert!(err.contains("inf") && err.contains("--rhs"), "{err}");
    // A NaN where the layout says "ignored" (j ≥ n − d) is not read, as in SciPy's solver.
    let mut ignored = r.ab.clone();
    ignored[(W + 2) * N + N - 1] = f64::NAN;
    write(&d.file("ignored.npy"), &[B, W, N], &ignored);
    assert_ok(&solve("ignored.npy", "rhs.npy"));

    // Not positive definite: system 1, column 7.
    let mut npd = r.ab.clone();
    npd[W * N + 7] = -5.0;
    write(&d.file("npd.npy"), &[B, W, N], &npd);
    let err = assert_fails(&solve("npd.npy", "rhs.npy"));
    assert!(err.contains("system 1") && err.contains("column 7"), "{err}");

    // Unwritable outputs.
    let out = d.run(&["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "no/such/dir/x.npy"]);
    assert!(assert_fails(&out).contains("no/such/dir/x.npy"));
    let out = d.run(&["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x.npy", "--logdet", "."]);
    assert_fails(&out);
}

#[test]
fn usage_errors_exit_2() {
    let d = Dir::new();
    let out = d.run(&["solve", "--ab", "ab.npy"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains("panicked"));
    let out = d.run(&["bench", "solve", "--n", "0", "--kd", "1", "--batch", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = d.run(&["bench", "solve", "--n", "5", "--kd", "1", "--batch", "1", "--dtype", "f16"]);
    assert_eq!(out.status.code(), Some(2));
}

fn field(line: &str, key: &str) -> f64 {
    let prefix = format!("{key}=");
    let v = line.split_whitespace().find_map(|t| t.strip_prefix(prefix.as_str()));
    v.unwrap_or_else(|| panic!("no {key}= in {line}")).parse().unwrap()
}

#[test]
fn bench_solve_prints_one_line() {
    let d = Dir::new();
    for args in [
        &["bench", "solve", "--n", "50", "--kd", "3", "--batch", "4", "--reps", "3"][..],
        &[
            "bench",
            "solve",
            "--n",
            "20",
            "--kd",
            "100",
            "--batch",
            "3",
            "--nrhs",
            "2",
            "--dtype",
            "f32",
            "--threads",
            "2",
            "--no-roofline",
        ],
        &["bench", "solve", "--n", "1", "--kd", "0", "--batch", "1", "--reps", "1", "--threads", "1", "--no-roofline"],
        &["bench", "solve", "--n", "30", "--kd", "2", "--batch", "9", "--reps", "1", "--separate", "--no-roofline"],
    ] {
        let out = d.run(args);
        assert_ok(&out);
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(field(&text, "median_s") >= 0.0);
        assert!(field(&text, "gflops") >= 0.0);
        for key in ["n", "kd", "kd_eff", "batch", "nrhs", "threads", "reps", "bytes", "flops", "ws_bytes"] {
            field(&text, key);
        }
        let measured = !args.contains(&"--no-roofline");
        for key in ["bw_gbs", "gemm_gflops", "roofline_s", "roofline_frac"] {
            assert_eq!(text.contains(&format!(" {key}=")), measured, "{text}");
        }
        assert!(text.contains("dtype=f"), "{text}");
        let mode = if args.contains(&"--separate") { "mode=separate" } else { "mode=fused" };
        assert!(text.contains(mode), "{text}");
    }
    let out = d.run(&["bench", "solve", "--n", "20", "--kd", "100", "--batch", "3", "--threads", "2", "--no-roofline"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(field(&text, "kd_eff"), 19.0);
    assert_eq!(field(&text, "threads"), 2.0);
    assert!(text.contains(" kernel=auto "), "{text}");
}

/// `--partitions auto|off|P` on both benchmarks: the line reports the chunks used (the rule's
/// count for `auto`, capped by `n` for a count); anything else is a usage error.
#[test]
fn bench_partitions() {
    let d = Dir::new();
    let solve = |p: &str, n: &str, batch: &str| {
        let out = d.run(&["bench", "solve", "--n", n, "--kd", "2", "--batch", batch, "--reps", "1", "--no-roofline", "--partitions", p]);
        assert_ok(&out);
        field(&String::from_utf8(out.stdout).unwrap(), "partitions")
    };
    assert_eq!(solve("off", "2000", "1"), 1.0);
    assert_eq!(solve("5", "2000", "1"), 5.0);
    assert_eq!(solve("5", "2000", "9"), 5.0, "a count splits a batch of packs too");
    assert_eq!(solve("auto", "2000", "1"), (2000 / (256 + 2)) as f64);
    assert_eq!(solve("auto", "2000", "8"), 1.0, "a full pack is not split");
    assert_eq!(solve("50", "7", "1"), 3.0, "capped so that every chunk keeps a column");
    let out = d.run(&[
        "bench", "smnn", "--batch", "1", "--steps", "400", "--dims", "1", "--orders", "3", "--reps", "1", "--backward", "--no-roofline", "--partitions", "4",
    ]);
    assert_ok(&out);
    assert_eq!(field(&String::from_utf8(out.stdout).unwrap(), "partitions"), 4.0);
    for bad in ["0", "1.5", "some", ""] {
        let out = d.run(&["bench", "solve", "--n", "20", "--kd", "2", "--batch", "1", "--partitions", bad]);
        assert_eq!(out.status.code(), Some(2), "a usage error");
        let err = stderr(&out);
        assert!(err.contains("--partitions") && err.contains("expected auto, off or a count >= 1"), "{err}");
    }
}

/// `--kernel` runs every kernel (one the CPU lacks runs as portable) and says which one was
/// asked for; an unknown name is a usage error.
#[test]
fn bench_kernel_choice() {
    let d = Dir::new();
    for k in ["auto", "reference", "portable", "avx2", "avx512", "neon"] {
        for cmd in [
            &["bench", "solve", "--n", "40", "--kd", "3", "--batch", "20", "--reps", "1", "--no-roofline", "--kernel", k][..],
            &["bench", "smnn", "--batch", "9", "--steps", "6", "--dims", "1", "--orders", "2", "--reps", "1", "--backward", "--no-roofline", "--kernel", k],
        ] {
            let out = d.run(cmd);
            assert_ok(&out);
            let text = String::from_utf8(out.stdout).unwrap();
            assert!(text.contains(&format!(" kernel={k} ")), "{text}");
        }
    }
    let out = d.run(&["bench", "solve", "--n", "5", "--kd", "1", "--batch", "1", "--kernel", "sse9"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The roofline fields of `banded bench solve`: the counts of `banded::roofline` for the shape
/// and mode, and the measured rates consistent with `roofline_s` and `roofline_frac`.
#[test]
fn bench_solve_roofline_fields() {
    let d = Dir::new();
    // n = 50, kd = 3, 4 systems, one right-hand side, f64: per system a band of 200 elements and
    // 50 of right-hand side; 50·3·6 + 4·50·3 = 1500 flops.
    for (mode, bytes) in [("fused", 8.0 * 4.0 * (2.0 * 200.0 + 2.0 * 50.0)), ("separate", 8.0 * 4.0 * (3.0 * 200.0 + 2.0 * 50.0))] {
        let mut args = vec!["bench", "solve", "--n", "50", "--kd", "3", "--batch", "4", "--reps", "3", "--threads", "2"];
        if mode == "separate" {
            args.push("--separate");
        }
        let out = d.run(&args);
        assert_ok(&out);
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(&format!(" mode={mode} ")), "{text}");
        assert_roofline_consistent(&text, bytes, 4.0 * 1500.0, 8.0 * 4.0 * 250.0);
    }
}

// ---------------------------------------------------------------------------------------------
// --device

/// The keys of a bench line, in order.
#[cfg(feature = "cuda-emulator")]
fn keys(line: &str) -> Vec<&str> {
    line.split_whitespace().map(|t| t.split_once('=').map_or(t, |(k, _)| k)).collect()
}

/// Asserts that `got` (written with a `--device`) holds the shape and dtype of `want` (written
/// on the CPU) and its values within `tol` of `want`'s scale.
fn assert_close_npy(want_path: &Path, got_path: &Path, tol: f64) {
    let (want_shape, want, want_descr) = read(want_path);
    let (got_shape, got, got_descr) = read(got_path);
    assert_eq!((&got_shape, &got_descr), (&want_shape, &want_descr), "{}", got_path.display());
    let e = rel_err(&got, &want);
    assert!(e <= tol, "{}: relative error {e:.3e} > {tol:.1e}", got_path.display());
}

/// `--device cuda[:N]` where it cannot run (a build without the `cuda` feature, or no NVIDIA
/// driver / libnvrtc / such a device): one clean error line about CUDA, exit status 1, no
/// output file. Where it can run (a GPU and a `cuda` build), the CPU's outputs.
#[test]
fn device_cuda_fails_cleanly_where_cuda_cannot_run() {
    let r = reference();
    let d = Dir::new();
    write(&d.file("ab.npy"), &[B, W, N], &r.ab);
    write(&d.file("rhs.npy"), &[B, N, R], &r.rhs);
    assert_ok(&d.run(&["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x_cpu.npy"]));
    for device in ["cuda", "cuda:0", "cuda:1"] {
        let out = d.run(&["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x.npy", "--device", device]);
        if cfg!(feature = "cuda") && out.status.success() {
            assert_close_npy(&d.file("x_cpu.npy"), &d.file("x.npy"), 1e-12);
            std::fs::remove_file(d.file("x.npy")).unwrap();
            continue;
        }
        let err = assert_fails(&out);
        assert!(err.contains("CUDA") || err.contains("cuda"), "{err}");
        if !cfg!(feature = "cuda") {
            assert!(err.contains("built without the `cuda` feature: cargo build --features cuda"), "{err}");
        }
        assert!(!d.file("x.npy").exists(), "--device {device}: output written on failure");
    }
    let out = d.run(&["bench", "solve", "--n", "20", "--kd", "2", "--batch", "3", "--reps", "1", "--device", "cuda"]);
    if !(cfg!(feature = "cuda") && out.status.success()) {
        let err = assert_fails(&out);
        assert!(err.contains("CUDA") || err.contains("cuda"), "{err}");
    }
}

/// `--device emulator` in a build without the `cuda-emulator` feature: a clean error that says
/// how to build it.
#[cfg(not(feature = "cuda-emulator"))]
#[test]
fn device_emulator_needs_its_feature() {
    let d = Dir::new();
    for args in [
        &["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x.npy", "--device", "emulator"][..],
        &["bench", "solve", "--n", "20", "--kd", "2", "--batch", "3", "--device", "emulator"],
    ] {
        let err = assert_fails(&d.run(args));
        assert!(err.contains("built without the `cuda-emulator` feature: cargo build --features cuda-emulator"), "{err}");
    }
}

/// A `--device` that is not cpu, cuda, cuda:N or emulator is a usage error (exit 2) that says
/// what is accepted.
#[test]
fn bad_device_is_a_usage_error() {
    let d = Dir::new();
    for device in ["tpu", "gpu", "CPU", "cuda:", "cuda:x", "cuda:-1", "cuda:0:1", ""] {
        for cmd in [&["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x.npy"][..], &["bench", "solve", "--n", "5", "--kd", "1", "--batch", "1"]] {
            let mut args = cmd.to_vec();
            args.extend(["--device", device]);
            let out = d.run(&args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "--device {device:?}: {err}");
            assert!(err.contains("--device") && err.contains("expected") && err.contains("cuda:N"), "{err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

/// `banded solve --device emulator` (the CUDA kernels on the CPU) writes the CPU's files: every
/// right-hand side shape, log det, L, a band wider than the matrix, f64 to 1e-12 and f32 to
/// 1e3·ε of the result's scale.
#[cfg(feature = "cuda-emulator")]
#[test]
fn emulator_solve_matches_the_cpu() {
    let r = reference();
    let d = Dir::new();
    write(&d.file("ab.npy"), &[B, W, N], &r.ab);
    write(&d.file("ab0.npy"), &[W, N], &r.ab[..W * N]);
    write(&d.file("rhs.npy"), &[B, N, R], &r.rhs);
    write(&d.file("rhs2.npy"), &[B, N], &column(&r.rhs, 1));
    write(&d.file("rhs0.npy"), &[N, R], &r.rhs[..N * R]);
    write(&d.file("rhs1.npy"), &[N], &column(&r.rhs, 0)[..N]);
    let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
    write(&d.file("ab32.npy"), &[B, W, N], &to32(&r.ab));
    write(&d.file("rhs32.npy"), &[B, N, R], &to32(&r.rhs));
    // kd = 4 >= n = 3: the band is stored wider than the matrix.
    write(&d.file("wide.npy"), &[2, 5, 3], &(0..30).map(|k| if k % 15 < 3 { 6.0 + k as f64 } else { 0.5 }).collect::<Vec<f64>>());
    write(&d.file("wide_rhs.npy"), &[2, 3], &[1.0f64, -2.0, 3.0, 0.5, 0.25, -1.0]);
    let f32_tol = 1e3 * f64::from(f32::EPSILON);
    for (ab, rhs, tol) in [
        ("ab.npy", "rhs.npy", 1e-12),
        ("ab.npy", "rhs2.npy", 1e-12),
        ("ab0.npy", "rhs0.npy", 1e-12),
        ("ab0.npy", "rhs1.npy", 1e-12),
        ("wide.npy", "wide_rhs.npy", 1e-12),
        ("ab32.npy", "rhs32.npy", f32_tol),
        ("ab32.npy", "rhs.npy", 1e-12),
    ] {
        // The CPU's reference kernels: the emulator performs their operations.
        for (device, suffix) in [("cpu", "cpu"), ("emulator", "dev")] {
            let (x, ld, l) = (format!("x_{suffix}.npy"), format!("ld_{suffix}.npy"), format!("l_{suffix}.npy"));
            let mut args = vec!["solve", "--ab", ab, "--rhs", rhs, "--out", &x, "--logdet", &ld, "--cholesky", &l, "--device", device];
            if device == "cpu" {
                args.extend(["--kernel", "reference"]);
            }
            assert_ok(&d.run(&args));
        }
        for name in ["x", "ld", "l"] {
            assert_close_npy(&d.file(&format!("{name}_cpu.npy")), &d.file(&format!("{name}_dev.npy")), tol);
        }
    }
    // Against SciPy too.
    assert_ok(&d.run(&["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x.npy", "--device", "emulator"]));
    assert!(rel_err(&read(&d.file("x.npy")).1, &r.x) < 1e-10);
    // Selected inversion on the device: the CPU's file under the reference kernels, bit for
    // bit (the emulator runs the CPU's operations in the same order).
    assert_ok(&d.run(&["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x2.npy", "--inverse-band", "inv_cpu.npy", "--kernel", "reference"]));
    assert_ok(&d.run(&["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x2.npy", "--inverse-band", "inv_dev.npy", "--device", "emulator"]));
    assert_same_bits(&read(&d.file("inv_cpu.npy")).1, &read(&d.file("inv_dev.npy")).1, "--inverse-band on the emulator");
}

/// Bad inputs give the CPU's error line, word for word, on the emulator.
#[cfg(feature = "cuda-emulator")]
#[test]
fn emulator_errors_match_the_cpu() {
    let r = reference();
    let d = Dir::new();
    write(&d.file("ab.npy"), &[B, W, N], &r.ab);
    write(&d.file("rhs.npy"), &[B, N, R], &r.rhs);
    let mut nan = r.ab.clone();
    nan[(W + 2) * N + 3] = f64::NAN;
    write(&d.file("nan.npy"), &[B, W, N], &nan);
    let mut inf = r.rhs.clone();
    inf[5] = f64::INFINITY;
    write(&d.file("inf.npy"), &[B, N, R], &inf);
    let mut npd = r.ab.clone();
    npd[W * N + 7] = -5.0;
    npd[3] = -50.0;
    write(&d.file("npd.npy"), &[B, W, N], &npd);
    write(&d.file("rhs_n.npy"), &[B, N - 1, R], &r.rhs[..B * (N - 1) * R]);
    for (ab, rhs, out) in [
        ("nan.npy", "rhs.npy", "x.npy"),
        ("ab.npy", "inf.npy", "x.npy"),
        ("npd.npy", "rhs.npy", "x.npy"),
        ("ab.npy", "rhs_n.npy", "x.npy"),
        ("missing.npy", "rhs.npy", "x.npy"),
        ("ab.npy", "rhs.npy", "no/such/dir/x.npy"),
    ] {
        let cpu = assert_fails(&d.run(&["solve", "--ab", ab, "--rhs", rhs, "--out", out]));
        let dev = assert_fails(&d.run(&["solve", "--ab", ab, "--rhs", rhs, "--out", out, "--device", "emulator"]));
        assert_eq!(dev, cpu, "{ab} {rhs} {out}");
    }
}

/// `banded bench solve --device emulator`: one line, the CPU line's keys with `kernel=`
/// replaced by `device=`; `--threads` and `--kernel` (CPU only) are refused.
#[cfg(feature = "cuda-emulator")]
#[test]
fn bench_solve_on_the_emulator() {
    let d = Dir::new();
    let base = ["bench", "solve", "--n", "30", "--kd", "3", "--batch", "5", "--nrhs", "2", "--reps", "3", "--no-roofline"];
    let cpu = String::from_utf8(d.run(&base).stdout).unwrap();
    let cpu_keys: Vec<&str> = keys(&cpu).into_iter().map(|k| if k == "kernel" { "device" } else { k }).collect();
    for extra in [&["--device", "emulator"][..], &["--device", "emulator", "--dtype", "f32", "--separate", "--seed", "3"]] {
        let out = d.run(&[&base[..], extra].concat());
        assert_ok(&out);
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert_eq!(keys(&text), cpu_keys, "{text}");
        assert!(text.contains(" mode=separate device=emulator threads=1 "), "{text}");
        assert!(field(&text, "median_s") >= 0.0 && field(&text, "min_s") <= field(&text, "median_s"), "{text}");
        assert!(field(&text, "gflops") >= 0.0);
        assert_eq!(field(&text, "reps"), 3.0);
    }
    for (flag, value) in [("--threads", "2"), ("--kernel", "avx2")] {
        let err = assert_fails(&d.run(&[&base[..], &["--device", "emulator", flag, value]].concat()));
        assert!(err.contains(flag) && err.contains("not used with --device emulator"), "{err}");
    }
    let err = assert_fails(&d.run(&[&base[..], &["--device", "emulator", "--partitions", "2"]].concat()));
    assert!(err.contains("--partitions") && err.contains("does not split them yet"), "{err}");
}

#[test]
fn keep_going_writes_the_other_systems() {
    // Three systems: 0 and 2 the reference's, 1 indefinite (diagonal −1 at column 7).
    let r = reference();
    let d = Dir::new();
    let mut ab = r.ab[..W * N].to_vec();
    let mut bad = r.ab[..W * N].to_vec();
    bad[7] = -1.0;
    ab.extend(&bad);
    ab.extend(&r.ab[W * N..]);
    let mut rhs = r.rhs[..N * R].to_vec();
    rhs.extend(&r.rhs[..N * R]);
    rhs.extend(&r.rhs[N * R..]);
    write(&d.file("ab.npy"), &[3, W, N], &ab);
    write(&d.file("rhs.npy"), &[3, N, R], &rhs);
    let args = ["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x.npy", "--logdet", "ld.npy", "--cholesky", "l.npy"];
    // Without the flag: the error, and nothing written.
    let err = assert_fails(&d.run(&args));
    assert!(err.contains("system 1 is not positive definite") && err.contains("column 7"), "{err}");
    assert!(!d.file("x.npy").exists() && !d.file("ld.npy").exists());
    // With it: every output written, the failed system's NaN, one warning per failure, status 1.
    let o = d.run(&[&args[..], &["--keep-going"]].concat());
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].starts_with("warning: system 1 is not positive definite (pivot at column 7)") && lines[0].contains("X, LD, L"), "{err}");
    assert!(lines[1].starts_with("error: system 1"), "{err}");
    let (shape, x, _) = read(&d.file("x.npy"));
    assert_eq!(shape, [3, N, R]);
    assert!(x[N * R..2 * N * R].iter().all(|v| v.is_nan()));
    let want: Vec<f64> = [&r.x[..N * R], &r.x[N * R..]].concat();
    let got: Vec<f64> = [&x[..N * R], &x[2 * N * R..]].concat();
    assert!(rel_err(&got, &want) < 1e-12);
    let (_, ld, _) = read(&d.file("ld.npy"));
    assert!(ld[1].is_nan() && (ld[0] - r.logdet[0]).abs() < 1e-10 && (ld[2] - r.logdet[1]).abs() < 1e-10);
    // The others are exactly what a batch of them alone gives.
    let (_, l, _) = read(&d.file("l.npy"));
    let two: Vec<f64> = [&r.ab[..W * N], &r.ab[W * N..]].concat();
    let a = BandBatch::from_lower_band(&two, 2, N, W - 1).unwrap();
    let want_l = Cholesky::factor(&a, &Params::default()).unwrap().l().to_lower_band().unwrap();
    assert_same_bits(&[&l[..W * N], &l[2 * W * N..]].concat(), &want_l, "L of the systems that factored");
    assert!(l[W * N..2 * W * N].iter().all(|v| v.is_nan()));
    // Every system failing: all NaN, still written.
    let all_bad: Vec<f64> = [&bad[..], &bad[..], &bad[..]].concat();
    write(&d.file("ab.npy"), &[3, W, N], &all_bad);
    let o = d.run(&[&args[..], &["--keep-going"]].concat());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).lines().count(), 4);
    assert!(read(&d.file("x.npy")).1.iter().all(|v| v.is_nan()));
}

/// `--inverse-band`: the band of A⁻¹ (LAPACK's dense inverse in `inverse_band.npz`), in AB's
/// shape, exactly the library's `inverse_band`; with `--keep-going`, NaN for a failed system.
#[test]
fn solve_writes_the_inverse_band() {
    let r = reference();
    let d = Dir::new();
    write(&d.file("ab.npy"), &[B, W, N], &r.ab);
    write(&d.file("rhs.npy"), &[B, N, R], &r.rhs);
    assert_ok(&d.run(&["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x.npy", "--inverse-band", "inv.npy"]));
    let (shape, inv, descr) = read(&d.file("inv.npy"));
    assert_eq!((shape, descr.as_str()), (vec![B, W, N], "<f8"));
    let (_, want) = npz_array("inverse_band.npz", "kd4");
    assert!(rel_err(&inv, &want) < 1e-10, "{}", rel_err(&inv, &want));
    let a = BandBatch::from_lower_band(&r.ab, B, N, W - 1).unwrap();
    let p = Params::default();
    assert_same_bits(&inv, &Cholesky::factor(&a, &p).unwrap().inverse_band(&p).unwrap().to_lower_band().unwrap(), "--inverse-band");

    let mut bad = r.ab.clone();
    bad[W * N + 3] = -1.0; // system 1, A[3, 3]
    write(&d.file("bad.npy"), &[B, W, N], &bad);
    let o = d.run(&["solve", "--ab", "bad.npy", "--rhs", "rhs.npy", "--out", "x.npy", "--inverse-band", "inv.npy", "--keep-going"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).lines().next().is_some_and(|l| l.contains("X, INV")), "{}", stderr(&o));
    let (_, inv, _) = read(&d.file("inv.npy"));
    assert!(inv[W * N..].iter().all(|v| v.is_nan()));
    assert!(rel_err(&inv[..W * N], &want[..W * N]) < 1e-10);
}

#[test]
fn absurd_bench_sizes_fail_cleanly_and_fast() {
    // Each refused before any work: sizes that overflow, allocations beyond memory, thread
    // pools and repetition counts no machine runs.
    let d = Dir::new();
    let max = usize::MAX.to_string();
    for (args, want) in [
        (vec!["bench", "solve", "--n", "1000000000000", "--kd", "1", "--batch", "1000000"], "cannot allocate"),
        (vec!["bench", "solve", "--n", "4", "--kd", "1", "--batch", &max], "overflows"),
        (vec!["bench", "smnn", "--batch", "100000000", "--steps", "100000000", "--dims", "3", "--orders", "3"], "cannot allocate"),
        (vec!["bench", "solve", "--n", "10", "--kd", "1", "--batch", "2", "--threads", &max], "`--threads`"),
        (vec!["bench", "smnn", "--batch", "2", "--steps", "10", "--dims", "3", "--orders", "3", "--threads", "100000"], "`--threads`"),
        (vec!["bench", "solve", "--n", "10", "--kd", "1", "--batch", "2", "--reps", &max], "`--reps`"),
    ] {
        let err = assert_fails(&d.run(&args));
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// `--keep-going` on the emulator: the same warnings, error line and outputs as on the CPU
/// (NaN where a system failed).
#[cfg(feature = "cuda-emulator")]
#[test]
fn emulator_keep_going_matches_the_cpu() {
    let r = reference();
    let d = Dir::new();
    let mut ab = r.ab.clone();
    ab[W * N + 11] = -3.0; // system 1, diagonal at column 11
    write(&d.file("ab.npy"), &[B, W, N], &ab);
    write(&d.file("rhs.npy"), &[B, N, R], &r.rhs);
    let mut outputs = Vec::new();
    for device in ["cpu", "emulator"] {
        let x = format!("x_{device}.npy");
        let o = d.run(&["solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", &x, "--keep-going", "--device", device]);
        assert_eq!(o.status.code(), Some(1));
        outputs.push((stderr(&o), read(&d.file(&x)).1));
    }
    assert_eq!(outputs[0].0, outputs[1].0);
    assert!(outputs[0].0.starts_with("warning: system 1 is not positive definite (pivot at column 11)"), "{}", outputs[0].0);
    let (cpu, dev) = (&outputs[0].1, &outputs[1].1);
    assert!(cpu[N * R..].iter().chain(&dev[N * R..]).all(|v| v.is_nan()));
    assert!(rel_err(&dev[..N * R], &cpu[..N * R]) < 1e-12 && rel_err(&cpu[..N * R], &r.x[..N * R]) < 1e-10);
}
