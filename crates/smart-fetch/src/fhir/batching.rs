//! What one server does with a search parameter given several values (`Observation?_id=a,b`,
//! `Patient?identifier=sys|1,sys|2`), learnt once per server and kind of search and shared
//! by every caller of the client (every task and pass of a hydration, every group of a
//! batch). A kind starts unknown when the CapabilityStatement lists the parameter; the first
//! list search of that kind is its probe, and only one probe of a kind is out at a time, so
//! a server that refuses lists costs one request per kind, not one per caller. What a probe
//! or a later answer shows moves the kind on; nothing ever moves it back to lists once it
//! fell back to one value per request. Pure bookkeeping: sends nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Answers of a probe that found nothing at all before a kind is given up: an empty answer
/// to a list says nothing (the ids may all be gone, or the server read the list as one odd
/// value), and the misses are read one by one anyway, so each costs one request.
const INCONCLUSIVE_PROBES: u8 = 3;

/// Where one kind of list search stands on this server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Not tried yet: the next list search is the probe.
    Unknown,
    /// A probe is out; other list searches of the kind wait for its answer.
    Probing,
    /// Lists work without naming the patient.
    Lists,
    /// Plain lists were refused; the next probe names the patient (`patient=X&_id=a,b`).
    TryByPatient,
    /// A probe naming the patient is out.
    ProbingByPatient,
    /// Lists work only with the patient named: one list per patient.
    ByPatient,
    /// One value per request (refused, ignored, or never declared).
    Single,
}

/// How a list search of a kind ended, as the caller judged the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Only what was asked for came back, and something did.
    Confirmed,
    /// The server refused the search (a 4xx, or an answer that is not a search Bundle).
    Refused,
    /// Something not asked for came back: the server dropped the parameter.
    Ignored,
    /// Nothing came back: no conclusion.
    Empty,
    /// The search failed after its retries (5xx, transport): no conclusion.
    Failed,
}

#[derive(Default)]
pub struct BatchSupport {
    /// By kind: a fixed set of names (a resource type, a lookup parameter), so the map is
    /// read on every turn of a caller's loop without making a `String` each time.
    state: Mutex<HashMap<&'static str, Entry>>,
    changed: Notify,
    /// `--no-search-lists`: every kind is one value per request.
    off: AtomicBool,
}

#[derive(Clone, Copy)]
struct Entry {
    support: Support,
    inconclusive: u8,
}

impl BatchSupport {
    fn lock(&self) -> MutexGuard<'_, HashMap<&'static str, Entry>> {
        // Every update is one assignment, so the map stays usable after a panic elsewhere.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Never send lists to this server (`--no-search-lists`), whatever it declares.
    pub fn turn_off(&self) {
        self.off.store(true, Ordering::Relaxed);
    }

    /// Where `kind` stands; `declared` (the CapabilityStatement lists the parameter for
    /// the type) decides the start: undeclared kinds are never tried.
    pub fn get(&self, kind: &'static str, declared: bool) -> Support {
        let declared = declared && !self.off.load(Ordering::Relaxed);
        let mut state = self.lock();
        state
            .entry(kind)
            .or_insert(Entry {
                support: if declared {
                    Support::Unknown
                } else {
                    Support::Single
                },
                inconclusive: 0,
            })
            .support
    }

    /// Take the probe of `kind` if it is due (`Unknown` or `TryByPatient`): the caller then
    /// sends one list search and settles the probe with what came back. `None` when
    /// another caller probes, or when the kind is decided. A probe dropped unsettled (its
    /// export was cancelled or failed) hands the probe on to the next caller.
    pub fn begin_probe(self: &Arc<Self>, kind: &'static str) -> Option<Probe> {
        let mut state = self.lock();
        let entry = state.get_mut(kind)?;
        let (from, next) = match entry.support {
            Support::Unknown => (Support::Unknown, Support::Probing),
            Support::TryByPatient => (Support::TryByPatient, Support::ProbingByPatient),
            _ => return None,
        };
        entry.support = next;
        Some(Probe {
            owner: self.clone(),
            kind,
            from,
            settled: false,
        })
    }

    /// Record how a list search of `kind` that was not its probe ended: a server that
    /// refused or ignored a list after accepting the probe gets one value per request
    /// from now on; anything else changes nothing. Returns the new standing, and whether
    /// this answer is the one that ended lists (of several lists out when the server
    /// turned, only one is, so the caller says so once).
    pub fn note(&self, kind: &str, verdict: Verdict) -> (Support, bool) {
        let (before, now) = self.settle(kind, false, false, verdict);
        (now, now == Support::Single && before != Support::Single)
    }

    /// The standing before and after.
    fn settle(
        &self,
        kind: &str,
        probe: bool,
        patient_scoped: bool,
        verdict: Verdict,
    ) -> (Support, Support) {
        let mut state = self.lock();
        let Some(entry) = state.get_mut(kind) else {
            return (Support::Single, Support::Single);
        };
        let before = entry.support;
        let by_patient = matches!(
            entry.support,
            Support::ProbingByPatient | Support::ByPatient | Support::TryByPatient
        );
        let inconclusive = |entry: &mut Entry| {
            entry.inconclusive += 1;
            match (entry.inconclusive >= INCONCLUSIVE_PROBES, by_patient) {
                (true, _) => Support::Single,
                (false, true) => Support::TryByPatient,
                (false, false) => Support::Unknown,
            }
        };
        entry.support = match (probe, verdict) {
            (true, Verdict::Confirmed) if by_patient => Support::ByPatient,
            (true, Verdict::Confirmed) => Support::Lists,
            (true, Verdict::Refused) if !by_patient && patient_scoped => Support::TryByPatient,
            (_, Verdict::Refused | Verdict::Ignored) => Support::Single,
            (true, Verdict::Empty | Verdict::Failed) => inconclusive(entry),
            // A later list that came back empty or failed changes nothing.
            (false, _) => entry.support,
        };
        let support = entry.support;
        drop(state);
        self.changed.notify_waiters();
        (before, support)
    }

    fn abandon(&self, kind: &str, from: Support) {
        let mut state = self.lock();
        if let Some(entry) = state.get_mut(kind)
            && matches!(entry.support, Support::Probing | Support::ProbingByPatient)
        {
            entry.support = from;
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// Resolves when some kind's standing changes (a probe ended), for callers waiting to
    /// send lists of a kind another caller is probing.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}

/// The one probe of a kind that is out. Settle it with what the list search brought.
pub struct Probe {
    owner: Arc<BatchSupport>,
    kind: &'static str,
    /// Where the kind stood before (`Unknown` or `TryByPatient`).
    from: Support,
    settled: bool,
}

impl Probe {
    /// Whether this probe names the patient.
    pub fn by_patient(&self) -> bool {
        self.from == Support::TryByPatient
    }

    /// What the probe's answer shows; `patient_scoped`: the type can still be asked with
    /// the patient named, should plain lists be refused. Returns the new standing.
    pub fn settle(mut self, patient_scoped: bool, verdict: Verdict) -> Support {
        self.settled = true;
        self.owner
            .settle(self.kind, true, patient_scoped, verdict)
            .1
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if !self.settled {
            self.owner.abandon(self.kind, self.from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn support() -> Arc<BatchSupport> {
        Arc::new(BatchSupport::default())
    }

    #[test]
    fn a_confirmed_probe_opens_lists_once() {
        let s = support();
        assert_eq!(s.get("Observation", true), Support::Unknown);
        let probe = s.begin_probe("Observation");
        assert!(probe.as_ref().is_some_and(|p| !p.by_patient()));
        assert_eq!(s.get("Observation", true), Support::Probing);
        assert!(
            s.begin_probe("Observation").is_none(),
            "one probe at a time"
        );
        let now = probe.map(|p| p.settle(true, Verdict::Confirmed));
        assert_eq!(now, Some(Support::Lists));
        // A later list that fails changes nothing; one that brings strangers ends lists.
        assert_eq!(
            s.note("Observation", Verdict::Failed),
            (Support::Lists, false)
        );
        // Of several lists out when the server turned, the first answer ends lists.
        assert_eq!(
            s.note("Observation", Verdict::Ignored),
            (Support::Single, true)
        );
        assert_eq!(
            s.note("Observation", Verdict::Refused),
            (Support::Single, false)
        );
        assert!(s.begin_probe("Observation").is_none());
    }

    #[test]
    fn undeclared_kinds_are_never_tried() {
        let s = support();
        assert_eq!(s.get("Specimen", false), Support::Single);
        assert!(s.begin_probe("Specimen").is_none());
        assert!(s.begin_probe("never-asked").is_none());
        // Nor anything once lists are turned off.
        s.turn_off();
        assert_eq!(s.get("Observation", true), Support::Single);
        assert!(s.begin_probe("Observation").is_none());
    }

    #[test]
    fn a_refused_list_is_tried_once_with_the_patient() {
        let s = support();
        s.get("Observation", true);
        let now = s
            .begin_probe("Observation")
            .map(|p| p.settle(true, Verdict::Refused));
        assert_eq!(now, Some(Support::TryByPatient));
        let probe = s.begin_probe("Observation");
        assert!(probe.as_ref().is_some_and(Probe::by_patient));
        assert_eq!(s.get("Observation", true), Support::ProbingByPatient);
        let now = probe.map(|p| p.settle(true, Verdict::Confirmed));
        assert_eq!(now, Some(Support::ByPatient));

        // Refused again with the patient named: one by one.
        s.get("Specimen", true);
        s.begin_probe("Specimen")
            .map(|p| p.settle(true, Verdict::Refused));
        let now = s
            .begin_probe("Specimen")
            .map(|p| p.settle(true, Verdict::Refused));
        assert_eq!(now, Some(Support::Single));
        // A type without a patient goes straight to one by one.
        s.get("Practitioner", true);
        let now = s
            .begin_probe("Practitioner")
            .map(|p| p.settle(false, Verdict::Refused));
        assert_eq!(now, Some(Support::Single));
    }

    #[test]
    fn empty_or_failed_probes_are_tried_again_a_few_times() {
        let s = support();
        s.get("Location", true);
        let now = s
            .begin_probe("Location")
            .map(|p| p.settle(false, Verdict::Failed));
        assert_eq!(now, Some(Support::Unknown));
        for _ in 2..INCONCLUSIVE_PROBES {
            let now = s
                .begin_probe("Location")
                .map(|p| p.settle(false, Verdict::Empty));
            assert_eq!(now, Some(Support::Unknown));
        }
        let now = s
            .begin_probe("Location")
            .map(|p| p.settle(false, Verdict::Empty));
        assert_eq!(now, Some(Support::Single));
    }

    #[test]
    fn a_dropped_probe_hands_the_probe_on() {
        let s = support();
        s.get("Medication", true);
        let probe = s.begin_probe("Medication");
        assert_eq!(s.get("Medication", true), Support::Probing);
        drop(probe);
        assert_eq!(s.get("Medication", true), Support::Unknown);
        assert!(s.begin_probe("Medication").is_some());
    }
}
