//! MedLedger's deterministic state machine.
//!
//! `execute_block(state, env, txs) -> Executed { writes, receipts, state_root }` is a
//! pure function: the same parent state and the same block give the same writes, receipts and
//! state root on every node. It does no I/O, reads no clock and draws no randomness; time is the
//! block timestamp. The node supplies the state view ([`StateRead`]) and persists the writes.
//!
//! One module per domain, named as in every other layer: [`identity`] (institutions,
//! credentials, patients, attestations), [`consent`] (patient consents, access requests, and
//! [`consent::permits`], the one place effective permission is decided), [`records`] (record
//! version anchors, amendments, erasure) and [`audit`] (access events and the chain-wide access
//! log). Each owns its execution, its keys (registered in [`keys`]), its queries and its rows of
//! the [`permissions`] table. Later domains (drugs, care, resources, wallet) add a module here,
//! never in the node.

pub mod audit;
pub mod care;
pub mod commitment;
pub mod consent;
pub mod drugs;
pub mod identity;
pub mod keys;
pub mod permissions;
pub mod principal;
pub mod queries;
pub mod records;
pub mod store;

use medledger_types::{Canonical, Event, Genesis, Hash, Operation, Outcome, PublicKey, Receipt, RejectCode, Tx};
pub use permissions::{allowed, Principal};
use store::Overlay;
pub use store::{Layered, MemState, StateRead, WriteSet};

/// What execution needs to know about the block besides its transactions.
#[derive(Clone, Debug)]
pub struct BlockEnv {
    pub chain_id: String,
    pub height: u64,
    pub timestamp_ms: u64,
    pub proposer: PublicKey,
}

#[derive(Clone, Debug)]
pub struct Executed {
    pub writes: WriteSet,
    pub receipts: Vec<Receipt>,
    pub state_root: Hash,
}

/// A rejection: a stable code and a human reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectCode,
    pub reason: String,
}

impl Rejection {
    pub fn new(code: RejectCode, reason: impl Into<String>) -> Self {
        Rejection { code, reason: reason.into() }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.reason)
    }
}

/// Adds the height write every block makes, then commits the block's domain writes to the state
/// tree: the tree's writes join the write set and its root is the state root.
pub fn seal(state: &dyn StateRead, height: u64, mut writes: WriteSet) -> (WriteSet, Hash) {
    debug_assert!(writes.keys().all(|k| !commitment::is_tree_key(k)), "domains never write tree nodes");
    writes.insert(keys::HEIGHT.to_vec(), Some(height.to_be_bytes().to_vec()));
    let (root, tree) = commitment::commit(state, height, &writes);
    writes.extend(tree);
    (writes, root)
}

/// The state written at genesis (chain id, CA key, validators, member institutions and their
/// admins), with the state tree of version 0.
pub fn genesis_writes(g: &Genesis) -> WriteSet {
    seal(&MemState::default(), 0, identity::genesis(g)).0
}

/// The state root of the genesis state (height 0).
pub fn genesis_root(g: &Genesis) -> Hash {
    seal(&MemState::default(), 0, identity::genesis(g)).1
}

/// The height of the latest block applied to `state`.
pub fn height_of(state: &dyn StateRead) -> Option<u64> {
    read_u64(state, keys::HEIGHT, "height")
}

/// Next expected nonce of `signer`.
pub fn nonce_of(state: &dyn StateRead, signer: &PublicKey) -> u64 {
    read_u64(state, &identity::key::nonce(signer), "nonce").unwrap_or(0)
}

/// Checks a transaction against current state before it enters the mempool: chain id, nonce
/// not already used, and a signer that may perform this kind of operation now. Signature and
/// size are checked by the caller.
pub fn precheck(state: &dyn StateRead, chain_id: &str, now_ms: u64, height: u64, tx: &Tx) -> Result<(), Rejection> {
    let body = tx.body();
    if body.chain_id != chain_id {
        return Err(Rejection::new(
            RejectCode::WrongChain,
            format!("transaction is for chain `{}`, this is `{chain_id}`", body.chain_id),
        ));
    }
    let expected = nonce_of(state, &body.signer);
    if body.nonce < expected {
        return Err(Rejection::new(
            RejectCode::BadNonce,
            format!("nonce {} already used (next is {expected}): replay", body.nonce),
        ));
    }
    let principal = identity::principal(state, &body.signer, now_ms, height)?;
    admissible(principal, &body.op)?;
    Ok(())
}

/// The checks every path shares once the signer's principal is known: the operation's field
/// limits and the permission table.
fn admissible(principal: Principal, op: &Operation) -> Result<(), Rejection> {
    op.check_limits().map_err(|e| Rejection::new(RejectCode::InvalidArgument, e))?;
    if !allowed(principal, op.kind()) {
        return Err(not_permitted(principal, op.kind()));
    }
    Ok(())
}

fn not_permitted(p: Principal, k: medledger_types::OpKind) -> Rejection {
    Rejection::new(RejectCode::NotPermitted, format!("role `{}` may not perform `{}`", p.name(), k.name()))
}

/// Executes `txs` on `state`. Precondition: every transaction's signature was verified by the
/// caller (a block with a bad signature is invalid as a whole and never executed).
pub fn execute_block(state: &dyn StateRead, env: &BlockEnv, txs: &[Tx]) -> Executed {
    let (domain_writes, receipts) = execute_unsealed(state, env, txs);
    let (writes, state_root) = seal(state, env.height, domain_writes);
    Executed { writes, receipts, state_root }
}

/// The domain writes and receipts of `txs` on `state`, without the state tree. [`execute_block`]
/// seals them; tools that build large states to measure reads (the benchmarks) use them as is.
pub fn execute_unsealed(state: &dyn StateRead, env: &BlockEnv, txs: &[Tx]) -> (WriteSet, Vec<Receipt>) {
    let mut block = Overlay::new(state);
    let mut receipts = Vec::with_capacity(txs.len());
    for (i, tx) in txs.iter().enumerate() {
        let mut txo = Overlay::new(&block);
        let outcome = match execute_tx(&mut txo, env, tx) {
            Ok(events) => Outcome::Applied { events },
            // (A reason can name many things, a list of institutions among them: it is cut to
            // what a receipt keeps.)
            Err(r) => Outcome::Rejected { code: r.code, reason: medledger_types::receipt::fit_text(r.reason) },
        };
        let writes = std::mem::take(&mut txo.writes);
        drop(txo);
        block.writes.extend(writes);
        receipts.push(Receipt { tx_id: tx.id(), height: env.height, index: i as u32, outcome });
    }
    (block.writes, receipts)
}

/// Runs one transaction. On `Err`, the overlay holds only what must persist anyway (the spent
/// nonce, once the signer is known); on `Ok`, all of the operation's writes.
fn execute_tx(o: &mut Overlay<'_>, env: &BlockEnv, tx: &Tx) -> Result<Vec<Event>, Rejection> {
    let body = tx.body();
    if body.chain_id != env.chain_id {
        return Err(Rejection::new(RejectCode::WrongChain, format!("transaction is for chain `{}`", body.chain_id)));
    }
    let expected = nonce_of(o, &body.signer);
    if body.nonce != expected {
        return Err(Rejection::new(
            RejectCode::BadNonce,
            format!("nonce {} but next expected is {expected}", body.nonce),
        ));
    }
    let principal = identity::principal(o, &body.signer, env.timestamp_ms, env.height)?;
    // From here on the nonce is spent, whatever the outcome.
    o.put(identity::key::nonce(&body.signer), (expected + 1).to_be_bytes().to_vec());
    let spent = o.writes.clone();
    admissible(principal, &body.op)?;
    let result = dispatch(o, env, &body.signer, principal, &body.op);
    match result {
        Ok(events) => Ok(events),
        Err(r) => {
            o.writes = spent;
            Err(r)
        }
    }
}

/// Applies an operation in its domain. Exhaustive on purpose: a new domain that is not
/// dispatched here does not compile.
fn dispatch(
    o: &mut Overlay<'_>,
    env: &BlockEnv,
    signer: &PublicKey,
    principal: Principal,
    op: &Operation,
) -> Result<Vec<Event>, Rejection> {
    match op {
        Operation::Identity(op) => identity::apply(o, env, signer, principal, op),
        Operation::Consent(op) => consent::apply(o, env, signer, principal, op),
        Operation::Records(op) => records::apply(o, env, signer, op),
        Operation::Audit(op) => audit::apply(o, env, signer, op),
        Operation::Drugs(op) => drugs::apply(o, env, signer, principal, op),
        Operation::Care(op) => care::apply(o, env, signer, principal, op),
    }
}

/// The full state-machine check of `tx`'s operation as if it were executed in the block `env`
/// describes, keeping no write: credential, permission table, field limits, and the domain's own
/// rules (consent, versions, ownership). For services that must not act on a transaction the
/// chain would refuse (a vault write before its anchor commits). The nonce is not checked here
/// (pending transactions of the same signer may come first); [`precheck`] checks it.
pub fn check_operation(state: &dyn StateRead, env: &BlockEnv, tx: &Tx) -> Result<(), Rejection> {
    let body = tx.body();
    if body.chain_id != env.chain_id {
        return Err(Rejection::new(RejectCode::WrongChain, format!("transaction is for chain `{}`", body.chain_id)));
    }
    let principal = identity::principal(state, &body.signer, env.timestamp_ms, env.height)?;
    admissible(principal, &body.op)?;
    let mut o = Overlay::new(state);
    dispatch(&mut o, env, &body.signer, principal, &body.op).map(|_| ())
}

/// Encodes a stored list of ids (a u32 count, then the ids).
pub(crate) fn encode_ids(ids: &[Hash]) -> Vec<u8> {
    let mut w = medledger_types::codec::Writer::new();
    w.u32(ids.len() as u32);
    for id in ids {
        w.fixed(&id.0);
    }
    w.finish()
}

/// Decodes a stored id list written by [`encode_ids`] under `limit` (empty if it does not
/// decode, which is reported: see [`decode_with`]).
pub(crate) fn decode_ids(s: &dyn StateRead, bytes: &[u8], what: &'static str, limit: usize) -> Vec<Hash> {
    decode_with(s, bytes, what, |r| {
        let n = r.len(what, limit)?;
        (0..n).map(|_| r.array(what).map(Hash)).collect()
    })
    .unwrap_or_default()
}

/// Decodes a stored value with `f`, which must read all of it. One that does not decode is
/// reported to the view it was read from ([`StateRead::corrupt`]) and read as absent: the
/// view's owner stops before acting on anything computed over it.
pub(crate) fn decode_with<T>(
    s: &dyn StateRead,
    bytes: &[u8],
    what: &str,
    f: impl FnOnce(&mut medledger_types::codec::Reader<'_>) -> Result<T, medledger_types::codec::DecodeError>,
) -> Option<T> {
    let mut r = medledger_types::codec::Reader::new(bytes);
    let out = f(&mut r).and_then(|v| match r.remaining() {
        0 => Ok(v),
        n => Err(medledger_types::codec::DecodeError::TrailingBytes(n)),
    });
    out.map_err(|e| s.corrupt(&format!("stored {what} does not decode ({e})"))).ok()
}

/// Decodes a stored value in its canonical encoding (see [`decode_with`] for one that does
/// not decode).
pub(crate) fn decode_stored<T: Canonical>(s: &dyn StateRead, bytes: &[u8], what: &str) -> Option<T> {
    T::from_bytes(bytes).map_err(|e| s.corrupt(&format!("stored {what} does not decode ({e})"))).ok()
}

/// A count, height or sequence number stored under `key` (8 bytes, big-endian), decoded
/// ([`decode_with`]).
pub(crate) fn read_u64(s: &dyn StateRead, key: &[u8], what: &'static str) -> Option<u64> {
    s.get(key).and_then(|b| decode_with(s, &b, what, |r| r.u64(what)))
}

/// A stored list of public keys (32 bytes each, no count), decoded ([`decode_with`]).
pub(crate) fn read_keys(s: &dyn StateRead, key: &[u8], what: &'static str) -> Vec<PublicKey> {
    s.get(key)
        .and_then(|b| {
            decode_with(s, &b, what, |r| {
                let mut keys = Vec::with_capacity(r.remaining() / 32);
                while r.remaining() > 0 {
                    keys.push(PublicKey(r.array(what)?));
                }
                Ok(keys)
            })
        })
        .unwrap_or_default()
}

/// The value stored under `key`, decoded ([`decode_stored`]).
pub(crate) fn read_stored<T: Canonical>(s: &dyn StateRead, key: &[u8], what: &str) -> Option<T> {
    s.get(key).and_then(|b| decode_stored(s, &b, what))
}
