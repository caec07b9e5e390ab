//! Deterministic multi-validator simulations (Commonware deterministic runtime + simulated
//! network): one crashed validator, one equivocating validator that also sends garbage, a
//! partition that heals, slow lossy links, and a proposer that sends invalid blocks (wrong state
//! root, a badly signed transaction, a wrong parent, a timestamp far ahead, a repeated
//! transaction). Each checks that every honest validator
//! finalizes the same blocks (hashes and state roots) and that no accepted transaction is lost.

use commonware_consensus::simplex::mocks::conflicter;
use commonware_cryptography::{ed25519, sha256::Sha256, Signer as _};
use commonware_p2p::simulated::{self, Link, Network, Oracle};
use commonware_p2p::{Recipients, Sender as _};
use commonware_runtime::{deterministic, Clock, Handle, Runner as _, Spawner as _, Supervisor as _};
use commonware_utils::{probability, NZUsize, NZU32};
use medledger_node::chain::{Chain, ProposalFault};
use medledger_node::consensus::{self, channel, start_validator, Channels, Timing, S};
use medledger_node::mempool::MempoolConfig;
use medledger_storage::Store;
use medledger_types::IdentityOp;
use medledger_types::{genesis::GenesisInstitution, Block, Genesis, Hash, Keypair, Operation, Transaction, Tx};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

const N: usize = 4;
type Ctx = deterministic::Context;
type Net = Oracle<ed25519::PublicKey, Ctx>;

/// What a started validator hands back: its chain and its gossip sender.
type Started = tokio::sync::oneshot::Receiver<(Arc<Chain>, tokio::sync::mpsc::Sender<Vec<Tx>>)>;

fn quota() -> commonware_runtime::Quota {
    commonware_runtime::Quota::per_second(NZU32!(100_000))
}

struct Fixture {
    genesis: Genesis,
    validators: Vec<Keypair>,
    admins: Vec<Keypair>,
    dirs: Vec<PathBuf>,
    _tmp: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let validators: Vec<Keypair> = (0..N as u64).map(|i| Keypair::from_seed(100 + i)).collect();
    let admins: Vec<Keypair> = (0..N as u64).map(|i| Keypair::from_seed(200 + i)).collect();
    let genesis = Genesis {
        chain_id: "sim".into(),
        genesis_time_ms: 0,
        ca_key: Keypair::from_seed(1).public(),
        institutions: (0..N)
            .map(|i| GenesisInstitution {
                id: format!("inst-{i}"),
                name: format!("Institution {i}"),
                validator_key: validators[i].public(),
                admin_key: admins[i].public(),
                p2p_address: format!("127.0.0.1:{}", 9000 + i),
                api_address: format!("127.0.0.1:{}", 9100 + i),
            })
            .collect(),
    };
    let tmp = tempfile::tempdir().unwrap();
    let dirs = (0..N).map(|i| tmp.path().join(format!("v{i}.redb"))).collect();
    Fixture { genesis, validators, admins, dirs, _tmp: tmp }
}

fn open_chain(f: &Fixture, i: usize, clock: Arc<Ctx>) -> Arc<Chain> {
    let store = Arc::new(Store::open(&f.dirs[i]).unwrap());
    let now = move || clock.current().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    Chain::open(f.genesis.clone(), store, f.validators[i].public(), MempoolConfig::default(), Arc::new(now)).unwrap()
}

fn timing() -> Timing {
    Timing {
        leader_timeout: Duration::from_millis(500),
        certification_timeout: Duration::from_millis(1000),
        timeout_retry: Duration::from_secs(2),
        skip_timeout: Duration::from_secs(5),
    }
}

async fn register(
    oracle: &Net,
    pk: &ed25519::PublicKey,
) -> Channels<simulated::Sender<ed25519::PublicKey, Ctx>, simulated::Receiver<ed25519::PublicKey>> {
    let c = oracle.control(pk.clone());
    Channels {
        votes: c.register(channel::VOTES, quota()).await.unwrap(),
        certificates: c.register(channel::CERTIFICATES, quota()).await.unwrap(),
        resolver: c.register(channel::RESOLVER, quota()).await.unwrap(),
        broadcast: c.register(channel::BROADCAST, quota()).await.unwrap(),
        backfill: c.register(channel::BACKFILL, quota()).await.unwrap(),
        txs: c.register(channel::TXS, quota()).await.unwrap(),
    }
}

/// Runs one honest validator under its own supervisor, so that aborting the returned handle
/// crashes the whole validator. The chain is sent back once the engines are up.
fn spawn_honest(context: &Ctx, f: &Fixture, i: usize, incarnation: u32, oracle: Net) -> (Handle<()>, Started) {
    spawn_validator(context, f, i, incarnation, oracle, None)
}

/// [`spawn_honest`], optionally with a proposal fault: the validator runs the honest engine but
/// sends what `fault` makes of each block it proposes.
fn spawn_validator(
    context: &Ctx,
    f: &Fixture,
    i: usize,
    incarnation: u32,
    oracle: Net,
    fault: Option<ProposalFault>,
) -> (Handle<()>, Started) {
    let key = f.validators[i].private().clone();
    let pk = key.public_key();
    let chain = open_chain(f, i, Arc::new(context.child("clock")));
    if let Some(fault) = fault {
        assert!(chain.proposal_fault.set(fault).is_ok());
    }
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let handle =
        context.child("validator").with_attribute("index", i).with_attribute("incarnation", incarnation).spawn(
            move |ctx| async move {
                let channels = register(&oracle, &pk).await;
                let v = start_validator(
                    ctx.child("node"),
                    key,
                    chain.clone(),
                    timing(),
                    oracle.control(pk.clone()),
                    oracle.manager(),
                    channels,
                )
                .await
                .expect("the validator's archives open");
                let _ = ready_tx.send((chain, v.gossip_tx.clone()));
                futures::future::pending::<()>().await;
                drop(v);
            },
        );
    (handle, ready_rx)
}

/// Starts honest validators `0..n`.
async fn start_honest(
    context: &Ctx,
    f: &Fixture,
    oracle: &Net,
    n: usize,
) -> (Vec<Handle<()>>, Vec<Arc<Chain>>, Vec<tokio::sync::mpsc::Sender<Vec<Tx>>>) {
    let (mut handles, mut chains, mut gossips) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let (h, ready) = spawn_honest(context, f, i, 0, oracle.clone());
        let (c, g) = ready.await.unwrap();
        handles.push(h);
        chains.push(c);
        gossips.push(g);
    }
    (handles, chains, gossips)
}

async fn link_all(oracle: &mut Net, keys: &[ed25519::PublicKey], link: Link) {
    for a in keys {
        for b in keys {
            if a != b {
                let _ = oracle.add_link(a.clone(), b.clone(), link.clone()).await;
            }
        }
    }
}

fn good_link() -> Link {
    Link { latency: Duration::from_millis(20), jitter: Duration::from_millis(5), success_rate: probability!(1.0) }
}

fn attest(admin: &Keypair, nonce: u64, tag: u64) -> Tx {
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&tag.to_be_bytes());
    d[8..16].copy_from_slice(&nonce.to_be_bytes());
    d[16..].copy_from_slice(&admin.public().0[..16]);
    Tx::sign(
        Transaction {
            chain_id: "sim".into(),
            signer: admin.public(),
            nonce,
            op: Operation::Identity(IdentityOp::Attest { digest: Hash(d), label: format!("doc-{tag}-{nonce}") }),
        },
        admin,
    )
}

/// Submits `count` transactions per admin through `via` (and gossip), returning the accepted ids.
fn submit(
    chain: &Chain,
    gossip: &tokio::sync::mpsc::Sender<Vec<Tx>>,
    f: &Fixture,
    admins: &[usize],
    start: u64,
    count: u64,
    tag: u64,
) -> Vec<Hash> {
    let mut accepted = Vec::new();
    for &a in admins {
        let txs: Vec<Tx> = (start..start + count).map(|n| attest(&f.admins[a], n, tag)).collect();
        let results = chain.submit(txs.clone());
        let ok: Vec<Tx> = txs.into_iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(t, _)| t).collect();
        assert_eq!(
            ok.len(),
            count as usize,
            "submissions refused: {:?}",
            results.iter().filter(|r| r.is_err()).collect::<Vec<_>>()
        );
        accepted.extend(ok.iter().map(Tx::id));
        let _ = gossip.try_send(ok);
    }
    accepted
}

async fn wait_for<F: Fn() -> bool>(context: &Ctx, what: &str, limit: Duration, cond: F) {
    let start = context.current();
    while !cond() {
        if context.current().duration_since(start).unwrap() > limit {
            panic!("timed out waiting for {what}");
        }
        context.sleep(Duration::from_millis(100)).await;
    }
}

/// All honest chains agree on every block up to the lowest common height, and every accepted
/// transaction is committed on every honest chain.
fn assert_consistent(chains: &[Arc<Chain>], accepted: &[Hash]) -> u64 {
    let common = chains.iter().map(|c| c.tip().height).min().unwrap();
    assert!(common > 0, "no block was finalized");
    for h in 1..=common {
        let first = chains[0].store.block(h).unwrap().unwrap();
        for c in &chains[1..] {
            let b = c.store.block(h).unwrap().unwrap();
            assert_eq!(b.digest(), first.digest(), "validators disagree at height {h}");
            assert_eq!(b.header.state_root, first.header.state_root);
        }
    }
    for c in chains {
        for id in accepted {
            assert!(c.store.tx_location(id).unwrap().is_some(), "accepted tx {id} lost on a validator");
        }
    }
    let ids: BTreeSet<_> = accepted.iter().collect();
    assert_eq!(ids.len(), accepted.len());
    common
}

fn all_committed(chains: &[Arc<Chain>], accepted: &[Hash]) -> bool {
    chains.iter().all(|c| accepted.iter().all(|id| c.store.tx_location(id).unwrap().is_some()))
}

fn runner(seed: u64) -> deterministic::Runner {
    deterministic::Runner::new(
        deterministic::Config::new().with_seed(seed).with_timeout(Some(Duration::from_secs(900))),
    )
}

async fn network(context: &Ctx, f: &Fixture) -> Net {
    let keys: Vec<ed25519::PublicKey> = f.validators.iter().map(|k| k.private().public_key()).collect();
    let (net, oracle) = Network::new_with_peers(
        context.child("network"),
        simulated::Config {
            max_size: consensus::max_message_size(&f.genesis),
            max_peers_per_set: NZUsize!(N),
            disconnect_on_block: true,
            tracked_peer_sets: NZUsize!(1),
        },
        keys,
    )
    .await;
    net.start();
    oracle
}

fn keys(f: &Fixture) -> Vec<ed25519::PublicKey> {
    f.validators.iter().map(|k| k.private().public_key()).collect()
}

#[test]
fn crashed_validator_restarts_and_catches_up() {
    runner(1).start(|context| async move {
        let f = fixture();
        let mut oracle = network(&context, &f).await;
        link_all(&mut oracle, &keys(&f), good_link()).await;
        let (mut handles, mut chains, mut gossips) = start_honest(&context, &f, &oracle, N).await;
        let mut accepted = submit(&chains[0], &gossips[0], &f, &[0, 1], 0, 20, 1);
        wait_for(&context, "first batch", Duration::from_secs(60), || all_committed(&chains, &accepted)).await;

        // Crash validator 3.
        let crashed = handles.pop().unwrap();
        crashed.abort();
        let _ = crashed.await;
        chains.pop();
        gossips.pop();
        context.sleep(Duration::from_millis(50)).await;
        accepted.extend(submit(&chains[1], &gossips[1], &f, &[2], 0, 30, 2));
        wait_for(&context, "progress without validator 3", Duration::from_secs(60), || {
            all_committed(&chains, &accepted)
        })
        .await;
        let height_while_down = chains[0].tip().height;

        // Restart it on the same storage: it must catch up to the same chain.
        let (h, ready) = spawn_honest(&context, &f, 3, 1, oracle.clone());
        let (c3, g3) = ready.await.unwrap();
        handles.push(h);
        chains.push(c3.clone());
        gossips.push(g3);
        accepted.extend(submit(&chains[0], &gossips[0], &f, &[3], 0, 10, 3));
        wait_for(&context, "restarted validator catch-up", Duration::from_secs(120), || {
            all_committed(&chains, &accepted) && c3.tip().height >= height_while_down
        })
        .await;
        let h = assert_consistent(&chains, &accepted);
        assert!(h >= height_while_down);
    });
}

#[test]
fn equivocating_and_garbage_sending_validator_changes_nothing() {
    runner(2).start(|context| async move {
        let f = fixture();
        let mut oracle = network(&context, &f).await;
        link_all(&mut oracle, &keys(&f), good_link()).await;
        let (handles, chains, gossips) = start_honest(&context, &f, &oracle, N - 1).await;
        // Validator 3 is Byzantine: conflicting votes on every proposal, plus garbage on the
        // block-broadcast and transaction channels.
        let byz = f.validators[3].private().clone();
        let byz_pk = byz.public_key();
        let scheme = S::signer(consensus::CONSENSUS_NAMESPACE, consensus::participants(&f.genesis), byz).unwrap();
        let ch = register(&oracle, &byz_pk).await;
        conflicter::Conflicter::<_, _, Sha256>::new(context.child("byzantine"), conflicter::Config { scheme })
            .start(ch.votes);
        let (mut bcast, _) = ch.broadcast;
        let (mut txs_ch, _) = ch.txs;
        context.child("garbage").spawn(move |ctx| async move {
            for i in 0u32..400 {
                let junk: Vec<u8> = (0..64).map(|j| (i.wrapping_mul(31) ^ j) as u8).collect();
                bcast.send(Recipients::All, junk.clone(), false);
                txs_ch.send(Recipients::All, junk, false);
                ctx.sleep(Duration::from_millis(50)).await;
            }
        });
        let mut accepted = submit(&chains[0], &gossips[0], &f, &[0, 1], 0, 25, 1);
        accepted.extend(submit(&chains[2], &gossips[2], &f, &[2], 0, 25, 2));
        wait_for(&context, "commit despite a Byzantine validator", Duration::from_secs(120), || {
            all_committed(&chains, &accepted)
        })
        .await;
        let first = assert_consistent(&chains, &accepted);
        // A second round, across the Byzantine validator's leader views.
        for round in 0..4u64 {
            accepted.extend(submit(&chains[1], &gossips[1], &f, &[0, 1, 2], 25 + round * 5, 5, 3 + round));
            wait_for(&context, "later rounds", Duration::from_secs(120), || all_committed(&chains, &accepted)).await;
        }
        let h = assert_consistent(&chains, &accepted);
        assert!(h > first, "the chain kept growing past the first batch");
        drop(handles);
    });
}

#[test]
fn partition_heals_and_chain_converges() {
    runner(3).start(|context| async move {
        let f = fixture();
        let ks = keys(&f);
        let mut oracle = network(&context, &f).await;
        link_all(&mut oracle, &ks, good_link()).await;
        let (handles, chains, gossips) = start_honest(&context, &f, &oracle, N).await;
        let mut accepted = submit(&chains[0], &gossips[0], &f, &[0], 0, 10, 1);
        wait_for(&context, "before partition", Duration::from_secs(60), || all_committed(&chains, &accepted)).await;

        // Split 2 | 2: no quorum on either side, so nothing may finalize.
        for a in 0..2 {
            for b in 2..4 {
                let _ = oracle.remove_link(ks[a].clone(), ks[b].clone()).await;
                let _ = oracle.remove_link(ks[b].clone(), ks[a].clone()).await;
            }
        }
        context.sleep(Duration::from_secs(2)).await;
        let frozen: Vec<u64> = chains.iter().map(|c| c.tip().height).collect();
        let during = submit(&chains[0], &gossips[0], &f, &[1], 0, 10, 2);
        context.sleep(Duration::from_secs(10)).await;
        let max_before = *frozen.iter().max().unwrap();
        for c in &chains {
            assert!(c.tip().height <= max_before + 1, "a minority finalized blocks during the partition");
        }
        // Heal: the transactions submitted during the partition reach everyone and commit.
        link_all(&mut oracle, &ks, good_link()).await;
        accepted.extend(during);
        wait_for(&context, "after healing", Duration::from_secs(120), || all_committed(&chains, &accepted)).await;
        assert_consistent(&chains, &accepted);
        drop(handles);
    });
}

#[test]
fn slow_lossy_links_still_agree() {
    runner(4).start(|context| async move {
        let f = fixture();
        let mut oracle = network(&context, &f).await;
        let lossy = Link {
            latency: Duration::from_millis(150),
            jitter: Duration::from_millis(60),
            success_rate: probability!(0.8),
        };
        link_all(&mut oracle, &keys(&f), lossy).await;
        let (handles, chains, gossips) = start_honest(&context, &f, &oracle, N).await;
        // Submit to every validator so that lost gossip cannot lose a transaction.
        let mut accepted = Vec::new();
        for i in 0..N {
            accepted.extend(submit(&chains[i], &gossips[i], &f, &[i], 0, 10, 1));
        }
        wait_for(&context, "commit over lossy links", Duration::from_secs(300), || all_committed(&chains, &accepted))
            .await;
        assert_consistent(&chains, &accepted);
        drop(handles);
    });
}

#[test]
fn late_validator_with_empty_store_catches_up_from_peers() {
    runner(5).start(|context| async move {
        let f = fixture();
        let mut oracle = network(&context, &f).await;
        link_all(&mut oracle, &keys(&f), good_link()).await;
        let (mut handles, mut chains, mut gossips) = start_honest(&context, &f, &oracle, N - 1).await;
        let mut accepted = Vec::new();
        for round in 0..3u64 {
            accepted.extend(submit(&chains[0], &gossips[0], &f, &[0, 1], round * 10, 10, round));
            wait_for(&context, "progress with three validators", Duration::from_secs(60), || {
                all_committed(&chains, &accepted)
            })
            .await;
        }
        context.sleep(Duration::from_secs(5)).await;
        let target = chains[0].tip().height;
        assert!(target >= 5);
        // Validator 3 has never run: empty store, no consensus journal.
        assert!(!f.dirs[3].exists());
        let (h, ready) = spawn_honest(&context, &f, 3, 0, oracle.clone());
        let (c3, g3) = ready.await.unwrap();
        handles.push(h);
        chains.push(c3.clone());
        gossips.push(g3);
        wait_for(&context, "late validator catch-up", Duration::from_secs(120), || c3.tip().height >= target).await;
        accepted.extend(submit(&chains[3], &gossips[3], &f, &[2], 0, 10, 9));
        wait_for(&context, "late validator's own submissions", Duration::from_secs(60), || {
            all_committed(&chains, &accepted)
        })
        .await;
        assert_consistent(&chains, &accepted);
    });
}

/// The invalid blocks a Byzantine proposer sends, in turn.
const BAD_PROPOSALS: [&str; 5] =
    ["wrong state root", "badly signed transaction", "wrong parent", "timestamp far ahead", "repeated transaction"];

/// Turns each honest proposal into the next kind of invalid block. Transactions it adds are
/// signed by `admin` (whose nonce stays 0, since none of them may ever apply).
fn byzantine_proposer(admin: Keypair, made: Arc<std::sync::atomic::AtomicUsize>) -> ProposalFault {
    Box::new(move |chain: &Chain, parent: &Block, honest: Arc<Block>| {
        let kind = made.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % BAD_PROPOSALS.len();
        let h = &honest.header;
        let valid = attest(&admin, 0, 77);
        let bad = match kind {
            0 => Some(Arc::new(Block::new(
                h.height,
                h.parent,
                h.timestamp_ms,
                h.proposer,
                Hash([0xEE; 32]),
                honest.txs.clone(),
            ))),
            1 => {
                let mut raw = valid.raw().to_vec();
                let last = raw.len() - 1;
                raw[last] ^= 0x01;
                let forged = Tx::decode(&raw).expect("still decodes");
                chain.block_on(parent, h.timestamp_ms, vec![forged])
            }
            2 => Some(Arc::new(Block::new(
                h.height,
                Hash([0xAB; 32]),
                h.timestamp_ms,
                h.proposer,
                h.state_root,
                honest.txs.clone(),
            ))),
            3 => chain.block_on(parent, h.timestamp_ms + 3_600_000, honest.txs.clone()),
            _ => chain.block_on(parent, h.timestamp_ms, vec![valid.clone(), valid]),
        };
        let bad = bad.expect("the parent's state is known to the proposer");
        assert_ne!(bad.digest(), honest.digest());
        bad
    })
}

#[test]
fn byzantine_proposals_are_rejected_and_the_chain_goes_on() {
    runner(6).start(|context| async move {
        let f = fixture();
        let mut oracle = network(&context, &f).await;
        link_all(&mut oracle, &keys(&f), good_link()).await;
        let (handles, chains, gossips) = start_honest(&context, &f, &oracle, N - 1).await;
        let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (byz, ready) = spawn_validator(
            &context,
            &f,
            3,
            0,
            oracle.clone(),
            Some(byzantine_proposer(f.admins[3].clone(), made.clone())),
        );
        let (byz_chain, byz_gossip) = ready.await.unwrap();
        let mut accepted = Vec::new();
        // Enough rounds for the Byzantine validator to lead several views, sending every kind.
        for round in 0..6u64 {
            accepted.extend(submit(
                &chains[round as usize % 3],
                &gossips[round as usize % 3],
                &f,
                &[0, 1, 2],
                round * 5,
                5,
                round,
            ));
            wait_for(&context, "commits around the Byzantine leader", Duration::from_secs(180), || {
                all_committed(&chains, &accepted)
            })
            .await;
        }
        wait_for(&context, "every kind of invalid proposal", Duration::from_secs(300), || {
            made.load(std::sync::atomic::Ordering::SeqCst) >= 2 * BAD_PROPOSALS.len()
        })
        .await;
        accepted.extend(submit(&chains[0], &gossips[0], &f, &[0], 30, 5, 99));
        wait_for(&context, "commits after the invalid proposals", Duration::from_secs(180), || {
            all_committed(&chains, &accepted)
        })
        .await;
        let h = assert_consistent(&chains, &accepted);
        // No block the Byzantine validator proposed was finalized by anyone, and its admin's
        // injected transactions never applied.
        let byz_key = f.validators[3].public();
        for c in chains.iter().chain(std::iter::once(&byz_chain)) {
            for height in 1..=c.tip().height.min(h) {
                let b = c.store.block(height).unwrap().unwrap();
                assert_ne!(b.header.proposer, byz_key, "a Byzantine proposal was finalized at height {height}");
            }
            let snap = c.store.snapshot().unwrap();
            assert_eq!(medledger_state::nonce_of(&snap, &f.admins[3].public()), 0);
        }
        drop((handles, byz, byz_gossip));
    });
}
