//! Reference tasks (docs/hydration.md#running-a-reference-task,
//! docs/hydration.md#fetching-a-reference): for every input resource, download the references
//! found at the task's paths that point at its output type and are not already known, and
//! append them to `<Output>.<slug>.ndjson[.gz]`. Recursive tasks (`obs-members`, `loc-loc`,
//! `org-org`) follow the references of what they download too, cycle-safe because every
//! reference is claimed in the run-wide memory before it is requested. Does not rewrite
//! input files.
//!
//! References are gathered across input resources and read in lists of up to
//! `batch::MAX_IDS` ids (`Observation?_id=a,b,c`) where the server takes them
//! (`fhir::batching`: learnt once per server and type), grouped by patient where the
//! server needs that; anything a list did not bring back, every reference that is not a
//! plain `Type/id`, and everything on a server without lists is read one by one, exactly
//! as before (so a 404 is still a 404 in the table and in `deleted/`). What is written is
//! the same either way. Requests in flight (lists and reads together) are capped at twice
//! the connections, as the input resources used to be; the budget caps what reaches the
//! server.

use super::batch::{self, Answer, MAX_IDS};
use super::output::Appender;
use super::progress::Progress;
use super::stats::{Stats, Status};
use super::{HydrateError, Hydrator, Outcome, Task, input, refs, wrong_type_text};
use crate::crawl::membership::referenced_patient;
use crate::fhir::batching::{Probe, Support, Verdict};
use crate::folder::discovery;
use crate::resources::ResourceType;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};

/// References waiting for a list, at most: enough for a few full lists (and for several
/// patients' lists on servers that need the patient), while memory stays flat.
const PENDING: usize = 4 * MAX_IDS;

/// Input resources with references still unanswered, at most (each holds the statuses of
/// its references until the last one is answered, for the table).
const OPEN_INPUTS: usize = 1024;

pub async fn run(
    h: &Hydrator,
    task: &Task,
    paths: &'static [&'static str],
) -> Result<Option<Stats>, HydrateError> {
    let inputs = discovery::files_of_type(&h.options.source_dir, task.input.as_str(), h.reporter());
    if inputs.is_empty() {
        h.skip(task);
        return Ok(None);
    }
    h.known
        .load(&h.options.workdir, task.output, h.reporter())
        .await;
    let base = task.output_base().unwrap_or_default();
    let mut out = Appender::new(h.output_path(&base), h.reporter().counters());
    let mut stats = Stats::default();
    let mut progress = h.progress(format!("Downloading {}s…", task.output));
    let mut state = State::new(h, task, paths);
    // Only the fields the paths start from are built (first steps, `*` dropped), and the
    // patient field when lists may have to name the patient.
    let mut fields: Vec<&'static str> = Vec::new();
    let firsts = paths
        .iter()
        .filter_map(|p| p.split('.').next())
        .map(|f| f.trim_end_matches('*'));
    for field in firsts.chain(state.input_patient_field) {
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    let mut inputs = input::values(inputs, Some(fields), h.reporter());
    let mut jobs: FuturesUnordered<BoxFuture<'_, Done>> = FuturesUnordered::new();
    let mut input_done = false;
    let support = h.client.batch_support().clone();
    let ended: Result<(), HydrateError> = loop {
        // Armed before the standing is read, so a probe that ends in between still wakes us.
        let changed = support.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let accepting = !input_done && state.has_room();
        while jobs.len() < h.concurrency {
            let Some(job) = state.next_job(h, accepting, jobs.is_empty()) else {
                break;
            };
            jobs.push(Box::pin(perform(h, task, job)));
        }
        if input_done && jobs.is_empty() && state.is_idle() {
            break Ok(());
        }
        let waiting = state.waits_for_probe(h);
        let mut sink = Sink {
            out: &mut out,
            stats: &mut stats,
            progress: &mut progress,
        };
        tokio::select! {
            Some(done) = jobs.next(), if !jobs.is_empty() => {
                if let Err(err) = state.finish(h, done, &mut sink) {
                    break Err(err);
                }
            }
            item = inputs.next(), if accepting => match item {
                Some(resource) => state.add_input(h, &resource, &mut sink),
                None => input_done = true,
            },
            _ = &mut changed, if waiting => {}
            // Nothing can move (never expected): read what waits one by one.
            else => state.lists_off(),
        }
    };
    // What was downloaded is whole and worth keeping, also when the run ends here.
    drop(jobs);
    out.finish()?;
    ended?;
    Ok(Some(stats))
}

/// Where answered items go.
struct Sink<'a> {
    out: &'a mut Appender,
    stats: &'a mut Stats,
    progress: &'a mut Progress,
}

/// A claimed reference waiting for its answer.
struct Want {
    /// The input resource it counts for.
    slot: usize,
    reference: String,
    /// The patient of the resource that refers to it (a list may have to name it).
    patient: Option<String>,
}

/// One input resource whose references are not all answered yet.
struct Slot {
    statuses: Vec<Status>,
    open: usize,
}

enum Job {
    Single(Want),
    List {
        wants: Vec<Want>,
        patient: Option<String>,
        probe: Option<Probe>,
    },
}

enum Done {
    Single(Want, Result<Outcome, HydrateError>),
    List {
        wants: Vec<Want>,
        probe: Option<Probe>,
        answer: Result<Answer, crate::fhir::FhirError>,
    },
}

async fn perform(h: &Hydrator, task: &Task, job: Job) -> Done {
    match job {
        Job::Single(want) => {
            let outcome = download(h, task, &want.reference).await;
            Done::Single(want, outcome)
        }
        Job::List {
            wants,
            patient,
            probe,
        } => {
            let answer = {
                let ids: Vec<&str> = wants
                    .iter()
                    .filter_map(|w| batch::list_id(&w.reference, task.output))
                    .collect();
                batch::fetch(&h.client, task.output, &ids, patient.as_deref()).await
            };
            Done::List {
                wants,
                probe,
                answer,
            }
        }
    }
}

/// One task's references: the input resources still open, and what waits for a request.
struct State<'a> {
    task: &'a Task,
    paths: &'static [&'static str],
    recursive: bool,
    /// The support kind of lists of the output type (its name).
    kind: &'static str,
    /// The CapabilityStatement lists `_id` for the output type.
    declared: bool,
    /// Lists of the output type may name the patient: it has a patient search parameter
    /// (R4's, listed by the server) and a patient field to take it from.
    patient_scoped: bool,
    /// Where an input resource names its patient (only read when lists may need it).
    input_patient_field: Option<&'static str>,
    output_patient_field: Option<&'static str>,
    /// Bytes of the base URL, which counts towards a list's URL length.
    base_len: usize,
    slots: HashMap<usize, Slot>,
    next_slot: usize,
    /// Plain `Type/id` references waiting for a list.
    pending: VecDeque<Want>,
    /// References to read one by one.
    singles: VecDeque<Want>,
}

impl<'a> State<'a> {
    fn new(h: &Hydrator, task: &'a Task, paths: &'static [&'static str]) -> Self {
        let caps = h.client.capabilities();
        let output = task.output;
        let kind = output.as_str();
        // Binary is only ever read (and no reference task writes it).
        let declared = output != ResourceType::Binary && caps.supports_search_param(kind, "_id");
        let output_patient_field = output.patient_field();
        let patient_scoped = declared
            && output_patient_field.is_some()
            && caps.supports_search_param(kind, "patient");
        State {
            task,
            paths,
            recursive: task.is_recursive(),
            kind,
            declared,
            patient_scoped,
            input_patient_field: task.input.patient_field().filter(|_| patient_scoped),
            output_patient_field: output_patient_field.filter(|_| patient_scoped),
            base_len: h.client.base_url().len(),
            slots: HashMap::new(),
            next_slot: 0,
            pending: VecDeque::new(),
            singles: VecDeque::new(),
        }
    }

    fn has_room(&self) -> bool {
        self.pending.len() < PENDING
            && self.singles.len() < PENDING
            && self.slots.len() < OPEN_INPUTS
    }

    fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.singles.is_empty()
    }

    /// Lists wait for a probe that another caller (or this task) has out.
    fn waits_for_probe(&self, h: &Hydrator) -> bool {
        !self.pending.is_empty()
            && matches!(
                h.client.batch_support().get(self.kind, self.declared),
                Support::Probing | Support::ProbingByPatient
            )
    }

    fn lists_off(&mut self) {
        self.singles.extend(self.pending.drain(..));
    }

    /// Claim the references of one input resource.
    fn add_input(&mut self, h: &Hydrator, resource: &Value, sink: &mut Sink<'_>) {
        let slot = self.next_slot;
        self.next_slot += 1;
        self.slots.insert(
            slot,
            Slot {
                statuses: Vec::new(),
                open: 0,
            },
        );
        let patient = patient_of(resource, self.input_patient_field);
        self.add_references(h, slot, resource, patient);
        self.close_if_answered(slot, sink);
    }

    /// Claim the references `resource` holds, counting them for input `slot`.
    fn add_references(
        &mut self,
        h: &Hydrator,
        slot: usize,
        resource: &Value,
        patient: Option<String>,
    ) {
        let output = self.task.output;
        let Some(entry) = self.slots.get_mut(&slot) else {
            return;
        };
        for reference in refs::references(resource, self.paths) {
            let Some(reference) = refs::wanted(reference, output) else {
                entry.statuses.push(Status::Ignored);
                continue;
            };
            // Claimed before the request, so no other input, task or pass of this run asks
            // again, even when this request fails.
            if !h.known.claim(reference) {
                entry.statuses.push(Status::AlreadyDone);
                continue;
            }
            entry.open += 1;
            let want = Want {
                slot,
                reference: reference.to_string(),
                patient: patient.clone(),
            };
            match self.declared && batch::list_id(reference, output).is_some() {
                true => self.pending.push_back(want),
                false => self.singles.push_back(want),
            }
        }
    }

    fn close_if_answered(&mut self, slot: usize, sink: &mut Sink<'_>) {
        if self.slots.get(&slot).is_some_and(|s| s.open == 0)
            && let Some(done) = self.slots.remove(&slot)
        {
            sink.stats.add(&done.statuses);
            sink.progress.tick();
        }
    }

    /// One reference answered.
    fn answered(
        &mut self,
        h: &Hydrator,
        want: Want,
        status: Status,
        resource: Option<Value>,
        sink: &mut Sink<'_>,
    ) -> Result<(), HydrateError> {
        if let Some(entry) = self.slots.get_mut(&want.slot) {
            entry.statuses.push(status);
        }
        if let Some(resource) = resource {
            sink.out.write(&resource)?;
            if self.recursive {
                let patient =
                    patient_of(&resource, self.output_patient_field).or(want.patient.clone());
                self.add_references(h, want.slot, &resource, patient);
            }
        }
        if let Some(entry) = self.slots.get_mut(&want.slot) {
            entry.open = entry.open.saturating_sub(1);
        }
        self.close_if_answered(want.slot, sink);
        Ok(())
    }

    /// The next request to make, if one is due. `accepting`: more input may still bring
    /// references (so a short list may wait to fill); `idle`: nothing is in flight.
    fn next_job(&mut self, h: &Hydrator, accepting: bool, idle: bool) -> Option<Job> {
        if let Some(want) = self.singles.pop_front() {
            return Some(Job::Single(want));
        }
        if self.pending.is_empty() {
            return None;
        }
        let support = h.client.batch_support().get(self.kind, self.declared);
        // A short list goes when nothing more can join it: the input is read (or waits for
        // room), and for recursive tasks nothing in flight may still bring references.
        let may_send_short = !accepting && (idle || !self.recursive);
        let patient = match support {
            Support::Single => {
                self.lists_off();
                return self.singles.pop_front().map(Job::Single);
            }
            Support::Probing | Support::ProbingByPatient => return None,
            Support::Unknown | Support::Lists => {
                if !(self.full_list(None) || may_send_short) {
                    return None;
                }
                None
            }
            Support::TryByPatient | Support::ByPatient => {
                // A list per patient: references whose patient is not known are read.
                let (with, without): (VecDeque<Want>, VecDeque<Want>) =
                    self.pending.drain(..).partition(|w| w.patient.is_some());
                self.pending = with;
                self.singles.extend(without);
                let Some(front) = self.pending.front() else {
                    return self.singles.pop_front().map(Job::Single);
                };
                let patient = front.patient.clone();
                // Input runs patient by patient: once another patient's references wait,
                // this one's list will not grow much more.
                let others = self.pending.iter().any(|w| w.patient != patient);
                if !(self.full_list(patient.as_deref()) || others || may_send_short) {
                    return self.singles.pop_front().map(Job::Single);
                }
                patient
            }
        };
        let mut wants = self.take_list(patient.as_deref());
        if wants.len() < 2 {
            // A list of one is a read that proves nothing about lists.
            return wants.pop().map(Job::Single);
        }
        let probe = match support {
            Support::Unknown | Support::TryByPatient => {
                match h.client.batch_support().begin_probe(self.kind) {
                    Some(probe) => Some(probe),
                    None => {
                        for want in wants.into_iter().rev() {
                            self.pending.push_front(want);
                        }
                        return None;
                    }
                }
            }
            _ => None,
        };
        Some(Job::List {
            wants,
            patient,
            probe,
        })
    }

    /// How many of the pending references of `patient` (all, for `None`) go into the next
    /// list, from the front, and whether that list is full (the next one would not fit).
    fn list_room(&self, patient: Option<&str>) -> (usize, bool) {
        let mut length = self.list_url_start(patient);
        let mut count = 0;
        for want in self.matching(patient) {
            let id_len = want.reference.len() - self.kind.len() - 1;
            if count == MAX_IDS || !batch::fits(self.base_len, length, id_len) {
                return (count, true);
            }
            length += id_len + 1;
            count += 1;
        }
        (count, count == MAX_IDS)
    }

    /// Whether the pending references of `patient` (all, for `None`) fill a list.
    fn full_list(&self, patient: Option<&str>) -> bool {
        self.list_room(patient).1
    }

    /// Take the first pending references of `patient` (all, for `None`) that fit a list.
    fn take_list(&mut self, patient: Option<&str>) -> Vec<Want> {
        let (count, _) = self.list_room(patient);
        let mut list = Vec::with_capacity(count);
        let mut rest = VecDeque::with_capacity(self.pending.len());
        for want in self.pending.drain(..) {
            let matches = patient.is_none() || want.patient.as_deref() == patient;
            if matches && list.len() < count {
                list.push(want);
            } else {
                rest.push_back(want);
            }
        }
        self.pending = rest;
        list
    }

    fn matching<'s>(&'s self, patient: Option<&'s str>) -> impl Iterator<Item = &'s Want> {
        self.pending
            .iter()
            .filter(move |w| patient.is_none() || w.patient.as_deref() == patient)
    }

    /// Length of a list's URL before its ids.
    fn list_url_start(&self, patient: Option<&str>) -> usize {
        batch::url(self.task.output, &[], patient).len()
    }

    /// A request came back.
    fn finish(
        &mut self,
        h: &Hydrator,
        done: Done,
        sink: &mut Sink<'_>,
    ) -> Result<(), HydrateError> {
        match done {
            Done::Single(want, outcome) => {
                let outcome = outcome?;
                self.answered(h, want, outcome.status, outcome.resource, sink)
            }
            Done::List {
                wants,
                probe,
                answer,
            } => {
                let mut answer = answer?;
                let was_probe = probe.is_some();
                let (now, ended) = match probe {
                    Some(probe) => (probe.settle(self.patient_scoped, answer.verdict), false),
                    None => h.client.batch_support().note(self.kind, answer.verdict),
                };
                self.announce(h, now, was_probe, ended, &answer);
                match answer.verdict {
                    Verdict::Confirmed | Verdict::Empty => {
                        for want in wants {
                            let id = batch::list_id(&want.reference, self.task.output);
                            match id.and_then(|id| answer.found.remove(id)) {
                                Some(resource) => {
                                    self.answered(h, want, Status::NewlyDone, Some(resource), sink)?
                                }
                                // Not brought back: read on its own, as without lists.
                                None => self.singles.push_back(want),
                            }
                        }
                    }
                    // The probe is to be tried again (with the patient named, or after a
                    // failure): its references wait in front for that.
                    _ if was_probe && matches!(now, Support::Unknown | Support::TryByPatient) => {
                        for want in wants.into_iter().rev() {
                            self.pending.push_front(want);
                        }
                    }
                    _ => self.singles.extend(wants),
                }
                Ok(())
            }
        }
    }

    /// Say what a list showed about the server, when it changed how the type is read;
    /// `ended`: this list (not a probe) is the one that ended lists.
    fn announce(&self, h: &Hydrator, now: Support, probe: bool, ended: bool, answer: &Answer) {
        let t = self.task.output;
        let detail = crate::text::printable(&answer.detail).into_owned();
        match (probe, now) {
            (true, Support::Lists) => h.reporter().verbose(|| {
                format!("The server reads several {t}s in one search; asking up to {MAX_IDS} at a time.")
            }),
            (true, Support::ByPatient) => h.reporter().verbose(|| {
                format!("The server reads several {t}s in one search only with the patient named; asking one patient at a time.")
            }),
            (true, Support::TryByPatient) => h.reporter().verbose(|| {
                format!("The server did not read several {t}s in one search ({detail}); trying with the patient named.")
            }),
            (true, Support::Single) => h.reporter().verbose(|| {
                format!("The server did not read several {t}s in one search ({detail}); reading them one at a time.")
            }),
            (false, _) if ended => h.reporter().warn(format!(
                "The server answered a search for several {t}s wrongly ({detail}); nothing of that answer was kept, and {t}s are read one at a time from now on."
            )),
            _ => {}
        }
    }
}

/// The patient a resource names in `field` (none when lists need no patient).
fn patient_of(resource: &Value, field: Option<&str>) -> Option<String> {
    let reference = resource.get(field?)?.get("reference")?.as_str()?;
    referenced_patient(reference).map(str::to_string)
}

/// docs/hydration.md#fetching-a-reference for one claimed reference, read on its own. Only errors
/// that end the run come back as `Err`. Besides the statistics, a failure leaves the task
/// incomplete and a 404 or 410 is kept as evidence of a deletion (`evidence`); both still count as
/// fatal errors in the table.
async fn download(h: &Hydrator, task: &Task, reference: &str) -> Result<Outcome, HydrateError> {
    let output = task.output;
    let value = match h.client.get_json(reference).await {
        Ok(value) => value,
        Err(err) if err.is_fatal() => return Err(err.into()),
        Err(err) => {
            match err.status() {
                Some(404 | 410) => h.evidence.gone(task.name, output, reference),
                _ => h.evidence.incomplete(task.name),
            }
            return Ok(Outcome::of(h.item_error(&err)));
        }
    };
    if value.get("resourceType").and_then(Value::as_str) != Some(output.as_str()) {
        h.report(&wrong_type_text(output.as_str(), &value));
        h.evidence.incomplete(task.name);
        return Ok(Outcome::of(Status::FatalError));
    }
    // `Medication/1/_history/2` and `Medication/1` are one resource: write it once.
    if let Some(key) = refs::key_of(&value)
        && key != reference
        && !h.known.claim(&key)
    {
        return Ok(Outcome::of(Status::AlreadyDone));
    }
    Ok(Outcome {
        status: Status::NewlyDone,
        resource: Some(value),
    })
}
