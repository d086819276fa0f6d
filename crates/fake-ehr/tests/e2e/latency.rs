//! Answer times over HTTP: `--latency-ms` is the time from arrival to answer, per-type
//! times override it, and `POST /__admin/latency?ms=N` changes it at runtime (a bad value
//! is refused and changes nothing).

use crate::common::{client, get};
use fake_ehr::{Config, start};
use std::time::{Duration, Instant};

async fn timed(c: &reqwest::Client, url: &str) -> (u16, Duration) {
    let began = Instant::now();
    let (status, _) = get(c, url).await;
    (status, began.elapsed())
}

async fn post_latency(c: &reqwest::Client, admin: &str, value: &str) -> u16 {
    c.post(format!("{admin}/__admin/latency?ms={value}"))
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

/// Far above any answer time on a loaded machine, far below what a server that added its
/// latency twice, read it in seconds, or answered one request at a time would take.
const SLACK: Duration = Duration::from_millis(1000);

#[tokio::test]
async fn latency_is_an_answer_time_changeable_at_runtime() {
    let server = start(Config {
        patients: 3,
        latency: Duration::from_millis(60),
        type_latency: vec![("Condition".to_string(), Duration::from_millis(300))],
        ..Config::default()
    })
    .await
    .expect("start");
    let c = client();
    let base = server.base_url();
    let admin = base.trim_end_matches("/fhir").to_string();
    let patient = format!("{base}/Patient/pat-000001");
    let conditions = format!("{base}/Condition?patient=pat-000001");

    let (status, took) = timed(&c, &patient).await;
    assert_eq!(status, 200);
    assert!(took >= Duration::from_millis(60), "{took:?}");
    assert!(took < Duration::from_millis(60) + SLACK, "{took:?}");
    let (_, took) = timed(&c, &conditions).await;
    assert!(
        took >= Duration::from_millis(300),
        "per-type time: {took:?}"
    );
    assert!(
        took < Duration::from_millis(300) + SLACK,
        "per-type time replaces the default: {took:?}"
    );

    // Requests wait side by side, not one after another: eight at once take one answer
    // time (one after another would be 2.4 s).
    let began = Instant::now();
    let answers = (0..8).map(|_| timed(&c, &conditions));
    for (status, took) in futures_util::future::join_all(answers).await {
        assert_eq!(status, 200);
        assert!(took >= Duration::from_millis(300), "{took:?}");
    }
    let all = began.elapsed();
    assert!(
        all < Duration::from_millis(300) + SLACK,
        "eight at once: {all:?}"
    );

    assert_eq!(post_latency(&c, &admin, "0").await, 200);
    assert_eq!(
        get(&c, &format!("{admin}/__admin/latency")).await.1["ms"],
        0.0
    );
    let (_, took) = timed(&c, &patient).await;
    assert!(
        took < Duration::from_millis(60),
        "changed at runtime: {took:?}"
    );

    // Refused, and the latency stays what it was.
    assert_eq!(post_latency(&c, &admin, "soon").await, 400);
    assert_eq!(
        c.post(format!("{admin}/__admin/latency"))
            .send()
            .await
            .expect("send")
            .status()
            .as_u16(),
        400
    );
    assert_eq!(
        get(&c, &format!("{admin}/__admin/latency")).await.1["ms"],
        0.0
    );
}
