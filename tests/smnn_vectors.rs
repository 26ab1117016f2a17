//! The S-MNN layer against the reference vectors of the paper authors' PyTorch implementation
//! (`tests/data/smnn_*.npz`, see docs/ARCHITECTURE.md, "Reference vectors"): forward and all four gradients, in f64.

mod common;
use banded::smnn::{InputShapes, Inputs, Smnn};
use banded::Params;
use common::{npz_array, rel_err};

/// The vectors are small, well-conditioned problems (κ(M) ≲ 1e4) solved in f64 by a dense
/// reference: our banded solve differs by O(κ(M)·ε) ≈ 1e-12 relative; docs/ARCHITECTURE.md promises 1e-9.
const TOL: f64 = 1e-9;

fn check(file: &str) {
    let (cs, c) = npz_array(file, "coefficients");
    let (rs, r) = npz_array(file, "rhs_equation");
    let (vs, v) = npz_array(file, "init_vars");
    let (hs, h) = npz_array(file, "steps");
    let options = common::smnn_npz_options(file);
    let layer = Smnn::new(options, InputShapes { coefficients: &cs, rhs_equation: &rs, init_vars: &vs, steps: &hs })
        .unwrap();
    let inputs = Inputs { coefficients: &c, rhs_equation: &r, init_vars: &v, steps: &h };
    let p = Params::default();
    let fwd = layer.forward(inputs, &p).unwrap();
    let (us, u_ref) = npz_array(file, "u");
    assert_eq!(us, layer.u_shape());
    assert!(rel_err(fwd.u(), &u_ref) < TOL, "{file}: u {}", rel_err(fwd.u(), &u_ref));

    let (_, gu) = npz_array(file, "grad_u");
    let g = fwd.backward(&gu, &p).unwrap();
    for (name, got) in [
        ("grad_coefficients", &g.coefficients),
        ("grad_rhs_equation", &g.rhs_equation),
        ("grad_init_vars", &g.init_vars),
        ("grad_steps", &g.steps),
    ] {
        let (_, want) = npz_array(file, name);
        let e = rel_err(got, &want);
        assert!(e < TOL, "{file}: {name} {e}");
    }

    // The same through the frozen left-hand side, and without the inferred T.
    let frozen = layer.freeze(&c, &h, &p).unwrap();
    let u2 = frozen.forward(&r, &v, &p).unwrap();
    assert!(rel_err(&u2, &u_ref) < TOL, "{file}: frozen u");
    let fg = frozen.backward(&gu, &p).unwrap();
    assert!(rel_err(&fg.rhs_equation, &npz_array(file, "grad_rhs_equation").1) < TOL);
    assert!(rel_err(&fg.init_vars, &npz_array(file, "grad_init_vars").1) < TOL);
}

#[test]
fn every_smnn_vector_file() {
    let dir = common::data_path("");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with("smnn_") && f.ends_with(".npz"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "expected the smnn vectors in tests/data, found {files:?}");
    for f in &files {
        check(f);
    }
}
