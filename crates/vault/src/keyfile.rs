//! Key files and the genesis file, as users and nodes keep them on disk.
//!
//! A key file is JSON `{"public_key": hex, "secret_key": hex}` written with mode 0600; a public
//! key file omits the secret. Both the node and the client read them through this module.

use medledger_types::{Genesis, Keypair};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A key file: `{"public_key": hex, "secret_key": hex}`, written with mode 0600.
#[derive(Serialize, Deserialize)]
pub struct KeyFile {
    pub public_key: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret_key: Option<String>,
}

pub fn write_key(path: &Path, key: &Keypair) -> Result<(), String> {
    let kf = KeyFile { public_key: key.public().to_hex(), secret_key: Some(hex::encode(key.secret_bytes())) };
    let json = serde_json::to_string_pretty(&kf).expect("key file serialises");
    write_private(path, json.as_bytes())
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    // `mode` applies only to a file this call creates: an existing one keeps its old mode
    // unless it is set here, before anything secret is written.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {} to its owner: {e}", path.display()))?;
    }
    f.write_all(bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Refuses a secret-key file that group or others may read, as ssh does.
fn check_private(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(|e| format!("cannot read key {}: {e}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "key file {} is readable by others (mode {:04o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            ));
        }
    }
    Ok(())
}

pub fn read_key(path: &Path) -> Result<Keypair, String> {
    check_private(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read key {}: {e}", path.display()))?;
    let kf: KeyFile = serde_json::from_str(&text).map_err(|e| format!("key file {}: {e}", path.display()))?;
    let secret = kf.secret_key.ok_or_else(|| format!("{} holds only a public key", path.display()))?;
    let bytes =
        hex::decode(secret.trim()).map_err(|e| format!("key file {}: secret is not hex: {e}", path.display()))?;
    let key = Keypair::from_secret_bytes(&bytes)?;
    if key.public().to_hex() != kf.public_key.trim() {
        return Err(format!("key file {}: public key does not match the secret key", path.display()));
    }
    Ok(key)
}

/// Reads the public key of a key file (secret part optional).
pub fn read_public_key(path: &Path) -> Result<medledger_types::PublicKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read key {}: {e}", path.display()))?;
    let kf: KeyFile = serde_json::from_str(&text).map_err(|e| format!("key file {}: {e}", path.display()))?;
    medledger_types::PublicKey::from_hex(&kf.public_key)
}

pub fn read_genesis(path: &Path) -> Result<Genesis, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read genesis {}: {e}", path.display()))?;
    Genesis::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn secret_key_files_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let k = Keypair::from_seed(3);
        write_key(&path, &k).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read_key(&path).unwrap().public(), k.public());
        // A world-readable key file is refused, naming the fix.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_key(&path).unwrap_err();
        assert!(e.contains("readable by others") && e.contains("chmod 600"), "{e}");
        // Overwriting it (keygen --force) makes it private again.
        write_key(&path, &k).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // The public key alone is not secret.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read_public_key(&path).unwrap(), k.public());
    }
}
