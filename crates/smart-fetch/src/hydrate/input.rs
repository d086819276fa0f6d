//! Feeding input files to the async task loops: a blocking reader thread per task streams
//! parsed resources (or raw lines, for rewrites) through a bounded channel, so file reading
//! and gunzipping never stall the runtime and memory stays flat. Reads only; never writes.

use crate::ndjson;
use futures_util::Stream;
use serde_json::Value;
use std::io::{self, BufRead};
use std::path::PathBuf;
use tokio::sync::mpsc;

/// Lines buffered between the reader thread and the task loop.
const CHANNEL_SIZE: usize = 256;

/// Every JSON value of `paths`, in path then line order (blank and undecodable lines are
/// skipped with the usual warning). The reader stops when the stream is dropped.
pub fn values(paths: Vec<PathBuf>) -> impl Stream<Item = Value> + Send + Unpin + 'static {
    let (tx, rx) = mpsc::channel(CHANNEL_SIZE);
    tokio::task::spawn_blocking(move || {
        for path in paths {
            for value in ndjson::read_values(&path) {
                if tx.blocking_send(value).is_err() {
                    return;
                }
            }
        }
    });
    receiver_stream(rx)
}

/// Every line of one file as raw bytes without its line ending, blank lines included, then
/// an error item if the file could not be read to its end.
pub fn raw_lines(
    path: PathBuf,
) -> impl Stream<Item = io::Result<Vec<u8>>> + Send + Unpin + 'static {
    let (tx, rx) = mpsc::channel(CHANNEL_SIZE);
    tokio::task::spawn_blocking(move || {
        let mut reader = match ndjson::open_decompressed(&path) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    trim_line_end(&mut line);
                    if tx.blocking_send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    receiver_stream(rx)
}

/// Drop the line ending (`\n`, `\r\n`, and any run of them) from a line as read.
pub fn trim_line_end(line: &mut Vec<u8>) {
    while line.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
        line.pop();
    }
}

fn receiver_stream<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send + Unpin + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn streams_values_and_raw_lines() {
        let dir = std::env::temp_dir().join(format!("sf-hydrate-input-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let a = dir.join("a.ndjson");
        let b = dir.join("b.ndjson");
        let write = |p: &PathBuf, text: &str| {
            if let Err(e) = std::fs::write(p, text) {
                panic!("{e}");
            }
        };
        write(&a, "{\"id\":1}\n\nnot json\r\n{\"id\":2}");
        write(&b, "{\"id\":3}\n");
        let ids: Vec<Value> = values(vec![a.clone(), b.clone()])
            .map(|v| v["id"].clone())
            .collect()
            .await;
        assert_eq!(ids, [1, 2, 3]);
        let lines: Vec<Vec<u8>> = raw_lines(a.clone())
            .map(|l| l.unwrap_or_else(|e| panic!("{e}")))
            .collect()
            .await;
        let expected: Vec<&[u8]> = vec![b"{\"id\":1}", b"", b"not json", b"{\"id\":2}"];
        assert_eq!(lines, expected);
        let missing: Vec<io::Result<Vec<u8>>> =
            raw_lines(dir.join("missing.ndjson")).collect().await;
        assert!(matches!(missing.as_slice(), [Err(_)]));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
