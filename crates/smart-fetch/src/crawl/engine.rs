//! Plans and runs a crawl (docs/crawl.md#steps-of-a-crawl): decides where the cohort comes from,
//! which types to search, and feeds (patient, type) search chains to a pool of workers under the
//! client's connection budget. There is no barrier between types: as soon as a Patient lookup
//! returns, that patient's searches of every type join the queue, so the budget stays full from the
//! first request to the last. Resume and crash safety live in `sink`.
//!
//! At the end it decides what is finished: a type with a failed search chain, or any type
//! while a Patient lookup failed (its cohort is not whole), stays unfinished and resumable
//! unless the user accepts that with `--allow-incomplete`; a type whose searches returned
//! other patients' data is stopped at once and never finished. The `CrawlReport` says why.

use super::CrawlError;
use super::cohort;
use super::id_queue::IdQueue;
use super::lookups;
use super::membership::{Expected, linked_patients};
use super::patient_lists;
use super::report::{ChainOutcome, CrawlReport};
use super::search::{ChainRequest, fetch_chain};
use super::sink::{ChainResult, Finish, Resumed, Sink, SinkSender};
use crate::bulk::{self, Level};
use crate::fhir::FhirClient;
use crate::fhir::batching::{BatchSupport, Probe, Support, Verdict};
use crate::filters::{self, Filters, Since};
use crate::folder::{ExportContext, OutputMetadata, log};
use crate::folder::{discovery, history};
use crate::id_set::IdSet;
use crate::report::{Counters, Reporter};
use crate::resources::ResourceType;
use crate::timestamp;
use crate::url_encoding::quote as encode_query_value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// Everything a crawl needs, decided by the command that runs it.
pub struct CrawlPlan {
    pub workdir: PathBuf,
    /// The managed folder of an `export` (none for a bare `crawl`): its earlier workdirs
    /// decide which patients are new (full history in a since export) or gone.
    pub managed_dir: Option<PathBuf>,
    /// Where the cohort's Patients are read from when no IDs are given.
    pub source_dir: PathBuf,
    /// Selected types (after limiting to the server), canonical order.
    pub types: Vec<ResourceType>,
    /// Stored in `.metadata` and compared on resume.
    pub context: ExportContext,
    /// Base filters plus since parameters (docs/since.md#search-parameters-with-a-since).
    pub effective: Filters,
    /// IDs or MRNs from `--id-list` / `--id-file`.
    pub ids: Option<Vec<String>>,
    pub id_system: Option<String>,
    /// Group name for the fake `log.ndjson` (docs/log.md#the-crawl-log).
    pub group_name: String,
    pub fhir_url: String,
    pub compress: bool,
    pub epic: bool,
    /// Concurrent chains; the client's budget caps actual connections.
    pub workers: usize,
    /// How to get the Patients when the cohort is a Group or the whole system (by a bulk
    /// export, docs/crawl.md#steps-of-a-crawl); `None` leaves such a crawl without a cohort.
    pub bulk: Option<BulkPatients>,
    /// `--allow-incomplete`: types with failed searches are finished anyway.
    pub allow_incomplete: bool,
    /// `--strict-search`: searches ask for `Prefer: handling=strict`.
    pub strict: bool,
    /// Where the crawl's lines and progress go; its counters count patients and resources.
    pub reporter: Reporter,
}

/// A bulk export of just the Patients, for a crawl without ID lists.
pub struct BulkPatients {
    /// The bulk client (opened here, only when needed).
    pub client: FhirClient,
    /// `Group/<id>` with `--group`, else the whole system.
    pub level: Level,
    /// `--bulk-timeout`.
    pub max_wait: std::time::Duration,
}

/// What a crawl leaves behind for the caller (managed exports need the metadata).
pub struct CrawlOutcome {
    pub metadata: OutputMetadata,
    /// What the run did not get.
    pub report: CrawlReport,
    /// Every selected type is done (none left unfinished by failures or a stop).
    pub finished: bool,
    /// Types marked done although some of their searches failed (`--allow-incomplete`), in
    /// this run or an earlier one of the workdir (`.metadata` `acceptedFailedSearches`):
    /// not a whole export of the cohort, so no `deleted/` may be derived from them.
    pub accepted: BTreeSet<ResourceType>,
}

pub async fn run(client: FhirClient, mut plan: CrawlPlan) -> Result<CrawlOutcome, CrawlError> {
    std::fs::create_dir_all(&plan.workdir).map_err(|e| {
        CrawlError::Message(format!("Could not create {}: {e}", plan.workdir.display()))
    })?;
    let mut metadata = OutputMetadata::load(&plan.workdir)?;
    metadata.note_context(&plan.context)?;

    // Where do the patients come from?
    let mut lookup_ids: Option<Vec<String>> = None;
    let mut cohort_dir: Option<PathBuf> = None;
    let patient_selected = plan.types.contains(&ResourceType::Patient);
    let reporter = &plan.reporter;
    if patient_selected && metadata.is_done(ResourceType::Patient) {
        reporter.info("Skipping Patient, already done.");
        cohort_dir = Some(plan.workdir.clone());
    } else if let Some(ids) = plan.ids.take() {
        reporter.info("Fetching Patients for the provided IDs.");
        if metadata.is_done(ResourceType::Patient) {
            // Unlike the Python tool, a resumed crawl does not look the IDs up again.
            cohort_dir = Some(plan.workdir.clone());
        } else {
            // Moved into the lookup queue, not copied (megabytes for a large cohort).
            lookup_ids = Some(ids);
        }
    } else if patient_selected {
        let Some(bulk) = &plan.bulk else {
            return Err(CrawlError::Message(
                "No way to fetch the Patients: pass the cohort with --id-list or --id-file.".into(),
            ));
        };
        // Done at once, so an interrupted crawl never repeats the export.
        let transaction_time = bulk_patients(bulk, &plan, &mut metadata).await?;
        metadata.mark_done(ResourceType::Patient, &transaction_time)?;
        // The whole cohort, never since-filtered: the list to find deletions in.
        note_patient_changes(&plan, &mut metadata, true)?;
        cohort_dir = Some(plan.workdir.clone());
    } else {
        cohort_dir = Some(plan.source_dir.clone());
    }

    // Which types get per-patient searches?
    let mut search_types = Vec::new();
    // Marked done after Patient, so `done` lists types in the Python tool's order.
    let mut epic_skipped = Vec::new();
    for &t in &plan.types {
        if t == ResourceType::Patient {
            continue;
        }
        if metadata.is_done(t) {
            reporter.info(format!("Skipping {t}, already done."));
        } else if plan.epic && matches!(t, ResourceType::EpisodeOfCare | ResourceType::Specimen) {
            reporter.info(format!(
                "Skipping {t}, Epic does not support searching by patient, so they will have to be hydrated instead."
            ));
            epic_skipped.push((t, timestamp::now()));
        } else {
            search_types.push(t);
        }
    }

    let mut sink_types = search_types.clone();
    if lookup_ids.is_some() {
        sink_types.insert(0, ResourceType::Patient);
    }

    let mut done = BTreeMap::new();
    let mut report = CrawlReport::default();
    if !sink_types.is_empty() {
        let cohort = match &cohort_dir {
            Some(dir) => {
                let cohort = cohort::folder_patients(dir, reporter);
                if cohort.ids.is_empty() && !search_types.is_empty() {
                    return Err(CrawlError::NoCohort(dir.display().to_string()));
                }
                cohort
            }
            None => cohort::FolderCohort {
                ids: Vec::new(),
                links: HashMap::new(),
            },
        };
        (done, report) = crawl(
            &client,
            &plan,
            &sink_types,
            &search_types,
            lookup_ids,
            cohort,
        )
        .await?;
    }
    let failed_types = report.failed_types();
    // With a failed lookup the cohort itself is not whole: every type is short of data.
    let lookups_failed = failed_types.contains(&ResourceType::Patient);
    let mut accepted: BTreeSet<ResourceType> = done
        .keys()
        .filter(|t| lookups_failed || failed_types.contains(t))
        .copied()
        .collect();
    // Recorded before the types are marked done (their journals go then): a resumed export
    // skips done types yet must still treat them as not whole, and `status` reports them.
    let accepted_counts: BTreeMap<ResourceType, u64> = report
        .failed_by_type()
        .into_iter()
        .filter(|(t, _)| accepted.contains(t))
        .collect();
    metadata.note_accepted_failed_searches(&accepted_counts)?;
    let finished = sink_types.iter().all(|t| done.contains_key(t));
    let patient = done.remove_entry(&ResourceType::Patient);
    let looked_up_patients = patient.is_some();
    for (t, when) in patient.into_iter().chain(epic_skipped).chain(done) {
        metadata.mark_done(t, &when)?;
        Sink::clear_state(&plan.workdir, t);
    }
    // Types an earlier run of this workdir accepted incomplete are still not whole; with
    // failed ID lookups accepted, no type is.
    let earlier = metadata.accepted_failed_searches();
    let cohort_short = earlier.contains_key(ResourceType::Patient.as_str());
    accepted.extend(
        ResourceType::SCOPE_TYPES
            .into_iter()
            .filter(|t| metadata.is_done(*t))
            .filter(|t| cohort_short || earlier.contains_key(t.as_str())),
    );
    if looked_up_patients {
        // ID lookups fetch the whole cohort, so deletions are real; unless some failed
        // (accepted with --allow-incomplete): their patients would look deleted.
        note_patient_changes(&plan, &mut metadata, !lookups_failed)?;
    }
    if !search_types.is_empty()
        && metadata.is_done(ResourceType::Patient)
        && discovery::ids_of_type(&plan.workdir, "Patient", reporter).is_empty()
    {
        return Err(CrawlError::NoCohort(plan.workdir.display().to_string()));
    }

    // The fake log says an export completed; an unfinished crawl has not (its rerun does).
    if finished && let Some(earliest) = metadata.earliest_done() {
        let url = log::crawl_export_url(&plan.fhir_url, &plan.group_name);
        log::append_crawl_log(&plan.workdir, &url, &earliest)?;
    }
    Ok(CrawlOutcome {
        metadata,
        report,
        finished,
        accepted,
    })
}

/// For a managed export (docs/export.md#new-deleted-and-merged-patients): record the patients that
/// are new since the previous Patient export (they get full histories) and, when this run fetched
/// the whole list, write the ones that are gone to `deleted/Bundle.Patient.ndjson[.gz]`.
fn note_patient_changes(
    plan: &CrawlPlan,
    metadata: &mut OutputMetadata,
    full_list: bool,
) -> Result<(), CrawlError> {
    let Some(managed) = &plan.managed_dir else {
        return Ok(());
    };
    let filter = plan.context.filters.get(&ResourceType::Patient);
    let Some(previous) = history::previous_patient_export(managed, &plan.workdir, filter) else {
        return Ok(());
    };
    let reporter = &plan.reporter;
    let (new, deleted) = history::new_and_deleted_patients(
        &history::patient_map(&previous, reporter),
        &history::patient_map(&plan.workdir, reporter),
    );
    metadata.set_new_patients(&new)?;
    reporter.info(format!(
        "Count of new patients: {}.",
        crate::console::thousands(new.len() as u64)
    ));
    if full_list {
        history::write_deleted(
            &plan.workdir,
            ResourceType::Patient,
            &deleted,
            plan.compress,
        )?;
        reporter.info(format!(
            "Count of deleted patients: {}.",
            crate::console::thousands(deleted.len() as u64)
        ));
    }
    Ok(())
}

/// The Patients by a real bulk export (docs/crawl.md#steps-of-a-crawl) into the workdir (files
/// `Patient.NNN.ndjson[.gz]`, events in `log.ndjson`), with the Patient filters but,
/// unlike the Python tool, never a `_since`: a since export still needs the whole cohort
/// (every patient's changes are searched, and the list is compared to find deleted
/// patients), and `--since auto` has no literal value to send. Returns the export's
/// transaction time (Patient's done time).
async fn bulk_patients(
    bulk: &BulkPatients,
    plan: &CrawlPlan,
    metadata: &mut OutputMetadata,
) -> Result<timestamp::Timestamp, CrawlError> {
    let patient = [ResourceType::Patient];
    bulk.client.open().await?;
    let caps = bulk.client.capabilities();
    let since = Since::None;
    let mut base = Filters::new();
    base.insert(
        ResourceType::Patient,
        plan.context
            .filters
            .get(&ResourceType::Patient)
            .cloned()
            .unwrap_or_default(),
    );
    let mode = plan.context.since_mode;
    let effective = filters::effective_params(&base, &since, mode, &caps, true);
    let since_value = filters::bulk_since(&since, mode, &patient);
    let job = bulk::Export {
        client: &bulk.client,
        workdir: &plan.workdir,
        fhir_url: &plan.fhir_url,
        level: &bulk.level,
        types: &patient,
        filters: &effective,
        since: since_value.as_deref(),
        compress: plan.compress,
        max_wait: bulk.max_wait,
        reporter: &plan.reporter,
    };
    Ok(bulk::export(&job, metadata).await?.transaction_time)
}

/// A unit of work: every search URL of one key (patient id, or ID to look up) for one type.
struct Chain {
    resource_type: ResourceType,
    key: String,
    urls: Vec<String>,
    /// What every resource of the answers must match.
    expected: Expected,
}

struct Queue {
    state: Mutex<QueueState>,
    notify: Notify,
    /// How a Patient lookup's search URLs are made (when it is started, not when queued).
    lookup: LookupPlan,
    /// How a patient's searches are made.
    planner: Arc<Planner>,
    /// Which types' searches may go several patients to a list (`patient_lists`).
    patient_lists: ListPlan,
}

/// What the crawl knows for sending several patients' searches as one.
struct ListPlan {
    /// What the server does with patient lists, per type, shared by the client's users.
    support: Arc<BatchSupport>,
    /// Types whose `patient` parameter the CapabilityStatement lists.
    declared: HashSet<ResourceType>,
    /// Bytes of the base URL, which count towards a list's URL.
    base_len: usize,
}

impl ListPlan {
    fn new(client: &FhirClient, types: &[ResourceType]) -> Self {
        let capabilities = client.capabilities();
        ListPlan {
            support: client.batch_support().clone(),
            declared: types
                .iter()
                .copied()
                .filter(|t| capabilities.supports_search_param(t.as_str(), "patient"))
                .collect(),
            base_len: client.base_url().len(),
        }
    }

    fn support(&self, t: ResourceType) -> Support {
        self.support
            .get(patient_lists::kind(t), self.declared.contains(&t))
    }
}

/// Patient lookups wait in the queue as bare IDs and get their URLs only when they start,
/// so a large cohort costs one string per patient while it waits.
struct LookupPlan {
    id_system: Option<String>,
    filters: Option<std::collections::BTreeSet<String>>,
    /// What the server does with lookup lists (`lookups`), shared by the client's users.
    support: Arc<BatchSupport>,
    /// The CapabilityStatement lists the lookup's parameter for Patient.
    declared: bool,
    /// Bytes of the base URL and of the longest filter, which count towards a list's URL.
    base_len: usize,
    filter_len: usize,
}

impl LookupPlan {
    fn new(
        client: &FhirClient,
        id_system: Option<String>,
        filters: Option<std::collections::BTreeSet<String>>,
    ) -> Self {
        let param = lookups::param(id_system.as_deref());
        let filter_len = filters
            .iter()
            .flatten()
            .map(|f| f.len() + 1)
            .max()
            .unwrap_or(0);
        LookupPlan {
            declared: client
                .capabilities()
                .supports_search_param("Patient", param),
            support: client.batch_support().clone(),
            base_len: client.base_url().len(),
            filter_len,
            id_system,
            filters,
        }
    }

    fn kind(&self) -> &'static str {
        lookups::kind(self.id_system.as_deref())
    }

    /// The next lookups to start: a list where the server takes lists (the first list is
    /// the probe), else one. `None` while another list is out as the probe.
    fn take(&self, queue: &mut IdQueue) -> Option<(Vec<String>, Option<Probe>)> {
        if queue.is_empty() {
            // Before any probe is taken: taking and dropping one wakes every waiter.
            return None;
        }
        let kind = self.kind();
        let support = self.support.get(kind, self.declared);
        match support {
            Support::Lists | Support::Unknown => {}
            Support::Probing | Support::ProbingByPatient => return None,
            // Lookups never name a patient: anything else is one at a time.
            _ => return queue.pop_front().map(|id| (vec![id], None)),
        }
        let ids = lookups::take(
            queue,
            self.id_system.as_deref(),
            self.base_len,
            self.filter_len,
        );
        if ids.len() < 2 {
            // A lone id is a plain lookup, and proves nothing about lists.
            return Some((ids, None));
        }
        if support == Support::Lists {
            return Some((ids, None));
        }
        match self.support.begin_probe(kind) {
            Some(probe) => Some((ids, Some(probe))),
            None => {
                // Another caller took the probe meanwhile: these wait for its answer.
                for id in ids.into_iter().rev() {
                    queue.push_front(&id);
                }
                None
            }
        }
    }

    /// The chain of a list of lookups.
    fn list_chain(&self, ids: &[String]) -> Chain {
        let (base, expected) = lookups::list(self.id_system.as_deref(), ids);
        Chain {
            resource_type: ResourceType::Patient,
            urls: with_filters(base, self.filters.as_ref()),
            key: ids.join(","),
            expected,
        }
    }

    fn chain(&self, id: String) -> Chain {
        let (base, expected) = match &self.id_system {
            Some(system) => (
                format!(
                    "Patient?identifier={}",
                    encode_query_value(&format!("{system}|{id}"))
                ),
                Expected::Identifier {
                    system: system.clone(),
                    value: id.clone(),
                },
            ),
            None => (
                format!("Patient?_id={}", encode_query_value(&id)),
                Expected::Id(id.clone()),
            ),
        };
        Chain {
            resource_type: ResourceType::Patient,
            urls: with_filters(base, self.filters.as_ref()),
            key: id,
            expected,
        }
    }
}

/// Searches kept ready before another Patient lookup is started. Lookups used to run all
/// before any search (first in, first out), so every patient's searches piled up in the
/// queue: peak memory grew with the cohort (66 MiB at 20,000 patients against 19 MiB at
/// 2,000, benchmark (c)). Now a lookup starts, or a patient known up front gets its
/// searches, only when fewer searches than this wait, which is still enough to keep every
/// connection busy while lookups come back.
const READY_SEARCHES: usize = 64;

/// Searches kept ready when they may go several patients to a list: enough patients' worth
/// that each type can fill a list (`patient_lists::MOST_PATIENTS`).
fn ready_searches(types: usize) -> usize {
    READY_SEARCHES.max(patient_lists::MOST_PATIENTS * types)
}

#[derive(Default)]
struct QueueState {
    /// Per-patient searches (and other chains).
    chains: VecDeque<Chain>,
    /// Searches to send on their own: what a list of patients could not be used for.
    single_chains: VecDeque<Chain>,
    /// Patients known up front (a folder's cohort, a resumed crawl's found patients) whose
    /// searches are made only when few are ready, so a large cohort waits as bare IDs.
    /// The flag asks for full histories (patients new since the last export).
    patients: VecDeque<(String, bool)>,
    /// IDs or MRNs of Patient lookups, each of which adds a patient's searches.
    lookups: IdQueue,
    /// Lookups to make one at a time: what a list did not find, or could not be used for.
    single_lookups: VecDeque<String>,
    in_flight: usize,
    /// Chains ever queued and finished, for the progress line.
    queued: usize,
    finished: usize,
    /// Patients whose searches are already queued (one patient may have several MRNs).
    enqueued: IdSet,
    /// Types whose searches returned other patients' data: their chains are dropped.
    stopped: HashSet<ResourceType>,
    aborted: bool,
}

/// The next piece of work: a chain, the IDs of Patient lookups (several when they go
/// as one list, with the probe of lists when it is this list), or the searches of one type
/// for several patients (likewise).
enum Work {
    Chain(Chain),
    Lookups(Vec<String>, Option<Probe>),
    Patients(Vec<Chain>, Option<Probe>),
}

impl QueueState {
    fn pop(&mut self, planner: &Planner, lookup: &LookupPlan, lists: &ListPlan) -> Option<Work> {
        let ready = ready_searches(planner.search_types.len());
        while self.chains.len() < ready
            && let Some((patient, full_history)) = self.patients.pop_front()
        {
            let chains = planner.searches(&patient, full_history);
            self.chains.extend(chains);
        }
        while let Some(chain) = self.single_chains.pop_front() {
            if self.stopped.contains(&chain.resource_type) {
                self.finished += 1;
                continue;
            }
            return Some(Work::Chain(chain));
        }
        if self.chains.len() < ready
            && let Some(work) = self.next_lookups(lookup)
        {
            return Some(work);
        }
        let mut i = 0;
        while i < self.chains.len() {
            let t = self.chains[i].resource_type;
            if self.stopped.contains(&t) {
                self.chains.remove(i);
                self.finished += 1;
                continue;
            }
            // A type whose list probe is out waits for its answer, as lookups do: sent
            // alone meanwhile, its searches would cost one request each, which on a short
            // or resumed crawl is much of what lists save. Other types go on.
            if lists.support(t) == Support::Probing {
                i += 1;
                continue;
            }
            if let Some(chain) = self.chains.remove(i) {
                return Some(self.with_others(chain, lists));
            }
        }
        self.next_lookups(lookup)
    }

    /// `chain` alone, or with the ready searches of other patients that can go in one list
    /// with it, where the server takes patient lists of its type (the first list is the
    /// probe; while another caller probes, searches go alone rather than wait).
    fn with_others(&mut self, chain: Chain, lists: &ListPlan) -> Work {
        let t = chain.resource_type;
        let Expected::Patient {
            patient, linked, ..
        } = &chain.expected
        else {
            return Work::Chain(chain);
        };
        let support = lists.support(t);
        if !linked.is_empty() || !matches!(support, Support::Lists | Support::Unknown) {
            return Work::Chain(chain);
        }
        let mut picked = Vec::new();
        let mut ids_len = patient.len();
        for (i, other) in self.chains.iter().enumerate() {
            let Expected::Patient {
                patient: other_patient,
                linked: other_linked,
                ..
            } = &other.expected
            else {
                continue;
            };
            if other.resource_type != t
                || !other_linked.is_empty()
                || !patient_lists::compatible(t, patient, &chain.urls, other_patient, &other.urls)
            {
                continue;
            }
            if !patient_lists::fits(
                lists.base_len,
                &chain.urls,
                picked.len() + 1,
                ids_len,
                other_patient,
            ) {
                break;
            }
            ids_len += other_patient.len();
            picked.push(i);
        }
        if picked.is_empty() {
            return Work::Chain(chain);
        }
        let probe = match support {
            Support::Lists => None,
            _ => match lists.support.begin_probe(patient_lists::kind(t)) {
                Some(probe) => Some(probe),
                None => return Work::Chain(chain),
            },
        };
        let mut chains = vec![chain];
        // Taken from the back, so the indices of those still to take stay put.
        let mut others: Vec<Chain> = picked
            .into_iter()
            .rev()
            .filter_map(|i| self.chains.remove(i))
            .collect();
        others.reverse();
        chains.extend(others);
        Work::Patients(chains, probe)
    }

    fn next_lookups(&mut self, lookup: &LookupPlan) -> Option<Work> {
        if let Some(id) = self.single_lookups.pop_front() {
            return Some(Work::Lookups(vec![id], None));
        }
        lookup
            .take(&mut self.lookups)
            .map(|(ids, probe)| Work::Lookups(ids, probe))
    }
}

/// A piece of work as a worker gets it.
struct Item {
    chain: Chain,
    /// The IDs of a list of lookups, and the probe of lists when it is this list.
    list: Option<(Vec<String>, Option<Probe>)>,
    /// The per-patient searches a list of patients stands for, and the probe of lists.
    patients: Option<(Vec<Chain>, Option<Probe>)>,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // A poisoned lock only means another worker panicked; the data is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn next(&self) -> Option<Item> {
        loop {
            let notified = self.notify.notified();
            // Lookups may wait for a probe of lists that another export (a batch's other
            // group) has out; its answer arrives through the client's support, not here.
            let changed = self.lookup.support.changed();
            tokio::pin!(notified, changed);
            notified.as_mut().enable();
            changed.as_mut().enable();
            {
                let mut s = self.lock();
                if s.aborted {
                    return None;
                }
                if let Some(work) = s.pop(&self.planner, &self.lookup, &self.patient_lists) {
                    s.in_flight += 1;
                    drop(s);
                    return Some(match work {
                        Work::Chain(chain) => Item {
                            chain,
                            list: None,
                            patients: None,
                        },
                        Work::Lookups(mut ids, None) if ids.len() == 1 => {
                            let id = ids.remove(0);
                            Item {
                                chain: self.lookup.chain(id),
                                list: None,
                                patients: None,
                            }
                        }
                        Work::Lookups(ids, probe) => Item {
                            chain: self.lookup.list_chain(&ids),
                            list: Some((ids, probe)),
                            patients: None,
                        },
                        Work::Patients(chains, probe) => Item {
                            chain: patients_chain(&chains),
                            list: None,
                            patients: Some((chains, probe)),
                        },
                    });
                }
                // Searches may wait for a probe another export of the batch has out.
                if s.in_flight == 0
                    && s.lookups.is_empty()
                    && s.single_lookups.is_empty()
                    && s.single_chains.is_empty()
                    && s.chains.is_empty()
                    && s.patients.is_empty()
                {
                    return None;
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = changed => {}
            }
        }
    }

    fn complete(&self) {
        self.complete_many(1, Vec::new(), Vec::new());
    }

    /// One piece of work ended, which stood for `finished` queued chains (a list stands
    /// for several); `again` are lookups and `again_chains` searches to start over, one
    /// at a time.
    fn complete_many(&self, finished: usize, again: Vec<String>, again_chains: Vec<Chain>) {
        let mut s = self.lock();
        s.in_flight -= 1;
        s.finished += finished;
        s.single_lookups.extend(again);
        s.single_chains.extend(again_chains);
        drop(s);
        self.notify.notify_waiters();
    }

    fn abort(&self) {
        self.lock().aborted = true;
        self.notify.notify_waiters();
    }

    /// No more searches of `t` (its chains still queued are dropped as they come up).
    fn stop(&self, t: ResourceType) {
        self.lock().stopped.insert(t);
    }
}

struct Planner {
    search_types: Vec<ResourceType>,
    /// Filters without since parameters: the full history of a new patient.
    base: Filters,
    effective: Filters,
    resumed: Resumed,
    /// Patients of the previous Patient export (id → ids each replaces), in since exports
    /// of a managed folder: anyone not there, or who absorbed a record since, is new.
    previous_patients: Option<HashMap<String, HashSet<String>>>,
    /// Per type, patients recorded as new by exports after that type's last export.
    new_before: HashMap<ResourceType, HashSet<String>>,
    /// Patient → the records its `Patient.link` names (only patients with links), whose
    /// data that patient's searches accept too. Lookups add to it as they return.
    links: Mutex<HashMap<String, Vec<String>>>,
    /// Run-wide: every patient queued for searching counts once.
    counters: Counters,
}

impl Planner {
    fn urls_for(&self, t: ResourceType, patient: &str, full_history: bool) -> Vec<String> {
        let base = format!("{t}?patient={}", encode_query_value(patient));
        let filters =
            if full_history || self.new_before.get(&t).is_some_and(|n| n.contains(patient)) {
                &self.base
            } else {
                &self.effective
            };
        with_filters(base, filters.get(&t))
    }

    /// New to the cohort (docs/export.md#new-deleted-and-merged-patients), or a merge survivor
    /// whose `link` gained a `replaces`.
    fn is_new(&self, id: &str, replaces: &HashSet<String>) -> bool {
        self.previous_patients.as_ref().is_some_and(|prev| {
            prev.get(id)
                .is_none_or(|before| !replaces.is_subset(before))
        })
    }

    /// Every not-yet-committed search of a patient; `full_history` patients get their
    /// full history even in a since export.
    fn searches(&self, patient: &str, full_history: bool) -> Vec<Chain> {
        let linked = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(patient)
            .cloned()
            .unwrap_or_default();
        self.search_types
            .iter()
            .filter(|&&t| !self.is_committed(t, patient))
            .map(|&t| Chain {
                resource_type: t,
                key: patient.to_string(),
                urls: self.urls_for(t, patient, full_history),
                expected: match t.patient_field() {
                    Some(field) => Expected::Patient {
                        field,
                        patient: patient.to_string(),
                        linked: linked.clone(),
                    },
                    None => Expected::Anything,
                },
            })
            .collect()
    }

    /// Remember the records a found patient's `link` names.
    fn note_links(&self, patient: &str, linked: Vec<String>) {
        if !linked.is_empty() {
            self.links
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(patient.to_string(), linked);
        }
    }

    fn is_committed(&self, t: ResourceType, patient: &str) -> bool {
        self.resumed
            .keys
            .get(&t)
            .is_some_and(|k| k.contains(patient))
    }

    /// Queue a patient found by a lookup: its searches go straight into the queue (a
    /// lookup starts only when few searches are ready, so this stays bounded).
    fn enqueue_found(&self, queue: &Queue, patient: &str, full_history: bool) {
        let mut s = queue.lock();
        if !s.enqueued.insert(patient) {
            return;
        }
        self.counters.add_patients(1);
        let chains = self.searches(patient, full_history);
        s.queued += chains.len();
        s.chains.extend(chains);
        drop(s);
        queue.notify.notify_waiters();
    }

    /// Queue a patient known up front: its searches are made when the queue runs low.
    fn enqueue_known(&self, s: &mut QueueState, patient: &str, full_history: bool) {
        if !s.enqueued.insert(patient) {
            return;
        }
        self.counters.add_patients(1);
        s.queued += self
            .search_types
            .iter()
            .filter(|&&t| !self.is_committed(t, patient))
            .count();
        s.patients.push_back((patient.to_string(), full_history));
    }
}

/// The one chain that searches the patients of `chains` (one type, same filters) at once.
fn patients_chain(chains: &[Chain]) -> Chain {
    let first = &chains[0];
    let patients: Vec<String> = chains.iter().map(|c| c.key.clone()).collect();
    let t = first.resource_type;
    Chain {
        resource_type: t,
        key: first.key.clone(),
        urls: patient_lists::urls(t, &first.key, &first.urls, &patients),
        expected: patient_lists::expected(first.expected.field().unwrap_or("subject"), &patients),
    }
}

fn with_filters(base: String, filters: Option<&std::collections::BTreeSet<String>>) -> Vec<String> {
    match filters {
        Some(f) if !f.is_empty() => f.iter().map(|f| format!("{base}&{f}")).collect(),
        _ => vec![base],
    }
}

async fn crawl(
    client: &FhirClient,
    plan: &CrawlPlan,
    sink_types: &[ResourceType],
    search_types: &[ResourceType],
    lookup_ids: Option<Vec<String>>,
    cohort: cohort::FolderCohort,
) -> Result<(BTreeMap<ResourceType, timestamp::Timestamp>, CrawlReport), CrawlError> {
    let (sink, mut resumed) = Sink::open(
        &plan.workdir,
        sink_types,
        plan.compress,
        plan.reporter.clone(),
    )?;
    let mut links = std::mem::take(&mut resumed.links);
    links.extend(cohort.links);
    let since_export = plan.effective != plan.context.filters;
    let mut previous_patients = None;
    let mut new_before = HashMap::new();
    if let (Some(managed), true) = (&plan.managed_dir, since_export) {
        let patient_filter = plan.context.filters.get(&ResourceType::Patient);
        previous_patients =
            history::previous_patient_export(managed, &plan.workdir, patient_filter)
                .map(|dir| history::patient_map(&dir, &plan.reporter));
        for &t in search_types {
            let ids = history::new_patients_for_type(managed, &plan.workdir, t, &plan.context);
            new_before.insert(t, ids.into_iter().collect());
        }
    }
    let planner = Arc::new(Planner {
        search_types: search_types.to_vec(),
        base: plan.context.filters.clone(),
        effective: plan.effective.clone(),
        resumed,
        previous_patients,
        new_before,
        links: Mutex::new(links),
        counters: plan.reporter.counters().clone(),
    });
    // Always the full list, never `_lastUpdated`: a since filter here would make every
    // unchanged patient look deleted, as it did in the Python tool
    // (docs/differences.md#the-patient-list-is-never-since-filtered).
    let patient_filters = plan
        .types
        .contains(&ResourceType::Patient)
        .then(|| plan.context.filters.get(&ResourceType::Patient))
        .flatten();
    let queue = Arc::new(Queue {
        state: Mutex::new(QueueState::default()),
        notify: Notify::new(),
        lookup: LookupPlan::new(client, plan.id_system.clone(), patient_filters.cloned()),
        planner: planner.clone(),
        patient_lists: ListPlan::new(client, search_types),
    });

    // Lookups: each one unlocks a patient's worth of searches; they start whenever the
    // searches ready to go run low (`READY_SEARCHES`).
    if let Some(ids) = lookup_ids {
        let done = planner.resumed.keys.get(&ResourceType::Patient);
        let mut s = queue.lock();
        for id in ids {
            if done.is_some_and(|d| d.contains(&id)) {
                continue;
            }
            s.queued += 1;
            s.lookups.push_back(&id);
        }
    }
    // A resumed lookup kept only ids, so a merge is recognised only for patients whose
    // lookup runs in this process; a new id is always recognised.
    let no_links = HashSet::new();
    {
        let mut s = queue.lock();
        for patient in &planner.resumed.found_patients {
            planner.enqueue_known(&mut s, patient, planner.is_new(patient, &no_links));
        }
        for patient in cohort.ids {
            planner.enqueue_known(&mut s, &patient, false);
        }
    }

    let now = timestamp::now();
    let report = Arc::new(Mutex::new(CrawlReport::default()));
    let mut workers = JoinSet::new();
    for _ in 0..plan.workers.max(1) {
        let worker = Worker {
            client: client.clone(),
            queue: queue.clone(),
            planner: planner.clone(),
            sender: sink.sender(),
            report: report.clone(),
            strict: plan.strict,
            now,
        };
        workers.spawn(worker.run());
    }

    let (stop_progress, stopped) = tokio::sync::oneshot::channel();
    let progress = tokio::spawn(show_progress(
        queue.clone(),
        client.budget().clone(),
        plan.reporter.clone(),
        stopped,
    ));
    let outcome = tokio::select! {
        r = join_all(&mut workers, &queue) => r,
        _ = tokio::signal::ctrl_c() => Err(CrawlError::Interrupted),
    };
    // Waited for, so the status line is gone before anything else is printed.
    let _ = stop_progress.send(());
    let _ = progress.await;
    match outcome {
        Ok(()) => {
            let report = std::mem::take(&mut *report.lock().unwrap_or_else(|p| p.into_inner()));
            let failed = report.failed_types();
            let lookups_failed = failed.contains(&ResourceType::Patient);
            let types = sink_types
                .iter()
                .copied()
                .filter(|&t| !report.is_stopped(t))
                .filter(|t| plan.allow_incomplete || !(lookups_failed || failed.contains(t)))
                .collect();
            let done = sink
                .finish(Finish {
                    types,
                    accept_failed: plan.allow_incomplete,
                })
                .await?;
            Ok((done, report))
        }
        Err(err) => {
            queue.abort();
            workers.abort_all();
            while workers.join_next().await.is_some() {}
            sink.abandon().await?;
            Err(err)
        }
    }
}

async fn join_all(
    workers: &mut JoinSet<Result<(), CrawlError>>,
    queue: &Queue,
) -> Result<(), CrawlError> {
    while let Some(joined) = workers.join_next().await {
        let result =
            joined.map_err(|e| CrawlError::Message(format!("A crawl worker failed: {e}")))?;
        if let Err(err) = result {
            queue.abort();
            return Err(err);
        }
    }
    Ok(())
}

/// One of the crawl's workers: takes chains from the queue, fetches them, hands the
/// results to the sink and tallies what went wrong.
struct Worker {
    client: FhirClient,
    queue: Arc<Queue>,
    planner: Arc<Planner>,
    sender: SinkSender,
    report: Arc<Mutex<CrawlReport>>,
    strict: bool,
    now: timestamp::Timestamp,
}

impl Worker {
    async fn run(self) -> Result<(), CrawlError> {
        while let Some(item) = self.queue.next().await {
            let chain = item.chain;
            let request = ChainRequest {
                resource_type: chain.resource_type,
                key: chain.key,
                urls: &chain.urls,
                expected: &chain.expected,
                strict: self.strict,
                now: self.now,
            };
            let result: ChainResult = match fetch_chain(&self.client, request).await {
                Ok(r) => r,
                Err(err) => {
                    self.queue.complete();
                    return Err(err.into());
                }
            };
            match (item.list, item.patients) {
                (Some((ids, probe)), _) => {
                    let delivered = self.deliver_list(result, &ids, probe).await;
                    let (finished, again) = match &delivered {
                        Ok(again) => (ids.len() - again.len(), again.clone()),
                        Err(_) => (ids.len(), Vec::new()),
                    };
                    self.queue.complete_many(finished, again, Vec::new());
                    delivered?;
                }
                (None, Some((chains, probe))) => {
                    let count = chains.len();
                    let delivered = self.deliver_patients(result, chains, probe).await;
                    match delivered {
                        Ok(again) => {
                            self.queue
                                .complete_many(count - again.len(), Vec::new(), again)
                        }
                        Err(err) => {
                            self.queue.complete_many(count, Vec::new(), Vec::new());
                            return Err(err);
                        }
                    }
                }
                (None, None) => {
                    let delivered = self.deliver(result).await;
                    self.queue.complete();
                    delivered?;
                }
            }
        }
        Ok(())
    }

    /// A list of lookups came back: what it shows about the server's lists is recorded,
    /// each ID it found goes on as its own lookup's result, and the IDs to look up again
    /// one at a time are returned (those it did not find, or all of them when its answer
    /// cannot be used).
    async fn deliver_list(
        &self,
        result: ChainResult,
        ids: &[String],
        probe: Option<Probe>,
    ) -> Result<Vec<String>, CrawlError> {
        let lookup = &self.queue.lookup;
        let verdict = lookups::verdict(&result);
        let was_probe = probe.is_some();
        let (now, ended) = match probe {
            Some(probe) => (probe.settle(false, verdict), false),
            None => lookup.support.note(lookup.kind(), verdict),
        };
        let reporter = self.client.reporter();
        let param = lookups::param(lookup.id_system.as_deref());
        let why = || match &result.outcome {
            ChainOutcome::Foreign(detail) => crate::text::printable(detail).into_owned(),
            ChainOutcome::Failed(kind) => kind.because(),
            ChainOutcome::Complete => "nothing found".to_string(),
        };
        match (was_probe, now) {
            (true, Support::Lists) => reporter.verbose(|| {
                format!("The server looks up several patients by {param} in one search; asking up to {} at a time.", crate::hydrate::batch::MAX_IDS)
            }),
            (true, Support::Single) => reporter.verbose(|| {
                format!("The server did not look up several patients by {param} in one search ({}); looking them up one at a time.", why())
            }),
            (false, _) if ended => reporter.warn(format!(
                "The server answered a search for several patients by {param} wrongly ({}); nothing of that answer was kept, and patients are looked up one at a time from now on.",
                why()
            )),
            _ => {}
        }
        if !matches!(verdict, Verdict::Confirmed | Verdict::Empty) {
            return Ok(ids.to_vec());
        }
        let (found, missing) = lookups::split(result, lookup.id_system.as_deref(), ids);
        for result in found {
            self.deliver(result).await?;
        }
        Ok(missing)
    }

    /// A list of patients' searches came back: what it shows about the server's lists of
    /// its type is recorded, and either each patient's part goes on as that patient's
    /// search, or, when the answer cannot be trusted (a probe that did not show two
    /// patients' data, a refusal, another patient's data, a failure), nothing of it is
    /// kept and the searches are returned, to be sent one patient at a time.
    async fn deliver_patients(
        &self,
        result: ChainResult,
        chains: Vec<Chain>,
        probe: Option<Probe>,
    ) -> Result<Vec<Chain>, CrawlError> {
        let t = result.resource_type;
        let lists = &self.queue.patient_lists;
        let kind = patient_lists::kind(t);
        let verdict = patient_lists::verdict(&result);
        let before = lists.support(t);
        let was_probe = probe.is_some();
        let (now, ended) = match probe {
            // A refused list is not tried with the patient named: it names patients.
            Some(probe) => (probe.settle(false, verdict), false),
            None => lists.support.note(kind, verdict),
        };
        let reporter = self.client.reporter();
        let why = || match &result.outcome {
            ChainOutcome::Foreign(detail) => crate::text::printable(detail).into_owned(),
            ChainOutcome::Failed(kind) => kind.because(),
            ChainOutcome::Complete => "no two patients' data came back".to_string(),
        };
        match (was_probe, now) {
            (true, Support::Lists) => reporter.verbose(|| {
                format!(
                    "The server searches {t} of several patients at once; asking up to {} patients at a time.",
                    patient_lists::MOST_PATIENTS
                )
            }),
            (true, Support::Single) => reporter.verbose(|| {
                format!(
                    "The server did not search {t} of several patients at once ({}); searching one patient at a time.",
                    why()
                )
            }),
            (false, _) if ended => reporter.warn(format!(
                "The server answered a search of {t} for several patients wrongly ({}); nothing of that answer was kept, and {t} is searched one patient at a time from now on.",
                why()
            )),
            _ => {}
        }
        let trusted = match verdict {
            Verdict::Confirmed => true,
            // Nothing for these patients, from a server known to search lists.
            Verdict::Empty => !was_probe && before == Support::Lists,
            _ => false,
        };
        if !trusted {
            return Ok(chains);
        }
        let patients: Vec<String> = chains.iter().map(|c| c.key.clone()).collect();
        for part in patient_lists::split(result, &patients) {
            self.deliver(part).await?;
        }
        Ok(Vec::new())
    }

    /// One chain's result: tallied, its patients queued (lookups), and handed to the sink.
    async fn deliver(&self, mut result: ChainResult) -> Result<(), CrawlError> {
        self.report.lock().unwrap_or_else(|p| p.into_inner()).note(
            result.resource_type,
            &result.outcome,
            &result.dropped,
        );
        if let ChainOutcome::Foreign(_) = result.outcome {
            // Nothing of this chain is written, and no more of its type is searched.
            self.queue.stop(result.resource_type);
            return Ok(());
        }
        if result.resource_type == ResourceType::Patient && result.outcome == ChainOutcome::Complete
        {
            for record in &result.records {
                if let Some(id) = &record.id {
                    let patient =
                        serde_json::from_str::<serde_json::Value>(&record.line).unwrap_or_default();
                    let linked = linked_patients(&patient);
                    if !linked.is_empty() {
                        result.links.push((id.clone(), linked.clone()));
                    }
                    self.planner.note_links(id, linked);
                    let replaces = history::replaced_ids(&patient);
                    self.planner
                        .enqueue_found(&self.queue, id, self.planner.is_new(id, &replaces));
                }
            }
        }
        self.sender.send(result).await?;
        Ok(())
    }
}

/// A status line on a terminal (`report::Progress`), updated every second: searches done,
/// patients, how many connections the budget allows now, the request rate and answer time.
/// With `--verbose` the same status is also reported as a verbose line every 10 seconds (on
/// a terminal or not). Ends, clearing the line, when `stop` fires.
async fn show_progress(
    queue: Arc<Queue>,
    budget: crate::fhir::Budget,
    reporter: Reporter,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let bar = reporter.progress_bar("Crawling…");
    if !bar.is_live() && !reporter.is_verbose() {
        return;
    }
    const VERBOSE_EVERY: u32 = 10;
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut rate = crate::fhir::RequestRate::new();
    rate.sample(budget.status().requests);
    let mut ticks: u32 = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut stop => return,
        }
        ticks += 1;
        let (finished, queued, patients) = {
            let s = queue.lock();
            (s.finished, s.queued, s.enqueued.len())
        };
        let status = budget.status();
        let per_second = rate.sample(status.requests);
        let line = format!(
            "Crawling: {} of {} searches, {} patients, {}",
            crate::console::thousands(finished as u64),
            crate::console::thousands(queued as u64),
            crate::console::thousands(patients as u64),
            status.describe(per_second),
        );
        if ticks == VERBOSE_EVERY {
            ticks = 0;
            reporter.verbose(|| line.clone());
        }
        bar.set_message(line);
    }
}
