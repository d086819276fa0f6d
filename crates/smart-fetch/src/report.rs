//! Where the library's messages go. Library modules never print: they hand lines to a
//! `Reporter` value, and the CLI decides what a line becomes (`--log-format`): today's
//! console text with live progress on a terminal, plain timestamped lines for a scheduler's
//! log file, or JSON lines. A batch gives each group a scoped reporter so its lines say which
//! group they are about; every reporter made from one root shares its sink, its live-progress
//! area and its run-wide `Counters`.
//!
//! The text format reproduces the tool's console output byte for byte, including the
//! Python tool's choice of stream for each line: that is why a few kinds exist only to say
//! "a warning (or verbose line) that the text format prints on stdout".

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The console output: info on stdout, warnings and verbose lines on stderr, rule
    /// lines, live progress on a terminal.
    #[default]
    Text,
    /// `<RFC 3339 UTC time> <level> [<group>] <message>`, one line per line of a message,
    /// everything on stderr; no rule lines, no live progress, no escape codes.
    Plain,
    /// One JSON object a line on stderr: `{"time", "level", "group" (scoped only),
    /// "message"}`; nothing else.
    Json,
}

/// What a line is. `level()` is what plain and JSON lines say; the text format puts each
/// kind on the stream the tool always used for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The tool's normal output (stdout in text).
    Info,
    /// A problem the user must see (stderr in text).
    Warning,
    /// A problem the Python tool printed with its normal output (stdout in text), such as
    /// an undecodable line of a local file; a warning in the other formats.
    StdoutWarning,
    /// Shown only with `--verbose` (stderr in text).
    Verbose,
    /// Shown only with `--verbose`, printed on stdout in text (hydration's per-item errors,
    /// docs/hydration.md#fetching-a-reference).
    StdoutVerbose,
    /// The message a failed run ends with (stderr in text).
    Error,
    /// The console's full-width rule line (its text is empty: the sink draws it). Formats
    /// meant for log files drop it.
    Rule,
}

impl Kind {
    /// The `level` of plain and JSON lines (`None` for rule lines, which they drop).
    pub fn level(self) -> Option<&'static str> {
        match self {
            Kind::Info => Some("info"),
            Kind::Warning | Kind::StdoutWarning => Some("warning"),
            Kind::Verbose | Kind::StdoutVerbose => Some("verbose"),
            Kind::Error => Some("error"),
            Kind::Rule => None,
        }
    }

    /// Whether the text format prints it on stdout.
    fn text_on_stdout(self) -> bool {
        matches!(
            self,
            Kind::Info | Kind::StdoutWarning | Kind::StdoutVerbose | Kind::Rule
        )
    }
}

/// Receives every line. Implementations decide formatting and destination; they are called
/// from any thread, so a line must be written whole (one write under a lock).
trait Sink: Send + Sync {
    fn line(&self, kind: Kind, scope: Option<&str>, text: &str);
}

/// Run-wide figures for a progress view, shared by a root reporter and every reporter
/// scoped from it, bumped where the work happens. Atomics only: bumping one costs about
/// what an uncontended lock-free add costs, and readers never block writers.
#[derive(Clone, Default)]
pub struct Counters(Arc<Cells>);

#[derive(Default)]
struct Cells {
    resources: AtomicU64,
    patients: AtomicU64,
    requests: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Resources written to export files: committed search results (crawl), lines of
    /// downloaded bulk files, hydrated resources (note inlining rewrites, it adds none).
    pub resources: u64,
    /// Patients a crawl has resolved and queued for searching: found by an ID lookup, read
    /// from a cohort folder, or found by an earlier run of a resumed crawl.
    pub patients: u64,
    /// HTTP requests sent to servers, every try of a retried request included.
    pub requests: u64,
}

impl Counters {
    pub fn add_resources(&self, n: u64) {
        self.0.resources.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_patients(&self, n: u64) {
        self.0.patients.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_request(&self) {
        self.0.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            resources: self.0.resources.load(Ordering::Relaxed),
            patients: self.0.patients.load(Ordering::Relaxed),
            requests: self.0.requests.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

/// The process's two streams as the CLI hands them over: library code never opens them.
pub struct Streams {
    pub stdout: Box<dyn Write + Send>,
    pub stderr: Box<dyn Write + Send>,
    pub stdout_is_terminal: bool,
    /// Live progress is drawn (on stderr) only when stderr is a terminal.
    pub stderr_is_terminal: bool,
}

/// The text format on the process's stdout and stderr. With live progress, every line is
/// written while the bars are lifted (`suspend`), so lines and bars never share a row.
struct Console {
    multi: Option<MultiProgress>,
    /// Asked once: rule lines are as wide as the terminal, when stdout is one.
    rule_width: usize,
    stdout: Mutex<Box<dyn Write + Send>>,
    stderr: Mutex<Box<dyn Write + Send>>,
}

impl Sink for Console {
    fn line(&self, kind: Kind, scope: Option<&str>, text: &str) {
        let line = match (kind, scope) {
            (Kind::Rule, _) => crate::console::rule_line(self.rule_width) + "\n",
            (_, Some(scope)) => format!("[{scope}] {text}\n"),
            (_, None) => format!("{text}\n"),
        };
        // A closed pipe (`| head`) is the reader's choice: nothing to report, no panic.
        let write = || {
            let stream = match kind.text_on_stdout() {
                true => &self.stdout,
                false => &self.stderr,
            };
            let mut out = stream.lock().unwrap_or_else(|p| p.into_inner());
            let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
        };
        match &self.multi {
            Some(multi) => multi.suspend(write),
            None => write(),
        }
    }
}

/// Every line into one writer (stderr, a file, a test's buffer), in any format. Text here
/// has no streams to choose between: info and warnings alike, rules 80 wide.
struct Lines {
    format: Format,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Sink for Lines {
    fn line(&self, kind: Kind, scope: Option<&str>, text: &str) {
        let rendered = render(self.format, kind, scope, text, &now_rfc3339());
        if rendered.is_empty() {
            return;
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(rendered.as_bytes());
        let _ = out.flush();
    }
}

/// The current time as RFC 3339 in UTC with milliseconds: `2026-03-01T09:15:02.345Z`.
fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One message as the bytes `format` writes for it (newline included; empty for a rule
/// line outside the text format).
fn render(format: Format, kind: Kind, scope: Option<&str>, text: &str, time: &str) -> String {
    let Some(level) = kind.level() else {
        return match format {
            Format::Text => crate::console::rule_line(80) + "\n",
            Format::Plain | Format::Json => String::new(),
        };
    };
    match format {
        Format::Text => match scope {
            Some(scope) => format!("[{scope}] {text}\n"),
            None => format!("{text}\n"),
        },
        Format::Plain => {
            // Group names come from file names and configs: no control characters either.
            let scope = scope.map(|s| format!("[{}] ", crate::text::printable(s)));
            let scope = scope.as_deref().unwrap_or("");
            let mut out = String::with_capacity(text.len() + 48);
            // Every line of a multi-line message (a summary, a table) gets the prefix, so
            // a log reader can take any line on its own.
            for line in text.split('\n') {
                let full = format!("{time} {level:<7} {scope}{line}");
                out.push_str(full.trim_end_matches(' '));
                out.push('\n');
            }
            out
        }
        Format::Json => {
            #[derive(serde::Serialize)]
            struct JsonLine<'a> {
                time: &'a str,
                level: &'a str,
                #[serde(skip_serializing_if = "Option::is_none")]
                group: Option<&'a str>,
                message: &'a str,
            }
            let line = JsonLine {
                time,
                level,
                group: scope,
                message: text,
            };
            match serde_json::to_string(&line) {
                Ok(mut json) => {
                    json.push('\n');
                    json
                }
                Err(_) => String::new(),
            }
        }
    }
}

struct Shared {
    sink: Arc<dyn Sink>,
    verbose: bool,
    format: Format,
    /// The live-progress area: only for the text format on a terminal.
    multi: Option<MultiProgress>,
    counters: Counters,
}

/// A cheap handle (two `Arc`s) to the run's output; clone it freely, pass it by value or
/// by reference into plans and options.
#[derive(Clone)]
pub struct Reporter {
    shared: Arc<Shared>,
    scope: Option<Arc<str>>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("format", &self.shared.format)
            .field("verbose", &self.shared.verbose)
            .field("scope", &self.scope)
            .field("live", &self.shared.multi.is_some())
            .finish()
    }
}

impl Reporter {
    /// The process's output in `format` on the `streams` the CLI hands over: text on
    /// stdout and stderr (live progress when stderr is a terminal), plain and JSON lines on
    /// stderr.
    pub fn new(format: Format, verbose: bool, streams: Streams) -> Self {
        match format {
            Format::Text => {
                let multi = streams
                    .stderr_is_terminal
                    .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
                let sink = Arc::new(Console {
                    multi: multi.clone(),
                    rule_width: crate::console::terminal_width(streams.stdout_is_terminal),
                    stdout: Mutex::new(streams.stdout),
                    stderr: Mutex::new(streams.stderr),
                });
                Self::build(sink, verbose, format, multi)
            }
            Format::Plain | Format::Json => Self::to_writer(format, verbose, streams.stderr),
        }
    }

    /// Every line in `format` into one writer (a log file, a test's buffer); never live
    /// progress. In the text format info and warnings share the writer, rules are 80 wide.
    pub fn to_writer(format: Format, verbose: bool, out: Box<dyn Write + Send>) -> Self {
        let sink = Arc::new(Lines {
            format,
            out: Mutex::new(out),
        });
        Self::build(sink, verbose, format, None)
    }

    /// Nothing anywhere (tests, and library callers that want only the return values).
    pub fn silent() -> Self {
        Self::to_writer(Format::Plain, false, Box::new(std::io::sink()))
    }

    fn build(
        sink: Arc<dyn Sink>,
        verbose: bool,
        format: Format,
        multi: Option<MultiProgress>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                sink,
                verbose,
                format,
                multi,
                counters: Counters::default(),
            }),
            scope: None,
        }
    }

    /// The same destination and counters, every line tagged with `scope` (a batch's group
    /// name). A scoped reporter draws no live progress of its own: the batch shows one
    /// view for all its groups instead (its root reporter's `progress_bar`, `counters`).
    pub fn scoped(&self, scope: &str) -> Self {
        Self {
            shared: self.shared.clone(),
            scope: Some(Arc::from(scope)),
        }
    }

    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    pub fn format(&self) -> Format {
        self.shared.format
    }

    pub fn is_verbose(&self) -> bool {
        self.shared.verbose
    }

    /// The run-wide counters (the same for every reporter scoped from one root).
    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// A status line redrawn in place, starting with `message`; a no-op handle (`is_live`
    /// false) unless this is an unscoped reporter of the text format on a terminal.
    pub fn progress_bar(&self, message: impl Into<String>) -> Progress {
        let Some(multi) = self.shared.multi.as_ref().filter(|_| self.scope.is_none()) else {
            return Progress { bar: None };
        };
        let style = ProgressStyle::with_template("{spinner} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bar = multi.add(ProgressBar::new_spinner().with_style(style));
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar: Some(bar) }
    }

    fn emit(&self, kind: Kind, text: &str) {
        self.shared.sink.line(kind, self.scope(), text);
    }

    pub fn info(&self, text: impl AsRef<str>) {
        self.emit(Kind::Info, text.as_ref());
    }

    pub fn warn(&self, text: impl AsRef<str>) {
        self.emit(Kind::Warning, text.as_ref());
    }

    /// A warning that the text format prints on stdout, where the Python tool printed it.
    pub fn warn_on_stdout(&self, text: impl AsRef<str>) {
        self.emit(Kind::StdoutWarning, text.as_ref());
    }

    /// The message a failed run ends with (`cli::finish`), or a refusal before any work.
    pub fn error(&self, text: impl AsRef<str>) {
        self.emit(Kind::Error, text.as_ref());
    }

    /// A full-width rule line (text format only). A group of a batch is one export among
    /// many: its scoped reporter draws none between its messages.
    pub fn rule(&self) {
        if self.scope().is_some() {
            return;
        }
        self.emit(Kind::Rule, "");
    }

    /// The end of a successful command: a rule, then `✨ Done ✨`.
    pub fn done(&self) {
        self.rule();
        self.info("✨ Done ✨");
    }

    /// Built and shown only when `--verbose` asked for it.
    pub fn verbose(&self, text: impl FnOnce() -> String) {
        if self.shared.verbose {
            self.emit(Kind::Verbose, &text());
        }
    }

    /// A verbose line that the text format prints on stdout (see `Kind::StdoutVerbose`).
    pub fn verbose_on_stdout(&self, text: impl FnOnce() -> String) {
        if self.shared.verbose {
            self.emit(Kind::StdoutVerbose, &text());
        }
    }
}

/// A live status line, or nothing (`is_live` false): callers build the text only when it
/// will be drawn, or print it as an ordinary line instead. Cleared when dropped.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn is_live(&self) -> bool {
        self.bar.is_some()
    }

    pub fn set_message(&self, text: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.into());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // indicatif leaves an unfinished bar's last frame on screen; a status line that
        // outlived its work would read as current.
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test keeps a handle on.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
        }
    }

    fn reporter(format: Format, verbose: bool) -> (Reporter, Buffer) {
        let buffer = Buffer::default();
        (
            Reporter::to_writer(format, verbose, Box::new(buffer.clone())),
            buffer,
        )
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, checked character by character (not with chrono,
    /// which wrote it).
    fn is_utc_timestamp(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 24
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b'T',
                13 | 16 => *c == b':',
                19 => *c == b'.',
                23 => *c == b'Z',
                _ => c.is_ascii_digit(),
            })
    }

    #[test]
    fn a_scoped_reporter_tags_its_lines_in_plain() {
        let (root, buffer) = reporter(Format::Plain, false);
        let group = root.scoped("MRN-003");
        group.info("Skipping Patient, already done.");
        root.warn("no group here");
        group.rule();
        let text = buffer.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let (time, rest) = lines[0].split_at(24);
        assert!(is_utc_timestamp(time), "{time}");
        assert_eq!(rest, " info    [MRN-003] Skipping Patient, already done.");
        let (time, rest) = lines[1].split_at(24);
        assert!(is_utc_timestamp(time), "{time}");
        assert_eq!(rest, " warning no group here");
    }

    #[test]
    fn a_scoped_reporter_tags_its_lines_in_json() {
        let (root, buffer) = reporter(Format::Json, true);
        let group = root.scoped("MRN-003");
        group.warn("2 searches failed\nrerun");
        group.verbose(|| "Retrying".to_string());
        root.info("✨ Done ✨");
        root.rule();
        let text = buffer.text();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        for line in &lines {
            let time = line["time"].as_str().unwrap_or_default();
            assert!(is_utc_timestamp(time), "{time}");
        }
        assert_eq!(lines[0]["level"], "warning");
        assert_eq!(lines[0]["group"], "MRN-003");
        assert_eq!(lines[0]["message"], "2 searches failed\nrerun");
        assert_eq!(lines[1]["level"], "verbose");
        assert_eq!(lines[1]["group"], "MRN-003");
        assert_eq!(lines[2]["level"], "info");
        assert!(lines[2].get("group").is_none(), "{text}");
        assert_eq!(lines[2]["message"], "✨ Done ✨");
        // Field order as documented: time, level, group, message.
        assert!(text.starts_with("{\"time\":"), "{text}");
    }

    #[test]
    fn plain_prefixes_every_line_of_a_message_and_escapes_the_group() {
        let (root, buffer) = reporter(Format::Plain, false);
        root.scoped("G\u{1b}[2J").warn_on_stdout("a\n\nb");
        let text = buffer.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with(" warning [G\\u{1b}[2J] a"), "{text}");
        assert!(lines[1].ends_with(" warning [G\\u{1b}[2J]"), "{text}");
        assert!(lines[2].ends_with(" warning [G\\u{1b}[2J] b"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn verbose_lines_only_when_asked() {
        for verbose in [false, true] {
            let (r, buffer) = reporter(Format::Text, verbose);
            r.verbose(|| "v1".to_string());
            r.verbose_on_stdout(|| "v2".to_string());
            r.info("i");
            let expected = if verbose { "v1\nv2\ni\n" } else { "i\n" };
            assert_eq!(buffer.text(), expected);
        }
    }

    #[test]
    fn text_into_a_writer_keeps_console_lines() {
        let (r, buffer) = reporter(Format::Text, false);
        r.done();
        r.scoped("g").error("boom");
        assert_eq!(
            buffer.text(),
            format!("{}\n✨ Done ✨\n[g] boom\n", "─".repeat(80))
        );
    }

    #[test]
    fn scoped_reporters_share_counters_and_draw_no_bars() {
        let root = Reporter::silent();
        let group = root.scoped("A");
        group.counters().add_resources(3);
        root.counters().add_resources(2);
        group.counters().add_patients(1);
        group.counters().add_request();
        assert_eq!(
            root.counters().snapshot(),
            CounterSnapshot {
                resources: 5,
                patients: 1,
                requests: 1
            }
        );
        assert!(!group.progress_bar("x").is_live());
        assert!(!root.progress_bar("x").is_live());
    }
}
