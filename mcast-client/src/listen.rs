//! `mcast-client listen`: the socket and clock around
//! [`mcast_diag::listen::Session`] (the packet inspection itself is in
//! mcast-diag).

use std::process::ExitCode;

use mcast_keys::KeyStore;

use crate::cli::ListenArgs;

/// `listen`: the socket and clock around [`mcast_diag::listen::Session`].
pub(crate) fn listen(args: &ListenArgs) -> ExitCode {
    let keys = match &args.keys {
        Some(path) => match KeyStore::load(path) {
            Ok(k) => {
                for w in k.warnings() {
                    eprintln!("mcast-client: warning: {w}");
                }
                Some(k)
            }
            Err(e) => {
                eprintln!("mcast-client: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let broadcast = !args.group.is_multicast();
    if broadcast && (args.group.is_ipv6() || args.group.is_unspecified()) {
        eprintln!(
            "mcast-client: --group {}: not a multicast group or an IPv4 broadcast address",
            args.group
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcast-client: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let checking = keys.as_ref().map_or_else(
        || "MACs not checked (no --keys)".to_string(),
        |k| format!("MACs checked with {}", k.path().display()),
    );
    let mut session = mcast_diag::listen::Session::new(keys);
    let result = runtime.block_on(async {
        let (ep, _) =
            crate::daemon::open_group_socket(args.group, &args.interface, args.port, broadcast)?;
        let what = if broadcast { "broadcasts to" } else { "group" };
        eprintln!(
            "listening: {what} {} port {} on {}; {checking}; Ctrl-C to stop",
            args.group, args.port, args.interface
        );
        listen_loop(&ep, args, &mut session).await;
        Ok::<(), crate::daemon::DaemonError>(())
    });
    if let Err(e) = result {
        eprintln!("mcast-client: cannot listen: {e}");
        return ExitCode::from(2);
    }
    eprintln!("{}", session.summary());
    ExitCode::from(session.exit_code())
}

async fn listen_loop(
    ep: &mcast_sys::UdpEndpoint,
    args: &ListenArgs,
    session: &mut mcast_diag::listen::Session,
) {
    let deadline = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let expired = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    let stop = mcast_sys::wait_for_stop(|| {});
    tokio::pin!(expired, stop);
    let mut names = std::collections::HashMap::new();
    let mut buf = vec![0u8; 65_536];
    while args.count.is_none_or(|n| session.heard() < n) {
        let meta = tokio::select! {
            r = ep.recv(&mut buf) => match r {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("mcast-client: receive error: {e}");
                    continue;
                }
            },
            () = &mut expired => break,
            r = &mut stop => {
                if let Err(e) = r {
                    eprintln!("mcast-client: signal handlers: {e}");
                }
                break;
            }
        };
        let interface = match meta.ifindex {
            Some(i) => names
                .entry(i)
                .or_insert_with(|| mcast_sys::interface_by_index(i).unwrap_or(format!("#{i}")))
                .clone(),
            None => args.interface.clone(),
        };
        let arrival = meta.kernel_rx.unwrap_or_else(mcast_sys::RealClock::now);
        let bytes = buf.get(..meta.len).unwrap_or_default();
        let heard = session.on_datagram(bytes, meta.source, &interface, arrival);
        if args.json {
            println!("{}", serde_json::to_string(&heard).unwrap_or_default());
        } else {
            println!("{heard}");
        }
    }
}
