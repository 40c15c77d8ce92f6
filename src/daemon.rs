//! `tern run`: one OS thread running a `smol::LocalExecutor`. Owns the
//! signals (SIGTERM/SIGINT drain and exit, SIGHUP reloads the configuration)
//! and starts the listeners and the queue manager; without `-f` it first
//! detaches from the terminal ([`detach`]).

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

/// The write end of the pipe to the parent that waits for a detached
/// daemon to start ([`detach`]); a no-op in the foreground.
pub struct Ready(Option<std::fs::File>);

impl Ready {
    /// In the foreground nobody waits.
    pub fn foreground() -> Ready {
        Ready(None)
    }

    /// Start-up finished (listeners bound): the parent exits 0.
    pub fn ok(&mut self) {
        use std::io::Write;
        if let Some(mut f) = self.0.take() {
            let _ = f.write_all(b"ok\n");
        }
    }

    /// Start-up failed: the parent prints `msg` and exits 1.
    pub fn fail(&mut self, msg: &str) {
        use std::io::Write;
        if let Some(mut f) = self.0.take() {
            let _ = writeln!(f, "{msg}");
        }
    }
}

/// `tern run` without `-f`: forks into the background, like `postfix
/// start`. The parent waits until the child has bound its listeners and
/// exits 0, or prints the child's start-up error and exits 1; it never
/// returns. The child (this function returns there) leaves the terminal's
/// session and has its standard streams on /dev/null. Must be called before
/// any thread is started.
pub fn detach() -> Result<Ready, String> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both fds were just created and are owned by these Files.
    let (mut rd, wr) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    // SAFETY: no other thread exists yet (documented precondition).
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            drop(rd);
            // SAFETY: plain syscalls in the child; /dev/null is opened with
            // a NUL-terminated literal, and dup2 targets the standard fds.
            unsafe {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    for fd in 0..3 {
                        libc::dup2(null, fd);
                    }
                    if null > 2 {
                        libc::close(null);
                    }
                }
            }
            Ok(Ready(Some(wr)))
        }
        child => {
            drop(wr);
            let mut said = String::new();
            let _ = rd.read_to_string(&mut said);
            if said.starts_with("ok\n") {
                std::process::exit(0);
            }
            if said.trim().is_empty() {
                eprintln!(
                    "tern: fatal: the daemon (pid {child}) exited during start-up; see the log"
                );
            } else {
                eprint!("{said}");
            }
            std::process::exit(1);
        }
    }
}

/// Runs the daemon until SIGTERM/SIGINT; `ready` learns when start-up is
/// done. Returns an error text for start-up failures (bad config, ports
/// that cannot be bound).
pub fn run(source: ConfigSource, cfg: Config, ready: &mut Ready) -> Result<(), String> {
    let ex = Rc::new(LocalExecutor::new());
    let shared: SharedConfig = Rc::new(RefCell::new(Rc::new(cfg)));
    let ex2 = ex.clone();
    smol::block_on(ex.run(async move {
        let mut signals = Signals::new([Signal::Term, Signal::Int, Signal::Hup])
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        let services = crate::services::start(&ex2, shared.clone()).await?;
        ready.ok();
        // Start-up code (configuration, keys, certificates, the services'
        // first runs: queue scan, pickup) is not needed again until a
        // reload: once it is over, let its pages leave the resident set.
        ex2.spawn(async {
            smol::Timer::after(std::time::Duration::from_millis(200)).await;
            let released = crate::memtrim::release_startup_pages();
            log::debug!(target: "master", "released {} KiB of start-up code pages", released / 1024);
        })
        .detach();
        while let Some(sig) = signals.next().await {
            match sig {
                Ok(Signal::Hup) => match source.load() {
                    // Swapped only once every part of it has loaded.
                    Ok(new) => {
                        services.reload(new);
                        crate::memtrim::release_startup_pages();
                    }
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
