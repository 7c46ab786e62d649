//! One module per subcommand: its arguments, and what it prints.

pub(crate) mod bench;
pub(crate) mod bench_load;
pub(crate) mod bench_model;
pub(crate) mod bench_net;
pub(crate) mod bench_train;
pub(crate) mod dealer;
pub(crate) mod demo;
pub(crate) mod eval;
pub(crate) mod fit;
pub(crate) mod infer;
pub(crate) mod keygen;
pub(crate) mod net;
pub(crate) mod serve;
pub(crate) mod train;

/// Prints the graph's advice (a training clamp left before a polynomial, say) on stderr, as
/// `warning: <model>: ...`, once a command has loaded it.
pub(crate) fn warn_about(model: &std::path::Path, graph: &pillar_nn::Graph) {
    for w in graph.warnings() {
        eprintln!("warning: {}: {w}", model.display());
    }
}

/// Loads the ONNX model a command was given, as `onnx::load` reads it, and warns about it
/// ([`warn_about`]). An error names the file once: `cannot load F: node ...` (the library's
/// error names the file too, which this context replaces).
pub(crate) fn load_model(model: &std::path::Path) -> anyhow::Result<pillar_nn::TypedGraph> {
    let context = || format!("cannot load {}", model.display());
    let graph = pillar_nn::onnx::load(model).map_err(|e| match e {
        pillar_nn::NnError::File { source, .. } => anyhow::Error::new(*source).context(context()),
        e => anyhow::Error::new(e).context(context()),
    })?;
    warn_about(model, &graph);
    Ok(graph)
}
