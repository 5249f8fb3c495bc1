//! `mcast-lab` (run it through `scripts/lab`): a LAN of network namespaces
//! on this machine with our servers and clients and reference ntpd
//! 4.2.8p15 ones, for reproducing multicast/unicast mode bugs. `up` builds
//! it and returns, `status` shows every client's mode and unicast packets
//! per server, `down` removes everything `up` made. Needs root.
//!
//! See `mcast_lab::labctl` for the layout and the safety rules.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args as ClapArgs, Parser, Subcommand};
use mcast_lab::labctl::{self, Bins, KeyType, UpOptions};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "A LAN of network namespaces running mcast-ntp and reference ntpd 4.2.8p15 \
             servers and clients, for reproducing multicast/unicast mode bugs",
    after_help = "Examples:\n  scripts/lab up --servers 4 --clients 10 --ref-clients 2\n  \
                  scripts/lab status --watch\n  \
                  scripts/lab up --servers 1 --clients 1 --ref-clients 1 --drop-replies\n  \
                  scripts/lab up --servers 1 --ref-clients 1 --poll 2\n  \
                  scripts/lab down"
)]
struct Cli {
    /// Which lab (several can be up at once): 1-12 lowercase letters and
    /// digits. Namespaces are mlab-NAME-*, state in /run/mcast-lab/NAME.
    #[arg(long, global = true, default_value = "lab")]
    name: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Build the LAN, start every server and client, and return.
    Up(UpArgs),
    /// One row per server and per client and server: mode, unicast packets, offset.
    Status {
        /// Refresh every 2 s until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// Print the rows as JSON (one object) instead of the table.
        #[arg(long, conflicts_with = "watch")]
        json: bool,
    },
    /// Stop everything the lab started, delete its namespaces and state.
    Down {
        /// Keep the configs, logs, keys and capture in /run/mcast-lab/NAME.
        #[arg(long)]
        keep_files: bool,
    },
    /// The labs that are up.
    List,
}

#[derive(ClapArgs, Debug)]
struct UpArgs {
    /// Our servers (mcast-server), each with its own key.
    #[arg(long, default_value_t = 1)]
    servers: usize,
    /// Reference ntpd 4.2.8p15 broadcast servers (LOCAL clock, orphan mode).
    #[arg(long, default_value_t = 0)]
    ref_servers: usize,
    /// Our clients (mcast-client, monitor mode).
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Reference ntpd 4.2.8p15 multicast clients (`disable ntp`).
    #[arg(long, default_value_t = 1)]
    ref_clients: usize,
    /// Broadcast interval, log2 s. 0-2 (1-4 s) only for our servers (they
    /// get lab-allow-fast-poll); ntpd 4.2.8 clients abort on 1 or 2.
    /// ntpd servers use at least 3.
    #[arg(long, default_value_t = 3)]
    poll: u8,
    /// Drop every unicast reply of the servers to the clients (blackhole
    /// routes in the servers), so no calibration volley ever completes.
    #[arg(long)]
    drop_replies: bool,
    /// The servers' key type.
    #[arg(long, value_enum, default_value_t = KeyType::Mixed)]
    key_type: KeyType,
    /// Our clients' calibration: requests per volley (1-8).
    #[arg(long, default_value_t = 6)]
    cal_requests: u8,
    /// Our clients' calibration: further volleys after one without a usable reply (0-10).
    #[arg(long, default_value_t = 3)]
    cal_retries: u8,
    /// Our clients' calibration: random wait up to this many seconds before the first request.
    #[arg(long, default_value_t = 5)]
    cal_start_delay: u32,
    /// A line to append to every ntpd client's ntpd.conf (repeatable), e.g.
    /// "broadcastdelay 0.004" (no volley).
    #[arg(long = "ref-conf")]
    ref_conf: Vec<String>,
    /// Leave a lab whose `up` failed in place (for its logs); `down` removes it.
    #[arg(long)]
    keep_on_failure: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = labctl::check_name(&cli.name) {
        eprintln!("mcast-lab: {e}");
        return ExitCode::from(2);
    }
    if !matches!(cli.command, Cmd::List) && !rustix::process::geteuid().is_root() {
        eprintln!(
            "mcast-lab: needs root (it builds network namespaces); scripts/lab runs it through sudo"
        );
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Cmd::Up(args) => up(&cli.name, args),
        Cmd::Status { watch, json } => status(&cli.name, watch, json),
        Cmd::Down { keep_files } => down(&cli.name, keep_files),
        Cmd::List => {
            for name in labctl::list() {
                println!("{name}");
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcast-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn up(name: &str, a: UpArgs) -> Result<(), String> {
    let opts = UpOptions {
        servers: a.servers,
        ref_servers: a.ref_servers,
        clients: a.clients,
        ref_clients: a.ref_clients,
        poll: a.poll,
        drop_replies: a.drop_replies,
        key_type: a.key_type,
        cal_requests: a.cal_requests,
        cal_retries: a.cal_retries,
        cal_start_delay_s: a.cal_start_delay,
        ref_client_conf: a.ref_conf,
    };
    opts.check()?;
    if opts.poll < 3 && opts.ref_servers > 0 {
        eprintln!(
            "mcast-lab: note: ntpd servers broadcast at poll 3 (8 s) at the fastest; \
             only our servers use poll {}",
            opts.poll
        );
    }
    let bins = Bins::locate()?;
    let state = labctl::up(name, &opts, &bins, a.keep_on_failure)?;
    println!(
        "lab {name:?} is up: {} hosts, namespaces {}*, state and logs in {}",
        state.hosts.len(),
        labctl::ns_prefix(name),
        state.dir.display()
    );
    println!("  scripts/lab status --watch    the live table");
    println!("  scripts/lab down              remove everything");
    Ok(())
}

fn status(name: &str, watch: bool, json: bool) -> Result<(), String> {
    if json {
        let report = labctl::status(name)?;
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{text}");
        return Ok(());
    }
    if !watch {
        print!("{}", labctl::render(&labctl::status(name)?));
        return Ok(());
    }
    // Only reads: ends on Ctrl-C (the default SIGINT action) or when the
    // lab goes away.
    loop {
        let text = labctl::render(&labctl::status(name)?);
        let mut out = std::io::stdout().lock();
        let _ = write!(
            out,
            "\x1b[H\x1b[2J{text}\n(refreshing every 2 s; Ctrl-C ends)\n"
        );
        let _ = out.flush();
        drop(out);
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn down(name: &str, keep_files: bool) -> Result<(), String> {
    for line in labctl::down(name, keep_files)? {
        println!("{line}");
    }
    Ok(())
}
