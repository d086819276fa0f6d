//! Hospitals reach their EHR through a proxy named in the environment. With `HTTP_PROXY` set
//! and a FHIR URL whose host does not even resolve, the export still works, because every
//! request goes through the proxy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{AuthMode, Flavor};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::*;

/// A relay that hands every connection to `upstream` unchanged (HTTP/1.1 servers accept the
/// absolute-form request lines a client sends to a proxy). Counts connections.
fn start_relay(upstream: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
    let addr = listener.local_addr().expect("relay address");
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || pipe(client, server));
            std::thread::spawn(move || pipe(server2, client2));
        }
    });
    (format!("http://{addr}"), count)
}

#[test]
fn requests_go_through_the_proxy_from_the_environment() {
    let dir = temp_dir("proxy");
    // One page per search: fake-ehr writes `next` links with its own loopback address,
    // which is not the origin of `--fhir-url` here, and those are refused (the trust rule).
    let ehr = server_with(fake_ehr::Config {
        flavor: Flavor::Epic,
        patients: 4,
        auth: AuthMode::Open,
        page_size: 1000,
        ..fake_ehr::Config::default()
    });
    let upstream = host_port(&ehr);
    let (proxy, connections) = start_relay(upstream);
    let mrns = mrn_file(&dir, "MRN-P", 3);
    let out = dir.join("out");

    let output = std::process::Command::new(bin())
        .args([
            "export",
            "--fhir-url",
            "http://ehr.invalid/fhir",
            "--id-system",
            fake_ehr::data::MRN_SYSTEM,
            "--id-file",
            mrns.to_str().unwrap(),
            "--hydration-tasks",
            "none",
            out.to_str().unwrap(),
        ])
        .env("HTTP_PROXY", &proxy)
        .env("http_proxy", &proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .expect("run smart-fetch");
    assert_success(&output);
    assert!(connections.load(Ordering::SeqCst) > 0, "the proxy was used");
    let workdir = first_workdir(&out);
    let expected = expected_resources(1, 3, &ALL_TYPES, true);
    assert_same_resources(&folder_resources(&workdir), &expected);
}
