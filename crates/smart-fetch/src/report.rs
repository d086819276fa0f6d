//! Where the library's messages go. Library modules never print: they hand lines to a
//! `Reporter` value, and the CLI decides what a line becomes (today's console text, plain
//! timestamped lines for a scheduler's log, JSON lines, or live progress on a terminal).
//! A batch gives each group a scoped reporter so its lines say which group they are about.
//!
//! (First cut: console output exactly as before; the formats come with the batch work.)

use std::sync::Arc;

/// What kind of line a message is: `Info` is the tool's normal output (stdout in the
/// console format, like the Python tool), `Warning` is a problem the user must see
/// (stderr), `Verbose` is shown only with `--verbose` (stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Info,
    Warning,
    Verbose,
    /// The console's full-width rule line (its text is empty: the sink draws it). Formats
    /// meant for log files drop it.
    Rule,
}

/// Receives every line. Implementations decide formatting and destination.
pub trait Sink: Send + Sync {
    fn line(&self, kind: Kind, scope: Option<&str>, text: &str);
}

/// Today's console behaviour: info on stdout, warnings and verbose lines on stderr.
struct Console;

impl Sink for Console {
    #[allow(clippy::print_stdout, clippy::print_stderr)]
    fn line(&self, kind: Kind, scope: Option<&str>, text: &str) {
        // A group of a batch is one export among many: no rule lines between its messages.
        if kind == Kind::Rule && scope.is_some() {
            return;
        }
        let text = match scope {
            Some(scope) => format!("[{scope}] {text}"),
            None => text.to_string(),
        };
        match kind {
            Kind::Info => println!("{text}"),
            Kind::Warning | Kind::Verbose => eprintln!("{text}"),
            Kind::Rule => println!(
                "{}",
                crate::console::rule_line(crate::console::terminal_width())
            ),
        }
    }
}

#[derive(Clone)]
pub struct Reporter {
    sink: Arc<dyn Sink>,
    verbose: bool,
    scope: Option<Arc<str>>,
}

impl Reporter {
    /// The console format of a single export: byte for byte what the tool always printed.
    pub fn console(verbose: bool) -> Self {
        Self::with_sink(Arc::new(Console), verbose)
    }

    pub fn with_sink(sink: Arc<dyn Sink>, verbose: bool) -> Self {
        Self {
            sink,
            verbose,
            scope: None,
        }
    }

    /// The same destination, with every line tagged with `scope` (a batch's group name).
    pub fn scoped(&self, scope: &str) -> Self {
        Self {
            sink: self.sink.clone(),
            verbose: self.verbose,
            scope: Some(Arc::from(scope)),
        }
    }

    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    pub fn is_verbose(&self) -> bool {
        self.verbose
    }

    pub fn info(&self, text: impl AsRef<str>) {
        self.sink.line(Kind::Info, self.scope(), text.as_ref());
    }

    pub fn warn(&self, text: impl AsRef<str>) {
        self.sink.line(Kind::Warning, self.scope(), text.as_ref());
    }

    /// A full-width rule line (console only).
    pub fn rule(&self) {
        self.sink.line(Kind::Rule, self.scope(), "");
    }

    /// The end of a successful command: a rule, then `✨ Done ✨`.
    pub fn done(&self) {
        self.rule();
        self.info("✨ Done ✨");
    }

    /// Built only when `--verbose` asked for it.
    pub fn verbose(&self, text: impl FnOnce() -> String) {
        if self.verbose {
            self.sink.line(Kind::Verbose, self.scope(), &text());
        }
    }
}
