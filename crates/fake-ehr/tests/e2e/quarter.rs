//! The second quarter over HTTP: switching at runtime on the same URL, deleted and merged
//! patients, MRNs of new and merged patients, ID churn, and `_lastUpdated` and created-date
//! searches that find exactly what `data::quarter_changes` says changed.

use crate::common::{all_pages, client, get};
use fake_ehr::data::{self, Fate, MRN_SYSTEM};
use fake_ehr::{Config, Flavor, start};
use serde_json::Value;
use std::collections::BTreeSet;

const N: usize = 20;

fn keys(resources: &[Value]) -> BTreeSet<String> {
    resources
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or_default(),
                r["id"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

async fn switch(c: &reqwest::Client, admin: &str, n: u8) -> (u16, Value) {
    let response = c
        .post(format!("{admin}/__admin/quarter?n={n}"))
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn quarter_two_replays_a_quarter_of_changes() {
    let server = start(Config {
        patients: N,
        ..Config::default()
    })
    .await
    .expect("start");
    let c = client();
    let base = server.base_url();
    let admin = base.trim_end_matches("/fhir").to_string();
    let by_mrn = |i: usize| format!("{base}/Patient?identifier={MRN_SYSTEM}%7C{}", data::mrn(i));

    assert_eq!(
        get(&c, &format!("{admin}/__admin/quarter")).await.1["quarter"],
        1
    );
    let (_, b) = get(&c, &by_mrn(N)).await;
    assert_eq!(b["total"], 0, "a new patient's MRN is unknown in quarter 1");
    let (status, _) = get(&c, &format!("{base}/Patient/pat-000003")).await;
    assert_eq!(status, 200);

    assert_eq!(switch(&c, &admin, 3).await.0, 400);
    let (status, body) = switch(&c, &admin, 2).await;
    assert_eq!((status, body["quarter"].clone()), (200, 2.into()));
    assert_eq!(server.quarter(), 2);

    // Deleted and merged-away patients are gone; new ones exist; MRNs follow merges.
    for (i, want) in [(3, 404), (7, 404), (6, 200), (N, 200), (N + 1, 200)] {
        let (status, _) = get(&c, &format!("{base}/Patient/{}", data::patient_id(i))).await;
        assert_eq!(status, want, "patient {i}");
    }
    assert_eq!(get(&c, &by_mrn(3)).await.1["total"], 0);
    let (_, b) = get(&c, &by_mrn(7)).await;
    let survivor = &b["entry"][0]["resource"];
    assert_eq!(survivor["id"], "pat-000006");
    assert_eq!(survivor["link"][0]["type"], "replaces");
    assert_eq!(
        survivor["link"][0]["other"]["reference"],
        "Patient/pat-000007"
    );
    assert_eq!(get(&c, &by_mrn(N)).await.1["total"], 1);

    // The unfiltered Patient list pages over the patients that exist.
    let (patients, _) = all_pages(&c, &format!("{base}/Patient?_count=7")).await;
    let expected: BTreeSet<String> = (0..data::patients_in_quarter(N, 2))
        .filter(|&i| data::exists_in_quarter(N, i, 2))
        .map(|i| format!("Patient/{}", data::patient_id(i)))
        .collect();
    assert_eq!(keys(&patients), expected);
    assert_eq!(expected.len(), N + 2 - 4);

    // `_lastUpdated` after quarter 1 finds exactly the changed, churned and back-filled
    // resources of each patient; searches return what the data functions say.
    let mut churned = 0;
    for i in 0..N {
        let changes = data::quarter_changes(1, N, i).expect("changes");
        let q2 = data::patient_resources_in_quarter(1, N, i, 2);
        let pid = data::patient_id(i);
        let (conditions, _) = all_pages(&c, &format!("{base}/Condition?patient={pid}")).await;
        let want: Vec<Value> = q2
            .iter()
            .filter(|r| r["resourceType"] == "Condition")
            .cloned()
            .collect();
        assert_eq!(conditions, want, "patient {i}");
        let url = format!("{base}/Condition?patient={pid}&_lastUpdated=gt2025-12-31T00:00:00Z");
        let (changed, _) = all_pages(&c, &url).await;
        let want: BTreeSet<String> = changes
            .modified
            .iter()
            .chain(&changes.backfilled)
            .chain(changes.churned.iter().map(|(_, new)| new))
            .filter(|k| k.starts_with("Condition/"))
            .cloned()
            .collect();
        assert_eq!(keys(&changed), want, "patient {i}");
        // Created dates stay old, back-filled records included.
        let url = format!("{base}/Condition?patient={pid}&recorded-date=gt2025-12-31");
        assert!(all_pages(&c, &url).await.0.is_empty());
        for (old, new) in &changes.churned {
            let (status, _) = get(&c, &format!("{base}/{old}")).await;
            assert_eq!(status, 404, "{old}");
            let (status, body) = get(&c, &format!("{base}/{new}")).await;
            assert_eq!(status, 200, "{new}");
            let (ty, id) = new.split_once('/').unwrap_or_default();
            assert_eq!(Some(body), data::resource_in_quarter(1, N, ty, id, 2));
            churned += 1;
        }
        if changes.fate == Fate::Absorbs(7) {
            // The absorbed patient's resources (hidden ones too) now belong to the survivor.
            let (status, body) = get(&c, &format!("{base}/Observation/hobs-000007-01")).await;
            assert_eq!(status, 200);
            assert_eq!(body["subject"]["reference"], "Patient/pat-000006");
            let (obs, _) = all_pages(&c, &format!("{base}/Observation?patient={pid}")).await;
            assert!(keys(&obs).iter().any(|k| k.contains("-000007-")));
        }
    }
    assert!(churned > 0);

    // Back to quarter 1 at the same URL.
    assert_eq!(switch(&c, &admin, 1).await.0, 200);
    let (status, _) = get(&c, &format!("{base}/Patient/pat-000003")).await;
    assert_eq!(status, 200);
    assert_eq!(
        get(&c, &by_mrn(7)).await.1["entry"][0]["resource"]["id"],
        "pat-000007"
    );
}

#[tokio::test]
async fn a_server_can_start_in_quarter_two() {
    let server = start(Config {
        patients: 10,
        flavor: Flavor::Epic,
        quarter: 2,
        ..Config::default()
    })
    .await
    .expect("start");
    let c = client();
    let (status, _) = get(&c, &format!("{}/Patient/pat-000010", server.base_url())).await;
    assert_eq!(status, 200);
    let (status, _) = get(&c, &format!("{}/Patient/pat-000003", server.base_url())).await;
    assert_eq!(status, 404);
}

/// Quarter 2's hidden changes over HTTP: a deleted hidden resource answers 404, an orphan
/// is still readable but its report no longer lists it; and a refused read answers 403.
#[tokio::test]
async fn hidden_resources_change_in_quarter_two() {
    let server = start(Config {
        patients: N,
        quarter: 2,
        ..Config::default()
    })
    .await
    .expect("start");
    let c = client();
    let base = server.base_url();
    let (mut deleted, mut orphans) = (0, 0);
    for i in 0..N {
        let changes = data::quarter_changes(1, N, i).expect("changes");
        for d in &changes.hidden_deleted {
            assert_eq!(get(&c, &format!("{base}/{d}")).await.0, 404, "{d}");
            deleted += 1;
        }
        for (report, obs) in &changes.orphaned {
            assert_eq!(get(&c, &format!("{base}/{obs}")).await.0, 200, "{obs}");
            let (status, body) = get(&c, &format!("{base}/{report}")).await;
            assert_eq!(status, 200, "{report}");
            let results: Vec<&str> = body["result"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["reference"].as_str())
                .collect();
            assert!(!results.contains(&obs.as_str()), "{report} lists {obs}");
            orphans += 1;
        }
    }
    assert!(deleted > 0 && orphans > 0);

    let live = "Observation/hobs-000000-01";
    assert_eq!(get(&c, &format!("{base}/{live}")).await.0, 200);
    server.set_refused_reads([live.to_string()]);
    let (status, body) = get(&c, &format!("{base}/{live}")).await;
    assert_eq!(
        (status, body["resourceType"].as_str()),
        (403, Some("OperationOutcome"))
    );
    server.set_refused_reads([]);
    assert_eq!(get(&c, &format!("{base}/{live}")).await.0, 200);
}
