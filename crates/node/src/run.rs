//! Running a validator as a process: Commonware's tokio runtime, authenticated p2p
//! (`lookup`, peers and addresses from the genesis file), the embedded store and the REST API.

use crate::api::{self, ApiState, NodeInfo};
use crate::chain::{now_ms, Chain};
use crate::consensus::{self, channel, start_validator, Channels, Timing, P2P_NAMESPACE};
use crate::mempool::MempoolConfig;
use commonware_cryptography::{ed25519, ChaCha20Poly1305};
use commonware_p2p::authenticated::lookup;
use commonware_p2p::{Address, AddressableManager as _, Message, Receiver};
use commonware_runtime::{tokio as cw_tokio, Metrics as _, Quota, Runner as _, Spawner as _, Supervisor as _};
use commonware_stream::{
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::{ordered::Map, NZUsize, NZU32};
use medledger_storage::Store;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A validator's configuration file (TOML).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Path of the consortium genesis file.
    pub genesis: PathBuf,
    /// Path of this validator's key file.
    pub key: PathBuf,
    /// Directory for the ledger store and consensus journals.
    pub data_dir: PathBuf,
    /// Where to accept peer connections (default: this institution's `p2p_address`).
    #[serde(default)]
    pub p2p_listen: Option<SocketAddr>,
    /// Where to serve the REST API (default: this institution's `api_address`).
    #[serde(default)]
    pub api_listen: Option<SocketAddr>,
    /// Worker threads of the runtime (default 2).
    #[serde(default)]
    pub worker_threads: Option<usize>,
    /// The institution admin key file. When set, the node runs the institution's record vault
    /// (under `data_dir/vault`) and signs access events with this key.
    #[serde(default)]
    pub institution_key: Option<PathBuf>,
    /// Keep the vault in an S3-compatible bucket instead of `data_dir/vault`, e.g.
    /// `s3://bucket/prefix` (needs a build with the `s3` feature). Credentials come from the
    /// standard `AWS_*` environment variables or `vault_options`.
    #[serde(default)]
    pub vault_url: Option<String>,
    /// Object-store options such as `endpoint`, `region`, `allow_http`.
    #[serde(default)]
    pub vault_options: std::collections::BTreeMap<String, String>,
    /// The node's own service key file: signs its vault's access events and erasure
    /// confirmations (the CA issues it a `node_service` credential naming this institution).
    /// Without it the node signs with `institution_key`, whose nonces people using that key
    /// then share.
    #[serde(default)]
    pub service_key: Option<PathBuf>,
    /// Each requester's allowance of signed reads and audit queries (default 50/s, bursts of
    /// 200); above it the node answers 429 `rate_limited`.
    #[serde(default)]
    pub requester_rate: crate::guard::RateLimit,
    /// TLS: this node's certificate chain (PEM), issued under the consortium CA. With
    /// `tls_key`, the API is served over HTTPS only.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// TLS: this node's private key (PKCS#8 PEM, mode 0600).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// TLS: the consortium CA certificate (PEM). Forwarded requests go to other nodes over
    /// HTTPS, trusting this root only.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
}

/// Opens the record vault's blob store: the embedded filesystem store, or the configured bucket.
fn open_vault_store(cfg: &NodeConfig) -> Result<Box<dyn medledger_vault::BlobStore>, String> {
    match &cfg.vault_url {
        None => Ok(Box::new(medledger_vault::FsStore::open(&cfg.data_dir.join("vault")).map_err(|e| e.to_string())?)),
        #[cfg(feature = "s3")]
        Some(url) => {
            let opts: Vec<(String, String)> = cfg.vault_options.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            Ok(Box::new(
                medledger_vault::ObjectStoreBlobs::from_url(url, &opts).map_err(|e| format!("vault_url {url}: {e}"))?,
            ))
        }
        #[cfg(not(feature = "s3"))]
        Some(url) => {
            Err(format!("vault_url {url}: this build has no object-store support; rebuild with `--features s3`"))
        }
    }
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<NodeConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        let mut cfg: NodeConfig = toml::from_str(&text).map_err(|e| format!("config {}: {e}", path.display()))?;
        // Relative paths are relative to the config file.
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut cfg.genesis, &mut cfg.key, &mut cfg.data_dir]
            .into_iter()
            .chain(cfg.institution_key.as_mut())
            .chain(cfg.service_key.as_mut())
            .chain(cfg.tls_cert.as_mut())
            .chain(cfg.tls_key.as_mut())
            .chain(cfg.tls_ca.as_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }
}

pub use medledger_vault::keyfile::{read_genesis, read_key, read_public_key, write_key, write_private, KeyFile};

/// Records which peers sent anything recently (for `/v1/status` and metrics).
#[derive(Debug)]
struct Seen<R> {
    inner: R,
    peers: Arc<Mutex<HashMap<String, Instant>>>,
}

impl<R: Receiver> Receiver for Seen<R> {
    type Error = R::Error;
    type PublicKey = R::PublicKey;
    async fn recv(&mut self) -> Result<Message<Self::PublicKey>, Self::Error> {
        let m = self.inner.recv().await?;
        self.peers.lock().insert(hex::encode(m.0.as_ref()), Instant::now());
        Ok(m)
    }
    fn capacity(&self) -> NonZeroUsize {
        self.inner.capacity()
    }
}

struct Info {
    peers: Arc<Mutex<HashMap<String, Instant>>>,
    metrics: Arc<dyn Fn() -> String + Send + Sync>,
}

impl NodeInfo for Info {
    fn peers(&self) -> Vec<String> {
        let now = Instant::now();
        let mut v: Vec<String> = self
            .peers
            .lock()
            .iter()
            .filter(|(_, t)| now.duration_since(**t) < Duration::from_secs(10))
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }
    fn prometheus(&self) -> String {
        (self.metrics)()
    }
}

/// Runs a validator until SIGINT/SIGTERM. Errors are configuration or startup problems.
pub fn run(cfg: NodeConfig) -> Result<(), String> {
    let genesis = read_genesis(&cfg.genesis)?;
    let key = read_key(&cfg.key)?;
    let me = genesis
        .institution_of_validator(&key.public())
        .ok_or_else(|| format!("key {} is not a validator in the genesis file", key.public().short()))?
        .clone();
    let p2p_listen = match cfg.p2p_listen {
        Some(a) => a,
        None => me.p2p_address.parse().map_err(|e| format!("p2p_address: {e}"))?,
    };
    let api_listen = match cfg.api_listen {
        Some(a) => a,
        None => me.api_address.parse().map_err(|e| format!("api_address: {e}"))?,
    };
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| format!("cannot create {}: {e}", cfg.data_dir.display()))?;
    let store = Arc::new(Store::open(&cfg.data_dir.join("ledger.redb")).map_err(|e| e.to_string())?);
    let chain = Chain::open(genesis.clone(), store, key.public(), MempoolConfig::default(), Arc::new(now_ms))
        .map_err(|e| e.to_string())?;
    // Transactions acknowledged before a crash are pending again.
    let recovered = chain.attach_wal(&cfg.data_dir.join("mempool.wal"))?;
    if recovered > 0 {
        eprintln!("re-admitted {recovered} pending transactions from the mempool log");
    }
    let guard = Arc::new(crate::guard::Guard::new(cfg.requester_rate));
    let server_tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Some(medledger_tls::server_config(c, k)?),
        (None, None) => None,
        _ => return Err("give both tls_cert and tls_key, or neither".into()),
    };
    let forward_tls = cfg.tls_ca.as_deref().map(medledger_tls::client_config).transpose()?;
    let records = match &cfg.institution_key {
        None => None,
        Some(path) => {
            let ikey = read_key(path)?;
            if ikey.public() != me.admin_key {
                return Err(format!(
                    "institution_key {} is not the admin key of `{}` in the genesis file",
                    path.display(),
                    me.id
                ));
            }
            // Readings' ciphertexts stay on this machine (group-committed), whatever the store.
            let vault = medledger_vault::Vault::new(open_vault_store(&cfg)?)
                .with_reading_log(&cfg.data_dir.join("readings.redb"))
                .map_err(|e| e.to_string())?;
            let mut svc =
                crate::records::RecordService::new(chain.clone(), vault, me.id.clone(), ikey).with_guard(guard.clone());
            if let Some(path) = &cfg.service_key {
                svc = svc.with_signer(read_key(path)?);
            }
            // Access events journaled before a crash and not yet on chain are queued again.
            let queued = svc.attach_journal(&cfg.data_dir.join("access.wal"))?;
            if queued > 0 {
                eprintln!("queued {queued} access events from the access journal for the chain");
            }
            // Readings acknowledged before a crash that no anchor covers are queued again.
            let readings = svc.monitor.recover(&svc).map_err(|e| format!("monitoring: {e}"))?;
            if readings > 0 {
                eprintln!("queued {readings} readings from the vault for their devices' anchors");
            }
            Some(Arc::new(svc))
        }
    };
    // Bind the API first, and probe the p2p port, so that a port clash ends the process at once
    // with the address and the reason, before consensus starts (the p2p stack binds later).
    let std_listener =
        std::net::TcpListener::bind(api_listen).map_err(|e| format!("cannot listen on {api_listen} (API): {e}"))?;
    drop(std::net::TcpListener::bind(p2p_listen).map_err(|e| format!("cannot listen on {p2p_listen} (p2p): {e}"))?);
    std_listener.set_nonblocking(true).map_err(|e| e.to_string())?;

    let rt_cfg = cw_tokio::Config::new()
        .with_storage_directory(cfg.data_dir.join("consensus"))
        .with_worker_threads(cfg.worker_threads.unwrap_or(2))
        .with_catch_panics(false);
    let tip = chain.tip();
    eprintln!(
        "medledger node {} ({}) chain {} at height {} — p2p {p2p_listen}, API {}://{api_listen}",
        me.id,
        key.public().short(),
        genesis.chain_id,
        tip.height,
        if server_tls.is_some() { "https" } else { "http" }
    );
    cw_tokio::Runner::new(rt_cfg).start(|context| async move {
        let signer: ed25519::PrivateKey = key.private().clone();
        let handshake = Cups::<_, ChaCha20Poly1305>::new(
            Sake {
                signer: signer.clone(),
                synchrony_bound: Duration::from_secs(5),
                max_handshake_age: Duration::from_secs(10),
                version: sake::Version::V1,
            },
            cups::Version::V1,
        );
        let n = genesis.institutions.len();
        let mut p2p_cfg = lookup::Config::local(
            handshake,
            P2P_NAMESPACE,
            p2p_listen,
            NZUsize!(n.max(1)),
            consensus::max_message_size(&genesis),
            NZUsize!(1024),
        );
        p2p_cfg.allow_dns = false;
        let (mut network, mut oracle) = lookup::Network::new(context.child("network"), p2p_cfg);
        let peers: Vec<(ed25519::PublicKey, Address)> = genesis
            .institutions
            .iter()
            .map(|i| {
                let addr: SocketAddr = i.p2p_address.parse().expect("validated with the genesis file");
                (consensus::ed_key(&i.validator_key), Address::Symmetric(addr))
            })
            .collect();
        let _ = oracle.track(0, Map::try_from(peers).expect("genesis keys are unique"));
        let q = |n: u32| Quota::per_second(NZU32!(n));
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let wrap = |(s, r)| (s, Seen { inner: r, peers: seen.clone() });
        let channels = Channels {
            votes: wrap(network.register(channel::VOTES, q(10_000))),
            certificates: wrap(network.register(channel::CERTIFICATES, q(10_000))),
            resolver: wrap(network.register(channel::RESOLVER, q(1_000))),
            broadcast: wrap(network.register(channel::BROADCAST, q(1_000))),
            backfill: wrap(network.register(channel::BACKFILL, q(1_000))),
            txs: wrap(network.register(channel::TXS, q(10_000))),
        };
        let net_handle = network.start();
        let validator = start_validator(
            context.child("validator"),
            signer,
            chain.clone(),
            Timing::default(),
            oracle.clone(),
            oracle.clone(),
            channels,
        )
        .await?;

        // The holder carries out the erasures it owes: once at start-up (a node that was down
        // or crashed part-way catches up from committed state), then after finalized blocks.
        if let Some(svc) = records.clone() {
            svc.set_gossip(validator.gossip_tx.clone());
            let mut finalized = chain.subscribe();
            // Access events go to the chain in batches: every FLUSH_EVERY, or at once when a
            // full batch is queued.
            let batcher = svc.clone();
            context.child("access_batcher").spawn(move |_| async move {
                let Some(j) = batcher.journal() else { return };
                loop {
                    let _ = tokio::time::timeout(crate::audit::journal::FLUSH_EVERY, j.full.notified()).await;
                    let b = batcher.clone();
                    let _ = tokio::task::spawn_blocking(move || b.flush_access_log()).await;
                }
            });
            // Remote monitoring: anchor each device's readings and escalate overdue alarms.
            let monitor = svc.clone();
            context.child("monitoring").spawn(move |_| async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    let m = monitor.clone();
                    let _ = tokio::task::spawn_blocking(move || m.monitor.tick(&m)).await;
                }
            });
            context.child("erasure").spawn(move |_| async move {
                loop {
                    let s = svc.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        s.settle_access_log();
                        s.reconcile_erasures()
                    })
                    .await;
                    match finalized.recv().await {
                        // A lagging watcher loses nothing: it reads the queue from state.
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => break,
                    }
                }
            });
        }
        let metrics_ctx = Arc::new(context.child("metrics"));
        let info = Info { peers: seen, metrics: Arc::new(move || metrics_ctx.encode()) };
        let state = ApiState {
            chain: chain.clone(),
            info: Arc::new(info),
            gossip: Some(validator.gossip_tx.clone()),
            records,
            guard,
            forward_tls,
        };
        let app = api::router(state);
        let api = context.child("api").spawn(move |_| async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("adopt the API listener");
            let served = match server_tls {
                Some(tls) => crate::tls::serve(listener, app, tls).await,
                None => axum::serve(listener, app).await,
            };
            if let Err(e) = served {
                eprintln!("API server stopped: {e}");
            }
        });

        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install SIGTERM handler");
        let mut failure = None;
        // The executor first: when it stops on a block it cannot commit, the marshal it reports
        // to stops too, and the executor's reason is the one to give.
        tokio::select! {
            biased;
            stopped = validator.executor => match stopped {
                Ok(Some(why)) => failure = Some(why),
                _ => eprintln!("executor stopped"),
            },
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
            _ = validator.simplex => eprintln!("consensus engine stopped"),
            _ = validator.marshal => eprintln!("marshal stopped"),
            _ = net_handle => eprintln!("network stopped"),
        }
        // A store that found damaged state stops the validator with it, whatever stopped first.
        if failure.is_none() {
            failure = chain.store.fault().map(|f| format!("stopped on damaged storage: stored data is corrupt: {f}"));
        }
        eprintln!("shutting down at height {}", chain.tip().height);
        if failure.is_some() {
            // The answers in flight (those saying the state is corrupt among them) go out first.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        api.abort();
        let _ = context.stop(0, Some(Duration::from_secs(5))).await;
        failure.map_or(Ok(()), Err)
    })
}

/// No peers: the read-only API below runs without a network.
struct Alone;

impl NodeInfo for Alone {
    fn peers(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Serves the API over HTTPS on a loopback port, over a stored chain and without consensus:
/// nothing is proposed or finalized, and every read answers from the stored state. For
/// benchmarks over a ledger built offline (`bench --drug-verify --api`), where the same handlers
/// and the same redb reads answer as on a validator. Returns the address; the server runs on
/// its own thread until the process exits.
pub fn spawn_read_api(
    genesis: medledger_types::Genesis,
    store: Arc<Store>,
    tls: Arc<medledger_tls::rustls::ServerConfig>,
) -> Result<SocketAddr, String> {
    let chain =
        Chain::open(genesis, store, medledger_types::PublicKey([0; 32]), MempoolConfig::default(), Arc::new(now_ms))
            .map_err(|e| format!("the stored chain: {e}"))?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("loopback port: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let state = ApiState {
        chain,
        info: Arc::new(Alone),
        gossip: None,
        records: None,
        guard: Arc::new(crate::guard::Guard::new(crate::guard::RateLimit::default())),
        forward_tls: None,
    };
    let app = api::router(state);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    std::thread::Builder::new()
        .name("read-api".into())
        .spawn(move || {
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = crate::tls::serve(l, app, tls).await {
                            eprintln!("API server stopped: {e}");
                        }
                    }
                    Err(e) => eprintln!("API listener: {e}"),
                }
            })
        })
        .map_err(|e| e.to_string())?;
    Ok(addr)
}
