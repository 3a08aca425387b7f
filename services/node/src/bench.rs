//! Load benchmarks (`showcall bench ...`). Filled in with the benchmark work.

use crate::cli::BenchArgs;

/// Runs the benchmark named by `args`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("benchmark {:?} is not built yet", args.kind)
}
