//! The S-MNN layer on batches large enough to run in packs (the normal matrices assembled in
//! lockstep straight into the lane-interleaved layout and factored window by window as they are
//! assembled):
//!
//! - gives every system **bitwise** the result of that system alone (assembled in the band
//!   layout, factored one system at a time): the same operations in the same order per system;
//! - matches the dense reference (`common/smnn_check.rs`: `u` and the four gradients within
//!   their error bounds), so that the packs are not only compared with themselves;
//! - the frozen operator, reused workspaces and gradient storage agree with the full layer.
//!
//! The cases reach every layout of [`pack_lanes`] in f64 and f32 — one at a time, and single-
//! and double-width packs with no tail, a padded tail pack and single systems after the packs
//! (asserted) — with broadcast step axes (T = 34 spans two of the 32-step chunks the rows move
//! in), broadcast coefficients and central rows, under one and two threads.

mod common;
#[path = "common/smnn_ref.rs"]
mod smnn_ref;
#[path = "common/smnn_check.rs"]
mod smnn_check;

use std::collections::BTreeSet;

use banded::smnn::{Inputs, Workspace};
use banded::{Par, Params, Partitions, Real};

use common::assert_same_bits;
use common::lanes::{base_lanes, layout_of, sizes_for, Layout, Tail, LAYOUTS};
use smnn_check::{check, layer};
use smnn_ref::{draw, Problem, Spec};

#[derive(Clone, Copy, Debug)]
struct Shape {
    t: usize,
    d: usize,
    o: usize,
    e: usize,
    central: bool,
    /// Steps broadcast over `T` (one step size per system).
    one_step: bool,
    /// Coefficients and equation right-hand sides broadcast over `T`.
    one_c: bool,
}

impl Shape {
    fn kd(&self) -> usize {
        let b = self.d * self.o;
        if self.central { 2 * b } else { b + self.o - 1 }
    }
}

const fn shape(t: usize, d: usize, o: usize, e: usize, central: bool, one_step: bool, one_c: bool) -> Shape {
    Shape { t, d, o, e, central, one_step, one_c }
}

/// The cases: a shape, the layout its batch must run in, and the threads. Bandwidths 11 and
/// 16 (central) run in single-width packs only, 5 and 8 (central) may run double width.
const CASES: [(Shape, Layout, Par); 10] = [
    (shape(8, 3, 3, 3, false, false, false), None, Par::Seq),
    (shape(8, 3, 3, 3, false, false, false), Some((false, Tail::None)), Par::Seq),
    (shape(9, 3, 3, 4, false, true, false), Some((false, Tail::Padded)), Par::Seq),
    // Broadcast coefficients over two row chunks.
    (shape(34, 1, 3, 2, false, false, true), Some((false, Tail::Single)), Par::Seq),
    // Central rows with a wider band (kd = 2b), steps broadcast.
    (shape(8, 2, 4, 2, true, true, false), Some((false, Tail::Single)), Par::Seq),
    (shape(10, 1, 3, 1, false, false, false), Some((true, Tail::None)), Par::Seq),
    (shape(7, 2, 2, 2, true, false, true), Some((true, Tail::Padded)), Par::Seq),
    (shape(10, 1, 3, 1, false, false, false), Some((true, Tail::Single)), Par::Seq),
    // Central rows with a step per step, in single- and double-width packs, on two threads.
    (shape(6, 2, 3, 2, true, false, false), Some((false, Tail::Padded)), TWO),
    (shape(6, 1, 4, 2, true, false, false), Some((true, Tail::Single)), TWO),
];

const TWO: Par = Par::Rayon(std::num::NonZero::new(2).unwrap());

/// The problem of `shape` for `batch` systems: inputs from `seed`, steps in the range of the
/// property tests for `T` (well-conditioned in f32, see `smnn_props.rs`).
fn problem<T: Real>(s: Shape, batch: usize, seed: u64) -> Problem {
    let h = if std::mem::size_of::<T>() == 4 { (0.5, 1.5) } else { (0.2, 1.0) };
    draw(&Spec {
        seed,
        batch,
        t: s.t,
        e: s.e,
        d: s.d,
        o: s.o,
        s: 1,
        i: s.o,
        bcast: [s.one_c, s.one_c, s.one_step],
        weights: [1.0; 3],
        central: s.central,
        h,
    })
}

fn to<T: Real>(x: &[f64]) -> Vec<T> {
    x.iter().map(|&v| T::from_f64(v)).collect()
}

/// The four gradients of `a` and `b` hold the same bits.
#[track_caller]
fn assert_same_grads<T: Real>(a: &banded::smnn::Grads<T>, b: &banded::smnn::Grads<T>, what: &str) {
    assert_same_bits(&a.coefficients, &b.coefficients, format!("{what}: grad_coefficients"));
    assert_same_bits(&a.rhs_equation, &b.rhs_equation, format!("{what}: grad_rhs_equation"));
    assert_same_bits(&a.init_vars, &b.init_vars, format!("{what}: grad_init_vars"));
    assert_same_bits(&a.steps, &b.steps, format!("{what}: grad_steps"));
}

/// The batch against each system alone, bitwise.
fn check_bitwise<T: Real>(p: &Problem, params: &Params) {
    let (c, r, v, h, gu) = (to::<T>(&p.c), to::<T>(&p.r), to::<T>(&p.v), to::<T>(&p.h), to::<T>(&p.grad_u));
    let batch = p.batch;
    let all = layer(p, true);
    let inputs = Inputs { coefficients: &c, rhs_equation: &r, init_vars: &v, steps: &h };
    let mut fwd = all.forward(inputs, params).unwrap();
    let g = fwd.backward(&gu, params).unwrap();
    // Into reused gradient storage holding garbage (and of other lengths): the same bits.
    let mut g2 = banded::smnn::Grads { coefficients: vec![T::nan(); 3], rhs_equation: vec![T::nan(); 1000], init_vars: vec![], steps: vec![T::one(); 7] };
    fwd.backward_into(&gu, params, &mut g2).unwrap();
    assert_same_grads(&g2, &g, "backward_into reused storage");
    // Storage of the right size full of NaN: every entry is written.
    for v in [&mut g2.coefficients, &mut g2.rhs_equation, &mut g2.init_vars, &mut g2.steps] {
        v.fill(T::nan());
    }
    fwd.backward_into(&gu, params, &mut g2).unwrap();
    assert_same_grads(&g2, &g, "backward_into over NaN");

    let one = layer(&Problem { batch: 1, ..p.clone() }, true);
    let lens = [c.len() / batch, r.len() / batch, v.len() / batch, h.len() / batch, p.n()];
    let mut ws = Workspace::new();
    for s in 0..batch {
        let part = |x: &[T], len: usize| x[s * len..(s + 1) * len].to_vec();
        let (cs1, rs1, vs1, hs1, gs1) = (part(&c, lens[0]), part(&r, lens[1]), part(&v, lens[2]), part(&h, lens[3]), part(&gu, lens[4]));
        let x1 = Inputs { coefficients: &cs1, rhs_equation: &rs1, init_vars: &vs1, steps: &hs1 };
        let f1 = one.forward_with(x1, params, ws).unwrap();
        let what = format!("{} batch={batch} T={} D={} O={} E={} central={} system {s}", T::NAME, p.t, p.d, p.o, p.e, p.central);
        assert_same_bits(f1.u(), &fwd.u()[s * lens[4]..(s + 1) * lens[4]], format!("u, {what}"));
        let g1 = f1.backward(&gs1, params).unwrap();
        assert_same_bits(&g1.coefficients, &part(&g.coefficients, lens[0]), format!("grad_coefficients, {what}"));
        assert_same_bits(&g1.rhs_equation, &part(&g.rhs_equation, lens[1]), format!("grad_rhs_equation, {what}"));
        assert_same_bits(&g1.init_vars, &part(&g.init_vars, lens[2]), format!("grad_init_vars, {what}"));
        assert_same_bits(&g1.steps, &part(&g.steps, lens[3]), format!("grad_steps, {what}"));
        ws = f1.into_workspace();
    }
}

fn run<T: Real>() {
    let mut seen = BTreeSet::new();
    for (i, &(shape, layout, par)) in CASES.iter().enumerate() {
        let params = Params::default().with_par(par);
        // The smallest batch in the layout (the dense reference is the cost).
        let batch = sizes_for::<T>(layout, shape.kd(), &params, 8 * base_lanes::<T>(&params))[0];
        let p = problem::<T>(shape, batch, i as u64);
        assert_eq!(layer(&p, true).kd(), shape.kd());
        assert_eq!(layout_of::<T>(batch, shape.kd(), &params), layout);
        seen.insert(format!("{layout:?}"));
        check_bitwise::<T>(&p, &params);
        let (tally, _) = check::<T>(&p, true, &params);
        tally.assert_mostly_full(&format!("{} {shape:?} batch {batch}", T::NAME), 0.8);
    }
    assert_eq!(seen, LAYOUTS.iter().map(|l| format!("{l:?}")).collect(), "{}: layouts reached", T::NAME);
}

#[test]
fn f64_packed_batches_match_each_system_alone_and_the_reference() {
    run::<f64>();
}

#[test]
fn f32_packed_batches_match_each_system_alone_and_the_reference() {
    run::<f32>();
}

/// Systems long enough that each pack is assembled, factored and substituted in several cache
/// windows (the assembly fills each window just before the factorization takes it; the
/// backward substitution walks the windows from the end): bitwise each system alone. The
/// dense reference is O(n³) at these sizes and is left to the cases above.
fn long<T: Real>() {
    // n = 1080 (kd 11) and 960 (central, kd 12): several windows of a few hundred columns.
    for (i, (shape, par)) in [(shape(120, 3, 3, 3, false, false, false), Par::Seq), (shape(80, 3, 4, 3, true, false, false), TWO)].into_iter().enumerate() {
        // Alone, systems this long would be split into chunks (`Partitions::Auto`), with other
        // bits: this test is about the packs' windows.
        let params = Params::default().with_par(par).with_partitions(Partitions::Off);
        let batch = sizes_for::<T>(Some((false, Tail::Padded)), shape.kd(), &params, 8 * base_lanes::<T>(&params))[0];
        assert!(layout_of::<T>(batch, shape.kd(), &params).is_some(), "runs in packs");
        check_bitwise::<T>(&problem::<T>(shape, batch, 100 + i as u64), &params);
    }
}

#[test]
fn long_systems_in_several_windows_match_each_system_alone() {
    long::<f64>();
    long::<f32>();
}
