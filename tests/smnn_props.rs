//! Property tests: the S-MNN layer (forward, all four gradients, frozen path) against the dense
//! reference of `common/smnn_ref.rs` (rows of `A` built explicitly, faer QR), random shapes,
//! broadcasting, weights and `central`, in f64 and f32, with the error bounds of
//! `common/smnn_check.rs` (first-order bounds, not tuned; f32's are looser by ε_f32/ε_f64).
//!
//! - `*_matches_dense_reference`: batches of 1 to 3 systems (one at a time), every shape.
//! - `*_packs_match_dense_reference`: batches that run in every layout of [`pack_lanes`] —
//!   single- and double-width packs (8/16 f64, 16/32 f32 lanes) with no tail, a padded tail
//!   pack and single systems after the packs, and one at a time — on small systems.
//!
//! No case passes unchecked: a system whose forward bound is vacuous (f32, `c·ε·κ ≥ 1/2`) gets
//! the backward-error check of `u` instead, and a system the layer reports as not positive
//! definite must be singular by the reference. Each test counts how its systems were checked
//! and requires the full forward-error check for at least 80% of them; the shapes are drawn
//! so that f32 problems are well-conditioned: f32's forward bound needs `κ₂(M) ≲ 4·10⁴`, which
//! steps near 1 and `O ≤ 4` give (the Taylor rows scale column `o` by `h^o`; measured, about
//! 1% of such systems exceed it, against 15% for steps in [0.2, 1] and `O ≤ 5`).

mod common;
#[path = "common/smnn_ref.rs"]
mod smnn_ref;
#[path = "common/smnn_check.rs"]
mod smnn_check;

use std::sync::Mutex;

use banded::band::pack_lanes;
use banded::{Kernel, Par, Params, Partitions, Real};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestRunner;

use common::lanes::{base_lanes, layout_of, sizes_for, Layout, LAYOUTS, WIDE_MAX_KD};
use smnn_check::{check, Tally};
use smnn_ref::{draw, Problem, Spec};

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    batch: usize,
    t: usize,
    e: usize,
    d: usize,
    o: usize,
    s: usize,
    i: usize,
    bcast: [bool; 3],
    weights: [f64; 3],
    central: bool,
    give_t: bool,
    /// Steps are drawn uniformly in this range.
    h: (f64, f64),
    params: Params,
}

impl Case {
    /// The case of the drawn values, with `T` given where the shapes do not tell it: when
    /// every step axis is broadcast, or the coefficients and equation right-hand sides are
    /// and `T = 2` (one step either way).
    fn with_t_where_needed(self) -> Case {
        let give_t = self.give_t || self.bcast == [true; 3] || (self.bcast[0] && self.bcast[1] && self.t == 2);
        Case { give_t, ..self }
    }
    fn problem(&self) -> Problem {
        draw(&Spec {
            seed: self.seed,
            batch: self.batch,
            t: self.t,
            e: self.e,
            d: self.d,
            o: self.o,
            s: self.s,
            i: self.i,
            bcast: self.bcast,
            weights: self.weights,
            central: self.central,
            h: self.h,
        })
    }
    /// The bandwidth of the layer's normal matrices.
    fn kd(&self) -> usize {
        let b = self.d * self.o;
        if self.central { 2 * b } else { b + self.o - 1 }
    }
}

/// The ranges a type is drawn from: the largest order `O` and the steps (see the module docs).
fn ranges<T: Real>() -> (usize, (f64, f64)) {
    if std::mem::size_of::<T>() == 4 { (4, (0.5, 1.5)) } else { (5, (0.2, 1.0)) }
}

fn weights() -> impl Strategy<Value = [f64; 3]> {
    prop_oneof![Just([1.0, 1.0, 1.0]), [0.3f64..2.0, 0.3f64..2.0, 0.3f64..2.0]]
}

/// Shapes: D 1..=4, O 2..=O_max, E ≥ D, T 2..=60 but `n = T·D·O ≤ 240` (the dense reference
/// is O(n³) in a debug build), S ≥ 1 and I ≥ 1 (initial values), batch 1..=3. T ≤ 3 is often
/// singular (few Taylor rows): it is drawn less often, in batches of one (a singular system
/// fails the whole batch), and the reference must confirm the singularity (see `check`).
fn cases<T: Real>() -> impl Strategy<Value = Case> {
    let (o_max, h) = ranges::<T>();
    (1usize..=4, 2usize..=o_max, any::<bool>())
        .prop_flat_map(|(d, o, central)| {
            let tmax = (240 / (d * o)).clamp(4, 60);
            (Just((d, o, central)), prop_oneof![1 => 2usize..=3, 4 => 4..=tmax], d..=d + 2, 1usize..=3)
        })
        .prop_flat_map(|(shape, t, e, batch)| {
            let batch = if t <= 3 { 1 } else { batch };
            let (_, o, _) = shape;
            (Just((shape, t, e, batch)), (1..=t.min(4), 1..=o), any::<[bool; 3]>(), any::<u64>(), weights(), any::<bool>())
        })
        .prop_map(move |(((d, o, central), t, e, batch), (s, i), bcast, seed, weights, give_t)| {
            Case { seed, batch, t, e, d, o, s, i, bcast, weights, central, give_t, h, params: Params::default() }
                .with_t_where_needed()
        })
}

/// Small problems (`T` 4..=8, `n = T·D·O ≤ 48` or so, D ≤ 3) in batches that run in `layout`
/// in `T`: `(D, O, central)` such that the band allows the layout (double width needs
/// `kd ≤ 8`), one or two threads, and the batch drawn among the sizes up to 8 single-width
/// packs that give the layout under those parameters. One at a time is drawn both as a batch
/// smaller than a pack and as any batch with [`Kernel::Reference`].
fn packed_cases<T: Real>(layout: Layout) -> impl Strategy<Value = Case> {
    let (o_max, h) = ranges::<T>();
    (1usize..=3, 2usize..=o_max, any::<bool>())
        .prop_filter("band too wide for double width", move |&(d, o, central)| {
            let kd = if central { 2 * d * o } else { d * o + o - 1 };
            !matches!(layout, Some((true, _))) || kd <= WIDE_MAX_KD
        })
        .prop_flat_map(|(d, o, central)| {
            let tmax = (48 / (d * o)).clamp(4, 8);
            (Just((d, o, central)), 4..=tmax, d..=d + 2)
        })
        .prop_flat_map(|(shape, t, e)| {
            let (_, o, _) = shape;
            let draws = (any::<[bool; 3]>(), any::<u64>(), weights(), any::<bool>(), any::<bool>(), any::<bool>(), any::<Index>());
            (Just((shape, t, e)), (1..=t.min(4), 1..=o), draws)
        })
        .prop_filter_map("no batch runs in this layout", move |(shape_t_e, (s, i), draws)| {
            let ((d, o, central), t, e) = shape_t_e;
            let (bcast, seed, weights, give_t, two, reference, pick) = draws;
            let kernel = if layout.is_none() && reference { Kernel::Reference } else { Kernel::Auto };
            let par = if two { Par::rayon(2) } else { Par::Seq };
            let params = Params::default().with_par(par).with_kernel(kernel);
            let c = Case { seed, batch: 1, t, e, d, o, s, i, bcast, weights, central, give_t, h, params }.with_t_where_needed();
            let sizes = sizes_for::<T>(layout, c.kd(), &params, 8 * base_lanes::<T>(&Params::default().with_par(par)));
            (!sizes.is_empty()).then(|| Case { batch: *pick.get(&sizes), ..c })
        })
}

/// With `SMNN_PRINT` set, prints how close each case came to its bound.
fn report(ty: &str, case: &Case, tally: Tally, worst: f64) {
    if std::env::var_os("SMNN_PRINT").is_some() {
        eprintln!(
            "{ty} batch={} T={} E={} D={} O={} central={}: {tally:?}, worst error/bound {worst:.3}",
            case.batch, case.t, case.e, case.d, case.o, case.central
        );
    }
}

/// Runs `cases` cases of `strategy` through [`check`] in `T`, and returns the tally.
fn run_cases<T: Real>(cases: u32, strategy: impl Strategy<Value = Case>, layout: Option<Layout>) -> Tally {
    let tally = Mutex::new(Tally::default());
    let mut runner = TestRunner::new(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases) });
    let result = runner.run(&strategy, |c| {
        if let Some(layout) = layout {
            let lanes = pack_lanes::<T>(c.batch, c.kd(), &c.params);
            prop_assert_eq!(layout_of::<T>(c.batch, c.kd(), &c.params), layout, "lanes {}", lanes);
        }
        let (t, worst) = check::<T>(&c.problem(), c.give_t, &c.params);
        report(T::NAME, &c, t, worst);
        tally.lock().unwrap().add(t);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{} {layout:?}: {e}", T::NAME);
    }
    tally.into_inner().unwrap()
}

#[test]
fn f64_matches_dense_reference() {
    run_cases::<f64>(24, cases::<f64>(), None).assert_mostly_full("f64", 0.8);
}

#[test]
fn f32_matches_dense_reference() {
    run_cases::<f32>(24, cases::<f32>(), None).assert_mostly_full("f32", 0.8);
}

/// The partitioned factorization ([`Partitions::Count`], 2 to 6 chunks, capped by `n`) in the
/// layer's forward and backward, against the reference.
#[test]
fn f64_partitioned_matches_dense_reference() {
    let strategy = (cases::<f64>(), 2usize..=6).prop_map(|(c, parts)| Case { params: c.params.with_partitions(Partitions::Count(parts)), ..c });
    run_cases::<f64>(24, strategy, None).assert_mostly_full("f64 partitioned", 0.8);
}

/// Every layout of the batch in packs (see [`packed_cases`]) against the reference.
fn packs_match<T: Real>() {
    let mut tally = Tally::default();
    for layout in LAYOUTS {
        tally.add(run_cases::<T>(3, packed_cases::<T>(layout), Some(layout)));
    }
    tally.assert_mostly_full(T::NAME, 0.8);
}

#[test]
fn f64_packs_match_dense_reference() {
    packs_match::<f64>();
}

#[test]
fn f32_packs_match_dense_reference() {
    packs_match::<f32>();
}

/// A few fixed cases across the extremes of the ranges (largest T, largest block, both
/// `central` settings), so they are always run whatever proptest draws.
#[test]
fn fixed_extremes() {
    let base = Case {
        seed: 7,
        batch: 2,
        t: 60,
        e: 1,
        d: 1,
        o: 2,
        s: 1,
        i: 1,
        bcast: [false; 3],
        weights: [1.0, 1.0, 1.0],
        central: false,
        give_t: false,
        h: (0.2, 1.0),
        params: Params::default(),
    };
    let cases = [
        base.clone(),
        Case { central: true, o: 4, ..base.clone() },
        Case { t: 12, d: 4, e: 5, o: 5, s: 2, i: 3, ..base.clone() },
        Case { t: 12, d: 4, e: 4, o: 5, s: 3, i: 5, central: true, bcast: [true, false, true], ..base.clone() },
        Case { t: 2, d: 2, e: 2, o: 3, bcast: [true; 3], give_t: true, weights: [0.5, 2.0, 0.7], ..base },
    ];
    let (mut t64, mut t32) = (Tally::default(), Tally::default());
    for c in cases {
        let p = c.problem();
        let (t, w) = check::<f64>(&p, c.give_t, &c.params);
        report("f64", &c, t, w);
        t64.add(t);
        let (t, w) = check::<f32>(&p, c.give_t, &c.params);
        report("f32", &c, t, w);
        t32.add(t);
    }
    // Every f64 system gets the forward check; f32 at least the backward one.
    assert_eq!(t64.full, t64.total(), "f64: {t64:?}");
    assert_eq!(t32.singular + t32.skipped, 0, "f32: {t32:?}");
}

/// Cases proptest once shrank a failure to (formerly in `smnn_props.proptest-regressions`).
#[test]
fn regressions() {
    // T = 2 with central rows, O = 5 and one initial value: singular in both precisions.
    let c = Case {
        seed: 123314346872348,
        batch: 1,
        t: 2,
        e: 2,
        d: 2,
        o: 5,
        s: 1,
        i: 1,
        bcast: [false; 3],
        weights: [1.0; 3],
        central: true,
        give_t: false,
        h: (0.2, 1.0),
        params: Params::default(),
    };
    // The layer reports it, and the reference confirms (`check`).
    let singular = Tally { singular: 1, ..Tally::default() };
    assert_eq!(check::<f64>(&c.problem(), c.give_t, &c.params).0, singular);
    assert_eq!(check::<f32>(&c.problem(), c.give_t, &c.params).0, singular);
}
