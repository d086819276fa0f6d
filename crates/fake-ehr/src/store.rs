//! Resource lookup for the server: patients generated on demand behind a small cache, reads
//! by type and id, and the shared pools.

use crate::catalog::{self, Kind};
use crate::data;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Patients whose resources are kept generated.
const CACHE_CAPACITY: usize = 64;

pub struct Store {
    seed: u64,
    patients: usize,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    map: HashMap<usize, Arc<data::Generated>>,
    order: VecDeque<usize>,
}

impl Store {
    pub fn new(seed: u64, patients: usize) -> Self {
        Self {
            seed,
            patients,
            cache: Mutex::new(Cache::default()),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn patient_count(&self) -> usize {
        self.patients
    }

    /// The index of the patient with FHIR id `id`, if it exists on this server.
    pub fn patient_index(&self, id: &str) -> Option<usize> {
        let i = data::patient_index_from_id(id)?;
        (i < self.patients && data::patient_id(i) == id).then_some(i)
    }

    /// The index of the patient with MRN `mrn`, if it exists on this server.
    pub fn patient_index_by_mrn(&self, mrn: &str) -> Option<usize> {
        data::patient_index_from_mrn(mrn).filter(|i| *i < self.patients)
    }

    /// Every resource of patient `i`, searchable (Patient first) and hidden, or None past
    /// the patient count.
    pub fn patient_data(&self, i: usize) -> Option<Arc<data::Generated>> {
        if i >= self.patients {
            return None;
        }
        if let Some(hit) = self.lock().map.get(&i) {
            return Some(hit.clone());
        }
        let generated = Arc::new(data::generate(self.seed, i));
        let mut cache = self.lock();
        if !cache.map.contains_key(&i) {
            if cache.order.len() >= CACHE_CAPACITY
                && let Some(old) = cache.order.pop_front()
            {
                cache.map.remove(&old);
            }
            cache.order.push_back(i);
            cache.map.insert(i, generated.clone());
        }
        Some(generated)
    }

    /// Just the Patient resource of patient `i` (cheap).
    pub fn patient(&self, i: usize) -> Option<Value> {
        if i >= self.patients {
            return None;
        }
        if let Some(hit) = self.lock().map.get(&i) {
            return hit.resources.first().cloned();
        }
        Some(data::patient_resource(self.seed, i))
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

    /// The resource `ty/id`, if the server holds it (hidden resources included).
    pub fn read(&self, ty: &str, id: &str) -> Option<Value> {
        self.find(ty, id, true)
    }

    /// The resource `ty/id` if a search may return it (hidden resources excluded).
    pub fn read_searchable(&self, ty: &str, id: &str) -> Option<Value> {
        self.find(ty, id, false)
    }

    fn find(&self, ty: &str, id: &str, hidden: bool) -> Option<Value> {
        let info = catalog::lookup(ty)?;
        match info.kind {
            Kind::Patient | Kind::Linked => {
                let i = data::patient_index_from_id(id)?;
                let all = self.patient_data(i)?;
                let is_it = |r: &&Value| r["resourceType"] == ty && r["id"] == id;
                let found = all.resources.iter().find(is_it);
                let found = match found {
                    None if hidden => all.hidden.iter().find(is_it),
                    found => found,
                };
                found.cloned()
            }
            Kind::Shared => data::shared_resource(self.seed, ty, id),
            Kind::Binary => {
                let i = data::patient_index_from_id(id)?;
                let all = self.patient_data(i)?;
                data::binary_from(self.seed, id, &all.resources)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}
