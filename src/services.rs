//! The long-running tasks of the daemon, started after the configuration is
//! loaded: listeners, group committer, queue manager, wake-up socket.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use smol::LocalExecutor;

use crate::daemon::SharedConfig;
use crate::queue::Spool;
use crate::smtpd::{self, commit::GroupCommit, Listeners, Shared};
use crate::tls::BufferPool;

/// Handles to the running services.
pub struct Services {
    cfg: SharedConfig,
    smtpd: Rc<RefCell<Rc<Shared>>>,
    spool: Rc<Spool>,
    committer: Rc<GroupCommit>,
    pool: Rc<BufferPool>,
    delivery: Rc<crate::delivery::QueueManager>,
    /// The accept loops; dropped (listeners closed) when draining.
    accept: RefCell<Vec<smol::Task<()>>>,
}

/// Binds the listeners (before dropping root), then spawns every service.
pub async fn start(ex: &Rc<LocalExecutor<'static>>, cfg: SharedConfig) -> Result<Services, String> {
    let c = cfg.borrow().clone();
    let queue_dir = c.queue_directory();
    let spool = Rc::new(Spool::open(&queue_dir).map_err(|e| format!("queue_directory: {e}"))?);
    let max = usize::try_from(c.int("max_connections"))
        .unwrap_or(32)
        .max(1);
    let pool = Rc::new(BufferPool::new(max));
    let per_conn =
        crate::tls::pool::SLOT_BYTES + smtpd::session::LINE_BUF + smtpd::session::DATA_BUF + 8192;
    log::info!(
        target: "master",
        "daemon started -- version {}, configuration {}, max_connections {}, fixed buffers {} KiB reserved ({} B per connection, plus TLS handshake state)",
        env!("CARGO_PKG_VERSION"),
        c.origin(),
        max,
        pool.budget_bytes() / 1024,
        per_conn
    );
    let listeners = Listeners::bind(&c)?;
    let committer = GroupCommit::new(max);
    ex.spawn(committer.clone().run(spool.clone())).detach();

    let delivery = crate::delivery::QueueManager::new(c.clone(), spool.clone(), pool.clone())?;
    let kick = delivery.clone();
    let shared = Shared::from_config(
        &c,
        spool.clone(),
        committer.clone(),
        Box::new(move |id: &str| kick.notify_new(id)),
    )?;
    // After the keys and password file are read: like Postfix, they may be
    // readable by root only.
    match c.get("mail_owner").trim() {
        // The dev config: stay whoever started it (`cargo run` as root in a
        // fresh container has no `tern` user, and ./run may be private).
        "" => {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                log::warn!(target: "master", "mail_owner is empty: not dropping root privileges");
            }
        }
        owner => {
            // Local delivery into users' homes needs root: a helper keeps it.
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                match crate::local::helper::spawn() {
                    Ok(pid) => {
                        log::info!(target: "master", "local delivery helper started, pid {pid}")
                    }
                    Err(e) => {
                        log::error!(target: "master", "cannot start the local delivery helper (home_mailbox delivery will fail): {e}")
                    }
                }
            }
            if smtpd::listen::drop_privileges(owner, &[queue_dir.as_path()])? {
                log::info!(target: "master", "running as {owner}");
            }
        }
    }
    let smtpd = Rc::new(RefCell::new(Rc::new(shared)));
    let accept = RefCell::new(listeners.spawn(ex, smtpd.clone(), pool.clone())?);
    delivery.clone().spawn(ex, &queue_dir)?;
    Ok(Services {
        cfg,
        smtpd,
        spool,
        committer,
        pool,
        delivery,
        accept,
    })
}

impl Services {
    /// Called after SIGHUP replaced the configuration: rebuilds what can
    /// change without rebinding (certificates, passwords, limits, tables).
    /// Listener addresses and `max_connections` need a restart.
    pub fn reloaded(&self) {
        let c = self.cfg.borrow().clone();
        let kick = self.delivery.clone();
        match Shared::from_config(
            &c,
            self.spool.clone(),
            self.committer.clone(),
            Box::new(move |id: &str| kick.notify_new(id)),
        ) {
            Ok(s) => *self.smtpd.borrow_mut() = Rc::new(s),
            Err(e) => log::error!(target: "master", "reload: smtpd settings kept: {e}"),
        }
        if let Err(e) = self.delivery.reload(c) {
            log::error!(target: "master", "reload: delivery settings kept: {e}");
        }
    }

    /// Stops taking new work and lets sessions finish, for at most 10 s.
    pub async fn shutdown(&self) {
        // Close the listening sockets first: new clients get "connection
        // refused" and try another MX or later, as with a stopped Postfix.
        self.accept.borrow_mut().clear();
        self.delivery.stop();
        let until = Instant::now() + Duration::from_secs(10);
        while self.pool.available() < self.pool.capacity() && Instant::now() < until {
            smol::Timer::after(Duration::from_millis(50)).await;
        }
        let (batches, messages) = self.committer.stats();
        log::info!(target: "master", "{messages} messages committed in {batches} group commits");
    }
}
