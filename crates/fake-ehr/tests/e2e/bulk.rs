//! Bulk Data export: kickoff levels and validation, progress, manifests, `_typeFilter`,
//! `_since` with deleted resources, token-protected files and DELETE.

use crate::common::client;
use fake_ehr::{AuthMode, BulkConfig, Config, start};
use serde_json::Value;
use std::time::Duration;

async fn kickoff(c: &reqwest::Client, url: &str) -> (u16, Option<String>, Value) {
    let response = c
        .get(url)
        .header("prefer", "respond-async")
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("content-location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.bytes().await.expect("body");
    (
        status,
        location,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

async fn manifest(c: &reqwest::Client, status_url: &str) -> Value {
    for _ in 0..100 {
        let response = c.get(status_url).send().await.expect("poll");
        if response.status().as_u16() == 200 {
            let body = response.bytes().await.expect("manifest");
            return serde_json::from_slice(&body).expect("manifest JSON");
        }
        assert_eq!(response.status().as_u16(), 202);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the job never finished");
}

async fn lines(c: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, Vec<Value>) {
    let mut request = c.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("file");
    let status = response.status().as_u16();
    let text = response.text().await.expect("text");
    let values = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (status, values)
}

#[tokio::test]
async fn kickoff_levels_and_refusals() {
    let server = start(Config {
        patients: 10,
        ..Config::default()
    })
    .await
    .expect("start");
    let base = server.base_url();
    let c = client();

    let r = c
        .get(format!("{base}/$export?_type=Patient"))
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    let body: Value =
        serde_json::from_slice(&r.bytes().await.unwrap_or_default()).unwrap_or(Value::Null);
    assert_eq!(status, 400, "Prefer: respond-async is required");
    assert!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap_or("")
            .contains("respond-async")
    );
    for (url, want) in [
        (format!("{base}/Group/nope/$export"), 404),
        (format!("{base}/$export?_type=Nope"), 400),
        (format!("{base}/$export?_bogus=1"), 400),
        (
            format!("{base}/$export?_type=Patient&_since=yesterday"),
            400,
        ),
        (
            format!("{base}/$export?_type=Patient&_typeFilter=Condition%3Fcode%3D1"),
            400,
        ),
        (format!("{base}/Group/all/$export?_type=Practitioner"), 400),
    ] {
        assert_eq!(kickoff(&c, &url).await.0, want, "{url}");
    }

    let mut counts = Vec::new();
    for level in [
        "$export",
        "Patient/$export",
        "Group/all/$export",
        "Group/even/$export",
    ] {
        let (status, location, _) = kickoff(&c, &format!("{base}/{level}?_type=Patient")).await;
        assert_eq!(status, 202, "{level}");
        let location = location.expect("Content-Location");
        let m = manifest(&c, &location).await;
        assert_eq!(m["requiresAccessToken"], true);
        assert!(
            m["request"]
                .as_str()
                .unwrap_or("")
                .ends_with(&format!("/fhir/{level}?_type=Patient"))
        );
        let (status, patients) = lines(&c, m["output"][0]["url"].as_str().unwrap(), None).await;
        assert_eq!(status, 200);
        assert_eq!(m["output"][0]["count"], patients.len());
        counts.push(patients.len());
        // DELETE forgets the job.
        let r = c.delete(&location).send().await.expect("delete");
        assert_eq!(r.status().as_u16(), 202);
        assert_eq!(
            c.get(&location)
                .send()
                .await
                .expect("poll")
                .status()
                .as_u16(),
            404
        );
        assert_eq!(
            c.delete(&location)
                .send()
                .await
                .expect("delete")
                .status()
                .as_u16(),
            404
        );
    }
    assert_eq!(counts, [10, 10, 10, 5]);
    let stats = server.stats().bulk;
    assert_eq!(stats.kickoffs, 4);
    assert_eq!(stats.deletes, 8);
}

#[tokio::test]
async fn progress_files_filters_and_deleted() {
    let server = start(Config {
        patients: 8,
        bulk: BulkConfig {
            job_duration: Duration::from_millis(400),
            resources_per_file: 30,
            deleted: vec!["Observation/obs-000001-01".into()],
            deleted_at: "2030-01-01T00:00:00Z".into(),
            error_messages: vec![("warning".into(), "be careful".into())],
            ..BulkConfig::default()
        },
        ..Config::default()
    })
    .await
    .expect("start");
    let base = server.base_url();
    let c = client();
    let url = format!(
        "{base}/$export?_type=Observation&_typeFilter=Observation%3Fcategory%3Dlaboratory%252Cexam&_since=2019-01-01T00:00:00Z"
    );
    let (status, location, _) = kickoff(&c, &url).await;
    assert_eq!(status, 202);
    let location = location.expect("Content-Location");
    let first = c.get(&location).send().await.expect("poll");
    assert_eq!(first.status().as_u16(), 202);
    assert!(
        first.headers()["x-progress"]
            .to_str()
            .unwrap_or("")
            .ends_with("% complete")
    );
    assert_eq!(first.headers()["retry-after"], "1");

    let m = manifest(&c, &location).await;
    let outputs = m["output"].as_array().expect("output");
    assert!(outputs.len() > 1, "split into several files: {m}");
    let mut seen = 0;
    for entry in outputs {
        assert_eq!(entry["type"], "Observation");
        let (_, values) = lines(&c, entry["url"].as_str().unwrap(), None).await;
        assert_eq!(entry["count"], values.len());
        assert!(values.len() <= 30);
        for v in &values {
            assert_ne!(
                v["id"], "obs-000001-01",
                "deleted resources are not exported"
            );
            let text = v["category"].to_string();
            assert!(
                text.contains("laboratory") || text.contains("exam"),
                "{text}"
            );
        }
        seen += values.len();
    }
    assert!(seen > 0);
    let (_, deleted) = lines(&c, m["deleted"][0]["url"].as_str().unwrap(), None).await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(
        deleted[0]["entry"][0]["request"]["url"],
        "Observation/obs-000001-01"
    );
    let (_, errors) = lines(&c, m["error"][0]["url"].as_str().unwrap(), None).await;
    assert_eq!(errors[0]["issue"][0]["diagnostics"], "be careful");
    let stats = server.stats().bulk;
    assert!(stats.status_polls >= 2);
    assert!(stats.completed_downloads.values().all(|n| *n == 1));
}

#[tokio::test]
async fn files_need_the_token_when_the_manifest_says_so() {
    let server = start(Config {
        patients: 3,
        auth: AuthMode::Bearer {
            token: "t0k".into(),
        },
        ..Config::default()
    })
    .await
    .expect("start");
    let base = server.base_url();
    let c = client();
    let r = c
        .get(format!("{base}/$export?_type=Patient"))
        .header("prefer", "respond-async")
        .bearer_auth("t0k")
        .send()
        .await
        .expect("kickoff");
    assert_eq!(r.status().as_u16(), 202);
    let location = r.headers()["content-location"]
        .to_str()
        .unwrap()
        .to_string();
    let body = c
        .get(&location)
        .bearer_auth("t0k")
        .send()
        .await
        .expect("poll")
        .bytes()
        .await
        .expect("manifest");
    let m: Value = serde_json::from_slice(&body).expect("manifest JSON");
    let file = m["output"][0]["url"].as_str().unwrap();
    assert_eq!(lines(&c, file, None).await.0, 401);
    let (status, values) = lines(&c, file, Some("t0k")).await;
    assert_eq!((status, values.len()), (200, 3));
    assert_eq!(server.stats().bulk.unauthorized_downloads, 1);
}

/// File bodies count as in flight from arrival to their last byte, and their answers
/// start after `file_latency` rather than the server's latency.
#[tokio::test]
async fn downloads_in_flight_and_file_latency() {
    let server = start(Config {
        patients: 20,
        bulk: BulkConfig {
            resources_per_file: 50,
            file_latency: Some(Duration::from_millis(300)),
            requires_access_token: false,
            ..BulkConfig::default()
        },
        ..Config::default()
    })
    .await
    .expect("start");
    let base = server.base_url();
    let c = client();
    let (status, location, _) = kickoff(&c, &format!("{base}/$export?_type=Observation")).await;
    assert_eq!(status, 202);
    let m = manifest(&c, &location.expect("status URL")).await;
    let files: Vec<String> = m["output"]
        .as_array()
        .expect("output")
        .iter()
        .filter_map(|f| f["url"].as_str().map(str::to_string))
        .take(3)
        .collect();
    assert_eq!(files.len(), 3, "{m}");
    let started = std::time::Instant::now();
    let results = futures_util::future::join_all(files.iter().map(|f| lines(&c, f, None))).await;
    assert!(results.iter().all(|(status, _)| *status == 200));
    assert!(started.elapsed() >= Duration::from_millis(300));
    let stats = server.stats();
    assert_eq!(stats.bulk.max_downloads_in_flight, 3);
    server.reset_max_in_flight();
    assert_eq!(server.stats().bulk.max_downloads_in_flight, 0);
}
