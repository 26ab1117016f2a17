//! The S-MNN layer on batches large enough to run in packs (the normal matrices assembled in
//! lockstep straight into the lane-interleaved layout and factored window by window as they are
//! assembled) gives every system **bitwise** the result of that system alone (assembled in the
//! band layout, factored one system at a time): the same operations in the same order per
//! system. Batches straddle the pack widths (8/16 lanes f64, 16/32 f32, narrower bands twice
//! as wide), with a tail that runs outside the packs, broadcast step axes (T = 34 spans two
//! of the 32-step chunks the rows move in) and central rows;
//! the frozen operator agrees with the full layer there too.

use banded::smnn::{InputShapes, Inputs, Options, Smnn, Workspace};
use banded::{Params, Real};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Case {
    batch: usize,
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

fn check<T: Real>(case: &Case, seed: u64) {
    let Case { batch, t, d, o, e, central, one_step, one_c } = *case;
    let (ht, ct) = (if one_step { 1 } else { t - 1 }, if one_c { 1 } else { t });
    let (cs, rs, vs, hs) = ([batch, ct, e, d, o], [batch, ct, e], [batch, 1, d, o], [batch, ht]);
    let options = Options { central, n_steps: Some(t), ..Options::default() };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draw = |len: usize, lo: f64, hi: f64| (0..len).map(|_| T::from_f64(rng.random_range(lo..=hi))).collect::<Vec<T>>();
    let mut c = draw(cs.iter().product(), -1.0, 1.0);
    for k in 0..batch * ct {
        for ee in 0..e.min(d) {
            let i = (k * e + ee) * d * o + ee * o;
            c[i] = c[i] + T::from_f64(1.5);
        }
    }
    let r = draw(rs.iter().product(), -1.0, 1.0);
    let v = draw(vs.iter().product(), -1.0, 1.0);
    let h = draw(hs.iter().product(), 0.05, 0.15);
    let gu = draw(batch * t * d * o, -1.0, 1.0);
    let params = Params::default();
    let shapes = |b: usize| {
        let s = |x: &[usize]| {
            let mut x = x.to_vec();
            x[0] = b;
            x
        };
        (s(&cs), s(&rs), s(&vs), s(&hs))
    };
    let (c_s, r_s, v_s, h_s) = shapes(batch);
    let layer = Smnn::new(options, InputShapes { coefficients: &c_s, rhs_equation: &r_s, init_vars: &v_s, steps: &h_s }).unwrap();
    let inputs = Inputs { coefficients: &c, rhs_equation: &r, init_vars: &v, steps: &h };
    // Twice, the second time in the first one's storage.
    let first = layer.forward(inputs, &params).unwrap();
    let fwd = layer.forward_with(inputs, &params, first.clone().into_workspace()).unwrap();
    assert_eq!(fwd.u(), first.u(), "reused workspace");
    let g = fwd.backward(&gu, &params).unwrap();
    // Into reused gradient storage holding garbage (and of other lengths): the same bits.
    let mut g2 = banded::smnn::Grads { coefficients: vec![T::nan(); 3], rhs_equation: vec![T::nan(); 1000], init_vars: vec![], steps: vec![T::one(); 7] };
    fwd.backward_into(&gu, &params, &mut g2).unwrap();
    assert_eq!(g2, g, "backward_into reused storage");
    // Storage of the right size full of NaN: every entry is written.
    for v in [&mut g2.coefficients, &mut g2.rhs_equation, &mut g2.init_vars, &mut g2.steps] {
        v.fill(T::nan());
    }
    fwd.backward_into(&gu, &params, &mut g2).unwrap();
    assert_eq!(g2, g, "backward_into over NaN");
    // The frozen operator's forward and right-hand-side gradients, in packs too.
    let frozen = layer.freeze(&c, &h, &params).unwrap();
    assert_eq!(frozen.forward(&r, &v, &params).unwrap(), fwd.u(), "frozen forward");
    let fg = frozen.backward(&gu, &params).unwrap();
    assert_eq!((&fg.rhs_equation, &fg.init_vars), (&g.rhs_equation, &g.init_vars), "frozen backward");

    let (c1, r1, v1, h1) = shapes(1);
    let one = Smnn::new(options, InputShapes { coefficients: &c1, rhs_equation: &r1, init_vars: &v1, steps: &h1 }).unwrap();
    let lens = [c.len() / batch, r.len() / batch, v.len() / batch, h.len() / batch, t * d * o];
    let mut ws = Workspace::new();
    for s in 0..batch {
        let part = |x: &[T], len: usize| x[s * len..(s + 1) * len].to_vec();
        let (cs1, rs1, vs1, hs1, gs1) = (part(&c, lens[0]), part(&r, lens[1]), part(&v, lens[2]), part(&h, lens[3]), part(&gu, lens[4]));
        let x1 = Inputs { coefficients: &cs1, rhs_equation: &rs1, init_vars: &vs1, steps: &hs1 };
        let f1 = one.forward_with(x1, &params, ws).unwrap();
        let what = format!("{} batch={batch} T={t} D={d} O={o} E={e} central={central} one_step={one_step} one_c={one_c} system {s}", T::NAME);
        assert_eq!(f1.u(), &fwd.u()[s * lens[4]..(s + 1) * lens[4]], "u, {what}");
        let g1 = f1.backward(&gs1, &params).unwrap();
        assert_eq!(g1.coefficients, part(&g.coefficients, lens[0]), "grad_coefficients, {what}");
        assert_eq!(g1.rhs_equation, part(&g.rhs_equation, lens[1]), "grad_rhs_equation, {what}");
        assert_eq!(g1.init_vars, part(&g.init_vars, lens[2]), "grad_init_vars, {what}");
        assert_eq!(g1.steps, part(&g.steps, lens[3]), "grad_steps, {what}");
        ws = f1.into_workspace();
    }
}

#[test]
fn packed_batches_match_each_system_alone_bitwise() {
    let cases = [
        // kd = 11 (> 8): 8 f64 / 16 f32 lanes; 19 = 2·8 + 3 and 35 = 2·16 + 3.
        Case { batch: 19, t: 12, d: 3, o: 3, e: 3, central: false, one_step: false, one_c: false },
        Case { batch: 35, t: 9, d: 3, o: 3, e: 4, central: false, one_step: true, one_c: false },
        // kd ≤ 8: 16 f64 / 32 f32 lanes; tails of 4 (one at a time) and 12 (a padded pack).
        Case { batch: 20, t: 10, d: 1, o: 3, e: 1, central: false, one_step: false, one_c: false },
        Case { batch: 44, t: 7, d: 2, o: 2, e: 2, central: true, one_step: false, one_c: true },
        // Central rows with a wider band (kd = 2b).
        Case { batch: 17, t: 8, d: 2, o: 4, e: 2, central: true, one_step: true, one_c: false },
        // Broadcast coefficients over two row chunks.
        Case { batch: 21, t: 34, d: 3, o: 3, e: 3, central: false, one_step: false, one_c: true },
    ];
    for (i, case) in cases.iter().enumerate() {
        check::<f64>(case, i as u64);
        check::<f32>(case, 100 + i as u64);
    }
}
