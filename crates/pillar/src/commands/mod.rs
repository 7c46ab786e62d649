//! One module per subcommand: its arguments, and what it prints.

pub mod bench;
pub mod fit;
