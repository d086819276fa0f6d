//! A hospital's EHR behind HTTPS signed by an internal CA: `--ca-file` makes it trusted, and
//! without it the certificate is refused with one clear line. Reached through the
//! hospital's proxy (`HTTPS_PROXY`), the TLS session is tunnelled with `CONNECT`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{AuthMode, Flavor};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;
use support::*;

/// A TLS front on 127.0.0.1 for `upstream` (plain HTTP), with a certificate for `localhost`
/// and `ehr.invalid` (a name only a proxy can reach) signed by a fresh CA. Returns the
/// front's port and the CA certificate (PEM).
fn start_tls_front(upstream: String) -> (u16, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Hospital Internal CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "ehr.invalid".to_string()])
            .expect("leaf params");
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("server config");
    let config = Arc::new(config);

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind TLS front");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            let upstream = upstream.clone();
            std::thread::spawn(move || relay(tcp, config, upstream));
        }
    });
    (port, ca.pem())
}

/// A 3-patient Epic fake EHR behind a TLS front: the server (keep it alive), the front's
/// port, and the CA certificate written to `dir/hospital-ca.pem`.
fn ehr_behind_tls(dir: &std::path::Path) -> (fake_ehr::Server, u16, std::path::PathBuf) {
    // One page per search: fake-ehr's `next` links name its plain loopback address, which
    // is another origin than the TLS front's and so refused (the trust rule).
    let ehr = server_with(fake_ehr::Config {
        flavor: Flavor::Epic,
        patients: 3,
        auth: AuthMode::Open,
        page_size: 1000,
        ..fake_ehr::Config::default()
    });
    let (port, ca_pem) = start_tls_front(host_port(&ehr));
    let ca_file = dir.join("hospital-ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("write the CA file");
    (ehr, port, ca_file)
}

/// Shuttle bytes between the TLS client and the plain upstream until either side closes.
fn relay(tcp: TcpStream, config: Arc<rustls::ServerConfig>, upstream: String) {
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let Ok(mut plain) = TcpStream::connect(upstream) else {
        return;
    };
    let tick = Some(Duration::from_millis(2));
    if tcp.set_read_timeout(tick).is_err() || plain.set_read_timeout(tick).is_err() {
        return;
    }
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut buf = [0u8; 16 * 1024];
    loop {
        let mut idle = true;
        match tls.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                idle = false;
                if plain.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
        match plain.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                idle = false;
                if tls.write_all(&buf[..n]).and_then(|()| tls.flush()).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
        if idle {
            std::thread::yield_now();
        }
    }
}

/// An HTTP proxy that only tunnels: for `CONNECT ehr.invalid:<port>` it connects to
/// 127.0.0.1:<port>, answers 200 and relays bytes both ways. Records each CONNECT target.
fn start_connect_proxy() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    let targets = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = targets.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || tunnel(client, &seen));
        }
    });
    (format!("http://{addr}"), targets)
}

fn tunnel(mut client: TcpStream, seen: &std::sync::Mutex<Vec<String>>) {
    // The request head, byte by byte so nothing of the TLS session after it is consumed.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let Some(target) = head
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("CONNECT "))
        .and_then(|rest| rest.split(' ').next())
        .map(str::to_string)
    else {
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n");
        return;
    };
    if let Ok(mut list) = seen.lock() {
        list.push(target.clone());
    }
    let port = target.rsplit(':').next().unwrap_or_default().to_string();
    let Ok(server) = TcpStream::connect(format!("127.0.0.1:{port}")) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    std::thread::spawn(move || pipe(server2, client2));
    pipe(client, server);
}

#[test]
fn https_goes_through_the_proxy_in_a_connect_tunnel() {
    let dir = temp_dir("tls-proxy");
    let (_ehr, port, ca_file) = ehr_behind_tls(&dir);
    let (proxy, targets) = start_connect_proxy();
    let mrns = mrn_file(&dir, "MRN-T", 3);
    let out = dir.join("out");
    // `ehr.invalid` resolves nowhere: only the proxy can reach it.
    let url = format!("https://ehr.invalid:{port}/fhir");
    let output = std::process::Command::new(bin())
        .args([
            "export",
            "--fhir-url",
            &url,
            "--ca-file",
            ca_file.to_str().unwrap(),
            "--id-system",
            fake_ehr::data::MRN_SYSTEM,
            "--id-file",
            mrns.to_str().unwrap(),
            "--hydration-tasks",
            "none",
            out.to_str().unwrap(),
        ])
        .env("HTTPS_PROXY", &proxy)
        .env("https_proxy", &proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .output()
        .expect("run smart-fetch");
    assert_success(&output);
    let targets = targets.lock().map(|t| t.clone()).unwrap_or_default();
    assert!(!targets.is_empty(), "the proxy was asked for a tunnel");
    assert!(
        targets.iter().all(|t| *t == format!("ehr.invalid:{port}")),
        "tunnels go to the EHR's name and port: {targets:?}"
    );
    let workdir = first_workdir(&out);
    assert_same_resources(
        &folder_resources(&workdir),
        &expected_resources(1, 3, &ALL_TYPES, true),
    );
}

#[test]
fn internal_ca_is_trusted_only_with_ca_file() {
    let dir = temp_dir("tls");
    let (ehr, port, ca_file) = ehr_behind_tls(&dir);
    let url = format!("https://localhost:{port}/fhir");

    // Unknown CA: refused, one line, nothing printed, nothing reached the server.
    let started = std::time::Instant::now();
    let refused = run(&["single", "Patient/pat-000001", "--fhir-url", &url]);
    // A certificate we do not trust will not be trusted a second later: no retries
    // (which would take 3 s).
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(stderr.contains("--ca-file"), "the fix is named: {stderr}");
    assert!(refused.stdout.is_empty(), "{}", text(&refused.stdout));
    assert_eq!(
        ehr.stats().requests,
        0,
        "the handshake failed before any request"
    );

    // The hospital's CA added: the resource comes back over TLS.
    let trusted = run(&[
        "single",
        "Patient/pat-000001",
        "--fhir-url",
        &url,
        "--ca-file",
        ca_file.to_str().unwrap(),
        "--compact",
    ]);
    assert_success(&trusted);
    let patient: serde_json::Value = serde_json::from_slice(&trusted.stdout).expect("JSON");
    assert_eq!(patient, fake_ehr::data::patient_resource(1, 1));
}
