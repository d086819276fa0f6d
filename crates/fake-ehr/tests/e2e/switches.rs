//! Switched-on misbehaviours over HTTP: searches that ignore `patient=` (every patient's
//! resources of the type come back), one search cut off halfway on every attempt, `_id`
//! and `identifier` lists refused or ignored, and `_id` searches that need the patient, all
//! changeable while the server runs.

use crate::common::{all_pages, client, get};
use fake_ehr::{Config, Flavor, Server, TruncateSearch, ValueLists, data, start};
use serde_json::Value;
use std::collections::BTreeSet;

/// A server on `config`, a client, and the server's FHIR base URL.
async fn serve(config: Config) -> (Server, reqwest::Client, String) {
    let server = start(config).await.expect("start");
    let base = server.base_url();
    (server, client(), base)
}

/// `POST /__admin/<what>` (path and query) on the server of FHIR base `base`; the status.
async fn admin_post(c: &reqwest::Client, base: &str, what: &str) -> u16 {
    let admin = base.trim_end_matches("/fhir");
    c.post(format!("{admin}/__admin/{what}"))
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

/// Two hidden Observations of patient 4 (results of its reports), from the generator.
fn hidden_observations() -> Vec<String> {
    let ids: Vec<String> = data::hidden_resources(1, 4)
        .iter()
        .filter(|r| r["resourceType"] == "Observation")
        .take(2)
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 2);
    ids
}

fn subjects(resources: &[Value]) -> BTreeSet<String> {
    resources
        .iter()
        .filter_map(|r| r["subject"]["reference"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn ignoring_the_patient_parameter_returns_every_patients_resources() {
    let (_server, c, base) = serve(Config {
        patients: 6,
        ignore_patient_param: vec!["Condition".into()],
        ..Config::default()
    })
    .await;
    let (conditions, _) = all_pages(&c, &format!("{base}/Condition?patient=pat-000001")).await;
    // Computed from the generator, not from the server's search.
    let expected: usize = (0..6)
        .map(|i| {
            data::patient_resources(1, i)
                .iter()
                .filter(|r| r["resourceType"] == "Condition")
                .count()
        })
        .sum();
    assert_eq!(conditions.len(), expected);
    assert!(
        subjects(&conditions).len() > 1,
        "{:?}",
        subjects(&conditions)
    );
    // Other types still honour it.
    let (encounters, _) = all_pages(&c, &format!("{base}/Encounter?patient=pat-000001")).await;
    assert_eq!(
        subjects(&encounters),
        BTreeSet::from(["Patient/pat-000001".to_string()])
    );

    // Fixed at runtime.
    assert_eq!(admin_post(&c, &base, "ignore-patient").await, 200);
    let (conditions, _) = all_pages(&c, &format!("{base}/Condition?patient=pat-000001")).await;
    assert_eq!(
        subjects(&conditions),
        BTreeSet::from(["Patient/pat-000001".to_string()])
    );
}

#[tokio::test]
async fn one_search_is_cut_off_until_switched_off() {
    let (server, c, base) = serve(Config {
        patients: 4,
        truncate: Some(TruncateSearch {
            resource_type: "Condition".into(),
            patient: "pat-000002".into(),
        }),
        ..Config::default()
    })
    .await;
    let url = format!("{base}/Condition?patient=pat-000002");
    for _ in 0..2 {
        let response = c.get(&url).send().await.expect("send");
        assert_eq!(response.status().as_u16(), 200);
        let body = response.bytes().await.expect("a complete HTTP answer");
        assert!(!body.is_empty());
        assert!(serde_json::from_slice::<Value>(&body).is_err(), "cut off");
    }
    assert_eq!(server.stats().truncated, 2);
    // Another patient's search is whole.
    let (status, page) = get(&c, &format!("{base}/Condition?patient=pat-000001")).await;
    assert_eq!(
        (status, &page["resourceType"]),
        (200, &Value::from("Bundle"))
    );

    let admin = base.trim_end_matches("/fhir").to_string();
    let status = c
        .delete(format!("{admin}/__admin/truncate"))
        .send()
        .await
        .expect("send")
        .status();
    assert_eq!(status.as_u16(), 200);
    let (status, page) = get(&c, &url).await;
    assert_eq!(
        (status, &page["resourceType"]),
        (200, &Value::from("Bundle"))
    );

    assert_eq!(
        admin_post(&c, &base, "truncate?type=Condition&patient=pat-000001").await,
        200
    );
    let (_, page) = get(&c, &format!("{base}/Condition?patient=pat-000001")).await;
    assert!(page.is_null(), "cut off again: {page}");
    assert_eq!(server.stats().truncated, 3);
}

/// Ids of a search answer's resources.
fn ids(resources: &[Value]) -> BTreeSet<String> {
    resources
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn id_and_identifier_lists_are_answered_refused_or_ignored() {
    let (server, c, base) = serve(Config {
        patients: 6,
        flavor: Flavor::Epic,
        ..Config::default()
    })
    .await;
    let admin = base.trim_end_matches("/fhir").to_string();
    // Two hidden Observations of patient 4, and two MRNs.
    let hidden = hidden_observations();
    let by_ids = format!("{base}/Observation?_id={}", hidden.join(","));
    let by_mrns = format!(
        "{base}/Patient?identifier={s}%7C{},{s}%7C{}",
        data::mrn(1),
        data::mrn(5),
        s = data::MRN_SYSTEM
    );
    // Declared, and answered as OR lists.
    let (_, statement) = get(&c, &format!("{base}/metadata")).await;
    let observation = statement["rest"][0]["resource"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["type"] == "Observation"))
        .cloned()
        .unwrap_or_default();
    assert!(
        observation["searchParam"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "_id"
                && p["documentation"]
                    .as_str()
                    .is_some_and(|d| d.contains("commas"))))
    );
    let (found, _) = all_pages(&c, &by_ids).await;
    assert_eq!(ids(&found), hidden.iter().cloned().collect());
    let (found, _) = all_pages(&c, &by_mrns).await;
    assert_eq!(
        ids(&found),
        BTreeSet::from([data::patient_id(1), data::patient_id(5)])
    );

    // Refused: 400 for several values, one still works.
    server.set_value_lists(Some(ValueLists::Refuse), Some(ValueLists::Refuse));
    assert_eq!(get(&c, &by_ids).await.0, 400);
    assert_eq!(get(&c, &by_mrns).await.0, 400);
    let (status, one) = get(&c, &format!("{base}/Observation?_id={}", hidden[0])).await;
    assert_eq!((status, one["total"].as_u64()), (200, Some(1)));

    // Ignored: as if the parameter were absent (Epic then wants a category; Patient
    // answers with everyone).
    assert_eq!(
        admin_post(&c, &base, "value-lists?id=ignore&identifier=ignore").await,
        200
    );
    assert_eq!(get(&c, &by_ids).await.0, 400);
    let (found, _) = all_pages(&c, &by_mrns).await;
    assert_eq!(found.len(), 6);
    assert_eq!(admin_post(&c, &base, "value-lists?id=sometimes").await, 400);

    // Back to lists.
    let (_, now) = get(&c, &format!("{admin}/__admin/value-lists")).await;
    assert_eq!(
        now,
        serde_json::json!({"id": "ignore", "identifier": "ignore", "patient": "accept"})
    );
    server.set_value_lists(Some(ValueLists::Accept), Some(ValueLists::Accept));
    assert_eq!(ids(&all_pages(&c, &by_ids).await.0).len(), 2);
}

#[tokio::test]
async fn id_searches_may_need_the_patient() {
    let (server, c, base) = serve(Config {
        patients: 6,
        id_search_needs_patient: vec!["Observation".into()],
        ..Config::default()
    })
    .await;
    let list = hidden_observations().join(",");
    assert_eq!(
        get(&c, &format!("{base}/Observation?_id={list}")).await.0,
        400
    );
    let scoped = format!(
        "{base}/Observation?patient={}&_id={list}",
        data::patient_id(4)
    );
    assert_eq!(ids(&all_pages(&c, &scoped).await.0).len(), 2);
    // Another patient's resources are not found with the patient named.
    let other = format!(
        "{base}/Observation?patient={}&_id={list}",
        data::patient_id(3)
    );
    assert!(all_pages(&c, &other).await.0.is_empty());
    // Other types are not affected, and the switch changes at runtime.
    let specimen = format!("{base}/Specimen?_id=nothing");
    assert_eq!(get(&c, &specimen).await.0, 200);
    server.set_id_search_needs_patient(Vec::new());
    assert_eq!(
        get(&c, &format!("{base}/Observation?_id={list}")).await.0,
        200
    );
    assert_eq!(
        admin_post(&c, &base, "id-needs-patient?type=Specimen").await,
        200
    );
    assert_eq!(get(&c, &specimen).await.0, 400);
}

/// Every admin switch refuses other methods (405) and bad values (400, naming what is
/// wrong), and a refused change leaves the setting as it was.
#[tokio::test]
async fn admin_switches_refuse_bad_requests_and_keep_their_setting() {
    let (_server, c, base) = serve(Config {
        patients: 2,
        ..Config::default()
    })
    .await;
    let admin = base.trim_end_matches("/fhir").to_string();
    let switches = [
        "latency",
        "quarter",
        "faults",
        "truncate",
        "ignore-patient",
        "value-lists",
        "id-needs-patient",
    ];
    let mut before = Vec::new();
    for name in switches {
        let (status, setting) = get(&c, &format!("{admin}/__admin/{name}")).await;
        assert_eq!(status, 200, "GET {name}: {setting}");
        before.push(setting);
        let response = c
            .put(format!("{admin}/__admin/{name}"))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 405, "PUT {name}");
    }
    for (what, needle) in [
        ("latency?ms=soon", "ms=\"soon\" is not a number"),
        ("latency", "needs ?ms="),
        ("quarter?n=9", "quarter must be"),
        ("faults?rate=2", "not a fraction"),
        ("faults?kinds=500,teapot", "teapot"),
        ("faults?color=red", "unknown parameter"),
        ("faults", "needs ?rate="),
        ("truncate?type=Condition", "needs ?type=<type>&patient=<id>"),
        ("value-lists?id=accept&identifier=maybe", "maybe"),
        ("latency?ms=%zz", ""),
    ] {
        let response = c
            .post(format!("{admin}/__admin/{what}"))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 400, "POST {what}");
        let bytes = response.bytes().await.expect("body");
        let body: Value = serde_json::from_slice(&bytes).expect("an OperationOutcome");
        let diagnostics = body["issue"][0]["diagnostics"].as_str().unwrap_or_default();
        assert!(
            !diagnostics.is_empty() && diagnostics.contains(needle),
            "POST {what}: {body}"
        );
    }
    for (name, setting) in switches.iter().zip(&before) {
        let (status, now) = get(&c, &format!("{admin}/__admin/{name}")).await;
        assert_eq!(
            (status, &now),
            (200, setting),
            "{name} after refused changes"
        );
    }
}
