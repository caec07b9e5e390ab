//! The holder's access journal: every read attempt is durable before its answer, and reaches the
//! chain in batches, many events per `log_access` transaction, so a read does not cost one.
//!
//! Life of an access event:
//! 1. [`AccessJournal::record`] queues the event and appends it to the journal file, returning
//!    once the file is synced (concurrent reads share one sync, as the mempool log does). Only
//!    then is the read answered.
//! 2. The batcher ([`AccessJournal::flush`]) packs queued events into transactions of at
//!    most [`MAX_ACCESS_BATCH`] events and [`BATCH_BYTES`] bytes, every [`FLUSH_EVERY`] or as
//!    soon as a full batch is queued.
//! 3. After each finalized block, [`AccessJournal::settle`] forgets the events the chain holds,
//!    and queues again those whose batch left the mempool without committing (a rejected or
//!    evicted transaction), at most [`MAX_ATTEMPTS`] times.
//!
//! After a crash the journal is replayed: events the chain does not hold are queued again. The
//! state machine skips an event whose read request is already logged, so a batch sent twice
//! (once from the mempool log, once from the journal) logs each read once.

use crate::wal::Wal;
use medledger_types::audit::AccessNote;
use medledger_types::limits::{MAX_ACCESS_BATCH, MAX_TX_BYTES};
use medledger_types::{Canonical, Hash};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::path::Path;
use std::time::Duration;

/// Largest encoded batch of events: a transaction's limit, less room for its envelope.
pub const BATCH_BYTES: usize = MAX_TX_BYTES - 512;
/// How long a queued event waits for companions before its batch is sent.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// How many batches may carry one event before it is given up (and reported).
pub const MAX_ATTEMPTS: u32 = 3;
/// Size past which an idle journal (every event on chain) is emptied. Below it the file is left
/// to grow: a rewrite holds appends off for two syncs, which a busy holder would feel on reads.
pub const IDLE_REWRITE_BYTES: u64 = 4 << 20;
/// Most events waiting for the chain; past this a read is refused (`mempool_full`) rather than
/// answered with an event that could not be kept.
pub const MAX_QUEUED: usize = 65_536;

struct Queued {
    note: AccessNote,
    /// Encoded length (the journal encodes each event once; batches are packed by it).
    len: usize,
    attempts: u32,
}

#[derive(Default)]
struct Pending {
    /// Events not yet in a batch, oldest first.
    queue: VecDeque<Queued>,
    /// Batches in the mempool: transaction id → its events.
    inflight: HashMap<Hash, Vec<Queued>>,
}

impl Pending {
    fn len(&self) -> usize {
        self.queue.len() + self.inflight.values().map(Vec::len).sum::<usize>()
    }
    fn all(&self) -> impl Iterator<Item = &AccessNote> {
        self.queue.iter().chain(self.inflight.values().flatten()).map(|q| &q.note)
    }
}

pub struct AccessJournal {
    wal: Wal,
    /// See [`IDLE_REWRITE_BYTES`].
    idle_rewrite_bytes: u64,
    pending: Mutex<Pending>,
    /// Woken when a full batch is queued.
    pub full: tokio::sync::Notify,
}

/// Why an event could not be journaled.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{0} access events are waiting for the chain; try again shortly")]
    Full(usize),
    #[error("the access journal cannot be written: {0}")]
    Io(#[from] io::Error),
}

impl AccessJournal {
    /// Opens the journal at `path`. `committed` says whether the chain already holds the event
    /// of a read request; every other journaled event is queued again. Returns the journal and
    /// how many events it queued.
    pub fn open(path: &Path, committed: impl Fn(&Hash) -> bool) -> io::Result<(AccessJournal, usize)> {
        let (wal, records) = Wal::open(path)?;
        let mut seen = HashSet::new();
        let mut pending = Pending::default();
        for raw in records {
            // A record that does not decode was written by another version: skip it, loudly.
            let Ok(note) = AccessNote::from_bytes(&raw) else {
                tracing::warn!("skipping an undecodable access journal entry");
                continue;
            };
            if seen.insert(note.request_id) && !committed(&note.request_id) {
                pending.queue.push_back(Queued { note, len: raw.len(), attempts: 0 });
            }
        }
        let n = pending.queue.len();
        Ok((
            AccessJournal {
                wal,
                idle_rewrite_bytes: IDLE_REWRITE_BYTES,
                pending: Mutex::new(pending),
                full: tokio::sync::Notify::new(),
            },
            n,
        ))
    }

    /// Makes `note` durable and queues it for the chain. Returns once the journal is synced.
    pub fn record(&self, note: AccessNote) -> Result<(), JournalError> {
        let bytes = note.to_bytes();
        let id = note.request_id;
        {
            // Queued before it is appended, so a concurrent rewrite of the journal keeps it.
            let mut p = self.pending.lock();
            let n = p.len();
            if n >= MAX_QUEUED {
                return Err(JournalError::Full(n));
            }
            p.queue.push_back(Queued { note, len: bytes.len(), attempts: 0 });
            if p.queue.len() >= MAX_ACCESS_BATCH {
                self.full.notify_one();
            }
        }
        if let Err(e) = self.wal.append(&[&bytes]) {
            // Not durable, so not answered: withdraw it unless a batch already took it (then
            // the chain records an attempt that did happen).
            self.pending.lock().queue.retain(|q| q.note.request_id != id);
            return Err(e.into());
        }
        Ok(())
    }

    /// Sends every queued event to the chain in batches (oldest first, within the count and
    /// byte limits): `submit` turns one batch into a pooled transaction and returns its id. On
    /// an error the batch goes back to the front of the queue and the error is returned.
    /// Returns how many events were sent.
    pub fn flush<E>(&self, mut submit: impl FnMut(&[AccessNote]) -> Result<Hash, E>) -> Result<usize, E> {
        let mut p = self.pending.lock();
        let mut sent = 0;
        loop {
            let n = batch_len(&p.queue);
            if n == 0 {
                return Ok(sent);
            }
            let mut batch: Vec<Queued> = p.queue.drain(..n).collect();
            let notes: Vec<AccessNote> = batch.iter().map(|q| q.note.clone()).collect();
            match submit(&notes) {
                Ok(tx) => {
                    for q in &mut batch {
                        q.attempts += 1;
                    }
                    p.inflight.insert(tx, batch);
                    sent += n;
                }
                Err(e) => {
                    for q in batch.into_iter().rev() {
                        p.queue.push_front(q);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// After a finalized block: forgets committed events; queues again the events of batches
    /// that left the mempool uncommitted (dropping, with a warning, those out of attempts); and
    /// rewrites the journal when it has grown. Returns the events given up. A batch with an
    /// event whose fate `committed` cannot tell (`None`: the state it reads is damaged) stays in
    /// flight as it is.
    pub fn settle(
        &self,
        is_pending: impl Fn(&Hash) -> bool,
        committed: impl Fn(&Hash) -> Option<bool>,
    ) -> Vec<AccessNote> {
        let mut given_up = Vec::new();
        {
            let mut p = self.pending.lock();
            let done: Vec<Hash> = p.inflight.keys().filter(|tx| !is_pending(tx)).copied().collect();
            for tx in done {
                let batch = p.inflight.remove(&tx).unwrap_or_default();
                let Some(fates) = batch.iter().map(|q| committed(&q.note.request_id)).collect::<Option<Vec<bool>>>()
                else {
                    p.inflight.insert(tx, batch);
                    continue;
                };
                for (q, committed) in batch.into_iter().zip(fates) {
                    if committed {
                        continue;
                    }
                    if q.attempts >= MAX_ATTEMPTS {
                        given_up.push(q.note);
                    } else {
                        p.queue.push_back(q);
                    }
                }
            }
        }
        for n in &given_up {
            tracing::error!(
                "access event of read request {} was not accepted by the chain after {MAX_ATTEMPTS} batches; dropped",
                n.request_id
            );
        }
        if self.wal.needs_compaction() || (self.wal.len() > self.idle_rewrite_bytes && self.is_idle()) {
            let r = self.wal.rewrite(|| self.pending.lock().all().map(|n| n.to_bytes()).collect());
            if let Err(e) = r {
                tracing::warn!("cannot rewrite the access journal: {e}");
            }
        }
        given_up
    }

    /// Empties the journal once idle past `bytes` instead of [`IDLE_REWRITE_BYTES`] (tests).
    pub fn with_idle_rewrite(mut self, bytes: u64) -> AccessJournal {
        self.idle_rewrite_bytes = bytes;
        self
    }

    /// Nothing queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.pending.lock().len() == 0
    }

    /// Events waiting for the chain (queued or in a batch not yet committed).
    pub fn backlog(&self) -> usize {
        self.pending.lock().len()
    }

    /// Bytes in the journal file.
    pub fn file_len(&self) -> u64 {
        self.wal.len()
    }
}

/// How many queued events the next batch takes: at most [`MAX_ACCESS_BATCH`], and at most
/// [`BATCH_BYTES`] encoded (one event always fits: the limits registry asserts it).
fn batch_len(queue: &VecDeque<Queued>) -> usize {
    let mut bytes = 0;
    let mut n = 0;
    for q in queue {
        if n == MAX_ACCESS_BATCH || (n > 0 && bytes + q.len > BATCH_BYTES) {
            break;
        }
        bytes += q.len;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_types::{AccessOutcome, Keypair, Purpose, SealedNote};

    fn note(i: u32, reason_bytes: usize) -> AccessNote {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&i.to_be_bytes());
        AccessNote {
            request_id: Hash(id),
            record_id: Hash([1; 32]),
            version: 1,
            requester: Keypair::from_seed(1).public(),
            purpose: Purpose::Treatment,
            outcome: if reason_bytes == 0 { AccessOutcome::Served } else { AccessOutcome::Denied },
            reason: if reason_bytes == 0 {
                SealedNote::default()
            } else {
                SealedNote {
                    ciphertext: vec![0; reason_bytes],
                    recipients: vec![medledger_types::NoteKey {
                        recipient: Keypair::from_seed(2).public(),
                        wrapped: [0; 80],
                    }],
                }
            },
        }
    }

    #[test]
    fn events_are_batched_within_limits_and_survive_a_reopen_until_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.wal");
        let (j, queued) = AccessJournal::open(&path, |_| false).unwrap();
        assert_eq!(queued, 0);
        for i in 0..150 {
            j.record(note(i, 0)).unwrap();
        }
        for i in 150..160 {
            j.record(note(i, 280)).unwrap();
        }
        let mut batches = Vec::new();
        let sent = j
            .flush(|b: &[AccessNote]| {
                let bytes: usize = b.iter().map(|n| n.to_bytes().len()).sum();
                assert!(b.len() <= MAX_ACCESS_BATCH && bytes <= BATCH_BYTES, "{} events, {bytes} bytes", b.len());
                batches.push(b.to_vec());
                Ok::<_, ()>(Hash([batches.len() as u8; 32]))
            })
            .unwrap();
        assert_eq!(sent, 160);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), vec![64, 64, 32]);
        // A failed submission puts the batch back, in order.
        j.record(note(999, 0)).unwrap();
        assert!(j.flush(|_| Err::<Hash, _>("mempool full")).is_err());
        assert_eq!(j.backlog(), 161);

        // Batch 1 committed, batch 2 still pending, batch 3 dropped from the mempool: its
        // events are queued again; batch 1's are forgotten.
        let committed: HashSet<Hash> = batches[0].iter().map(|n| n.request_id).collect();
        let given_up = j.settle(|tx| *tx == Hash([2; 32]), |id| Some(committed.contains(id)));
        assert!(given_up.is_empty());
        assert_eq!(j.backlog(), 161 - 64);

        // A crash: everything journaled comes back except what the chain holds.
        drop(j);
        let (j, queued) = AccessJournal::open(&path, |id| committed.contains(id)).unwrap();
        let j = j.with_idle_rewrite(0);
        assert_eq!(queued, 161 - 64);
        // Once all is committed, the journal is emptied.
        let mut n = 0u8;
        j.flush(|_| {
            n += 1;
            Ok::<_, ()>(Hash([100 + n; 32]))
        })
        .unwrap();
        assert_eq!(n, 2, "two batches in flight");
        // Over damaged state a batch's fate is unknown: it stays in flight, untouched.
        j.settle(|_| false, |_| None);
        assert_eq!(j.backlog(), 161 - 64);
        assert!(!j.is_idle());
        j.settle(|_| false, |_| Some(true));
        assert!(j.is_idle());
        assert_eq!(j.file_len(), 0);
    }

    #[test]
    fn an_event_the_chain_keeps_refusing_is_given_up_after_its_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = AccessJournal::open(&dir.path().join("access.wal"), |_| false).unwrap();
        j.record(note(1, 0)).unwrap();
        for attempt in 1..=MAX_ATTEMPTS {
            assert_eq!(j.flush(|_| Ok::<_, ()>(Hash([attempt as u8; 32]))).unwrap(), 1);
            let given_up = j.settle(|_| false, |_| Some(false));
            assert_eq!(given_up.len(), usize::from(attempt == MAX_ATTEMPTS));
        }
        assert!(j.is_idle());
    }
}
