//! Resource lookup for the server: patients generated on demand behind a small cache, reads
//! by type and id, and the shared pools. The store serves one "quarter" of the data at a
//! time (see `data::quarter_changes`), switchable while the server runs.

use crate::catalog::{self, Kind};
use crate::data;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// Patients whose resources are kept generated.
const CACHE_CAPACITY: usize = 64;
/// Patients whose resources are kept rendered as JSON lines, for bulk files: every file of
/// an export walks the whole cohort (one type each), so without these each patient would
/// be generated again for every file (24 CPU-seconds per GB of export). A rendered
/// patient costs tens of kilobytes (so a full cache holds around 100 MB for the server's
/// lifetime), a generated one many times that.
const LINES_CAPACITY: usize = 4096;

pub struct Store {
    seed: u64,
    /// Patients of quarter 1 (quarter 2 adds new ones, see `data::patients_in_quarter`).
    patients: usize,
    quarter: AtomicU8,
    cache: Mutex<Cache<Arc<data::Generated>>>,
    lines: Mutex<Cache<Arc<Vec<String>>>>,
}

/// Patients by `(quarter, index)`, the oldest dropped first.
struct Cache<T> {
    map: HashMap<(u8, usize), T>,
    order: VecDeque<(u8, usize)>,
    capacity: usize,
}

impl<T: Clone> Cache<T> {
    fn new(capacity: usize) -> Self {
        Cache {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    fn get(&self, key: (u8, usize)) -> Option<T> {
        self.map.get(&key).cloned()
    }

    fn insert(&mut self, key: (u8, usize), value: T) {
        if self.map.contains_key(&key) {
            return;
        }
        if self.order.len() >= self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
        }
        self.order.push_back(key);
        self.map.insert(key, value);
    }
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update is one step, so a panicked holder leaves the cache consistent.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    pub fn new(seed: u64, patients: usize, quarter: u8) -> Self {
        Self {
            seed,
            patients,
            quarter: AtomicU8::new(quarter),
            cache: Mutex::new(Cache::new(CACHE_CAPACITY)),
            lines: Mutex::new(Cache::new(LINES_CAPACITY)),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Patients of quarter 1.
    pub fn patients(&self) -> usize {
        self.patients
    }

    /// Searchable resources (`Type/id`) of quarter-1 patient `i` that quarter 2 no longer
    /// has, when quarter 2 is served (empty in quarter 1): what an export `_since` a
    /// time before the quarter's changes reports as deleted.
    pub fn removed_since_quarter1(&self, i: usize) -> Vec<String> {
        if self.quarter() < data::LAST_QUARTER || i >= self.patients {
            return Vec::new();
        }
        data::quarter_changes(self.seed, self.patients, i)
            .map(|c| {
                c.deleted
                    .into_iter()
                    .chain(c.churned.into_iter().map(|(old, _)| old))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The quarter of the data served now.
    pub fn quarter(&self) -> u8 {
        self.quarter.load(Ordering::Relaxed)
    }

    /// Serve quarter `quarter` (1 or 2) from now on.
    pub fn set_quarter(&self, quarter: u8) -> Result<(), String> {
        if !(data::FIRST_QUARTER..=data::LAST_QUARTER).contains(&quarter) {
            return Err(format!(
                "quarter must be {} or {}, got {quarter}",
                data::FIRST_QUARTER,
                data::LAST_QUARTER
            ));
        }
        self.quarter.store(quarter, Ordering::Relaxed);
        Ok(())
    }

    /// Patient indices are below this (some may be gone in quarter 2).
    pub fn patient_count(&self) -> usize {
        data::patients_in_quarter(self.patients, self.quarter())
    }

    /// Whether patient `i`'s record exists in the current quarter.
    pub fn patient_exists(&self, i: usize) -> bool {
        data::exists_in_quarter(self.patients, i, self.quarter())
    }

    /// How many patients exist in the current quarter.
    pub fn existing_patient_count(&self) -> usize {
        if self.quarter() == data::FIRST_QUARTER {
            return self.patients;
        }
        (0..self.patient_count())
            .filter(|&i| self.patient_exists(i))
            .count()
    }

    /// The index of the patient with FHIR id `id`, if it exists on this server.
    pub fn patient_index(&self, id: &str) -> Option<usize> {
        let i = data::patient_index_from_id(id)?;
        (self.patient_exists(i) && data::patient_id(i) == id).then_some(i)
    }

    /// The index of the patient with MRN `mrn`, if it exists on this server (in quarter 2
    /// a merged-away patient's MRN finds the survivor).
    pub fn patient_index_by_mrn(&self, mrn: &str) -> Option<usize> {
        data::patient_index_by_mrn_in_quarter(self.patients, mrn, self.quarter())
    }

    /// Resources (`Type/id`) of quarter 1 that the current quarter no longer has.
    pub fn removed(&self) -> Vec<String> {
        if self.quarter() == data::FIRST_QUARTER {
            return Vec::new();
        }
        data::removed_in_quarter2(self.seed, self.patients)
            .into_iter()
            .collect()
    }

    /// Every resource of patient `i`, searchable (Patient first) and hidden, or None when
    /// nothing searches under that patient in the current quarter.
    pub fn patient_data(&self, i: usize) -> Option<Arc<data::Generated>> {
        self.patient_data_in(self.quarter(), i)
    }

    fn patient_data_in(&self, quarter: u8, i: usize) -> Option<Arc<data::Generated>> {
        if !data::exists_in_quarter(self.patients, i, quarter) {
            return None;
        }
        if let Some(hit) = locked(&self.cache).get((quarter, i)) {
            return Some(hit);
        }
        let generated = Arc::new(data::generate_in_quarter(
            self.seed,
            self.patients,
            i,
            quarter,
        )?);
        locked(&self.cache).insert((quarter, i), generated.clone());
        Some(generated)
    }

    /// The resources of [`Store::patient_data`], each rendered as one line of JSON.
    pub fn patient_lines(&self, i: usize) -> Option<Arc<Vec<String>>> {
        let quarter = self.quarter();
        if let Some(hit) = locked(&self.lines).get((quarter, i)) {
            return Some(hit);
        }
        let generated = self.patient_data_in(quarter, i)?;
        let rendered: Arc<Vec<String>> =
            Arc::new(generated.resources.iter().map(Value::to_string).collect());
        locked(&self.lines).insert((quarter, i), rendered.clone());
        Some(rendered)
    }

    /// Just the Patient resource of patient `i` (cheap).
    pub fn patient(&self, i: usize) -> Option<Value> {
        let quarter = self.quarter();
        if let Some(hit) = locked(&self.cache).get((quarter, i)) {
            return hit.resources.first().cloned();
        }
        data::patient_resource_in_quarter(self.seed, self.patients, i, quarter)
    }

    /// Resources of type `ty` belonging to patient `i`.
    pub fn of_patient(&self, ty: &str, i: usize) -> Vec<Value> {
        self.patient_data(i)
            .map(|all| {
                all.resources
                    .iter()
                    .filter(|r| r["resourceType"] == ty)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The resource `ty/id`, if the server holds it (hidden resources included): what a read
    /// answers, and what an `_id` search finds.
    pub fn read(&self, ty: &str, id: &str) -> Option<Value> {
        let info = catalog::lookup(ty)?;
        match info.kind {
            Kind::Patient | Kind::Linked => {
                let all = self.owner_data(id)?;
                let is_it = |r: &&Value| r["resourceType"] == ty && r["id"] == id;
                let found = all.resources.iter().find(is_it);
                found.or_else(|| all.hidden.iter().find(is_it)).cloned()
            }
            Kind::Shared => data::shared_resource(self.seed, ty, id),
            Kind::Binary => {
                let all = self.owner_data(id)?;
                data::binary_from(self.seed, id, &all.resources)
            }
        }
    }

    /// The data holding a patient-linked id now: its patient's, or the merge survivor's.
    fn owner_data(&self, id: &str) -> Option<Arc<data::Generated>> {
        let i = data::patient_index_from_id(id)?;
        self.patient_data(data::owner_in_quarter(self.patients, i, self.quarter())?)
    }
}
