//! `rill-loadgen`: the parts of bench/run that redis-benchmark cannot express.
//!
//! Every subcommand talks RESP2 to one server (`cluster-xadd`: to every node of a cluster) (Rill or Redis, it cannot tell) and prints exactly one result line of
//! `name key=value …` on stdout, which bench/run parses; diagnostics go to stderr. Throughputs are measured from the
//! moment every connection is open to the moment the last one finishes, so connection set-up is never counted.

mod cluster;
mod drain;
mod fanout;
mod fill;
mod latency;
mod ready;
mod resp;
mod stress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Load generator for Rill/Redis stream benchmarks")]
struct Cli {
    /// Server address, host:port.
    #[arg(long, default_value = "127.0.0.1:6379", global = true)]
    addr: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Append COUNT entries of one SIZE-byte field with CONNS connections, PIPELINE commands in flight each.
    Fill(fill::FillArgs),
    /// Read a stream through a fresh consumer group with N consumers (XREADGROUP COUNT + XACK) and report msgs/s.
    Drain(drain::DrainArgs),
    /// Publish at a fixed rate while consumers block in XREADGROUP; report publish→delivery percentiles.
    Latency(latency::LatencyArgs),
    /// XADD round-robin over many streams (PREFIX{N}), each sent to the cluster node owning its slot (from one
    /// CLUSTER SLOTS), CONNS connections per node; or, with --standalone, all to one server.
    ClusterXadd(cluster::ClusterXaddArgs),
    /// PUBLISH fixed-size messages to N subscribers of one channel; report deliveries/s and publish→delivery
    /// percentiles.
    Fanout(fanout::FanoutArgs),
    /// Wait until the server answers PING with PONG; report the seconds since a given start time.
    Ready(ready::ReadyArgs),
    /// The load test of issue #18: crowds of idle, blocked, slow, unauthenticated and expiring clients while a
    /// probe measures latency and the server's memory is watched; fails on a bound not held.
    Stress(stress::StressArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("rill-loadgen: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Fill(args) => fill::run(&cli.addr, args).await,
            Command::Drain(args) => drain::run(&cli.addr, args).await,
            Command::Latency(args) => latency::run(&cli.addr, args).await,
            Command::Fanout(args) => fanout::run(&cli.addr, args).await,
            Command::ClusterXadd(args) => cluster::run(&cli.addr, args).await,
            Command::Ready(args) => ready::run(&cli.addr, args).await,
            Command::Stress(args) => stress::run(&cli.addr, args)
                .await
                .map_err(|e| resp::RespError::Unexpected(e.to_string())),
        }
    });
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("rill-loadgen: {err}");
            ExitCode::FAILURE
        }
    }
}
