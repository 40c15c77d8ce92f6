//! The long-running tasks of the daemon, started after the configuration is
//! loaded: listeners, queue manager, wake-up socket.

use std::rc::Rc;

use smol::LocalExecutor;

use crate::daemon::SharedConfig;

/// Handles to the running services.
pub struct Services {
    _cfg: SharedConfig,
}

/// Binds the listeners (before dropping root), then spawns every service.
pub async fn start(
    _ex: &Rc<LocalExecutor<'static>>,
    cfg: SharedConfig,
) -> Result<Services, String> {
    {
        let c = cfg.borrow();
        log::info!(target: "master", "daemon started -- version {}, configuration {}", env!("CARGO_PKG_VERSION"), c.origin());
    }
    Ok(Services { _cfg: cfg })
}

impl Services {
    /// Called after SIGHUP replaced the configuration.
    pub fn reloaded(&self) {}

    /// Stops accepting, lets sessions finish (bounded), flushes state.
    pub async fn shutdown(&self) {}
}
