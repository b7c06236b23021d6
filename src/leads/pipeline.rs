//! The sales pipeline's vocabulary: statuses and priorities, and the rules
//! for moving a lead between statuses.

use crate::error::AppError;

/// Where a lead stands. New leads start `new`; `converted` is reached only by
/// converting the lead to a student (which links the student), and a
/// converted lead stays converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    New,
    Contacted,
    Qualified,
    Converted,
    Lost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    Low,
    Medium,
    High,
}

/// A closed set of lowercase names, as stored in the database (the
/// migration's CHECK constraints hold the same lists).
pub trait Vocabulary: Sized + Copy + PartialEq + 'static {
    const ALL: &'static [Self];
    fn name(self) -> &'static str;

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == text)
    }

    /// "new, contacted, qualified, converted, lost"
    fn allowed() -> String {
        Self::ALL
            .iter()
            .map(|v| v.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Parses a value of the field `field`, naming the allowed values when
    /// it is not one of them.
    fn parse_field(field: &str, text: &str) -> Result<Self, String> {
        Self::parse(text)
            .ok_or_else(|| format!("{field} must be one of {}, got '{text}'", Self::allowed()))
    }
}

impl Vocabulary for Status {
    const ALL: &'static [Status] = &[
        Status::New,
        Status::Contacted,
        Status::Qualified,
        Status::Converted,
        Status::Lost,
    ];

    fn name(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Contacted => "contacted",
            Status::Qualified => "qualified",
            Status::Converted => "converted",
            Status::Lost => "lost",
        }
    }
}

impl Vocabulary for Priority {
    const ALL: &'static [Priority] = &[Priority::Low, Priority::Medium, Priority::High];

    fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
        }
    }
}

/// Whether staff may move a lead from `from` to `to` by editing it.
/// `converted` needs a student, so it is reached through conversion only;
/// once converted, the student link is permanent and so is the status. Any
/// other move is allowed, including re-opening a `lost` lead.
pub fn check_transition(lead_id: i64, from: &str, to: Status) -> Result<(), AppError> {
    if from == to.name() {
        return Ok(());
    }
    if from == Status::Converted.name() {
        return Err(AppError::Conflict(format!(
            "lead {lead_id} is converted to a student; its status cannot change"
        )));
    }
    if to == Status::Converted {
        return Err(AppError::Unprocessable(format!(
            "status 'converted' is set by POST /api/admin/leads/{lead_id}/convert, \
             which links the student; by editing, status can be new, contacted, qualified or lost"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_status_names_the_allowed_values() {
        let e = Status::parse_field("status", "won").unwrap_err();
        assert_eq!(
            e,
            "status must be one of new, contacted, qualified, converted, lost, got 'won'"
        );
        assert_eq!(Priority::parse("high"), Some(Priority::High));
        assert_eq!(Priority::parse("High"), None);
    }

    #[test]
    fn converted_is_reached_by_conversion_only_and_kept() {
        assert!(check_transition(1, "new", Status::Contacted).is_ok());
        assert!(check_transition(1, "lost", Status::New).is_ok());
        assert!(check_transition(1, "converted", Status::Converted).is_ok());
        assert!(matches!(
            check_transition(1, "qualified", Status::Converted),
            Err(AppError::Unprocessable(_))
        ));
        assert!(matches!(
            check_transition(1, "converted", Status::Lost),
            Err(AppError::Conflict(_))
        ));
    }
}
