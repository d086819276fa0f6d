//! What an export asks for once the server is known: the types it supports, the base filters
//! stored in `.metadata`, the since value (`auto` resolved against the managed folder's
//! earlier exports) and the search parameters that follow.

use crate::error::AppError;
use crate::fhir::Capabilities;
use crate::filters::{self, Filters, Since, SinceMode};
use crate::folder::{ExportContext, history};
use crate::report::Reporter;
use crate::resources::ResourceType;
use std::path::Path;

/// `--type-filter` values as given, and whether the default filters apply.
#[derive(Clone, Debug, Default)]
pub struct FilterChoice {
    pub type_filters: Vec<String>,
    pub default_filters: bool,
}

/// What to export, once the server's capabilities are known: the context stored in
/// `.metadata`, the since value to apply and the effective search parameters.
pub struct Selection {
    pub types: Vec<ResourceType>,
    pub context: ExportContext,
    pub since: Since,
    pub effective: Filters,
}

/// Where a run stands: `--since auto` needs the managed folder's earlier exports, and bulk
/// runs say their single `_since` (docs/since.md#since-messages).
pub struct SinceSource<'a> {
    pub managed_dir: Option<&'a Path>,
    pub bulk: bool,
}

#[allow(clippy::too_many_arguments)]
pub fn select(
    types: Vec<ResourceType>,
    filters: &FilterChoice,
    since: Option<&str>,
    since_mode: Option<SinceMode>,
    caps: &Capabilities,
    epic: bool,
    source: SinceSource<'_>,
    reporter: &Reporter,
) -> Result<Selection, AppError> {
    let types = filters::limit_to_server(types, caps, reporter);
    let base =
        filters::build_filters(&filters.type_filters, &types, filters.default_filters, epic)?;
    let mode = filters::since_mode(since_mode, since, caps, reporter);
    let mut since_resources = filters::since_resources(&types, mode, caps);
    let since_value = match since {
        Some("auto") => {
            let Some(dir) = source.managed_dir else {
                // The Python tool sends `auto` literally here
                // (docs/differences.md#since-auto-outside-export); refuse instead.
                return Err(AppError::Message(
                    "--since auto needs the earlier exports of a managed folder: use it with 'export', or give a timestamp.".into(),
                ));
            };
            let probe = ExportContext {
                filters: base.clone(),
                since: Some("auto".into()),
                since_mode: mode,
                since_resources: Default::default(),
            };
            let per_type = history::since_auto(dir, &probe);
            if per_type.is_empty() {
                return Err(AppError::Message(
                    "Could not detect a since value to use from previous exports.\nTry without a --since parameter, or provide a specific timestamp.".into(),
                ));
            }
            // A type never exported before is exported in full: record it as such, so
            // symlinks and deleted-resource detection treat it as a full export.
            since_resources.retain(|t| per_type.contains_key(t));
            Since::PerType(per_type)
        }
        Some(s) => Since::Literal(s.to_string()),
        None => Since::None,
    };
    let effective = filters::effective_params(&base, &since_value, mode, caps, source.bulk);
    match &since_value {
        Since::PerType(per_type) => {
            let bulk_since = filters::bulk_since(&since_value, mode, &types);
            match (source.bulk, bulk_since) {
                (true, Some(v)) => reporter.info(format!("Using since value of '{v}'.")),
                (true, None) if mode != Some(filters::SinceMode::Created) => {}
                _ => {
                    let mut by_name: Vec<_> = per_type.iter().collect();
                    by_name.sort_by_key(|(t, _)| t.as_str());
                    for (t, ts) in by_name {
                        reporter.info(format!(
                            "Using since value of '{}' for {t}.",
                            crate::timestamp::isoformat(ts)
                        ));
                    }
                }
            }
        }
        Since::Literal(s) => reporter.info(format!("Using since value of '{s}'.")),
        Since::None => {}
    }
    Ok(Selection {
        types,
        context: ExportContext {
            filters: base,
            since: since.map(str::to_string),
            since_mode: mode,
            since_resources,
        },
        since: since_value,
        effective,
    })
}
