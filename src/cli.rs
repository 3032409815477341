//! The command line: global options and subcommands (clap).
//!
//! This module only describes and parses; [`crate::app`] acts on the result.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use crate::config::LogLevel;

/// dclua: a Direct Connect client programmable in Lua.
///
/// Without a command, dclua starts the client: on a terminal with an
/// interactive Lua console; with standard input not a terminal, it reads Lua
/// chunks from it and prints their results.
#[derive(Debug, Parser)]
#[command(name = "dclua", version, about, long_about)]
pub struct Cli {
    /// The configuration script (default: config.lua in the XDG config
    /// folder; without one, an embedded default is used).
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where dclua keeps its state: hash store, history, certificates
    /// (default: the XDG data folder).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Log level (overrides the configuration).
    #[arg(short, long, global = true, value_enum, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,

    /// What to do (default: start the client).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Lua script headless until it ends (or Ctrl-C).
    Run {
        /// The script.
        script: PathBuf,
        /// Arguments, available to the script as `...` and `dc.args`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the client headless until signalled (SIGTERM, SIGINT), with a
    /// control socket in the data folder for `dclua attach`.
    Daemon,
    /// Open a console on a running `dclua daemon` (the same data folder).
    Attach {
        /// Run this chunk, print its result and exit (status 1 on error).
        #[arg(short = 'e', long = "eval", value_name = "CHUNK")]
        eval: Option<String>,
    },
    /// Run bot tests: the `test_*` functions of `*_test.lua` files, each in
    /// a fresh client against scripted hubs on a virtual clock.
    Test {
        /// Test files or folders (default: `tests/` and `scripts/` beside
        /// the configuration file).
        paths: Vec<PathBuf>,
        /// Only the tests whose `file::name` contains this text.
        #[arg(long, value_name = "TEXT")]
        filter: Option<String>,
        /// Also print the output and hub transcripts of passing tests.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Write a commented default config.lua (never overwrites an existing one).
    Init,
    /// Print the Tiger Tree Hash of each file.
    Hash {
        /// Files to hash.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_parse() {
        let cli = Cli::try_parse_from(["dclua", "--log-level", "debug", "-c", "x.lua"]).unwrap();
        assert_eq!(cli.log_level, Some(LogLevel::Debug));
        assert_eq!(cli.config, Some(PathBuf::from("x.lua")));
        assert!(Cli::try_parse_from(["dclua", "--log-level", "loud"]).is_err());
    }

    #[test]
    fn run_takes_the_script_and_its_arguments() {
        let cli =
            Cli::try_parse_from(["dclua", "-l", "warn", "run", "bot.lua", "x", "--flag"]).unwrap();
        match cli.command {
            Some(Command::Run { script, args }) => {
                assert_eq!(script, PathBuf::from("bot.lua"));
                assert_eq!(args, vec!["x".to_string(), "--flag".to_string()]);
            }
            other => panic!("{other:?}"),
        }
    }
}
