//! A small hostile (or just broken) HTTP server for end-to-end tests of the trust boundary:
//! it answers each request from a closure with full control over the bytes on the wire
//! (raw answers, endless bodies, silence), and records every request with its headers, so a
//! test can prove what reached it. Bind it on 127.0.0.1 for "the FHIR server" and on
//! 127.0.0.2 for "another origin". Plain threads: no runtime shared with the tool.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// What to do with one request.
pub enum Answer {
    /// Status, extra headers, body (sent with Content-Length).
    Full(u16, Vec<(String, String)>, Vec<u8>),
    /// Bytes written as they are (a whole hand-made answer, or a broken one), then close.
    Raw(Vec<u8>),
    /// 200 with a chunked body that never ends (`chunk` repeated until the client hangs up).
    Endless(Vec<(String, String)>, Vec<u8>),
    /// Accept the request and never answer (the connection stays open for `Duration`).
    Silent(Duration),
    /// A 200 of `total` bytes declared in `Content-Length`: `prefix`, then `fill` repeated,
    /// generated as it is sent (a 2 GiB answer costs the test no memory).
    Sized(Vec<(String, String)>, Vec<u8>, u8, u64),
    /// Headers of a 200 at once, then one byte and silence for `Duration`.
    Stall(Vec<(String, String)>, Duration),
    /// A 200 whose chunked body comes in `pieces`, one every `Duration`: slow but moving.
    Trickle(Vec<(String, String)>, Vec<Vec<u8>>, Duration),
}

/// 200 `application/fhir+json` with the JSON text of `value`.
pub fn json_answer(value: &Value) -> Answer {
    Answer::Full(
        200,
        vec![("Content-Type".into(), "application/fhir+json".into())],
        value.to_string().into_bytes(),
    )
}

pub fn status_answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
    Answer::Full(
        status,
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body.as_bytes().to_vec(),
    )
}

/// A searchset Bundle of `resources`, with a `next` link when given.
pub fn bundle(resources: &[Value], next: Option<&str>) -> Value {
    let mut page = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": resources.iter().map(|r| json!({"resource": r})).collect::<Vec<_>>(),
    });
    if let Some(next) = next {
        page["link"] = json!([{"relation": "next", "url": next}]);
    }
    page
}

/// A minimal CapabilityStatement (a generic, non-Epic server) listing `types`.
pub fn capability_statement(types: &[&str]) -> Value {
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "software": {"name": "hostile"},
        "rest": [{
            "mode": "server",
            "resource": types.iter().map(|t| json!({"type": t})).collect::<Vec<_>>(),
        }],
    })
}

type Handler = dyn Fn(&Seen, &str) -> Answer + Send + Sync;

/// A running server; it lives until the test process ends.
pub struct Hostile {
    pub addr: SocketAddr,
    /// `http://ip:port/` (trailing slash).
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Hostile {
    /// Start on `ip` (e.g. "127.0.0.1" or "127.0.0.2"), any free port. The handler gets the
    /// request and this server's own base URL.
    pub fn start(
        ip: &str,
        handler: impl Fn(&Seen, &str) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind((ip, 0)).expect("bind hostile server");
        let addr = listener.local_addr().expect("local addr");
        let url = format!("http://{addr}/");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (base, log) = (url.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (handler, base, log) = (handler.clone(), base.clone(), log.clone());
                std::thread::spawn(move || serve(stream, &*handler, &base, &log));
            }
        });
        Hostile { addr, url, seen }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Requests that carried an `Authorization` header.
    pub fn with_authorization(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.header("authorization").is_some())
            .collect()
    }
}

fn serve(stream: TcpStream, handler: &Handler, base: &str, log: &Mutex<Vec<Seen>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    // Keep-alive: several requests may come on one connection.
    loop {
        let Some(seen) = read_request(&mut reader) else {
            return;
        };
        if let Ok(mut log) = log.lock() {
            log.push(seen.clone());
        }
        let keep_going = match handler(&seen, base) {
            Answer::Full(status, headers, body) => {
                let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                writer.write_all(head.as_bytes()).is_ok() && writer.write_all(&body).is_ok()
            }
            Answer::Raw(bytes) => {
                let _ = writer.write_all(&bytes);
                false
            }
            Answer::Endless(headers, chunk) => {
                let mut head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n".to_string();
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                if writer.write_all(head.as_bytes()).is_ok() && !chunk.is_empty() {
                    let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                    framed.extend_from_slice(&chunk);
                    framed.extend_from_slice(b"\r\n");
                    while writer.write_all(&framed).is_ok() {}
                }
                false
            }
            Answer::Sized(headers, prefix, fill, total) => {
                let mut head = format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n");
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let block = vec![fill; 64 * 1024];
                let mut left = total.saturating_sub(prefix.len() as u64);
                let mut ok =
                    writer.write_all(head.as_bytes()).is_ok() && writer.write_all(&prefix).is_ok();
                while ok && left > 0 {
                    let n = left.min(block.len() as u64) as usize;
                    ok = writer.write_all(&block[..n]).is_ok();
                    left -= n as u64;
                }
                false
            }
            Answer::Silent(hold) => {
                std::thread::sleep(hold);
                false
            }
            Answer::Trickle(headers, pieces, gap) => {
                let mut head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n".to_string();
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let mut ok = writer.write_all(head.as_bytes()).is_ok() && writer.flush().is_ok();
                for piece in pieces.iter().filter(|p| !p.is_empty()) {
                    if !ok {
                        break;
                    }
                    std::thread::sleep(gap);
                    let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
                    framed.extend_from_slice(piece);
                    framed.extend_from_slice(b"\r\n");
                    ok = writer.write_all(&framed).is_ok() && writer.flush().is_ok();
                }
                ok && writer.write_all(b"0\r\n\r\n").is_ok()
            }
            Answer::Stall(headers, hold) => {
                let mut head = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n".to_string();
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n{");
                let _ = writer.write_all(head.as_bytes());
                let _ = writer.flush();
                std::thread::sleep(hold);
                false
            }
        };
        let _ = writer.flush();
        if !keep_going {
            let _ = writer.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Run the tool to completion (killed after `limit`), sampling its peak resident memory
/// (`VmHWM`) every few milliseconds; returns the output and the highest peak seen, in bytes.
pub fn run_measured(args: &[&str], limit: Duration) -> (std::process::Output, u64) {
    let mut child = std::process::Command::new(super::bin())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start smart-fetch");
    let status_file = format!("/proc/{}/status", child.id());
    let start = std::time::Instant::now();
    let mut peak = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_file) {
            for line in status.lines() {
                if let Some(kib) = line.strip_prefix("VmHWM:") {
                    let kib: u64 = kib
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse()
                        .unwrap_or(0);
                    peak = peak.max(kib * 1024);
                }
            }
        }
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for smart-fetch: {e}"),
        }
    }
    (child.wait_with_output().expect("collect output"), peak)
}
