//! The reading log: where a monitoring node keeps its readings' ciphertexts.
//!
//! Readings are small and arrive thousands a second. As one file each (create, write, two
//! `fsync`s), the kernel spent more time on them than everything else a reading costs. Here
//! they are rows of one embedded table (redb), keyed by `device || digest`, written by one
//! writer thread in groups: every reading queued while a commit runs goes into the next
//! transaction, so one `fsync` serves them all (group commit). A caller returns only when its
//! reading's transaction is durable.
//!
//! Only ciphertexts live here. The data keys (one per device per key epoch, wrapped for the
//! readers) are vault objects, so deleting an epoch's keys erases its readings wherever their
//! ciphertexts lie, including pages redb has freed but not overwritten.

use crate::VaultError;
use medledger_types::Hash;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;

const READINGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("readings");
/// The same readings by time: `device || time (u64 BE) || digest`, empty values. A restarted
/// node finds here what no anchor covers yet.
const BY_TIME: TableDefinition<&[u8], &[u8]> = TableDefinition::new("readings_by_time");

/// Most readings one transaction takes (the rest wait for the next one).
pub const MAX_GROUP: usize = 4096;

struct Job {
    device: Hash,
    digest: Hash,
    time_ms: u64,
    value: Vec<u8>,
    done: mpsc::SyncSender<Result<(), VaultError>>,
}

/// The table and its writer thread (dropping the log finishes the queued writes, then closes
/// the database, so it can be opened again).
pub struct ReadingLog {
    db: Arc<Database>,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ReadingLog {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn db_err(e: impl std::fmt::Display) -> VaultError {
    VaultError::ReadingLog(e.to_string())
}

/// A time key's reading: (time, digest).
fn time_entry(k: &[u8]) -> Result<(u64, Hash), VaultError> {
    let (Some(Ok(ms)), Some(Ok(d))) = (k.get(32..40).map(<[u8; 8]>::try_from), k.get(40..72).map(<[u8; 32]>::try_from))
    else {
        return Err(VaultError::Corrupt(format!("reading log: a time key of {} bytes", k.len())));
    };
    Ok((u64::from_be_bytes(ms), Hash(d)))
}

fn key(device: &Hash, digest: &Hash) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(&device.0);
    k[32..].copy_from_slice(&digest.0);
    k
}

impl ReadingLog {
    /// Opens (or creates) the log at `path`.
    pub fn open(path: &Path) -> Result<ReadingLog, VaultError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| VaultError::Store(e.into()))?;
        }
        let db = Arc::new(Database::create(path).map_err(db_err)?);
        let w = db.begin_write().map_err(db_err)?;
        w.open_table(READINGS).map_err(db_err)?;
        w.open_table(BY_TIME).map_err(db_err)?;
        w.commit().map_err(db_err)?;
        let (jobs, rx) = mpsc::channel::<Job>();
        let writer = db.clone();
        let writer = std::thread::Builder::new()
            .name("reading-log".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(j) => group.push(j),
                            Err(_) => break,
                        }
                    }
                    let results = write_group(&writer, &group);
                    for (job, r) in group.into_iter().zip(results) {
                        // The caller may have gone; its reading is stored all the same.
                        let _ = job.done.send(r);
                    }
                }
            })
            .map_err(|e| VaultError::Store(e.into()))?;
        Ok(ReadingLog { db, jobs: Some(jobs), writer: Some(writer) })
    }

    /// Stores `value` under (device, digest), taken at `time_ms`, durably, once: an identical
    /// retry is a no-op, another value under the same key is refused and changes nothing.
    pub fn put(&self, device: &Hash, digest: &Hash, time_ms: u64, value: Vec<u8>) -> Result<(), VaultError> {
        let (done, rx) = mpsc::sync_channel(1);
        let jobs = self.jobs.as_ref().ok_or_else(|| db_err("closed"))?;
        jobs.send(Job { device: *device, digest: *digest, time_ms, value, done })
            .map_err(|_| db_err("the writer stopped"))?;
        rx.recv().map_err(|_| db_err("the writer stopped"))?
    }

    pub fn get(&self, device: &Hash, digest: &Hash) -> Result<Option<Vec<u8>>, VaultError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(READINGS).map_err(db_err)?;
        Ok(t.get(key(device, digest).as_slice()).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    /// The readings of `device` taken after `after_ms` (all of them for `None`), oldest first,
    /// at most `limit`: (time, digest).
    pub fn after(&self, device: &Hash, after_ms: Option<u64>, limit: usize) -> Result<Vec<(u64, Hash)>, VaultError> {
        let start = match after_ms {
            Some(ms) => match ms.checked_add(1) {
                Some(next) => time_key(device, next, &Hash([0; 32])),
                None => return Ok(Vec::new()),
            },
            None => time_key(device, 0, &Hash([0; 32])),
        };
        self.times(device, start, false, limit)
    }

    /// The last `limit` readings of `device` by time, oldest first: (time, digest).
    pub fn latest(&self, device: &Hash, limit: usize) -> Result<Vec<(u64, Hash)>, VaultError> {
        let mut out = self.times(device, time_key(device, 0, &Hash([0; 32])), true, limit)?;
        out.reverse();
        Ok(out)
    }

    /// At most `limit` readings of `device` from the time key `start` on, oldest first or,
    /// with `newest_first`, from the last.
    fn times(
        &self,
        device: &Hash,
        start: [u8; 72],
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<(u64, Hash)>, VaultError> {
        let end = time_key(device, u64::MAX, &Hash([0xff; 32]));
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(BY_TIME).map_err(db_err)?;
        let range = t.range(start.as_slice()..=end.as_slice()).map_err(db_err)?;
        let entries: Box<dyn Iterator<Item = _>> = if newest_first { Box::new(range.rev()) } else { Box::new(range) };
        entries.take(limit).map(|e| time_entry(e.map_err(db_err)?.0.value())).collect()
    }

    /// The devices with readings in the log, at most `limit` (one seek per device: the next
    /// key after the highest one the last device can have).
    pub fn devices(&self, limit: usize) -> Result<Vec<Hash>, VaultError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(BY_TIME).map_err(db_err)?;
        let mut out: Vec<Hash> = Vec::new();
        while out.len() < limit {
            let past = out.last().map(|d| time_key(d, u64::MAX, &Hash([0xff; 32])));
            let from = match &past {
                Some(k) => Excluded(k.as_slice()),
                None => Unbounded,
            };
            let Some(entry) = t.range::<&[u8]>((from, Unbounded)).map_err(db_err)?.next() else { break };
            let (k, _) = entry.map_err(db_err)?;
            let Some(Ok(device)) = k.value().get(..32).map(<[u8; 32]>::try_from) else {
                return Err(VaultError::Corrupt("reading log: a short time key".into()));
            };
            out.push(Hash(device));
        }
        Ok(out)
    }
}

fn time_key(device: &Hash, ms: u64, digest: &Hash) -> [u8; 72] {
    let mut k = [0u8; 72];
    k[..32].copy_from_slice(&device.0);
    k[32..40].copy_from_slice(&ms.to_be_bytes());
    k[40..].copy_from_slice(&digest.0);
    k
}

/// One transaction for the whole group; each job's own verdict (write-once), or the commit's
/// error for all of them.
fn write_group(db: &Database, group: &[Job]) -> Vec<Result<(), VaultError>> {
    let run = || -> Result<Vec<Result<(), VaultError>>, VaultError> {
        let w = db.begin_write().map_err(db_err)?;
        let mut out = Vec::with_capacity(group.len());
        {
            let mut t = w.open_table(READINGS).map_err(db_err)?;
            let mut by_time = w.open_table(BY_TIME).map_err(db_err)?;
            for j in group {
                let k = key(&j.device, &j.digest);
                let existing = t.get(k.as_slice()).map_err(db_err)?.map(|v| v.value() == j.value.as_slice());
                out.push(match existing {
                    Some(true) => Ok(()),
                    Some(false) => Err(VaultError::Exists(j.digest, 1)),
                    None => {
                        t.insert(k.as_slice(), j.value.as_slice()).map_err(db_err)?;
                        let tk = time_key(&j.device, j.time_ms, &j.digest);
                        by_time.insert(tk.as_slice(), [].as_slice()).map_err(db_err)?;
                        Ok(())
                    }
                });
            }
        }
        w.commit().map_err(db_err)?;
        Ok(out)
    };
    match run() {
        Ok(out) => out,
        Err(e) => {
            let msg = match e {
                VaultError::ReadingLog(m) => m,
                other => other.to_string(),
            };
            group.iter().map(|_| Err(VaultError::ReadingLog(msg.clone()))).collect()
        }
    }
}
