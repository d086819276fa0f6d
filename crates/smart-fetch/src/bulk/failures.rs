//! Files of a bulk export that could not be downloaded, and the summary a run ends with.
//!
//! One file that fails does not stop the others: every file that can be downloaded is, and
//! the run then ends with one line per kind of failure and a total (exit code 3). The
//! export stays unfinished — its status URL and the journal of finished files are kept,
//! no type is marked done, the server's job is not deleted — so the same command again
//! downloads only the files still missing.

use super::trust::Refusal;
use crate::text::printable;
use std::collections::BTreeMap;

/// Why one file is missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Not asked for at all (see `trust`).
    Refused(Refusal),
    /// Asked for, and still failing after its tries (server or network).
    Failed(String),
}

impl Reason {
    fn kind(&self) -> &'static str {
        match self {
            Reason::Refused(refusal) => refusal.kind(),
            Reason::Failed(_) => "failed after retries (server or network)",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Failure {
    /// The file's URL, as the manifest gave it.
    pub url: String,
    pub reason: Reason,
}

impl Failure {
    /// What happened to this file, in one line.
    fn line(&self) -> String {
        let url = printable(&self.url);
        match &self.reason {
            Reason::Refused(refusal) => format!("Not downloading '{url}': {refusal}."),
            Reason::Failed(message) => {
                format!("Error downloading '{url}': {}", printable(message))
            }
        }
    }
}

fn files(n: usize) -> String {
    if n == 1 {
        "1 file".to_string()
    } else {
        format!("{} files", crate::console::thousands(n as u64))
    }
}

/// One line per missing file (why), then `<n> file(s) <kind>` per kind (in a fixed order),
/// then the total of `of` files. Printed at the command's edge, as its error message.
pub fn summary(failures: &[Failure], of: usize) -> String {
    let mut kinds: BTreeMap<&'static str, usize> = BTreeMap::new();
    for failure in failures {
        *kinds.entry(failure.reason.kind()).or_default() += 1;
    }
    let mut lines: Vec<String> = failures.iter().map(Failure::line).collect();
    lines.extend(
        kinds
            .into_iter()
            .map(|(kind, n)| format!("{} {kind}", files(n))),
    );
    lines.push(format!(
        "{} of {} in the bulk export manifest not downloaded; the export is not finished. \
         Run the same command again to retry only the missing files.",
        files(failures.len()),
        crate::console::thousands(of as u64),
    ));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_and_a_total() {
        let failure = |reason| Failure {
            url: "https://ehr/f".into(),
            reason,
        };
        let failures = [
            failure(Reason::Failed("boom".into())),
            failure(Reason::Refused(Refusal::Scheme("file".into()))),
            failure(Reason::Failed("other".into())),
        ];
        assert_eq!(
            summary(&failures, 1200),
            "Error downloading 'https://ehr/f': boom\n\
             Not downloading 'https://ehr/f': only http and https URLs are downloaded, not 'file:'.\n\
             Error downloading 'https://ehr/f': other\n\
             2 files failed after retries (server or network)\n\
             1 file refused: not an http(s) URL\n\
             3 files of 1,200 in the bulk export manifest not downloaded; the export is not \
             finished. Run the same command again to retry only the missing files."
        );
    }
}
