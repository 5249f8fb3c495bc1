//! `ntp-probe`: sends signed NTP mode-3 requests from given source
//! addresses and prints what came back as JSON; `ntp-probe listen ...`
//! receives broadcasts on a socket and prints them (see
//! `mcast_lab::probe`). For lab hosts only: run it inside a namespace of
//! a test's own LAN.

use std::process::ExitCode;

use mcast_lab::probe;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = match args.split_first() {
        Some((mode, rest)) if mode == "listen" => probe::ListenArgs::parse(rest)
            .and_then(|a| probe::listen(&a))
            .and_then(|r| serde_json::to_string(&r).map_err(|e| e.to_string())),
        _ => probe::ProbeArgs::parse(&args)
            .and_then(|a| probe::run(&a))
            .and_then(|r| serde_json::to_string(&r).map_err(|e| e.to_string())),
    };
    match json {
        Ok(j) => {
            println!("{j}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ntp-probe: {e}");
            ExitCode::FAILURE
        }
    }
}
