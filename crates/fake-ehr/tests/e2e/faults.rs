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
