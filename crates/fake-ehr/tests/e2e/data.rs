//! Determinism and shape of the synthetic data, directly and over HTTP.

use crate::common::{all_pages, client, get};
use fake_ehr::data::{self, MRN_SYSTEM};
use fake_ehr::{Config, start};
use serde_json::Value;
use std::collections::HashSet;

#[test]
fn patient_resources_are_deterministic_and_sized() {
    for i in 0..200 {
        let a = data::patient_resources(1, i);
        assert_eq!(a, data::patient_resources(1, i));
        assert!((40..=60).contains(&a.len()), "patient {i} has {}", a.len());
        assert_eq!(a[0]["resourceType"], "Patient");
        assert_eq!(a[0]["id"], data::patient_id(i).as_str());
        assert_eq!(a[0]["identifier"][0]["system"], MRN_SYSTEM);
        assert_eq!(a[0]["identifier"][0]["value"], data::mrn(i).as_str());
        let reference = format!("Patient/{}", data::patient_id(i));
        for r in &a[1..] {
            let subject = r["subject"]["reference"]
                .as_str()
                .or_else(|| r["patient"]["reference"].as_str());
            assert_eq!(subject, Some(reference.as_str()), "{r}");
            let updated = r["meta"]["lastUpdated"].as_str().unwrap_or_default();
            let year: u32 = updated.get(..4).and_then(|y| y.parse().ok()).unwrap_or(0);
            assert!((2019..=2025).contains(&year), "{updated}");
        }
    }
    assert_ne!(data::patient_resources(1, 3), data::patient_resources(2, 3));
}

/// Decimal numbers following `"value":` in serialised JSON, as spelled.
fn spelled_values(text: &str) -> Vec<String> {
    text.split("\"value\":")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect::<String>()
        })
        .filter(|n| n.contains('.'))
        .collect()
}

#[test]
fn data_has_variety_clients_must_preserve() {
    let mut non_ascii = false;
    let mut offsets = false;
    let mut categories = HashSet::new();
    let mut tenths = 0; // like 1.50
    let mut large = 0; // like 120.0
    for i in 0..50 {
        for r in data::patient_resources(1, i) {
            let text = r.to_string();
            non_ascii |= r["resourceType"] == "Patient" && !text.is_ascii();
            offsets |= r["meta"]["lastUpdated"]
                .as_str()
                .is_some_and(|s| s.ends_with(":00") && !s.ends_with('Z'));
            for n in spelled_values(&text) {
                tenths += usize::from(n.len() > 3 && n.ends_with('0') && !n.ends_with(".0"));
                large += usize::from(n.ends_with(".0") && n.find('.') >= Some(3));
            }
            if r["resourceType"] == "Observation"
                && let Some(c) = r["category"][0]["coding"][0]["code"].as_str()
            {
                categories.insert(c.to_string());
            }
        }
    }
    assert!(non_ascii && offsets);
    assert!(tenths > 20 && large > 20, "tenths {tenths}, large {large}");
    for c in [
        "vital-signs",
        "laboratory",
        "social-history",
        "survey",
        "exam",
        "imaging",
        "procedure",
        "therapy",
        "activity",
    ] {
        assert!(categories.contains(c), "no {c} observations");
    }
}

#[tokio::test]
async fn patient_seven_is_identical_whatever_the_patient_count() {
    let small = start(Config {
        patients: 10,
        ..Config::default()
    })
    .await
    .expect("start");
    let large = start(Config {
        patients: 1000,
        ..Config::default()
    })
    .await
    .expect("start");
    let c = client();
    let expected = data::patient_resources(1, 7);
    for server in [&small, &large] {
        let (status, patient) = get(&c, &format!("{}/Patient/pat-000007", server.base_url())).await;
        assert_eq!(status, 200);
        assert_eq!(patient, expected[0]);
        let url = format!(
            "{}/Condition?patient=pat-000007&_count=2",
            server.base_url()
        );
        let (conditions, _) = all_pages(&c, &url).await;
        let want: Vec<Value> = expected
            .iter()
            .filter(|r| r["resourceType"] == "Condition")
            .cloned()
            .collect();
        assert_eq!(conditions, want);
    }
    // Patients past the count do not exist.
    let (status, outcome) = get(&c, &format!("{}/Patient/pat-000010", small.base_url())).await;
    assert_eq!(status, 404);
    assert_eq!(outcome["resourceType"], "OperationOutcome");
}

#[tokio::test]
async fn references_resolve() {
    let server = start(Config::default()).await.expect("start");
    let c = client();
    let mut seen = HashSet::new();
    let mut missing = HashSet::new();
    // Patients 3 (absolute reference), 5 (contained Medication), 0 and 1 (404s, cycle).
    for i in [0, 1, 3, 5] {
        let mut resources = data::patient_resources(1, i);
        resources.extend(data::hidden_resources(1, i));
        for r in &resources {
            let text = r.to_string();
            for part in text.split("\"reference\":\"").skip(1) {
                let reference = part.split('"').next().unwrap_or_default().to_string();
                if reference.starts_with('#') || reference.starts_with("https://") {
                    continue;
                }
                if seen.insert(reference.clone()) {
                    let (status, body) =
                        get(&c, &format!("{}/{reference}", server.base_url())).await;
                    if status == 404 {
                        missing.insert(reference);
                    } else {
                        assert_eq!(status, 200, "{reference}: {body}");
                    }
                }
            }
            for part in text.split("\"url\":\"Binary/").skip(1) {
                let id = part.split('"').next().unwrap_or_default();
                let (status, body) = get(&c, &format!("{}/Binary/{id}", server.base_url())).await;
                assert_eq!(status, 200, "{id}");
                assert_eq!(body["resourceType"], "Binary");
                assert!(body["data"].is_string() && body["contentType"].is_string());
            }
        }
    }
    assert!(seen.len() > 40);
    // Only the references meant to answer 404 do.
    let expected: HashSet<String> = [
        data::GONE_PRACTITIONER.to_string(),
        "Observation/hobs-000000-99".to_string(),
    ]
    .into();
    assert_eq!(missing, expected);
}
