//! MedLedger's wire types: transactions, blocks, receipts and the genesis file, with their one
//! canonical binary encoding, domain-separated hashing and RFC 9162 Merkle proofs.
//!
//! This crate does no I/O. Everything the node signs, hashes or stores is defined here.

pub mod block;
pub mod codec;
pub mod fuzz;
pub mod genesis;
pub mod hash;
pub mod keys;
pub mod merkle;
pub mod read;
pub mod time;
pub mod receipt;
pub mod tx;

pub use block::{Block, BlockHeader};
pub use codec::{Canonical, DecodeError};
pub use genesis::{patient_pseudonym, Genesis, GenesisInstitution};
pub use hash::Hash;
pub use keys::{Keypair, PublicKey, Signature};
pub use receipt::{Event, Outcome, Receipt, RejectCode};
pub use tx::{action, AccessOutcome, ConsentTerms, CredentialSpec, Grantee, OpKind, Operation, Purpose, Role, Scope, Transaction, Tx};
