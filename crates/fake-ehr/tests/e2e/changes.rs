//! `GET /__admin/changes`: quarter 2's change list, checked against what the server itself
//! answers in each quarter (every patient's resources of every type, searched over HTTP and
//! compared as JSON), not against the function that computes the list.

use crate::common::{all_pages, client, get};
use fake_ehr::data;
use fake_ehr::{Config, Flavor, start};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const N: usize = 12;

/// Types a patient's resources are searched by (`patient=`).
const TYPES: [&str; 14] = [
    "Encounter",
    "AllergyIntolerance",
    "Condition",
    "Device",
    "DiagnosticReport",
    "DocumentReference",
    "EpisodeOfCare",
    "Immunization",
    "MedicationDispense",
    "MedicationRequest",
    "Observation",
    "Procedure",
    "ServiceRequest",
    "Specimen",
];

/// `Type/id` → resource of everything the server holds for its patients now.
async fn holdings(c: &reqwest::Client, base: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let (patients, _) = all_pages(c, &format!("{base}/Patient?_count=50")).await;
    for p in patients {
        let id = p["id"].as_str().unwrap_or_default().to_string();
        for ty in TYPES {
            let (found, _) = all_pages(c, &format!("{base}/{ty}?patient={id}&_count=100")).await;
            for r in found {
                let k = format!("{ty}/{}", r["id"].as_str().unwrap_or_default());
                out.insert(k, r);
            }
        }
        out.insert(format!("Patient/{id}"), p);
    }
    out
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn the_change_list_is_what_a_client_sees_change() {
    let server = start(Config {
        flavor: Flavor::Generic,
        patients: N,
        ..Config::default()
    })
    .await
    .expect("start");
    let c = client();
    let base = server.base_url();
    let admin = base.trim_end_matches("/fhir").to_string();
    let q1 = holdings(&c, &base).await;
    // The list does not depend on the quarter served.
    let (status, before) = get(&c, &format!("{admin}/__admin/changes")).await;
    assert_eq!(status, 200);
    server.set_quarter(2).expect("quarter 2");
    let q2 = holdings(&c, &base).await;
    let (_, list) = get(&c, &format!("{admin}/__admin/changes")).await;
    assert_eq!(before, list);

    let differs: BTreeSet<String> = q2
        .iter()
        .filter(|(k, v)| q1.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    let mut changed = BTreeSet::new();
    for kind in ["new", "backfilled", "modified", "moved"] {
        let of_kind = strings(&list[kind]);
        assert!(!of_kind.is_empty(), "{kind}");
        changed.extend(of_kind);
    }
    for pair in list["reidentified"].as_array().into_iter().flatten() {
        let (from, to) = (pair["from"].as_str(), pair["to"].as_str());
        let (Some(from), Some(to)) = (from, to) else {
            panic!("{pair}")
        };
        assert!(q1.contains_key(from) && !q2.contains_key(from), "{from}");
        assert_eq!(
            q1[from].get("code"),
            q2[to].get("code"),
            "{from} → {to}: same content"
        );
        changed.insert(to.to_string());
    }
    assert_eq!(changed, differs);
    assert_eq!(list["changedCount"], changed.len());
    let gone: BTreeSet<String> = q1
        .keys()
        .filter(|k| !q2.contains_key(*k))
        .cloned()
        .collect();
    assert_eq!(strings(&list["deleted"]), gone);
    let new_patients: BTreeSet<String> = (N..data::patients_in_quarter(N, 2))
        .map(data::patient_id)
        .collect();
    assert_eq!(strings(&list["newPatients"]), new_patients);

    // Read-only resources that moved to a survivor now name it.
    let moved = strings(&list["hiddenMoved"]);
    assert!(!moved.is_empty());
    for k in &moved {
        let (_, body) = get(&c, &format!("{base}/{k}")).await;
        let text = body.to_string();
        assert!(
            text.contains("\"Patient/pat-000006\"") && !text.contains("\"Patient/pat-000007\""),
            "{k}: {text}"
        );
    }
    for k in strings(&list["hiddenDeleted"]) {
        assert_eq!(get(&c, &format!("{base}/{k}")).await.0, 404, "{k}");
    }

    let response = c
        .post(format!("{admin}/__admin/changes"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 405);
}
