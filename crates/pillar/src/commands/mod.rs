//! One module per subcommand: its arguments, and what it prints.

pub(crate) mod bench;
pub(crate) mod bench_load;
pub(crate) mod bench_model;
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
