//! The MedLedger validator node: consensus and p2p (Commonware), mempool, execution and
//! storage glue, the REST API, and offline verification.

pub mod api;
pub mod audit;
pub mod care;
pub mod chain;
pub mod consensus;
pub mod error;
pub mod guard;
pub mod mempool;
pub mod records;
pub mod run;
pub mod tls;
pub mod verify;
pub mod visibility;
pub mod wal;

pub use chain::Chain;
