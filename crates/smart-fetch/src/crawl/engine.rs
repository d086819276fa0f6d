//! Plans and runs a crawl (spec §13.2): decides where the cohort comes from, which types to
//! search, and feeds (patient, type) search chains to a pool of workers under the client's
//! connection budget. There is no barrier between types: as soon as a Patient lookup
//! returns, that patient's searches of every type join the queue, so the budget stays full
//! from the first request to the last. Resume and crash safety live in `sink`.

use super::CrawlError;
use super::search::{encode_query_value, fetch_chain};
use super::sink::{ChainResult, Resumed, Sink, SinkSender};
use crate::bulk::{self, Level};
use crate::fhir::FhirClient;
use crate::filters::{self, Filters, Since};
use crate::folder::discovery;
use crate::folder::{ExportContext, OutputMetadata, log};
use crate::resources::ResourceType;
use crate::timestamp;
use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// Everything a crawl needs, decided by the command that runs it.
pub struct CrawlPlan {
    pub workdir: PathBuf,
    /// Where the cohort's Patients are read from when no IDs are given.
    pub source_dir: PathBuf,
    /// Selected types (after limiting to the server), canonical order.
    pub types: Vec<ResourceType>,
    /// Stored in `.metadata` and compared on resume.
    pub context: ExportContext,
    /// Base filters plus since parameters (spec §6.7).
    pub effective: Filters,
    /// IDs or MRNs from `--id-list` / `--id-file`.
    pub ids: Option<Vec<String>>,
    pub id_system: Option<String>,
    /// Group name for the fake `log.ndjson` (spec §12.8).
    pub group_name: String,
    pub fhir_url: String,
    pub compress: bool,
    pub epic: bool,
    /// Concurrent chains; the client's budget caps actual connections.
    pub workers: usize,
    /// How to get the Patients when the cohort is a Group or the whole system (spec §13.2
    /// step 6); `None` leaves such a crawl without a cohort.
    pub bulk: Option<BulkPatients>,
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
}

pub async fn run(client: FhirClient, plan: CrawlPlan) -> Result<CrawlOutcome, CrawlError> {
    std::fs::create_dir_all(&plan.workdir).map_err(|e| {
        CrawlError::Message(format!("Could not create {}: {e}", plan.workdir.display()))
    })?;
    let mut metadata = OutputMetadata::load(&plan.workdir)?;
    metadata.note_context(&plan.context)?;

    // Where do the patients come from?
    let mut lookup_ids: Option<Vec<String>> = None;
    let mut cohort_dir: Option<PathBuf> = None;
    let patient_selected = plan.types.contains(&ResourceType::Patient);
    if patient_selected && metadata.is_done(ResourceType::Patient) {
        println!("Skipping Patient, already done.");
        cohort_dir = Some(plan.workdir.clone());
    } else if let Some(ids) = &plan.ids {
        println!("Fetching Patients for the provided IDs.");
        if metadata.is_done(ResourceType::Patient) {
            // Unlike the Python tool, a resumed crawl does not look the IDs up again.
            cohort_dir = Some(plan.workdir.clone());
        } else {
            lookup_ids = Some(ids.clone());
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
            println!("Skipping {t}, already done.");
        } else if plan.epic && matches!(t, ResourceType::EpisodeOfCare | ResourceType::Specimen) {
            println!(
                "Skipping {t}, Epic does not support searching by patient, so they will have to be hydrated instead."
            );
            epic_skipped.push((t, timestamp::now()));
        } else {
            search_types.push(t);
        }
    }

    let mut sink_types = search_types.clone();
    if lookup_ids.is_some() {
        sink_types.insert(0, ResourceType::Patient);
    }

    let mut done = std::collections::BTreeMap::new();
    if !sink_types.is_empty() {
        let cohort = match &cohort_dir {
            Some(dir) => {
                let mut ids: Vec<String> =
                    discovery::ids_of_type(dir, "Patient").into_iter().collect();
                ids.sort();
                if ids.is_empty() && !search_types.is_empty() {
                    return Err(CrawlError::NoCohort(dir.display().to_string()));
                }
                ids
            }
            None => Vec::new(),
        };
        done = crawl(
            &client,
            &plan,
            &sink_types,
            &search_types,
            lookup_ids,
            cohort,
        )
        .await?;
    }
    let patient = done.remove_entry(&ResourceType::Patient);
    for (t, when) in patient.into_iter().chain(epic_skipped).chain(done) {
        metadata.mark_done(t, &when)?;
        Sink::clear_state(&plan.workdir, t);
    }
    if !search_types.is_empty()
        && metadata.is_done(ResourceType::Patient)
        && discovery::ids_of_type(&plan.workdir, "Patient").is_empty()
    {
        return Err(CrawlError::NoCohort(plan.workdir.display().to_string()));
    }

    if let Some(earliest) = metadata.earliest_done() {
        let url = log::crawl_export_url(&plan.fhir_url, &plan.group_name);
        log::append_crawl_log(&plan.workdir, &url, &earliest)?;
    }
    Ok(CrawlOutcome { metadata })
}

/// Spec §13.2 step 6: the Patients by a real bulk export into the workdir (files
/// `Patient.NNN.ndjson[.gz]`, events in `log.ndjson`), with the Patient filters and the
/// bulk `_since`. Returns the export's transaction time (Patient's done time).
async fn bulk_patients(
    bulk: &BulkPatients,
    plan: &CrawlPlan,
    metadata: &mut OutputMetadata,
) -> Result<timestamp::Timestamp, CrawlError> {
    let patient = [ResourceType::Patient];
    bulk.client.open().await?;
    let caps = bulk.client.capabilities();
    let since = match &plan.context.since {
        Some(s) => Since::Literal(s.clone()),
        None => Since::None,
    };
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
    };
    Ok(bulk::export(&job, metadata).await?.transaction_time)
}

/// A unit of work: every search URL of one key (patient id, or ID to look up) for one type.
struct Chain {
    resource_type: ResourceType,
    key: String,
    urls: Vec<String>,
}

struct Queue {
    state: Mutex<QueueState>,
    notify: Notify,
}

#[derive(Default)]
struct QueueState {
    chains: VecDeque<Chain>,
    in_flight: usize,
    /// Chains ever queued and finished, for the progress line.
    queued: usize,
    finished: usize,
    /// Patients whose searches are already queued (one patient may have several MRNs).
    enqueued: HashSet<String>,
    aborted: bool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // A poisoned lock only means another worker panicked; the data is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn next(&self) -> Option<Chain> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if s.aborted {
                    return None;
                }
                if let Some(c) = s.chains.pop_front() {
                    s.in_flight += 1;
                    return Some(c);
                }
                if s.in_flight == 0 {
                    return None;
                }
            }
            notified.await;
        }
    }

    fn complete(&self) {
        let mut s = self.lock();
        s.in_flight -= 1;
        s.finished += 1;
        drop(s);
        self.notify.notify_waiters();
    }

    fn abort(&self) {
        self.lock().aborted = true;
        self.notify.notify_waiters();
    }
}

struct Planner {
    search_types: Vec<ResourceType>,
    effective: Filters,
    resumed: Resumed,
}

impl Planner {
    fn urls_for(&self, t: ResourceType, patient: &str) -> Vec<String> {
        let base = format!("{t}?patient={}", encode_query_value(patient));
        with_filters(base, self.effective.get(&t))
    }

    /// Queue every not-yet-committed search of a patient.
    fn enqueue_patient(&self, queue: &Queue, patient: &str) {
        let mut s = queue.lock();
        if !s.enqueued.insert(patient.to_string()) {
            return;
        }
        for &t in &self.search_types {
            if self
                .resumed
                .keys
                .get(&t)
                .is_some_and(|k| k.contains(patient))
            {
                continue;
            }
            s.queued += 1;
            s.chains.push_back(Chain {
                resource_type: t,
                key: patient.to_string(),
                urls: self.urls_for(t, patient),
            });
        }
        drop(s);
        queue.notify.notify_waiters();
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
    cohort: Vec<String>,
) -> Result<std::collections::BTreeMap<ResourceType, timestamp::Timestamp>, CrawlError> {
    let (sink, resumed) = Sink::open(&plan.workdir, sink_types, plan.compress)?;
    let planner = Arc::new(Planner {
        search_types: search_types.to_vec(),
        effective: plan.effective.clone(),
        resumed,
    });
    let queue = Arc::new(Queue {
        state: Mutex::new(QueueState::default()),
        notify: Notify::new(),
    });

    // Lookups first: each one unlocks a patient's worth of searches.
    if let Some(ids) = lookup_ids {
        let done = planner.resumed.keys.get(&ResourceType::Patient);
        let patient_filters = plan
            .types
            .contains(&ResourceType::Patient)
            .then(|| plan.effective.get(&ResourceType::Patient))
            .flatten();
        let mut s = queue.lock();
        for id in ids {
            if done.is_some_and(|d| d.contains(&id)) {
                continue;
            }
            let base = match &plan.id_system {
                Some(system) => format!(
                    "Patient?identifier={}",
                    encode_query_value(&format!("{system}|{id}"))
                ),
                None => format!("Patient?_id={}", encode_query_value(&id)),
            };
            s.queued += 1;
            s.chains.push_back(Chain {
                resource_type: ResourceType::Patient,
                key: id,
                urls: with_filters(base, patient_filters),
            });
        }
    }
    for patient in planner.resumed.found_patients.iter().chain(cohort.iter()) {
        planner.enqueue_patient(&queue, patient);
    }

    let now = timestamp::now();
    let mut workers = JoinSet::new();
    for _ in 0..plan.workers.max(1) {
        let client = client.clone();
        let queue = queue.clone();
        let planner = planner.clone();
        let sender = sink.sender();
        workers.spawn(async move { worker(client, queue, planner, sender, now).await });
    }

    let progress = tokio::spawn(show_progress(queue.clone(), client.budget().clone()));
    let outcome = tokio::select! {
        r = join_all(&mut workers, &queue) => r,
        _ = tokio::signal::ctrl_c() => Err(CrawlError::Interrupted),
    };
    progress.abort();
    clear_progress();
    match outcome {
        Ok(()) => sink.finish().await,
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

async fn worker(
    client: FhirClient,
    queue: Arc<Queue>,
    planner: Arc<Planner>,
    sender: SinkSender,
    now: timestamp::Timestamp,
) -> Result<(), CrawlError> {
    while let Some(chain) = queue.next().await {
        let result = fetch_chain(&client, chain.resource_type, chain.key, &chain.urls, now).await;
        let result: ChainResult = match result {
            Ok(r) => r,
            Err(err) => {
                queue.complete();
                return Err(err.into());
            }
        };
        if result.resource_type == ResourceType::Patient {
            for record in &result.records {
                if let Some(id) = &record.id {
                    planner.enqueue_patient(&queue, id);
                }
            }
        }
        let sent = sender.send(result).await;
        queue.complete();
        sent?;
    }
    Ok(())
}

/// A one-line status on a terminal (stderr), redrawn every second: searches done, patients,
/// and how many connections the budget currently allows.
async fn show_progress(queue: Arc<Queue>, budget: crate::fhir::Budget) {
    use std::io::{IsTerminal, Write};
    if !std::io::stderr().is_terminal() {
        return;
    }
    let started = std::time::Instant::now();
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        ticker.tick().await;
        let (finished, queued, patients) = {
            let s = queue.lock();
            (s.finished, s.queued, s.enqueued.len())
        };
        let rate = finished as f64 / started.elapsed().as_secs_f64().max(0.001);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2KCrawling: {} of {} searches, {} patients, {}/{} connections, {rate:.0} searches/s",
            crate::console::thousands(finished as u64),
            crate::console::thousands(queued as u64),
            crate::console::thousands(patients as u64),
            budget.current_limit(),
            budget.max(),
        );
        let _ = err.flush();
    }
}

fn clear_progress() {
    use std::io::{IsTerminal, Write};
    if std::io::stderr().is_terminal() {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
}
