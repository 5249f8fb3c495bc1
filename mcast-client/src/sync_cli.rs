//! `mcast-client wait-sync`: wait until a running client is synchronized,
//! like `chronyc waitsync` (what `mcast-client-wait-sync.service` runs
//! before `time-sync.target`); `mcast-client step-now`: an operator's step
//! to the selected time.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use mcast_core::client::status::ClientStatus;

use crate::cli::SocketArgs;

/// How often `wait-sync` asks the client.
const POLL: Duration = Duration::from_secs(1);

/// `after_help` of `wait-sync`.
pub const WAIT_SYNC_HELP: &str = "Examples:\n  mcast-client wait-sync --timeout 180\n  \
    mcast-client wait-sync --timeout 60 --max-offset 0.001 --socket /run/mcast-ntp/client.sock\n\n\
    Asks the running client's status socket once a second until it reports itself \
    synchronized: a server is selected and, in slew and step modes, the last clock update \
    was within the step threshold (what makes the daemon send READY=1 to systemd). With \
    --max-offset the selected offset must also be at most that many seconds. A client that \
    does not answer yet (still starting) is asked again.\n\n\
    Exit status: 0 when synchronized, 1 when --timeout passed first, 2 for a usage or \
    configuration error.";

/// Options of `wait-sync`.
#[derive(Debug, Args)]
pub struct WaitSyncArgs {
    /// Where the client is.
    #[command(flatten)]
    pub at: SocketArgs,
    /// Give up after this many seconds (0: wait for ever).
    #[arg(long, value_name = "S", default_value_t = 0.0, value_parser = non_negative)]
    pub timeout: f64,
    /// Also require |selected offset| <= this many seconds.
    #[arg(long = "max-offset", value_name = "S", value_parser = non_negative)]
    pub max_offset: Option<f64>,
}

fn non_negative(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() && (0.0..=1e9).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s} must be 0 or more (seconds)"))
    }
}

/// Runs `wait-sync`.
pub fn wait_sync(args: &WaitSyncArgs) -> ExitCode {
    let socket = match crate::cli::socket_of(&args.at) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let started = Instant::now();
    let deadline = (args.timeout > 0.0).then(|| started + Duration::from_secs_f64(args.timeout));
    loop {
        let answer = crate::control::control_request(&socket, "status")
            .and_then(|v| serde_json::from_value::<ClientStatus>(v).map_err(std::io::Error::other));
        let why = match &answer {
            Ok(s) if s.synchronized => match (args.max_offset, s.offset_ms) {
                (Some(max), Some(off)) if off.abs() / 1e3 > max => {
                    format!("offset {off:+.3} ms is over --max-offset {max} s")
                }
                (_, offset) => {
                    println!(
                        "synchronized after {:.1} s: offset {} ms",
                        started.elapsed().as_secs_f64(),
                        offset.map_or("?".into(), |o| format!("{o:+.3}"))
                    );
                    return ExitCode::SUCCESS;
                }
            },
            Ok(s) => crate::text::status_line(s),
            Err(e) => format!("no answer from {}: {e}", socket.display()),
        };
        if deadline.is_some_and(|d| Instant::now() + POLL > d) {
            eprintln!(
                "mcast-client: not synchronized after {:.0} s: {why}",
                started.elapsed().as_secs_f64()
            );
            return ExitCode::FAILURE;
        }
        std::thread::sleep(POLL);
    }
}

/// `after_help` of `step-now`.
pub const STEP_NOW_HELP: &str = "Example:\n  mcast-client step-now\n\n\
    Asks the running client (over its operations socket, client-ops.sock: root or the user \
    who started it) to step the clock once, at once, by the selected offset, whatever the \
    step and panic thresholds: what to run when the log says an offset is over the panic \
    threshold. Also in slew mode (an explicit request). Refused in monitor mode and while no \
    server is selected.\n\n\
    Exit status: 0 when the clock was stepped, 1 when the client refused or did not answer, \
    2 for a configuration error.";

/// Runs `step-now`.
pub fn step_now(at: &SocketArgs) -> ExitCode {
    let socket = match crate::cli::operations_socket_of(at) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match crate::control::control_request(&socket, "step-now") {
        Ok(v) if v.get("ok").is_some() => {
            let by = v.get("stepped_s").and_then(serde_json::Value::as_f64);
            println!(
                "stepped the clock by {} s",
                by.map_or("?".into(), |s| format!("{s:+.6}"))
            );
            ExitCode::SUCCESS
        }
        Ok(v) => {
            eprintln!(
                "mcast-client: step-now {}",
                v.get("error").and_then(|e| e.as_str()).unwrap_or("refused")
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!(
                "mcast-client: no answer from {}: {e}; is the client running?",
                socket.display()
            );
            ExitCode::FAILURE
        }
    }
}
