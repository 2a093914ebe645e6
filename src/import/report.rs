//! What an import tells its user: notes, warnings and refusals, each with the place in the
//! original it is about (`FILE:LINE`, or a command-line argument).
//!
//! Only warnings and refusals mean that something was not carried over (exit status 5);
//! notes say how something was carried over when that differs in form or detail.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Carried over, in another form or with a difference the user should know.
    Note,
    /// Not carried over: written as a comment only.
    Warning,
    /// A whole job could not be carried over and was not written.
    Refused,
    /// The original could not be read or evaluated at all.
    Error,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Refused => "refused",
            Severity::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// Where in the original: `FILE:LINE`, `FILE`, `argument -p`.
    pub at: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.at,
            self.severity.as_str(),
            self.message
        )
    }
}

/// The findings of one import, in the order they were made.
#[derive(Debug, Default, Clone)]
pub struct Findings(Vec<Finding>);

impl Findings {
    pub fn push(&mut self, severity: Severity, at: impl Into<String>, message: impl Into<String>) {
        self.0.push(Finding {
            severity,
            at: at.into(),
            message: message.into(),
        });
    }

    pub fn note(&mut self, at: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Note, at, message);
    }

    pub fn warn(&mut self, at: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Warning, at, message);
    }

    pub fn refuse(&mut self, at: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Refused, at, message);
    }

    pub fn error(&mut self, at: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Error, at, message);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Finding> {
        self.0.iter()
    }

    pub fn extend(&mut self, other: Findings) {
        self.0.extend(other.0);
    }

    /// True when something was not carried over (a warning, a refusal or an error).
    pub fn lost_something(&self) -> bool {
        self.0.iter().any(|f| f.severity >= Severity::Warning)
    }

    /// The findings of `severity`.
    pub fn of(&self, severity: Severity) -> impl Iterator<Item = &Finding> {
        self.0.iter().filter(move |f| f.severity == severity)
    }
}
