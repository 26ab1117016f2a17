//! Criterion benchmarks of the S-MNN layer: forward, and forward + backward, in f64 (each run
//! in the previous run's storage, `Smnn::forward_with` and `Forward::backward_into`;
//! `forward_backward_fresh` allocates anew).
//!
//! - `batch128_T1000_D3_O3_E3`: 128 systems, T = 1000, D = O = E = 3 (n = 9000, kd = 11);
//! - `batch1_T100000_D1_O3_E1`: one long system, T = 100 000, D = 1, O = 3 (n = 300 000, kd = 5).
//!
//! Inputs: coefficients uniform in [−1, 1] plus 1.5 on `(e, d = e, o = 0)`, one step of initial
//! values for every order, steps uniform in [0.05, 0.15] (as `banded bench smnn`).
//!
//! Roofline (`banded::roofline`): throughput is the bytes that must cross memory
//! (`roofline::smnn_forward`, `smnn_forward_backward`) in decimal GB/s; before a problem's first
//! benchmark runs, one line `roofline …` gives this machine's copy bandwidth at the forward +
//! backward's working set and its dgemm rate, measured then (same process, all threads), and the
//! roofline times: roofline fraction = roofline time / criterion's median.

use std::cell::{Cell, RefCell};
use std::hint::black_box;

use banded::roofline::{self, Peak};
use banded::smnn::{Grads, InputShapes, Inputs, Options, Smnn, Workspace};
use banded::{Par, Params};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Problem {
    layer: Smnn,
    c: Vec<f64>,
    r: Vec<f64>,
    v: Vec<f64>,
    h: Vec<f64>,
    gu: Vec<f64>,
}

fn problem(batch: usize, t: usize, d: usize, o: usize, e: usize) -> Problem {
    let cs = [batch, t, e, d, o];
    let (rs, vs, hs) = ([batch, t, e], [batch, 1, d, o], [batch, t - 1]);
    let layer = Smnn::new(
        Options::default(),
        InputShapes { coefficients: &cs, rhs_equation: &rs, init_vars: &vs, steps: &hs },
    )
    .expect("valid shapes");
    let mut rng = StdRng::seed_from_u64(0);
    let mut draw = |s: &[usize], lo: f64, hi: f64| -> Vec<f64> {
        (0..s.iter().product::<usize>()).map(|_| rng.random_range(lo..=hi)).collect()
    };
    let mut c = draw(&cs, -1.0, 1.0);
    let b = d * o;
    for row in 0..batch * t {
        for ee in 0..e.min(d) {
            c[(row * e + ee) * b + ee * o] += 1.5;
        }
    }
    let r = draw(&rs, -1.0, 1.0);
    let v = draw(&vs, -1.0, 1.0);
    let h = draw(&hs, 0.05, 0.15);
    let gu = draw(&layer.u_shape(), -1.0, 1.0);
    Problem { layer, c, r, v, h, gu }
}

/// Prints, the first time it is called (`printed`), the roofline of `layer`'s forward and
/// forward + backward in f64: the peak measured now (all threads; the bandwidth at the forward +
/// backward's working set) and both roofline times. Not under `cargo test --benches`.
fn print_roofline(printed: &Cell<bool>, name: &str, layer: &Smnn) {
    let args: Vec<String> = std::env::args().collect();
    if printed.replace(true) || !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test") {
        return;
    }
    let (fwd, both) = (roofline::smnn_forward(layer, 8), roofline::smnn_forward_backward(layer, 8));
    match Peak::measure::<f64>(both.working_set as usize, Par::rayon(0)) {
        Ok(peak) => println!(
            "roofline smnn/{name} float64: copy {:.1} GB/s at {:.1} MB, gemm {:.1} GFLOP/s, {} threads; \
             forward {:.1} MB {:.1} MFLOP roofline {:.3} ms; forward_backward {:.1} MB {:.1} MFLOP roofline {:.3} ms",
            peak.bytes_per_s / 1e9,
            peak.working_set as f64 / 1e6,
            peak.flops_per_s / 1e9,
            peak.threads,
            fwd.bytes / 1e6,
            fwd.flops / 1e6,
            fwd.time_floor(&peak) * 1e3,
            both.bytes / 1e6,
            both.flops / 1e6,
            both.time_floor(&peak) * 1e3
        ),
        Err(e) => println!("roofline smnn/{name}: not measured: {e}"),
    }
}

fn bench(c: &mut Criterion) {
    let params = Params::default().with_check_finite(false);
    let mut group = c.benchmark_group("smnn");
    group.sample_size(10);
    for (name, p) in
        [("batch128_T1000_D3_O3_E3", problem(128, 1000, 3, 3, 3)), ("batch1_T100000_D1_O3_E1", problem(1, 100_000, 1, 3, 1))]
    {
        let x = Inputs { coefficients: &p.c, rhs_equation: &p.r, init_vars: &p.v, steps: &p.h };
        // The storage of each run is left for the next (`forward_with`), as in a training loop.
        let ws = RefCell::new(Workspace::new());
        let printed = Cell::new(false);
        let (fwd, both) = (roofline::smnn_forward(&p.layer, 8), roofline::smnn_forward_backward(&p.layer, 8));
        group.throughput(Throughput::BytesDecimal(fwd.bytes as u64));
        group.bench_function(format!("forward/{name}"), |bch| {
            print_roofline(&printed, name, &p.layer);
            bch.iter(|| {
                let f = p.layer.forward_with(black_box(x), &params, ws.take()).expect("forward");
                ws.replace(black_box(f).into_workspace());
            })
        });
        let grads = RefCell::new(Grads::default());
        group.throughput(Throughput::BytesDecimal(both.bytes as u64));
        group.bench_function(format!("forward_backward/{name}"), |bch| {
            print_roofline(&printed, name, &p.layer);
            bch.iter(|| {
                let mut f = p.layer.forward_with(black_box(x), &params, ws.take()).expect("forward");
                f.backward_into(&p.gu, &params, &mut grads.borrow_mut()).expect("backward");
                ws.replace(black_box(f).into_workspace());
            })
        });
        // Fresh storage every run (`forward`): the OS maps and zeroes the factor's pages each time.
        group.bench_function(format!("forward_backward_fresh/{name}"), |bch| {
            print_roofline(&printed, name, &p.layer);
            bch.iter(|| {
                let f = p.layer.forward(black_box(x), &params).expect("forward");
                black_box(f.backward(&p.gu, &params).expect("backward"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
