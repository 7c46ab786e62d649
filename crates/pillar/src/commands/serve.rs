//! `pillar serve`: the model owner's side. It compiles the ONNX model once (an operator the
//! secure engine cannot run is an error here, before anyone connects), then serves every
//! client that connects in a thread of its own: a dealer session, the public architecture,
//! the setup, and the client's requests. A failing client is reported and the others go on.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use pillar_infer::remote::{RemoteError, ServeOptions, Served, serve};
use pillar_infer::{FixedConfig, Plan};
use pillar_mpc::channel::Admission;
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::preprocessed::LinearProtocol;

use super::bench::bytes;
use super::infer::count;
use super::net::{KeyArgs, LinkArgs, announce_listening};

/// Arguments of `pillar serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The ONNX model to serve (from `pillar train`, or exported by PyTorch).
    #[arg(long)]
    model: PathBuf,

    /// Address to listen on for clients (port 0: any free port, printed on start).
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: String,

    /// The dealer's address (`pillar dealer --listen`).
    #[arg(long)]
    dealer: String,

    /// How polynomial activations run: honeybadger, espn, crypten; or relu to run every one
    /// as an exact ReLU (the baseline).
    #[arg(long, default_value = "honeybadger")]
    protocol: ActivationProtocol,

    /// How linear layers run: preprocessed (the client's input share of each is a mask fixed
    /// offline: half the online bytes, elementwise client work) or beaver (the older
    /// protocol, which opens each masked input both ways online).
    #[arg(long, default_value = "preprocessed")]
    linear: LinearProtocol,

    /// Fractional bits of the fixed-point encoding.
    #[arg(long, default_value_t = 16)]
    frac_bits: u32,

    /// Most images a client may send in one request.
    #[arg(long, default_value_t = 256)]
    max_batch: usize,

    /// Most clients served at once; more are told to try again later.
    #[arg(long, default_value_t = 64)]
    max_clients: usize,

    /// Most setups and batches computed at once; the other clients wait their turn
    /// [default: one per core].
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    max_active: usize,

    /// The server's key and the clients' public keys (`--trust`, once each).
    #[command(flatten)]
    keys: KeyArgs,

    /// The dealer's public key (its .pub file or the 64 hex digits).
    #[arg(long, value_name = "KEY")]
    dealer_key: Vec<String>,

    #[command(flatten)]
    link: LinkArgs,
}

/// Runs `pillar serve` until it is killed.
pub(crate) fn run(args: &ServeArgs) -> Result<()> {
    crate::memory::no_huge_pages();
    let (link, timeout) = args.link.link()?;
    if args.max_batch == 0 || args.max_clients == 0 {
        bail!("--max-batch and --max-clients must be at least 1");
    }
    let security = args.keys.links(&args.dealer_key, "each client's")?;
    let graph = super::load_model(&args.model)?
        .fold_batchnorm()
        .with_context(|| format!("cannot load {}", args.model.display()))?;
    let config = FixedConfig {
        frac_bits: args.frac_bits,
        activation: args.protocol,
        linear: args.linear,
    };
    let plan = Plan::compile(&graph, config)
        .and_then(|plan| Ok(plan.architecture.check_secure_input().map(|()| plan)?))
        .with_context(|| format!("cannot run {} securely", args.model.display()))?;
    let name = args
        .model
        .file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
    let listener = TcpListener::bind(&args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let arch = &plan.architecture;
    eprintln!(
        "serving {name}: input {:?}, {} layers, {} rounds per request under {}{}; dealer {}; links {}",
        arch.input_shape,
        arch.steps.len(),
        arch.rounds(),
        args.protocol,
        args.link.describe(),
        args.dealer,
        args.keys.describe()
    );
    if let Err(e) = probe(&args.dealer, timeout) {
        eprintln!(
            "warning: the dealer at {} is not reachable now ({e}); clients are refused until it is",
            args.dealer
        );
    }
    announce_listening("pillar serve", listener.local_addr()?)?;
    let options = ServeOptions {
        dealer: args.dealer.clone(),
        link,
        timeout,
        max_batch: args.max_batch,
        max_clients: args.max_clients,
        max_active: args.max_active,
        admission: Admission::default(),
        security,
    };
    serve(&listener, Arc::new(plan), &options, Arc::new(report))
        .context("the server stopped accepting connections")
}

/// Whether something listens at `addr` (the dealer ignores a connection that says nothing).
fn probe(addr: &str, timeout: std::time::Duration) -> Result<()> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| anyhow::anyhow!("no address"), Into::into))
}

/// One line per client on stderr.
fn report(peer: SocketAddr, outcome: Result<Served, RemoteError>) {
    match outcome {
        Ok(served) => {
            let online: f64 = served
                .batches
                .iter()
                .map(|(_, b)| b.online.time.as_secs_f64())
                .sum();
            let sent: u64 = served
                .batches
                .iter()
                .map(|(_, b)| b.online.stats.bytes_sent)
                .sum();
            eprintln!(
                "client {peer}: {} in {}; setup {:.3} s, online {:.3} s, sent {}",
                count(served.images(), "image"),
                count(served.batches.len(), "request"),
                served.setup.time.as_secs_f64(),
                online,
                bytes(sent + served.setup.stats.bytes_sent)
            );
        }
        Err(e) => eprintln!("client {peer}: failed: {e}"),
    }
}
