//! `banded smnn forward|backward` and `banded bench smnn` as subprocesses: the reference
//! vectors reproduced through files, f32 files, and one clean error line for bad input.

mod common;

use std::path::Path;
use std::process::Output;

use common::cli::{assert_fails, assert_ok, assert_roofline_consistent, banded};
use common::{npz_array, rel_err, smnn_npz_scalar};
use npyz::WriterBuilder;

const KEYS: [&str; 4] = ["coefficients", "rhs_equation", "init_vars", "steps"];
const GRADS: [&str; 4] = ["grad_coefficients", "grad_rhs_equation", "grad_init_vars", "grad_steps"];

/// One array to write: name, shape, values, written as float32?
type Entry = (String, Vec<usize>, Vec<f64>, bool);

fn write_npz(path: &Path, arrays: &[Entry]) {
    let mut npz = npyz::npz::NpzWriter::create(path).unwrap();
    for (name, shape, data, f32) in arrays {
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let opts = npyz::zip::write::FileOptions::default();
        if *f32 {
            let mut w = npz.array::<f32>(name, opts).unwrap().default_dtype().shape(&shape).begin_nd().unwrap();
            w.extend(data.iter().map(|&x| x as f32)).unwrap();
            w.finish().unwrap();
        } else {
            let mut w = npz.array::<f64>(name, opts).unwrap().default_dtype().shape(&shape).begin_nd().unwrap();
            w.extend(data.iter().copied()).unwrap();
            w.finish().unwrap();
        }
    }
}

/// Reads an output array: (shape, values as f64, is float32).
fn read_out(path: &Path, key: &str) -> (Vec<usize>, Vec<f64>, bool) {
    let mut npz = npyz::npz::NpzArchive::open(path).unwrap();
    let arr = npz.by_name(key).unwrap().unwrap_or_else(|| panic!("no {key} in output"));
    let shape = arr.shape().iter().map(|&d| d as usize).collect();
    let f32 = arr.dtype().descr().contains("f4");
    let data = if f32 {
        arr.into_vec::<f32>().unwrap().into_iter().map(f64::from).collect()
    } else {
        arr.into_vec::<f64>().unwrap()
    };
    (shape, data, f32)
}

/// The flags that reproduce a vector file's options.
fn flags(file: &str) -> Vec<String> {
    let s = |k| smnn_npz_scalar(file, k);
    let mut f = vec!["--n-steps".into(), (s("n_steps") as usize).to_string()];
    if s("central") != 0.0 {
        f.push("--central".into());
    }
    for (flag, key) in [("--weight-equation", "weight_equation"), ("--weight-init", "weight_init_var"), ("--weight-smooth", "weight_smooth")] {
        f.push(flag.into());
        f.push(format!("{}", s(key)));
    }
    f
}

fn vector_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(common::data_path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with("smnn_") && f.ends_with(".npz"))
        .collect();
    files.sort();
    files
}

/// Same tolerance as the library's vector tests (docs/ARCHITECTURE.md, "Reference vectors").
const TOL: f64 = 1e-9;

#[test]
fn reproduces_the_vectors() {
    let dir = tempfile::tempdir().unwrap();
    for file in vector_files() {
        let input = common::data_path(&file);
        let input = input.to_str().unwrap();
        let out = dir.path().join("out.npz");
        let mut args: Vec<String> = ["smnn", "backward", "--inputs", input, "--out", "out.npz"].map(String::from).to_vec();
        args.extend(flags(&file));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_ok(&banded(&argv, dir.path()));
        for key in std::iter::once("u").chain(GRADS) {
            let (shape, got, f32) = read_out(&out, key);
            let (want_shape, want) = npz_array(&file, key);
            assert!(!f32);
            assert_eq!(shape, want_shape, "{file}: {key}");
            assert!(rel_err(&got, &want) < TOL, "{file}: {key} {}", rel_err(&got, &want));
        }
        // forward writes u only.
        let mut args = args.clone();
        args[1] = "forward".into();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_ok(&banded(&argv, dir.path()));
        let (_, u, _) = read_out(&out, "u");
        assert!(rel_err(&u, &npz_array(&file, "u").1) < TOL);
        let mut npz = npyz::npz::NpzArchive::open(&out).unwrap();
        assert_eq!(npz.array_names().count(), 1);
        assert!(npz.by_name("grad_steps").unwrap().is_none());
    }
}

/// The arrays of `smnn_tiny.npz`, to be modified by the error tests.
fn tiny() -> Vec<Entry> {
    KEYS.iter()
        .chain(&["grad_u"])
        .map(|k| {
            let (s, v) = npz_array("smnn_tiny.npz", k);
            (k.to_string(), s, v, false)
        })
        .collect()
}

fn run_with(arrays: &[Entry], cmd: &str, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    write_npz(&dir.path().join("in.npz"), arrays);
    let mut args = vec!["smnn", cmd, "--inputs", "in.npz", "--out", "out.npz"];
    args.extend_from_slice(extra);
    let o = banded(&args, dir.path());
    if !o.status.success() {
        assert!(!dir.path().join("out.npz").exists(), "no output on failure");
    }
    o
}

#[test]
fn float32_files_give_float32_outputs() {
    let arrays: Vec<Entry> = tiny().into_iter().map(|(n, s, v, _)| (n, s, v, true)).collect();
    let dir = tempfile::tempdir().unwrap();
    write_npz(&dir.path().join("in.npz"), &arrays);
    assert_ok(&banded(&["smnn", "backward", "--inputs", "in.npz", "--out", "out.npz", "--n-steps", "7"], dir.path()));
    let (shape, u, f32) = read_out(&dir.path().join("out.npz"), "u");
    assert!(f32);
    assert_eq!(shape, [2, 7, 3, 4]);
    // f32 inputs (rounded) and f32 work: a few digits (κ(M) of this problem is ≲ 1e3).
    assert!(rel_err(&u, &npz_array("smnn_tiny.npz", "u").1) < 1e-3);
    let (_, _, f32) = read_out(&dir.path().join("out.npz"), "grad_steps");
    assert!(f32);
    // One float64 input: float64 work.
    let mut mixed = arrays.clone();
    mixed[0].3 = false;
    write_npz(&dir.path().join("in.npz"), &mixed);
    assert_ok(&banded(&["smnn", "forward", "--inputs", "in.npz", "--out", "out.npz"], dir.path()));
    assert!(!read_out(&dir.path().join("out.npz"), "u").2);
}

/// One bad input: the arrays, the command, extra flags, and a piece of the error line (`ok`:
/// no error).
type BadCase = (Vec<Entry>, &'static str, Vec<&'static str>, &'static str);

/// Bad inputs derived from `smnn_tiny.npz`.
fn bad_cases() -> Vec<BadCase> {
    let base = tiny();
    let set = |i: usize, f: &dyn Fn(&mut Entry)| {
        let mut a = base.clone();
        f(&mut a[i]);
        a
    };
    vec![
        // missing array
        (base[1..].to_vec(), "forward", vec![], "no array `coefficients`"),
        (base[..4].to_vec(), "backward", vec![], "no array `grad_u`"),
        // shapes
        (set(1, &|e| { e.1 = vec![2, 6, 3]; e.2.truncate(36) }), "forward", vec![], "`rhs_equation`"),
        (set(0, &|e| { e.1 = vec![2, 7, 3, 12]; }), "forward", vec![], "`coefficients`"),
        (set(2, &|e| { e.1 = vec![2, 2, 3, 3]; e.2 = vec![0.0; 36] }), "forward", vec!["--central"], "ok"),
        (set(3, &|e| { e.1 = vec![2, 5]; e.2.truncate(10) }), "forward", vec![], "`steps`"),
        (set(4, &|e| { e.1 = vec![2, 7, 3, 3]; e.2.truncate(126) }), "backward", vec![], "`grad_u`"),
        // I > O, S > T
        (set(2, &|e| { e.1 = vec![2, 1, 3, 5]; e.2 = vec![0.0; 30] }), "forward", vec![], "I ≤ O"),
        (set(2, &|e| { e.1 = vec![2, 8, 3, 1]; e.2 = vec![0.0; 48] }), "forward", vec![], "S ≤ T"),
        // T < 2 / n_steps disagreeing
        (base.clone(), "forward", vec!["--n-steps", "1"], "n_steps"),
        (base.clone(), "forward", vec!["--n-steps", "9"], "shape mismatch"),
        // values
        (set(0, &|e| e.2[5] = f64::NAN), "forward", vec![], "non-finite value NaN in `coefficients`"),
        (set(1, &|e| e.2[0] = f64::INFINITY), "forward", vec![], "`rhs_equation`"),
        (set(4, &|e| e.2[3] = f64::NAN), "backward", vec![], "`grad_u`"),
        (set(3, &|e| e.2[2] = -0.1), "forward", vec![], "step sizes must be positive"),
        (set(3, &|e| e.2[2] = 0.0), "backward", vec![], "step sizes must be positive"),
        // weights
        (base.clone(), "forward", vec!["--weight-smooth", "-1"], "weight_smooth"),
        (base.clone(), "forward", vec!["--weight-equation", "nan"], "weight_equation"),
        // singular normal matrix
        (set(0, &|e| e.2.iter_mut().for_each(|x| *x = 0.0)), "forward", vec!["--weight-init", "0"], "not positive definite"),
    ]
}

#[test]
fn bad_inputs_fail_cleanly() {
    let base = tiny();
    for (arrays, cmd, extra, want) in bad_cases() {
        let o = run_with(&arrays, cmd, &extra);
        if want == "ok" {
            assert_ok(&o);
            continue;
        }
        let line = assert_fails(&o);
        assert!(line.contains(want), "{cmd} {extra:?}: wanted `{want}` in: {line}");
    }
    // central with O = 1
    let mut a = base.clone();
    a[0].1 = vec![2, 7, 3, 3, 1];
    a[0].2.truncate(2 * 7 * 9);
    a[2].1 = vec![2, 2, 3, 1];
    a[2].2.truncate(12);
    let line = assert_fails(&run_with(&a, "forward", &["--central"]));
    assert!(line.contains("central"), "{line}");
    // Every step axis broadcast and no --n-steps.
    let mut a = base.clone();
    a[0].1 = vec![2, 1, 3, 3, 4];
    a[0].2.truncate(72);
    a[1].1 = vec![2, 1, 3];
    a[1].2.truncate(6);
    a[3].1 = vec![2, 1];
    a[3].2.truncate(2);
    let line = assert_fails(&run_with(&a, "forward", &[]));
    assert!(line.contains("n_steps"), "{line}");
    assert_ok(&run_with(&a, "forward", &["--n-steps", "7"]));
}

#[test]
fn bad_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let line = assert_fails(&banded(&["smnn", "forward", "--inputs", "nope.npz", "--out", "o.npz"], dir.path()));
    assert!(line.contains("nope.npz"), "{line}");
    std::fs::write(dir.path().join("junk.npz"), b"not a zip").unwrap();
    assert_fails(&banded(&["smnn", "backward", "--inputs", "junk.npz", "--out", "o.npz"], dir.path()));
    // An output path that cannot be written.
    let input = common::data_path("smnn_tiny.npz");
    let o = banded(&["smnn", "forward", "--inputs", input.to_str().unwrap(), "--out", "no/such/dir/o.npz"], dir.path());
    assert_fails(&o);
}

#[test]
fn bench_prints_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for extra in [&[][..], &["--backward", "--central", "--dtype", "f32", "--equations", "3"]] {
        let mut args = vec!["bench", "smnn", "--batch", "3", "--steps", "20", "--dims", "2", "--orders", "3", "--reps", "2", "--no-roofline"];
        args.extend_from_slice(extra);
        let o = banded(&args, dir.path());
        assert_ok(&o);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(out.trim_end().lines().count(), 1, "{out}");
        let med = out.split_whitespace().find_map(|w| w.strip_prefix("median_s=")).expect("median_s=");
        assert!(med.parse::<f64>().unwrap() >= 0.0);
        assert!(out.starts_with("bench=smnn "), "{out}");
        assert!(out.contains(" bytes=") && out.split_whitespace().last().unwrap().starts_with("ws_bytes="), "{out}");
    }
    let line = assert_fails(&banded(&["bench", "smnn", "--batch", "1", "--steps", "1", "--dims", "1", "--orders", "2"], dir.path()));
    assert!(line.contains("n_steps") || line.contains("T"), "{line}");
    let line =
        assert_fails(&banded(&["bench", "smnn", "--batch", "1", "--steps", "5", "--dims", "1", "--orders", "1", "--central"], dir.path()));
    assert!(line.contains("central"), "{line}");
}

/// The roofline fields of `banded bench smnn`: the counts of `banded::roofline` for the layer
/// (forward, or forward + backward), and the measured rates consistent with `roofline_s` and
/// `roofline_frac`.
#[test]
fn bench_roofline_fields() {
    use banded::roofline::{smnn_forward, smnn_forward_backward};
    use banded::smnn::{InputShapes, Options, Smnn};
    let dir = tempfile::tempdir().unwrap();
    for (backward, dtype, elem) in [(false, "f64", 8), (true, "f32", 4)] {
        let mut args = vec!["bench", "smnn", "--batch", "3", "--steps", "20", "--dims", "2", "--orders", "3", "--reps", "2", "--threads", "2", "--dtype", dtype];
        if backward {
            args.push("--backward");
        }
        let o = banded(&args, dir.path());
        assert_ok(&o);
        let out = String::from_utf8(o.stdout).unwrap();
        // The bench's inputs: no broadcast axis, one step of initial values for every order.
        let shapes = InputShapes { coefficients: &[3, 20, 2, 2, 3], rhs_equation: &[3, 20, 2], init_vars: &[3, 1, 2, 3], steps: &[3, 19] };
        let layer = Smnn::new(Options::default(), shapes).unwrap();
        let cost = if backward { smnn_forward_backward(&layer, elem) } else { smnn_forward(&layer, elem) };
        assert!(cost.flops > 0.0 && cost.bytes > 0.0);
        assert_roofline_consistent(&out, cost.bytes, cost.flops, cost.working_set);
    }
}

// ---------------------------------------------------------------------------------------------
// --device

/// The keys of a bench line, in order.
#[cfg(feature = "cuda-emulator")]
fn keys(line: &str) -> Vec<&str> {
    line.split_whitespace().map(|t| t.split_once('=').map_or(t, |(k, _)| k)).collect()
}

/// Asserts that every array of `want` (written on the CPU) is in `got` (written with a
/// `--device`) with the same shape and dtype, its values within `tol` of `want`'s scale.
fn assert_close_npz(want: &Path, got: &Path, tol: f64) {
    let names = |path: &Path| {
        let mut v: Vec<String> = npyz::npz::NpzArchive::open(path).unwrap().array_names().map(String::from).collect();
        v.sort();
        v
    };
    let (names, got_names) = (names(want), names(got));
    assert_eq!(got_names, names);
    for key in &names {
        let (want_shape, w, want_f32) = read_out(want, key);
        let (got_shape, g, got_f32) = read_out(got, key);
        assert_eq!((got_shape, got_f32), (want_shape, want_f32), "{key}");
        let e = rel_err(&g, &w);
        assert!(e <= tol, "{key}: relative error {e:.3e} > {tol:.1e}");
    }
}

/// `--device cuda[:N]` where it cannot run (a build without the `cuda` feature, or no NVIDIA
/// driver / libnvrtc / such a device): one clean error line about CUDA, exit status 1, no
/// output. Where it can run (a GPU and a `cuda` build), the CPU's outputs.
#[test]
fn device_cuda_fails_cleanly_where_cuda_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::data_path("smnn_tiny.npz");
    let input = input.to_str().unwrap();
    for cmd in ["forward", "backward"] {
        assert_ok(&banded(&["smnn", cmd, "--inputs", input, "--out", "cpu.npz"], dir.path()));
        for device in ["cuda", "cuda:0", "cuda:1"] {
            let o = banded(&["smnn", cmd, "--inputs", input, "--out", "dev.npz", "--device", device], dir.path());
            if cfg!(feature = "cuda") && o.status.success() {
                assert_close_npz(&dir.path().join("cpu.npz"), &dir.path().join("dev.npz"), 1e-12);
                std::fs::remove_file(dir.path().join("dev.npz")).unwrap();
                continue;
            }
            let line = assert_fails(&o);
            assert!(line.contains("CUDA") || line.contains("cuda"), "{line}");
            if !cfg!(feature = "cuda") {
                assert!(line.contains("built without the `cuda` feature: cargo build --features cuda"), "{line}");
            }
            assert!(!dir.path().join("dev.npz").exists(), "smnn {cmd} --device {device}: output written on failure");
        }
    }
    let o = banded(&["bench", "smnn", "--batch", "2", "--steps", "5", "--dims", "1", "--orders", "2", "--reps", "1", "--device", "cuda"], dir.path());
    if !(cfg!(feature = "cuda") && o.status.success()) {
        let line = assert_fails(&o);
        assert!(line.contains("CUDA") || line.contains("cuda"), "{line}");
    }
}

/// A `--device` that is not cpu, cuda, cuda:N or emulator is a usage error (exit 2).
#[test]
fn bad_device_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["smnn", "forward", "--inputs", "in.npz", "--out", "o.npz", "--device", "tpu"][..],
        &["smnn", "backward", "--inputs", "in.npz", "--out", "o.npz", "--device", "cuda:gpu"],
        &["bench", "smnn", "--batch", "1", "--steps", "5", "--dims", "1", "--orders", "2", "--device", "tpu"],
    ] {
        let o = banded(args, dir.path());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("--device") && err.contains("expected") && err.contains("cuda:N"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// `--device emulator` in a build without the `cuda-emulator` feature: a clean error.
#[cfg(not(feature = "cuda-emulator"))]
#[test]
fn device_emulator_needs_its_feature() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::data_path("smnn_tiny.npz");
    let o = banded(&["smnn", "forward", "--inputs", input.to_str().unwrap(), "--out", "o.npz", "--device", "emulator"], dir.path());
    let line = assert_fails(&o);
    assert!(line.contains("cargo build --features cuda-emulator"), "{line}");
}

/// `banded smnn forward|backward --device emulator` (the CUDA kernels on the CPU) writes the
/// CPU's files for every reference vector (f64, to 1e-12 of each array's scale) and for f32
/// and mixed-dtype files.
#[cfg(feature = "cuda-emulator")]
#[test]
fn emulator_matches_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    for file in vector_files() {
        let input = common::data_path(&file);
        for cmd in ["forward", "backward"] {
            // The CPU's reference kernels: the emulator performs their operations.
            for (device, out, kernel) in [("cpu", "cpu.npz", "reference"), ("emulator", "dev.npz", "")] {
                let mut args: Vec<String> = ["smnn", cmd, "--inputs", input.to_str().unwrap(), "--out", out, "--device", device].map(String::from).to_vec();
                if !kernel.is_empty() {
                    args.extend(["--kernel".to_string(), kernel.to_string()]);
                }
                args.extend(flags(&file));
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                assert_ok(&banded(&argv, dir.path()));
            }
            assert_close_npz(&dir.path().join("cpu.npz"), &dir.path().join("dev.npz"), 1e-12);
        }
    }
    let all32: Vec<Entry> = tiny().into_iter().map(|(n, s, v, _)| (n, s, v, true)).collect();
    let mut mixed = all32.clone();
    mixed[0].3 = false;
    for (arrays, tol) in [(all32, 1e3 * f64::from(f32::EPSILON)), (mixed, 1e-12)] {
        write_npz(&dir.path().join("in.npz"), &arrays);
        // The CPU's reference kernels: the emulator performs their operations.
        assert_ok(&banded(&["smnn", "backward", "--inputs", "in.npz", "--out", "cpu.npz", "--kernel", "reference"], dir.path()));
        assert_ok(&banded(&["smnn", "backward", "--inputs", "in.npz", "--out", "dev.npz", "--device", "emulator"], dir.path()));
        assert_close_npz(&dir.path().join("cpu.npz"), &dir.path().join("dev.npz"), tol);
    }
}

/// Every bad input gives the CPU's error line, word for word, on the emulator.
#[cfg(feature = "cuda-emulator")]
#[test]
fn emulator_errors_match_the_cpu() {
    for (arrays, cmd, extra, want) in bad_cases() {
        // The CPU's reference kernels: which pivot of a singular system fails first depends on
        // the rounding, and the emulator rounds as they do.
        let mut cpu_extra = extra.clone();
        cpu_extra.extend(["--kernel", "reference"]);
        let cpu = run_with(&arrays, cmd, &cpu_extra);
        let mut extra = extra.clone();
        extra.extend(["--device", "emulator"]);
        let dev = run_with(&arrays, cmd, &extra);
        if want == "ok" {
            assert_ok(&dev);
            continue;
        }
        assert_eq!(assert_fails(&dev), assert_fails(&cpu), "{cmd} {extra:?}");
    }
}

/// `banded bench smnn --device emulator`: one line, the CPU line's keys with `kernel=`
/// replaced by `device=`, storage=fresh; `--threads` (CPU only) is refused.
#[cfg(feature = "cuda-emulator")]
#[test]
fn bench_on_the_emulator() {
    let dir = tempfile::tempdir().unwrap();
    let base = ["bench", "smnn", "--batch", "3", "--steps", "12", "--dims", "2", "--orders", "3", "--reps", "2", "--no-roofline"];
    let cpu = String::from_utf8(banded(&base, dir.path()).stdout).unwrap();
    let cpu_keys: Vec<&str> = keys(&cpu).into_iter().map(|k| if k == "kernel" { "device" } else { k }).collect();
    for extra in [&["--device", "emulator"][..], &["--device", "emulator", "--backward", "--central", "--dtype", "f32", "--equations", "3"]] {
        let o = banded(&[&base[..], extra].concat(), dir.path());
        assert_ok(&o);
        let out = String::from_utf8(o.stdout).unwrap();
        assert_eq!(out.trim_end().lines().count(), 1, "{out}");
        assert_eq!(keys(&out), cpu_keys, "{out}");
        assert!(out.starts_with("bench=smnn ") && out.contains(" storage=fresh device=emulator threads=1 "), "{out}");
        assert_eq!(out.contains("backward=true"), extra.contains(&"--backward"), "{out}");
        let med = out.split_whitespace().find_map(|w| w.strip_prefix("median_s=")).expect("median_s=");
        assert!(med.parse::<f64>().unwrap() >= 0.0);
    }
    let line = assert_fails(&banded(&[&base[..], &["--device", "emulator", "--threads", "2"]].concat(), dir.path()));
    assert!(line.contains("--threads") && line.contains("not used with --device emulator"), "{line}");
}

#[test]
fn keep_going_writes_the_other_systems() {
    // System 0 of smnn_tiny without equations and without initial values: singular. System 1
    // is well posed.
    let mut arrays = tiny();
    let per = arrays[0].2.len() / 2;
    arrays[0].2[..per].iter_mut().for_each(|x| *x = 0.0);
    let dir = tempfile::tempdir().unwrap();
    write_npz(&dir.path().join("in.npz"), &arrays);
    // System 1 alone (every array's second half), for the expected values.
    let alone: Vec<Entry> = arrays
        .iter()
        .map(|(k, s, v, f)| (k.clone(), [&[1], &s[1..]].concat(), v[v.len() / 2..].to_vec(), *f))
        .collect();
    write_npz(&dir.path().join("alone.npz"), &alone);
    let args = ["smnn", "backward", "--inputs", "in.npz", "--out", "out.npz", "--weight-init", "0"];
    let err = assert_fails(&banded(&args, dir.path()));
    assert!(err.contains("system 0 is not positive definite"), "{err}");
    assert!(!dir.path().join("out.npz").exists());
    let o = banded(&[&args[..], &["--keep-going"]].concat(), dir.path());
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].starts_with("warning: system 0 is not positive definite") && lines[0].contains("u and gradients are NaN"), "{err}");
    assert!(lines[1].starts_with("error: system 0"), "{err}");
    assert_ok(&banded(&["smnn", "backward", "--inputs", "alone.npz", "--out", "alone_out.npz", "--weight-init", "0"], dir.path()));
    for key in ["u"].iter().chain(&GRADS) {
        let (shape, got, _) = read_out(&dir.path().join("out.npz"), key);
        let (want_shape, want, _) = read_out(&dir.path().join("alone_out.npz"), key);
        assert_eq!(shape, [&[2], &want_shape[1..]].concat(), "{key}");
        let half = got.len() / 2;
        assert!(got[..half].iter().all(|v| v.is_nan()), "{key}");
        assert_eq!(got[half..], want[..], "{key}: system 1 as if alone");
    }
}
