//! The holder side of record sharing: stores sealed record versions in the institution's vault,
//! and serves reads only after checking consent against chain state, logging every served,
//! denied or break-glass read on chain as an access event signed by the institution.
//!
//! The node never sees plaintext content or a consent grantee's data key: clients seal and
//! wrap; the patient's client re-wraps for grantees. Only break-glass, an emergency read without
//! consent, makes the holder unwrap its own copy of the data key to wrap it for the doctor.

use crate::chain::{Chain, SubmitError};
use crate::error::ServiceError;
use medledger_state::consent::{permits, RecordRef};
use medledger_state::records as state_records;
use medledger_state::{identity, Principal};
use medledger_types::read::{ReadRequest, MAX_READ_SKEW_MS};
use medledger_types::ErrorCode;
use medledger_types::{
    AccessOutcome, Canonical, Hash, Keypair, Operation, PublicKey, Purpose, Role, Signature, Transaction, Tx,
};
use medledger_types::{AuditOp, RecordsOp};
use medledger_vault::envelope::{self, WrappedKey};
use medledger_vault::{BlobStore, Vault, VaultError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// ed25519 namespace of a patient's request to add a wrapped key for a grantee.
pub const ADD_KEY_SIGNATURE: &[u8] = medledger_types::hash::domain::ADD_KEY_SIGNATURE;

pub struct RecordService {
    pub chain: Arc<Chain>,
    pub vault: Vault<Box<dyn BlobStore>>,
    /// This node's institution id (the holder it serves).
    pub institution: String,
    /// The institution admin key: holder recipient of every record it holds, and signer of
    /// access events.
    pub institution_key: Keypair,
    log_lock: Mutex<()>,
    /// Where the service's own transactions (access events, erasure confirmations) go to be
    /// gossiped to the other validators, once consensus runs.
    gossip: std::sync::OnceLock<tokio::sync::mpsc::Sender<Vec<Tx>>>,
    /// Replay cache and per-requester rate limit, shared with the audit service.
    pub guard: Arc<crate::guard::Guard>,
    /// Access events, durable before a read is answered, batched onto the chain.
    journal: std::sync::OnceLock<crate::audit::journal::AccessJournal>,
    /// Erasure confirmations submitted and not yet committed: record → confirmation tx.
    erasures_inflight: Mutex<std::collections::HashMap<Hash, Hash>>,
    /// Versions written to the vault whose anchor is not executed yet: (record, version, anchor
    /// tx, the tip's height then), at most [`MAX_UNANCHORED`]. An anchor refused at execution
    /// because the patient asked for the record's erasure meanwhile leaves a copy no erasure
    /// queue names: the next reconciliation destroys it ([`RecordService::reconcile_erasures`]).
    unanchored: Mutex<std::collections::VecDeque<(Hash, u32, Hash, u64)>>,
    /// Signs the service's own transactions (access events, erasure confirmations): the node's
    /// service key, whose `node_service` credential the CA issues, so that people using the
    /// institution admin key never collide with the node's nonces. Defaults to the admin key.
    signer: Keypair,
    /// The last vault probe: when, whether it passed, how long it took (µs).
    health: Mutex<Option<(std::time::Instant, bool, u64)>>,
    /// Remote monitoring: readings checked, stored and anchored by this node (`crate::care`).
    pub monitor: crate::care::Monitor,
}

/// A vault probe is reused for this long, so that scraping `/metrics` (public) cannot make the
/// node write to its vault more often.
pub const VAULT_PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Most uploads followed until their anchor executes (the oldest are let go past it).
pub const MAX_UNANCHORED: usize = 65_536;
/// Blocks after its upload that a version is followed while its anchor is neither in the
/// mempool nor executed (a refused anchor of a record not being erased is let go then).
pub const UNANCHORED_BLOCKS: u64 = 64;

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecipientKey {
    /// Recipient ed25519 public key (hex).
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub recipient: String,
    pub wrapped: WrappedKey,
}

/// Upload of a sealed record version with its anchor transaction.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadRequest {
    /// Signed `anchor_record` transaction (hex).
    #[schema(pattern = "^([0-9a-fA-F]{2})+$", max_length = 16384)]
    pub anchor_tx: String,
    /// Sealed content: nonce || ChaCha20-Poly1305 ciphertext (hex).
    #[schema(pattern = "^([0-9a-fA-F]{2})+$", max_length = 2097280)]
    pub sealed: String,
    /// The data key wrapped for the patient, the holding institution and any grantees.
    pub keys: Vec<RecipientKey>,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignedRead {
    /// Canonical `ReadRequest` bytes (hex).
    #[schema(pattern = "^([0-9a-fA-F]{2})+$", max_length = 2048)]
    pub request: String,
    /// Requester's ed25519 signature over them (hex).
    #[schema(pattern = "^[0-9a-fA-F]{128}$")]
    pub signature: String,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReadResponse {
    pub record_id: String,
    pub version: u32,
    /// SHA-256 of the plaintext as anchored on chain: check it after decrypting.
    pub content_hash: String,
    pub sealed: String,
    pub wrapped: WrappedKey,
    /// `served` or `break_glass`.
    pub outcome: String,
    /// Set when the read is allowed by a consent to the requester's institution: `wrapped` is
    /// then wrapped for that institution's key, and its node re-wraps it for the requester
    /// (which it does on the way back when the read is sent through it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custodian: Option<String>,
    /// Id of the access event logging this read: the signed read request's id. The event is
    /// durable before this answer and reaches the chain in the holder's next batch; look it up
    /// with `GET /v1/access-events/{id}`.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub access_event: String,
}

/// A patient adds the data key wrapped for a grantee.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct AddKeyRequest {
    /// The grantee's ed25519 public key (hex).
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub recipient: String,
    pub wrapped: WrappedKey,
    pub issued_ms: u64,
    /// Patient's signature over `add_key_message(...)` (hex).
    #[schema(pattern = "^[0-9a-fA-F]{128}$")]
    pub signature: String,
}

pub use medledger_vault::envelope::add_key_message;

fn bad(code: ErrorCode, msg: impl Into<String>) -> ServiceError {
    ServiceError::new(code, msg)
}

fn hex_field(s: &str, what: &str) -> Result<Vec<u8>, ServiceError> {
    hex::decode(s.trim()).map_err(|e| bad(ErrorCode::Malformed, format!("{what} is not hex: {e}")))
}

/// A hex ed25519 signature from a request body (shared with the monitoring service).
pub(crate) fn signature(s: &str) -> Result<Signature, ServiceError> {
    let b = hex_field(s, "signature")?;
    let a: [u8; 64] = b.try_into().map_err(|_| bad(ErrorCode::Malformed, "signature must be 64 bytes"))?;
    Ok(Signature(a))
}

fn vault_error(e: VaultError) -> ServiceError {
    match e {
        VaultError::Erased(id) => {
            ServiceError::new(ErrorCode::Erased, format!("record {id} was erased at the patient's request"))
        }
        VaultError::NotFound(id, v) => {
            ServiceError::new(ErrorCode::NotFound, format!("record {id} version {v} is not in this vault"))
        }
        VaultError::NoKey(who) => ServiceError::new(
            ErrorCode::KeyNotWrapped,
            format!(
                "consent allows it, but no data key is wrapped for {who} yet: the patient's client must re-wrap it"
            ),
        ),
        VaultError::Oversize(n) => {
            ServiceError::new(ErrorCode::Oversize, format!("sealed record of {n} bytes is too large"))
        }
        e @ VaultError::Exists(..) => ServiceError::new(ErrorCode::AlreadyExists, e.to_string()),
        e @ (VaultError::BadWrappedKey { .. } | VaultError::TooManyKeys(_)) => {
            ServiceError::new(ErrorCode::InvalidArgument, e.to_string())
        }
        e => ServiceError::new(ErrorCode::Internal, e.to_string()),
    }
}

impl RecordService {
    pub fn new(
        chain: Arc<Chain>,
        vault: Vault<Box<dyn BlobStore>>,
        institution: String,
        institution_key: Keypair,
    ) -> RecordService {
        RecordService {
            chain,
            vault,
            institution,
            institution_key: institution_key.clone(),
            log_lock: Mutex::new(()),
            gossip: std::sync::OnceLock::new(),
            guard: Arc::new(crate::guard::Guard::default()),
            erasures_inflight: Mutex::new(std::collections::HashMap::new()),
            unanchored: Mutex::new(std::collections::VecDeque::new()),
            signer: institution_key.clone(),
            journal: std::sync::OnceLock::new(),
            health: Mutex::new(None),
            monitor: crate::care::Monitor::default(),
        }
    }

    /// Whether the vault answers (a probe blob written and read back) and how long the probe
    /// took in microseconds; probed at most once per [`VAULT_PROBE_EVERY`].
    pub fn vault_health(&self) -> (bool, u64) {
        let mut h = self.health.lock();
        if let Some((at, ok, us)) = *h {
            if at.elapsed() < VAULT_PROBE_EVERY {
                return (ok, us);
            }
        }
        let start = std::time::Instant::now();
        let ok = self.vault.probe(&self.chain.now_ms().to_be_bytes()).is_ok();
        let us = start.elapsed().as_micros() as u64;
        *h = Some((std::time::Instant::now(), ok, us));
        (ok, us)
    }

    /// Signs the service's own transactions with `key` (the node's service key).
    pub fn with_signer(mut self, key: Keypair) -> RecordService {
        self.signer = key;
        self
    }

    /// Opens the access journal at `path` (a real node: `access.wal` in its data directory) and
    /// queues again the events the chain does not hold yet. Returns how many it queued. Reads
    /// are refused until a journal is attached: an access event is never kept in memory only.
    pub fn attach_journal(&self, path: &std::path::Path) -> Result<usize, String> {
        let snap = self.chain.store.snapshot().map_err(|e| e.to_string())?;
        let (j, queued) = crate::audit::journal::AccessJournal::open(path, |id| {
            medledger_state::audit::access_event_for_request(&snap, id).is_some()
        })
        .map_err(|e| format!("cannot open the access journal {}: {e}", path.display()))?;
        self.journal.set(j).map_err(|_| "an access journal is already attached".to_string())?;
        Ok(queued)
    }

    /// The access journal, once attached.
    pub fn journal(&self) -> Option<&crate::audit::journal::AccessJournal> {
        self.journal.get()
    }

    /// Sends queued access events to the chain, many per transaction (run every
    /// [`crate::audit::journal::FLUSH_EVERY`] and when a full batch is queued). Returns how many
    /// were sent; on an error the rest stay queued for the next run.
    pub fn flush_access_log(&self) -> usize {
        let Some(j) = self.journal.get() else { return 0 };
        let _order = self.log_lock.lock();
        let r = j.flush(|events| {
            let tx = self.sign_next(Operation::Audit(AuditOp::LogAccess { events: events.to_vec() }))?;
            self.chain.submit_own(vec![tx.clone()]).remove(0)?;
            let id = tx.id();
            self.gossip_own(tx);
            Ok::<_, ServiceError>(id)
        });
        match r {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("access events stay queued: {e}");
                0
            }
        }
    }

    /// After a finalized block: forgets the access events the chain now holds and queues again
    /// those whose batch was dropped.
    pub fn settle_access_log(&self) {
        let Some(j) = self.journal.get() else { return };
        let Ok(snap) = self.chain.store.snapshot() else { return };
        // Over damaged state there is no answer: the batch stays in flight.
        j.settle(
            |tx| self.chain.is_pending(tx),
            |id| {
                let committed = medledger_state::audit::access_event_for_request(&snap, id).is_some();
                snap.fault().is_none().then_some(committed)
            },
        );
    }

    /// Refuses once the store found damaged state: nothing goes to the vault or the access
    /// journal on a decision computed over it (the API answers with the fault, and the
    /// validator stops).
    pub(crate) fn sound(&self) -> Result<(), ServiceError> {
        match self.chain.store.fault() {
            Some(f) => Err(ServiceError::new(ErrorCode::Internal, format!("stored data is corrupt: {f}"))),
            None => Ok(()),
        }
    }

    /// The key that signs this service's transactions.
    pub fn signer(&self) -> PublicKey {
        self.signer.public()
    }

    /// Uses `guard` (the node's shared replay cache and rate limiter).
    pub fn with_guard(mut self, guard: Arc<crate::guard::Guard>) -> RecordService {
        self.guard = guard;
        self
    }

    /// Gossips the service's own transactions through `tx` from now on.
    pub fn set_gossip(&self, tx: tokio::sync::mpsc::Sender<Vec<Tx>>) {
        let _ = self.gossip.set(tx);
    }

    fn now(&self) -> u64 {
        self.chain.now_ms()
    }

    /// Stores a sealed version and submits its anchor; returns the anchor transaction.
    ///
    /// Nothing is written before the anchor's signature verifies and the state machine would
    /// apply it now (credential, permission, the patient's write consent, version = latest + 1):
    /// a forged or unauthorised upload leaves the vault untouched.
    pub fn upload(&self, req: &UploadRequest) -> Result<Tx, ServiceError> {
        let tx = Tx::decode(&hex_field(&req.anchor_tx, "anchor_tx")?).map_err(SubmitError::from)?;
        if !tx.verify_signature() {
            return Err(SubmitError::BadSignature(tx.body().signer.short()).into());
        }
        if req.keys.len() > medledger_types::limits::MAX_RECIPIENTS {
            return Err(bad(
                ErrorCode::InvalidArgument,
                format!(
                    "{} wrapped keys, above the limit of {}",
                    req.keys.len(),
                    medledger_types::limits::MAX_RECIPIENTS
                ),
            ));
        }
        let Operation::Records(RecordsOp::AnchorRecord { record_id, version, patient, .. }) = &tx.body().op else {
            return Err(bad(ErrorCode::InvalidArgument, "anchor_tx must be an anchor_record transaction"));
        };
        let snap = self.chain.store.snapshot().map_err(|e| ServiceError::new(ErrorCode::Internal, e.to_string()))?;
        let author_inst = identity::credential(&snap, &tx.body().signer).map(|c| c.institution).unwrap_or_default();
        if author_inst != self.institution {
            return Err(ServiceError::new(
                ErrorCode::WrongHolder,
                format!(
                    "the author's institution is `{author_inst}`; upload to its node (this is `{}`)",
                    self.institution
                ),
            ));
        }
        let patient_key = identity::patient_key(&snap, patient)
            .ok_or_else(|| ServiceError::new(ErrorCode::NotFound, "no patient with this pseudonym"))?;
        let mut keys = Vec::with_capacity(req.keys.len());
        for k in &req.keys {
            keys.push((
                PublicKey::from_hex(&k.recipient).map_err(|e| bad(ErrorCode::Malformed, e))?,
                k.wrapped.clone(),
            ));
        }
        for (who, need) in [("the patient", patient_key), ("the holding institution", self.institution_key.public())] {
            if !keys.iter().any(|(pk, _)| *pk == need) {
                return Err(bad(
                    ErrorCode::InvalidArgument,
                    format!("the data key must be wrapped for {who} ({})", need.short()),
                ));
            }
        }
        let sealed = hex_field(&req.sealed, "sealed")?;
        // The state machine decides before the vault is touched: admission rules (nonce,
        // credential, permission table) and then the operation's own rules, as if it were in
        // the next block. It re-checks everything when the anchor is executed.
        let (now, height) = (self.now(), self.chain.tip().height + 1);
        medledger_state::precheck(&snap, &self.chain.genesis.chain_id, now, height, &tx)
            .map_err(SubmitError::Rejected)?;
        let env = medledger_state::BlockEnv {
            chain_id: self.chain.genesis.chain_id.clone(),
            height,
            timestamp_ms: now,
            proposer: self.chain.me,
        };
        medledger_state::check_operation(&snap, &env, &tx).map_err(SubmitError::Rejected)?;
        self.sound()?;
        self.vault.put_version(record_id, *version, &sealed, &keys).map_err(vault_error)?;
        // Followed before it is submitted: a submission that fails after the mempool took the
        // anchor still leaves a copy to settle.
        {
            let mut u = self.unanchored.lock();
            if u.len() >= MAX_UNANCHORED {
                u.pop_front();
            }
            u.push_back((*record_id, *version, tx.id(), self.chain.tip().height));
        }
        self.chain.submit(vec![tx.clone()]).remove(0)?;
        Ok(tx)
    }

    /// Adds a grantee's wrapped key, signed by the record's patient.
    pub fn add_key(&self, record_id: &Hash, version: u32, req: &AddKeyRequest) -> Result<(), ServiceError> {
        let recipient = PublicKey::from_hex(&req.recipient).map_err(|e| bad(ErrorCode::Malformed, e))?;
        let snap = self.chain.store.snapshot().map_err(|e| ServiceError::new(ErrorCode::Internal, e.to_string()))?;
        let head = state_records::head(&snap, record_id)
            .ok_or_else(|| ServiceError::new(ErrorCode::NotFound, format!("no record {record_id}")))?;
        let patient = identity::patient_key(&snap, &head.patient)
            .ok_or_else(|| ServiceError::new(ErrorCode::NotFound, "record's patient is unknown"))?;
        if self.now().abs_diff(req.issued_ms) > MAX_READ_SKEW_MS {
            return Err(bad(ErrorCode::Stale, "request timestamp is too far from the node's clock"));
        }
        let msg = add_key_message(record_id, version, &recipient, &req.wrapped, req.issued_ms);
        if !medledger_types::keys::verify(&patient, ADD_KEY_SIGNATURE, &msg, &signature(&req.signature)?) {
            return Err(ServiceError::new(
                ErrorCode::BadSignature,
                "only the record's patient may add keys, and the signature does not verify",
            ));
        }
        self.sound()?;
        self.vault.add_key(record_id, version, &recipient, &req.wrapped).map_err(vault_error)
    }

    /// Serves a read if consent (or break-glass) allows it; logs the outcome on chain.
    pub fn read(&self, req: &SignedRead) -> Result<ReadResponse, ServiceError> {
        let r = ReadRequest::from_bytes(&hex_field(&req.request, "request")?)
            .map_err(|e| bad(ErrorCode::Malformed, format!("read request: {e}")))?;
        if !r.verify(&signature(&req.signature)?) {
            return Err(ServiceError::new(
                ErrorCode::BadSignature,
                "read request signature does not verify for its requester",
            ));
        }
        if r.chain_id != self.chain.genesis.chain_id {
            return Err(bad(ErrorCode::WrongChain, format!("request is for chain `{}`", r.chain_id)));
        }
        let now = self.now();
        if now.abs_diff(r.issued_ms) > MAX_READ_SKEW_MS {
            return Err(bad(ErrorCode::Stale, "read request timestamp is too far from the node's clock"));
        }
        let snap = self.chain.store.snapshot().map_err(|e| ServiceError::new(ErrorCode::Internal, e.to_string()))?;
        let height = self.chain.tip().height + 1;
        // Only a valid credential's requests are answered or logged: a key the CA never
        // certified (or whose credential expired or was revoked) is refused here, and nothing
        // is written to the chain. Then its allowance and the replay cache.
        let principal = identity::principal(&snap, &r.requester, now, height).map_err(ServiceError::from)?;
        self.guard.admit(&r.requester, r.id(), now)?;
        let head = state_records::head(&snap, &r.record_id)
            .ok_or_else(|| ServiceError::new(ErrorCode::NotFound, format!("no record {}", r.record_id)))?;
        let v = state_records::version(&snap, &r.record_id, r.version).ok_or_else(|| {
            ServiceError::new(ErrorCode::NotFound, format!("record {} has no version {}", r.record_id, r.version))
        })?;
        if head.erased_at.is_some() || head.erasure_requested_at.is_some() {
            // Requested is as good as erased: no copy is served while holders destroy theirs.
            return Err(vault_error(VaultError::Erased(r.record_id)));
        }
        if v.holder != self.institution {
            return Err(ServiceError::new(ErrorCode::WrongHolder, format!("record is held by `{}`", v.holder)));
        }
        let is_patient = identity::patient_key(&snap, &head.patient) == Some(r.requester);
        // A pending amendment is for the patient (to review) and its author only; a rejected
        // one for the patient only. No consent and no break-glass opens them to anyone else.
        let withheld = match v.status {
            state_records::VersionStatus::Pending if !is_patient && v.author != r.requester => Some(format!(
                "version {} is an amendment pending the patient's review: only the patient and its author may read it",
                r.version
            )),
            state_records::VersionStatus::Rejected if !is_patient => {
                Some(format!("version {} was rejected by the patient: only the patient may read it", r.version))
            }
            _ => None,
        };
        if let Some(reason) = withheld {
            drop(snap);
            let _ = self.log(&r, &head, AccessOutcome::Denied, reason.clone());
            return Err(ServiceError::new(ErrorCode::NotPermitted, reason));
        }
        let rec = RecordRef { id: &r.record_id, resource_type: &head.resource_type };
        // The patient's credential was checked above; anyone else needs a consent.
        let decision = if is_patient {
            Ok(())
        } else {
            permits(&snap, &head.patient, &r.requester, rec, medledger_types::action::READ, r.purpose, now, height)
                .map(|_| ())
        };
        drop(snap);
        // The holder wraps its own copy of the data key for the requester in two cases: an
        // emergency read by a doctor without consent, and the patient under a rotated key (the
        // re-wrapped key is kept, so this happens once per version).
        let (outcome, fetched) = match decision {
            Ok(()) => (AccessOutcome::Served, None),
            Err(denial) => {
                let emergency = r.break_glass.as_deref().map(str::trim).filter(|s| !s.is_empty());
                if emergency.is_some() && principal == Principal::Role(Role::Doctor) {
                    (AccessOutcome::BreakGlass, Some(self.own_copy_for(&r, false)))
                } else {
                    let _ = self.log(&r, &head, AccessOutcome::Denied, denial.reason.clone());
                    return Err(ServiceError::new(ErrorCode::NotPermitted, denial.reason));
                }
            }
        };
        let mut custodian = None;
        let fetched = match fetched {
            Some(own) => own,
            None => match self.vault.get(&r.record_id, r.version, &r.requester) {
                Err(VaultError::NoKey(_)) if is_patient => self.own_copy_for(&r, true),
                Err(VaultError::NoKey(who)) => match self.institution_custody(&r, &head) {
                    Some((inst, key)) => {
                        custodian = Some(inst);
                        self.vault.get(&r.record_id, r.version, &key).map_err(vault_error)
                    }
                    None => Err(vault_error(VaultError::NoKey(who))),
                },
                other => other.map_err(vault_error),
            },
        };
        let (sealed, wrapped) = match fetched {
            Ok(x) => x,
            Err(err) => {
                // Not served: log the attempt as denied, with why.
                let _ = self.log(&r, &head, AccessOutcome::Denied, err.to_string());
                return Err(err);
            }
        };
        // Our own staff under a consent to our institution: re-wrap here.
        let (wrapped, custodian) = match custodian {
            Some(inst) if inst == self.institution => (self.rewrap_for_staff(&r, &wrapped)?, None),
            c => (wrapped, c),
        };
        let reason = r.break_glass.clone().unwrap_or_default();
        let access_event = self.log(&r, &head, outcome, reason)?;
        Ok(ReadResponse {
            custodian,
            record_id: r.record_id.to_hex(),
            version: r.version,
            content_hash: v.content_hash.to_hex(),
            sealed: hex::encode(sealed),
            wrapped,
            outcome: outcome.name().into(),
            access_event: access_event.to_hex(),
        })
    }

    /// The sealed content with this holder's own copy of its data key re-wrapped for the
    /// requester; with `keep`, the re-wrapped key is stored for next time (a patient's new key).
    fn own_copy_for(&self, r: &ReadRequest, keep: bool) -> Result<(Vec<u8>, WrappedKey), ServiceError> {
        let (sealed, own) =
            self.vault.get(&r.record_id, r.version, &self.institution_key.public()).map_err(vault_error)?;
        let ctx = envelope::context(&r.record_id, r.version);
        let w = envelope::rewrap(&own, &self.institution_key, &r.requester, &ctx)
            .map_err(|e| ServiceError::new(ErrorCode::Internal, format!("the holder's copy of the key: {e}")))?;
        if keep {
            self.sound()?;
            self.vault.add_key(&r.record_id, r.version, &r.requester, &w).map_err(vault_error)?;
        }
        Ok((sealed, w))
    }

    /// If a consent to the requester's institution covers this read, that institution and the
    /// key its copy of the data key is wrapped for.
    fn institution_custody(&self, r: &ReadRequest, head: &state_records::RecordHead) -> Option<(String, PublicKey)> {
        use medledger_state::consent::{active_consents, covers, is_active, Requester};
        let snap = self.chain.store.snapshot().ok()?;
        let cred = identity::credential(&snap, &r.requester)?;
        let (now, height) = (self.now(), self.chain.tip().height + 1);
        let rec = RecordRef { id: &r.record_id, resource_type: &head.resource_type };
        let who = Requester { key: &r.requester, institution: &cred.institution, role: cred.role };
        let granted = active_consents(&snap, &head.patient).iter().any(|c| {
            matches!(&c.terms.grantee, medledger_types::Grantee::Institution(i) if *i == cred.institution)
                && is_active(c, now, height)
                && covers(c, who, rec, medledger_types::action::READ, r.purpose)
        });
        if !granted {
            return None;
        }
        let key = self.chain.genesis.institutions.iter().find(|i| i.id == cred.institution)?.admin_key;
        Some((cred.institution, key))
    }

    /// Re-wraps a data key held for this institution for one of its own staff, after checking
    /// that the requester belongs here. The institution is the grantee; its node is the custodian.
    pub fn rewrap_for_staff(&self, r: &ReadRequest, w: &WrappedKey) -> Result<WrappedKey, ServiceError> {
        let snap = self.chain.store.snapshot().map_err(|e| ServiceError::new(ErrorCode::Internal, e.to_string()))?;
        let inst = identity::credential(&snap, &r.requester).map(|c| c.institution).unwrap_or_default();
        if inst != self.institution {
            return Err(ServiceError::new(
                ErrorCode::NotPermitted,
                format!("`{}` re-wraps keys only for its own staff", self.institution),
            ));
        }
        let ctx = envelope::context(&r.record_id, r.version);
        envelope::rewrap(w, &self.institution_key, &r.requester, &ctx).map_err(|e| {
            ServiceError::new(ErrorCode::BadKey, format!("the institution's copy of the key does not open: {e}"))
        })
    }

    /// Carries out every erasure this institution owes, from committed state: destroys its
    /// vault copy of each record in its erasure queue (idempotent and crash-safe, see
    /// [`Vault::erase`]) and submits `confirm_erasure`, unless a confirmation is already
    /// pending. Run at start-up and after every finalized block, so a node that was down, lagged
    /// or crashed part-way catches up. Returns the confirmations submitted; a record whose vault
    /// copy cannot be destroyed now is retried on the next run.
    pub fn reconcile_erasures(&self) -> Vec<Hash> {
        let Ok(snap) = self.chain.store.snapshot() else { return Vec::new() };
        let queue = state_records::erasure_queue(&snap, &self.institution);
        // Uploads of records being erased whose anchor did not make it in before the request
        // (it never will: a record being erased takes no version) are copies no queue names;
        // they are destroyed here. An anchored upload is let go; one refused for another
        // reason once its anchor has left the mempool, [`UNANCHORED_BLOCKS`] blocks after the
        // upload.
        let tip = self.chain.tip().height;
        let mut orphans = Vec::new();
        self.unanchored.lock().retain(|u @ (id, v, tx, at)| {
            let Some(h) = state_records::head(&snap, id) else {
                return self.chain.is_pending(tx) || tip < at + UNANCHORED_BLOCKS;
            };
            if state_records::version(&snap, id, *v).is_some_and(|rv| rv.holder == self.institution) {
                return false;
            }
            if h.erasure_requested_at.is_some() || h.erased_at.is_some() {
                if !queue.contains(id) {
                    orphans.push(*u);
                }
                return false;
            }
            self.chain.is_pending(tx) || tip < at + UNANCHORED_BLOCKS
        });
        drop(snap);
        if self.sound().is_err() {
            self.unanchored.lock().extend(orphans);
            return Vec::new();
        }
        for u in orphans {
            match self.vault.erase(&u.0) {
                Ok(_) => tracing::info!("destroyed the copy of record {} uploaded as its erasure was requested", u.0),
                Err(e) => {
                    tracing::warn!("cannot erase the unanchored copy of record {} yet: {e}", u.0);
                    self.unanchored.lock().push_back(u);
                }
            }
        }
        let mut confirmed = Vec::new();
        let mut inflight = self.erasures_inflight.lock();
        inflight.retain(|id, tx| queue.contains(id) && self.chain.is_pending(tx));
        for id in queue {
            if inflight.contains_key(&id) {
                continue;
            }
            // (A fault found meanwhile, by a confirmation's snapshot, stops the erasures too.)
            if self.sound().is_err() {
                break;
            }
            if let Err(e) = self.vault.erase(&id) {
                tracing::warn!("cannot erase record {id} yet: {e}");
                continue;
            }
            match self.submit_signed(Operation::Records(RecordsOp::ConfirmErasure { record_id: id })) {
                Ok(tx) => {
                    inflight.insert(id, tx);
                    confirmed.push(tx);
                }
                Err(e) => tracing::warn!("cannot confirm the erasure of {id} yet: {e}"),
            }
        }
        confirmed
    }

    /// Journals an access event (durable when this returns) for the next batch; returns its id,
    /// the read request's. A reason is sealed for the patient, this institution and every
    /// regulator: it never reaches the chain in plaintext.
    fn log(
        &self,
        r: &ReadRequest,
        head: &state_records::RecordHead,
        outcome: AccessOutcome,
        reason: String,
    ) -> Result<Hash, ServiceError> {
        let journal = self
            .journal
            .get()
            .ok_or_else(|| ServiceError::new(ErrorCode::Internal, "no access journal is attached"))?;
        let mut reason = reason;
        medledger_types::limits::truncate_utf8(&mut reason, medledger_types::limits::MAX_REASON);
        let request_id = r.id();
        let reason = if reason.is_empty() {
            medledger_types::SealedNote::default()
        } else {
            let snap = self.snapshot()?;
            let (now, height) = (self.now(), self.chain.tip().height + 1);
            let patient = identity::patient_key(&snap, &head.patient)
                .ok_or_else(|| ServiceError::new(ErrorCode::NotFound, "the record's patient has no key"))?;
            let mut readers = vec![patient, self.institution_key.public()];
            readers.extend(identity::regulators(&snap, now, height));
            envelope::seal_note(&reason, &readers, &request_id)
                .map_err(|e| ServiceError::new(ErrorCode::Internal, format!("cannot seal the reason: {e}")))?
        };
        let note = medledger_types::audit::AccessNote {
            request_id,
            record_id: r.record_id,
            version: r.version,
            requester: r.requester,
            purpose: r.purpose,
            outcome,
            reason,
        };
        self.sound()?;
        journal.record(note).map_err(|e| match e {
            crate::audit::journal::JournalError::Full(_) => ServiceError::new(ErrorCode::MempoolFull, e.to_string()),
            e => ServiceError::new(ErrorCode::Internal, e.to_string()),
        })?;
        Ok(request_id)
    }

    fn snapshot(&self) -> Result<medledger_storage::Snapshot, ServiceError> {
        self.chain.store.snapshot().map_err(|e| ServiceError::new(ErrorCode::Internal, e.to_string()))
    }

    /// Signs `op` with the service's signer at its next free nonce. Call with `log_lock` held,
    /// and pool the transaction before releasing it, so nonces are assigned in order.
    fn sign_next(&self, op: Operation) -> Result<Tx, ServiceError> {
        let signer = self.signer.public();
        let nonce = self.chain.next_nonce(&self.snapshot()?, &signer);
        Ok(Tx::sign(Transaction { chain_id: self.chain.genesis.chain_id.clone(), signer, nonce, op }, &self.signer))
    }

    fn gossip_own(&self, tx: Tx) {
        if let Some(g) = self.gossip.get() {
            // Bounded: if the queue is full the transaction stays local and is still proposed.
            let _ = g.try_send(vec![tx]);
        }
    }

    /// The key this service signs its own transactions with.
    pub fn service_key(&self) -> PublicKey {
        self.signer.public()
    }

    /// Signs `op` with the node's service key, submits it and returns once it is pooled (for
    /// the node's other services: monitoring anchors, alarms, escalations).
    pub(crate) fn submit_service_op(&self, op: Operation) -> Result<Hash, ServiceError> {
        self.submit_signed(op)
    }

    /// Signs `op`, submits it and returns once it is in the mempool log, so it survives a crash.
    fn submit_signed(&self, op: Operation) -> Result<Hash, ServiceError> {
        let tx = {
            let _order = self.log_lock.lock();
            let tx = self.sign_next(op)?;
            self.chain.submit_own(vec![tx.clone()]).remove(0)?;
            tx
        };
        self.chain.make_durable(std::slice::from_ref(&tx))?;
        let id = tx.id();
        self.gossip_own(tx);
        Ok(id)
    }
}

/// Purposes accepted in URLs and CLIs.
pub fn parse_purpose(s: &str) -> Result<Purpose, ServiceError> {
    Purpose::parse(s).map_err(|e| bad(ErrorCode::InvalidArgument, e))
}
