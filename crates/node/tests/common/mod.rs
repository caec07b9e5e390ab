#![allow(dead_code)]
//! A single-node harness: real store, mempool and execution, blocks committed directly (no
//! consensus), the REST API called in process.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use medledger_node::api::{self, ApiState, NodeInfo};
use medledger_node::chain::Chain;
use medledger_node::mempool::MempoolConfig;
use medledger_node::records::RecordService;
use medledger_storage::Store;
use medledger_types::IdentityOp;
use medledger_types::{
    genesis::GenesisInstitution, CredentialSpec, Genesis, Hash, Keypair, Operation, Role, Transaction, Tx,
};
use medledger_vault::{FsStore, Vault};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tower::ServiceExt as _;

pub mod records;

pub struct NoPeers;
impl NodeInfo for NoPeers {
    fn peers(&self) -> Vec<String> {
        vec![]
    }
}

pub struct Node {
    pub chain: Arc<Chain>,
    pub router: axum::Router,
    pub ca: Keypair,
    pub admins: Vec<Keypair>,
    pub clock: Arc<AtomicU64>,
    pub records: Option<Arc<RecordService>>,
    pub _dir: tempfile::TempDir,
}

pub const T0: u64 = 1_800_000_000_000;

/// A fresh nonce for each signed request (the test clock can repeat a millisecond).
pub fn fresh_nonce() -> u64 {
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A single-node harness; with `vault`, institution h0's record service is mounted.
pub fn node_with(vault: bool) -> Node {
    node_limited(vault, medledger_node::guard::RateLimit::default())
}

/// [`node_with`], with each requester's allowance of signed requests set to `limit`.
pub fn node_limited(vault: bool, limit: medledger_node::guard::RateLimit) -> Node {
    node_in(tempfile::tempdir().unwrap(), vault, limit, T0 + 1000)
}

/// A harness whose record service signs its own transactions with `service` (a node service
/// key; the test issues its credential).
pub fn node_with_service_key(service: &Keypair) -> Node {
    with_service_key(node_with(true), service)
}

/// Replaces `n`'s record service with one that signs with `service`, over the vault in
/// `vault/` and its reading log, as a node starts it: the access journal attached, then the
/// readings no anchor covers queued again.
fn with_service_key(mut n: Node, service: &Keypair) -> Node {
    let svc = RecordService::new(
        n.chain.clone(),
        Vault::new(
            Box::new(FsStore::open(&n._dir.path().join("vault")).unwrap()) as Box<dyn medledger_vault::BlobStore>
        )
        .with_reading_log(&n._dir.path().join("vault/readings.redb"))
        .unwrap(),
        "h0".into(),
        n.admins[0].clone(),
    )
    .with_signer(service.clone());
    svc.attach_journal(&n._dir.path().join("access-service.wal")).unwrap();
    svc.monitor.recover(&svc).unwrap();
    let svc = Arc::new(svc);
    n.router = api::router(ApiState {
        chain: n.chain.clone(),
        info: Arc::new(NoPeers),
        gossip: None,
        records: Some(svc.clone()),
        guard: svc.guard.clone(),
        forward_tls: None,
    });
    n.records = Some(svc);
    n
}

/// The harness over the data in `dir` (a fresh one, or one a previous node left), its clock at
/// `now`. The mempool's write-ahead log is attached, as a real node does.
pub fn node_in(dir: tempfile::TempDir, vault: bool, limit: medledger_node::guard::RateLimit, now: u64) -> Node {
    let ca = Keypair::from_seed(1);
    let admins: Vec<Keypair> = (0..4).map(|i| Keypair::from_seed(10 + i)).collect();
    let g = Genesis {
        chain_id: "api-test".into(),
        genesis_time_ms: T0,
        ca_key: ca.public(),
        institutions: (0..4)
            .map(|i| GenesisInstitution {
                id: format!("h{i}"),
                name: format!("H{i}"),
                validator_key: Keypair::from_seed(20 + i as u64).public(),
                admin_key: admins[i].public(),
                p2p_address: "127.0.0.1:1".into(),
                api_address: "127.0.0.1:2".into(),
            })
            .collect(),
    };
    let store = Arc::new(Store::open(&dir.path().join("l.redb")).unwrap());
    let clock = Arc::new(AtomicU64::new(now));
    let c2 = clock.clone();
    let chain = Chain::open(
        g.clone(),
        store,
        g.institutions[0].validator_key,
        MempoolConfig::default(),
        Arc::new(move || c2.load(Ordering::SeqCst)),
    )
    .unwrap();
    chain.attach_wal(&dir.path().join("mempool.wal")).unwrap();
    let guard = Arc::new(medledger_node::guard::Guard::new(limit));
    let records = vault.then(|| {
        let v = Vault::new(
            Box::new(FsStore::open(&dir.path().join("vault")).unwrap()) as Box<dyn medledger_vault::BlobStore>
        )
        .with_reading_log(&dir.path().join("readings.redb"))
        .unwrap();
        let svc = RecordService::new(chain.clone(), v, "h0".into(), admins[0].clone()).with_guard(guard.clone());
        svc.attach_journal(&dir.path().join("access.wal")).unwrap();
        Arc::new(svc)
    });
    let router = api::router(ApiState {
        chain: chain.clone(),
        info: Arc::new(NoPeers),
        gossip: None,
        records: records.clone(),
        guard,
        forward_tls: None,
    });
    Node { chain, router, ca, admins, clock, records, _dir: dir }
}

pub fn node() -> Node {
    node_with(false)
}

impl Node {
    /// Kills this node without any shutdown (everything in memory is gone, as after SIGKILL)
    /// and starts a new one over the same data directory.
    pub fn crash_and_restart(self) -> Node {
        let vault = self.records.is_some();
        let now = self.clock.load(Ordering::SeqCst);
        let Node { chain, router, records, _dir, .. } = self;
        drop((router, records));
        assert_eq!(Arc::strong_count(&chain), 1, "the harness holds the only chain");
        drop(chain);
        node_in(_dir, vault, medledger_node::guard::RateLimit::default(), now)
    }

    /// [`Node::crash_and_restart`] for a node made by [`node_with_service_key`].
    pub fn crash_and_restart_with_service_key(self, service: &Keypair) -> Node {
        with_service_key(self.crash_and_restart(), service)
    }
}

impl Node {
    /// Builds and commits one block from the mempool (no consensus: a single-node harness).
    /// Queued access events are batched first and settled after, as a node's batcher and
    /// finalization watcher do.
    pub fn commit(&self) -> Arc<medledger_types::Block> {
        if let Some(r) = &self.records {
            r.flush_access_log();
        }
        self.clock.fetch_add(1000, Ordering::SeqCst);
        let parent = self.chain.store.block(self.chain.tip().height).unwrap().unwrap();
        let b = self.chain.build(&parent).unwrap();
        self.chain.finalize(b.clone(), None).unwrap();
        if let Some(r) = &self.records {
            r.settle_access_log();
        }
        b
    }

    pub fn nonce(&self, k: &Keypair) -> u64 {
        let snap = self.chain.store.snapshot().unwrap();
        medledger_state::nonce_of(&snap, &k.public())
    }

    pub fn tx(&self, k: &Keypair, op: Operation) -> Tx {
        self.tx_n(k, self.nonce(k), op)
    }

    pub fn tx_n(&self, k: &Keypair, nonce: u64, op: Operation) -> Tx {
        Tx::sign(Transaction { chain_id: "api-test".into(), signer: k.public(), nonce, op }, k)
    }

    /// Calls the API; `GET`s are signed by the CA, which may see everything.
    pub async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let ca = self.ca.clone();
        self.call_as(Some(&ca), method, uri, body).await
    }

    /// Calls the API with `GET`s signed by `who`, or unsigned.
    pub async fn call_as(
        &self,
        who: Option<&Keypair>,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri).header("content-type", "application/json");
        if let (Some(k), "GET") = (who, method) {
            let signed = medledger_types::auth::ApiRequest {
                chain_id: "api-test".into(),
                method: "GET".into(),
                path: uri.to_string(),
                issued_ms: self.clock.load(Ordering::SeqCst),
                nonce: fresh_nonce(),
            };
            req = req.header("authorization", signed.authorization(k));
        }
        let req = req.body(body.map_or(Body::empty(), |b| Body::from(b.to_string()))).unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn submit_raw(&self, raw: &[u8]) -> (StatusCode, Value) {
        self.call("POST", "/v1/txs", Some(json!({ "tx": hex::encode(raw) }))).await
    }

    pub async fn submit(&self, tx: &Tx) -> (StatusCode, Value) {
        self.submit_raw(tx.raw()).await
    }

    /// Issues a credential through a committed block and returns the key.
    pub async fn credential(&self, seed: u64, role: Role, until: u64) -> Keypair {
        let k = Keypair::from_seed(seed);
        let op = if role == Role::Patient {
            Operation::Identity(IdentityOp::RegisterPatient {
                subject: k.public(),
                pseudonym: Hash([seed as u8; 32]),
                valid_until_ms: until,
            })
        } else {
            Operation::Identity(IdentityOp::IssueCredential {
                spec: CredentialSpec {
                    subject: k.public(),
                    role,
                    institution: "h0".into(),
                    display_name: format!("{} {seed}", role.name()),
                    valid_from_ms: T0,
                    valid_until_ms: until,
                },
            })
        };
        let signer = if role == Role::Patient { &self.admins[0] } else { &self.ca };
        let tx = self.tx(signer, op);
        assert_eq!(self.submit(&tx).await.0, StatusCode::ACCEPTED);
        self.commit();
        k
    }
}

pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no code>")
}
