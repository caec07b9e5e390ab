//! The vault over any `object_store` backend: an S3-compatible bucket in production (feature
//! `s3`), or the in-memory store in tests. Names map one-to-one onto object paths under a prefix.
//!
//! [`BlobStore`] is synchronous (the vault runs on blocking threads); this adapter drives the
//! async `ObjectStore` on a small runtime of its own. Never call it from inside an async task.

use crate::store::{check_name, BlobStore, StoreError};
use futures::TryStreamExt as _;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use std::sync::Arc;

pub struct ObjectStoreBlobs {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    rt: tokio::runtime::Runtime,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(std::io::Error::other(e.to_string()))
}

impl ObjectStoreBlobs {
    /// Wraps `store`; every object lives under `prefix` (may be empty).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<ObjectStoreBlobs, StoreError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(StoreError::Io)?;
        Ok(ObjectStoreBlobs { store, prefix: prefix.trim_matches('/').to_string(), rt })
    }

    /// Opens a store from a URL such as `s3://bucket/prefix`, with options (endpoint, region,
    /// credentials) from `options` and the standard `AWS_*` environment variables.
    #[cfg(feature = "s3")]
    pub fn from_url(url: &str, options: &[(String, String)]) -> Result<ObjectStoreBlobs, StoreError> {
        let u = url::Url::parse(url).map_err(|e| StoreError::Name(format!("{url}: {e}")))?;
        let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(url);
        for (k, v) in options {
            let key: object_store::aws::AmazonS3ConfigKey =
                k.parse().map_err(|e| StoreError::Name(format!("option `{k}`: {e}")))?;
            b = b.with_config(key, v);
        }
        let store = b.build().map_err(io)?;
        ObjectStoreBlobs::new(Arc::new(store), u.path())
    }

    fn path(&self, name: &str) -> Result<ObjPath, StoreError> {
        check_name(name)?;
        Ok(ObjPath::from(if self.prefix.is_empty() { name.to_string() } else { format!("{}/{name}", self.prefix) }))
    }
}

impl BlobStore for ObjectStoreBlobs {
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let p = self.path(name)?;
        // A single PUT is atomic on S3-compatible stores: readers see the old or the new object.
        self.rt.block_on(self.store.put(&p, PutPayload::from(bytes.to_vec()))).map_err(io)?;
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let p = self.path(name)?;
        self.rt.block_on(async {
            match self.store.get(&p).await {
                Ok(r) => Ok(Some(r.bytes().await.map_err(io)?.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(io(e)),
            }
        })
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        let p = self.path(name)?;
        self.rt.block_on(async {
            match self.store.delete(&p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(io(e)),
            }
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let p = self.path(prefix.trim_end_matches('/'))?;
        let strip = if self.prefix.is_empty() { 0 } else { self.prefix.len() + 1 };
        let mut out: Vec<String> = self.rt.block_on(async {
            self.store
                .list(Some(&p))
                .map_ok(|m| m.location.as_ref()[strip..].to_string())
                .try_collect()
                .await
                .map_err(io)
        })?;
        out.sort();
        Ok(out)
    }
}
