//! The `dclua` binary: parse the command line, run, map errors to an exit
//! code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = dclua::cli::Cli::parse();
    match dclua::app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dclua: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
