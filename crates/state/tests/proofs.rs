//! The authenticated state: proofs verify for present and absent keys, and any changed byte in
//! a proof, a value or the root makes verification fail.

use medledger_state::commitment::{commit, prove, Proven, Recording};
use medledger_state::keys;
use medledger_state::{MemState, StateRead, WriteSet};
use medledger_types::state_proof::verify_entry;
use medledger_types::Hash;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Applies `writes` as block `version` (plus the height every block writes); returns the root.
fn apply(state: &mut MemState, version: u64, mut writes: WriteSet) -> Hash {
    writes.insert(keys::HEIGHT.to_vec(), Some(version.to_be_bytes().to_vec()));
    let (root, tree) = commit(state, version, &writes);
    state.apply(&writes);
    state.apply(&tree);
    root
}

fn domain_key() -> impl Strategy<Value = Vec<u8>> {
    // Domain keys are ASCII-prefixed; a small alphabet makes updates and deletions collide.
    (0u8..40).prop_map(|i| format!("x/{i}").into_bytes())
}

fn blocks() -> impl Strategy<Value = Vec<BTreeMap<Vec<u8>, Option<Vec<u8>>>>> {
    prop::collection::vec(
        prop::collection::btree_map(
            domain_key(),
            prop::option::weighted(0.8, prop::collection::vec(any::<u8>(), 0..40)),
            1..12,
        ),
        1..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn proofs_verify_for_present_and_absent_keys_and_fail_on_any_changed_byte(blocks in blocks(), pick in any::<prop::sample::Index>()) {
        let mut state = MemState::default();
        let mut root = Hash::ZERO;
        let mut version = 0;
        for (v, writes) in blocks.into_iter().enumerate() {
            version = v as u64;
            root = apply(&mut state, version, writes);
        }
        let mut proofs = Vec::new();
        for i in 0..40u8 {
            let key = format!("x/{i}").into_bytes();
            let (value, proof) = prove(&state, version, &key).unwrap();
            prop_assert_eq!(&value, &state.get(&key), "the proven value is the stored one");
            prop_assert!(verify_entry(&root, &key, value.as_deref(), &proof).is_ok());
            // Claiming the other way round fails: absent for present, a value for absent.
            let flipped = if value.is_some() { None } else { Some(b"forged".to_vec()) };
            prop_assert!(verify_entry(&root, &key, flipped.as_deref(), &proof).is_err());
            proofs.push((key, value, proof));
        }
        // One entry, every single-byte change: in the proof, the value and the root.
        let (key, value, proof) = &proofs[pick.index(proofs.len())];
        for i in 0..proof.len() {
            let mut p = proof.clone();
            p[i] ^= 0x01;
            prop_assert!(verify_entry(&root, key, value.as_deref(), &p).is_err(), "proof byte {} changed", i);
        }
        if let Some(v) = value {
            for i in 0..v.len() {
                let mut w = v.clone();
                w[i] ^= 0x80;
                prop_assert!(verify_entry(&root, key, Some(&w), proof).is_err(), "value byte {} changed", i);
            }
            let mut longer = v.clone();
            longer.push(0);
            prop_assert!(verify_entry(&root, key, Some(&longer), proof).is_err());
        }
        for i in 0..32 {
            let mut r = root;
            r.0[i] ^= 0x01;
            prop_assert!(verify_entry(&r, key, value.as_deref(), proof).is_err(), "root byte {} changed", i);
        }
        // Another key's proof does not prove this key.
        let (other, ov, op) = &proofs[(pick.index(proofs.len()) + 1) % proofs.len()];
        if other != key {
            prop_assert!(verify_entry(&root, key, ov.as_deref(), op).is_err() || ov == value && ov.is_none());
        }
    }

    #[test]
    fn equal_states_reached_in_different_orders_have_equal_roots(writes in prop::collection::btree_map(domain_key(), prop::collection::vec(any::<u8>(), 0..20), 1..20)) {
        // One block with everything, or the same writes split over two blocks whose second
        // rewrites nothing: the domain state is the same, so the root is too (only the height
        // differs, and it is written in both at version 1).
        let all: WriteSet = writes.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        let mut a = MemState::default();
        apply(&mut a, 0, WriteSet::new());
        let ra = apply(&mut a, 1, all.clone());
        let (first, second): (Vec<_>, Vec<_>) = all.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
        let mut b = MemState::default();
        apply(&mut b, 0, first.into_iter().map(|(_, kv)| kv).collect());
        let rb = apply(&mut b, 1, second.into_iter().map(|(_, kv)| kv).collect());
        prop_assert_eq!(ra, rb);
    }
}

#[test]
fn a_query_replayed_over_a_proof_needs_every_key_it_reads() {
    let mut state = MemState::default();
    let mut w = WriteSet::new();
    w.insert(b"x/a".to_vec(), Some(b"1".to_vec()));
    w.insert(b"x/b".to_vec(), Some(b"2".to_vec()));
    apply(&mut state, 0, w);
    let query = |s: &dyn StateRead| (s.get(b"x/a"), s.get(b"x/b"), s.get(b"x/none"));
    let rec = Recording::new(&state);
    let expected = query(&rec);
    let touched = rec.touched();
    assert_eq!(touched.len(), 3, "the absent key is recorded too");
    let all: BTreeMap<_, _> = touched.iter().map(|k| (k.clone(), state.get(k))).collect();
    assert_eq!(Proven::new(all.clone()).replay(query).unwrap(), expected);
    // Leaving out a key (here the absent one) is refused, not read as "absent".
    let mut partial = all;
    partial.remove(b"x/none".as_slice());
    let err = Proven::new(partial).replay(query).unwrap_err();
    assert!(err.contains("x/none"), "{err}");
}
