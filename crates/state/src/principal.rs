//! Who signs: the consortium CA or the role of a valid credential, and the shape of a domain's
//! rows in the permission table. The domains declare their rows with these; `permissions`
//! assembles them (so the domains never import the assembler).

use medledger_types::Role;
use serde::{Deserialize, Serialize};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Principal {
    Ca,
    Role(Role),
}

impl Principal {
    pub const ALL: [Principal; 11] = [
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
        Principal::Role(Role::NodeService),
    ];
    pub fn name(self) -> &'static str {
        match self {
            Principal::Ca => "ca",
            Principal::Role(r) => r.name(),
        }
    }
    pub(crate) fn row(self) -> usize {
        match self {
            Principal::Ca => 0,
            Principal::Role(r) => 1 + r.tag() as usize,
        }
    }
}

/// An allowed cell.
pub(crate) const Y: bool = true;
/// A refused cell.
pub(crate) const N: bool = false;

/// One domain's part of the table: one row per principal (in [`Principal::ALL`] order), one
/// cell per operation kind of the domain (in `medledger_types::Domain::kinds` order).
pub type Rows<const K: usize> = [[bool; K]; Principal::ALL.len()];
