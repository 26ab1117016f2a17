//! Replays the fuzz corpus and every saved crash input (`fuzz/corpus/<target>/`,
//! `fuzz/artifacts/<target>/`) through the fuzz targets' own bodies (`fuzz/src/lib.rs`), on
//! stable, as part of `cargo test`; and regression tests for what the fuzzers found.
//!
//! `write_seed_corpus` (ignored) writes the seed inputs from the reference vectors and the
//! error-path tests: `cargo test --test fuzz_replay -- --ignored write_seed_corpus`.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod targets;
mod common;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Once;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted (none if it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries.map(|e| e.expect("directory entry").path()).filter(|p| p.is_file()).collect();
    out.sort();
    out
}

thread_local! {
    /// Panics seen on this thread, caught or not.
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Counts every panic in [`PANICS`] (then reports it as before): libFuzzer aborts on a panic
/// even when it is caught later (as the CLI's `guarded` catches one inside npyz), so the replay
/// must see those too.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
}

/// Runs `body` on every corpus and artifact file of `target`; the corpus must not be empty.
fn replay(target: &str, body: fn(&[u8])) {
    count_panics();
    let corpus = files(&fuzz_dir().join("corpus").join(target));
    assert!(!corpus.is_empty(), "no corpus for {target} in fuzz/corpus/{target}");
    for path in corpus.iter().chain(&files(&fuzz_dir().join("artifacts").join(target))) {
        let bytes = std::fs::read(path).expect("read a corpus file");
        let before = PANICS.with(Cell::get);
        let outcome = std::panic::catch_unwind(|| body(&bytes));
        let caught = PANICS.with(Cell::get) - before;
        assert!(
            outcome.is_ok() && caught == 0,
            "{target}: {} fails ({caught} panics; under the sanitizer: cd fuzz && cargo +nightly fuzz run --fuzz-dir . {target} {})",
            path.display(),
            path.display()
        );
    }
}

#[test]
fn replay_band() {
    replay("band", targets::band);
}

#[test]
fn replay_smnn() {
    replay("smnn", targets::smnn);
}

#[test]
fn replay_npy() {
    replay("npy", targets::npy);
}

// ---------------------------------------------------------------------------------------------
// The seed corpus.

use banded::cli::io::{Array, Npz, Tensor, write_npy, write_npz};
use targets::{BandHeader, F32, LOWER_BAND, NICE, SmnnHeader, UNCHECKED, VIEWS, encode_band, encode_smnn};

fn data_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("data").join(name)
}

fn reference_files(prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = files(&data_file(""))
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .filter(|f| f.starts_with(prefix) && f.ends_with(".npz"))
        .collect();
    out.sort();
    out
}

fn read(npz: &mut Npz, key: &str) -> Tensor<f64> {
    npz.require(key).expect("reference array").into_tensor::<f64>()
}

fn write_seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = fuzz_dir().join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    std::fs::write(dir.join(name), bytes).expect("write a seed");
}

/// A `.npy` file with a version 1.0 header `header` (padded as NumPy pads it) and `data`.
fn npy_with_header(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let prefix = if version == 1 { 10 } else { 12 };
    let mut text = header.to_string();
    while !(prefix + text.len() + 1).is_multiple_of(64) {
        text.push(' ');
    }
    text.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    if version == 1 {
        out.extend((text.len() as u16).to_le_bytes());
    } else {
        out.extend((text.len() as u32).to_le_bytes());
    }
    out.extend(text.as_bytes());
    out.extend(data);
    out
}

fn le_f64(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Band seeds: each reference system (the leading block of at most `cap` columns, the first
/// systems, so that a seed stays near 4 KB) in f64 and f32, then shapes across the pack widths
/// in the diagonally dominant mode, then the error paths of tests/errors.rs.
fn band_seeds() {
    for file in reference_files("band_") {
        let mut npz = Npz::open(data_file(&file)).expect("reference file");
        let (ab, rhs, gx) = (read(&mut npz, "ab"), read(&mut npz, "rhs"), read(&mut npz, "grad_x"));
        let (batch, w, n, nrhs) = (ab.shape[0], ab.shape[1], ab.shape[2], rhs.shape[2]);
        let kd = w - 1;
        if kd > 33 || nrhs > 4 {
            continue;
        }
        let sb = batch.min(2);
        let sn = n.min(64).min((3500 / (9 * sb * (w + 2 * nrhs))).max(1));
        // Column band layout of the leading sn × sn block.
        let mut col = Vec::new();
        let (mut b, mut g) = (Vec::new(), Vec::new());
        for s in 0..sb {
            for j in 0..sn {
                for d in 0..w {
                    col.push(if j + d < sn { ab.data[(s * w + d) * n + j] } else { 0.0 });
                }
            }
            b.extend(&rhs.data[s * n * nrhs..(s * n + sn) * nrhs]);
            g.extend(&gx.data[s * n * nrhs..(s * n + sn) * nrhs]);
        }
        let h = BandHeader { batch: sb as u8, n: sn as u8, kd: kd as u8, nrhs: nrhs as u8, ..BandHeader::default() };
        let stem = file.trim_end_matches(".npz");
        write_seed("band", &format!("{stem}_f64"), &encode_band::<f64>(h, &col, &b, &g));
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let h32 = BandHeader { flags: F32 | VIEWS | LOWER_BAND, kernel: 1, par: 1, ..h };
        write_seed("band", &format!("{stem}_f32_views"), &encode_band::<f32>(h32, &f(&col), &f(&b), &f(&g)));
    }
    // Diagonally dominant, values generated: every lane-width boundary, every kernel, f32/f64.
    let mut k = 0u8;
    for batch in [1u8, 7, 8, 9, 15, 16, 17, 24, 33, 40] {
        for (n, kd) in [(1u8, 0u8), (5, 1), (20, 8), (30, 9), (64, 33), (3, 10)] {
            k = k.wrapping_add(1);
            let flags = NICE | if k % 2 == 1 { F32 } else { 0 } | if k.is_multiple_of(3) { VIEWS } else { 0 };
            let h = BandHeader { flags, kernel: k % 6, par: k % 6, batch, n, kd, nrhs: 1 + k % 4, lengths: 0, probe: u16::from(k) };
            write_seed("band", &format!("dominant_b{batch}_n{n}_kd{kd}"), &encode_band::<f64>(h, &[], &[], &[]));
        }
    }
    // Error paths (tests/errors.rs): a system not positive definite, every failing system,
    // non-finite inputs (checked and not), shapes, kd ≥ n, n = 1.
    let tri = |n: usize, diag: &dyn Fn(usize) -> f64| -> Vec<f64> {
        (0..n).flat_map(|j| [diag(j), if j + 1 < n { -1.0 } else { 0.0 }]).collect()
    };
    let h = |batch: u8, n: u8, nrhs: u8| BandHeader { batch, n, kd: 1, nrhs, ..BandHeader::default() };
    let mut three = Vec::new();
    for s in 0..3 {
        three.extend(tri(6, &|j| if s == 1 && j == 3 { 0.3 } else { 2.5 }));
    }
    write_seed("band", "err_not_pd_system1_col3", &encode_band::<f64>(h(3, 6, 1), &three, &[1.0; 18], &[1.0; 18]));
    let mut four = Vec::new();
    for s in 0..4 {
        four.extend(tri(4, &|j| match (s, j) {
            (0, 0) => -1.0,
            (2, 2) => 0.0,
            _ => 2.5,
        }));
    }
    write_seed("band", "err_every_failure", &encode_band::<f64>(h(4, 4, 2), &four, &[1.0; 32], &[1.0; 32]));
    let mut nan = tri(5, &|_| 2.5);
    nan[4] = f64::NAN;
    write_seed("band", "err_nan_ab", &encode_band::<f64>(h(1, 5, 1), &nan, &[1.0; 5], &[1.0; 5]));
    let unchecked = BandHeader { flags: UNCHECKED, ..h(1, 5, 1) };
    write_seed("band", "err_nan_ab_unchecked", &encode_band::<f64>(unchecked, &nan, &[1.0; 5], &[1.0; 5]));
    let ok = tri(5, &|_| 2.5);
    write_seed("band", "err_inf_rhs", &encode_band::<f64>(h(1, 5, 1), &ok, &[1.0, f64::INFINITY, 1.0, 1.0, 1.0], &[1.0; 5]));
    write_seed("band", "err_nan_grad_x", &encode_band::<f64>(h(1, 5, 1), &ok, &[1.0; 5], &[f64::NAN; 5]));
    for (code, name) in [(251u8, "ab_long"), (252, "ab_short"), (253, "rhs_long"), (254, "rhs_short"), (255, "grad_x_short")] {
        let hh = BandHeader { lengths: code, ..h(1, 5, 1) };
        write_seed("band", &format!("err_len_{name}"), &encode_band::<f64>(hh, &ok, &[1.0; 5], &[1.0; 5]));
    }
    write_seed("band", "err_batch0", &encode_band::<f64>(h(0, 5, 1), &[], &[], &[]));
    write_seed("band", "err_n0", &encode_band::<f64>(h(1, 0, 1), &[], &[], &[]));
    write_seed("band", "err_nrhs0", &encode_band::<f64>(h(1, 5, 0), &ok, &[], &[]));
    let wide = BandHeader { flags: NICE, kd: 9, ..h(2, 4, 2) };
    write_seed("band", "kd_at_least_n", &encode_band::<f64>(wide, &[], &[], &[]));
    let diag = BandHeader { kd: 0, ..h(3, 1, 1) };
    write_seed("band", "n1_diagonal", &encode_band::<f64>(diag, &[4.0, 1e-300, 9.0], &[1.0, 2.0, 3.0], &[1.0; 3]));
}

/// The code of [`targets::weight`] for `w` (a weight it can spell exactly).
fn weight_code(w: f64) -> u8 {
    (0..=255).find(|&c| targets::weight(c) == w).unwrap_or_else(|| panic!("no weight code for {w}"))
}

/// S-MNN seeds: each reference problem (first system), and the error paths of
/// tests/smnn_errors.rs as headers.
fn smnn_seeds() {
    for file in reference_files("smnn_") {
        let mut npz = Npz::open(data_file(&file)).expect("reference file");
        let options = common::smnn_npz_options(&file);
        let arrays = ["coefficients", "rhs_equation", "init_vars", "steps", "grad_u"].map(|k| read(&mut npz, k));
        let [c, r, v, h, _] = &arrays;
        let (t, e, d, o) = (options.n_steps.expect("n_steps in a vector file"), c.shape[2], c.shape[3], c.shape[4]);
        let (s, i) = (v.shape[1], v.shape[3]);
        if t > 40 || e > 4 || d > 3 || o > 4 {
            eprintln!("{file}: too large for the S-MNN seed format, skipped");
            continue;
        }
        let axis = |len: usize, full: usize| if len == full { 0u8 } else { 1 };
        let header = SmnnHeader {
            flags: if options.central { 4 | 16 } else { 16 },
            dims: [1, t as u8, e as u8, d as u8, o as u8, s as u8, i as u8],
            axes: axis(c.shape[1], t) | axis(r.shape[1], t) << 2 | axis(h.shape[1], t - 1) << 4,
            n_steps: 1,
            weights: [options.weight_equation, options.weight_init_var, options.weight_smooth].map(weight_code),
            ..SmnnHeader::default()
        };
        let first = |a: &Tensor<f64>| a.data[..a.data.len() / a.shape[0]].to_vec();
        let [c1, r1, v1, h1, g1] = arrays.each_ref().map(first);
        let stem = file.trim_end_matches(".npz");
        write_seed("smnn", &format!("{stem}_f64"), &encode_smnn::<f64>(header, [&c1, &r1, &v1, &h1, &g1]));
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let h32 = SmnnHeader { flags: header.flags | F32, kernel: 2, par: 1, ..header };
        write_seed("smnn", &format!("{stem}_f32"), &encode_smnn::<f32>(h32, [&f(&c1), &f(&r1), &f(&v1), &f(&h1), &f(&g1)]));
    }
    // Generated moderate values over the pack widths (batch 1–20), and the error paths.
    let base = SmnnHeader { flags: NICE, dims: [4, 6, 2, 2, 3, 1, 2], ..SmnnHeader::default() };
    let seeds: [(&str, SmnnHeader); 22] = [
        ("moderate_b1", SmnnHeader { dims: [1, 5, 1, 1, 2, 1, 1], ..base }),
        ("moderate_b8_f32", SmnnHeader { flags: NICE | F32, dims: [8, 10, 2, 2, 3, 1, 2], ..base }),
        ("moderate_b16_central", SmnnHeader { flags: NICE | 4, dims: [16, 12, 3, 3, 3, 2, 2], kernel: 3, ..base }),
        ("moderate_b17_f32_central", SmnnHeader { flags: NICE | F32 | 4, dims: [17, 40, 1, 1, 4, 1, 3], par: 2, ..base }),
        ("moderate_b20_broadcast", SmnnHeader { dims: [20, 8, 2, 3, 2, 1, 1], axes: 0b01_0101, flags: NICE | 16, n_steps: 1, ..base }),
        ("moderate_b9_bcast_steps", SmnnHeader { dims: [9, 7, 2, 2, 2, 1, 1], axes: 0b01_0000, ..base }),
        ("err_all_broadcast_no_t", SmnnHeader { axes: 0b01_0101, ..base }),
        ("err_t_too_small", SmnnHeader { dims: [2, 1, 2, 2, 3, 1, 2], ..base }),
        ("err_n_steps_disagrees", SmnnHeader { flags: NICE | 16, n_steps: 3, ..base }),
        ("err_central_o1", SmnnHeader { flags: NICE | 4, dims: [2, 5, 1, 1, 1, 1, 1], ..base }),
        ("err_s_gt_t", SmnnHeader { dims: [2, 5, 1, 1, 2, 6, 1], ..base }),
        ("err_i_gt_o", SmnnHeader { dims: [2, 5, 1, 1, 2, 1, 3], ..base }),
        ("err_wrong_step_axis", SmnnHeader { axes: 0b10, ..base }),
        ("err_zero_batch", SmnnHeader { dims: [0, 5, 1, 1, 2, 1, 1], ..base }),
        ("err_zero_d", SmnnHeader { dims: [2, 5, 1, 0, 2, 1, 1], ..base }),
        ("err_rank", SmnnHeader { shape: 241, ..base }),
        ("err_batch_mismatch", SmnnHeader { shape: 250, ..base }),
        ("err_weight_negative", SmnnHeader { weights: [0, 4, 0], ..base }),
        ("err_weight_nan", SmnnHeader { weights: [5, 0, 0], ..base }),
        ("err_weight_huge_f32", SmnnHeader { flags: NICE | F32, weights: [7, 0, 0], ..base }),
        ("err_length_coefficients", SmnnHeader { lengths: 255, ..base }),
        ("err_length_grad_u", SmnnHeader { lengths: 254, ..base }),
    ];
    for (name, h) in seeds {
        write_seed("smnn", name, &encode_smnn::<f64>(h, [&[], &[], &[], &[], &[]]));
    }
    // Non-finite and non-positive values (tests/smnn_errors.rs): raw mode, one bad value first.
    let raw = SmnnHeader { flags: 0, ..base };
    for (name, c0, h0) in [("err_nan_coefficient", f64::NAN, 0.3), ("err_inf_coefficient_unchecked", f64::INFINITY, 0.3), ("err_step_zero", 0.5, 0.0), ("err_step_negative", 0.5, -0.1)] {
        let hh = if name.contains("unchecked") { SmnnHeader { flags: UNCHECKED, ..raw } } else { raw };
        let c = vec![c0; 4 * 6 * 2 * 2 * 3];
        let rr = vec![0.5; 4 * 6 * 2];
        let v = vec![0.5; 4 * 2 * 3];
        let st = vec![h0; 4 * 5];
        write_seed("smnn", name, &encode_smnn::<f64>(hh, [&c, &rr, &v, &st, &[]]));
    }
    // Singular: all coefficients zero and the equation weight only.
    let zero = SmnnHeader { weights: [0, 1, 1], ..base };
    write_seed("smnn", "err_singular", &encode_smnn::<f64>(zero, [&vec![0.0; 4 * 6 * 2 * 2 * 3], &[], &[], &[], &[]]));
}

/// npy seeds: the reference archives that are small, each of their arrays as a `.npy`, a
/// written archive, and malformed files.
fn npy_seeds() {
    let dir = fuzz_dir().join("corpus").join("npy");
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    for file in reference_files("") {
        let bytes = std::fs::read(data_file(&file)).expect("reference file");
        if bytes.len() <= 20_000 {
            write_seed("npy", &file, &bytes);
        }
        let mut npz = Npz::open(data_file(&file)).expect("reference file");
        for name in npz.names() {
            // Integer scalars (the S-MNN options) are not ours to read: skipped.
            if let Ok(Some(Array::F64(t))) = npz.get(&name)
                && t.data.len() <= 2000
            {
                let stem = file.trim_end_matches(".npz");
                write_npy(dir.join(format!("{stem}_{name}.npy")), &t.shape, &t.data).expect("write npy");
            }
        }
    }
    let a = Array::F64(Tensor { shape: vec![2, 2], data: vec![1.0, 2.0, 3.0, 4.0] });
    let b = Array::F32(Tensor { shape: vec![3], data: vec![1.0, 2.0, 3.0] });
    write_npz(dir.join("written.npz"), &[("a", &a), ("b", &b)]).expect("write npz");
    let written = std::fs::read(dir.join("written.npz")).expect("read back");
    write_seed("npy", "npz_truncated", &written[..written.len() / 2]);
    let two = le_f64(&[1.0, 2.0]);
    let c = "'fortran_order': False";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("f8", npy_with_header(1, &format!("{{'descr': '<f8', {c}, 'shape': (2,), }}"), &two)),
        ("f4_2x3", npy_with_header(1, &format!("{{'descr': '<f4', {c}, 'shape': (2, 3), }}"), &[0; 24])),
        ("big_endian", npy_with_header(1, &format!("{{'descr': '>f8', {c}, 'shape': (2,), }}"), &two)),
        ("fortran_3d", npy_with_header(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3, 4), }", &[0; 192])),
        ("scalar", npy_with_header(1, &format!("{{'descr': '<f8', {c}, 'shape': (), }}"), &two[..8])),
        ("zero_dim", npy_with_header(1, &format!("{{'descr': '<f8', {c}, 'shape': (0, 5), }}"), &[])),
        ("version2", npy_with_header(2, &format!("{{'descr': '<f8', {c}, 'shape': (2,), }}"), &two)),
        ("version3", npy_with_header(3, &format!("{{'descr': '<f8', {c}, 'shape': (2,), }}"), &two)),
        ("bad_magic", [b"\x93NUMPZ".as_slice(), &npy_with_header(1, "{}", &[])[6..]].concat()),
        ("int32", npy_with_header(1, &format!("{{'descr': '<i4', {c}, 'shape': (2,), }}"), &[0; 8])),
        ("float16", npy_with_header(1, &format!("{{'descr': '<f2', {c}, 'shape': (2,), }}"), &[0; 4])),
        ("complex", npy_with_header(1, &format!("{{'descr': '<c16', {c}, 'shape': (1,), }}"), &[0; 16])),
        ("object", npy_with_header(1, &format!("{{'descr': '|O', {c}, 'shape': (1,), }}"), &[0; 8])),
        ("subarray", npy_with_header(1, &format!("{{'descr': [('a', '<f8', (2,))], {c}, 'shape': (1,), }}"), &two)),
        ("truncated", npy_with_header(1, &format!("{{'descr': '<f8', {c}, 'shape': (3,), }}"), &two)),
        ("trailing", npy_with_header(1, &format!("{{'descr': '<f8', {c}, 'shape': (1,), }}"), &two)),
        ("shape_1e12", npy_with_header(1, &format!("{{'descr': '<f8', {c}, 'shape': (1000000000000,), }}"), &two)),
        ("shape_overflow", npy_with_header(1, &format!("{{'descr': '<f8', {c}, 'shape': (4294967296, 4294967296, 4294967296), }}"), &[])),
        ("shape_hex_overflow", npy_with_header(1, &format!("{{'descr': '<f8', {c}, 'shape': (0x100000000, 0x1_0000_0000, 0), }}"), &[])),
        ("shape_list", npy_with_header(1, &format!("{{'descr': '<f8', {c}, 'shape': [2], }}"), &two)),
        ("header_len_lies", {
            let mut v = npy_with_header(1, &format!("{{'descr': '<f8', {c}, 'shape': (2,), }}"), &two);
            v[8] = 0xff;
            v
        }),
        ("not_a_dict", npy_with_header(1, "[1, 2, 3]", &[])),
        ("short", b"\x93NUMPY\x01".to_vec()),
    ];
    for (name, bytes) in cases {
        write_seed("npy", &format!("hand_{name}.npy"), &bytes);
    }
}

/// Writes the seed corpus (`fuzz/corpus/{band,smnn,npy}/`) from the reference vectors and the
/// error-path tests. Run once: `cargo test --test fuzz_replay -- --ignored write_seed_corpus`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    band_seeds();
    smnn_seeds();
    npy_seeds();
}

// ---------------------------------------------------------------------------------------------
// Regressions.

/// A `.npy` header whose shape multiplies beyond `u64` (`(2**32, 2**32, 2**32)`, also spelled
/// in hex, or one dimension of 2**64) is refused by our own check before npyz multiplies the
/// dimensions unchecked (a panic there in a build with overflow checks, this debug build).
#[test]
fn npy_shape_overflowing_u64_is_refused_before_npyz_parses_it() {
    let c = "'descr': '<f8', 'fortran_order': False";
    for shape in ["(4294967296, 4294967296, 4294967296)", "(0x1_0000_0000, 0o40000000000, 0b1 ,4294967296, 0)", "(18446744073709551616,)", "(3L, 6148914691236517206L)"] {
        let bytes = npy_with_header(1, &format!("{{{c}, 'shape': {shape}, }}"), &[]);
        let err = banded::cli::npy::parse_npy(&bytes).expect_err(shape);
        assert!(err.contains("too large"), "{shape}: {err}");
    }
    // Large but representable: refused later, as truncated data, without allocating.
    let bytes = npy_with_header(1, &format!("{{{c}, 'shape': (1000000000000,), }}"), &[0; 8]);
    assert!(banded::cli::npy::parse_npy(&bytes).expect_err("1e12").contains("truncated"));
    let ok = npy_with_header(1, &format!("{{{c}, 'shape': (0x2, 1_0), }}"), &[0; 160]);
    assert_eq!(banded::cli::npy::parse_npy(&ok).expect("(2, 10)").shape(), [2, 10]);
}

/// Found by the npy fuzzer (`fuzz/artifacts/npy/timeout_*`): a `.npy` header of brackets that
/// open and never close (`{{{{…` or `'fortran_order': [[[[…`, 20–80 deep) took npyz's parser
/// of Python literals minutes (it backtracks exponentially in the depth). The header is now
/// refused before npyz sees it when nested more than 4 deep (a float array needs 2) or longer
/// than NumPy's own limit of 10 000 bytes.
#[test]
fn npy_header_nested_deeply_is_refused_quickly() {
    for open in ["{", "[", "("] {
        let header = format!("{{'descr': '<f8', 'fortran_order': {}1", open.repeat(40));
        let bytes = npy_with_header(1, &header, &[]);
        let start = std::time::Instant::now();
        let err = banded::cli::npy::parse_npy(&bytes).expect_err("deep header");
        assert!(err.contains("nested"), "{err}");
        assert!(start.elapsed().as_secs_f64() < 1.0, "took {:?}", start.elapsed());
    }
    let long = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': (2,), {}}}", " ".repeat(10_000));
    let err = banded::cli::npy::parse_npy(&npy_with_header(2, &long, &[0; 16])).expect_err("long header");
    assert!(err.contains("too long"), "{err}");
    // Four levels (a structured dtype's subarray) still reach the dtype check.
    let four = "{'descr': [('a', '<f8', (2,))], 'fortran_order': False, 'shape': (1,), }";
    let err = banded::cli::npy::parse_npy(&npy_with_header(1, four, &[0; 16])).expect_err("structured");
    assert!(err.contains("dtype"), "{err}");
}
