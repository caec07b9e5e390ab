//! The single source of truth for who may do what: `principal × operation → allowed`.
//!
//! A principal is the consortium CA (its key comes from genesis) or the role of the signer's
//! valid credential. Scope rules on top of this table live with each operation (for example, an
//! institution admin may only revoke credentials of its own institution); the table alone
//! decides whether the kind of operation is open to the principal at all.
//!
//! Each domain owns its part of the table, next to the code that executes its operations, as a
//! markdown table in its module docs and a `PERMISSIONS` constant that a test checks against
//! it: [`crate::identity`], [`crate::consent`], [`crate::records`], [`crate::audit`]. [`allowed`]
//! dispatches on the operation's domain with an exhaustive match, so a new domain cannot be
//! forgotten here.
//!
//! `medledger query permissions` prints this table from [`PERMISSIONS`], and a test checks that
//! the table above matches it.

pub use crate::principal::{Principal, Rows};
use medledger_types::{Domain, OpKind};

fn domain_row(p: Principal, d: Domain) -> &'static [bool] {
    let r = p.row();
    match d {
        Domain::Identity => &crate::identity::PERMISSIONS[r],
        Domain::Consent => &crate::consent::PERMISSIONS[r],
        Domain::Records => &crate::records::PERMISSIONS[r],
        Domain::Audit => &crate::audit::PERMISSIONS[r],
        Domain::Drugs => &crate::drugs::PERMISSIONS[r],
        Domain::Care => &crate::care::PERMISSIONS[r],
    }
}

pub fn allowed(p: Principal, op: OpKind) -> bool {
    let d = op.domain();
    let col = d.kinds().iter().position(|k| *k == op).expect("every op kind is listed by its domain");
    domain_row(p, d)[col]
}

/// The table as rows of (principal, [(operation, allowed)]), for display and export.
pub fn table() -> Vec<(Principal, Vec<(OpKind, bool)>)> {
    Principal::ALL.iter().map(|p| (*p, OpKind::ALL.iter().map(|k| (*k, allowed(*p, *k))).collect())).collect()
}

/// Checks a domain's markdown permission table (in `src`, its module source) against the code.
#[cfg(test)]
pub(crate) fn check_doc_table(src: &str, domain: Domain) {
    let mut rows = 0;
    let kinds = domain.kinds();
    for line in src.lines().filter(|l| l.starts_with("//! | ")) {
        let cells: Vec<&str> = line.trim_start_matches("//! ").split('|').map(str::trim).collect();
        if cells[1] == "principal" {
            let header: Vec<&str> = cells[2..cells.len() - 1].to_vec();
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            assert_eq!(header, names, "{} table columns", domain.name());
            continue;
        }
        if cells[1].starts_with('-') {
            continue;
        }
        let name = cells[1];
        let p = Principal::ALL.iter().find(|p| p.name() == name).expect("known principal");
        assert_eq!(cells.len() - 3, kinds.len(), "{} row of {}", name, domain.name());
        for (i, k) in kinds.iter().enumerate() {
            assert_eq!(cells[2 + i] == "✓", allowed(*p, *k), "{name} × {}", k.name());
        }
        rows += 1;
    }
    assert_eq!(rows, Principal::ALL.len(), "{} table rows", domain.name());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole table has one column per operation kind, and the CA row is what genesis needs.
    #[test]
    fn table_covers_every_kind() {
        let t = table();
        assert_eq!(t.len(), Principal::ALL.len());
        assert!(t.iter().all(|(_, cells)| cells.len() == OpKind::ALL.len()));
        assert!(allowed(Principal::Ca, OpKind::AddInstitution));
        assert!(!allowed(Principal::Ca, OpKind::AnchorRecord));
    }
}
