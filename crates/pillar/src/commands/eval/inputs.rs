//! `pillar eval --input FILE...`: the logits of given inputs (images or `.npy` tensors, read
//! as `pillar infer` reads them) without a data set, from the float executor (`plain`), the
//! fixed-point mirror (`fixed`) or a two-party computation in this process (`secure`): what a
//! user compares with PyTorch's output for the same tensor.

use anyhow::{Context, Result, bail};
use pillar_infer::compare::argmax;
use pillar_infer::{mirror, run_local};
use pillar_mpc::Local;
use pillar_nn::{FoldedGraph, Tensor};
use pillar_train::data::DatasetKind;
use serde::Serialize;

use super::{EvalArgs, Mode, batch_and_plan};
use crate::input;

/// The report: the model, how it ran, and every input's logits.
#[derive(Debug, Serialize)]
struct Report {
    model: String,
    mode: Mode,
    #[serde(skip_serializing_if = "Option::is_none")]
    frac_bits: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<String>,
    /// What the fixed-point executor expects of share truncations failing, over all inputs
    /// (fixed and secure modes).
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_truncation_failures: Option<f64>,
    inputs: Vec<Logits>,
}

/// One input's output.
#[derive(Debug, Serialize)]
struct Logits {
    /// The file, as given.
    file: String,
    /// The input's place in the file (0 unless the file holds a batch).
    index: usize,
    logits: Vec<f32>,
    /// The class with the largest logit, as `pillar eval` counts accuracy.
    argmax: usize,
    /// Whether the file holds a batch (the text names the input `file[index]`).
    #[serde(skip)]
    in_batch: bool,
}

/// Runs `pillar eval --input`.
pub(super) fn run(args: &EvalArgs, graph: &FoldedGraph) -> Result<()> {
    if let Some(missing) = args.input.iter().find(|p| !p.is_file()) {
        bail!("{} is not a file", missing.display());
    }
    let &[c, h, w] = graph.input_shape.as_slice() else {
        bail!(
            "{} takes inputs of shape {:?}; --input gives [C, H, W] tensors",
            args.model.display(),
            graph.input_shape
        );
    };
    // Images are normalised as --dataset's (mnist unless given), or, when that data set's
    // images have other channels than the model's, as the data set of the model's shape.
    let kind = Some(args.dataset)
        .filter(|k| k.normalisation().0.len() == c)
        .or_else(|| DatasetKind::for_shape(&graph.input_shape));
    let loaded = input::load(&args.input, [c, h, w], kind, args.invert)?;
    let size = c * h * w;
    let n = loaded.values.len() / size.max(1);
    let config = args.config();
    let (batch, plan, _) = batch_and_plan(args, graph, &config, n, size)?;
    let batches = loaded
        .values
        .chunks(batch.max(1) * size)
        .map(|chunk| Tensor::new(vec![chunk.len() / size, c, h, w], chunk.to_vec()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut failures = 0.0;
    let outputs: Vec<Tensor> = match args.mode {
        Mode::Plain => batches
            .iter()
            .map(|b| pillar_nn::exec::float::logits(graph, b))
            .collect::<Result<_, _>>()?,
        Mode::Fixed => {
            let plan = plan.context("internal: fixed mode compiles its plan")?;
            let fp = config.fixed()?;
            let mut out = Vec::new();
            for b in &batches {
                let run = mirror::run_plan(&plan, &mirror::encode(fp, b)?)?;
                failures += run.expected_failures();
                out.push(run.logits);
            }
            out
        }
        Mode::Secure => {
            let plan = plan.context("internal: secure mode compiles its plan")?;
            let fp = config.fixed()?;
            let encoded = batches
                .iter()
                .map(|b| mirror::encode(fp, b))
                .collect::<Result<Vec<_>, _>>()?;
            for e in &encoded {
                failures += mirror::run_plan(&plan, e)?.expected_failures();
            }
            let (rings, _) = run_local(&plan, &encoded, &Local::default(), &|_| {})
                .context("the two-party computation failed")?;
            rings
                .iter()
                .map(|r| {
                    let values = r.data().iter().map(|&v| fp.decode(v) as f32).collect();
                    Tensor::new(r.shape().to_vec(), values)
                })
                .collect::<Result<_, _>>()?
        }
    };
    let values: Vec<f32> = outputs.iter().flat_map(|t| t.data().to_vec()).collect();
    let n = loaded.inputs.len();
    if n == 0 || values.is_empty() || !values.len().is_multiple_of(n) {
        bail!("the model gave {} outputs for {n} inputs", values.len());
    }
    let k = values.len() / n;
    let inputs = loaded
        .inputs
        .into_iter()
        .zip(values.chunks_exact(k))
        .map(|(i, logits)| Logits {
            file: i.file,
            index: i.index,
            in_batch: i.in_batch,
            argmax: argmax(logits).unwrap_or(0),
            logits: logits.to_vec(),
        })
        .collect();
    let fixed = args.mode != Mode::Plain;
    let report = Report {
        model: args.model.display().to_string(),
        mode: args.mode,
        frac_bits: fixed.then_some(args.frac_bits),
        protocol: fixed.then(|| args.protocol.to_string()),
        expected_truncation_failures: fixed.then_some(failures),
        inputs,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

/// A table: one row per input, its argmax then its logits.
fn print_text(r: &Report) {
    let names: Vec<String> = r
        .inputs
        .iter()
        .map(|i| input::Input {
            file: i.file.clone(),
            index: i.index,
            in_batch: i.in_batch,
        })
        .map(|i| i.name())
        .collect();
    let width = names.iter().map(String::len).max().unwrap_or(0).max(5);
    println!(
        "{}: logits, {} mode{}",
        r.model,
        serde_json::to_value(r.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        match (&r.protocol, r.frac_bits) {
            (Some(p), Some(f)) => format!(" (f = {f}, {p})"),
            _ => String::new(),
        }
    );
    println!("{:width$}  argmax  logits", "input");
    for (name, i) in names.iter().zip(&r.inputs) {
        let logits: Vec<String> = i.logits.iter().map(|l| format!("{l:9.4}")).collect();
        println!("{name:width$}  {:>6}  {}", i.argmax, logits.join(" "));
    }
}
