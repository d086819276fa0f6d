//! Switched-on misbehaviours over HTTP: searches that ignore `patient=` (every patient's
//! resources of the type come back) and one search cut off halfway on every attempt, both
//! changeable while the server runs.

use crate::common::{all_pages, client, get};
use fake_ehr::{Config, TruncateSearch, data, start};
use serde_json::Value;
use std::collections::BTreeSet;

fn subjects(resources: &[Value]) -> BTreeSet<String> {
    resources
        .iter()
        .filter_map(|r| r["subject"]["reference"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn ignoring_the_patient_parameter_returns_every_patients_resources() {
    let server = start(Config {
        patients: 6,
        ignore_patient_param: vec!["Condition".into()],
        ..Config::default()
    })
    .await
    .expect("start");
    let c = client();
    let base = server.base_url();
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
    let admin = base.trim_end_matches("/fhir").to_string();
    let r = c
        .post(format!("{admin}/__admin/ignore-patient"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200);
    let (conditions, _) = all_pages(&c, &format!("{base}/Condition?patient=pat-000001")).await;
    assert_eq!(
        subjects(&conditions),
        BTreeSet::from(["Patient/pat-000001".to_string()])
    );
}

#[tokio::test]
async fn one_search_is_cut_off_until_switched_off() {
    let server = start(Config {
        patients: 4,
        truncate: Some(TruncateSearch {
            resource_type: "Condition".into(),
            patient: "pat-000002".into(),
        }),
        ..Config::default()
    })
    .await
    .expect("start");
    let c = client();
    let base = server.base_url();
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

    let r = c
        .post(format!(
            "{admin}/__admin/truncate?type=Condition&patient=pat-000001"
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200);
    let (_, page) = get(&c, &format!("{base}/Condition?patient=pat-000001")).await;
    assert!(page.is_null(), "cut off again: {page}");
    assert_eq!(server.stats().truncated, 3);
}
