//! `tresor benchmark`: how fast this machine runs Tresor's primitives and pipeline.

use anyhow::Result;
use tresor_engine::bench;

use crate::cli::BenchmarkArgs;

pub fn run(args: BenchmarkArgs) -> Result<()> {
    let dir = match args.dir {
        Some(d) => d,
        None => std::env::temp_dir(),
    };
    println!("{:<44} {:>12}", "what", "speed");
    let mut print = |line: &bench::BenchLine| {
        println!(
            "{:<44} {:>9.0} MB/s{}",
            line.what,
            line.mb_per_s,
            line.note
                .as_deref()
                .map(|n| format!("  ({n})"))
                .unwrap_or_default()
        )
    };
    bench::run(
        &bench::BenchOptions {
            pipeline_bytes: args.pipeline_mib << 20,
            dir,
        },
        &mut print,
    )?;
    Ok(())
}
