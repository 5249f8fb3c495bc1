//! Threads with a runtime of their own (broadcasts, receive workers).

use super::{DaemonError, io_err};

/// A thread of its own with a single-threaded tokio runtime. Sockets are
/// registered with the runtime (bound inside [`ThreadRuntime::enter`])
/// before the thread starts, so that all of them are open before the
/// server drops its privileges.
pub(super) struct ThreadRuntime {
    pub(super) name: String,
    pub(super) runtime: Option<tokio::runtime::Runtime>,
}

impl ThreadRuntime {
    pub(super) fn new(name: impl Into<String>) -> Result<Self, DaemonError> {
        let name = name.into();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_err(format!("runtime of thread {name}")))?;
        Ok(ThreadRuntime {
            name,
            runtime: Some(runtime),
        })
    }

    /// Makes this runtime the current one (for `UdpEndpoint::bind`).
    pub(super) fn enter(&self) -> Option<tokio::runtime::EnterGuard<'_>> {
        self.runtime.as_ref().map(tokio::runtime::Runtime::enter)
    }

    /// Starts the thread, running the tasks `tasks` makes until all end;
    /// `ended` hears of it when they do.
    pub(super) fn start<F>(
        mut self,
        tasks: impl FnOnce() -> Vec<F> + Send + 'static,
        ended: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Result<(), DaemonError>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let Some(runtime) = self.runtime.take() else {
            return Ok(());
        };
        let name = self.name.clone();
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut set = tokio::task::JoinSet::new();
                    for task in tasks() {
                        set.spawn(task);
                    }
                    while set.join_next().await.is_some() {}
                });
                let _ = ended.send(name);
            })
            .map(drop)
            .map_err(io_err(format!("start thread {}", self.name)))
    }
}

impl Drop for ThreadRuntime {
    fn drop(&mut self) {
        // Not started (an error before): dropping a runtime inside the main
        // runtime's context would panic; this form does not block.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
