//! The command line: clap structs describe what was typed; each command has its own
//! `run` that works on the resolved [`Config`](crate::config::Config). Returns the exit
//! code (0 ok, 1 "nothing found" where that means something, 2 errors).

mod format;
mod rotation;
mod search;
mod services;
mod stats;
mod tail;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::client::Endpoint;
use crate::config::{Config, Overrides};

#[derive(Parser, Debug)]
#[command(
    name = "logagg",
    version,
    about = "Log aggregation and rotation beside stock PM2",
    // `-n 5 ... -n 1`: the last one wins, as with tail, grep and journalctl.
    args_override_self = true
)]
pub struct Cli {
    /// Configuration file (else $LOGAGG_CONFIG, else config/logagg.toml when present).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Daemon address for client commands (else $LOGAGG_ADDR, else api.listen).
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub addr: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: follow the log files, index them, serve the API.
    Daemon(DaemonArgs),
    /// Search the timeline (tantivy query syntax; words are ANDed).
    Search(search::SearchArgs),
    /// Follow the merged timeline: the last records, then new ones as they come.
    Tail(tail::TailArgs),
    /// Rotate live files now, whatever their size and age.
    Rotate(rotation::RotateArgs),
    /// Every service: PM2 status, instances, files, lines, bytes, last record, restarts.
    Services(services::ServicesArgs),
    /// Lines per time bucket and service as a terminal chart, with the markers.
    Stats(stats::StatsArgs),
    /// Every live file: size, archives, rotations, and bytes lost by copytruncate.
    Status {
        /// The API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(clap::Args, Debug)]
pub struct DaemonArgs {
    /// Where the index and state live (data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address for the HTTP API (api.listen).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Glob of files to follow (sources.paths); repeatable, replaces the configured list.
    #[arg(long = "path", value_name = "GLOB")]
    pub paths: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the resolved configuration, or say what is wrong with it.
    Check,
}

pub fn run(cli: Cli) -> Result<u8> {
    let mut flags = Overrides {
        config: cli.config.clone(),
        ..Overrides::default()
    };
    if let Command::Daemon(args) = &cli.command {
        flags.data_dir = args.data_dir.clone();
        flags.listen = args.listen.clone();
        flags.paths = args.paths.clone();
    }
    let cwd = std::env::current_dir()?;
    let config = Config::from_process_env(&flags, &cwd)?;
    match cli.command {
        Command::Daemon(_) => {
            init_logging();
            crate::daemon::run(&config)?;
            Ok(0)
        }
        Command::Search(args) => search::run(&args, &endpoint(&cli.addr, &config)),
        Command::Tail(args) => tail::run(&args, &endpoint(&cli.addr, &config)),
        Command::Rotate(args) => rotation::rotate(&args, &endpoint(&cli.addr, &config)),
        Command::Services(args) => services::run(&args, &endpoint(&cli.addr, &config)),
        Command::Stats(args) => stats::run(&args, &endpoint(&cli.addr, &config)),
        Command::Status { json } => rotation::status(json, &endpoint(&cli.addr, &config)),
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            // to_toml's header already names the file the values came from.
            format::write_out(&config.to_toml())?;
            Ok(0)
        }
    }
}

/// The daemon to talk to: `--addr`, else `LOGAGG_ADDR`, else the configured listen
/// address; the token from `LOGAGG_TOKEN`, else the configured one.
fn endpoint(flag: &Option<String>, config: &Config) -> Endpoint {
    let env = |name| std::env::var(name).ok().filter(|s: &String| !s.is_empty());
    Endpoint {
        addr: flag
            .clone()
            .or_else(|| env("LOGAGG_ADDR"))
            .unwrap_or_else(|| config.api.listen.clone()),
        token: env("LOGAGG_TOKEN").or_else(|| config.api.token.clone()),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOGAGG_LOG")
        // tantivy logs every commit at info; at one commit a second that drowns ours.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tantivy=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
