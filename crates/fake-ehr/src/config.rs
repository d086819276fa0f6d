//! Server configuration: data size and seed, vendor flavor, authentication mode, latency,
//! fault rate, paging, bulk export, the data's quarter and switched-on misbehaviours.

use std::time::Duration;

/// Which vendor the server imitates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flavor {
    /// Epic: no `_lastUpdated`, Observation needs `category`, EpisodeOfCare and Specimen
    /// cannot be searched by patient.
    Epic,
    /// A plain, permissive FHIR server.
    #[default]
    Generic,
}

/// How data routes (search and read) are protected.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum AuthMode {
    #[default]
    Open,
    Basic {
        user: String,
        password: String,
    },
    Bearer {
        token: String,
    },
    /// SMART Backend Services: verify client assertions signed by one of these public keys.
    Smart {
        client_id: String,
        public_jwks: serde_json::Value,
        token_lifetime: Duration,
    },
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Seed of the synthetic data (and of fault selection).
    pub seed: u64,
    /// Number of patients (`pat-000000` .. ).
    pub patients: usize,
    pub flavor: Flavor,
    pub auth: AuthMode,
    /// Every request is answered this long after it arrived (see `latency.rs`).
    pub latency: Duration,
    /// Answer times of searches and reads of these resource types instead of `latency`
    /// (an EHR whose Observation pages cost more than its other searches).
    pub type_latency: Vec<(String, Duration)>,
    /// Fraction (0.0..=1.0) of search, read and token requests that get a fault.
    pub fault_rate: f64,
    /// The kinds of fault drawn (for the bulk routes too); empty: every kind. Which
    /// requests fail depends only on the seed and the rate, not on this list.
    pub fault_kinds: Vec<crate::faults::Fault>,
    /// `Retry-After` seconds of injected 429 and 503 answers.
    pub fault_retry_after: u64,
    /// Answer `GET Binary/id` with the FHIR `Binary` resource (JSON, base64 `data`) whatever
    /// the `Accept` header asks for, as some servers do.
    pub binary_as_resource: bool,
    /// Resource types this server does not hold: left out of its CapabilityStatement, and
    /// a token request whose scope names one is refused (as the SMART reference server
    /// does: `Resources of type "X" do not exist on this server`).
    pub absent_types: Vec<String>,
    /// Search page size when the request has no `_count`.
    pub page_size: usize,
    /// TCP port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Bulk Data export (`$export`) behaviour.
    pub bulk: crate::bulk::BulkConfig,
    /// The quarter of the data served at start (1 or 2; see `data::quarter_changes`);
    /// `Server::set_quarter` and `POST /__admin/quarter?n=2` switch it while running.
    pub quarter: u8,
    /// Types whose searches ignore `patient=` / `subject=` and return every patient's
    /// resources of the type (`Server::set_ignore_patient_param`,
    /// `POST /__admin/ignore-patient?type=T`).
    pub ignore_patient_param: Vec<String>,
    /// One search answered with JSON cut off halfway, every page and every attempt
    /// (`Server::set_truncate`, `POST /__admin/truncate?type=T&patient=ID`).
    pub truncate: Option<crate::switches::TruncateSearch>,
    /// `_id` searches with several values (`Server::set_value_lists`,
    /// `POST /__admin/value-lists?id=refuse`).
    pub id_lists: crate::switches::ValueLists,
    /// `identifier` searches with several values (`Server::set_value_lists`,
    /// `POST /__admin/value-lists?identifier=ignore`).
    pub identifier_lists: crate::switches::ValueLists,
    /// `patient` / `subject` searches with several values (`Server::set_value_lists`,
    /// `POST /__admin/value-lists?patient=first`).
    pub patient_lists: crate::switches::ValueLists,
    /// Types whose `_id` searches answer 400 unless they also name the patient
    /// (`Server::set_id_search_needs_patient`, `POST /__admin/id-needs-patient?type=T`).
    pub id_search_needs_patient: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 1,
            patients: 100,
            flavor: Flavor::Generic,
            auth: AuthMode::Open,
            latency: Duration::ZERO,
            type_latency: Vec::new(),
            fault_rate: 0.0,
            fault_kinds: Vec::new(),
            fault_retry_after: 1,
            binary_as_resource: false,
            absent_types: Vec::new(),
            page_size: 10,
            port: 0,
            bulk: crate::bulk::BulkConfig::default(),
            quarter: crate::data::FIRST_QUARTER,
            ignore_patient_param: Vec::new(),
            truncate: None,
            id_lists: crate::switches::ValueLists::Accept,
            identifier_lists: crate::switches::ValueLists::Accept,
            patient_lists: crate::switches::ValueLists::Accept,
            id_search_needs_patient: Vec::new(),
        }
    }
}
