//! Golden bits: the exact outputs of the band solver and the S-MNN layer under
//! [`Kernel::Reference`] — the kernels whose bits are the same on every machine — hashed,
//! against `tests/data/golden.txt`, so that a refactor can be checked bit for bit. (The fast
//! kernels are deterministic on one machine but fuse multiply–adds where the CPU can: their
//! promise is tested in `tests/packs.rs`.)
//!
//! `BANDED_WRITE_GOLDEN=1 cargo test --test golden` (re)writes the file instead of checking it.
//!
//! File format, one line per array, sorted: `<case> <array> <len> <hash>`, where `hash` is the
//! 64-bit FNV-1a (16 hex digits) of the little-endian bytes of every element's `to_bits()`
//! (4 bytes per f32, 8 per f64 / u64). An error is recorded as array `error` (or
//! `<step>_error`): `len` and `hash` are those of its `Display` string's UTF-8 bytes.
//!
//! The code that calls the library is in `band_case`, `band_partial_case` and `smnn_case`;
//! the rest only generates inputs and bookkeeps hashes.

mod common;

use std::collections::BTreeMap;

use banded::band::random_spd_problem;
use banded::smnn::{Grads, InputShapes, Inputs, Options, Smnn, Workspace};
use banded::{BandBatch, BatchMatrix, Cholesky, Kernel, Params, Real};
use common::npz_array;

const GOLDEN: &str = "golden.txt";

// ---------------------------------------------------------------------------------------------
// Hashing and the golden file.

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The bits of a real as `u64` (f32: its 32 bits, widened; exact either way).
fn bits<T: Real>(x: T) -> u64 {
    if T::NAME == "float32" { (x.as_f64() as f32).to_bits() as u64 } else { x.as_f64().to_bits() }
}

fn hash_real<T: Real>(data: &[T]) -> u64 {
    let mut h = Fnv::new();
    for &x in data {
        if T::NAME == "float32" {
            h.write(&(bits(x) as u32).to_le_bytes());
        } else {
            h.write(&bits(x).to_le_bytes());
        }
    }
    h.0
}

#[derive(Default)]
struct Golden {
    lines: BTreeMap<String, (usize, u64)>,
    /// Failures found while computing (duplicate names, bitwise checks between paths).
    problems: Vec<String>,
}

impl Golden {
    fn insert(&mut self, case: &str, name: &str, len: usize, hash: u64) {
        assert!(!case.contains(char::is_whitespace) && !name.contains(char::is_whitespace), "{case} {name}");
        let key = format!("{case} {name}");
        if self.lines.insert(key.clone(), (len, hash)).is_some() {
            self.problems.push(format!("recorded twice: {key}"));
        }
    }
    fn record<T: Real>(&mut self, case: &str, name: &str, data: &[T]) {
        self.insert(case, name, data.len(), hash_real(data));
    }
    fn record_u64(&mut self, case: &str, name: &str, data: &[u64]) {
        let mut h = Fnv::new();
        data.iter().for_each(|v| h.write(&v.to_le_bytes()));
        self.insert(case, name, data.len(), h.0);
    }
    fn record_err(&mut self, case: &str, name: &str, err: &banded::Error) {
        let s = err.to_string();
        let mut h = Fnv::new();
        h.write(s.as_bytes());
        self.insert(case, name, s.len(), h.0);
    }
    /// Asserts `a` and `b` are bitwise equal (collected as a problem, not a panic).
    fn same_bits<T: Real>(&mut self, case: &str, what: &str, a: &[T], b: &[T]) {
        let equal = a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| bits(x) == bits(y));
        if !equal {
            self.problems.push(format!("{case}: {what} differ bitwise"));
        }
    }

    fn to_text(&self) -> String {
        self.lines.iter().map(|(k, (len, h))| format!("{k} {len} {h:016x}\n")).collect()
    }
    fn parse(text: &str) -> BTreeMap<String, (usize, u64)> {
        let mut out = BTreeMap::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(f.len(), 4, "{GOLDEN} line {}: {line:?}", i + 1);
            let len = f[2].parse().unwrap_or_else(|_| panic!("{GOLDEN} line {}: bad length", i + 1));
            let hash = u64::from_str_radix(f[3], 16).unwrap_or_else(|_| panic!("{GOLDEN} line {}: bad hash", i + 1));
            out.insert(format!("{} {}", f[0], f[1]), (len, hash));
        }
        out
    }

    /// Writes the file (with `BANDED_WRITE_GOLDEN=1`) or compares against it, reporting every
    /// difference.
    fn finish(self) {
        let path = common::data_path(GOLDEN);
        let mut report = self.problems.clone();
        if std::env::var("BANDED_WRITE_GOLDEN").is_ok_and(|v| v == "1") {
            std::fs::write(&path, self.to_text()).expect("write golden file");
            // Straight to stderr (not `eprintln!`, which the test harness captures).
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "golden: wrote {} lines to {}", self.lines.len(), path.display());
        } else {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (generate it with BANDED_WRITE_GOLDEN=1)", path.display()));
            let want = Self::parse(&text);
            for (k, &(len, h)) in &want {
                match self.lines.get(k) {
                    None => report.push(format!("missing (in file, not computed): {k}")),
                    Some(&(l2, h2)) if (l2, h2) != (len, h) => {
                        report.push(format!("mismatch: {k}: file {len} {h:016x}, got {l2} {h2:016x}"))
                    }
                    Some(_) => {}
                }
            }
            for k in self.lines.keys().filter(|k| !want.contains_key(*k)) {
                report.push(format!("extra (computed, not in file): {k}"));
            }
        }
        assert!(report.is_empty(), "{} golden problem(s):\n  {}", report.len(), report.join("\n  "));
    }
}

/// splitmix64 → uniform numbers, for the S-MNN inputs.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
    fn vec(&mut self, len: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..len).map(|_| self.uniform(lo, hi)).collect()
    }
}

fn cast<T: Real>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

// ---------------------------------------------------------------------------------------------
// The calls into the library.

/// The parameters of every call: the reference kernels (reproducible bits), on all threads.
fn reference() -> Params {
    Params::default().with_kernel(Kernel::Reference)
}

/// Factor, solve, logdet, backward and the fused factor+solve of one band batch.
fn band_case<T: Real>(g: &mut Golden, case: &str, a: &BandBatch<T>, rhs: &BatchMatrix<T>, grad_x: &BatchMatrix<T>) {
    let p = reference();
    let run = |g: &mut Golden| -> banded::Result<()> {
        let chol = Cholesky::factor(a, &p)?;
        g.record(case, "l", &chol.l().to_lower_band().unwrap());
        let x = chol.solve(rhs, &p)?;
        g.record(case, "x", x.as_slice());
        g.record(case, "logdet", &chol.logdet());
        let gr = chol.backward(&x, grad_x, &p)?;
        g.record(case, "grad_rhs", gr.rhs.as_slice());
        g.record(case, "grad_ab", &gr.ab.to_lower_band().unwrap());
        g.record(case, "inverse_band", &chol.inverse_band(&p)?.to_lower_band().unwrap());
        let c: Vec<T> = (0..a.batch()).map(|s| T::from_f64(1.0 - 0.25 * s as f64)).collect();
        let both = chol.backward_with_logdet(&x, grad_x, &c, &p)?;
        g.record(case, "grad_ab_with_logdet", &both.ab.to_lower_band().unwrap());
        Ok(())
    };
    if let Err(e) = run(g) {
        g.record_err(case, "error", &e);
    }
    let mut b = rhs.clone();
    match Cholesky::factor_solve(a.clone(), &mut b, &p) {
        Ok(_) => g.record(case, "x_fused", b.as_slice()),
        Err(e) => g.record_err(case, "fused_error", &e),
    }
}

/// `factor_partial` of a batch in which some systems are not positive definite.
fn band_partial_case<T: Real>(g: &mut Golden, case: &str, a: &BandBatch<T>) {
    match Cholesky::factor_partial(a.clone(), &reference()) {
        Ok(pc) => {
            let failures: Vec<u64> = pc.failures.iter().flat_map(|f| [f.system as u64, f.column as u64]).collect();
            g.record_u64(case, "partial_failures", &failures);
            g.record_u64(case, "partial_systems", &pc.systems.iter().map(|&s| s as u64).collect::<Vec<_>>());
            match &pc.factor {
                Some(f) => g.record(case, "partial_l", &f.l().to_lower_band().unwrap()),
                None => g.record_u64(case, "partial_l_none", &[]),
            }
        }
        Err(e) => g.record_err(case, "partial_error", &e),
    }
}

/// What the S-MNN cases carry from one case to the next (of the same type).
#[derive(Default)]
struct Reuse<T> {
    grads: Grads<T>,
    workspace: Workspace<T>,
}

/// One S-MNN problem: the layer's options and input shapes, its inputs and a cotangent `∂ℓ/∂u`.
struct SmnnProblem<'a, T> {
    options: Options,
    shapes: InputShapes<'a>,
    inputs: Inputs<'a, T>,
    grad_u: &'a [T],
}

/// Forward, backward, `backward_into` a reused `Grads`, `forward_with` reused workspaces and
/// the frozen forward/backward of one S-MNN problem.
fn smnn_case<T: Real>(g: &mut Golden, case: &str, problem: SmnnProblem<'_, T>, reuse: &mut Reuse<T>) {
    let SmnnProblem { options, shapes, inputs, grad_u } = problem;
    let p = reference();
    let run = |g: &mut Golden, reuse: &mut Reuse<T>| -> banded::Result<()> {
        let layer = Smnn::new(options, shapes)?;
        let mut fwd = layer.forward(inputs, &p)?;
        g.record(case, "u", fwd.u());
        let gr = fwd.backward(grad_u, &p)?;
        g.record(case, "grad_coefficients", &gr.coefficients);
        g.record(case, "grad_rhs_equation", &gr.rhs_equation);
        g.record(case, "grad_init_vars", &gr.init_vars);
        g.record(case, "grad_steps", &gr.steps);

        // Into a Grads that held another case's gradients.
        fwd.backward_into(grad_u, &p, &mut reuse.grads)?;
        let gi = &reuse.grads;
        g.record(case, "into_grad_coefficients", &gi.coefficients);
        g.record(case, "into_grad_rhs_equation", &gi.rhs_equation);
        g.record(case, "into_grad_init_vars", &gi.init_vars);
        g.record(case, "into_grad_steps", &gi.steps);
        for (what, a, b) in [
            ("backward_into coefficients", &gi.coefficients, &gr.coefficients),
            ("backward_into rhs_equation", &gi.rhs_equation, &gr.rhs_equation),
            ("backward_into init_vars", &gi.init_vars, &gr.init_vars),
            ("backward_into steps", &gi.steps, &gr.steps),
        ] {
            g.same_bits(case, what, a, b);
        }

        // In the workspace of the previous case (another shape, or empty), then in this one's.
        let prev = std::mem::take(&mut reuse.workspace);
        let fwd2 = layer.forward_with(inputs, &p, prev)?;
        g.record(case, "u_workspace", fwd2.u());
        g.same_bits(case, "forward_with(previous case's workspace) u", fwd2.u(), fwd.u());
        let gr2 = fwd2.backward(grad_u, &p)?;
        g.same_bits(case, "backward after forward_with, coefficients", &gr2.coefficients, &gr.coefficients);
        g.same_bits(case, "backward after forward_with, steps", &gr2.steps, &gr.steps);
        let fwd3 = layer.forward_with(inputs, &p, fwd.into_workspace())?;
        g.same_bits(case, "forward_with(own workspace) u", fwd3.u(), fwd2.u());
        // In the storage of a factor kept apart from its forward (as the Python binding does).
        let fwd4 = layer.forward_with(inputs, &p, Workspace::from_factor(fwd3.into_parts().1))?;
        g.same_bits(case, "forward_with(Workspace::from_factor) u", fwd4.u(), fwd2.u());
        let gr4 = fwd4.backward(grad_u, &p)?;
        g.same_bits(case, "backward after Workspace::from_factor, coefficients", &gr4.coefficients, &gr.coefficients);
        drop(fwd2);
        reuse.workspace = fwd4.into_workspace();

        let frozen = layer.freeze(inputs.coefficients, inputs.steps, &p)?;
        g.record(case, "frozen_u", &frozen.forward(inputs.rhs_equation, inputs.init_vars, &p)?);
        let fg = frozen.backward(grad_u, &p)?;
        g.record(case, "frozen_grad_rhs_equation", &fg.rhs_equation);
        g.record(case, "frozen_grad_init_vars", &fg.init_vars);
        Ok(())
    };
    if let Err(e) = run(g, reuse) {
        g.record_err(case, "error", &e);
    }
}

// ---------------------------------------------------------------------------------------------
// The cases.

fn data_files(prefix: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(common::data_path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with(prefix) && f.ends_with(".npz"))
        .collect();
    files.sort();
    files
}

/// (a) the `band_*.npz` reference vectors.
fn band_vector_cases<T: Real>(g: &mut Golden) {
    let files = data_files("band_");
    assert!(files.len() >= 4, "{files:?}");
    for file in &files {
        let case = format!("band_file/{}/{}", file.trim_end_matches(".npz"), T::NAME);
        let (abs, ab) = npz_array(file, "ab");
        let (batch, kd, n) = (abs[0], abs[1] - 1, abs[2]);
        let (rs, rhs) = npz_array(file, "rhs");
        let (_, gx) = npz_array(file, "grad_x");
        let a = BandBatch::from_lower_band(&cast::<T>(&ab), batch, n, kd).unwrap();
        let rhs = BatchMatrix::new(cast::<T>(&rhs), batch, n, rs[2]).unwrap();
        let gx = BatchMatrix::new(cast::<T>(&gx), batch, n, rs[2]).unwrap();
        band_case(g, &case, &a, &rhs, &gx);
    }
}

/// (b) random SPD batches, and `factor_partial` of some with indefinite systems.
fn band_random_cases<T: Real>(g: &mut Golden) {
    let n = 70;
    for (ki, kd) in [0usize, 1, 4, 8, 17, 33, 64].into_iter().enumerate() {
        let nrhs = if ki % 2 == 0 { 1 } else { 3 };
        for (bi, batch) in [1usize, 7, 8, 24, 256].into_iter().enumerate() {
            let case = format!("band_random/kd{kd}_b{batch}_r{nrhs}/{}", T::NAME);
            let seed = 1 + 100 * ki as u64 + bi as u64;
            let (a, rhs) = random_spd_problem::<T>(seed, batch, n, kd, nrhs).unwrap();
            let (_, gx) = random_spd_problem::<T>(seed + 1000, batch, n, kd, nrhs).unwrap();
            band_case(g, &case, &a, &rhs, &gx);

            if matches!((kd, batch), (0, 7) | (1, 24) | (4, 8) | (17, 7) | (33, 24) | (64, 8) | (8, 256) | (4, 1)) {
                // System 0 fails at column n/2, the last (if another) at column 3.
                let mut ab = a.to_lower_band().unwrap();
                ab[n / 2] = T::from_f64(-1.0);
                if batch > 1 {
                    ab[(batch - 1) * (kd + 1) * n + 3] = T::from_f64(-0.5);
                }
                let bad = BandBatch::from_lower_band(&ab, batch, n, kd).unwrap();
                let case = format!("band_indefinite/kd{kd}_b{batch}_r{nrhs}/{}", T::NAME);
                band_partial_case(g, &case, &bad);
                band_case(g, &case, &bad, &rhs, &gx);
            }
        }
    }
}

/// (c) the `smnn_*.npz` reference vectors.
fn smnn_vector_cases<T: Real>(g: &mut Golden, reuse: &mut Reuse<T>) {
    let files = data_files("smnn_");
    assert!(files.len() >= 5, "{files:?}");
    for file in &files {
        let case = format!("smnn_file/{}/{}", file.trim_end_matches(".npz"), T::NAME);
        let (cs, c) = npz_array(file, "coefficients");
        let (rs, r) = npz_array(file, "rhs_equation");
        let (vs, v) = npz_array(file, "init_vars");
        let (hs, h) = npz_array(file, "steps");
        let (_, gu) = npz_array(file, "grad_u");
        let options = common::smnn_npz_options(file);
        let (c, r, v, h, gu) = (cast::<T>(&c), cast::<T>(&r), cast::<T>(&v), cast::<T>(&h), cast::<T>(&gu));
        let shapes = InputShapes { coefficients: &cs, rhs_equation: &rs, init_vars: &vs, steps: &hs };
        let inputs = Inputs { coefficients: &c, rhs_equation: &r, init_vars: &v, steps: &h };
        smnn_case(g, &case, SmnnProblem { options, shapes, inputs, grad_u: &gu }, reuse);
    }
}

/// (d) random S-MNN batches: full packs, padded tails and scalar tails, central off/on,
/// broadcast coefficients and steps, non-unit weights.
fn smnn_random_cases<T: Real>(g: &mut Golden, reuse: &mut Reuse<T>) {
    let (t, d, o, e, s, i) = (25usize, 2usize, 3usize, 3usize, 1usize, 2usize);
    let mut seed = 0u64;
    for batch in [1usize, 7, 8, 24, 33, 70] {
        for central in [false, true] {
            for variant in ["plain", "broadcast", "weighted"] {
                seed += 1;
                let case = format!("smnn_random/b{batch}_{}_{variant}/{}", if central { "central" } else { "taylor" }, T::NAME);
                let broadcast = variant == "broadcast";
                let (ct, ht) = if broadcast { (1, 1) } else { (t, t - 1) };
                let (w_eq, w_init, w_s) = if variant == "weighted" { (0.7, 2.0, 0.3) } else { (1.0, 1.0, 1.0) };
                let mut rng = Rng(0x5eed_0000 + seed);
                // C ~ U(-1, 1), plus 2 on the highest order of variable e in equation e < D.
                let mut c = rng.vec(batch * ct * e * d * o, -1.0, 1.0);
                for (k, x) in c.iter_mut().enumerate() {
                    let (oi, di, ei) = (k % o, (k / o) % d, (k / (o * d)) % e);
                    if ei == di && oi == o - 1 {
                        *x += 2.0;
                    }
                }
                let r = rng.vec(batch * t * e, -1.0, 1.0);
                let v = rng.vec(batch * s * d * i, -1.0, 1.0);
                let h = rng.vec(batch * ht, 0.05, 0.15);
                let gu = rng.vec(batch * t * d * o, -1.0, 1.0);
                let options = Options {
                    n_steps: broadcast.then_some(t),
                    weight_equation: w_eq,
                    weight_init_var: w_init,
                    weight_smooth: w_s,
                    central,
                };
                let (cs, rs, vs, hs) = ([batch, ct, e, d, o], [batch, t, e], [batch, s, d, i], [batch, ht]);
                let shapes = InputShapes { coefficients: &cs, rhs_equation: &rs, init_vars: &vs, steps: &hs };
                let (c, r, v, h, gu) = (cast::<T>(&c), cast::<T>(&r), cast::<T>(&v), cast::<T>(&h), cast::<T>(&gu));
                let inputs = Inputs { coefficients: &c, rhs_equation: &r, init_vars: &v, steps: &h };
                smnn_case(g, &case, SmnnProblem { options, shapes, inputs, grad_u: &gu }, reuse);
            }
        }
    }
}

fn all_cases<T: Real>(g: &mut Golden) {
    band_vector_cases::<T>(g);
    band_random_cases::<T>(g);
    let mut reuse = Reuse::<T>::default();
    smnn_vector_cases::<T>(g, &mut reuse);
    smnn_random_cases::<T>(g, &mut reuse);
}

#[test]
fn golden_bits() {
    let mut g = Golden::default();
    all_cases::<f64>(&mut g);
    all_cases::<f32>(&mut g);
    g.finish();
}

#[test]
fn fnv1a_known_values() {
    // Reference values of 64-bit FNV-1a.
    let h = |s: &[u8]| {
        let mut f = Fnv::new();
        f.write(s);
        f.0
    };
    assert_eq!(h(b""), 0xcbf29ce484222325);
    assert_eq!(h(b"a"), 0xaf63dc4c8601ec8c);
    assert_eq!(h(b"foobar"), 0x85944171f73967e8);
}
