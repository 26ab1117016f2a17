//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

pub mod cli;
pub mod lanes;
pub mod spd;

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

/// The bits of `x` (`f32` or `f64`: `Real` is sealed), for "the same bits" assertions.
pub fn bits<T: banded::Real>(x: T) -> u64 {
    let any: &dyn std::any::Any = &x;
    match (any.downcast_ref::<f32>(), any.downcast_ref::<f64>()) {
        (Some(v), _) => u64::from(v.to_bits()),
        (_, Some(v)) => v.to_bits(),
        _ => unreachable!("banded::Real is implemented for f32 and f64 only"),
    }
}

/// Where `a` and `b` differ bit for bit: `None` if they hold the same bits (same length, every
/// element's bits equal), else the first difference, for a message. "The same bits" is what
/// `==` on floats cannot say: it calls −0.0 and 0.0 equal and NaN unequal to itself.
pub fn bit_diff<T: banded::Real>(a: &[T], b: &[T]) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!("lengths {} and {}", a.len(), b.len()));
    }
    let i = a.iter().zip(b).position(|(&x, &y)| bits(x) != bits(y))?;
    Some(format!("element {i} of {}: {:?} vs {:?}", a.len(), a[i], b[i]))
}

/// Panics (naming `what` and the first difference) unless `a` and `b` hold the same bits.
#[track_caller]
pub fn assert_same_bits<T: banded::Real>(a: &[T], b: &[T], what: impl std::fmt::Display) {
    if let Some(d) = bit_diff(a, b) {
        panic!("{what}: not the same bits ({d})");
    }
}

/// [`assert_same_bits`] for two band batches: the same shape and the same bits in every stored
/// element (the entries below the matrices included).
#[track_caller]
pub fn assert_same_band<T: banded::Real>(a: &banded::BandBatch<T>, b: &banded::BandBatch<T>, what: impl std::fmt::Display) {
    assert_eq!((a.batch(), a.n(), a.kd()), (b.batch(), b.n(), b.kd()), "{what}: shapes");
    assert_same_bits(a.as_slice(), b.as_slice(), what);
}
