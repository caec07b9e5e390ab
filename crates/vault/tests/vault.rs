use medledger_types::{Hash, Keypair};
use medledger_vault::envelope::{self, content_hash, context, seal, unwrap, wrap, DataKey, EnvelopeError};
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
fn a_reading_is_one_write_once_object_that_its_recipients_open() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::new(FsStore::open(dir.path()).unwrap());
    let (patient, hospital) = (Keypair::from_seed(1), Keypair::from_seed(2));
    let (device, digest) = (Hash([4; 32]), Hash([5; 32]));
    let ctx = context(&digest, 1);
    let key = DataKey::generate();
    let sealed = seal(&key, FHIR, &ctx);
    let keys = vec![
        (patient.public(), wrap(&key, &patient.public(), &ctx).unwrap()),
        (hospital.public(), wrap(&key, &hospital.public(), &ctx).unwrap()),
    ];
    vault.put_reading(&device, &digest, &sealed.0, &keys).unwrap();
    let mut all = Vec::new();
    files(dir.path(), &mut all);
    assert_eq!(all.len(), 1, "one object per reading: {all:?}");
    assert!(!std::fs::read(&all[0]).unwrap().windows(10).any(|w| w == b"Heart rate"), "sealed, not plain");
    let stored = vault.reading(&device, &digest).unwrap().unwrap();
    assert_eq!(stored.sealed, sealed.0);
    for (who, (pk, w)) in [&patient, &hospital].into_iter().zip(&stored.keys) {
        assert_eq!(*pk, who.public());
        assert_eq!(envelope::open(&unwrap(w, who, &ctx).unwrap(), &stored.sealed, &ctx).unwrap(), FHIR);
    }
    // An identical retry is a no-op; other content under the same digest changes nothing.
    vault.put_reading(&device, &digest, &sealed.0, &keys).unwrap();
    let other = seal(&DataKey::generate(), FHIR, &ctx);
    assert!(matches!(vault.put_reading(&device, &digest, &other.0, &keys), Err(VaultError::Exists(..))));
    assert_eq!(vault.reading(&device, &digest).unwrap().unwrap(), stored);
    assert_eq!(vault.reading(&device, &Hash([6; 32])).unwrap(), None);
    // A corrupt object is an error, not a panic.
    std::fs::write(&all[0], b"\x00\x00").unwrap();
    assert!(matches!(vault.reading(&device, &digest), Err(VaultError::Corrupt(_))));
}
