//! MedLedger's wire types: transactions, blocks, receipts and the genesis file, with their one
//! canonical binary encoding, domain-separated hashing and RFC 9162 Merkle proofs.
//!
//! This crate does no I/O. Everything the node signs, hashes or stores is defined here.

pub mod audit;
pub mod auth;
pub mod block;
pub mod care;
pub mod certificate;
pub mod codec;
pub mod conformance;
pub mod consent;
pub mod drugs;
pub mod error;
pub mod fuzz;
pub mod genesis;
pub mod hash;
pub mod identity;
pub mod inclusion;
pub mod keys;
pub mod limits;
pub mod merkle;
pub mod note;
pub mod read;
pub mod receipt;
pub mod records;
#[cfg(feature = "openapi")]
pub mod schema;
pub mod state_proof;
pub mod time;
pub mod tx;

pub use block::{Block, BlockHeader};
pub use codec::{Canonical, DecodeError};
pub use error::ErrorCode;
pub use genesis::{patient_pseudonym, Genesis, GenesisInstitution};
pub use hash::Hash;
pub use keys::{Keypair, PublicKey, Signature};
pub use note::{NoteKey, SealedNote};
pub use receipt::{Event, Outcome, Receipt, RejectCode};
pub use state_proof::{ProvenEntry, StateProof};
pub use tx::{
    action, AccessOutcome, AuditOp, CareOp, ConsentOp, ConsentTerms, CredentialSpec, Domain, DrugsOp, Grantee,
    IdentityOp, OpKind, Operation, Purpose, RecordsOp, Role, Scope, Transaction, Tx,
};
