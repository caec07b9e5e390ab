//! The mempool's write-ahead log: a transaction the node acknowledges survives a crash.
//!
//! `POST /v1/txs` answers 202 only after the admitted transactions are appended here and the
//! file is synced (`fdatasync`); the node's own transactions (access events, erasure
//! confirmations) are logged the same way before the read they record is answered. At start-up
//! the node re-admits every logged transaction (the usual checks drop those already committed),
//! so a SIGKILL right after the 202, before any peer heard of the transaction, loses nothing.
//!
//! Format: records of `len: u32 BE || crc32(tx): u32 BE || tx bytes`. A torn tail (a crash
//! mid-append) fails its length or checksum; replay stops there and the file is cut back to the
//! last whole record. Concurrent appends share one sync (group commit). Only transactions this
//! node acknowledges are logged (gossiped ones were logged by the node that took them). The log
//! is rewritten with just the pending transactions when it grows past [`COMPACT_BYTES`] and
//! twice its size after the last rewrite.

use medledger_types::limits::MAX_TX_BYTES;
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Size past which a finalized block triggers a rewrite of the log (if it is mostly stale).
pub const COMPACT_BYTES: u64 = 16 << 20;
const HEADER: usize = 8;

pub struct Wal {
    path: PathBuf,
    file: Mutex<File>,
    /// Bytes appended so far (the file's logical end).
    written: AtomicU64,
    /// Bytes known to be on disk.
    synced: AtomicU64,
    /// Held while syncing, so that one sync serves every append made before it.
    sync_lock: Mutex<()>,
    /// Size right after the last rewrite.
    base: AtomicU64,
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

fn encode(txs: &[&[u8]]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(txs.iter().map(|t| t.len() + HEADER).sum());
    for t in txs {
        buf.extend_from_slice(&(t.len() as u32).to_be_bytes());
        buf.extend_from_slice(&crc32fast::hash(t).to_be_bytes());
        buf.extend_from_slice(t);
    }
    buf
}

impl Wal {
    /// Opens (or creates) the log at `path` and returns it with the transactions it holds, in
    /// the order they were logged. A torn tail is cut off.
    pub fn open(path: &Path) -> io::Result<(Wal, Vec<Vec<u8>>)> {
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut txs = Vec::new();
        let mut at = 0usize;
        while let Some(h) = bytes.get(at..at + HEADER) {
            let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let crc = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            let Some(body) = bytes.get(at + HEADER..at + HEADER + len).filter(|_| len <= MAX_TX_BYTES) else { break };
            if crc32fast::hash(body) != crc {
                break;
            }
            txs.push(body.to_vec());
            at += HEADER + len;
        }
        if at < bytes.len() {
            // A crash mid-append: keep the whole records only.
            file.set_len(at as u64)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::Start(at as u64))?;
        sync_dir(path)?;
        let wal = Wal {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            written: AtomicU64::new(at as u64),
            synced: AtomicU64::new(at as u64),
            sync_lock: Mutex::new(()),
            base: AtomicU64::new(at as u64),
        };
        Ok((wal, txs))
    }

    /// Appends `txs` and returns once they are on disk.
    pub fn append(&self, txs: &[&[u8]]) -> io::Result<()> {
        if txs.is_empty() {
            return Ok(());
        }
        let buf = encode(txs);
        let end = {
            let mut f = self.file.lock();
            f.write_all(&buf)?;
            self.written.fetch_add(buf.len() as u64, Ordering::SeqCst) + buf.len() as u64
        };
        let _sync = self.sync_lock.lock();
        if self.synced.load(Ordering::SeqCst) >= end {
            return Ok(()); // another append's sync covered ours
        }
        let upto = self.written.load(Ordering::SeqCst);
        let f = self.file.lock().try_clone()?;
        f.sync_data()?;
        self.synced.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }

    /// Bytes in the log.
    pub fn len(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Worth rewriting: past [`COMPACT_BYTES`] and twice its size after the last rewrite, so
    /// a large mempool does not cause a rewrite per block.
    pub fn needs_compaction(&self) -> bool {
        self.len() > COMPACT_BYTES.max(2 * self.base.load(Ordering::SeqCst))
    }

    /// Replaces the log with exactly the transactions `pending()` returns (crash-safe: a
    /// temporary file, synced, renamed over the log, directory synced). `pending` is called
    /// with appends held off, and must list everything still pending: transactions enter the
    /// mempool before they are appended, so none appended before the rewrite can be missed.
    pub fn rewrite(&self, pending: impl FnOnce() -> Vec<Vec<u8>>) -> io::Result<()> {
        let _sync = self.sync_lock.lock();
        let mut f = self.file.lock();
        let tmp = self.path.with_extension("wal.tmp");
        let pending = pending();
        let refs: Vec<&[u8]> = pending.iter().map(Vec::as_slice).collect();
        let buf = encode(&refs);
        {
            let mut t = File::create(&tmp)?;
            t.write_all(&buf)?;
            t.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        sync_dir(&self.path)?;
        let mut new = OpenOptions::new().read(true).write(true).open(&self.path)?;
        new.seek(SeekFrom::End(0))?;
        *f = new;
        self.written.store(buf.len() as u64, Ordering::SeqCst);
        self.synced.store(buf.len() as u64, Ordering::SeqCst);
        self.base.store(buf.len() as u64, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_transactions_come_back_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mempool.wal");
        let (wal, none) = Wal::open(&path).unwrap();
        assert!(none.is_empty());
        wal.append(&[b"one", b"two"]).unwrap();
        wal.append(&[b"three"]).unwrap();
        drop(wal);
        // A crash mid-append leaves half a record.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 9, 1, 2]).unwrap();
        drop(f);
        let (wal, txs) = Wal::open(&path).unwrap();
        assert_eq!(txs, vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), wal.len());
        // A flipped byte ends the log at the record before it.
        wal.append(&[b"four"]).unwrap();
        drop(wal);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (wal, txs) = Wal::open(&path).unwrap();
        assert_eq!(txs.len(), 3);
        // Rewriting keeps only what is still pending, and appends continue after it.
        wal.rewrite(|| vec![b"two".to_vec()]).unwrap();
        wal.append(&[b"five"]).unwrap();
        drop(wal);
        let (_, txs) = Wal::open(&path).unwrap();
        assert_eq!(txs, vec![b"two".to_vec(), b"five".to_vec()]);
    }

    #[test]
    fn concurrent_appends_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mempool.wal");
        let (wal, _) = Wal::open(&path).unwrap();
        let wal = std::sync::Arc::new(wal);
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let wal = wal.clone();
                std::thread::spawn(move || {
                    for i in 0..50u8 {
                        wal.append(&[&[t, i]]).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(wal);
        let (_, txs) = Wal::open(&path).unwrap();
        assert_eq!(txs.len(), 200);
    }
}
