//! What a crawl did not get, for the person running it: why a search chain failed, which
//! types were stopped because the server returned other patients' data, and what was left
//! out of the answers. The engine tallies every chain here; the command prints the lines
//! and picks the exit status. Never decides what is written or retried.

use crate::resources::ResourceType;
use std::collections::BTreeMap;

/// Why one search chain failed. A failed chain writes nothing but its OperationOutcome and
/// is searched again by the next run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureKind {
    /// The server answered with an HTTP error (after retries, where retryable).
    Http(u16),
    /// No answer, or the connection broke (after retries).
    Transport,
    /// An answer that could not be used: invalid or cut-off JSON.
    Unusable,
    /// A link the engine refused to follow (another origin, another scheme) or an answer
    /// over `--max-body-size`.
    Refused,
    /// A 200 whose body is not a Bundle (an OperationOutcome, or anything else).
    NotBundle,
    /// An OperationOutcome entry of severity `error` or `fatal` inside a search page: the
    /// server says the results are not whole.
    ErrorInPage,
    /// A `next` link leading back to a page of the same search.
    PageLoop,
    /// More pages than `search::MAX_PAGES`.
    TooManyPages,
}

impl FailureKind {
    pub(crate) fn because(self) -> String {
        match self {
            FailureKind::Http(status) => format!("the server answered HTTP {status}"),
            FailureKind::Transport => {
                "the server could not be reached or the connection broke".into()
            }
            FailureKind::Unusable => {
                "the answer could not be used (e.g. invalid or cut-off JSON)".into()
            }
            FailureKind::Refused => {
                "the tool refused a link or answer (a link to another server, or an answer over --max-body-size)".into()
            }
            FailureKind::NotBundle => {
                "the server answered with something other than a search Bundle".into()
            }
            FailureKind::ErrorInPage => "the server reported an error inside a search page".into(),
            FailureKind::PageLoop => "the server's next links went round in a circle".into(),
            FailureKind::TooManyPages => format!(
                "a search ran past {} pages",
                crate::console::thousands(super::search::MAX_PAGES as u64)
            ),
        }
    }
}

/// How one chain ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainOutcome {
    Complete,
    Failed(FailureKind),
    /// A resource of another patient (or of none) came back: the server ignored
    /// `patient=`. The detail names the resource and patients for the message.
    Foreign(String),
}

/// Entries left out of answers that were otherwise fine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Entry type (as the server spelled it, capped) → count, for entries of a type the
    /// search did not ask for.
    pub wrong_type: BTreeMap<String, u64>,
    /// Patients a lookup returned that lack the identifier (or id) looked up.
    pub unmatched_patients: u64,
}

/// Distinct wrong type names kept per chain and per run; a server inventing names cannot
/// grow memory.
const MAX_TYPE_NAMES: usize = 16;

impl Dropped {
    pub fn wrong_type(&mut self, name: &str) {
        let name =
            match self.wrong_type.contains_key(name) || self.wrong_type.len() < MAX_TYPE_NAMES {
                true => name,
                false => "other types",
            };
        *self.wrong_type.entry(name.to_string()).or_default() += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.wrong_type.is_empty() && self.unmatched_patients == 0
    }
}

/// Everything a run did not get, tallied chain by chain.
#[derive(Default)]
pub struct CrawlReport {
    /// Kind → type → failed chains.
    failed: BTreeMap<FailureKind, BTreeMap<ResourceType, u64>>,
    /// Types stopped because the server returned other patients' data, with the first
    /// offending resource.
    stopped: BTreeMap<ResourceType, String>,
    /// (searched type, entry type) → entries left out.
    wrong_type: BTreeMap<(ResourceType, String), u64>,
    unmatched_patients: u64,
}

impl CrawlReport {
    pub fn note(&mut self, t: ResourceType, outcome: &ChainOutcome, dropped: &Dropped) {
        match outcome {
            ChainOutcome::Complete => {}
            ChainOutcome::Failed(kind) => {
                *self.failed.entry(*kind).or_default().entry(t).or_default() += 1;
            }
            ChainOutcome::Foreign(detail) => {
                self.stopped.entry(t).or_insert_with(|| detail.clone());
            }
        }
        for (name, n) in &dropped.wrong_type {
            let names = self.wrong_type.keys().filter(|(s, _)| *s == t).count();
            let key = (t, name.clone());
            let key = if self.wrong_type.contains_key(&key) || names < MAX_TYPE_NAMES {
                key
            } else {
                (t, "other types".to_string())
            };
            *self.wrong_type.entry(key).or_default() += n;
        }
        self.unmatched_patients += dropped.unmatched_patients;
    }

    /// Types with at least one failed chain.
    pub fn failed_types(&self) -> std::collections::BTreeSet<ResourceType> {
        self.failed
            .values()
            .flat_map(|by_type| by_type.keys().copied())
            .collect()
    }

    /// Failed chains per type, whatever the kind (Patient: failed ID lookups).
    pub fn failed_by_type(&self) -> BTreeMap<ResourceType, u64> {
        let mut totals = BTreeMap::new();
        for by_type in self.failed.values() {
            for (t, n) in by_type {
                *totals.entry(*t).or_default() += n;
            }
        }
        totals
    }

    pub fn is_stopped(&self, t: ResourceType) -> bool {
        self.stopped.contains_key(&t)
    }

    pub fn has_stopped(&self) -> bool {
        !self.stopped.is_empty()
    }

    pub fn has_failures(&self) -> bool {
        !self.failed.is_empty()
    }

    /// Lines about entries left out of otherwise good answers (printed whatever the
    /// outcome; they never make a run fail).
    pub fn notes(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.wrong_type.is_empty() {
            let total: u64 = self.wrong_type.values().sum();
            let parts: Vec<String> = self
                .wrong_type
                .iter()
                .map(|((searched, name), n)| {
                    format!(
                        "{} in {searched} searches: {n}",
                        crate::text::printable(name)
                    )
                })
                .collect();
            lines.push(format!(
                "Left out {} {} of a type the search did not ask for ({}).",
                crate::console::thousands(total),
                plural(total, "entry", "entries"),
                parts.join(", ")
            ));
        }
        if self.unmatched_patients > 0 {
            let n = self.unmatched_patients;
            lines.push(format!(
                "Left out {} {} that a lookup returned without the ID it asked for (not crawled).",
                crate::console::thousands(n),
                plural(n, "Patient", "Patients")
            ));
        }
        lines
    }

    /// One line per stopped type, one per kind of failure, then the total and what to do.
    /// `accepted`: the failures were accepted with `--allow-incomplete`.
    pub fn failure_lines(&self, accepted: bool) -> Vec<String> {
        let mut lines: Vec<String> = self
            .stopped
            .iter()
            .map(|(t, detail)| {
                format!(
                    "The server ignored `patient=` for {t}: it returned other patients' data \
                     ({}). Nothing of theirs was written; {t} is not marked done.",
                    crate::text::printable(detail)
                )
            })
            .collect();
        if self.failed.is_empty() {
            return lines;
        }
        let mut totals: BTreeMap<ResourceType, u64> = BTreeMap::new();
        for (kind, by_type) in &self.failed {
            let n: u64 = by_type.values().sum();
            lines.push(format!(
                "{} failed because {}: {}",
                searches(n),
                kind.because(),
                breakdown(by_type)
            ));
            for (t, k) in by_type {
                *totals.entry(*t).or_default() += k;
            }
        }
        let n: u64 = totals.values().sum();
        let advice = if accepted {
            "accepted with --allow-incomplete: their types are marked done without them"
        } else {
            "rerun the same command to retry them"
        };
        lines.push(format!(
            "{} failed ({}); {advice}",
            searches(n),
            breakdown(&totals)
        ));
        lines
    }
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

fn searches(n: u64) -> String {
    format!(
        "{} {}",
        crate::console::thousands(n),
        plural(n, "search", "searches")
    )
}

/// `Condition for 2 patients, Observation for 1`; Patient lookups count IDs.
fn breakdown(by_type: &BTreeMap<ResourceType, u64>) -> String {
    let mut first_search = true;
    by_type
        .iter()
        .map(|(t, n)| {
            let count = crate::console::thousands(*n);
            if *t == ResourceType::Patient {
                format!("Patient lookup for {count} {}", plural(*n, "ID", "IDs"))
            } else if std::mem::take(&mut first_search) {
                format!("{t} for {count} {}", plural(*n, "patient", "patients"))
            } else {
                format!("{t} for {count}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_kinds_types_and_a_total() {
        let mut report = CrawlReport::default();
        let none = Dropped::default();
        let t = ResourceType::Condition;
        report.note(t, &ChainOutcome::Failed(FailureKind::Unusable), &none);
        report.note(t, &ChainOutcome::Failed(FailureKind::Http(500)), &none);
        report.note(
            ResourceType::Observation,
            &ChainOutcome::Failed(FailureKind::Http(500)),
            &none,
        );
        report.note(
            ResourceType::Patient,
            &ChainOutcome::Failed(FailureKind::Transport),
            &none,
        );
        report.note(ResourceType::Device, &ChainOutcome::Complete, &none);
        assert_eq!(
            report.failure_lines(false),
            [
                "2 searches failed because the server answered HTTP 500: Condition for 1 patient, Observation for 1",
                "1 search failed because the server could not be reached or the connection broke: Patient lookup for 1 ID",
                "1 search failed because the answer could not be used (e.g. invalid or cut-off JSON): Condition for 1 patient",
                "4 searches failed (Patient lookup for 1 ID, Condition for 2 patients, Observation for 1); rerun the same command to retry them",
            ]
        );
        assert!(report.failure_lines(true)[3].ends_with("marked done without them"));
        assert_eq!(
            report.failed_by_type().into_iter().collect::<Vec<_>>(),
            [
                (ResourceType::Patient, 1),
                (ResourceType::Condition, 2),
                (ResourceType::Observation, 1)
            ]
        );
        assert_eq!(
            report.failed_types().into_iter().collect::<Vec<_>>(),
            [
                ResourceType::Patient,
                ResourceType::Condition,
                ResourceType::Observation
            ]
        );
        assert!(report.notes().is_empty());
    }

    #[test]
    fn stopped_types_and_left_out_entries() {
        let mut report = CrawlReport::default();
        let mut dropped = Dropped::default();
        dropped.wrong_type("Patient");
        dropped.wrong_type("Patient");
        dropped.wrong_type("X\u{1b}[2J");
        report.note(
            ResourceType::Condition,
            &ChainOutcome::Foreign("Condition/c1 names Patient/b, searched Patient/a".into()),
            &dropped,
        );
        report.note(
            ResourceType::Patient,
            &ChainOutcome::Complete,
            &Dropped {
                unmatched_patients: 2,
                ..Dropped::default()
            },
        );
        assert!(report.is_stopped(ResourceType::Condition));
        assert!(!report.has_failures());
        assert_eq!(
            report.failure_lines(false),
            [
                "The server ignored `patient=` for Condition: it returned other patients' data \
              (Condition/c1 names Patient/b, searched Patient/a). Nothing of theirs was written; \
              Condition is not marked done."
            ]
        );
        assert_eq!(
            report.notes(),
            [
                "Left out 3 entries of a type the search did not ask for (Patient in Condition searches: 2, X\\u{1b}[2J in Condition searches: 1).",
                "Left out 2 Patients that a lookup returned without the ID it asked for (not crawled).",
            ]
        );
    }

    #[test]
    fn type_names_are_capped() {
        let mut dropped = Dropped::default();
        for i in 0..100 {
            dropped.wrong_type(&format!("T{i}"));
        }
        assert_eq!(dropped.wrong_type.len(), MAX_TYPE_NAMES + 1);
        assert_eq!(
            dropped.wrong_type["other types"],
            100 - MAX_TYPE_NAMES as u64
        );
    }
}
