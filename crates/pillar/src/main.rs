//! `pillar`: private inference of convolutional networks with polynomial activations.
//!
//! Three stages, one subcommand each (more arrive with their issues): `fit` finds the
//! polynomial that replaces ReLU, `train` learns a network that uses it, and `serve`/`infer`
//! run that network on a client's image without either side showing its secret.

mod bench;
mod commands;
mod input;
mod memory;
mod plot;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// mimalloc keeps freed pages mapped: the protocols allocate and drop buffers of megabytes per
/// round, and with the system allocator every one of them costs fresh page faults.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Fast private inference of CNNs with polynomial activations (PILLAR + ESPN).
#[derive(Debug, Parser)]
#[command(name = "pillar", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fit a polynomial to an activation function with quantized coefficients (PILLAR 5.2).
    Fit(commands::fit::FitArgs),
    /// Train a CNN with polynomial (PILLAR) or baseline activations and export it to ONNX.
    Train(commands::train::TrainArgs),
    /// Accuracy of an ONNX model on a test set, in float or in the secure engine's fixed point.
    Eval(commands::eval::EvalArgs),
    /// Measure the secure protocols' speed over emulated network links.
    Bench(commands::bench::BenchArgs),
    /// Make a key pair for a dealer, server or client: links are encrypted and pinned to keys.
    Keygen(commands::keygen::KeygenArgs),
    /// Run the trusted dealer that hands servers and clients their correlated randomness.
    Dealer(commands::dealer::DealerArgs),
    /// Serve an ONNX model for secure inference: clients learn its outputs, never its weights.
    Serve(commands::serve::ServeArgs),
    /// The whole system on the embedded MNIST: fit, train a polynomial and a ReLU network,
    /// classify digits securely over an emulated WAN, compare.
    Demo(commands::demo::DemoArgs),
    /// Classify images with a served model by two-party computation: the server never sees
    /// them.
    Infer(commands::infer::InferArgs),
}

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (index 15 in both v2 and v3; the sys
/// crate exports no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never return freed memory to the OS. Training frees and reallocates tensors of hundreds
/// of megabytes every step (im2col buffers, activations); with the default 10 ms purge delay
/// each reallocation faults in fresh pages that the kernel must zero. Measured on a MiniONN
/// training step (batch 128): 6% faster, for 8% more peak memory (794 vs 737 MB).
fn keep_freed_memory() {
    // SAFETY: sets a plain integer option; mimalloc reads options atomically and allows
    // changing this one at any time.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Fit(args) => commands::fit::run(&args),
        Command::Train(args) => commands::train::run(&args),
        Command::Eval(args) => commands::eval::run(&args),
        Command::Bench(args) => commands::bench::run(&args),
        Command::Keygen(args) => commands::keygen::run(&args),
        Command::Dealer(args) => commands::dealer::run(&args),
        Command::Serve(args) => commands::serve::run(&args),
        Command::Infer(args) => commands::infer::run(&args),
        Command::Demo(args) => commands::demo::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, like `{:#}`, but without a cause whose text the
/// line already holds: many error types repeat their source in their own message.
fn describe(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Logs go to stderr so that `--json` output on stdout stays clean.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_model_that_cannot_load_is_named_once() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m: v2.onnx");
        std::fs::write(&model, b"not a model").unwrap();
        let err = crate::commands::load_model(&model).unwrap_err();
        let line = super::describe(&err);
        let name = model.display().to_string();
        assert!(line.starts_with(&format!("cannot load {name}: ")), "{line}");
        assert_eq!(line.matches(&name).count(), 1, "{line}");
    }
}
