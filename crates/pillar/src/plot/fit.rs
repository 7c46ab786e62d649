//! The fit figure of `pillar fit --plot`.

use std::path::Path;

use anyhow::Result;
use pillar_fit::{FitReport, Method, Polynomial};
use plotters::prelude::*;

use super::{FONT, draw_error, legend, register_font};

/// The paper's Appendix B figure: the target, the float least-squares fit, that fit with its
/// coefficients truncated to `P` bits, and the quantization-aware fit, over `[-1.5R, 1.5R]`.
/// The file is replaced atomically.
pub(crate) fn fit(report: &FitReport, path: &Path) -> Result<()> {
    pillar_nn::write_atomic_with(path, |tmp| draw_fit(report, tmp))
}

fn draw_fit(report: &FitReport, path: &Path) -> Result<()> {
    register_font();
    let r = report.range;
    let (x0, x1) = (-1.5 * r, 1.5 * r);
    let samples = 600;
    let xs: Vec<f64> = (0..=samples)
        .map(|i| x0 + (x1 - x0) * i as f64 / samples as f64)
        .collect();
    let target: Vec<f64> = xs.iter().map(|&x| report.target.eval(x)).collect();
    let (t_min, t_max) = target
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let pad = 0.35 * (t_max - t_min).max(1.0);
    let (y0, y1) = (t_min - pad, t_max + pad);

    let float = Polynomial::new(report.float_coefficients.clone());
    let truncated = Polynomial::from_integers(&report.truncated_float_integers, report.bits);
    let mut curves: Vec<(String, Vec<f64>, RGBColor, u32)> = vec![
        (report.target.to_string(), target, BLACK, 3),
        (
            "float least squares".to_string(),
            xs.iter().map(|&x| float.eval(x)).collect(),
            RGBColor(31, 119, 180),
            2,
        ),
        (
            format!("float fit truncated to {} bits", report.bits),
            xs.iter().map(|&x| truncated.eval(x)).collect(),
            RGBColor(255, 127, 14),
            2,
        ),
    ];
    if report.method == Method::Exact {
        let quantized = report.polynomial();
        curves.push((
            format!("quantization-aware fit ({} bits)", report.bits),
            xs.iter().map(|&x| quantized.eval(x)).collect(),
            RGBColor(214, 39, 40),
            2,
        ));
    }

    let root = BitMapBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let title = format!(
        "{}: degree-{} fits on [-{r}, {r}], coefficients in multiples of 2^-{}",
        report.target, report.degree, report.bits
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("x (grey lines: the fitting range)")
        .y_desc("f(x), p(x)")
        .label_style((FONT, 16))
        .draw()
        .map_err(draw_error)?;
    // The fitting range.
    for edge in [-r, r] {
        chart
            .draw_series(LineSeries::new(
                [(edge, y0), (edge, y1)],
                RGBColor(150, 150, 150).stroke_width(2),
            ))
            .map_err(draw_error)?;
    }
    for (label, ys, color, width) in curves {
        let style = color.stroke_width(width);
        // Draw only inside the plotted window: outside the range polynomials run off it.
        let mut first = true;
        for segment in segments(&xs, &ys, y0, y1) {
            let series = chart
                .draw_series(LineSeries::new(segment, style))
                .map_err(draw_error)?;
            if first {
                series
                    .label(label.clone())
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
                first = false;
            }
        }
    }
    legend(&mut chart)?;
    root.present().map_err(draw_error)?;
    Ok(())
}

/// Splits a curve into the runs of points whose value lies in `[lo, hi]`.
fn segments(xs: &[f64], ys: &[f64], lo: f64, hi: f64) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for (&x, &y) in xs.iter().zip(ys) {
        if (lo..=hi).contains(&y) {
            current.push((x, y));
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_break_where_the_curve_leaves_the_window() {
        let xs = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let ys = [0.0, 1.0, 9.0, 1.0, 1.0, -9.0];
        let s = segments(&xs, &ys, -2.0, 2.0);
        assert_eq!(
            s,
            vec![vec![(0.0, 0.0), (1.0, 1.0)], vec![(3.0, 1.0), (4.0, 1.0)]]
        );
    }
}
