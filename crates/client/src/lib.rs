//! The user's side of MedLedger, shared by the CLI, the bench tools and the web UI.
//!
//! Everything sensitive happens here, on the user's machine: key files, signing transactions and
//! requests, FHIR checks, sealing, wrapping data keys, unwrapping and decrypting, and checking
//! plaintext against the hash anchored on chain. Nodes see ciphertext and wrapped keys only.
//!
//! One module per domain, as in every layer: [`records`], [`consent`], [`audit`] add their
//! operations to [`Session`]; [`tx`] signs and submits; [`http`] talks to a node; [`keys`] reads
//! and writes key files.

pub mod audit;
pub mod consent;
pub mod http;
pub mod records;
pub mod session;
pub mod tx;

/// Key files and the genesis file.
pub mod keys {
    pub use medledger_vault::keyfile::{read_genesis, read_key, read_public_key, write_key, write_private, KeyFile};
}

pub use http::Client;
pub use session::Session;
