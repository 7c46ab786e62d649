//! One module per subcommand: its arguments, and what it prints.

pub mod bench;
pub mod bench_load;
pub mod bench_model;
pub mod bench_train;
pub mod dealer;
pub mod demo;
pub mod eval;
pub mod fit;
pub mod infer;
pub mod keygen;
pub mod net;
pub mod serve;
pub mod train;
