//! `pillar infer`: the image owner's side. It connects to a server, learns the model's public
//! architecture, prepares its inputs to that input shape (images decoded with `image` and
//! normalised as the model's training data was, `.npy` tensors as they are, or images of a data
//! set), classifies them by two-party computation with the server and the dealer, and prints
//! the top classes: with the model's probabilities when it ends in a softmax
//! (log-probabilities for a log-softmax), which this side applies to the logits it alone
//! learns, else with the logits. Only this process ever sees the inputs and the logits.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args};
use indicatif::{ProgressBar, ProgressStyle};
use pillar_infer::remote::{RemoteModel, RemoteReport};
use pillar_infer::{Parties, mirror};
use pillar_mpc::protocols::weights::{KeptWeights, WeightsDigest};
use pillar_nn::{OutputTransform, Tensor};
use pillar_train::data::{DataSet, DatasetKind};
use serde::Serialize;

use crate::memory::{Budget, fit_batch};

use super::bench::bytes;
use super::net::{KeyArgs, LinkArgs};
use crate::input;

/// Arguments of `pillar infer`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["input", "index"])))]
pub(crate) struct InferArgs {
    /// The server's address (`pillar serve --listen`).
    #[arg(long)]
    connect: String,

    /// The dealer's address (`pillar dealer --listen`), the same the server uses.
    #[arg(long)]
    dealer: String,

    /// Inputs to classify: images (PNG or JPEG), resized, centre-cropped and normalised for
    /// the model; or NumPy .npy files of float32 (or float64) tensors taken as they are (already
    /// normalised), one input [C, H, W] or a batch [N, C, H, W].
    #[arg(long, num_args = 1..)]
    input: Vec<PathBuf>,

    /// Instead of files: test images of --dataset by index (comma-separated, e.g. 0,1,2).
    #[arg(long, value_delimiter = ',')]
    index: Vec<usize>,

    /// The data set the model was trained on, for the normalisation and class names
    /// [default: guessed from the input shape: 1x28x28 mnist, 3x32x32 cifar10, 3x224x224
    /// imagenet].
    #[arg(long)]
    dataset: Option<DatasetKind>,

    /// Directory with the data set's files (with --index; mnist is embedded).
    #[arg(long)]
    data: Option<PathBuf>,

    /// Invert grey images (dark digits on a light background, where MNIST is light on dark);
    /// .npy inputs are left as they are.
    #[arg(long)]
    invert: bool,

    /// Images per request [default: all in one, or as many as the server takes].
    #[arg(long)]
    batch: Option<usize>,

    /// Classes to show per image.
    #[arg(long, default_value_t = 3)]
    top_k: usize,

    /// Most memory one request may take, by the architecture's estimate: a size with a unit
    /// (512MiB, 4GiB) [default: 4GiB]. The server chooses the architecture, so the client
    /// bounds what it spends on it; without --batch, requests shrink to fit.
    #[arg(long, value_name = "SIZE", value_parser = crate::memory::parse_size)]
    max_memory: Option<usize>,

    /// Deprecated: --max-memory with a unit (--max-memory 4096MiB).
    #[arg(long, hide = true, conflicts_with = "max_memory")]
    max_memory_mib: Option<usize>,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    link: LinkArgs,

    /// The client's key and the server's public key (`--trust`).
    #[command(flatten)]
    keys: KeyArgs,

    /// The dealer's public key (its .pub file or the 64 hex digits).
    #[arg(long, value_name = "KEY")]
    dealer_key: Vec<String>,

    /// Keep the server's masked weights `F = W - B` in DIR (one file per model, named by the
    /// digest the server announces; `F` tells nothing about the weights) and, on a later
    /// connection to the same model, use them instead of receiving them: the setup is skipped.
    #[arg(long, value_name = "DIR")]
    keep_weights: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Class {
    class: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// The model's output after a final softmax.
    #[serde(skip_serializing_if = "Option::is_none")]
    probability: Option<f64>,
    /// The model's output after a final log-softmax.
    #[serde(skip_serializing_if = "Option::is_none")]
    log_probability: Option<f64>,
    /// The last layer's output, before any softmax.
    logit: f64,
}

#[derive(Debug, Serialize)]
struct Image {
    input: String,
    /// The input's place in its .npy file's batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<usize>,
    predicted: usize,
    top: Vec<Class>,
    /// Every class's logit.
    logits: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    server: String,
    protocol: String,
    frac_bits: u32,
    images: Vec<Image>,
    requests: usize,
    rounds_per_request: u64,
    setup_s: f64,
    offline_s: f64,
    online_s: f64,
    online_bytes_sent: u64,
    online_bytes_received: u64,
    setup_bytes_sent: u64,
    /// The setup was skipped: the weights' `F` kept from an earlier connection was used.
    weights_kept: bool,
    offline_bytes: u64,
    /// Seconds from the start of connecting until the server's hello arrived.
    hello_s: f64,
    /// ... until the client had joined its dealer session.
    dealer_joined_s: f64,
    /// ... until the per-connection setup ended.
    setup_done_s: f64,
    /// ... until the first request's logits arrived: the wait for the first answer.
    first_answer_s: f64,
    /// Each request on the connection, in order: a warm connection's later requests pay
    /// neither the connection nor the setup.
    per_request: Vec<RequestCost>,
}

/// What one request cost the client.
#[derive(Debug, Serialize)]
struct RequestCost {
    images: usize,
    offline_s: f64,
    online_s: f64,
    rounds: u64,
    online_bytes_sent: u64,
    online_bytes_received: u64,
    /// Seconds from the start of connecting until its logits arrived.
    answered_s: f64,
}

/// Runs `pillar infer`.
pub(crate) fn run(args: &InferArgs) -> Result<()> {
    crate::memory::no_huge_pages();
    let (link, timeout) = args.link.link()?;
    if args.top_k == 0 || args.batch == Some(0) {
        bail!("--top-k and --batch must be at least 1");
    }
    if let Some(missing) = args.input.iter().find(|p| !p.is_file()) {
        bail!("{} is not a file", missing.display());
    }
    let security = args.keys.links(&args.dealer_key, "the server's")?;
    let model = RemoteModel::connect(&args.connect, &args.dealer, link, &security, timeout)
        .with_context(|| format!("cannot start a secure inference with {}", args.connect))?;
    let budget = match (args.max_memory, args.max_memory_mib) {
        (_, Some(mib)) => {
            eprintln!("warning: --max-memory-mib is deprecated; write --max-memory {mib}MiB");
            Budget::flag(mib.saturating_mul(1 << 20))
        }
        (Some(bytes), None) => Budget::flag(bytes),
        (None, None) => Budget::client_default(pillar_infer::remote::DEFAULT_MEMORY_LIMIT),
    };
    let mut model = model.with_memory_limit(budget.bytes);
    let arch = model.architecture().clone();
    let digest = model.weights_digest();
    let kept_path = args
        .keep_weights
        .as_ref()
        .map(|dir| dir.join(format!("{digest}.f")));
    let weights_kept = match &kept_path {
        Some(path) => {
            load_kept(path, digest, arch.setup_words())?.is_some_and(|k| model.with_kept_weights(k))
        }
        None => false,
    };
    let &[c, h, w] = arch.input_shape.as_slice() else {
        bail!(
            "the server's model takes inputs of shape {:?}; pillar infer sends images, [C, H, W]",
            arch.input_shape
        );
    };
    // What normalises images and names classes; a .npy input needs neither.
    let kind = args
        .dataset
        .or_else(|| DatasetKind::for_shape(&arch.input_shape));
    let (names, labels, pixels) = images(args, kind, [c, h, w])?;
    let n = names.len();
    let fp = arch.fixed();
    // The server says how many images it takes at once: more go in further requests, and
    // fewer when the memory limit needs it.
    let largest = n.min(model.max_batch()).max(1);
    let per = fit_batch(
        &arch,
        Parties::Client,
        args.batch.map(|b| b.min(largest)),
        largest,
        n,
        0,
        budget,
    )?;
    let size = c * h * w;
    let batches = pixels
        .chunks(per * size)
        .map(|chunk| {
            let t = Tensor::new(vec![chunk.len() / size, c, h, w], chunk.to_vec())?;
            mirror::encode(fp, &t)
        })
        .collect::<Result<Vec<_>, _>>()
        .context("cannot encode the images")?;

    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(n as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("secure inference [{bar:30}] {pos}/{len} {elapsed_precise}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let (logits, costs) = model
        .run(&batches, &|k| bar.inc(k as u64))
        .with_context(|| format!("the secure inference with {} failed", args.connect))?;
    bar.finish_and_clear();
    if let (Some(path), false, Some(kept)) = (&kept_path, weights_kept, &costs.weights) {
        store_kept(path, kept)?;
    }

    let classes = kind.and_then(DatasetKind::class_names);
    let mut out = Vec::with_capacity(n);
    let values: Vec<f64> = logits.iter().flat_map(|l| l.decode(fp)).collect();
    let outputs: Vec<f64> = logits.iter().flat_map(|l| arch.outputs(l)).collect();
    let k = values.len() / n.max(1);
    for (i, (input, label)) in names.into_iter().zip(labels).enumerate() {
        let row = i * k..(i + 1) * k;
        let image_logits = values[row.clone()].to_vec();
        let top = top_k(
            &values[row.clone()],
            &outputs[row],
            arch.output_transform,
            args.top_k,
            classes,
        );
        out.push(Image {
            input: input.name(),
            index: input.in_batch.then_some(input.index),
            label,
            predicted: top.first().map_or(0, |t| t.class),
            top,
            logits: image_logits,
        });
    }
    let mut report = summarise(args, &arch, out, &costs, per);
    report.weights_kept = weights_kept;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

/// Where each input comes from, labels (for data set images) and the values of every input.
type Images = (Vec<input::Input>, Vec<Option<usize>>, Vec<f32>);

fn images(args: &InferArgs, kind: Option<DatasetKind>, dims: [usize; 3]) -> Result<Images> {
    if !args.index.is_empty() {
        let Some(kind) = kind else {
            bail!(
                "the model's input is {dims:?}: pass --dataset to say which data set's test \
                 images --index means"
            );
        };
        let data = DataSet::load(kind, args.data.as_deref())
            .with_context(|| format!("cannot load {kind}"))?;
        if data.test.dims() != dims {
            bail!(
                "the server's model takes {dims:?} inputs, but {kind} images are {:?}",
                data.test.dims()
            );
        }
        if let Some(bad) = args.index.iter().find(|&&i| i >= data.test.len()) {
            bail!(
                "--index {bad}: {kind}'s test split has {} images",
                data.test.len()
            );
        }
        let pixels = data.normalise(&data.test, &args.index, None)?;
        let names = args
            .index
            .iter()
            .map(|i| input::Input {
                file: format!("{kind} test #{i}"),
                index: *i,
                in_batch: false,
            })
            .collect();
        let labels = args
            .index
            .iter()
            .map(|&i| data.test.label(i).map(usize::from))
            .collect();
        return Ok((names, labels, pixels));
    }
    let loaded = input::load(&args.input, dims, kind, args.invert)?;
    let n = loaded.inputs.len();
    Ok((loaded.inputs, vec![None; n], loaded.values))
}

/// The `k` classes of highest logit, with the model's `outputs` for them (the logits after
/// the model's output `transform`).
fn top_k(
    logits: &[f64],
    outputs: &[f64],
    transform: Option<OutputTransform>,
    k: usize,
    names: Option<&[&str]>,
) -> Vec<Class> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order
        .into_iter()
        .take(k)
        .map(|class| Class {
            class,
            name: names.and_then(|n| n.get(class)).map(ToString::to_string),
            probability: (transform == Some(OutputTransform::Softmax)).then(|| outputs[class]),
            log_probability: (transform == Some(OutputTransform::LogSoftmax))
                .then(|| outputs[class]),
            logit: logits[class],
        })
        .collect()
}

fn summarise(
    args: &InferArgs,
    arch: &pillar_infer::Architecture,
    images: Vec<Image>,
    costs: &RemoteReport,
    per: usize,
) -> Report {
    let sum = |f: &dyn Fn(&pillar_infer::BatchReport) -> f64| -> f64 {
        costs.batches.iter().map(f).sum()
    };
    let offline_words: usize = costs
        .batches
        .iter()
        .zip(images.chunks(per))
        .map(|(_, chunk)| arch.offline_words(chunk.len()).unwrap_or(0))
        .sum();
    Report {
        server: args.connect.clone(),
        protocol: arch.options.activation.to_string(),
        frac_bits: arch.options.frac_bits,
        requests: costs.batches.len(),
        rounds_per_request: costs.batches.first().map_or(0, |b| b.online.stats.rounds),
        setup_s: costs.setup.time.as_secs_f64(),
        offline_s: sum(&|b| b.offline.time.as_secs_f64()),
        online_s: sum(&|b| b.online.time.as_secs_f64()),
        online_bytes_sent: sum(&|b| b.online.stats.bytes_sent as f64) as u64,
        online_bytes_received: sum(&|b| b.online.stats.bytes_received as f64) as u64,
        setup_bytes_sent: costs.setup.stats.bytes_sent,
        weights_kept: false,
        offline_bytes: 8 * offline_words as u64,
        hello_s: costs.timeline.hello.as_secs_f64(),
        dealer_joined_s: costs.timeline.dealer_joined.as_secs_f64(),
        setup_done_s: costs.timeline.setup_done.as_secs_f64(),
        first_answer_s: costs
            .timeline
            .answered
            .first()
            .map_or(0.0, std::time::Duration::as_secs_f64),
        per_request: costs
            .batches
            .iter()
            .zip(images.chunks(per))
            .zip(&costs.timeline.answered)
            .map(|((b, chunk), answered)| RequestCost {
                images: chunk.len(),
                offline_s: b.offline.time.as_secs_f64(),
                online_s: b.online.time.as_secs_f64(),
                rounds: b.online.stats.rounds,
                online_bytes_sent: b.online.stats.bytes_sent,
                online_bytes_received: b.online.stats.bytes_received,
                answered_s: answered.as_secs_f64(),
            })
            .collect(),
        images,
    }
}

/// The text report: every input's top classes with their probabilities and logits, then the
/// costs.
fn print_text(r: &Report) {
    println!(
        "the model at {} ({}, {} rounds per request)",
        r.server, r.protocol, r.rounds_per_request
    );
    let width = r.images.iter().map(|i| i.input.len()).max().unwrap_or(0);
    for img in &r.images {
        let top: Vec<String> = img
            .top
            .iter()
            .map(|t| {
                let name = t.name.clone().unwrap_or_else(|| t.class.to_string());
                match (t.probability, t.log_probability) {
                    (Some(p), _) => format!("{name} ({:.1}%)", 100.0 * p),
                    (_, Some(l)) => format!("{name} (log p {l:.3})"),
                    _ => format!("{name} (logit {:.3})", t.logit),
                }
            })
            .collect();
        let label = img
            .label
            .map_or(String::new(), |l| format!("  [label {l}]"));
        println!("  {:width$}  {}{label}", img.input, top.join("  "));
    }
    println!(
        "{} in {}: online {:.3} s, {} sent and {} received; offline {:.3} s \
         ({} from the dealer); setup {:.3} s{}; first answer {:.3} s after connecting",
        count(r.images.len(), "image"),
        count(r.requests, "request"),
        r.online_s,
        bytes(r.online_bytes_sent),
        bytes(r.online_bytes_received),
        r.offline_s,
        bytes(r.offline_bytes),
        r.setup_s,
        if r.weights_kept {
            " (skipped: weights kept)"
        } else {
            ""
        },
        r.first_answer_s
    );
}

/// The `F` of digest `digest` and `words` weight words kept at `path`: `None` if there is
/// none, or (with a warning) if the file is not one (its size or digest is wrong): the setup
/// then receives it again, and the file is replaced.
fn load_kept(path: &Path, digest: WeightsDigest, words: usize) -> Result<Option<KeptWeights>> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(None);
    };
    let expected = words as u64 * 8;
    if meta.len() != expected {
        eprintln!(
            "warning: {} holds {} bytes, not the model's {expected}: receiving the weights again",
            path.display(),
            meta.len()
        );
        return Ok(None);
    }
    let kept = std::fs::File::open(path)
        .and_then(|mut file| KeptWeights::read(&mut file, words))
        .with_context(|| format!("cannot read {}", path.display()))?;
    if kept.digest() != digest {
        eprintln!(
            "warning: {} does not hold the weights its name says: receiving them again",
            path.display()
        );
        return Ok(None);
    }
    Ok(Some(kept))
}

/// Writes `kept` to `path` atomically, making its directory if need be.
fn store_kept(path: &Path, kept: &KeptWeights) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    }
    pillar_nn::write_atomic_with(path, |tmp| kept.write(&mut std::fs::File::create_new(tmp)?))
        .with_context(|| format!("cannot keep the weights in {}", path.display()))
}

/// `1 image`, `3 images`.
pub(crate) fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}
