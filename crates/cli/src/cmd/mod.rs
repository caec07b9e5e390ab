//! The `medledger` subcommands, one file per domain as in every layer: [`identity`] (keys,
//! genesis, CA tools), [`ledger`] (signed transactions, queries, offline verification),
//! [`consent`], [`records`], [`audit`]; plus the local consortium ([`devnet`]) and the load
//! tools ([`bench`], [`readbench`]). The user-side logic (signing, sealing, wrapping,
//! decrypting, hash checks) lives in `medledger-client`; these files parse arguments and print.

pub mod audit;
pub mod bench;
pub mod care;
pub mod carebench;
pub mod commitbench;
pub mod consent;
pub mod devnet;
pub mod drug;
pub mod drugbench;
pub mod identity;
pub mod ledger;
pub mod readbench;
pub mod records;
pub mod statebench;
pub mod ui;

use clap::Args;
use medledger_client::keys::read_key;
use medledger_client::keys::read_public_key;
use medledger_client::Session;
use medledger_types::PublicKey;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Connection and signer shared by every record command.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Node API address (any node: reads and uploads are forwarded to the record's holder).
    #[arg(long, default_value = "127.0.0.1:7700", env = "MEDLEDGER_NODE")]
    pub node: String,
    /// Key file of the user (it signs every request).
    #[arg(long, env = "MEDLEDGER_KEY")]
    pub key: PathBuf,
}

/// A node client that signs its reads with the connection's key.
pub fn signed_client(c: &Conn) -> Result<medledger_client::http::Client, String> {
    Ok(medledger_client::http::Client::new(&c.node).with_key(read_key(&c.key)?))
}

/// Opens a session for the connection's node and key.
pub fn session(c: &Conn) -> Result<Session, String> {
    Session::open(&c.node, read_key(&c.key)?)
}

/// Prints `v` as one JSON line, or as text for people.
pub fn emit(json_out: bool, v: &Value, human: impl FnOnce(&Value)) {
    if json_out {
        println!("{v}");
    } else {
        human(v);
    }
}

/// Prints `v` as pretty JSON, or as text for people.
pub fn print(json_out: bool, v: &Value, human: impl FnOnce(&Value)) {
    if json_out {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        human(v)
    }
}

/// Writes `bytes` to `out` readable by its owner only (it may be plaintext health data), or
/// prints them.
pub fn write_or_print(out: &Option<PathBuf>, bytes: &[u8]) -> Result<(), String> {
    match out {
        Some(p) => medledger_client::keys::write_private(p, bytes),
        None => {
            use std::io::Write;
            let mut o = std::io::stdout();
            o.write_all(bytes).and_then(|_| o.write_all(b"\n")).map_err(|e| e.to_string())
        }
    }
}

/// The first 16 characters of a JSON string (whatever the node sent, never a panic).
pub fn short(v: &Value) -> String {
    v.as_str().unwrap_or("").chars().take(16).collect()
}

/// A subject given as a key file path or a hex public key.
pub fn parse_subject(s: &str) -> Result<PublicKey, String> {
    let p = Path::new(s);
    if p.exists() {
        read_public_key(p)
    } else {
        PublicKey::from_hex(s).map_err(|e| format!("--subject `{s}` is neither a key file nor a hex key: {e}"))
    }
}
