//! Helpers shared by the examples (and by their reduced tests in `tests/`).
#![allow(dead_code)]

use std::error::Error;
use std::path::PathBuf;

/// The result type of the examples' `main`.
pub type Res<T = ()> = std::result::Result<T, Box<dyn Error>>;

/// Command line of an example: `[OUT_DIR] [--quick]`.
#[derive(Debug, Clone)]
pub struct Args {
    /// Folder the figures are written to (created if missing).
    pub out_dir: PathBuf,
    /// Run the reduced configuration (the one the tests check).
    pub quick: bool,
}

/// Parses `[OUT_DIR] [--quick]` with `default_dir` as the default folder; `-h`/`--help` prints
/// `usage` and exits.
pub fn args(default_dir: &str, usage: &str) -> Res<Args> {
    let mut out = Args {
        out_dir: PathBuf::from(default_dir),
        quick: false,
    };
    let mut positional = 0;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--quick" => out.quick = true,
            "-h" | "--help" => {
                println!("{usage}");
                std::process::exit(0);
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{usage}").into()),
            s => {
                if positional > 0 {
                    return Err(format!("unexpected argument {s}\n{usage}").into());
                }
                out.out_dir = PathBuf::from(s);
                positional += 1;
            }
        }
    }
    std::fs::create_dir_all(&out.out_dir).map_err(|e| {
        format!(
            "cannot create the output folder {}: {e}",
            out.out_dir.display()
        )
    })?;
    Ok(out)
}

/// Least-squares slope of `ln y` against `ln x` (the exponent `p` of `y ≈ c·x^p`); NaN for
/// fewer than two points.
pub fn loglog_slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    if n < 2 {
        return f64::NAN;
    }
    let lx: Vec<f64> = x[..n].iter().map(|v| v.ln()).collect();
    let ly: Vec<f64> = y[..n].iter().map(|v| v.ln()).collect();
    let (mx, my) = (
        lx.iter().sum::<f64>() / n as f64,
        ly.iter().sum::<f64>() / n as f64,
    );
    let sxy: f64 = lx.iter().zip(&ly).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = lx.iter().map(|a| (a - mx) * (a - mx)).sum();
    sxy / sxx
}

/// `(min, max)` of `v` widened by `pad` of the range on each side (a flat range gets ±1e-3·max(1, |v|)).
pub fn padded_range(v: impl IntoIterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = v
        .into_iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
            (l.min(x), h.max(x))
        });
    if !lo.is_finite() || !hi.is_finite() {
        return (-1.0, 1.0);
    }
    let w = hi - lo;
    if w <= 1e-12 * hi.abs().max(1.0) {
        let d = 1e-3 * hi.abs().max(1.0);
        return (lo - d, hi + d);
    }
    (lo - pad * w, hi + pad * w)
}

/// Every `k`-th index of `0..n` plus the last one, so that at most about `max_points` remain.
pub fn thin(n: usize, max_points: usize) -> impl Iterator<Item = usize> {
    let k = n.div_ceil(max_points.max(1)).max(1);
    (0..n)
        .step_by(k)
        .chain((n > 0 && !(n - 1).is_multiple_of(k)).then(|| n - 1))
}

/// A tick label for axes with ranges between about 1e-3 and 1e4: up to 4 decimals, trailing
/// zeros dropped, rounding noise shown as `0`.
pub fn tick(v: &f64) -> String {
    if v.abs() < 1e-9 {
        return "0".into();
    }
    if v.abs() >= 1e4 {
        return format!("{v:.0e}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// Writes the SVG text `svg` to `path`, merging runs of consecutive `<polyline>` elements with
/// identical attributes into one `<path>` (dashed series are one polyline per dash in plotters;
/// merged, the file is about half the size and draws the same).
pub fn write_svg(path: &std::path::Path, svg: &str) -> Res {
    let mut out = String::with_capacity(svg.len());
    // The attributes and the point lists of the current run.
    let mut run: Option<(String, Vec<String>)> = None;
    let flush = |run: &mut Option<(String, Vec<String>)>, out: &mut String| {
        if let Some((attrs, parts)) = run.take() {
            if parts.len() == 1 {
                out.push_str(&format!("<polyline {attrs} points=\"{}\"/>\n", parts[0]));
            } else {
                let d: Vec<String> = parts
                    .iter()
                    .filter_map(|p| {
                        let mut pts = p.split_whitespace();
                        let first = pts.next()?;
                        let rest: Vec<&str> = pts.collect();
                        Some(if rest.is_empty() {
                            format!("M{first}")
                        } else {
                            format!("M{first}L{}", rest.join(" "))
                        })
                    })
                    .collect();
                out.push_str(&format!("<path {attrs} d=\"{}\"/>\n", d.concat()));
            }
        }
    };
    for line in svg.lines() {
        let parsed = line
            .strip_prefix("<polyline ")
            .and_then(|l| l.strip_suffix("\"/>"))
            .and_then(|l| l.split_once(" points=\""))
            .map(|(attrs, pts)| (attrs.to_string(), pts.trim().to_string()));
        match parsed {
            Some((attrs, pts)) => match &mut run {
                Some((a, parts)) if *a == attrs => parts.push(pts),
                _ => {
                    flush(&mut run, &mut out);
                    run = Some((attrs, vec![pts]));
                }
            },
            None => {
                flush(&mut run, &mut out);
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    flush(&mut run, &mut out);
    std::fs::write(path, out).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}
