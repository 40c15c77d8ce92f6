//! Group commit: sessions that finish DATA at about the same time share one
//! spool commit (one directory fsync for all of them), and each gets its
//! `250` only after that commit is durable. `fsync` blocks the only thread,
//! so sharing it is what keeps a slow flash chip from stalling every
//! session once per message.

use std::cell::RefCell;
use std::rc::Rc;

use smol::channel::{bounded, Receiver, Sender};

use crate::queue::{Incoming, Spool};

type Reply = Sender<Result<String, String>>;

/// The shared committer; one per daemon.
pub struct GroupCommit {
    tx: Sender<(Incoming, Reply)>,
    rx: Receiver<(Incoming, Reply)>,
    batches: RefCell<(u64, u64)>,
}

impl GroupCommit {
    /// A committer whose queue holds at most `capacity` waiting messages
    /// (the connection limit: a session waits for one commit at a time).
    pub fn new(capacity: usize) -> Rc<GroupCommit> {
        let (tx, rx) = bounded(capacity.max(1));
        Rc::new(GroupCommit {
            tx,
            rx,
            batches: RefCell::new((0, 0)),
        })
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
    /// session queue theirs (one executor turn), commits them all at once.
    pub async fn run(self: Rc<Self>, spool: Rc<Spool>) {
        while let Ok(first) = self.rx.recv().await {
            smol::future::yield_now().await;
            let mut batch = vec![first];
            while let Ok(more) = self.rx.try_recv() {
                batch.push(more);
            }
            let (mut incs, replies): (Vec<Incoming>, Vec<Reply>) = batch.into_iter().unzip();
            let result = spool.commit_batch(&mut incs);
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
