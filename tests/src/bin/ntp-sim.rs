//! `ntp-sim`: runs a simulator scenario (the unchanged mcast-ntp cores on
//! virtual time, modelled clocks and network) and prints its figures.
//!
//! ```sh
//! cargo run --release -p mcast-tests --bin ntp-sim -- --scenario day
//! cargo run --release -p mcast-tests --bin ntp-sim -- --list
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use mcast_tests::sim::{self, scenarios};

/// Run a simulator scenario and print what it measured.
#[derive(Debug, Parser)]
#[command(name = "ntp-sim", version)]
struct Args {
    /// Scenario to run (see --list).
    #[arg(short, long, default_value = "day")]
    scenario: String,
    /// Seed of every random draw (same seed, same run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated hours instead of the scenario's own duration.
    #[arg(long)]
    hours: Option<f64>,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    /// Also print client N's (1-based) log lines, steps and a timeline of
    /// its clock error and each server's standing in its selection.
    #[arg(long, value_name = "N")]
    client: Option<usize>,
    /// Period of the timeline, in seconds.
    #[arg(long, default_value_t = 300)]
    every: u64,
    /// Aggregate figures only (no line per client): for the scale runs.
    #[arg(long)]
    brief: bool,
}

/// This process's CPU time (user + system), from /proc/self/stat.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        for s in scenarios::all().into_iter().chain(scenarios::scale()) {
            println!("{:<18} {}", s.name, s.about);
        }
        return ExitCode::SUCCESS;
    }
    let Some(scenario) = scenarios::by_name(&args.scenario) else {
        eprintln!(
            "ntp-sim: no scenario {:?}; --list shows them",
            args.scenario
        );
        return ExitCode::from(2);
    };
    let mut config = (scenario.build)(args.seed);
    if let Some(h) = args.hours {
        match Duration::try_from_secs_f64(h * 3600.0) {
            Ok(d) => config.duration = d,
            Err(e) => {
                eprintln!("ntp-sim: --hours {h}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let started = Instant::now();
    let report = match sim::run(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ntp-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let wall = started.elapsed();
    println!(
        "scenario {} (seed {}): {} servers, {} clients",
        scenario.name,
        args.seed,
        config.servers.len(),
        config.clients.len()
    );
    if args.brief {
        print!("{}", report.scale_summary(scenario.measure_from));
    } else {
        print!("{}", report.summary(scenario.measure_from));
    }
    if let Some(n) = args.client
        && let Some(c) = report.clients.get(n.saturating_sub(1))
    {
        println!("client {n}:");
        for (at, event) in &c.events {
            let line = mcast_client::text::event_line(event);
            println!("{:>10.3} s  {line}", at.as_secs_f64());
        }
        for (at, step) in c.steps() {
            println!("{:>10.3} s  stepped by {step}", at.as_secs_f64());
        }
        println!(
            "timeline (servers: * system peer, + survivor, - pruned, x falseticker, . not a candidate):"
        );
        print!(
            "{}",
            c.timeline(config.servers.len(), Duration::from_secs(args.every.max(1)))
        );
    }
    println!(
        "wall time {:.2} s, CPU time {:.2} s",
        wall.as_secs_f64(),
        cpu_time().map_or(f64::NAN, |d| d.as_secs_f64())
    );
    ExitCode::SUCCESS
}
