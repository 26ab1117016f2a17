//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

pub mod cli;
pub mod lanes;

/// Path of a file in `tests/data/`.
pub fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("data").join(name)
}

/// One array of an `.npz` file: its shape and its values as f64.
pub fn npz_array(file: &str, key: &str) -> (Vec<usize>, Vec<f64>) {
    let mut npz = npyz::npz::NpzArchive::open(data_path(file)).expect("open npz");
    let arr = npz.by_name(key).expect("read npz").unwrap_or_else(|| panic!("{file} has no {key}"));
    let shape = arr.shape().iter().map(|&d| d as usize).collect();
    (shape, arr.into_vec::<f64>().expect("f64 array"))
}

/// max_i |a_i − b_i| / max(max_i |b_i|, tiny): error relative to the reference's scale.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// A scalar of an `.npz` file (float64 or int64 array of any shape with one element) as f64.
pub fn smnn_npz_scalar(file: &str, key: &str) -> f64 {
    let mut npz = npyz::npz::NpzArchive::open(data_path(file)).expect("open npz");
    let arr = npz.by_name(key).expect("read npz").unwrap_or_else(|| panic!("{file} has no {key}"));
    match arr.dtype() {
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Int => {
            arr.into_vec::<i64>().expect("i64 array")[0] as f64
        }
        _ => arr.into_vec::<f64>().expect("f64 array")[0],
    }
}

/// The layer options stored in an S-MNN vector file (`n_steps`, the weights, `central`).
pub fn smnn_npz_options(file: &str) -> banded::smnn::Options {
    let scalar = |key| smnn_npz_scalar(file, key);
    banded::smnn::Options {
        n_steps: Some(scalar("n_steps") as usize),
        weight_equation: scalar("weight_equation"),
        weight_init_var: scalar("weight_init_var"),
        weight_smooth: scalar("weight_smooth"),
        central: scalar("central") != 0.0,
    }
}
