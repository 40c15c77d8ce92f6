//! `tern run`: one OS thread running a `smol::LocalExecutor`. Owns the
//! signals (SIGTERM/SIGINT drain and exit, SIGHUP reloads the configuration)
//! and starts the listeners and the queue manager.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use async_signal::{Signal, Signals};
use smol::stream::StreamExt;
use smol::LocalExecutor;

use crate::config::Config;

/// Where the running configuration came from, for SIGHUP reloads.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A file, re-read on SIGHUP.
    File(PathBuf),
    /// The built-in development configuration.
    BuiltinDev,
}

impl ConfigSource {
    /// Loads (or reloads) the configuration.
    pub fn load(&self) -> Result<Config, Vec<crate::config::ConfigError>> {
        match self {
            ConfigSource::File(p) => Config::load(p),
            ConfigSource::BuiltinDev => {
                Config::parse_str(crate::config::DEV_CONFIG, "<built-in dev>")
            }
        }
    }
}

/// The configuration shared by the tasks on the executor thread; replaced
/// wholesale on reload, so a task holding an `Rc<Config>` keeps a
/// consistent snapshot.
pub type SharedConfig = Rc<RefCell<Rc<Config>>>;

/// Runs the daemon until SIGTERM/SIGINT. Returns an error text for
/// start-up failures (bad config, ports that cannot be bound).
pub fn run(source: ConfigSource, cfg: Config) -> Result<(), String> {
    let ex = Rc::new(LocalExecutor::new());
    let shared: SharedConfig = Rc::new(RefCell::new(Rc::new(cfg)));
    let ex2 = ex.clone();
    smol::block_on(ex.run(async move {
        let mut signals = Signals::new([Signal::Term, Signal::Int, Signal::Hup])
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        let services = crate::services::start(&ex2, shared.clone()).await?;
        while let Some(sig) = signals.next().await {
            match sig {
                Ok(Signal::Hup) => match source.load() {
                    // Swapped only once every part of it has loaded.
                    Ok(new) => services.reload(new),
                    Err(errs) => {
                        for e in &errs {
                            log::warn!(target: "master", "warning: reload failed, keeping the old configuration: {e}");
                        }
                    }
                },
                Ok(_) => {
                    log::info!(target: "master", "terminating on signal, draining sessions");
                    services.shutdown().await;
                    break;
                }
                Err(e) => log::warn!(target: "master", "signal stream error: {e}"),
            }
        }
        log::info!(target: "master", "stopped");
        Ok(())
    }))
}
