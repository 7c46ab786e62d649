//! `pillar fit`: the polynomial that replaces an activation, and whether the secure engine can
//! evaluate it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use pillar_fit::budget::{Budget, DEFAULT_FRAC_BITS, DEFAULT_RING_BITS, Precision};
use pillar_fit::{FitReport, FitSpec, Method, Target};

/// Arguments of `pillar fit`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct FitArgs {
    /// Activation to approximate: relu, sigmoid, silu or gelu.
    #[arg(long, default_value = "relu", value_parser = parse_target)]
    target: Target,

    /// Polynomial degree d (1-12).
    #[arg(short, long, default_value_t = 4)]
    degree: usize,

    /// Fit on [-RANGE, RANGE], sampled every 0.01.
    #[arg(short, long, default_value_t = 5.0)]
    range: f64,

    /// Fractional bits P of the coefficients, c_j = a_j / 2^P (2-30).
    #[arg(short, long, default_value_t = 10)]
    bits: u32,

    /// Plain float least squares instead of the exact integer fit.
    #[arg(long)]
    float: bool,

    /// Fractional bits f of the secure engine's fixed point, for the precision budget.
    #[arg(long, default_value_t = DEFAULT_FRAC_BITS)]
    frac_bits: u32,

    /// Ring size of the secure engine, in bits.
    #[arg(long, default_value_t = DEFAULT_RING_BITS)]
    ring_bits: u32,

    /// Largest |x| the activation sees at inference [default: the range].
    #[arg(long)]
    bound: Option<f64>,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,

    /// Also draw the target, the float fit and the quantized fit over [-1.5R, 1.5R] to a PNG.
    #[arg(long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
}

fn parse_target(s: &str) -> Result<Target, pillar_fit::FitError> {
    s.parse()
}

/// Runs `pillar fit`.
pub(crate) fn run(args: &FitArgs) -> Result<()> {
    let spec = FitSpec::new(args.target, args.degree, args.range, args.bits)?;
    let precision = Precision::new(args.ring_bits, args.frac_bits)?;
    let method = if args.float {
        Method::Float
    } else {
        Method::Exact
    };
    let bound = args.bound.unwrap_or(args.range);
    let report = FitReport::new(&spec, method, precision, bound)?;
    if let Some(stats) = &report.solver {
        tracing::debug!(
            nodes = stats.nodes,
            candidates = stats.candidates,
            float_error_ratio = stats.float_error_ratio,
            seconds = stats.seconds,
            "exact search"
        );
    }
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(path) = &args.plot {
        crate::plot::fit(&report, path)
            .with_context(|| format!("cannot draw the plot {}", path.display()))?;
        tracing::info!("plot written to {}", path.display());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report, args.plot.as_deref()));
    }
    Ok(())
}

/// The human-readable report.
fn render(r: &FitReport, plot: Option<&Path>) -> String {
    let mut out = String::new();
    let how = match r.method {
        Method::Exact => format!(
            "coefficients a_j / 2^{}, exact integer least squares",
            r.bits
        ),
        Method::Float => "float least squares".to_string(),
    };
    let _ = writeln!(
        out,
        "{} on [-{R}, {R}] ({} points), degree {}, {how}\n",
        r.target,
        r.points,
        r.degree,
        R = r.range
    );
    let scale = f64::from(r.bits).exp2();
    let _ = writeln!(
        out,
        "  {:>2}  {:>11}  {:>18}  {:>14}  {:>16}",
        "j",
        "a_j",
        "c_j",
        "float fit c_j",
        format!("truncated to {}b", r.bits)
    );
    for j in 0..=r.degree {
        let a = r
            .integers
            .as_ref()
            .map_or("-".to_string(), |a| a[j].to_string());
        let _ = writeln!(
            out,
            "  {j:>2}  {a:>11}  {:>18}  {:>14.6e}  {:>16}",
            format_coefficient(r.coefficients[j], scale),
            r.float_coefficients[j],
            r.truncated_float_integers[j]
        );
    }
    let _ = writeln!(
        out,
        "\nerror on the range: max {:.4} (at x = {}), mean {:.4}; float fit truncated to {} bits: max {:.4}",
        r.max_error, r.max_error_at, r.mean_error, r.bits, r.truncated_float_max_error
    );
    let tails: Vec<String> = r
        .tails
        .iter()
        .map(|t| format!("p({}) = {:.4}", t.x, t.value))
        .collect();
    let _ = writeln!(out, "at the edges and beyond: {}", tails.join("   "));
    if let Some(s) = &r.solver {
        let _ = writeln!(
            out,
            "optimal: exhaustive enumeration in {:.2} ms ({} nodes, {} candidate(s) compared exactly)",
            s.seconds * 1e3,
            s.nodes,
            s.candidates
        );
    }
    out.push('\n');
    out.push_str(&render_budget(&r.budget));
    if let Some(path) = plot {
        let _ = writeln!(out, "\nplot: {}", path.display());
    }
    out
}

/// Exact decimal value of `a / 2^P` when it is one; otherwise a float.
fn format_coefficient(c: f64, scale: f64) -> String {
    if (c * scale).fract() == 0.0 {
        let s = format!("{c}");
        if s.len() <= 18 {
            return s;
        }
    }
    format!("{c:.10e}")
}

fn render_budget(b: &Budget) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "secure evaluation: {}-bit ring, f = {} fractional bits, inputs |x| <= {}",
        b.ring_bits, b.frac_bits, b.bound
    );
    let _ = writeln!(
        out,
        "  {:<12} {:>5} {:>10} {:>10} {:>9} {:>14}",
        "protocol", "power", "pre-scale", "formed at", "truncate", "largest value"
    );
    for p in &b.protocols {
        for (i, s) in p.steps.iter().enumerate() {
            let name = if i == 0 { p.protocol.name() } else { "" };
            let _ = writeln!(
                out,
                "  {:<12} {:>5} {:>10} {:>10} {:>9} {:>14}",
                name,
                format!("x^{}", s.power),
                s.prescale,
                format!("2^{}", s.scale_bits),
                s.truncation,
                format!("2^{:.1}", s.max_log2)
            );
        }
    }
    let _ = writeln!(
        out,
        "  coefficient-weighted sum at 2^{}: 2^{:.1}",
        2 * b.frac_bits,
        b.combine_log2
    );
    let verdict = if b.fits {
        format!("fits, {:.1} bits to spare", b.headroom_bits)
    } else {
        format!("OVERFLOWS by {:.1} bits", -b.headroom_bits)
    };
    let _ = writeln!(
        out,
        "  largest intermediate 2^{:.1} of 2^{}: {verdict}",
        b.max_log2,
        b.ring_bits - 1
    );
    for p in &b.protocols {
        let _ = writeln!(
            out,
            "  {:<12} truncation failure {:.1e} per activation, error vs plaintext <= ~{:.4}",
            p.protocol.name(),
            p.truncation_failure,
            p.error_estimate
        );
    }
    let safe = b
        .max_safe_frac_bits
        .map_or("none".to_string(), |f| f.to_string());
    let _ = writeln!(
        out,
        "  largest safe f: {safe} (without pre-scaling: {})",
        b.max_frac_bits_without_prescale
    );
    out
}
