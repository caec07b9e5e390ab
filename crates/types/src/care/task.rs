//! The referral's workflow: a FHIR R4 `Task` fulfilling the referral's `ServiceRequest`.
//!
//! ```text
//! requested ──accept──▶ accepted ──start──▶ in-progress ──complete(output)──▶ completed
//!     │                    │                    └──────fail(reason)─────────▶ failed
//!     └──reject(reason)──▶ rejected
//! any non-terminal state ──cancel (requester)──▶ cancelled
//! ```
//!
//! Only the fulfilling institution moves the status forward; the requester may cancel.
//! Rejecting and failing need a reason; completing needs an output (the consultation report,
//! anchored as a record version). Terminal states never change again.

use crate::Hash;
use serde::{Deserialize, Serialize};
use std::fmt;

/// FHIR `Task.status` (the subset a referral uses), in its FHIR spelling.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    Requested,
    Accepted,
    Rejected,
    InProgress,
    Completed,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Requested,
        TaskStatus::Accepted,
        TaskStatus::Rejected,
        TaskStatus::InProgress,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Requested => "requested",
            TaskStatus::Accepted => "accepted",
            TaskStatus::Rejected => "rejected",
            TaskStatus::InProgress => "in-progress",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// No transition leaves a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Rejected | TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who asks for a transition, relative to the task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Party {
    /// The referring side (`Task.requester`).
    Requester,
    /// The receiving institution (`Task.owner`).
    Fulfiller,
    /// Anyone else, the patient included: they approve the referral, not its workflow.
    Other,
}

/// A requested change of the task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum Action {
    Accept,
    Reject {
        reason: String,
    },
    Start,
    /// `output`: the record version of the consultation report.
    Complete {
        output: Hash,
    },
    Fail {
        reason: String,
    },
    Cancel {
        reason: String,
    },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Reject { .. } => "reject",
            Action::Start => "start",
            Action::Complete { .. } => "complete",
            Action::Fail { .. } => "fail",
            Action::Cancel { .. } => "cancel",
        }
    }
}

/// Why a transition is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskError {
    /// The action does not leave this state (terminal, or not an edge of the workflow).
    NotFrom { status: TaskStatus, action: &'static str },
    /// The action is this party's to take.
    NotYours { party: Party, action: &'static str },
    /// Rejecting, failing and cancelling name a reason.
    NeedsReason { action: &'static str },
    /// A reason over [`MAX_REASON_BYTES`].
    ReasonTooLong { bytes: usize },
    /// Completing needs the report's record version.
    NeedsOutput,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::NotFrom { status, action } => write!(f, "a {status} referral cannot {action}"),
            TaskError::NotYours { party, action } => {
                let who = match party {
                    Party::Requester => "the requester",
                    Party::Fulfiller => "the receiving institution",
                    Party::Other => "a party to neither side",
                };
                let owner = if *action == "cancel" { "the requester" } else { "the receiving institution" };
                write!(f, "{who} may not {action} a referral; only {owner} may")
            }
            TaskError::NeedsReason { action } => write!(f, "to {action} a referral, give a reason"),
            TaskError::ReasonTooLong { bytes } => {
                write!(f, "the reason is {bytes} bytes; at most {MAX_REASON_BYTES}")
            }
            TaskError::NeedsOutput => write!(f, "a completed referral needs its output: the consultation report"),
        }
    }
}

impl std::error::Error for TaskError {}

/// Most bytes of a transition's reason.
pub const MAX_REASON_BYTES: usize = 512;

/// The status after `party` takes `action` on a task in `status`, or why not. Checks, in order:
/// the edge exists, the party may take it, its payload is complete.
pub fn transition(status: TaskStatus, party: Party, action: &Action) -> Result<TaskStatus, TaskError> {
    use TaskStatus::*;
    let name = action.name();
    let to = match (status, action) {
        (s, _) if s.is_terminal() => return Err(TaskError::NotFrom { status, action: name }),
        (Requested, Action::Accept) => Accepted,
        (Requested, Action::Reject { .. }) => Rejected,
        (Accepted, Action::Start) => InProgress,
        (InProgress, Action::Complete { .. }) => Completed,
        (InProgress, Action::Fail { .. }) => Failed,
        (_, Action::Cancel { .. }) => Cancelled,
        _ => return Err(TaskError::NotFrom { status, action: name }),
    };
    let owner = if matches!(action, Action::Cancel { .. }) { Party::Requester } else { Party::Fulfiller };
    if party != owner {
        return Err(TaskError::NotYours { party, action: name });
    }
    match action {
        Action::Reject { reason } | Action::Fail { reason } | Action::Cancel { reason } if reason.trim().is_empty() => {
            Err(TaskError::NeedsReason { action: name })
        }
        Action::Reject { reason } | Action::Fail { reason } | Action::Cancel { reason }
            if reason.len() > MAX_REASON_BYTES =>
        {
            Err(TaskError::ReasonTooLong { bytes: reason.len() })
        }
        Action::Complete { output } if *output == Hash::ZERO => Err(TaskError::NeedsOutput),
        _ => Ok(to),
    }
}
