//! Closed-form validation of the S-MNN layer: six linear ODEs with fixed coefficients, solved
//! through the layer (O = 3 orders, one initial-value step holding the values, no central
//! smoothness, h = 0.01, T = 1000 on t ∈ [0, 10)), compared with their closed forms in the
//! value and its first two derivatives; then a step-size study with the observed order.
//!
//! ```sh
//! cargo run --release --example odebench            # figure in figures/odebench.svg
//! cargo run --release --example odebench -- OUT_DIR
//! ```
//!
//! Ends with `summary: max_err_u=… max_err_du=… max_err_d2u=… max_err_d2u_interior=… order_u=…
//! order_du=…`.

mod cases;
#[path = "../common/mod.rs"]
mod common;

use banded::Params;
use cases::{EDGE, Equation, O, T_END, equations, max_errors, n_steps, run_all};
use common::{Res, args, loglog_slope, padded_range, thin, tick, write_svg};
use plotters::prelude::*;

const USAGE: &str = "usage: odebench [OUT_DIR] (default OUT_DIR: figures)";
/// The step size of the main table and figure.
const H: f64 = 0.01;
/// The step-size study.
const STUDY: [f64; 4] = [0.04, 0.02, 0.01, 0.005];

fn main() -> Res {
    let args = args("figures", USAGE)?;
    let params = Params::default();
    let eqs = equations();

    let t0 = std::time::Instant::now();
    let main_run = run_all(&eqs, H, &params)?;
    println!(
        "S-MNN closed-form validation: O = {O}, one initial step (values), h = {H}, T = {}, t in [0, {T_END})",
        n_steps(H)
    );
    println!();
    println!("| equation | x(0) | max err u | max err u' | max err u'' | u'' away from the ends |");
    println!("|---|---|---:|---:|---:|---:|");
    for (eq, (_, errs)) in eqs.iter().zip(&main_run) {
        for (x0, e) in eq.inits.iter().zip(errs) {
            let x0s: Vec<String> = x0.iter().map(|v| format!("{v}")).collect();
            println!(
                "| {} | ({}) | {:.2e} | {:.2e} | {:.2e} | {:.2e} |",
                eq.name,
                x0s.join(", "),
                e.orders[0],
                e.orders[1],
                e.orders[2],
                e.d2_interior
            );
        }
    }
    let max_main = max_errors(main_run.iter().flat_map(|(_, e)| e));
    println!();
    println!(
        "(u'' away from the ends: the first and last {EDGE} steps left out; u'' is tied to the"
    );
    println!("equations only through u', and its error at the two ends is first order in h.)");
    println!();

    // Step-size study over the same interval.
    println!(
        "step-size study (max over all equations and initial conditions; order from the previous h):"
    );
    println!();
    println!(
        "| h | T | max err u | order | max err u' | order | max err u'' | order | u'' interior | order |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut study: Vec<[f64; 4]> = Vec::new();
    for (i, &h) in STUDY.iter().enumerate() {
        let m = if h == H {
            max_main
        } else {
            max_errors(run_all(&eqs, h, &params)?.iter().flat_map(|(_, e)| e))
        };
        let m = [m.orders[0], m.orders[1], m.orders[2], m.d2_interior];
        let mut row = format!("| {h} | {} |", n_steps(h));
        for o in 0..4 {
            let ord = if i == 0 {
                String::new()
            } else {
                format!(
                    "{:.2}",
                    (study[i - 1][o] / m[o]).log2() / (STUDY[i - 1] / h).log2()
                )
            };
            row += &format!(" {:.2e} | {ord} |", m[o]);
        }
        println!("{row}");
        study.push(m);
    }
    let order = |o: usize| loglog_slope(&STUDY, &study.iter().map(|m| m[o]).collect::<Vec<_>>());
    println!();
    println!(
        "observed order (least-squares slope of log error vs log h): u {:.2}, u' {:.2}, u'' {:.2}, u'' interior {:.2}",
        order(0),
        order(1),
        order(2),
        order(3)
    );

    let path = args.out_dir.join("odebench.svg");
    figure(&path, &eqs, &main_run)?;
    println!("figure: {}", path.display());
    println!("time: {:.2} s", t0.elapsed().as_secs_f64());
    println!(
        "summary: max_err_u={:.3e} max_err_du={:.3e} max_err_d2u={:.3e} max_err_d2u_interior={:.3e} order_u={:.2} order_du={:.2}",
        max_main.orders[0],
        max_main.orders[1],
        max_main.orders[2],
        max_main.d2_interior,
        order(0),
        order(1)
    );
    Ok(())
}

/// Colours of the initial conditions.
const COLORS: [RGBColor; 2] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40)];

/// The grid: one column per equation, rows u, u', u'' of variable x0 (x for scalar equations),
/// S-MNN solid, closed form dashed, one colour per initial condition.
fn figure(path: &std::path::Path, eqs: &[Equation], run: &[(Vec<f64>, Vec<cases::Errors>)]) -> Res {
    let (w, hgt) = (1800u32, 760u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, hgt)).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, grid) = root.split_vertically(36);
        top.draw(&Text::new(
        format!("S-MNN (solid) vs closed form (dashed), variable x0, h = {H}; colours: initial conditions"),
        (w as i32 / 2 - 420, 8),
        ("sans-serif", 22).into_font(),
    ))?;
        let panels = grid.split_evenly((O, eqs.len()));
        let t_n = n_steps(H);
        let labels = ["u", "u'", "u''"];
        for (k, panel) in panels.iter().enumerate() {
            let (o, c) = (k / eqs.len(), k % eqs.len());
            let (eq, (u, _)) = (&eqs[c], &run[c]);
            let d_n = eq.n_dims;
            let idx: Vec<usize> = thin(t_n, 150).collect();
            let mut curves = Vec::new();
            for (s, x0) in eq.inits.iter().enumerate() {
                let ex = &(eq.exact)(x0)[0];
                let smnn: Vec<(f64, f64)> = idx
                    .iter()
                    .map(|&t| (t as f64 * H, u[((s * t_n + t) * d_n) * O + o]))
                    .collect();
                let exact: Vec<(f64, f64)> = idx
                    .iter()
                    .map(|&t| (t as f64 * H, ex.eval(t as f64 * H, o)))
                    .collect();
                curves.push((smnn, exact));
            }
            let (lo, hi) = padded_range(
                curves
                    .iter()
                    .flat_map(|(a, b)| a.iter().chain(b).map(|p| p.1)),
                0.05,
            );
            let mut cb = ChartBuilder::on(panel);
            cb.margin(6)
                .x_label_area_size(if o == O - 1 { 40 } else { 24 })
                .y_label_area_size(if c == 0 { 62 } else { 46 });
            if o == 0 {
                cb.caption(eq.name, ("sans-serif", 20));
            }
            let mut chart = cb.build_cartesian_2d(0.0..T_END, lo..hi)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(5)
                .y_labels(5)
                .y_desc(if c == 0 { labels[o] } else { "" })
                .x_desc(if o == O - 1 { "t" } else { "" })
                .x_label_formatter(&tick)
                .y_label_formatter(&tick)
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 18))
                .draw()?;
            for (s, (smnn, exact)) in curves.into_iter().enumerate() {
                let col = COLORS[s % COLORS.len()];
                chart.draw_series(LineSeries::new(smnn, col.stroke_width(2)))?;
                chart.draw_series(DashedLineSeries::new(exact, 10, 6, BLACK.stroke_width(1)))?;
            }
        }
        root.present()?;
    }
    write_svg(path, &svg)
}
