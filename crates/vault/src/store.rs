//! Where the vault keeps its bytes: a small trait, with a filesystem store as the embedded
//! default. Each object is one file, written atomically (temporary file, fsync, rename), and
//! deleting an object unlinks its file, so erased content is in no file of the vault.

use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("vault storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid object name `{0}`")]
    Name(String),
}

/// A flat namespace of named blobs; names are `[a-z0-9/]` paths made by the vault.
pub trait BlobStore: Send + Sync + 'static {
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError>;
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes; deleting a missing object is not an error.
    fn delete(&self, name: &str) -> Result<(), StoreError>;
    /// Names under `prefix`.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
}

/// The one naming rule of every store: relative `[a-z0-9/.-]` paths without `..`.
pub(crate) fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && !name.starts_with('/')
        && !name.contains("..")
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'/' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Name(name.to_string()))
    }
}

/// A store chosen at run time (the embedded filesystem or an object store).
impl BlobStore for Box<dyn BlobStore> {
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        (**self).put(name, bytes)
    }
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(name)
    }
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        (**self).delete(name)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        (**self).list(prefix)
    }
}

/// The embedded default: one file per object under a root directory.
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    pub fn open(root: &Path) -> Result<FsStore, StoreError> {
        std::fs::create_dir_all(root)?;
        Ok(FsStore { root: root.to_path_buf() })
    }

    fn path(&self, name: &str) -> Result<PathBuf, StoreError> {
        check_name(name)?;
        Ok(self.root.join(name))
    }
}

impl BlobStore for FsStore {
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(name)?;
        let dir = path.parent().expect("object paths have a parent");
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".tmp-{}", rand_suffix()));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match std::fs::read(self.path(name)?) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        let path = self.path(name)?;
        match std::fs::remove_file(&path) {
            // The unlink is durable once the directory is synced.
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    std::fs::File::open(dir)?.sync_all()?;
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let base = self.path(prefix.trim_end_matches('/'))?;
        if !base.exists() {
            return Ok(out);
        }
        let mut stack = vec![base];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d)? {
                let p = e?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".tmp-")) {
                    let rel = p.strip_prefix(&self.root).expect("under root").to_string_lossy().replace('\\', "/");
                    out.push(rel);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

fn rand_suffix() -> String {
    use rand::Rng as _;
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}
