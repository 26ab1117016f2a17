//! Lorenz equation discovery with the S-MNN layer (Chen et al., ICLR 2025, §5).
//!
//! A Lorenz trajectory (σ = 10, ρ = 28, β = 8/3, from (1, 1, 1), h = 0.01, 10 050 steps,
//! fourth-order Runge–Kutta) is cut into windows of 50 steps. Each variable of each window is
//! one S-MNN system (D = 1, O = 3, coefficients (0, 1, 0): u' = Θ(x)ξ with the quadratic
//! library Θ(x) = (1, x, y, z, x², xy, xz, y², yz, z²) evaluated on the data), its initial
//! value the window's first sample. The loss is the mean squared error of the values; its
//! gradient reaches ξ through the layer's backward with respect to `rhs_equation`
//! (∂ℓ/∂ξ = Θᵀ ∂ℓ/∂rhs). The left-hand side never changes, so it is factored once
//! (`Smnn::freeze`) and every step costs two banded solves. Adam; sequential thresholding
//! (coefficients below 0.1 in magnitude are zeroed and frozen between rounds).
//!
//! ```sh
//! cargo run --release --example lorenz            # figure in figures/lorenz.svg
//! cargo run --release --example lorenz -- OUT_DIR [--quick]
//! ```
//!
//! Ends with `summary: max_rel_err=… spurious=… ms_per_step=…`.

#![allow(clippy::needless_range_loop)]

#[path = "../common/mod.rs"]
mod common;
mod discover;

use common::{Res, args, padded_range, tick, write_svg};
use discover::{Config, K, TERMS, VARS, discover, equation, rk4, score, true_xi};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;

const USAGE: &str = "usage: lorenz [OUT_DIR] [--quick] (default OUT_DIR: figures)";

fn main() -> Res {
    let args = args("figures", USAGE)?;
    let cfg = if args.quick { Config::quick() } else { Config::full() };
    let truth = true_xi();
    let data = rk4(&truth, [1.0, 1.0, 1.0], cfg.h, cfg.n_samples);
    println!(
        "Lorenz discovery: {} samples (h = {}), {} windows of {} steps, library of {K} terms, {} rounds x {} Adam steps",
        cfg.n_samples,
        cfg.h,
        cfg.n_samples / cfg.window,
        cfg.window,
        cfg.rounds,
        cfg.steps_per_round
    );
    // Drawn only on a terminal (indicatif hides itself otherwise).
    let bar = ProgressBar::new(cfg.total_steps() as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} steps, {msg} [{elapsed_precise}]",
    )?);
    let out = discover(&data, &cfg, |step, loss| {
        if step % 20 == 0 {
            bar.set_position(step as u64);
            bar.set_message(format!("loss {loss:.3e}"));
        }
    })?;
    bar.finish_and_clear();

    println!(
        "batch of {} systems (T = {}, D = 1, O = 3); left-hand side factored once in {:.2} ms",
        out.batch, cfg.window, out.factor_ms
    );
    println!(
        "loss (MSE of the values): discovered {:.4e}, true coefficients {:.4e}",
        out.loss, out.loss_true
    );
    println!();
    println!("| | true | discovered |");
    println!("|---|---|---|");
    for d in 0..3 {
        println!(
            "| {} | {} | {} |",
            VARS[d],
            equation(&truth, d),
            equation(&out.xi, d)
        );
    }
    println!();
    println!("| coefficient | true | discovered | relative error |");
    println!("|---|---:|---:|---:|");
    for d in 0..3 {
        for k in 0..K {
            if truth[d][k] != 0.0 {
                let rel = (out.xi[d][k] - truth[d][k]) / truth[d][k];
                println!(
                    "| {}' : {} | {:.4} | {:.4} | {:+.3}% |",
                    VARS[d],
                    TERMS[k],
                    truth[d][k],
                    out.xi[d][k],
                    100.0 * rel
                );
            }
        }
    }
    let (max_rel, spurious) = score(&out.xi);
    println!();
    println!(
        "time per optimisation step: {:.3} ms ({} steps)",
        out.ms_per_step,
        cfg.total_steps()
    );

    let path = args.out_dir.join("lorenz.svg");
    let found = rk4(&out.xi, [1.0, 1.0, 1.0], cfg.h, cfg.n_samples);
    figure(&path, &data, &found)?;
    println!("figure: {}", path.display());
    println!(
        "summary: max_rel_err={max_rel:.3e} spurious={spurious} ms_per_step={:.3}",
        out.ms_per_step
    );
    Ok(())
}

/// x–z plane: the training trajectory and the discovered system re-simulated from (1, 1, 1).
fn figure(path: &std::path::Path, data: &[[f64; 3]], found: &[[f64; 3]]) -> Res {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((1, 2));
        let (xlo, xhi) = padded_range(data.iter().chain(found).map(|p| p[0]), 0.05);
        let (zlo, zhi) = padded_range(data.iter().chain(found).map(|p| p[2]), 0.05);
        let pairs = [
            (
                "true Lorenz system (RK4 data)",
                data,
                RGBColor(31, 119, 180),
            ),
            (
                "discovered system, re-simulated (RK4)",
                found,
                RGBColor(214, 39, 40),
            ),
        ];
        for (panel, (title, traj, col)) in panels.iter().zip(pairs) {
            let mut chart = ChartBuilder::on(panel)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d(xlo..xhi, zlo..zhi)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("x")
                .y_desc("z")
                .x_label_formatter(&tick)
                .y_label_formatter(&tick)
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 16))
                .draw()?;
            chart.draw_series(LineSeries::new(
                traj.iter().step_by(2).map(|p| (p[0], p[2])),
                col.mix(0.8).stroke_width(1),
            ))?;
        }
        root.present()?;
    }
    write_svg(path, &svg)
}
