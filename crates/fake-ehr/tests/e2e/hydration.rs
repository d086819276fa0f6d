//! What hydration needs from the data set: a reference on every path of the task table,
//! hidden Observations (results, members, a nested member, a cycle) found by id (a read or
//! an `_id` search) but never by a patient's searches, Specimens and EpisodesOfCare, the chains of the shared pools, the 404s, the
//! PractitionerRole search by practitioner, Binaries in several MIME types and charsets, and
//! reads counted per path.

use crate::common::{all_pages, client, get};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fake_ehr::data;
use fake_ehr::{Config, Flavor, start};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const SEED: u64 = 1;

/// The `reference` strings reached by a dot-separated path; a segment ending in `*` is an
/// array (docs/hydration.md#task-registry).
fn refs_at<'a>(v: &'a Value, path: &str) -> Vec<&'a str> {
    fn walk<'a>(v: &'a Value, segments: &[&str], out: &mut Vec<&'a str>) {
        let Some((first, rest)) = segments.split_first() else {
            out.extend(v["reference"].as_str());
            return;
        };
        match first.strip_suffix('*') {
            Some(name) => {
                for item in v[name].as_array().into_iter().flatten() {
                    walk(item, rest, out);
                }
            }
            None if !v[*first].is_null() => walk(&v[*first], rest, out),
            None => {}
        }
    }
    let segments: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    walk(v, &segments, &mut out);
    out
}

/// Every resource of patients `0..n`, searchable and hidden, plus the shared pools.
fn universe(n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..n {
        let generated = data::generate(SEED, i);
        out.extend(generated.resources);
        out.extend(generated.hidden);
    }
    for (ty, _, _) in data::SHARED_POOLS {
        out.extend(data::shared_pool(SEED, ty));
    }
    out
}

/// `(input type, path, output type)`: each must reach at least one reference in the data.
const PATHS: [(&str, &str, &str); 63] = [
    ("DocumentReference", "context.encounter*", "EpisodeOfCare"),
    ("Encounter", "episodeOfCare*", "EpisodeOfCare"),
    ("MedicationDispense", "context", "EpisodeOfCare"),
    ("MedicationDispense", "medicationReference", "Medication"),
    ("MedicationRequest", "medicationReference", "Medication"),
    ("DiagnosticReport", "result*", "Observation"),
    ("Observation", "hasMember*", "Observation"),
    ("DiagnosticReport", "specimen*", "Specimen"),
    ("Observation", "specimen", "Specimen"),
    ("ServiceRequest", "specimen*", "Specimen"),
    ("AllergyIntolerance", "recorder", "Practitioner"),
    ("AllergyIntolerance", "asserter", "PractitionerRole"),
    ("Condition", "recorder", "Practitioner"),
    ("Condition", "asserter", "Practitioner"),
    ("Condition", "asserter", "PractitionerRole"),
    ("DiagnosticReport", "performer*", "Practitioner"),
    ("DiagnosticReport", "performer*", "Organization"),
    (
        "DiagnosticReport",
        "resultsInterpreter*",
        "PractitionerRole",
    ),
    ("DocumentReference", "author*", "Practitioner"),
    ("DocumentReference", "authenticator", "PractitionerRole"),
    ("DocumentReference", "custodian", "Organization"),
    ("Encounter", "participant*.individual", "Practitioner"),
    ("Encounter", "participant*.individual", "PractitionerRole"),
    ("Encounter", "location*.location", "Location"),
    ("Encounter", "hospitalization.origin", "Location"),
    ("Encounter", "hospitalization.destination", "Organization"),
    ("Encounter", "serviceProvider", "Organization"),
    ("EpisodeOfCare", "careManager", "Practitioner"),
    ("EpisodeOfCare", "careManager", "PractitionerRole"),
    ("EpisodeOfCare", "managingOrganization", "Organization"),
    ("Immunization", "performer*.actor", "Practitioner"),
    ("Immunization", "performer*.actor", "PractitionerRole"),
    ("Immunization", "manufacturer", "Organization"),
    ("Immunization", "protocolApplied*.authority", "Organization"),
    ("Immunization", "location", "Location"),
    ("MedicationDispense", "performer*.actor", "Practitioner"),
    ("MedicationDispense", "receiver*", "Practitioner"),
    ("MedicationDispense", "location", "Location"),
    ("MedicationRequest", "requester", "Practitioner"),
    ("MedicationRequest", "recorder", "PractitionerRole"),
    ("MedicationRequest", "performer", "Practitioner"),
    (
        "MedicationRequest",
        "dispenseRequest.performer",
        "Organization",
    ),
    ("Observation", "performer*", "Practitioner"),
    ("Observation", "performer*", "PractitionerRole"),
    ("Observation", "performer*", "Organization"),
    ("Patient", "generalPractitioner*", "Practitioner"),
    ("Patient", "generalPractitioner*", "PractitionerRole"),
    ("Patient", "managingOrganization", "Organization"),
    ("Patient", "contact*.organization", "Organization"),
    ("Procedure", "recorder", "Practitioner"),
    ("Procedure", "performer*.actor", "Practitioner"),
    ("Procedure", "performer*.onBehalfOf", "Organization"),
    ("Procedure", "location", "Location"),
    ("ServiceRequest", "requester", "Practitioner"),
    ("ServiceRequest", "performer*", "PractitionerRole"),
    ("ServiceRequest", "locationReference*", "Location"),
    ("Specimen", "collection.collector", "Practitioner"),
    ("Specimen", "collection.collector", "PractitionerRole"),
    ("PractitionerRole", "practitioner", "Practitioner"),
    ("PractitionerRole", "location*", "Location"),
    ("PractitionerRole", "organization", "Organization"),
    ("Location", "partOf", "Location"),
    ("Organization", "partOf", "Organization"),
];

#[test]
fn every_hydration_path_has_references() {
    let all = universe(100);
    let mut paths: Vec<(&str, &str, &str)> = PATHS.to_vec();
    paths.extend([
        ("Location", "managingOrganization", "Organization"),
        ("Practitioner", "qualification*.issuer", "Organization"),
        ("Device", "location", "Location"),
        ("Device", "owner", "Organization"),
    ]);
    for (input, path, output) in paths {
        let found = all
            .iter()
            .filter(|r| r["resourceType"] == input)
            .flat_map(|r| refs_at(r, path))
            .filter(|r| r.starts_with(&format!("{output}/")))
            .count();
        assert!(found > 0, "no {output} reference at {input}.{path}");
    }
    // The references nobody may fetch: one contained, one absolute, on some patients.
    let text: String = all.iter().map(Value::to_string).collect();
    assert!(text.contains("\"reference\":\"#med1\""));
    assert!(text.contains(data::EXTERNAL_PRACTITIONER));
    // One Practitioner that answers 404, referenced from many resources.
    let gone = format!("\"reference\":\"{}\"", data::GONE_PRACTITIONER);
    assert!(text.matches(&gone).count() >= 20, "prac-gone-1 referenced");
    assert!(text.contains(data::GONE_MEDICATION));
    assert!(text.contains(data::GONE_ORGANIZATION));
}

/// `Observation/<id>` references of a resource's `result` and `hasMember`.
fn observation_refs(r: &Value) -> Vec<String> {
    let mut out: Vec<&str> = refs_at(r, "result*");
    out.extend(refs_at(r, "hasMember*"));
    out.into_iter()
        .filter_map(|s| s.strip_prefix("Observation/"))
        .map(str::to_string)
        .collect()
}

#[test]
fn hidden_observations_form_nested_members_and_cycles() {
    let mut cycles = 0;
    let mut nested = 0;
    let mut missing = 0;
    for i in 0..100 {
        let searchable = data::patient_resources(SEED, i);
        let hidden = data::hidden_resources(SEED, i);
        assert_eq!(hidden, data::hidden_resources(SEED, i), "deterministic");
        let by_id: BTreeMap<String, &Value> = hidden
            .iter()
            .filter(|r| r["resourceType"] == "Observation")
            .map(|r| (r["id"].as_str().unwrap_or_default().to_string(), r))
            .collect();
        for r in &hidden {
            let id = r["id"].as_str().unwrap_or_default();
            assert!(id.starts_with('h'), "{id}");
            assert_eq!(data::patient_index_from_id(id), Some(i));
            assert!(
                !searchable
                    .iter()
                    .any(|s| s["id"] == id && s["resourceType"] == r["resourceType"])
            );
        }
        // Breadth-first from what searches return: depth 1 = referenced by a searchable
        // resource, depth 3 = a member of a member of such an Observation.
        let mut depth: BTreeMap<String, usize> = BTreeMap::new();
        let mut queue: std::collections::VecDeque<(String, usize)> = searchable
            .iter()
            .flat_map(observation_refs)
            .filter(|id| id.starts_with("hobs-"))
            .map(|id| (id, 1))
            .collect();
        while let Some((id, d)) = queue.pop_front() {
            if depth.contains_key(&id) {
                continue;
            }
            depth.insert(id.clone(), d);
            match by_id.get(&id) {
                Some(obs) => queue.extend(observation_refs(obs).into_iter().map(|m| (m, d + 1))),
                None => missing += 1,
            }
        }
        for (id, obs) in &by_id {
            for member in observation_refs(obs) {
                if by_id
                    .get(&member)
                    .is_some_and(|m| observation_refs(m).contains(id))
                {
                    cycles += 1;
                }
            }
        }
        nested += depth.values().filter(|&&d| d >= 3).count();
        // Every hidden Observation is reachable from a searchable resource.
        for id in by_id.keys() {
            assert!(depth.contains_key(id), "patient {i}: {id} unreachable");
        }
    }
    assert!(cycles > 0, "a hasMember cycle");
    assert!(nested > 0, "a member of a member");
    assert!(missing > 0, "a result that answers 404");
}

#[tokio::test]
async fn hidden_resources_are_read_by_id_but_never_searched() {
    for (patients, flavor) in [(10, Flavor::Generic), (1000, Flavor::Epic)] {
        let server = start(Config {
            patients,
            flavor,
            ..Config::default()
        })
        .await
        .expect("start");
        let c = client();
        let base = server.base_url();
        let i = 4; // Has a hidden EpisodeOfCare, hobs-05 and hobs-06.
        let hidden = data::hidden_resources(SEED, i);
        let types: BTreeSet<&str> = hidden
            .iter()
            .filter_map(|r| r["resourceType"].as_str())
            .collect();
        assert_eq!(
            types,
            BTreeSet::from(["EpisodeOfCare", "Observation", "Specimen"])
        );
        for r in &hidden {
            let path = format!("{}/{}", r["resourceType"].as_str().unwrap_or_default(), {
                r["id"].as_str().unwrap_or_default()
            });
            let (status, body) = get(&c, &format!("{base}/{path}")).await;
            assert_eq!(status, 200, "{path}");
            assert_eq!(&body, r, "{path}");
            // `_id` finds it, as a read does (a client reads many at once that way).
            let ty = r["resourceType"].as_str().unwrap_or_default();
            let id = r["id"].as_str().unwrap_or_default();
            let (status, bundle) = get(&c, &format!("{base}/{ty}?_id={id},nothing-{id}")).await;
            assert_eq!(status, 200);
            assert_eq!(bundle["total"], 1, "{path}");
            assert_eq!(&bundle["entry"][0]["resource"], r, "{path}");
        }
        let pid = data::patient_id(i);
        let url = if flavor == Flavor::Epic {
            format!("{base}/Observation?patient={pid}&category=laboratory,vital-signs")
        } else {
            format!("{base}/Observation?patient={pid}")
        };
        let (found, _) = all_pages(&c, &url).await;
        assert!(!found.is_empty());
        assert!(
            found
                .iter()
                .all(|o| { !o["id"].as_str().is_some_and(|id| id.starts_with("hobs-")) })
        );
        if flavor == Flavor::Generic {
            for ty in ["Specimen", "EpisodeOfCare"] {
                let (found, _) = all_pages(&c, &format!("{base}/{ty}?patient={pid}")).await;
                assert!(
                    found
                        .iter()
                        .all(|r| { r["id"].as_str().is_some_and(|id| !id.starts_with('h')) })
                );
            }
        }
    }
}

#[tokio::test]
async fn shared_chains_and_404s() {
    let server = start(Config::default()).await.expect("start");
    let c = client();
    let base = server.base_url();
    let field = |v: &Value, k: &str| v[k]["reference"].as_str().unwrap_or_default().to_string();
    // Organization.partOf: org-02 → org-11 → org-12 (top); org-09 → a 404.
    let (_, org) = get(&c, &format!("{base}/{}", "Organization/org-02")).await;
    assert_eq!(field(&org, "partOf"), "Organization/org-11");
    let (_, org) = get(&c, &format!("{base}/{}", "Organization/org-11")).await;
    assert_eq!(field(&org, "partOf"), "Organization/org-12");
    let (_, org) = get(&c, &format!("{base}/{}", "Organization/org-12")).await;
    assert!(org["partOf"].is_null());
    let (_, org) = get(&c, &format!("{base}/{}", "Organization/org-09")).await;
    assert_eq!(field(&org, "partOf"), data::GONE_ORGANIZATION);
    // Location.partOf: room → building → campus, which org-12 manages.
    let (_, loc) = get(&c, &format!("{base}/{}", "Location/loc-01")).await;
    assert_eq!(field(&loc, "partOf"), "Location/loc-21");
    let (_, loc) = get(&c, &format!("{base}/{}", "Location/loc-21")).await;
    assert_eq!(field(&loc, "partOf"), "Location/loc-23");
    assert_eq!(field(&loc, "managingOrganization"), "Organization/org-11");
    let (_, loc) = get(&c, &format!("{base}/{}", "Location/loc-23")).await;
    assert!(loc["partOf"].is_null());
    assert_eq!(field(&loc, "managingOrganization"), "Organization/org-12");
    // Roles lead to practitioners and locations nobody else names.
    let (_, role) = get(&c, &format!("{base}/{}", "PractitionerRole/role-05")).await;
    assert_eq!(field(&role, "practitioner"), "Practitioner/prac-37");
    let (_, role) = get(&c, &format!("{base}/{}", "PractitionerRole/role-08")).await;
    assert_eq!(role["location"][1]["reference"], "Location/loc-20");
    let (_, role) = get(&c, &format!("{base}/{}", "PractitionerRole/role-03")).await;
    assert_eq!(field(&role, "practitioner"), data::GONE_PRACTITIONER);
    let (_, prac) = get(&c, &format!("{base}/{}", "Practitioner/prac-03")).await;
    assert_eq!(
        prac["qualification"][0]["issuer"]["reference"],
        "Organization/org-11"
    );
    for gone in [
        data::GONE_PRACTITIONER,
        data::GONE_MEDICATION,
        data::GONE_ORGANIZATION,
        "Observation/hobs-000000-99",
    ] {
        let (status, body) = get(&c, &format!("{base}/{gone}")).await;
        assert_eq!(status, 404, "{gone}");
        assert_eq!(body["resourceType"], "OperationOutcome");
    }

    // Patients never name the members kept for chains and searches.
    let text: String = (0..100)
        .flat_map(|i| data::generate(SEED, i).resources)
        .map(|r| r.to_string())
        .collect();
    for k in 21..=30 {
        assert!(!text.contains(&format!("PractitionerRole/role-{k:02}\"")));
    }
    for unnamed in [
        "Practitioner/prac-37\"",
        "Organization/org-11\"",
        "Organization/org-12\"",
        "Location/loc-19\"",
        "Location/loc-23\"",
    ] {
        assert!(!text.contains(unnamed), "{unnamed}");
    }
}

#[tokio::test]
async fn practitioner_role_search() {
    for flavor in [Flavor::Generic, Flavor::Epic] {
        let server = start(Config {
            flavor,
            ..Config::default()
        })
        .await
        .expect("start");
        let c = client();
        let base = server.base_url();
        let roles = data::shared_pool(SEED, "PractitionerRole");
        let mut found_roles = BTreeSet::new();
        let mut with_several = 0;
        for k in 1..=40 {
            let prac = format!("prac-{k:02}");
            let want: Vec<Value> = roles
                .iter()
                .filter(|r| r["practitioner"]["reference"] == format!("Practitioner/{prac}"))
                .cloned()
                .collect();
            // Paged one role at a time.
            let (got, pages) = all_pages(
                &c,
                &format!("{base}/PractitionerRole?practitioner={prac}&_count=1"),
            )
            .await;
            assert_eq!(got, want, "{prac}");
            assert_eq!(pages, want.len().max(1), "{prac}");
            with_several += usize::from(want.len() > 1);
            found_roles.extend(
                got.iter()
                    .filter_map(|r| r["id"].as_str().map(str::to_string)),
            );
        }
        assert!(with_several > 0, "a practitioner with several roles");
        // Roles nobody references are found by searching.
        assert!(found_roles.contains("role-21") || found_roles.contains("role-22"));
        assert!(found_roles.len() >= 25, "{found_roles:?}");
        // The reference form works; unknown practitioners have no roles.
        let (got, _) = all_pages(
            &c,
            &format!("{base}/PractitionerRole?practitioner=Practitioner/prac-37"),
        )
        .await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["id"], "role-05");
        let (status, bundle) =
            get(&c, &format!("{base}/PractitionerRole?practitioner=prac-99")).await;
        assert_eq!(status, 200);
        assert_eq!(bundle["total"], 0);
        let (status, _) = get(
            &c,
            &format!("{base}/PractitionerRole?practitioner=Patient/pat-000001"),
        )
        .await;
        assert_eq!(status, 400);
        let (status, _) = get(&c, &format!("{base}/Practitioner?practitioner=prac-01")).await;
        assert_eq!(status, 400, "only PractitionerRole has it");
        // The CapabilityStatement says so.
        let (_, cap) = get(&c, &format!("{base}/metadata")).await;
        let role = cap["rest"][0]["resource"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["type"] == "PractitionerRole")
            .cloned()
            .unwrap_or_default();
        assert!(
            role["searchParam"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == "practitioner" && p["type"] == "reference"),
            "{role}"
        );
    }
}

/// `(url, attachment)` of every attachment of patients `0..n`.
fn attachments(n: usize) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for i in 0..n {
        for r in data::patient_resources(SEED, i) {
            let list: Vec<Value> = match r["resourceType"].as_str() {
                Some("DocumentReference") => r["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| c["attachment"].clone())
                    .collect(),
                Some("DiagnosticReport") => {
                    r["presentedForm"].as_array().cloned().unwrap_or_default()
                }
                _ => continue,
            };
            for a in list {
                out.push((a["url"].as_str().unwrap_or_default().to_string(), a));
            }
        }
    }
    out
}

#[test]
fn binaries_come_in_several_types_and_charsets() {
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut charsets: BTreeSet<String> = BTreeSet::new();
    let mut declared_types: BTreeSet<String> = BTreeSet::new();
    for (url, a) in attachments(100) {
        let id = url.strip_prefix("Binary/").unwrap_or_default();
        let kind = id.rsplit('-').next().unwrap_or_default().to_string();
        let binary = data::binary(SEED, id).unwrap_or_default();
        let declared = a["contentType"].as_str().unwrap_or_default();
        declared_types.insert(declared.to_string());
        let served = binary["contentType"].as_str().unwrap_or_default();
        let bytes = STANDARD
            .decode(binary["data"].as_str().unwrap_or_default())
            .unwrap_or_default();
        assert!(!bytes.is_empty(), "{id}");
        let mime = |ct: &str| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_lowercase()
        };
        match kind.as_str() {
            "txt" | "html" | "xhtml" => {
                assert_eq!(mime(declared), mime(served), "{id}");
                let charset = served.split_once("; charset=").map(|(_, c)| c.to_string());
                if charset.as_deref() == Some("ascii") {
                    assert!(bytes.is_ascii(), "{id}");
                }
                charsets.insert(charset.unwrap_or_else(|| "(none)".into()));
            }
            "pdf" => {
                assert_eq!(declared, "application/pdf");
                assert_eq!(served, "application/pdf");
            }
            "rtf" => {
                assert_eq!(declared, "text/html", "the attachment is wrong");
                assert_eq!(served, "application/rtf");
            }
            "pre" => {
                assert_eq!(a["data"], binary["data"], "{id}");
            }
            other => panic!("unexpected Binary kind {other}"),
        }
        assert_eq!(a.get("data").is_some(), kind == "pre", "{id}");
        *kinds.entry(kind).or_default() += 1;
    }
    for kind in ["txt", "html", "xhtml", "pdf", "rtf", "pre"] {
        assert!(kinds.get(kind).is_some_and(|&n| n > 0), "{kind}: {kinds:?}");
    }
    assert!(declared_types.contains("text/plain; charset=UTF-8"));
    assert!(declared_types.contains("Text/HTML"));
    assert_eq!(
        charsets,
        BTreeSet::from(["(none)", "UTF-8", "ascii", "utf-8"].map(String::from))
    );
}

#[tokio::test]
async fn binaries_are_raw_on_request_and_reads_are_counted_per_path() {
    let server = start(Config::default()).await.expect("start");
    let c = client();
    let base = server.base_url();
    let all = attachments(20);
    let mut seen = BTreeSet::new();
    for (url, a) in &all {
        let id = url.strip_prefix("Binary/").unwrap_or_default();
        let kind = id.rsplit('-').next().unwrap_or_default();
        if !seen.insert(kind.to_string()) {
            continue;
        }
        let declared = a["contentType"].as_str().unwrap_or_default();
        let accept = declared.split(';').next().unwrap_or_default();
        let binary = data::binary(SEED, id).unwrap_or_default();
        let response = c
            .get(format!("{base}/{url}"))
            .header("Accept", accept)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_eq!(content_type, binary["contentType"], "{url}");
        let bytes = response.bytes().await.expect("body");
        assert_eq!(
            STANDARD.encode(&bytes),
            binary["data"].as_str().unwrap_or_default()
        );
    }
    assert!(seen.contains("txt") && seen.contains("html"));
    // JSON when JSON is asked for.
    let (status, body) = get(&c, &format!("{base}/{}", all[0].0)).await;
    assert_eq!(status, 200);
    assert_eq!(body["resourceType"], "Binary");

    let before = server.stats().reads_by_path;
    for path in [
        "Practitioner/prac-01",
        "Practitioner/prac-01",
        "Practitioner/prac-gone-1",
        "Observation/hobs-000001-01",
    ] {
        get(&c, &format!("{base}/{path}")).await;
    }
    let after = server.stats().reads_by_path;
    let n = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    assert_eq!(
        n(&after, "Practitioner/prac-01") - n(&before, "Practitioner/prac-01"),
        2
    );
    assert_eq!(n(&after, "Practitioner/prac-gone-1"), 1);
    assert_eq!(n(&after, "Observation/hobs-000001-01"), 1);
    let stats = server.stats();
    assert_eq!(stats.reads, stats.reads_by_path.values().sum::<u64>());
}
