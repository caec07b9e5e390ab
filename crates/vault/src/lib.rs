//! The record vault each institution's node runs: encrypted record versions, content-addressed,
//! with one wrapped data key per authorised recipient. The vault never sees a plaintext data
//! key or plaintext content: clients seal before `put_version` and open after reading.
//!
//! Layout in the blob store:
//! - `objects/<sha256 of ciphertext>`: sealed content (content-addressed);
//! - `records/<record id>/<version>/object`: the object name of that version;
//! - `records/<record id>/<version>/keys/<recipient key>`: the data key wrapped for a recipient;
//! - `readings/<device>/keys/<epoch>`: a device's reading key of one epoch, wrapped for each
//!   reader. The readings' ciphertexts are in the reading log ([`readings`]), not the blob store.

pub mod envelope;
pub mod fhir;
pub mod keyfile;
pub mod object;
pub mod readings;
pub mod store;

use envelope::WrappedKey;
use medledger_types::{Hash, PublicKey};
pub use object::ObjectStoreBlobs;
pub use store::{BlobStore, FsStore, StoreError};

/// Largest sealed record the vault accepts (about 1 MiB of FHIR JSON), from the limits registry.
pub use medledger_types::limits::MAX_SEALED_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sealed record is {0} bytes, above the limit of {MAX_SEALED_BYTES}")]
    Oversize(usize),
    #[error("record {0} version {1} is not in this vault")]
    NotFound(Hash, u32),
    #[error("record {0} was erased")]
    Erased(Hash),
    #[error("no data key is wrapped for {0} on this record version")]
    NoKey(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("record {0} version {1} is already stored with other content or keys; versions are write-once")]
    Exists(Hash, u32),
    #[error("a wrapped key must be {expected} bytes, got {got}")]
    BadWrappedKey { expected: usize, got: usize },
    #[error("{0} wrapped keys, above the limit of {max}", max = medledger_types::limits::MAX_RECIPIENTS)]
    TooManyKeys(usize),
    #[error("reading log: {0}")]
    ReadingLog(String),
}

pub struct Vault<S: BlobStore = FsStore> {
    store: S,
    /// Monitoring readings' ciphertexts (a monitoring node's vault has one).
    readings: Option<readings::ReadingLog>,
}

/// The limits every sealed object and its wrapped keys must meet before anything is written.
fn check_sealed(sealed: &[u8], keys: &[(PublicKey, WrappedKey)]) -> Result<(), VaultError> {
    if sealed.len() > MAX_SEALED_BYTES {
        return Err(VaultError::Oversize(sealed.len()));
    }
    if keys.len() > medledger_types::limits::MAX_RECIPIENTS {
        return Err(VaultError::TooManyKeys(keys.len()));
    }
    for (_, w) in keys {
        w.check().map_err(|got| VaultError::BadWrappedKey { expected: envelope::WRAPPED_KEY_BYTES, got })?;
    }
    Ok(())
}

fn rec(id: &Hash, v: u32) -> String {
    format!("records/{}/{v}", id.to_hex())
}

impl<S: BlobStore> Vault<S> {
    pub fn new(store: S) -> Self {
        Vault { store, readings: None }
    }

    /// The same vault, keeping monitoring readings in the reading log at `path`.
    pub fn with_reading_log(mut self, path: &std::path::Path) -> Result<Self, VaultError> {
        self.readings = Some(readings::ReadingLog::open(path)?);
        Ok(self)
    }

    fn reading_log(&self) -> Result<&readings::ReadingLog, VaultError> {
        self.readings.as_ref().ok_or_else(|| VaultError::ReadingLog("this vault keeps no readings".into()))
    }

    fn tombstone(id: &Hash) -> String {
        format!("erased/{}", id.to_hex())
    }

    /// Checks the store answers: writes a small probe blob (`health/probe`, overwritten each
    /// time; no record data), reads it back and compares.
    pub fn probe(&self, token: &[u8]) -> Result<(), VaultError> {
        self.store.put("health/probe", token)?;
        match self.store.get("health/probe")? {
            Some(b) if b == token => Ok(()),
            _ => Err(VaultError::Store(crate::store::StoreError::Io(std::io::Error::other(
                "the probe blob did not read back as written",
            )))),
        }
    }

    pub fn is_erased(&self, id: &Hash) -> Result<bool, VaultError> {
        Ok(self.store.get(&Self::tombstone(id))?.is_some())
    }

    /// Stores a sealed version and the data key wrapped for each recipient.
    pub fn put_version(
        &self,
        id: &Hash,
        v: u32,
        sealed: &[u8],
        keys: &[(PublicKey, WrappedKey)],
    ) -> Result<Hash, VaultError> {
        check_sealed(sealed, keys)?;
        if self.is_erased(id)? {
            return Err(VaultError::Erased(*id));
        }
        let object = medledger_types::hash::sha256(&[sealed]);
        // Write-once: an identical retry is a no-op; different content or keys are refused and
        // change nothing.
        if let Some(existing) = self.store.get(&format!("{}/object", rec(id, v)))? {
            let mut same = existing == object.to_hex().as_bytes();
            for (pk, w) in keys {
                same = same && self.store.get(&format!("{}/keys/{}", rec(id, v), pk.to_hex()))? == Some(w.to_bytes());
            }
            return if same { Ok(object) } else { Err(VaultError::Exists(*id, v)) };
        }
        self.store.put(&format!("objects/{}", object.to_hex()), sealed)?;
        for (pk, w) in keys {
            self.store.put(&format!("{}/keys/{}", rec(id, v), pk.to_hex()), &w.to_bytes())?;
        }
        self.store.put(&format!("{}/object", rec(id, v)), object.to_hex().as_bytes())?;
        Ok(object)
    }

    /// Adds (or replaces) a recipient's wrapped key, e.g. when a consent is granted.
    pub fn add_key(&self, id: &Hash, v: u32, recipient: &PublicKey, w: &WrappedKey) -> Result<(), VaultError> {
        w.check().map_err(|got| VaultError::BadWrappedKey { expected: envelope::WRAPPED_KEY_BYTES, got })?;
        if self.is_erased(id)? {
            return Err(VaultError::Erased(*id));
        }
        if self.store.get(&format!("{}/object", rec(id, v)))?.is_none() {
            return Err(VaultError::NotFound(*id, v));
        }
        self.store.put(&format!("{}/keys/{}", rec(id, v), recipient.to_hex()), &w.to_bytes())?;
        Ok(())
    }

    /// The sealed content and the data key wrapped for `recipient`.
    pub fn get(&self, id: &Hash, v: u32, recipient: &PublicKey) -> Result<(Vec<u8>, WrappedKey), VaultError> {
        if self.is_erased(id)? {
            return Err(VaultError::Erased(*id));
        }
        let name = self.store.get(&format!("{}/object", rec(id, v)))?.ok_or(VaultError::NotFound(*id, v))?;
        let name = String::from_utf8(name).map_err(|_| VaultError::Corrupt("object pointer".into()))?;
        let sealed = self
            .store
            .get(&format!("objects/{name}"))?
            .ok_or_else(|| VaultError::Corrupt(format!("object {name} missing")))?;
        let w = self
            .store
            .get(&format!("{}/keys/{}", rec(id, v), recipient.to_hex()))?
            .ok_or_else(|| VaultError::NoKey(recipient.short()))?;
        let w = WrappedKey::from_bytes(&w).map_err(|e| VaultError::Corrupt(e.to_string()))?;
        Ok((sealed, w))
    }

    /// Destroys every version's ciphertext and every wrapped key of a record, leaving a
    /// tombstone so later reads say "erased". The on-chain hashes are untouched.
    ///
    /// Crash-safe and idempotent: the tombstone is written (and synced) first, so a crash
    /// part-way leaves a record that reads as erased, and running it again removes whatever
    /// is left. Each deletion is synced with its directory.
    pub fn erase(&self, id: &Hash) -> Result<usize, VaultError> {
        self.store.put(&Self::tombstone(id), b"erased")?;
        let mut removed = 0;
        for name in self.store.list(&format!("records/{}", id.to_hex()))? {
            if name.ends_with("/object") {
                if let Some(obj) = self.store.get(&name)? {
                    let obj = String::from_utf8_lossy(&obj).to_string();
                    self.store.delete(&format!("objects/{obj}"))?;
                    removed += 1;
                }
            }
            self.store.delete(&name)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Stores the data key of one device's key epoch, wrapped for each reader, under
    /// `readings/{device}/keys/{epoch}`. Write-once, like readings. Written before the first
    /// reading sealed under it.
    pub fn put_reading_key(
        &self,
        device: &Hash,
        epoch: &Hash,
        keys: &[(PublicKey, WrappedKey)],
    ) -> Result<(), VaultError> {
        check_sealed(&[], keys)?;
        let mut w = medledger_types::codec::Writer::with_capacity(8 + keys.len() * 128);
        w.u32(keys.len() as u32);
        for (pk, k) in keys {
            w.fixed(&pk.0).bytes(&k.to_bytes());
        }
        let (name, bytes) = (Self::reading_key_name(device, epoch), w.finish());
        match self.store.get(&name)? {
            Some(existing) if existing == bytes => Ok(()),
            Some(_) => Err(VaultError::Exists(*epoch, 1)),
            None => Ok(self.store.put(&name, &bytes)?),
        }
    }

    /// Stores one monitoring reading, sealed under its device's key of epoch `epoch`, in the
    /// reading log (group-committed with the readings of every device written at the same
    /// time), and no key wrapping, so a node can take thousands a second. Returns once it is
    /// durable. Write-once: an identical retry is a no-op, another content under the same
    /// digest is refused.
    pub fn put_reading(
        &self,
        device: &Hash,
        digest: &Hash,
        time_ms: u64,
        epoch: &Hash,
        sealed: &[u8],
    ) -> Result<(), VaultError> {
        check_sealed(sealed, &[])?;
        let log = self.reading_log()?;
        let mut w = medledger_types::codec::Writer::with_capacity(sealed.len() + 40);
        w.fixed(&epoch.0).bytes(sealed);
        log.put(device, digest, time_ms, w.finish())
    }

    /// Readings of `device` taken after `after_ms`, oldest first, at most `limit`: (time,
    /// digest). A restarted node queues those no anchor covers yet.
    pub fn readings_after(
        &self,
        device: &Hash,
        after_ms: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Hash)>, VaultError> {
        self.reading_log()?.after(device, after_ms, limit)
    }

    /// The last `limit` readings of `device` by time, oldest first: (time, digest). A
    /// restarted node scores them again.
    pub fn latest_readings(&self, device: &Hash, limit: usize) -> Result<Vec<(u64, Hash)>, VaultError> {
        self.reading_log()?.latest(device, limit)
    }

    /// The devices this vault holds readings of, at most `limit`.
    pub fn reading_devices(&self, limit: usize) -> Result<Vec<Hash>, VaultError> {
        self.reading_log()?.devices(limit)
    }

    /// A stored reading: its sealed bytes, its key epoch and that epoch's wrapped keys.
    pub fn reading(&self, device: &Hash, digest: &Hash) -> Result<Option<StoredReading>, VaultError> {
        let Some(b) = self.reading_log()?.get(device, digest)? else { return Ok(None) };
        let corrupt = |e: medledger_types::codec::DecodeError| VaultError::Corrupt(format!("reading {digest}: {e}"));
        let mut r = medledger_types::codec::Reader::new(&b);
        let epoch = Hash(r.array("key epoch").map_err(corrupt)?);
        let sealed = r.bytes("sealed reading", MAX_SEALED_BYTES).map_err(corrupt)?.to_vec();
        r.finish().map_err(corrupt)?;
        let Some(k) = self.store.get(&Self::reading_key_name(device, &epoch))? else {
            return Err(VaultError::Corrupt(format!("reading {digest}: the keys of its epoch {epoch} are gone")));
        };
        let corrupt = |e: medledger_types::codec::DecodeError| VaultError::Corrupt(format!("reading key {epoch}: {e}"));
        let mut r = medledger_types::codec::Reader::new(&k);
        let n = r.u32("key count").map_err(corrupt)? as usize;
        if n > medledger_types::limits::MAX_RECIPIENTS {
            return Err(VaultError::Corrupt(format!("reading key {epoch}: {n} keys")));
        }
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            let pk = PublicKey(r.array("recipient").map_err(corrupt)?);
            let k = WrappedKey::from_bytes(r.bytes("wrapped key", 1024).map_err(corrupt)?)
                .map_err(|e| VaultError::Corrupt(format!("reading key {epoch}: {e}")))?;
            keys.push((pk, k));
        }
        r.finish().map_err(corrupt)?;
        Ok(Some(StoredReading { sealed, epoch, keys }))
    }

    fn reading_key_name(device: &Hash, epoch: &Hash) -> String {
        format!("readings/{}/keys/{}", device.to_hex(), epoch.to_hex())
    }
}

/// A monitoring reading as the vault keeps it.
#[derive(Debug, PartialEq, Eq)]
pub struct StoredReading {
    pub sealed: Vec<u8>,
    /// The device's key epoch the reading is sealed under (open it with
    /// `envelope::reading_context`; unwrap the key with `envelope::reading_key_context`).
    pub epoch: Hash,
    pub keys: Vec<(PublicKey, WrappedKey)>,
}
