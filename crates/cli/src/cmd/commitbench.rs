//! `medledger bench --drug-blocks N --replay-qmdb`: the domain writes of the same full blocks,
//! replayed into Commonware's append-only authenticated databases (`qmdb::current`, ordered,
//! unordered, and a hybrid of the two) instead of the state tree over redb. It measures what the
//! storage redesign `ARCHITECTURE.md` describes would cost a validator per block, and what its
//! proofs cost over the final state (of packs that exist, and of serials never made); the node
//! does not use it.

use commonware_codec::EncodeSize as _;
use commonware_cryptography::{Hasher as _, Sha256};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::{page_size, CacheRef};
use commonware_runtime::{tokio as cw_tokio, Runner as _, Supervisor as _, BLOB_PAGE_SIZE};
use commonware_storage::journal::contiguous::variable::Config as VConfig;
use commonware_storage::merkle::{full::Config as MerkleConfig, mmr};
use commonware_storage::qmdb::any::value::VariableEncoding;
use commonware_storage::qmdb::current::{ordered, unordered, VariableConfig};
use commonware_storage::qmdb::floor::Proportional;
use commonware_storage::translator::EightCap;
use commonware_utils::{NZUsize, NZU64};
use medledger_state::WriteSet;
use serde_json::{json, Value};
use std::num::NonZeroUsize;
use std::time::Instant;

type Digest = commonware_cryptography::sha256::Digest;
/// Proves current values and absences (each key linked to the next active one).
type Ordered = ordered::variable::Db<mmr::Family, cw_tokio::Context, Digest, Vec<u8>, Sha256, EightCap, 32, Sequential>;
/// Proves current values only.
type Unordered =
    unordered::variable::Db<mmr::Family, cw_tokio::Context, Digest, Vec<u8>, Sha256, EightCap, 32, Sequential>;

/// One replayed block: its kind, keys, and µs to read them, to merkleize, to apply and commit.
type Row = (&'static str, usize, f64, f64, f64);

/// Largest value the replay accepts (a full pallet's item is about 40 KiB).
const MAX_VALUE: usize = 1 << 20;

/// How an operation's key (a digest: nothing) and value (a byte vector of bounded length) decode.
type OpCodec = ((), (commonware_codec::RangeCfg<usize>, ()));

/// A database's configuration, its partitions named after `name`, with a page cache of `pages`.
fn config(name: &str, pages: usize) -> VariableConfig<EightCap, OpCodec, Sequential> {
    let page_cache =
        CacheRef::new(page_size(BLOB_PAGE_SIZE), NonZeroUsize::new(pages.max(1)).expect("at least one page"));
    VariableConfig {
        merkle_config: MerkleConfig {
            journal_partition: format!("{name}-merkle-journal"),
            metadata_partition: format!("{name}-merkle-metadata"),
            items_per_blob: NZU64!(1 << 20),
            write_buffer: NZUsize!(4 << 20),
            replay_buffer: NZUsize!(4 << 20),
            strategy: Sequential,
            page_cache: page_cache.clone(),
        },
        journal_config: VConfig {
            partition: format!("{name}-log-journal"),
            items_per_section: NZU64!(1 << 20),
            compression: None,
            codec_config: ((), ((0..=MAX_VALUE).into(), ())),
            page_cache,
            write_buffer: NZUsize!(4 << 20),
            replay_buffer: NZUsize!(4 << 20),
        },
        grafted_metadata_partition: format!("{name}-grafted-metadata"),
        translator: EightCap,
        init_cache: Some(NZUsize!(1 << 18)),
        init_buffer: NZUsize!(1 << 21),
        init_concurrency: (),
    }
}

/// One timed block: its kind, its domain writes (the tree's excluded), and the µs a node on
/// QMDB would still spend storing the block itself (its header, transactions and receipts, in
/// redb with a durable commit, timed by the caller).
pub struct Replayed {
    pub kind: &'static str,
    pub writes: WriteSet,
    pub block_store_us: f64,
}

/// How many keys of each kind (present, absent) the proofs are timed on.
pub const PROOF_SAMPLE: usize = 1_000;

/// Up to [`PROOF_SAMPLE`] packs the blocks wrote, spread over them (every pack ever written
/// still exists at the end: none is deleted), for timing proofs of current values.
pub fn proof_keys(blocks: &[Replayed]) -> Vec<Vec<u8>> {
    let items: std::collections::BTreeSet<&Vec<u8>> = blocks
        .iter()
        .flat_map(|b| b.writes.iter())
        .filter(|(k, v)| k.starts_with(medledger_state::keys::DRUG_ITEM) && v.is_some())
        .map(|(k, _)| k)
        .collect();
    let step = (items.len() / PROOF_SAMPLE).max(1);
    items.into_iter().step_by(step).take(PROOF_SAMPLE).cloned().collect()
}

/// Proof timings (µs each, generation only) and the largest proof's size.
pub fn proof_summary(us: Vec<f64>, bytes: usize) -> Value {
    let mut v = super::drugbench::stats_us(us);
    v["max_bytes"] = json!(bytes);
    v
}

/// Times each key's proof alone (`$prove`, its generation only), then checks it (`$verify`,
/// which must hold): the timings and the largest proof's size.
macro_rules! time_proofs {
    ($keys:expr, |$k:ident| $prove:expr, |$p:ident| $verify:expr) => {{
        let (mut us, mut bytes) = (Vec::with_capacity($keys.len()), 0);
        for $k in $keys {
            let t = Instant::now();
            let $p = $prove;
            us.push(t.elapsed().as_secs_f64() * 1e6);
            assert!($verify, "the proof does not verify");
            bytes = bytes.max($p.encode_size());
        }
        (us, bytes)
    }};
}

/// What a database proves over its final state, each proof timed alone and then verified
/// against the database's root.
trait Proves {
    /// Proofs of the current values of `keys`, which exist: µs each, the largest size.
    async fn present(&self, keys: &[Digest]) -> (Vec<f64>, usize);
    /// Proofs that `keys` do not exist; only an ordered database gives them.
    async fn absent(&self, keys: &[Digest]) -> Option<(Vec<f64>, usize)>;
}

impl Proves for Ordered {
    async fn present(&self, keys: &[Digest]) -> (Vec<f64>, usize) {
        let root = self.root();
        time_proofs!(keys, |k| self.key_value_proof(*k).await.expect("qmdb proof"), |proof| {
            let value = self.get(k).await.expect("qmdb get").expect("a key that exists");
            proof.verify::<Sha256, VariableEncoding<Vec<u8>>>(*k, value, &root)
        })
    }
    async fn absent(&self, keys: &[Digest]) -> Option<(Vec<f64>, usize)> {
        let root = self.root();
        Some(time_proofs!(keys, |k| self.exclusion_proof(k).await.expect("qmdb exclusion proof"), |proof| {
            proof.verify::<Sha256>(k, &root)
        }))
    }
}

impl Proves for Unordered {
    async fn present(&self, keys: &[Digest]) -> (Vec<f64>, usize) {
        let root = self.root();
        time_proofs!(keys, |k| self.key_value_proof(*k).await.expect("qmdb proof"), |proof| {
            let value = self.get(k).await.expect("qmdb get").expect("a key that exists");
            Unordered::verify_key_value_proof(*k, value, &proof, &root)
        })
    }
    async fn absent(&self, _: &[Digest]) -> Option<(Vec<f64>, usize)> {
        None
    }
}

/// The kinds of block `--drug-blocks` times, in order.
const KINDS: [&str; 4] = ["commissioning", "capture", "shipping", "receiving"];

/// A full sync (Merkle nodes and the activity bitmap too) every this many blocks; the other
/// blocks' `commit` makes only the operation log durable, as a node would between syncs.
const SYNC_EVERY: usize = 8;

/// Replays `blocks` into a fresh database of type `$db` (every key), one runtime and directory
/// of its own. With `$identifiers` true (the hybrid), each identifier's key is also written, when
/// it is made, to an ordered database with empty values whose absence proofs would say that a
/// serial was never commissioned; the block is timed as the sum of both. Then times proofs over
/// the final state ([`Proves`]): of the `$present` keys from the database of every key, and of
/// the `$absent` ones from an ordered database (the hybrid's identifiers, or the ordered one).
/// Returns the rows and the two proof timings.
macro_rules! replay_into {
    ($db:ty, $identifiers:expr, $blocks:expr, $pages:expr, $present:expr, $absent:expr) => {{
        let dir = std::env::temp_dir().join(format!("medledger-qmdb-replay-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = cw_tokio::Config::new().with_storage_directory(dir.clone()).with_worker_threads(1);
        let (blocks, pages, identifiers): (&[Replayed], usize, bool) = ($blocks, $pages, $identifiers);
        let (present_keys, absent_keys): (&[Digest], &[Digest]) = ($present, $absent);
        let out = cw_tokio::Runner::new(cfg).start(|ctx| async move {
            let mut db = <$db>::init(ctx.child("state"), config("state", pages), None).await.expect("qmdb init");
            let mut made = match identifiers {
                true => Some(Ordered::init(ctx.child("made"), config("made", pages), None).await.expect("qmdb init")),
                false => None,
            };
            let mut rows: Vec<Row> = Vec::new();
            for (i, b) in blocks.iter().enumerate() {
                let t = Instant::now();
                let keys: Vec<(Digest, Option<Vec<u8>>, bool)> = b
                    .writes
                    .iter()
                    .map(|(k, v)| {
                        (Sha256::hash(&[k.as_slice()]), v.clone(), k.starts_with(medledger_state::keys::DRUG_ITEM))
                    })
                    .collect();
                let mut new = Vec::new();
                for (k, v, item) in &keys {
                    let old = db.get(k).await.expect("qmdb get");
                    if made.is_some() && old.is_none() && *item && v.is_some() {
                        new.push(*k);
                    }
                }
                let read = t.elapsed().as_secs_f64() * 1e6;
                let t = Instant::now();
                let n = keys.len();
                let mut batch = db.new_batch();
                for (k, v, _) in keys {
                    batch = batch.write(k, v);
                }
                let everything = batch.merkleize(&db, None, &mut Proportional).await.expect("qmdb merkleize");
                let _root = everything.root();
                let made_batch = match &made {
                    Some(m) => {
                        let mut batch = m.new_batch();
                        for k in new {
                            batch = batch.write(k, Some(Vec::new()));
                        }
                        let batch = batch.merkleize(m, None, &mut Proportional).await.expect("qmdb merkleize");
                        let _root = batch.root();
                        Some(batch)
                    }
                    None => None,
                };
                let seal = t.elapsed().as_secs_f64() * 1e6;
                let t = Instant::now();
                let sync = (i + 1) % SYNC_EVERY == 0;
                db = db.apply_batch(everything).await.expect("qmdb apply");
                db = if sync { db.sync().await } else { db.commit().await }.expect("qmdb commit");
                if let (Some(m), Some(batch)) = (made.take(), made_batch) {
                    let m = m.apply_batch(batch).await.expect("qmdb apply");
                    made = Some(if sync { m.sync().await } else { m.commit().await }.expect("qmdb commit"));
                }
                rows.push((b.kind, n, read, seal, t.elapsed().as_secs_f64() * 1e6));
            }
            let present = db.present(present_keys).await;
            let absent = match &made {
                Some(m) => m.absent(absent_keys).await,
                None => db.absent(absent_keys).await,
            };
            db.destroy().await.expect("qmdb destroy");
            if let Some(m) = made {
                m.destroy().await.expect("qmdb destroy");
            }
            (rows, present, absent)
        });
        let _ = std::fs::remove_dir_all(&dir);
        out
    }};
}

fn summary(rows: &[Row], kind: &str) -> Value {
    let r: Vec<&Row> = rows.iter().filter(|r| r.0 == kind).collect();
    let mean = |f: &dyn Fn(&Row) -> f64| r.iter().map(|x| f(x)).sum::<f64>() / r.len().max(1) as f64;
    json!({
        "blocks": r.len(),
        "keys_per_block": mean(&|x| x.1 as f64).round(),
        "read_mean_us": mean(&|x| x.2).round(),
        "merkleize_mean_us": mean(&|x| x.3).round(),
        "apply_commit_mean_us": mean(&|x| x.4).round(),
        "total_mean_us": mean(&|x| x.2 + x.3 + x.4).round(),
        "max_block_us": r.iter().map(|x| x.2 + x.3 + x.4).fold(0.0, f64::max).round(),
    })
}

/// Replays `blocks` in order into each variant (ordered, unordered, and the hybrid of the two;
/// see `replay_into!`): for each block, hashes its keys to 32 bytes and reads each (as execution
/// reads what it changes), writes the block as one batch, merkleizes it (its root), applies it
/// and commits it (the operation log fsynced; a full sync every [`SYNC_EVERY`] blocks). Times
/// per block, one worker thread. Also reports what storing the blocks themselves cost in redb,
/// and the proofs over the final state of the `present` keys (which exist) and the `absent`
/// ones (never written), as `tree` reports them for the state tree.
pub fn replay(blocks: Vec<Replayed>, present: &[Vec<u8>], absent: &[Vec<u8>], tree: Value) -> Value {
    // Enough cache for the volume replayed, at most 256 MiB per database.
    let pages = (blocks.len() * 4096).clamp(4096, 65_536);
    let hashed = |keys: &[Vec<u8>]| -> Vec<Digest> { keys.iter().map(|k| Sha256::hash(&[k.as_slice()])).collect() };
    let (present, absent) = (hashed(present), hashed(absent));
    let (ordered, ordered_present, ordered_absent) = replay_into!(Ordered, false, &blocks, pages, &present, &absent);
    let (unordered, unordered_present, _) = replay_into!(Unordered, false, &blocks, pages, &present, &absent);
    let (hybrid, hybrid_present, hybrid_absent) = replay_into!(Unordered, true, &blocks, pages, &present, &absent);
    let proofs = |present: (Vec<f64>, usize), absent: Option<(Vec<f64>, usize)>| {
        json!({
            "present": proof_summary(present.0, present.1),
            "absent": absent.map(|(us, bytes)| proof_summary(us, bytes)),
        })
    };
    let block_store = |kind: &str| {
        let b: Vec<f64> = blocks.iter().filter(|b| b.kind == kind).map(|b| b.block_store_us).collect();
        (b.iter().sum::<f64>() / b.len().max(1) as f64).round()
    };
    let by_kind = |f: &dyn Fn(&str) -> Value| -> Value {
        KINDS.iter().map(|k| (k.to_string(), f(k))).collect::<serde_json::Map<_, _>>().into()
    };
    json!({
        "block_store_mean_us": by_kind(&|k| json!(block_store(k))),
        "hybrid": by_kind(&|k| summary(&hybrid, k)),
        "ordered": by_kind(&|k| summary(&ordered, k)),
        "unordered": by_kind(&|k| summary(&unordered, k)),
        "proofs": {
            "tree": tree,
            "ordered": proofs(ordered_present, ordered_absent),
            "unordered": proofs(unordered_present, None),
            "hybrid": proofs(hybrid_present, hybrid_absent),
        },
    })
}
