//! What the server says about itself (CapabilityStatement): vendor, supported types and
//! search parameters (docs/cli.md#types-the-server-lacks,
//! docs/since.md#declared-search-parameters, docs/server.md#vendor-detection).

use serde_json::Value;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    Epic,
    Oracle,
    Unknown,
}

/// An empty statement (`{}`) when the server gave none.
#[derive(Clone, Debug)]
pub struct Capabilities {
    raw: Arc<Value>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::new(Value::Object(serde_json::Map::new()))
    }
}

impl Capabilities {
    pub fn new(raw: Value) -> Self {
        Self { raw: Arc::new(raw) }
    }

    pub fn raw(&self) -> &Value {
        &self.raw
    }

    pub fn vendor(&self) -> Vendor {
        let publisher = self.raw.get("publisher").and_then(Value::as_str);
        if matches!(publisher, Some("Cerner" | "Oracle Health")) {
            Vendor::Oracle
        } else if self.software_name() == Some("Epic") {
            Vendor::Epic
        } else {
            Vendor::Unknown
        }
    }

    /// Types of the first `rest[mode=server]` entry that has `resource`; `None` = keep all.
    pub fn supported_types(&self) -> Option<Vec<String>> {
        let rest = self.server_rests().find(|r| r.get("resource").is_some())?;
        let types = rest
            .get("resource")
            .and_then(Value::as_array)
            .map(|resources| {
                resources
                    .iter()
                    .filter_map(|r| r.get("type").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Some(types)
    }

    /// docs/since.md#declared-search-parameters: the first `server` rest entry, the first
    /// entry of the type there.
    pub fn supports_search_param(&self, resource_type: &str, name: &str) -> bool {
        let Some(rest) = self.server_rests().next() else {
            return false;
        };
        let Some(resource) = rest
            .get("resource")
            .and_then(Value::as_array)
            .and_then(|rs| {
                rs.iter()
                    .find(|r| r.get("type").and_then(Value::as_str) == Some(resource_type))
            })
        else {
            return false;
        };
        resource
            .get("searchParam")
            .and_then(Value::as_array)
            .is_some_and(|params| {
                params
                    .iter()
                    .any(|p| p.get("name").and_then(Value::as_str) == Some(name))
            })
    }

    pub fn software_name(&self) -> Option<&str> {
        self.raw.pointer("/software/name").and_then(Value::as_str)
    }
    pub fn software_version(&self) -> Option<&str> {
        self.raw
            .pointer("/software/version")
            .and_then(Value::as_str)
    }
    pub fn software_release_date(&self) -> Option<&str> {
        self.raw
            .pointer("/software/releaseDate")
            .and_then(Value::as_str)
    }
    pub fn fhir_version(&self) -> Option<&str> {
        self.raw.get("fhirVersion").and_then(Value::as_str)
    }

    fn server_rests(&self) -> impl Iterator<Item = &Value> {
        self.raw
            .get("rest")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| r.get("mode").and_then(Value::as_str) == Some("server"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caps() -> Capabilities {
        Capabilities::new(json!({
            "resourceType": "CapabilityStatement",
            "fhirVersion": "4.0.1",
            "software": {"name": "Epic", "version": "1.2", "releaseDate": "2024-01-01"},
            "rest": [
                {"mode": "client", "resource": [{"type": "Device"}]},
                {"mode": "server", "security": {}},
                {"mode": "server", "resource": [
                    {"type": "Patient", "searchParam": [{"name": "_lastUpdated"}]},
                    {"type": "Condition"}
                ]}
            ]
        }))
    }

    #[test]
    fn vendor_detection() {
        assert_eq!(caps().vendor(), Vendor::Epic);
        let oracle = json!({"publisher": "Oracle Health", "software": {"name": "Epic"}});
        assert_eq!(Capabilities::new(oracle).vendor(), Vendor::Oracle);
        assert_eq!(
            Capabilities::new(json!({"publisher": "Cerner"})).vendor(),
            Vendor::Oracle
        );
        assert_eq!(Capabilities::default().vendor(), Vendor::Unknown);
    }

    #[test]
    fn types_and_search_params() {
        let c = caps();
        assert_eq!(
            c.supported_types(),
            Some(vec!["Patient".to_string(), "Condition".to_string()])
        );
        // Only the first server entry counts, which here has no resources.
        assert!(!c.supports_search_param("Patient", "_lastUpdated"));
        let c = Capabilities::new(json!({"rest": [{"mode": "server", "resource": [
            {"type": "Patient", "searchParam": [{"name": "_lastUpdated"}]}]}]}));
        assert!(c.supports_search_param("Patient", "_lastUpdated"));
        assert!(!c.supports_search_param("Patient", "birthdate"));
        assert!(!c.supports_search_param("Condition", "_lastUpdated"));
        assert_eq!(Capabilities::default().supported_types(), None);
        assert_eq!(caps().software_version(), Some("1.2"));
        assert_eq!(caps().software_release_date(), Some("2024-01-01"));
        assert_eq!(caps().fhir_version(), Some("4.0.1"));
    }
}
