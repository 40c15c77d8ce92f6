//! Group commit: sessions that finish DATA at about the same time share one
//! spool commit (one `syncfs` for all of them), and each gets its `250`
//! only after that commit is durable. The sync blocks the only thread, so
//! sharing it is what keeps a slow flash chip from stalling every session
//! once per message.
//!
//! While the sync runs, no session makes progress; so when it is slow, the
//! committer first waits a little for the other open sessions to finish
//! their messages — at most as long as the last sync took (never over
//! 20 ms), and not at all when no other session is open (one client alone
//! never waits). Paired runs with a 10 ms sync (bench/slowsync.c), 20
//! sessions: batches of ~6 without the wait, ~11 waiting for sessions in
//! DATA for half a sync, ~19 waiting for every open session for a whole
//! sync (end to end 236 -> 490 -> 630 msg/s); with no added latency the
//! wait is tens of microseconds and the rate unchanged.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use smol::channel::{bounded, Receiver, Sender};

use crate::queue::{Incoming, Spool};

type Reply = Sender<Result<String, String>>;

/// The shared committer; one per daemon.
pub struct GroupCommit {
    tx: Sender<(Incoming, Reply)>,
    rx: Receiver<(Incoming, Reply)>,
    batches: RefCell<(u64, u64)>,
    /// How long the last batch's sync took.
    last_sync: Cell<Duration>,
    /// Inbound sessions open now.
    open: Cell<usize>,
}

/// An open inbound session, counted until dropped.
pub struct Open(Rc<GroupCommit>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get().saturating_sub(1));
    }
}

/// Longest the committer ever waits for more messages, whatever the
/// flash: a client waiting for its `250` must not notice.
const MAX_GATHER: Duration = Duration::from_millis(20);

impl GroupCommit {
    /// A committer whose queue holds at most `capacity` waiting messages
    /// (the connection limit: a session waits for one commit at a time).
    pub fn new(capacity: usize) -> Rc<GroupCommit> {
        let (tx, rx) = bounded(capacity.max(1));
        Rc::new(GroupCommit {
            tx,
            rx,
            batches: RefCell::new((0, 0)),
            last_sync: Cell::new(Duration::ZERO),
            open: Cell::new(0),
        })
    }

    /// Counts an open inbound session until the guard is dropped.
    pub fn session(self: &Rc<Self>) -> Open {
        self.open.set(self.open.get() + 1);
        Open(Rc::clone(self))
    }

    /// Commits `inc` together with whatever else is waiting; resolves to
    /// the queue ID once the message is durable.
    pub async fn commit(&self, inc: Incoming) -> Result<String, String> {
        let (reply_tx, reply_rx) = bounded(1);
        self.tx
            .send((inc, reply_tx))
            .await
            .map_err(|_| "committer stopped".to_string())?;
        reply_rx
            .recv()
            .await
            .map_err(|_| "committer stopped".to_string())?
    }

    /// `(batches, messages)` committed so far.
    pub fn stats(&self) -> (u64, u64) {
        *self.batches.borrow()
    }

    /// The committer task: waits for one message, lets every other ready
    /// session queue theirs (one executor turn), waits for the other open
    /// sessions as long as the flash makes worthwhile, and commits them
    /// all at once.
    pub async fn run(self: Rc<Self>, spool: Rc<Spool>) {
        while let Ok(first) = self.rx.recv().await {
            smol::future::yield_now().await;
            let mut batch = vec![first];
            while let Ok(more) = self.rx.try_recv() {
                batch.push(more);
            }
            let until = Instant::now() + self.last_sync.get().min(MAX_GATHER);
            while self.open.get() > batch.len() && batch.len() < self.rx.capacity().unwrap_or(1) {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                // A short sleep lets the reactor deliver the bodies still
                // arriving; each session that finishes queues its message.
                smol::Timer::after(left.min(Duration::from_micros(500))).await;
                while let Ok(more) = self.rx.try_recv() {
                    batch.push(more);
                }
            }
            let (mut incs, replies): (Vec<Incoming>, Vec<Reply>) = batch.into_iter().unzip();
            let t0 = Instant::now();
            let result = spool.commit_batch(&mut incs);
            self.last_sync.set(t0.elapsed());
            {
                let mut b = self.batches.borrow_mut();
                b.0 += 1;
                b.1 += incs.len() as u64;
            }
            for (inc, reply) in incs.iter().zip(replies) {
                let r = match (&result, inc.is_committed()) {
                    (_, true) => Ok(inc.id().to_string()),
                    (Err(e), false) => Err(e.to_string()),
                    (Ok(()), false) => Err(format!("{}: not committed", inc.id())),
                };
                let _ = reply.try_send(r);
            }
        }
    }
}
