//! Injected faults, and the synchronous `spawn` entry point.

use crate::common::client;
use fake_ehr::{Config, spawn, start};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

#[tokio::test]
async fn every_fault_kind_appears_at_rate_one() {
    let server = start(Config {
        fault_rate: 1.0,
        ..Config::default()
    })
    .await
    .expect("start");
    let c = client();
    let n = 36;
    let requests = (0..n).map(|k| {
        let c = c.clone();
        let url = if k % 2 == 0 {
            format!("{}/Patient/pat-000001", server.base_url())
        } else {
            format!("{}/Condition?patient=pat-000001", server.base_url())
        };
        async move {
            let started = Instant::now();
            let outcome = match c.get(&url).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    match response.bytes().await {
                        Ok(_) => Ok((status, retry_after)),
                        Err(_) => Err(()),
                    }
                }
                Err(_) => Err(()),
            };
            (outcome, started.elapsed())
        }
    });
    let results = futures_util::future::join_all(requests).await;
    let mut seen = std::collections::BTreeSet::new();
    for (outcome, elapsed) in results {
        match outcome {
            Ok((200, _)) => {
                assert!(
                    elapsed >= Duration::from_millis(1900),
                    "fast 200 at fault rate 1"
                );
                seen.insert("slow");
            }
            Ok((status @ (429 | 503), retry)) => {
                assert_eq!(retry.as_deref(), Some("1"), "{status} without Retry-After");
                seen.insert(if status == 429 { "429" } else { "503" });
            }
            Ok((500, _)) => {
                seen.insert("500");
            }
            Ok((502, _)) => {
                seen.insert("502");
            }
            Ok((status, _)) => panic!("unexpected status {status}"),
            Err(()) => {
                seen.insert("dropped");
            }
        }
    }
    for kind in ["slow", "429", "500", "502", "503", "dropped"] {
        assert!(seen.contains(kind), "{kind} not seen: {seen:?}");
    }
    let stats = server.stats();
    assert_eq!(stats.faults, n);
    // Metadata is never faulted.
    let response = c
        .get(format!("{}/metadata", server.base_url()))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 200);
}

/// The fates drawn by 30 sequential reads at a 30% fault rate.
async fn fault_pattern() -> (u64, Vec<&'static str>) {
    let server = start(Config {
        fault_rate: 0.3,
        seed: 5,
        ..Config::default()
    })
    .await
    .expect("start");
    let c = client();
    let mut pattern = Vec::new();
    for k in 0..30 {
        let url = format!("{}/Practitioner/prac-{:02}", server.base_url(), k % 40 + 1);
        let fate = match c
            .get(&url)
            .timeout(Duration::from_millis(1500))
            .send()
            .await
        {
            Ok(r) => match (r.status().as_u16(), r.bytes().await) {
                (200, Ok(_)) => "ok",
                (429, Ok(_)) => "429",
                (500, Ok(_)) => "500",
                (502, Ok(_)) => "502",
                (503, Ok(_)) => "503",
                (_, Ok(_)) => "other",
                (_, Err(_)) => "dropped",
            },
            Err(_) => "timed out",
        };
        pattern.push(fate);
    }
    (server.stats().faults, pattern)
}

#[tokio::test]
async fn partial_fault_rate_is_deterministic() {
    let (a, b) = tokio::join!(fault_pattern(), fault_pattern());
    assert_eq!(a, b);
    assert!((2..=20).contains(&a.0), "{} faults", a.0);
    let failed = a.1.iter().filter(|f| **f != "ok").count() as u64;
    assert!(failed <= a.0);
}

fn raw_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[test]
fn spawn_serves_without_a_runtime_and_stops_on_drop() {
    let server = spawn(Config::default()).expect("spawn");
    let base = server.base_url();
    assert!(base.starts_with("http://127.0.0.1:") && base.ends_with("/fhir"));
    let addr = base
        .trim_start_matches("http://")
        .trim_end_matches("/fhir")
        .to_string();
    let response = raw_get(&addr, "/fhir/Patient/pat-000000").expect("get");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"pat-000000\""));
    assert_eq!(server.requests(), 1);
    drop(server);
    assert!(raw_get(&addr, "/fhir/metadata").is_err());
}

/// Statuses of `n` reads one after another (a broken body counts as `0`).
async fn statuses(server: &fake_ehr::Server, n: usize) -> Vec<u16> {
    let c = client();
    let mut out = Vec::new();
    for k in 0..n {
        let url = format!("{}/Practitioner/prac-{:02}", server.base_url(), k % 40 + 1);
        let status = match c.get(&url).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                if r.bytes().await.is_ok() { status } else { 0 }
            }
            Err(_) => 0,
        };
        out.push(status);
    }
    out
}

#[tokio::test]
async fn fault_kinds_narrow_what_fails_and_retry_after_is_set() {
    let server = start(Config {
        fault_rate: 1.0,
        fault_kinds: vec![fake_ehr::Fault::Internal, fake_ehr::Fault::BadGateway],
        ..Config::default()
    })
    .await
    .expect("start");
    let seen = statuses(&server, 30).await;
    assert!(seen.contains(&500) && seen.contains(&502), "{seen:?}");
    assert!(seen.iter().all(|s| matches!(s, 500 | 502)), "{seen:?}");
    let stats = server.stats();
    assert_eq!(stats.faults, 30);
    assert_eq!(
        stats.fault_kinds.values().sum::<u64>(),
        30,
        "{:?}",
        stats.fault_kinds
    );
    assert!(stats.fault_kinds.keys().all(|k| k == "500" || k == "502"));

    let server = start(Config {
        fault_rate: 1.0,
        fault_kinds: vec![fake_ehr::Fault::TooManyRequests],
        fault_retry_after: 3,
        ..Config::default()
    })
    .await
    .expect("start");
    let response = client()
        .get(format!(
            "{}/Condition?patient=pat-000001",
            server.base_url()
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("3")
    );
}

#[tokio::test]
async fn a_throttle_window_answers_every_data_request_429_then_closes() {
    let server = start(Config::default()).await.expect("start");
    let c = client();
    let read = format!("{}/Patient/pat-000001", server.base_url());
    let post = |q: &str| {
        c.post(format!(
            "{}/__admin/throttle?{q}",
            server.base_url().trim_end_matches("/fhir")
        ))
        .send()
    };
    assert_eq!(
        post("ms=60000&retry_after=2").await.expect("post").status(),
        200
    );
    for _ in 0..3 {
        let r = c.get(&read).send().await.expect("send");
        assert_eq!(r.status().as_u16(), 429);
        assert_eq!(r.headers()["retry-after"], "2");
    }
    // Metadata is not a data request.
    let (status, _) = crate::common::get(&c, &format!("{}/metadata", server.base_url())).await;
    assert_eq!(status, 200);
    assert_eq!(post("ms=0").await.expect("post").status(), 200);
    assert_eq!(c.get(&read).send().await.expect("send").status(), 200);
    let stats = server.stats();
    assert_eq!(stats.throttled, 3);
    assert_eq!(stats.throttled_arrivals_ms.len(), 3);
    assert_eq!(stats.faults, 0);
    // Four data requests arrived, in order, each timed.
    assert_eq!(stats.data_arrivals_ms.len(), 4);
    assert!(stats.data_arrivals_ms.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(post("").await.expect("post").status(), 400);

    // In-process switch, as the tests of smart-fetch use it.
    server.throttle(Duration::from_secs(60), 1);
    assert_eq!(c.get(&read).send().await.expect("send").status(), 429);
    server.throttle(Duration::ZERO, 1);
    assert_eq!(c.get(&read).send().await.expect("send").status(), 200);
}

#[tokio::test]
async fn user_agents_are_recorded() {
    let server = start(Config::default()).await.expect("start");
    let url = format!("{}/Patient/pat-000001", server.base_url());
    // reqwest sends no User-Agent unless told to.
    let bare = reqwest::Client::new();
    assert_eq!(bare.get(&url).send().await.expect("send").status(), 200);
    let named = reqwest::Client::builder()
        .user_agent("tester/1.0")
        .build()
        .expect("client");
    assert_eq!(named.get(&url).send().await.expect("send").status(), 200);
    let stats = server.stats();
    assert_eq!(stats.requests_without_user_agent, 1);
    assert_eq!(stats.last_user_agent.as_deref(), Some("tester/1.0"));
}

/// `/__admin/faults` changes rate, kinds and `Retry-After` of a running server; bad values
/// are refused and change nothing.
#[tokio::test]
async fn fault_settings_change_at_runtime_through_the_admin_endpoint() {
    let server = start(Config::default()).await.expect("start");
    let c = client();
    let admin = format!(
        "{}/__admin/faults",
        server.base_url().trim_end_matches("/fhir")
    );
    let (status, settings) = crate::common::get(&c, &admin).await;
    assert_eq!(status, 200);
    assert_eq!(settings["rate"], 0.0);
    assert_eq!(settings["kinds"].as_array().map(Vec::len), Some(6));
    assert_eq!(statuses(&server, 5).await, [200; 5]);

    let post = |q: &'static str| c.post(format!("{admin}?{q}")).send();
    for bad in [
        "rate=2",
        "rate=x",
        "kinds=404",
        "retry_after=-1",
        "colour=red",
        "",
    ] {
        let r = post(bad).await.expect("post");
        assert_eq!(r.status().as_u16(), 400, "{bad}");
    }
    assert_eq!(statuses(&server, 5).await, [200; 5]);

    let r = post("rate=1&kinds=429,503&retry_after=4")
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    let shown: serde_json::Value =
        serde_json::from_slice(&r.bytes().await.expect("body")).expect("json");
    assert_eq!(shown["kinds"], serde_json::json!(["429", "503"]));
    let url = format!("{}/Patient/pat-000001", server.base_url());
    for _ in 0..10 {
        let r = c.get(&url).send().await.expect("send");
        assert!(matches!(r.status().as_u16(), 429 | 503), "{}", r.status());
        assert_eq!(r.headers()["retry-after"], "4");
    }
    // Kinds alone: the rate stays.
    assert_eq!(post("kinds=drop").await.expect("post").status(), 200);
    assert_eq!(statuses(&server, 4).await, [0; 4]);
    let stats = server.stats();
    assert_eq!(stats.fault_kinds.get("drop"), Some(&4));

    // In-process, as the tests of smart-fetch use it.
    server.set_faults(Some(1.0), Some(&[fake_ehr::Fault::BadGateway]), None);
    assert_eq!(statuses(&server, 3).await, [502; 3]);
    server.set_faults(Some(0.0), None, None);
    assert_eq!(statuses(&server, 3).await, [200; 3]);
    let (_, settings) = crate::common::get(&c, &admin).await;
    assert_eq!(settings["kinds"], serde_json::json!(["502"]));
}
