//! One function per subcommand.

mod benchmark;
mod repo;
mod restore_vm;
mod service;
mod vm;

use anyhow::{Context, Result};

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Repo(cmd) => repo::run(cmd),
        Command::Vm(cmd) => vm::run(cmd),
        Command::Benchmark(args) => benchmark::run(args),
        Command::Serve(args) => service::serve(args),
        Command::Agent(cmd) => service::agent(cmd),
        other => service::manage(other),
    }
}

/// The async runtime of commands that talk to QEMU or to the server.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
