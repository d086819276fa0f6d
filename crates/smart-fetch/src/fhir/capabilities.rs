//! What the server says about itself (CapabilityStatement): vendor, supported types and
//! search parameters (spec §6.2, §6.6, §7.2).

use serde_json::Value;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    Epic,
    Oracle,
    Unknown,
}

/// An empty statement (`{}`) when the server gave none.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    raw: Arc<Value>,
}

impl Capabilities {
    pub fn new(raw: Value) -> Self {
        Self { raw: Arc::new(raw) }
    }

    pub fn raw(&self) -> &Value {
        &self.raw
    }

    pub fn vendor(&self) -> Vendor {
        todo!()
    }

    /// Types of the first `rest[mode=server]` entry that has `resource`; `None` = keep all.
    pub fn supported_types(&self) -> Option<Vec<String>> {
        todo!()
    }

    /// Spec §6.6.
    pub fn supports_search_param(&self, resource_type: &str, name: &str) -> bool {
        let _ = (resource_type, name);
        todo!()
    }

    pub fn software_name(&self) -> Option<&str> {
        todo!()
    }
    pub fn software_version(&self) -> Option<&str> {
        todo!()
    }
    pub fn software_release_date(&self) -> Option<&str> {
        todo!()
    }
    pub fn fhir_version(&self) -> Option<&str> {
        todo!()
    }
}
