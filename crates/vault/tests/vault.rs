use medledger_types::{Hash, Keypair};
use medledger_vault::envelope::{
    self, content_hash, context, reading_context, reading_key_context, seal, unwrap, wrap, DataKey, EnvelopeError,
};
use medledger_vault::{FsStore, Vault, VaultError};

const FHIR: &[u8] = br#"{"resourceType":"Observation","status":"final","code":{"text":"Heart rate"},"subject":{"reference":"Patient/p1"},"valueQuantity":{"value":72,"unit":"beats/min"}}"#;

fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out)
        } else {
            out.push(p)
        }
    }
}

#[test]
fn seal_wrap_rewrap_and_open() {
    let patient = Keypair::from_seed(1);
    let hospital = Keypair::from_seed(2);
    let doctor_b = Keypair::from_seed(3);
    let id = Hash([9; 32]);
    let ctx = context(&id, 1);
    let key = DataKey::generate();
    let sealed = seal(&key, FHIR, &ctx);
    let wp = wrap(&key, &patient.public(), &ctx).unwrap();
    let wh = wrap(&key, &hospital.public(), &ctx).unwrap();
    drop(key);
    // The patient re-wraps for a grantee without the vault seeing the key.
    let k = unwrap(&wp, &patient, &ctx).unwrap();
    let wb = wrap(&k, &doctor_b.public(), &ctx).unwrap();
    let kb = unwrap(&wb, &doctor_b, &ctx).unwrap();
    let plain = envelope::open(&kb, &sealed.0, &ctx).unwrap();
    assert_eq!(plain, FHIR);
    assert_eq!(content_hash(&plain), content_hash(FHIR));
    let kh = unwrap(&wh, &hospital, &ctx).unwrap();
    assert_eq!(envelope::open(&kh, &sealed.0, &ctx).unwrap(), FHIR);

    // Wrong recipient, wrong version context, tampered ciphertext: all refused.
    assert_eq!(unwrap(&wp, &doctor_b, &ctx).err(), Some(EnvelopeError::Unwrap));
    assert_eq!(unwrap(&wp, &patient, &context(&id, 2)).err(), Some(EnvelopeError::Unwrap));
    let mut bad = sealed.0.clone();
    bad[20] ^= 1;
    assert_eq!(envelope::open(&kb, &bad, &ctx).err(), Some(EnvelopeError::Open));
    assert_eq!(envelope::open(&kb, &sealed.0, &context(&id, 2)).err(), Some(EnvelopeError::Open));
    assert_eq!(envelope::open(&kb, &sealed.0[..10], &ctx).err(), Some(EnvelopeError::Malformed("sealed record")));
}

#[test]
fn vault_stores_only_sealed_bytes_and_erasure_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::new(FsStore::open(dir.path()).unwrap());
    let patient = Keypair::from_seed(1);
    let hospital = Keypair::from_seed(2);
    let grantee = Keypair::from_seed(3);
    let id = Hash([7; 32]);
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for v in 1..=2u32 {
        let ctx = context(&id, v);
        let key = DataKey::generate();
        let sealed = seal(&key, FHIR, &ctx);
        let keys = vec![
            (patient.public(), wrap(&key, &patient.public(), &ctx).unwrap()),
            (hospital.public(), wrap(&key, &hospital.public(), &ctx).unwrap()),
        ];
        vault.put_version(&id, v, &sealed.0, &keys).unwrap();
        secrets.push(sealed.0.clone());
        secrets.extend(keys.iter().map(|(_, w)| w.to_bytes()));
    }
    // Plaintext is in no file.
    let mut all = Vec::new();
    files(dir.path(), &mut all);
    for f in &all {
        let b = std::fs::read(f).unwrap();
        assert!(!b.windows(20).any(|w| w == &FHIR[..20]), "plaintext in {}", f.display());
    }
    // A grantee reads only after a key is wrapped for them.
    assert!(matches!(vault.get(&id, 1, &grantee.public()), Err(VaultError::NoKey(_))));
    let (sealed, wp) = vault.get(&id, 1, &patient.public()).unwrap();
    let k = unwrap(&wp, &patient, &context(&id, 1)).unwrap();
    let wg = wrap(&k, &grantee.public(), &context(&id, 1)).unwrap();
    vault.add_key(&id, 1, &grantee.public(), &wg).unwrap();
    secrets.push(wg.to_bytes());
    let (s2, w2) = vault.get(&id, 1, &grantee.public()).unwrap();
    assert_eq!(s2, sealed);
    let kg = unwrap(&w2, &grantee, &context(&id, 1)).unwrap();
    assert_eq!(envelope::open(&kg, &s2, &context(&id, 1)).unwrap(), FHIR);
    assert!(matches!(vault.get(&id, 9, &patient.public()), Err(VaultError::NotFound(_, 9))));
    assert!(matches!(
        vault.put_version(&id, 3, &vec![0u8; medledger_vault::MAX_SEALED_BYTES + 1], &[]),
        Err(VaultError::Oversize(_))
    ));

    // Erasure: no ciphertext or wrapped key remains in any file; later reads say erased.
    assert!(vault.erase(&id).unwrap() >= 8);
    let mut all = Vec::new();
    files(dir.path(), &mut all);
    for f in &all {
        let b = std::fs::read(f).unwrap();
        for s in &secrets {
            assert!(
                !b.windows(s.len().min(32)).any(|w| w == &s[..s.len().min(32)]),
                "erased bytes remain in {}",
                f.display()
            );
        }
    }
    assert!(matches!(vault.get(&id, 1, &patient.public()), Err(VaultError::Erased(_))));
    assert!(matches!(vault.add_key(&id, 1, &grantee.public(), &wg), Err(VaultError::Erased(_))));
}

/// The same vault over the `object_store` adapter (in-memory backend, as an S3 bucket would be
/// driven): round trip, listing, and erasure that leaves no object of the record behind.
#[test]
fn vault_over_an_object_store_round_trips_and_erases() {
    use medledger_vault::{BlobStore, ObjectStoreBlobs};
    let mem = std::sync::Arc::new(object_store::memory::InMemory::new());
    let blobs = ObjectStoreBlobs::new(mem.clone(), "tenant/hospital-a").unwrap();
    assert!(matches!(blobs.put("../escape", b"x"), Err(medledger_vault::StoreError::Name(_))));
    assert_eq!(blobs.get("objects/none").unwrap(), None);
    blobs.delete("objects/none").unwrap();
    let vault = Vault::new(Box::new(blobs) as Box<dyn BlobStore>);
    let patient = Keypair::from_seed(1);
    let id = Hash([9; 32]);
    let ctx = context(&id, 1);
    let key = DataKey::generate();
    let sealed = seal(&key, FHIR, &ctx);
    vault.put_version(&id, 1, &sealed.0, &[(patient.public(), wrap(&key, &patient.public(), &ctx).unwrap())]).unwrap();
    let (s, w) = vault.get(&id, 1, &patient.public()).unwrap();
    let k = unwrap(&w, &patient, &ctx).unwrap();
    assert_eq!(envelope::open(&k, &s, &ctx).unwrap(), FHIR);
    // Everything lives under the prefix in the backing store.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let names = |store: std::sync::Arc<object_store::memory::InMemory>| -> Vec<String> {
        use futures::TryStreamExt as _;
        use object_store::ObjectStore as _;
        rt.block_on(store.list(None).map_ok(|m| m.location.to_string()).try_collect::<Vec<_>>()).unwrap()
    };
    let before = names(mem.clone());
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(before.iter().all(|n| n.starts_with("tenant/hospital-a/")), "{before:?}");
    vault.erase(&id).unwrap();
    let after = names(mem.clone());
    assert_eq!(after, vec![format!("tenant/hospital-a/erased/{}", id.to_hex())], "only the tombstone remains");
    assert!(matches!(vault.get(&id, 1, &patient.public()), Err(VaultError::Erased(_))));
}

/// Versions are write-once: an identical retry is a no-op, anything else is refused and leaves
/// every stored byte as it was; wrapped keys of the wrong length are refused before any write.
#[test]
fn versions_are_write_once_and_wrapped_keys_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::new(FsStore::open(dir.path()).unwrap());
    let patient = Keypair::from_seed(1);
    let id = Hash([7; 32]);
    let ctx = context(&id, 1);
    let key = DataKey::generate();
    let sealed = seal(&key, FHIR, &ctx);
    let w = wrap(&key, &patient.public(), &ctx).unwrap();
    vault.put_version(&id, 1, &sealed.0, &[(patient.public(), w.clone())]).unwrap();
    let snapshot = |d: &std::path::Path| {
        let mut v = Vec::new();
        files(d, &mut v);
        v.sort();
        v.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect::<Vec<_>>()
    };
    let before = snapshot(dir.path());
    // The same bytes again: accepted, nothing changes.
    vault.put_version(&id, 1, &sealed.0, &[(patient.public(), w.clone())]).unwrap();
    assert_eq!(snapshot(dir.path()), before);
    // Other content, or another key, for the same version: refused, nothing changes.
    let other = seal(&key, b"{}", &ctx);
    assert!(matches!(
        vault.put_version(&id, 1, &other.0, &[(patient.public(), w.clone())]),
        Err(VaultError::Exists(..))
    ));
    let w2 = wrap(&key, &patient.public(), &ctx).unwrap();
    assert!(matches!(vault.put_version(&id, 1, &sealed.0, &[(patient.public(), w2)]), Err(VaultError::Exists(..))));
    assert_eq!(snapshot(dir.path()), before);
    // A truncated wrapped key is refused on upload and on addition.
    let mut short = w.clone();
    short.sealed.pop();
    assert!(matches!(
        vault.put_version(&id, 2, &sealed.0, &[(patient.public(), short.clone())]),
        Err(VaultError::BadWrappedKey { expected: 80, got: 79 })
    ));
    assert!(matches!(
        vault.add_key(&id, 1, &Keypair::from_seed(2).public(), &short),
        Err(VaultError::BadWrappedKey { .. })
    ));
    assert_eq!(snapshot(dir.path()), before);
    // The patient still opens version 1.
    let (s, wk) = vault.get(&id, 1, &patient.public()).unwrap();
    assert_eq!(envelope::open(&unwrap(&wk, &patient, &ctx).unwrap(), &s, &ctx).unwrap(), FHIR);
}

/// A store that loses every write: the probe must notice.
struct Forgetful;

impl medledger_vault::BlobStore for Forgetful {
    fn put(&self, _: &str, _: &[u8]) -> Result<(), medledger_vault::store::StoreError> {
        Ok(())
    }
    fn get(&self, _: &str) -> Result<Option<Vec<u8>>, medledger_vault::store::StoreError> {
        Ok(None)
    }
    fn delete(&self, _: &str) -> Result<(), medledger_vault::store::StoreError> {
        Ok(())
    }
    fn list(&self, _: &str) -> Result<Vec<String>, medledger_vault::store::StoreError> {
        Ok(vec![])
    }
}

#[test]
fn the_health_probe_passes_on_a_working_store_and_fails_on_one_that_loses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::new(FsStore::open(dir.path()).unwrap());
    vault.probe(b"one").unwrap();
    vault.probe(b"two").unwrap();
    // The probe leaves one small blob and no record data.
    assert_eq!(std::fs::read(dir.path().join("health/probe")).unwrap(), b"two");
    assert!(Vault::new(Forgetful).probe(b"one").is_err());
}

#[test]
fn readings_are_write_once_rows_that_their_recipients_open_with_the_epoch_key() {
    let dir = tempfile::tempdir().unwrap();
    let log = tempfile::tempdir().unwrap();
    let vault =
        Vault::new(FsStore::open(dir.path()).unwrap()).with_reading_log(&log.path().join("readings.redb")).unwrap();
    let (patient, hospital) = (Keypair::from_seed(1), Keypair::from_seed(2));
    let (device, epoch) = (Hash([4; 32]), Hash([7; 32]));
    let key = DataKey::generate();
    let kctx = reading_key_context(&device, &epoch);
    let keys = vec![
        (patient.public(), wrap(&key, &patient.public(), &kctx).unwrap()),
        (hospital.public(), wrap(&key, &hospital.public(), &kctx).unwrap()),
    ];
    vault.put_reading_key(&device, &epoch, &keys).unwrap();
    // Two readings of the epoch, each bound to its own digest.
    let digests = [Hash([5; 32]), Hash([6; 32])];
    let sealed: Vec<_> = digests.iter().map(|d| seal(&key, FHIR, &reading_context(&device, d))).collect();
    for (d, s) in digests.iter().zip(&sealed) {
        vault.put_reading(&device, d, 1_000 + u64::from(d.0[0]), &epoch, &s.0).unwrap();
    }
    // The latest by time, oldest first, and no other device's (the next device in key order
    // has a later reading).
    vault.put_reading(&Hash([5; 32]), &Hash([1; 32]), 9_000, &epoch, &sealed[0].0).unwrap();
    let (d5, d6) = (digests[0], digests[1]);
    assert_eq!(vault.latest_readings(&device, 1).unwrap(), [(1_006, d6)]);
    assert_eq!(vault.latest_readings(&device, 9).unwrap(), [(1_005, d5), (1_006, d6)]);
    assert_eq!(vault.readings_after(&device, None, 9).unwrap(), vault.latest_readings(&device, 9).unwrap());
    assert!(vault.latest_readings(&Hash([0xDF; 32]), 9).unwrap().is_empty());
    let mut all = Vec::new();
    files(dir.path(), &mut all);
    assert_eq!(all.len(), 1, "one blob for the epoch's keys, none per reading: {all:?}");
    let mut logged = Vec::new();
    files(log.path(), &mut logged);
    for f in all.iter().chain(&logged) {
        assert!(!std::fs::read(f).unwrap().windows(10).any(|w| w == b"Heart rate"), "sealed, not plain");
    }
    for (d, s) in digests.iter().zip(&sealed) {
        let stored = vault.reading(&device, d).unwrap().unwrap();
        assert_eq!((&stored.sealed, stored.epoch), (&s.0, epoch));
        for (who, (pk, w)) in [&patient, &hospital].into_iter().zip(&stored.keys) {
            assert_eq!(*pk, who.public());
            let k = unwrap(w, who, &kctx).unwrap();
            assert_eq!(envelope::open(&k, &stored.sealed, &reading_context(&device, d)).unwrap(), FHIR);
            // A reading's ciphertext does not open as another reading's.
            let other = if *d == digests[0] { digests[1] } else { digests[0] };
            assert!(envelope::open(&k, &stored.sealed, &reading_context(&device, &other)).is_err());
        }
    }
    // An identical retry is a no-op; other content under the same digest changes nothing.
    let before = vault.reading(&device, &digests[0]).unwrap().unwrap();
    vault.put_reading(&device, &digests[0], 1_005, &epoch, &sealed[0].0).unwrap();
    let other = seal(&DataKey::generate(), FHIR, &reading_context(&device, &digests[0]));
    assert!(matches!(vault.put_reading(&device, &digests[0], 1_005, &epoch, &other.0), Err(VaultError::Exists(..))));
    assert!(matches!(vault.put_reading_key(&device, &epoch, &keys[..1]), Err(VaultError::Exists(..))));
    assert_eq!(vault.reading(&device, &digests[0]).unwrap().unwrap(), before);
    assert_eq!(vault.reading(&device, &Hash([9; 32])).unwrap(), None);
    // A reading whose epoch keys are gone (erased) is an error, not a panic, and unreadable.
    std::fs::remove_file(&all[0]).unwrap();
    assert!(matches!(vault.reading(&device, &digests[1]), Err(VaultError::Corrupt(m)) if m.contains("gone")));
    // A vault without a reading log refuses readings, specifically.
    let bare = Vault::new(FsStore::open(dir.path()).unwrap());
    assert!(
        matches!(bare.put_reading(&device, &digests[0], 1_005, &epoch, &sealed[0].0), Err(VaultError::ReadingLog(m)) if m.contains("keeps no readings"))
    );
}

#[test]
fn readings_written_at_once_from_many_threads_are_all_durable_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (blobs, path) = (dir.path().join("blobs"), dir.path().join("readings.redb"));
    let vault = std::sync::Arc::new(Vault::new(FsStore::open(&blobs).unwrap()).with_reading_log(&path).unwrap());
    let hospital = Keypair::from_seed(2);
    let (epoch, key) = (Hash([1; 32]), DataKey::generate());
    let key = std::sync::Arc::new(key);
    let threads: Vec<_> = (0..16u8)
        .map(|t| {
            let (vault, key, pk) = (vault.clone(), key.clone(), hospital.public());
            std::thread::spawn(move || {
                let device = Hash([t; 32]);
                let w = wrap(&key, &pk, &reading_key_context(&device, &epoch)).unwrap();
                vault.put_reading_key(&device, &epoch, &[(pk, w)]).unwrap();
                for i in 0..50u8 {
                    let sealed = seal(&key, &[t, i], &reading_context(&device, &Hash([i; 32])));
                    // Sent out of order: the log answers by time.
                    let at = 10_000 + (u64::from(i) * 7) % 50;
                    vault.put_reading(&device, &Hash([i; 32]), at, &epoch, &sealed.0).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(vault);
    let again = Vault::new(FsStore::open(&blobs).unwrap()).with_reading_log(&path).unwrap();
    for t in 0..16u8 {
        let device = Hash([t; 32]);
        for i in 0..50u8 {
            let r = again.reading(&device, &Hash([i; 32])).unwrap().expect("durable");
            let k = unwrap(&r.keys[0].1, &hospital, &reading_key_context(&device, &epoch)).unwrap();
            assert_eq!(envelope::open(&k, &r.sealed, &reading_context(&device, &Hash([i; 32]))).unwrap(), vec![t, i]);
        }
    }
    assert_eq!(again.reading(&Hash([99; 32]), &Hash([0; 32])).unwrap(), None);
    // What a restarted node asks: the devices, and each one's readings after a time, in order.
    let devices = again.reading_devices(1_000).unwrap();
    assert_eq!(devices, (0..16u8).map(|t| Hash([t; 32])).collect::<Vec<_>>());
    assert_eq!(again.reading_devices(3).unwrap().len(), 3, "bounded");
    let after = again.readings_after(&Hash([3; 32]), Some(10_039), 100).unwrap();
    let times: Vec<u64> = after.iter().map(|(ms, _)| *ms).collect();
    assert_eq!(times, (10_040..10_050).collect::<Vec<_>>(), "after, exclusive, oldest first");
    for (ms, d) in &after {
        assert_eq!(10_000 + (u64::from(d.0[0]) * 7) % 50, *ms, "each time with its own digest");
    }
    assert_eq!(again.readings_after(&Hash([3; 32]), None, 100).unwrap().len(), 50);
    assert_eq!(again.readings_after(&Hash([3; 32]), None, 5).unwrap().len(), 5, "bounded");
    assert!(again.readings_after(&Hash([3; 32]), Some(u64::MAX), 5).unwrap().is_empty());
    assert!(again.readings_after(&Hash([99; 32]), None, 5).unwrap().is_empty());
}
