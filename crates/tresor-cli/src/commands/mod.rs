//! One function per subcommand.

mod benchmark;
mod repo;
mod restore_vm;
mod service;
mod vm;

use anyhow::Result;

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
