use medledger_state::{execute_block, genesis_root, genesis_writes, BlockEnv, StateRead};
use medledger_storage::{Store, StoreError};
use medledger_types::IdentityOp;
use medledger_types::{genesis::GenesisInstitution, Block, Genesis, Hash, Keypair, Operation, Transaction, Tx};

fn genesis(chain: &str) -> (Genesis, Vec<Keypair>) {
    let admins: Vec<Keypair> = (0..4).map(|i| Keypair::from_seed(10 + i)).collect();
    let g = Genesis {
        chain_id: chain.into(),
        genesis_time_ms: 1_000,
        ca_key: Keypair::from_seed(1).public(),
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
    (g, admins)
}

fn genesis_block(g: &Genesis) -> Block {
    Block::new(0, g.hash(), g.genesis_time_ms, Default::default(), genesis_root(g), vec![])
}

/// `admin`'s first transaction: an attestation.
fn attest(admin: &Keypair) -> Tx {
    Tx::sign(
        Transaction {
            chain_id: "c".into(),
            signer: admin.public(),
            nonce: 0,
            op: Operation::Identity(IdentityOp::Attest { digest: Hash([5; 32]), label: "x".into() }),
        },
        admin,
    )
}

#[test]
fn committed_blocks_survive_reopen_and_order_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let (g, admins) = genesis("c");
    let g0 = genesis_block(&g);
    let tx = attest(&admins[0]);
    let (b1, ex) = {
        let store = Store::open(&path).unwrap();
        store.init_genesis(&g0, &genesis_writes(&g), g.hash()).unwrap();
        let env = BlockEnv { chain_id: "c".into(), height: 1, timestamp_ms: 2_000, proposer: Default::default() };
        let snap = store.snapshot().unwrap();
        let ex = execute_block(&snap, &env, std::slice::from_ref(&tx));
        let b1 = Block::new(1, g0.digest(), 2_000, Default::default(), ex.state_root, vec![tx.clone()]);
        store.commit_block(&b1, Some(b"cert-1"), &ex.writes, &ex.receipts).unwrap();
        // Committing the same height again is refused.
        assert!(matches!(
            store.commit_block(&b1, Some(b"cert-1"), &ex.writes, &ex.receipts),
            Err(StoreError::NotNext { got: 1, tip: 1 })
        ));
        (b1, ex)
    };
    let store = Store::open(&path).unwrap();
    store.init_genesis(&g0, &genesis_writes(&g), g.hash()).unwrap();
    let tip = store.tip().unwrap().unwrap();
    assert_eq!(tip.height, 1);
    assert_eq!(tip.hash, b1.digest());
    assert_eq!(tip.state_root, ex.state_root);
    assert_eq!(store.block(1).unwrap().unwrap(), b1);
    assert_eq!(store.certificate(1).unwrap().unwrap(), b"cert-1");
    assert_eq!(store.tx_location(&tx.id()).unwrap(), Some((1, 0)));
    assert_eq!(store.receipt(1, 0).unwrap().unwrap(), ex.receipts[0]);
    assert_eq!(store.height_of(&b1.digest()).unwrap(), Some(1));
    let snap = store.snapshot().unwrap();
    for (k, v) in &ex.writes {
        assert_eq!(&snap.get(k), v);
    }
    // A store of one chain refuses another chain's genesis.
    let (other, _) = genesis("other");
    let err = store.init_genesis(&genesis_block(&other), &genesis_writes(&other), other.hash()).unwrap_err();
    assert!(matches!(err, StoreError::WrongGenesis { .. }), "{err}");
}

#[test]
fn a_store_of_the_old_state_format_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    let (g, _) = genesis("format");
    let g0 = genesis_block(&g);
    {
        let s = Store::open(&path).unwrap();
        s.init_genesis(&g0, &genesis_writes(&g), g.hash()).unwrap();
    }
    // A store written before the authenticated state has no format entry.
    {
        let db = redb::Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        w.open_table(redb::TableDefinition::<&str, &[u8]>::new("meta")).unwrap().remove("format").unwrap();
        w.commit().unwrap();
    }
    let s = Store::open(&path).unwrap();
    let err = s.init_genesis(&g0, &genesis_writes(&g), g.hash()).unwrap_err();
    assert!(matches!(err, StoreError::OldFormat { found: 1 }), "{err}");
    assert!(err.to_string().contains("--reset"), "the error says what to do: {err}");
    drop(s);
    // A store of a previous layout (format 4: tree nodes under their path alone) is refused too,
    // before anything reads it.
    {
        let db = redb::Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        w.open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
            .unwrap()
            .insert("format", 4u32.to_be_bytes().as_slice())
            .unwrap();
        w.commit().unwrap();
    }
    let s = Store::open(&path).unwrap();
    let err = s.init_genesis(&g0, &genesis_writes(&g), g.hash()).unwrap_err();
    assert!(matches!(err, StoreError::OldFormat { found: 4 }), "{err}");
}

#[test]
fn the_consistent_view_pairs_the_tip_with_its_own_state() {
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = genesis("view");
    let s = Store::open(&dir.path().join("l.redb")).unwrap();
    s.init_genesis(&genesis_block(&g), &genesis_writes(&g), g.hash()).unwrap();
    let (tip, snap) = s.view().unwrap();
    assert_eq!(tip.height, 0);
    assert_eq!(medledger_state::height_of(&snap), Some(0));
    assert_eq!(tip.state_root, genesis_root(&g));
    assert_eq!(medledger_storage::Tip::of(&tip), s.tip().unwrap().unwrap());
}

#[test]
fn a_prefix_scan_returns_only_that_prefix_in_key_order_and_says_when_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = genesis("scan");
    let s = Store::open(&dir.path().join("l.redb")).unwrap();
    s.init_genesis(&genesis_block(&g), &genesis_writes(&g), g.hash()).unwrap();
    let snap = s.snapshot().unwrap();
    let prefix = medledger_state::identity::CREDENTIAL_PREFIX;
    let (all, more) = snap.scan_prefix(prefix, 100).unwrap();
    // The four genesis admins hold credentials.
    assert_eq!(all.len(), 4);
    assert!(!more);
    assert!(all.iter().all(|(k, _)| k.starts_with(prefix)));
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    for (k, v) in &all {
        assert_eq!(snap.get(k).as_deref(), Some(v.as_slice()));
    }
    let (two, more) = snap.scan_prefix(prefix, 2).unwrap();
    assert_eq!(two, all[..2].to_vec());
    assert!(more);
    assert_eq!(snap.scan_prefix(b"no such prefix/", 10).unwrap(), (vec![], false));
}

/// A block's stale tree nodes stay in the store (with their index entries) until a commit finds
/// the oldest `PRUNE_EVERY` versions old and drops them; pruned, the store holds exactly the
/// latest tree (one leaf node per live key). Over two prunes, with overwrites and deletions
/// (the tree's key-by-key path), every live key proves at every height; and a block executed
/// over the store plus its unfinalized parent, before the parent's commit pruned, is committed
/// after it and proves too (unfinalized blocks never need a node stale at the committed tip).
#[test]
fn stale_tree_nodes_are_pruned_in_batches_and_every_key_still_proves() {
    use medledger_state::commitment::{commit, is_leaf_key, is_node_key, prove, stale_through};
    use medledger_state::{Executed, Layered, WriteSet};
    use medledger_storage::PRUNE_EVERY;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = genesis("prune");
    let store = Store::open(&dir.path().join("l.redb")).unwrap();
    let g0 = genesis_block(&g);
    store.init_genesis(&g0, &genesis_writes(&g), g.hash()).unwrap();
    let stale_prefix = stale_through(0).0;
    // Block h's domain writes: its height, ten keys rewritten in turn (stale leaves), a new key
    // each block, and every third block the deletion of an earlier new key.
    let domain = |h: u64| -> WriteSet {
        let mut w = WriteSet::new();
        w.insert(medledger_state::keys::HEIGHT.to_vec(), Some(h.to_be_bytes().to_vec()));
        w.insert(format!("t/{}", h % 10).into_bytes(), Some(format!("v{h}").into_bytes()));
        w.insert(format!("t/new/{h}").into_bytes(), Some(vec![1]));
        if h.is_multiple_of(3) {
            w.insert(format!("t/new/{}", h - 2).into_bytes(), None);
        }
        w
    };
    let sealed = |base: &dyn StateRead, h: u64| -> Executed {
        let mut writes = domain(h);
        let (root, tree) = commit(base, h, &writes);
        writes.extend(tree);
        Executed { writes, receipts: vec![], state_root: root }
    };
    let check = |store: &Store, h: u64, root: &Hash| -> (usize, usize, usize) {
        let entries = store.snapshot().unwrap().scan_prefix(b"", 1_000_000).unwrap().0;
        let stale = entries.iter().filter(|(k, _)| k.starts_with(&stale_prefix)).count();
        let live: Vec<&Vec<u8>> = entries.iter().map(|(k, _)| k).filter(|k| is_leaf_key(k)).collect();
        let leaves = entries
            .iter()
            .filter(|(k, v)| {
                is_node_key(k) && matches!(borsh::from_slice::<jmt::storage::Node>(v), Ok(jmt::storage::Node::Leaf(_)))
            })
            .count();
        let snap = store.snapshot().unwrap();
        for k in &live {
            let (v, proof) = prove(&snap, h, k).unwrap();
            medledger_types::state_proof::verify_entry(root, k, v.as_deref(), &proof).unwrap();
        }
        (stale, live.len(), leaves)
    };
    let mut parent = g0.digest();
    let last = 2 * PRUNE_EVERY + 1;
    let mut h = 1;
    while h <= last {
        if h == 2 * PRUNE_EVERY {
            // Block h+1 is executed over the store (at h-1) with block h as an unfinalized
            // layer, then h is committed (and prunes), then h+1 from its cached result.
            let ex = sealed(&store.snapshot().unwrap(), h);
            let snap = store.snapshot().unwrap();
            let layered = Layered::new(&snap, vec![Arc::new(ex.writes.clone())]);
            let next = sealed(&layered, h + 1);
            drop(snap);
            let b = Block::new(h, parent, 1_000 + h, Default::default(), ex.state_root, vec![]);
            store.commit_block(&b, None, &ex.writes, &ex.receipts).unwrap();
            let (stale, live, leaves) = check(&store, h, &ex.state_root);
            assert_eq!((stale, leaves), (0, live), "block {h} prunes: exactly the latest tree is left");
            let b2 = Block::new(h + 1, b.digest(), 1_001 + h, Default::default(), next.state_root, vec![]);
            store.commit_block(&b2, None, &next.writes, &next.receipts).unwrap();
            let (stale, live, leaves) = check(&store, h + 1, &next.state_root);
            assert!(stale > 0 && leaves > live, "block {}: its stale nodes wait", h + 1);
            parent = b2.digest();
            h += 2;
            continue;
        }
        let ex = sealed(&store.snapshot().unwrap(), h);
        let b = Block::new(h, parent, 1_000 + h, Default::default(), ex.state_root, vec![]);
        store.commit_block(&b, None, &ex.writes, &ex.receipts).unwrap();
        parent = b.digest();
        let (stale, live, leaves) = check(&store, h, &ex.state_root);
        if h == PRUNE_EVERY {
            assert_eq!((stale, leaves), (0, live), "block {h} prunes: exactly the latest tree is left");
        } else {
            assert!(stale > 0, "block {h}: stale nodes wait for the prune");
            assert!(leaves > live, "block {h}: replaced leaves are still stored");
        }
        h += 1;
    }
}

/// A commit drops at most its prune limit of stale nodes, the oldest first, and leaves the rest
/// (nodes and index entries) for the next commits; every live key still proves. The limit is
/// lowered to 7 so that a small tree reaches it (`MAX_PRUNE` is 131,072).
#[test]
fn a_prune_drops_at_most_its_limit_oldest_first_and_the_rest_waits() {
    use medledger_state::commitment::{commit, is_leaf_key, prove, stale_node, stale_through};
    use medledger_state::WriteSet;
    use medledger_storage::PRUNE_EVERY;
    use std::collections::BTreeSet;
    const LIMIT: usize = 7;
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = genesis("prune-limit");
    let mut store = Store::open(&dir.path().join("l.redb")).unwrap();
    store.set_max_prune(LIMIT);
    let g0 = genesis_block(&g);
    store.init_genesis(&g0, &genesis_writes(&g), g.hash()).unwrap();
    let (start, end) = stale_through(u64::MAX - 1);
    let index = |store: &Store| -> BTreeSet<Vec<u8>> {
        let entries = store.snapshot().unwrap().scan_prefix(b"", 1_000_000).unwrap().0;
        entries.into_iter().map(|(k, _)| k).filter(|k| *k >= start && *k < end).collect()
    };
    let mut parent = g0.digest();
    for h in 1..=PRUNE_EVERY + 6 {
        // Twelve keys rewritten every block: each block leaves more stale nodes than the limit.
        let mut writes = WriteSet::new();
        writes.insert(medledger_state::keys::HEIGHT.to_vec(), Some(h.to_be_bytes().to_vec()));
        for k in 0..12 {
            writes.insert(format!("t/{k}").into_bytes(), Some(format!("v{h}").into_bytes()));
        }
        let snap = store.snapshot().unwrap();
        let (root, tree) = commit(&snap, h, &writes);
        drop(snap);
        writes.extend(tree);
        let added: BTreeSet<Vec<u8>> = writes.keys().filter(|k| **k >= start && **k < end).cloned().collect();
        let before = index(&store);
        let b = Block::new(h, parent, 1_000 + h, Default::default(), root, vec![]);
        store.commit_block(&b, None, &writes, &[]).unwrap();
        parent = b.digest();
        let after = index(&store);
        let dropped: Vec<&Vec<u8>> = before.iter().chain(&added).filter(|e| !after.contains(*e)).collect();
        if h < PRUNE_EVERY {
            assert!(dropped.is_empty(), "block {h}: nothing is {PRUNE_EVERY} versions old yet");
        } else {
            assert_eq!(dropped.len(), LIMIT, "block {h} drops exactly its limit");
            // The oldest: the first entries of the index as it stood.
            let oldest: Vec<&Vec<u8>> = before.iter().take(LIMIT).collect();
            assert_eq!(dropped, oldest, "block {h} drops the oldest first");
        }
        // The nodes of dropped entries are gone; those of waiting entries are still there.
        let snap = store.snapshot().unwrap();
        for e in &dropped {
            assert!(snap.get(&stale_node(e).unwrap()).is_none(), "block {h}: a pruned node is still stored");
        }
        for e in &after {
            assert!(snap.get(&stale_node(e).unwrap()).is_some(), "block {h}: a waiting node was dropped");
        }
        let live: Vec<Vec<u8>> = snap
            .scan_prefix(b"", 1_000_000)
            .unwrap()
            .0
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| is_leaf_key(k))
            .collect();
        for k in &live {
            let (v, proof) = prove(&snap, h, k).unwrap();
            medledger_types::state_proof::verify_entry(&root, k, v.as_deref(), &proof).unwrap();
        }
    }
}

/// Chooses state keys.
type Pick<'a> = &'a dyn Fn(&[u8]) -> bool;

/// Overwrites, in the stopped store at `path`, every state value whose key `pick` chooses with
/// bytes no value of the ledger has (as a damaged disk or a careless hand would).
fn damage(path: &std::path::Path, pick: Pick<'_>) {
    use redb::ReadableTable as _;
    let db = redb::Database::create(path).unwrap();
    let w = db.begin_write().unwrap();
    {
        let mut t = w.open_table(redb::TableDefinition::<&[u8], &[u8]>::new("state")).unwrap();
        let keys: Vec<Vec<u8>> = t.iter().unwrap().map(|e| e.unwrap().0.value().to_vec()).filter(|k| pick(k)).collect();
        assert!(!keys.is_empty(), "nothing to damage");
        for k in keys {
            t.insert(k.as_slice(), [0xff_u8; 3].as_slice()).unwrap();
        }
    }
    w.commit().unwrap();
}

/// A stored value the state machine cannot have written is reported, not a panic: the read
/// answers it as absent and latches the fault on the store, which then refuses every snapshot
/// and every commit (the tip stays). A damaged node of the state tree is found the same way,
/// by the next block's execution.
#[test]
fn a_damaged_value_or_tree_node_latches_a_fault_and_nothing_more_is_committed() {
    let (g, admins) = genesis("c");
    let g0 = genesis_block(&g);
    let attest = attest(&admins[0]);
    let env = BlockEnv { chain_id: "c".into(), height: 1, timestamp_ms: 2_000, proposer: Default::default() };
    let institution = medledger_state::identity::key::institution("h1");
    let cases: [(Pick<'_>, &str); 2] = [
        (&|k| k == institution.as_slice(), "stored institution does not decode"),
        (&medledger_state::commitment::is_node_key, "the state tree of version 0 is incomplete"),
    ];
    for (i, (pick, fault)) in cases.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.redb");
        Store::open(&path).unwrap().init_genesis(&g0, &genesis_writes(&g), g.hash()).unwrap();
        damage(&path, pick);
        let store = Store::open(&path).unwrap();
        store.init_genesis(&g0, &genesis_writes(&g), g.hash()).unwrap();
        let snap = store.snapshot().unwrap();
        assert!(store.fault().is_none(), "nothing is read yet");
        if i == 0 {
            let read = medledger_state::identity::institution(&snap, "h1");
            assert!(read.is_none(), "the damaged institution reads as absent");
        }
        // (The block's execution reads the tree.)
        let ex = execute_block(&snap, &env, std::slice::from_ref(&attest));
        let found = store.fault().unwrap_or_else(|| panic!("no fault latched for `{fault}`")).to_string();
        assert!(found.contains(fault), "{found}");
        assert_eq!(snap.fault(), Some(found.as_str()));
        match store.snapshot() {
            Err(StoreError::Corrupt(why)) => assert!(why.contains(fault) && why.contains("no longer read"), "{why}"),
            _ => panic!("a snapshot of a faulted store"),
        }
        assert!(matches!(store.view(), Err(StoreError::Corrupt(_))), "a view of a faulted store");
        let b1 = Block::new(1, g0.digest(), 2_000, Default::default(), ex.state_root, vec![attest.clone()]);
        assert!(matches!(store.commit_block(&b1, None, &ex.writes, &ex.receipts), Err(StoreError::Corrupt(_))));
        assert_eq!(store.tip().unwrap().unwrap().height, 0, "nothing was committed");
    }
}
