//! The command-line layer: parse, layer the config file, dispatch to one module per
//! subcommand. Turns nothing into text; `main` does that.

pub mod args;
pub mod crawl;
pub mod export;
