//! Type selection, type filters and since handling (spec §6): which types a run exports,
//! with which search parameters. Pure logic over the CLI values and server capabilities.

use crate::fhir::Capabilities;
use crate::resources::ResourceType;
use crate::timestamp::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

/// Type → set of search-parameter strings (ORed). An empty set means "no filter".
pub type Filters = BTreeMap<ResourceType, BTreeSet<String>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinceMode {
    Updated,
    Created,
}

impl SinceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SinceMode::Updated => "updated",
            SinceMode::Created => "created",
        }
    }
}

/// Outcome of `--type` parsing (spec §6.1).
#[derive(Debug, PartialEq, Eq)]
pub enum TypeSelection {
    Selected(Vec<ResourceType>),
    /// `help` was asked for: print `type_help()` and exit 0.
    Help,
    /// Unknown token as typed: print the message, a blank line, `type_help()`, exit 2.
    Unknown(String),
}

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("Type filter arguments must be in the format 'Resource?params'.")]
    BadFormat,
    #[error("Type filter for {0} but that type is not included in --type.")]
    NotSelected(String),
}

pub fn parse_types(values: &[String]) -> TypeSelection {
    let _ = values;
    todo!()
}

/// `These resource types are supported:` listing.
pub fn type_help() -> String {
    todo!()
}

/// Spec §6.2; prints `Skipping <Type> because the server does not support it.`
pub fn limit_to_server(types: Vec<ResourceType>, caps: &Capabilities) -> Vec<ResourceType> {
    let _ = (types, caps);
    todo!()
}

/// Spec §6.3 + default filters (§5.4). Every selected type gets an entry.
pub fn build_filters(
    type_filters: &[String],
    types: &[ResourceType],
    default_filters: bool,
    epic: bool,
) -> Result<Filters, FilterError> {
    let _ = (type_filters, types, default_filters, epic);
    todo!()
}

/// Spec §6.4 (`auto` prints the fallback message when it picks `created`).
pub fn since_mode(
    requested: Option<SinceMode>,
    since: Option<&str>,
    caps: &Capabilities,
) -> Option<SinceMode> {
    let _ = (requested, since, caps);
    todo!()
}

/// Spec §6.5.
pub fn since_resources(
    types: &[ResourceType],
    mode: Option<SinceMode>,
    caps: &Capabilities,
) -> BTreeSet<ResourceType> {
    let _ = (types, mode, caps);
    todo!()
}

/// The since value to apply (spec §6.7).
#[derive(Clone, Debug)]
pub enum Since {
    None,
    Literal(String),
    PerType(BTreeMap<ResourceType, Timestamp>),
}

/// Spec §6.7: base filters plus since parameters.
pub fn effective_params(
    base: &Filters,
    since: &Since,
    mode: Option<SinceMode>,
    caps: &Capabilities,
    bulk: bool,
) -> Filters {
    let _ = (base, since, mode, caps, bulk);
    todo!()
}
