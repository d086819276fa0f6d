//! What the server says about itself: the CapabilityStatement (`/metadata`, per flavor) and
//! the SMART configuration (`/.well-known/smart-configuration`).

use crate::catalog::{self, Kind};
use crate::config::Flavor;
use serde_json::{Value, json};

pub const EPIC_VERSION: &str = "November 2024";
pub const EPIC_RELEASE_DATE: &str = "2024-11-04";

pub fn capability_statement(flavor: Flavor, base_url: &str, token_url: &str) -> Value {
    let resources: Vec<Value> = catalog::TYPES
        .iter()
        .map(|info| {
            let interactions = if info.kind == Kind::Binary {
                json!([{ "code": "read" }])
            } else {
                json!([{ "code": "read" }, { "code": "search-type" }])
            };
            let params: Vec<Value> = catalog::search_params(info, flavor)
                .into_iter()
                .map(|(name, kind)| match name {
                    // Declared as lists: a client may read many resources (or look up many
                    // MRNs) in one search. The switches that refuse or ignore lists leave
                    // this as it is, as real servers' statements do.
                    "_id" | "identifier" => json!({
                        "name": name,
                        "type": kind,
                        "documentation": "Several values separated by commas match any of them."
                    }),
                    _ => json!({ "name": name, "type": kind }),
                })
                .collect();
            json!({
                "type": info.name,
                "interaction": interactions,
                "searchParam": params
            })
        })
        .collect();
    let (software, publisher, name) = match flavor {
        Flavor::Epic => (
            json!({ "name": "Epic", "version": EPIC_VERSION, "releaseDate": EPIC_RELEASE_DATE }),
            "Epic",
            "Epic",
        ),
        Flavor::Generic => (
            json!({ "name": "fake-ehr", "version": env!("CARGO_PKG_VERSION") }),
            "fake-ehr",
            "fake-ehr",
        ),
    };
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2024-11-04",
        "publisher": publisher,
        "kind": "instance",
        "software": software,
        "implementation": { "description": format!("{name} synthetic FHIR server"), "url": base_url },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "security": {
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{ "url": "token", "valueUri": token_url }]
                }],
                "service": [{
                    "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR"
                    }]
                }]
            },
            "resource": resources
        }]
    })
}

pub fn smart_configuration(token_url: &str) -> Value {
    json!({
        "token_endpoint": token_url,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384", "RS256", "ES256"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": ["system/*.read", "system/*.rs"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1"]
    })
}
