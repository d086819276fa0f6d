//! The `smart-fetch` binary: a thin shell over `smart_fetch::cli` (parse, run on a tokio
//! runtime, print one clear message and exit with the right status).

use std::process::ExitCode;

fn main() -> ExitCode {
    smart_fetch::cli::main(std::env::args_os())
}
