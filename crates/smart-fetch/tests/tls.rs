//! A hospital's EHR behind HTTPS signed by an internal CA: `--ca-file` makes it trusted, and
//! without it the certificate is refused with one clear line.

mod support;

use fake_ehr::{AuthMode, Flavor};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;
use support::*;

/// A TLS front on 127.0.0.1 for `upstream` (plain HTTP), with a certificate for `localhost`
/// signed by a fresh CA. Returns the front's port and the CA certificate (PEM).
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
        rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("leaf params");
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

#[test]
fn internal_ca_is_trusted_only_with_ca_file() {
    let dir = temp_dir("tls");
    let ehr = server(Flavor::Epic, 3, AuthMode::Open);
    let upstream = ehr
        .base_url()
        .trim_start_matches("http://")
        .trim_end_matches("/fhir")
        .to_string();
    let (port, ca_pem) = start_tls_front(upstream);
    let ca_file = dir.join("hospital-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let url = format!("https://localhost:{port}/fhir");

    // Unknown CA: refused, one line, nothing written.
    let refused_out = dir.join("refused");
    let refused = run(&["single", "Patient/pat-000001", "--fhir-url", &url]);
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(stderr.contains("--ca-file"), "the fix is named: {stderr}");
    assert!(!refused_out.exists());

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
