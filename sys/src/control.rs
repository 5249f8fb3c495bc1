//! What both daemons share around their control sockets and signals: a
//! Unix socket that answers one command line per connection, the client
//! side of it, and the SIGTERM/SIGINT/SIGHUP loop.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// Binds the control socket at `path`, creating its folder and replacing a
/// socket file left by a previous run that no one listens on.
pub fn bind_control(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
    UnixListener::bind(path)
}

/// Binds a socket only its owner may connect to (mode 0600), for
/// operations that change what a daemon does.
pub fn bind_private(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let listener = bind_control(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// The real user id of this process (who started it, before any switch
/// of user): with root, who may use a daemon's operations socket.
pub fn real_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// Who is on the other end of a control connection (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its user id.
    pub uid: u32,
    /// Its group id.
    pub gid: u32,
    /// Its process id, when the kernel says.
    pub pid: Option<i32>,
}

/// Serves the control socket: each connection sends one command line
/// (read for at most 2 s) and gets `handler(command)` back.
pub async fn serve_control(
    listener: UnixListener,
    handler: Arc<dyn Fn(&str) -> String + Send + Sync>,
) {
    serve_control_with_peer(listener, Arc::new(move |command, _| handler(command))).await;
}

/// A control handler that is told who connected.
pub type PeerHandler = Arc<dyn Fn(&str, Option<Peer>) -> String + Send + Sync>;

/// [`serve_control`], with the connecting process's credentials given to
/// the handler (`None` when the kernel gives none: refuse then).
pub async fn serve_control_with_peer(listener: UnixListener, handler: PeerHandler) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let peer = stream.peer_cred().ok().map(|c| Peer {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
        });
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let mut req = [0u8; 256];
            let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut req))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
            let command = String::from_utf8_lossy(req.get(..n).unwrap_or_default())
                .trim()
                .to_string();
            let reply = handler(&command, peer);
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Sends one command line to a control socket and returns the answer.
pub fn control_request(socket: &Path, command: &str) -> io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("{command}\n").as_bytes())?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

/// Waits for SIGTERM or SIGINT, calling `on_reload` on each SIGHUP.
pub async fn wait_for_stop(mut on_reload: impl FnMut()) -> io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => on_reload(),
        }
    }
}

/// Runs a daemon's main future on a multi-threaded runtime and turns the
/// outcome into the process exit status, reporting errors as `name: error`.
pub fn run_daemon<E: std::fmt::Display>(
    name: &str,
    daemon: impl std::future::Future<Output = Result<(), E>>,
) -> std::process::ExitCode {
    run_on(
        name,
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        daemon,
    )
}

/// As [`run_daemon`], on a runtime whose tasks all run on the calling
/// thread. For a daemon that keeps a capability after
/// [`crate::drop_privileges`] and uses it from its tasks: capabilities are
/// per thread, and only the thread that dropped privileges (and threads it
/// starts later) holds the kept ones.
pub fn run_daemon_single_threaded<E: std::fmt::Display>(
    name: &str,
    daemon: impl std::future::Future<Output = Result<(), E>>,
) -> std::process::ExitCode {
    run_on(
        name,
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        daemon,
    )
}

fn run_on<E: std::fmt::Display>(
    name: &str,
    runtime: io::Result<tokio::runtime::Runtime>,
    daemon: impl std::future::Future<Output = Result<(), E>>,
) -> std::process::ExitCode {
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
