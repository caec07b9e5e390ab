//! The user's side of MedLedger, shared by the CLI, the bench tools and the web UI.
//!
//! Everything sensitive happens here, on the user's machine: key files, signing transactions and
//! requests, FHIR checks, sealing, wrapping data keys, unwrapping and decrypting, and checking
//! plaintext against the hash anchored on chain. Nodes see ciphertext and wrapped keys only.
//!
//! One module per domain, as in every layer: [`records`], [`consent`], [`audit`] add their
//! operations to [`Session`]; [`tx`] signs and submits; [`http`] talks to the nodes (failing
//! over from one to the next); [`light`] verifies what they say against the genesis validators;
//! [`keys`] reads and writes key files.
//!
//! Every security decision uses verified state only: which keys a data key is wrapped for (the
//! patient's key and the consents, proven; the holder's key, from the genesis file), whether a
//! consent is in force, and whether a plaintext matches its anchor (the anchor, proven).

pub mod audit;
pub mod care;
pub mod consent;
pub mod drugs;
pub mod http;
pub mod light;
pub mod progress;
pub mod records;
pub mod session;
pub mod tx;

/// Key files and the genesis file.
pub mod keys {
    pub use medledger_vault::keyfile::{read_genesis, read_key, read_public_key, write_key, write_private, KeyFile};
}

pub use http::Client;
pub use session::Session;
