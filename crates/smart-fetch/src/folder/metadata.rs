//! `.metadata` files (spec §10): output (workdir) and managed kinds, key order preserved,
//! written atomically.

use super::FolderError;
use crate::filters::{Filters, SinceMode};
use crate::resources::ResourceType;
use crate::timestamp::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What a crawl or bulk run is exporting, compared against a workdir's stored context.
#[derive(Clone, Debug, Default)]
pub struct ExportContext {
    /// Base filters, without since parameters.
    pub filters: Filters,
    /// `--since` as given (`"auto"` stored literally).
    pub since: Option<String>,
    pub since_mode: Option<SinceMode>,
    pub since_resources: BTreeSet<ResourceType>,
}

pub struct OutputMetadata {
    dir: PathBuf,
    data: serde_json::Map<String, serde_json::Value>,
}

impl OutputMetadata {
    /// Missing file = empty metadata; a managed `.metadata` is a kind error.
    pub fn load(dir: &Path) -> Result<Self, FolderError> {
        let _ = dir;
        todo!()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn raw(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.data
    }

    /// Stored base filters, if any.
    pub fn filters(&self) -> Option<Filters> {
        todo!()
    }

    /// Spec §10.3: check then record the context (writes only when something changed).
    pub fn note_context(&mut self, ctx: &ExportContext) -> Result<(), FolderError> {
        let _ = ctx;
        todo!()
    }

    /// Spec §14.3 "same context" (the auto-since rule needs the selected types).
    pub fn has_same_context(&self, ctx: &ExportContext, selected: &[ResourceType]) -> bool {
        let _ = (ctx, selected);
        todo!()
    }

    pub fn done(&self) -> BTreeMap<String, Timestamp> {
        todo!()
    }

    pub fn is_done(&self, t: ResourceType) -> bool {
        let _ = t;
        todo!()
    }

    pub fn mark_done(&mut self, t: ResourceType, ts: &Timestamp) -> Result<(), FolderError> {
        let _ = (t, ts);
        todo!()
    }

    pub fn earliest_done(&self) -> Option<Timestamp> {
        todo!()
    }

    pub fn set_new_patients(&mut self, ids: &BTreeSet<String>) -> Result<(), FolderError> {
        let _ = ids;
        todo!()
    }

    pub fn mark_complete(&mut self) -> Result<(), FolderError> {
        todo!()
    }
}

pub struct ManagedMetadata {
    dir: PathBuf,
    data: serde_json::Map<String, serde_json::Value>,
}

impl ManagedMetadata {
    pub fn load(dir: &Path) -> Result<Self, FolderError> {
        let _ = dir;
        todo!()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Spec §10.5: write on first use, compare FHIR URL and group afterwards.
    pub fn note_context(&mut self, fhir_url: &str, group: Option<&str>) -> Result<(), FolderError> {
        let _ = (fhir_url, group, &self.dir);
        todo!()
    }
}
