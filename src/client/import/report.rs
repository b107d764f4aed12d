//! The summary `import-sanplex` prints: one line per row or setting, then the counts.

use std::fmt;

use crate::client::api::ApiError;

/// How one row (or setting) went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Created,
    Updated,
    Unchanged,
    Skipped,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }
}

/// The summary printed at the end.
#[derive(Debug, Default)]
pub(super) struct Report {
    lines: Vec<(Outcome, String, String)>,
    /// The server refused the token mid-way.
    auth_refused: bool,
}

impl Report {
    pub(super) fn add(
        &mut self,
        outcome: Outcome,
        what: impl Into<String>,
        why: impl Into<String>,
    ) {
        self.lines.push((outcome, what.into(), why.into()));
    }

    fn count(&self, o: Outcome) -> usize {
        self.lines.iter().filter(|(x, _, _)| *x == o).count()
    }

    /// Records an API failure; a refused token also ends the run with exit 2.
    pub(super) fn failed(&mut self, what: impl Into<String>, e: ApiError) {
        if matches!(e, ApiError::Unauthorized { .. }) {
            self.auth_refused = true;
        }
        self.add(Outcome::Failed, what, e.to_string());
    }

    /// 2 when the server refused the token, 1 when any row failed, else 0.
    pub(super) fn exit_code(&self) -> i32 {
        if self.auth_refused {
            2
        } else if self.count(Outcome::Failed) > 0 {
            1
        } else {
            0
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (o, what, why) in &self.lines {
            if why.is_empty() {
                writeln!(f, "{:<9} {what}", o.as_str())?;
            } else {
                writeln!(f, "{:<9} {what}: {why}", o.as_str())?;
            }
        }
        writeln!(
            f,
            "summary: {} created, {} updated, {} unchanged, {} skipped, {} failed",
            self.count(Outcome::Created),
            self.count(Outcome::Updated),
            self.count(Outcome::Unchanged),
            self.count(Outcome::Skipped),
            self.count(Outcome::Failed)
        )
    }
}
