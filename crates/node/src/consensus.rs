//! Consensus wiring: MedLedger blocks ordered by Commonware simplex (ed25519 certificates),
//! delivered in height order by the marshal (standard variant, inline verification), over any
//! Commonware p2p network (authenticated `lookup` in production, `simulated` in tests).

use crate::chain::{Chain, VerifyLater};
use bytes::BufMut;
use commonware_actor::Feedback;
use commonware_broadcast::buffered;
use commonware_codec::{Buf, Encode, EncodeSize, Error as CodecError, Read, Write};
use commonware_consensus::{
    marshal::{
        self,
        ancestry::Ancestry,
        core::{Actor as MarshalActor, Mailbox as MarshalMailbox},
        resolver::p2p as marshal_resolver,
        standard::{Inline, Standard},
        Start, Update,
    },
    simplex::{
        self,
        elector::RoundRobin,
        types::{Context, Finalization},
        Floor, ForwardPolicy, SkipBudget, SkipPolicy,
    },
    types::{Epoch, FixedEpocher, Height, ViewDelta},
    Application, Block as ConsensusBlock, BoundedBlock, Heightable, Reporter,
};
use commonware_cryptography::{
    certificate::{ConstantProvider, Verifier as _},
    ed25519::{PrivateKey, PublicKey as EdPublicKey},
    sha256::Sha256,
    Digested, Digestible, Signer as _,
};
use commonware_p2p::{Blocker, Provider, Receiver, Recipients, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{buffer::paged::CacheRef, Clock, Handle, Metrics, Spawner, Storage};
use commonware_storage::archive::immutable;
use commonware_utils::{Acknowledgement as _, NZDuration, NZUsize, NZU64};
use futures::StreamExt as _;
use medledger_types::block::MAX_BLOCK_BYTES;
use medledger_types::codec::{Reader, Writer};
use medledger_types::{Block, Genesis, PublicKey, Tx};
use std::sync::Arc;
use std::time::Duration;

pub use medledger_types::certificate::{
    participants, to_digest, verifier, verify_certificate, CONSENSUS_NAMESPACE, D, S,
};
pub type Ctx = Context<D, EdPublicKey>;

/// Namespace of the authenticated p2p handshake.
pub const P2P_NAMESPACE: &[u8] = b"_MEDLEDGER_P2P";
/// Most blocks a validator replays from its peers to rebuild a parent's state before voting.
pub const MAX_CATCH_UP: usize = 512;
/// Gossip batches smaller than this wait [`GOSSIP_COALESCE_WINDOW`] for company.
const GOSSIP_COALESCE_BELOW: usize = 64;
/// How long a small gossip batch waits to be coalesced with later ones.
const GOSSIP_COALESCE_WINDOW: Duration = Duration::from_millis(20);
/// How long verification waits before asking again about a block whose parent's state this
/// node holds but cannot read yet (the tip moving during a commit lasts about that long).
const UNREADABLE_PARENT_RETRY: Duration = Duration::from_millis(20);

/// Largest transaction-gossip message.
pub const MAX_GOSSIP_TXS: usize = 1024;

/// Channel ids on the validator network.
pub mod channel {
    pub const VOTES: u64 = 0;
    pub const CERTIFICATES: u64 = 1;
    pub const RESOLVER: u64 = 2;
    pub const BROADCAST: u64 = 3;
    pub const BACKFILL: u64 = 4;
    pub const TXS: u64 = 5;
}

pub fn ed_key(pk: &PublicKey) -> EdPublicKey {
    pk.to_ed25519().expect("validator keys are validated with the genesis file")
}

/// A MedLedger block as the consensus engine sees it. Encoded as `u32 length || block bytes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CBlock(pub Arc<Block>);

impl Write for CBlock {
    fn write(&self, buf: &mut impl BufMut) {
        let bytes = self.0.encode();
        buf.put_u32(bytes.len() as u32);
        buf.put_slice(&bytes);
    }
}

impl EncodeSize for CBlock {
    fn encode_size(&self) -> usize {
        4 + self.0.encoded_len()
    }
}

impl Read for CBlock {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        commonware_codec::util::at_least(buf, 4)?;
        let len = buf.get_u32() as usize;
        if len > MAX_BLOCK_BYTES {
            return Err(CodecError::Invalid("block", "above the block size limit"));
        }
        commonware_codec::util::at_least(buf, len)?;
        let mut bytes = vec![0u8; len];
        buf.copy_to_slice(&mut bytes);
        Block::decode(&bytes).map(|b| CBlock(Arc::new(b))).map_err(|_| CodecError::Invalid("block", "malformed block"))
    }
}

impl Digestible for CBlock {
    type Digest = D;
    fn digest(&self) -> D {
        to_digest(self.0.digest())
    }
}

impl Heightable for CBlock {
    fn height(&self) -> Height {
        Height::new(self.0.height())
    }
}

impl ConsensusBlock for CBlock {
    fn parent(&self) -> D {
        to_digest(self.0.header.parent)
    }
}

impl BoundedBlock for CBlock {
    fn max_encode_size(_: &()) -> usize {
        4 + MAX_BLOCK_BYTES
    }
}

/// The application consensus drives: builds and verifies blocks through [`Chain`].
#[derive(Clone)]
pub struct App {
    pub chain: Arc<Chain>,
}

impl App {
    /// Makes the state after `parent` known locally by replaying its unknown ancestors (which a
    /// quorum already notarized) from `ancestry`. `first` is the next item `ancestry` yields.
    async fn catch_up(&self, parent: &Block, ancestry: &mut impl Ancestry<CBlock>) -> bool {
        let mut chain_back: Vec<Arc<Block>> = vec![Arc::new(parent.clone())];
        while !self.chain.knows(&chain_back.last().expect("non-empty").header.parent) {
            if chain_back.len() >= MAX_CATCH_UP {
                return false;
            }
            let Some(next) = ancestry.next().await else { return false };
            chain_back.push(next.inner().0.clone());
        }
        for b in chain_back.iter().rev() {
            if self.chain.knows(&b.digest()) {
                continue;
            }
            match self.chain.adopt(b) {
                Ok(true) => {}
                _ => return false,
            }
        }
        true
    }
}

impl<E> Application<E> for App
where
    E: Clock + Spawner + Metrics,
{
    type SigningScheme = S;
    type Context = Ctx;
    type Block = CBlock;
    type Input = ();

    async fn propose(
        &mut self,
        (rt, _ctx): (E, Ctx),
        mut ancestry: impl Ancestry<CBlock>,
        _input: (),
    ) -> Option<Digested<CBlock>> {
        let parent = ancestry.next().await?;
        let parent_block = parent.inner().0.clone();
        if !self.chain.knows(&parent_block.digest()) && !self.catch_up(&parent_block, &mut ancestry).await {
            return None;
        }
        // Let transactions accumulate a little so blocks carry batches, and idle chains do not
        // spin out empty blocks as fast as the network allows.
        let wait = self.chain.proposal_delay(&parent_block);
        if !wait.is_zero() {
            rt.sleep(wait).await;
        }
        let block = self.chain.build(&parent_block)?;
        let digest = to_digest(block.digest());
        Some(Digested::precomputed(CBlock(block), digest))
    }

    async fn verify(&mut self, (rt, ctx): (E, Ctx), mut ancestry: impl Ancestry<CBlock>) -> bool {
        let Some(block) = ancestry.next().await else { return futures::future::pending().await };
        let Some(parent) = ancestry.next().await else { return futures::future::pending().await };
        let (block, parent) = (block.inner().0.clone(), parent.inner().0.clone());
        let leader = PublicKey::from_ed25519(&ctx.leader);
        loop {
            match self.chain.verify(&parent, &block, &leader) {
                Ok(verdict) => return verdict,
                Err(VerifyLater::FutureTimestamp(ts)) => {
                    let now = self.chain.now_ms();
                    rt.sleep(Duration::from_millis(ts.saturating_sub(now) + 1)).await;
                }
                Err(VerifyLater::UnknownParent) => {
                    if self.chain.knows(&parent.digest()) && self.chain.knows(&parent.header.parent) {
                        // The parent's state and its parent's are here but cannot be read yet
                        // (the tip moving during a commit): catching up would have nothing to
                        // do; ask again a little later rather than at once, in a loop that would
                        // never yield. (An ancestor further back whose state was evicted is
                        // executed again by catching up, below.)
                        rt.sleep(UNREADABLE_PARENT_RETRY).await;
                    } else if !self.catch_up(&parent, &mut ancestry).await {
                        // Abstain: we cannot judge this block yet.
                        return futures::future::pending().await;
                    }
                }
                // Abstain for good: this validator's state is damaged, and it stops once its
                // executor meets the fault.
                Err(VerifyLater::StoreFault(_)) => return futures::future::pending().await,
            }
        }
    }
}

/// Receives finalized blocks from the marshal, in height order.
#[derive(Clone)]
pub struct FinalizedReporter {
    tx: tokio::sync::mpsc::UnboundedSender<Update<CBlock>>,
}

impl Reporter for FinalizedReporter {
    type Activity = Update<CBlock>;
    fn report(&mut self, update: Update<CBlock>) -> Feedback {
        if self.tx.send(update).is_ok() {
            Feedback::Ok
        } else {
            Feedback::Closed
        }
    }
}

/// The five consensus channels plus transaction gossip, as (sender, receiver) pairs.
pub struct Channels<Snd, Rcv> {
    pub votes: (Snd, Rcv),
    pub certificates: (Snd, Rcv),
    pub resolver: (Snd, Rcv),
    pub broadcast: (Snd, Rcv),
    pub backfill: (Snd, Rcv),
    pub txs: (Snd, Rcv),
}

/// Timing knobs (production defaults; simulations may shorten them).
#[derive(Clone, Debug)]
pub struct Timing {
    pub leader_timeout: Duration,
    pub certification_timeout: Duration,
    pub timeout_retry: Duration,
    pub skip_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            leader_timeout: Duration::from_secs(1),
            certification_timeout: Duration::from_secs(2),
            timeout_retry: Duration::from_secs(10),
            skip_timeout: Duration::from_secs(15),
        }
    }
}

/// Handles to the running validator's engines.
pub struct Validator {
    pub simplex: Handle<()>,
    pub marshal: Handle<()>,
    pub broadcast: Handle<()>,
    /// Ends with the reason when a finalized block cannot be committed (the validator must stop).
    pub executor: Handle<Option<String>>,
    pub gossip: Handle<()>,
    pub mailbox: MarshalMailbox<S, Standard<CBlock>>,
    /// Accepted transactions to gossip to the other validators.
    pub gossip_tx: tokio::sync::mpsc::Sender<Vec<Tx>>,
}

fn archive_cfg<C>(prefix: &str, name: &str, page_cache: &CacheRef, codec_config: C) -> immutable::Config<C> {
    immutable::Config {
        metadata_partition: format!("{prefix}-{name}-metadata"),
        freezer_table_partition: format!("{prefix}-{name}-freezer-table"),
        freezer_table_initial_size: 65_536,
        freezer_table_resize_frequency: 4,
        freezer_table_resize_chunk_size: 16_384,
        freezer_key_partition: format!("{prefix}-{name}-freezer-key"),
        freezer_key_page_cache: page_cache.clone(),
        freezer_value_partition: format!("{prefix}-{name}-freezer-value"),
        freezer_value_target_size: 64 * 1024 * 1024,
        freezer_value_compression: None,
        ordinal_partition: format!("{prefix}-{name}-ordinal"),
        items_per_section: NZU64!(4_096),
        freezer_key_write_buffer: NZUsize!(1024 * 1024),
        freezer_value_write_buffer: NZUsize!(1024 * 1024),
        ordinal_write_buffer: NZUsize!(1024 * 1024),
        replay_buffer: NZUsize!(1024 * 1024),
        codec_config,
    }
}

/// The largest message any validator channel must carry.
pub fn max_message_size(g: &Genesis) -> u32 {
    let n = g.institutions.len() as u32;
    let gossip = (4 + MAX_GOSSIP_TXS * (4 + medledger_types::tx::limits::MAX_TX_BYTES)) as u32;
    commonware_p2p::max_message_size(&[
        simplex::max_payload_size::<S, D>(n),
        marshal::max_payload_size::<Standard<CBlock>, S>(n, &()),
    ])
    .max(gossip)
}

/// Encodes a batch of transactions for gossip: `u32 count || (u32 len || bytes)*`.
pub fn encode_gossip(txs: &[Tx]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(txs.len() as u32);
    for t in txs {
        w.bytes(t.raw());
    }
    w.finish()
}

/// Decodes a gossip batch; malformed batches are dropped whole.
pub fn decode_gossip(bytes: &[u8]) -> Option<Vec<Tx>> {
    let mut r = Reader::new(bytes);
    let n = r.len("gossip batch", MAX_GOSSIP_TXS).ok()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let raw = r.bytes("gossip tx", medledger_types::tx::limits::MAX_TX_BYTES).ok()?;
        out.push(Tx::decode(raw).ok()?);
    }
    r.finish().ok()?;
    Some(out)
}

/// Starts every engine of one validator. Generic over the runtime (tokio or deterministic) and
/// the network (authenticated lookup or simulated). An error names a consensus archive that
/// cannot be opened (its files are damaged).
#[allow(clippy::too_many_arguments)]
pub async fn start_validator<E, Bl, Pr, Snd, Rcv>(
    ctx: E,
    key: PrivateKey,
    chain: Arc<Chain>,
    timing: Timing,
    blocker: Bl,
    peer_provider: Pr,
    ch: Channels<Snd, Rcv>,
) -> Result<Validator, String>
where
    E: Spawner + Metrics + Clock + Storage + rand_core::CryptoRng,
    Bl: Blocker<PublicKey = EdPublicKey>,
    Pr: Provider<PublicKey = EdPublicKey>,
    Snd: Sender<PublicKey = EdPublicKey>,
    Rcv: Receiver<PublicKey = EdPublicKey>,
{
    let me = key.public_key();
    let me_hex = hex::encode(me.as_ref());
    let participants = participants(&chain.genesis);
    let scheme = S::signer(CONSENSUS_NAMESPACE, participants, key).expect("this node's key is a genesis validator");
    let page_cache = CacheRef::new(commonware_runtime::buffer::paged::page_size(4096), NZUsize!(4_096));
    let epocher = FixedEpocher::new(NZU64!(u64::MAX));
    let g0 = chain.genesis_block();
    let genesis = Digested::precomputed(CBlock(Arc::new(g0.clone())), to_digest(g0.digest()));

    let (broadcast_engine, buffer): (_, buffered::Mailbox<EdPublicKey, CBlock>) = buffered::Engine::new(
        ctx.child("broadcast"),
        buffered::Config {
            public_key: me.clone(),
            mailbox_size: NZUsize!(1024),
            deque_size: 16,
            priority: false,
            codec_config: (),
            peer_provider: peer_provider.clone(),
            strategy: Sequential,
        },
    );
    let broadcast = broadcast_engine.start(ch.broadcast);
    let resolver = marshal_resolver::init(
        ctx.child("marshal_resolver"),
        marshal_resolver::Config {
            public_key: me.clone(),
            peer_provider,
            blocker: blocker.clone(),
            mailbox_size: NZUsize!(1024),
            fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        ch.backfill,
    );

    let prefix = format!("marshal-{me_hex}");
    let finalizations_by_height: immutable::Archive<E, D, Finalization<S, D>> = immutable::Archive::init(
        ctx.child("finalizations_by_height"),
        archive_cfg(&prefix, "finalizations-by-height", &page_cache, S::certificate_codec_config_unbounded()),
    )
    .await
    .map_err(|e| format!("the finalization archive: {e}"))?;
    let finalized_blocks: immutable::Archive<E, D, Arc<CBlock>> = immutable::Archive::init(
        ctx.child("finalized_blocks"),
        archive_cfg(&prefix, "finalized-blocks", &page_cache, ()),
    )
    .await
    .map_err(|e| format!("the block archive: {e}"))?;
    let (actor, mailbox, _floor) = MarshalActor::<_, Standard<CBlock>, _, _, _, _, _>::init(
        ctx.child("marshal"),
        finalizations_by_height,
        finalized_blocks,
        marshal::Config {
            provider: ConstantProvider::<S, Epoch>::new(scheme.clone()),
            epocher: epocher.clone(),
            start: Start::Genesis(genesis.clone()),
            partition_prefix: prefix,
            mailbox_size: NZUsize!(1024),
            view_retention: ViewDelta::new(256),
            prunable_items_per_section: NZU64!(4_096),
            page_cache: page_cache.clone(),
            replay_buffer: NZUsize!(1 << 20),
            key_write_buffer: NZUsize!(1 << 20),
            value_write_buffer: NZUsize!(1 << 20),
            block_codec_config: (),
            max_repair: NZUsize!(16),
            max_pending_acks: NZUsize!(16),
            strategy: Sequential,
        },
    )
    .await;

    // Finalized blocks: execute, commit with their certificate, then acknowledge.
    let (fin_tx, mut fin_rx) = tokio::sync::mpsc::unbounded_channel::<Update<CBlock>>();
    let marshal_handle = actor.start(FinalizedReporter { tx: fin_tx }, buffer, resolver);
    let exec_chain = chain.clone();
    let exec_mailbox = mailbox.clone();
    // Committing a block holds its thread for a while (a prune, up to a second): a thread of its
    // own, so voting and verifying go on meanwhile.
    let executor = ctx.child("executor").dedicated().spawn(move |_| async move {
        while let Some(update) = fin_rx.recv().await {
            if let Update::Block(block, ack) = update {
                let height = block.height();
                let cert = exec_mailbox.get_finalization(height).await.map(|f| f.encode().to_vec());
                if let Err(e) = exec_chain.finalize(block.inner().0.clone(), cert.as_deref()) {
                    // A validator that cannot persist must stop rather than acknowledge.
                    return Some(format!("cannot commit finalized block {}: {e}", height.get()));
                }
                ack.acknowledge();
            }
        }
        None
    });

    // Transaction gossip: send what the API accepted, admit what peers send.
    let (gossip_tx, mut gossip_rx) = tokio::sync::mpsc::channel::<Vec<Tx>>(1024);
    let (mut tx_sender, mut tx_receiver) = ch.txs;
    let gossip_chain = chain.clone();
    let gossip = ctx.child("gossip").spawn(move |ctx| async move {
        loop {
            tokio::select! {
                batch = gossip_rx.recv() => {
                    let Some(mut batch) = batch else { break };
                    // Single transactions (access events, one-off submissions) are coalesced for
                    // a few milliseconds: one p2p message per window instead of one per
                    // transaction per peer.
                    if batch.len() < GOSSIP_COALESCE_BELOW {
                        ctx.sleep(GOSSIP_COALESCE_WINDOW).await;
                        while batch.len() < MAX_GOSSIP_TXS {
                            match gossip_rx.try_recv() {
                                Ok(more) => batch.extend(more),
                                Err(_) => break,
                            }
                        }
                    }
                    for part in batch.chunks(MAX_GOSSIP_TXS) {
                        let _ = tx_sender.send(Recipients::All, encode_gossip(part), false);
                    }
                }
                msg = tx_receiver.recv() => {
                    let Ok((_, bytes)) = msg else { break };
                    if let Some(txs) = decode_gossip(bytes.as_ref()) {
                        gossip_chain.submit_gossiped(txs);
                    }
                }
            }
        }
    });

    let inline = Inline::new(ctx.child("application"), App { chain: chain.clone() }, mailbox.clone(), epocher);
    let engine = simplex::Engine::new(
        ctx.child("simplex"),
        simplex::Config {
            scheme,
            elector: RoundRobin::<Sha256>::default(),
            blocker,
            automaton: inline.clone(),
            relay: inline.clone(),
            reporter: inline,
            track_historical_votes: false,
            strategy: Sequential,
            partition: format!("simplex-{me_hex}-e0"),
            mailbox_size: NZUsize!(1024),
            epoch: Epoch::zero(),
            floor: Floor::Genesis(genesis.digest()),
            replay_buffer: NZUsize!(1 << 20),
            write_buffer: NZUsize!(1 << 20),
            page_cache,
            leader_timeout: timing.leader_timeout,
            certification_timeout: timing.certification_timeout,
            timeout_retry: timing.timeout_retry,
            view_retention: ViewDelta::new(256),
            skip: SkipPolicy::Enabled { timeout: timing.skip_timeout, budget: SkipBudget::Participants },
            fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(100),
            forward: ForwardPolicy::SilentVoters,
        },
    );
    let simplex = engine.start(ch.votes, ch.certificates, ch.resolver);
    Ok(Validator { simplex, marshal: marshal_handle, broadcast, executor, gossip, mailbox, gossip_tx })
}
