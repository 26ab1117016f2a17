//! O(T) scaling of the S-MNN layer against the dense formulation of the original MNN: one
//! system (D = O = E = 3) with T from 10 to 100 000 (log-spaced), forward + backward through
//! the banded layer and through a dense normal-equations solve (faer's dense Cholesky, run only
//! while a call is predicted to stay under 8 s and 2 GB), with time and peak heap memory.
//!
//! Memory is measured, not estimated: the binary's global allocator counts the bytes in use,
//! and each call reports its peak above what was allocated before it (the inputs excluded).
//!
//! ```sh
//! cargo run --release --example scaling            # figure in figures/scaling.svg
//! cargo run --release --example scaling -- OUT_DIR [--quick]
//! ```
//!
//! Ends with `summary: exp_time_banded=… exp_mem_banded=… exp_time_dense=… exp_mem_dense=…
//! t_banded_1e5_s=…`.

mod alloc;
#[path = "../common/mod.rs"]
mod common;
mod measure;

use banded::Params;
use common::{Res, args, loglog_slope, write_svg};
use measure::{DenseLimits, Point, log_space, sweep};
use plotters::prelude::*;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

const USAGE: &str = "usage: scaling [OUT_DIR] [--quick] (default OUT_DIR: figures)";

/// The fitted exponents: `(time, memory)` of the banded layer over the largest two decades of
/// T, and of the dense solve over its (up to) four largest T.
pub fn exponents(points: &[Point]) -> ((f64, f64), (f64, f64)) {
    let t_max = points.iter().map(|p| p.t).max().unwrap_or(1);
    let big: Vec<&Point> = points.iter().filter(|p| p.t * 100 >= t_max).collect();
    let x: Vec<f64> = big.iter().map(|p| p.t as f64).collect();
    let banded = (
        loglog_slope(&x, &big.iter().map(|p| p.banded_s).collect::<Vec<_>>()),
        loglog_slope(
            &x,
            &big.iter()
                .map(|p| p.banded_bytes as f64)
                .collect::<Vec<_>>(),
        ),
    );
    let dense_pts: Vec<(f64, f64, f64)> = points
        .iter()
        .filter_map(|p| p.dense.map(|(s, b)| (p.t as f64, s, b as f64)))
        .collect();
    let last = &dense_pts[dense_pts.len().saturating_sub(4)..];
    let x: Vec<f64> = last.iter().map(|p| p.0).collect();
    let dense = (
        loglog_slope(&x, &last.iter().map(|p| p.1).collect::<Vec<_>>()),
        loglog_slope(&x, &last.iter().map(|p| p.2).collect::<Vec<_>>()),
    );
    (banded, dense)
}

fn main() -> Res {
    let args = args("figures", USAGE)?;
    let params = Params::default();
    let (ts, limits, min_time) = if args.quick {
        (
            log_space(10, 1000, 5),
            DenseLimits {
                max_seconds: 0.5,
                max_bytes: 1 << 28,
            },
            0.02,
        )
    } else {
        (
            log_space(10, 100_000, 17),
            DenseLimits {
                max_seconds: 8.0,
                max_bytes: 2 << 30,
            },
            0.5,
        )
    };
    let t0 = std::time::Instant::now();
    println!("S-MNN scaling: one system, D = O = E = 3 (n = 9T unknowns), forward + backward, f64");
    println!(
        "banded: this crate's layer (band kd = 11); dense: normal equations + faer dense Cholesky"
    );
    println!(
        "time: fastest of repeated runs; memory: peak heap bytes of one call (counting allocator)"
    );
    println!();
    println!("| T | banded time | banded memory | dense time | dense memory | max rel diff of u |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let points = sweep(&ts, limits, min_time, &params, |p| {
        let (dt, dm, ag) = match (p.dense, p.agreement) {
            (Some((s, b)), Some(a)) => (fmt_s(s), fmt_bytes(b), format!("{a:.1e}")),
            _ => ("—".into(), "—".into(), "—".into()),
        };
        println!(
            "| {} | {} | {} | {dt} | {dm} | {ag} |",
            p.t,
            fmt_s(p.banded_s),
            fmt_bytes(p.banded_bytes)
        );
    })?;
    let ((etb, emb), (etd, emd)) = exponents(&points);
    let last = points.last().ok_or("no points")?;
    println!();
    println!("fitted exponents (time ∝ T^p, memory ∝ T^q):");
    println!(
        "  banded: p = {etb:.2}, q = {emb:.2}  (T ≥ {})",
        last.t / 100
    );
    let dense_ts: Vec<usize> = points
        .iter()
        .filter(|p| p.dense.is_some())
        .map(|p| p.t)
        .collect();
    println!(
        "  dense:  p = {etd:.2}, q = {emd:.2}  (T = {:?})",
        &dense_ts[dense_ts.len().saturating_sub(4)..]
    );
    let path = args.out_dir.join("scaling.svg");
    figure(&path, &points)?;
    println!("figure: {}", path.display());
    println!("time: {:.1} s", t0.elapsed().as_secs_f64());
    println!(
        "summary: exp_time_banded={etb:.2} exp_mem_banded={emb:.2} exp_time_dense={etd:.2} exp_mem_dense={emd:.2} t_banded_{}_s={:.4}",
        if last.t == 100_000 {
            "1e5".to_string()
        } else {
            last.t.to_string()
        },
        last.banded_s
    );
    Ok(())
}

fn fmt_s(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

fn fmt_bytes(b: usize) -> String {
    let b = b as f64;
    if b < 1e6 {
        format!("{:.1} kB", b / 1e3)
    } else if b < 1e9 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.2} GB", b / 1e9)
    }
}

/// Two log–log panels, time and memory against T, banded and dense.
fn figure(path: &std::path::Path, points: &[Point]) -> Res {
    let banded_col = RGBColor(31, 119, 180);
    let dense_col = RGBColor(214, 39, 40);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 460)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((1, 2));
        let t_lo = points.first().map_or(10.0, |p| p.t as f64) / 1.3;
        let t_hi = points.last().map_or(1e5, |p| p.t as f64) * 1.3;
        type Get = fn(&Point) -> (f64, Option<f64>);
        let series: [(&str, &str, Get); 2] = [
            ("time", "seconds (forward + backward)", |p| {
                (p.banded_s, p.dense.map(|d| d.0))
            }),
            ("memory", "peak heap bytes", |p| {
                (p.banded_bytes as f64, p.dense.map(|d| d.1 as f64))
            }),
        ];
        for (panel, (name, unit, get)) in panels.iter().zip(series) {
            let banded: Vec<(f64, f64)> = points.iter().map(|p| (p.t as f64, get(p).0)).collect();
            let dense: Vec<(f64, f64)> = points
                .iter()
                .filter_map(|p| get(p).1.map(|v| (p.t as f64, v)))
                .collect();
            let all = banded.iter().chain(&dense).map(|p| p.1);
            let (lo, hi) = all.fold((f64::INFINITY, 0.0f64), |(l, h), v| (l.min(v), h.max(v)));
            let mut chart = ChartBuilder::on(panel)
                .caption(
                    format!("{name}: S-MNN banded vs dense (D = O = E = 3)"),
                    ("sans-serif", 20),
                )
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(70)
                .build_cartesian_2d((t_lo..t_hi).log_scale(), (lo / 2.0..hi * 2.0).log_scale())?;
            chart
                .configure_mesh()
                .x_desc("T (steps)")
                .y_desc(unit)
                .x_label_formatter(&|v| format!("{v:.0e}"))
                .y_label_formatter(&|v| format!("{v:.0e}"))
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 16))
                .light_line_style(WHITE.mix(0.0))
                .draw()?;
            for (pts, col, label) in [
                (banded, banded_col, "banded (this crate)"),
                (dense, dense_col, "dense Cholesky (faer)"),
            ] {
                chart
                    .draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2))
                    });
                chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, col.filled())))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()?;
        }
        root.present()?;
    }
    write_svg(path, &svg)
}
