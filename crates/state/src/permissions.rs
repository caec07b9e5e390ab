//! The single source of truth for who may do what: `principal × operation → allowed`.
//!
//! A principal is the consortium CA (its key comes from genesis) or the role of the signer's
//! valid credential. Scope rules on top of this table live with each operation (for example, an
//! institution admin may only revoke credentials of its own institution); the table alone
//! decides whether the kind of operation is open to the principal at all.
//!
//! | principal          | add_institution | issue_credential | revoke_credential | register_patient | attest | grant_consent | revoke_consent | request_access | respond_access | anchor_record | review_amendment | log_access | request_erasure | confirm_erasure |
//! |--------------------|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|
//! | ca                 |  ✓  |  ✓  |  ✓  |     |     |     |     |     |     |     |     |     |     |     |
//! | patient            |     |     |     |     |     |  ✓  |  ✓  |     |  ✓  |     |  ✓  |     |  ✓  |     |
//! | doctor             |     |     |     |     |  ✓  |     |     |  ✓  |     |  ✓  |     |     |     |     |
//! | institution_admin  |     |     |  ✓  |  ✓  |  ✓  |     |     |     |     |     |     |  ✓  |     |  ✓  |
//! | regulator          |     |     |     |     |  ✓  |     |     |  ✓  |     |     |     |     |     |     |
//! | researcher         |     |     |     |     |  ✓  |     |     |  ✓  |     |     |     |     |     |     |
//! | insurer            |     |     |     |     |  ✓  |     |     |  ✓  |     |     |     |     |     |     |
//! | manufacturer       |     |     |     |     |  ✓  |     |     |     |     |     |     |     |     |     |
//! | distributor        |     |     |     |     |  ✓  |     |     |     |     |     |     |     |     |     |
//! | pharmacy           |     |     |     |     |  ✓  |     |     |     |     |     |     |     |     |     |
//!
//! `medledger query permissions` prints this table from [`PERMISSIONS`], and a test checks that
//! the table above matches it.

use medledger_types::{OpKind, Role};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Principal {
    Ca,
    Role(Role),
}

impl Principal {
    pub const ALL: [Principal; 10] = [
        Principal::Ca,
        Principal::Role(Role::Patient),
        Principal::Role(Role::Doctor),
        Principal::Role(Role::InstitutionAdmin),
        Principal::Role(Role::Regulator),
        Principal::Role(Role::Researcher),
        Principal::Role(Role::Insurer),
        Principal::Role(Role::Manufacturer),
        Principal::Role(Role::Distributor),
        Principal::Role(Role::Pharmacy),
    ];
    pub fn name(self) -> &'static str {
        match self {
            Principal::Ca => "ca",
            Principal::Role(r) => r.name(),
        }
    }
    fn row(self) -> usize {
        match self {
            Principal::Ca => 0,
            Principal::Role(r) => 1 + r.tag() as usize,
        }
    }
}

const Y: bool = true;
const N: bool = false;

/// Rows follow [`Principal::ALL`]; columns follow [`OpKind::ALL`].
pub const PERMISSIONS: [[bool; 14]; 10] = [
    // add iss rvk reg att grc rvc req rsp anc rev log rqe cfe
    [Y, Y, Y, N, N, N, N, N, N, N, N, N, N, N], // ca
    [N, N, N, N, N, Y, Y, N, Y, N, Y, N, Y, N], // patient
    [N, N, N, N, Y, N, N, Y, N, Y, N, N, N, N], // doctor
    [N, N, Y, Y, Y, N, N, N, N, N, N, Y, N, Y], // institution_admin
    [N, N, N, N, Y, N, N, Y, N, N, N, N, N, N], // regulator
    [N, N, N, N, Y, N, N, Y, N, N, N, N, N, N], // researcher
    [N, N, N, N, Y, N, N, Y, N, N, N, N, N, N], // insurer
    [N, N, N, N, Y, N, N, N, N, N, N, N, N, N], // manufacturer
    [N, N, N, N, Y, N, N, N, N, N, N, N, N, N], // distributor
    [N, N, N, N, Y, N, N, N, N, N, N, N, N, N], // pharmacy
];

pub fn allowed(p: Principal, op: OpKind) -> bool {
    let col = OpKind::ALL.iter().position(|k| *k == op).expect("every op kind has a column");
    PERMISSIONS[p.row()][col]
}

/// The table as rows of (principal, [(operation, allowed)]), for display and export.
pub fn table() -> Vec<(Principal, Vec<(OpKind, bool)>)> {
    Principal::ALL
        .iter()
        .map(|p| (*p, OpKind::ALL.iter().map(|k| (*k, allowed(*p, *k))).collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The markdown table in this module's docs must say what the code does.
    #[test]
    fn doc_table_matches_code() {
        let src = include_str!("permissions.rs");
        let mut rows = 0;
        for line in src.lines().filter(|l| l.starts_with("//! | ") && !l.contains("principal") && !l.contains("---")) {
            let cells: Vec<&str> = line.trim_start_matches("//! ").split('|').map(str::trim).collect();
            let name = cells[1];
            let p = Principal::ALL.iter().find(|p| p.name() == name).expect("known principal");
            for (i, k) in OpKind::ALL.iter().enumerate() {
                assert_eq!(cells[2 + i] == "✓", allowed(*p, *k), "{name} × {}", k.name());
            }
            rows += 1;
        }
        assert_eq!(rows, Principal::ALL.len());
    }
}
