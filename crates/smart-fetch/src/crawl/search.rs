//! One search chain: every URL of one (patient, type) pair, each followed through its `next`
//! links (docs/crawl.md#paging). Every resource of the answers is checked against what was asked
//! (`membership`): a resource of another patient stops the chain and, through the engine,
//! its type; entries of a type not asked for are left out and counted. A chain that does
//! not end well (an error answer after retries, an unusable body, a non-Bundle answer, an
//! error reported inside a page, `next` links that loop or never end) is *failed*: it keeps
//! only its OperationOutcome lines, and the next run searches it again. Only fatal errors
//! (auth) end the crawl. Does not write files.

use super::membership::Expected;
use super::report::{ChainOutcome, Dropped, FailureKind};
use super::sink::{ChainResult, Record};
use crate::fhir::{FhirClient, FhirError, FhirResponse, Request};
use crate::json;
use crate::resources::ResourceType;
use crate::timestamp::{self, Timestamp};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::HashSet;

/// Most pages one search may take before it counts as failed. A server whose `next` links
/// never end (a new URL each time, so the loop check cannot see it) would otherwise keep a
/// connection busy for ever and pile the pages up in memory. Ten thousand pages are a
/// million resources of one type for one patient at a page size of 100, far beyond any
/// real chart, yet at 50 ms a page a runaway search is cut off within ten minutes.
pub const MAX_PAGES: usize = 10_000;

/// One chain to fetch.
pub struct ChainRequest<'a> {
    pub resource_type: ResourceType,
    /// Patient id (per-patient searches) or the ID/MRN looked up (Patient lookups).
    pub key: String,
    pub urls: &'a [String],
    pub expected: &'a Expected,
    /// Send `Prefer: handling=strict` (`--strict-search`).
    pub strict: bool,
    pub now: Timestamp,
}

pub async fn fetch_chain(
    client: &FhirClient,
    request: ChainRequest<'_>,
) -> Result<ChainResult, FhirError> {
    let mut chain = Chain {
        result: ChainResult {
            resource_type: request.resource_type,
            key: request.key,
            records: Vec::new(),
            errors: Vec::new(),
            max_date: None,
            outcome: ChainOutcome::Complete,
            dropped: Dropped::default(),
            links: Vec::new(),
            owners: Vec::new(),
        },
        // Several ORed filters may return the same resource for one patient.
        seen: (request.urls.len() > 1).then(HashSet::new),
        now: request.now,
        expected: request.expected,
    };
    let mut headers = reqwest::header::HeaderMap::new();
    if request.strict {
        headers.insert(
            reqwest::header::HeaderName::from_static("prefer"),
            reqwest::header::HeaderValue::from_static("handling=strict"),
        );
    }
    'searches: for url in request.urls {
        // docs/crawl.md#paging: a `+` in the URLs we build (e.g. the offset of a since timestamp,
        // `_lastUpdated=gt2025-01-01T00:00:00+00:00`) is data, not an encoded space. Links
        // from the server are used as given.
        let mut next = Some(url.replace('+', "%2B"));
        let mut pages = PageGuard::default();
        while let Some(url) = next.take() {
            if let Err((kind, diagnostics)) = pages.admit(client, &url) {
                chain.fail(kind, synthesized(&diagnostics));
                break 'searches;
            }
            let mut get = Request::get(&url, FHIR_JSON);
            get.headers = headers.clone();
            let fetched = match client.request(get).await {
                Ok(response) => chain.take_page(&response),
                Err(err) => Err(err),
            };
            match fetched {
                Ok(link) => next = link,
                Err(err) if err.is_fatal() => return Err(err),
                Err(err) => {
                    let outcome = err
                        .operation_outcome()
                        .unwrap_or_else(|| synthesized(&err.to_string()));
                    chain.fail(failure_kind(&err), outcome);
                }
            }
            if chain.result.outcome != ChainOutcome::Complete {
                break 'searches;
            }
        }
    }
    if chain.result.outcome != ChainOutcome::Complete {
        // Nothing of a failed or stopped chain is kept but what explains it.
        chain.result.records.clear();
        chain.result.owners.clear();
        chain.result.max_date = None;
    }
    Ok(chain.result)
}

/// The failure an error of the request engine means for a chain. Any error that is not
/// fatal fails the chain, including kinds the engine may add later.
fn failure_kind(err: &FhirError) -> FailureKind {
    match err {
        FhirError::Http { status, .. } => FailureKind::Http(*status),
        FhirError::Transport { .. } => FailureKind::Transport,
        FhirError::Refused { .. } => FailureKind::Refused,
        _ => FailureKind::Unusable,
    }
}

/// An OperationOutcome for a failure the server did not describe itself.
fn synthesized(diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": "error",
            "code": "exception",
            "diagnostics": diagnostics,
        }]
    })
}

/// Counts the pages of one search and remembers their URLs, so that `next` links going
/// round in a circle (a page linking to itself, two pages linking to each other) or
/// never ending are cut off within seconds. Before this, a server whose page linked to
/// itself made one crawl send 15,810 requests and read 3.3 GB in 30 seconds. Also used by
/// `hydrate::batch`, whose lists of k ids may take at most k pages.
pub(crate) struct PageGuard {
    seen: HashSet<String>,
    limit: usize,
}

impl Default for PageGuard {
    fn default() -> Self {
        Self::with_limit(MAX_PAGES)
    }
}

impl PageGuard {
    /// A search that may take at most `limit` pages.
    pub(crate) fn with_limit(limit: usize) -> Self {
        PageGuard {
            seen: HashSet::new(),
            limit,
        }
    }

    /// Whether `url` may be fetched as the next page of this search.
    pub(crate) fn admit(
        &mut self,
        client: &FhirClient,
        url: &str,
    ) -> Result<(), (FailureKind, String)> {
        // The same page may be spelled relative (our first URL) or absolute (the server's
        // links): compare them without the base URL. Cutting a prefix, not parsing the URL
        // (the request parses it anyway): parsing it here too was 1 % of a crawl's CPU.
        let relative = url.strip_prefix(client.base_url()).unwrap_or(url);
        self.admit_key(relative, url)
    }

    fn admit_key(&mut self, key: &str, url: &str) -> Result<(), (FailureKind, String)> {
        if self.seen.len() >= self.limit {
            return Err((
                FailureKind::TooManyPages,
                format!(
                    "The search was stopped after {} pages; the server's next link still led on, to \"{url}\"",
                    self.limit
                ),
            ));
        }
        if self.seen.contains(key) {
            return Err((
                FailureKind::PageLoop,
                format!(
                    "The server's next link leads back to a page of the same search already read: \"{url}\""
                ),
            ));
        }
        self.seen.insert(key.to_string());
        Ok(())
    }
}

const FHIR_JSON: &str = "application/fhir+json";

/// One chain's results while its pages come in.
struct Chain<'a> {
    result: ChainResult,
    seen: Option<HashSet<String>>,
    now: Timestamp,
    expected: &'a Expected,
}

// A search page, read without building a tree of each resource. Parsing every resource into
// a `Value` (an `IndexMap` and a `String` per object and key) and writing it out again was
// the largest cost of the crawl (a third of the CPU time of the request workers in the
// benchmark). Resources that are already in the spelling we write (`is_canonical`) are
// copied as they came; only the few fields we need are read from them. Anything else, and
// any page that does not fit these shapes, takes the general path through `Value`, which
// gives the same lines. `hydrate::batch` reads the pages of its `_id` lists with it too.
#[derive(Deserialize)]
pub(crate) struct RawPage<'a> {
    #[serde(rename = "resourceType", borrow, default)]
    pub(crate) resource_type: Option<Cow<'a, str>>,
    /// Matches of the whole search (any JSON: only a number is read, for lists).
    #[serde(borrow, default)]
    total: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) entry: Option<Vec<RawEntry<'a>>>,
    #[serde(borrow, default)]
    link: Option<Vec<RawLink<'a>>>,
}

#[derive(Deserialize)]
pub(crate) struct RawEntry<'a> {
    #[serde(borrow, default)]
    pub(crate) resource: Option<&'a RawValue>,
}

impl RawPage<'_> {
    /// Matches of the whole search, when the server gives them as a number.
    pub(crate) fn total(&self) -> Option<u64> {
        self.total.and_then(|t| t.get().parse::<u64>().ok())
    }

    /// The URL of the next page, if any.
    pub(crate) fn next_page(&self) -> Option<String> {
        self.link
            .iter()
            .flatten()
            .find(|l| l.relation.as_deref() == Some("next"))
            .and_then(|l| l.url.as_deref())
            .filter(|u| !u.is_empty())
            .map(str::to_string)
    }
}

#[derive(Deserialize)]
struct RawLink<'a> {
    #[serde(borrow, default)]
    relation: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    url: Option<Cow<'a, str>>,
}

/// The fields of a resource the crawl looks at (the created fields of `created_field`, the
/// patient fields of `patient_field`, an OperationOutcome's severities).
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "resourceType", borrow, default)]
    resource_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    meta: Option<Meta<'a>>,
    #[serde(rename = "recordedDate", borrow, default)]
    recorded_date: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    issued: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    date: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    recorded: Option<Cow<'a, str>>,
    #[serde(rename = "authoredOn", borrow, default)]
    authored_on: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    subject: Option<Reference<'a>>,
    #[serde(borrow, default)]
    patient: Option<Reference<'a>>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(rename = "lastUpdated", borrow, default)]
    last_updated: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Reference<'a> {
    #[serde(borrow, default)]
    reference: Option<Cow<'a, str>>,
}

impl Head<'_> {
    fn created(&self, field: &str) -> Option<&str> {
        match field {
            "recordedDate" => self.recorded_date.as_deref(),
            "issued" => self.issued.as_deref(),
            "date" => self.date.as_deref(),
            "recorded" => self.recorded.as_deref(),
            "authoredOn" => self.authored_on.as_deref(),
            _ => None,
        }
    }

    fn reference(&self, field: &str) -> Option<&str> {
        let reference = match field {
            "subject" => self.subject.as_ref(),
            "patient" => self.patient.as_ref(),
            _ => None,
        };
        reference.and_then(|r| r.reference.as_deref())
    }
}

/// Whether an OperationOutcome says the search went wrong (`error` or `fatal`), as opposed
/// to the warnings and notes servers put next to good results (Epic: "no results").
pub(crate) fn is_error_outcome(outcome: &Value) -> bool {
    outcome
        .get("issue")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|i| {
            matches!(
                i.get("severity").and_then(Value::as_str),
                Some("error" | "fatal")
            )
        })
}

impl Chain<'_> {
    /// Takes the resources of one page; returns its `next` link.
    fn take_page(&mut self, response: &FhirResponse) -> Result<Option<String>, FhirError> {
        let Ok(page) = serde_json::from_slice::<RawPage>(&response.body) else {
            return self.take_page_value(&response.json()?, &response.url);
        };
        if page.resource_type.as_deref() != Some("Bundle") {
            return self.take_page_value(&response.json()?, &response.url);
        }
        // An `_id` list that matched more patients than it names was not searched as a
        // list, even when this page happens to hold only patients it names.
        if let (Some(total), Some(asked)) = (page.total(), self.expected.most_matches())
            && total > asked as u64
        {
            self.result.outcome =
                ChainOutcome::Foreign(format!("the search matched {total} patients"));
            return Ok(None);
        }
        for entry in page.entry.iter().flatten() {
            if let Some(resource) = entry.resource {
                self.take_raw(resource.get());
            }
            if self.stopped() {
                return Ok(None);
            }
        }
        Ok(page.next_page())
    }

    /// The general path: a page parsed into a `Value`.
    fn take_page_value(&mut self, page: &Value, url: &str) -> Result<Option<String>, FhirError> {
        let page_type = page.get("resourceType").and_then(Value::as_str);
        if page_type != Some("Bundle") {
            let outcome = match page_type {
                Some("OperationOutcome") => page.clone(),
                other => synthesized(&format!(
                    "The server answered the search \"{url}\" with {} instead of a Bundle",
                    other.map_or_else(
                        || "JSON without a resourceType".to_string(),
                        |t| format!("a {t}")
                    )
                )),
            };
            self.fail(FailureKind::NotBundle, outcome);
            return Ok(None);
        }
        for entry in page
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(resource) = entry.get("resource") {
                self.take_value(resource);
            }
            if self.stopped() {
                return Ok(None);
            }
        }
        Ok(next_link(page))
    }

    fn stopped(&self) -> bool {
        !matches!(self.result.outcome, ChainOutcome::Complete)
    }

    /// The chain failed: `outcome` explains it in `error/`.
    fn fail(&mut self, kind: FailureKind, outcome: Value) {
        self.result.errors.push(line_of(&outcome));
        if !self.stopped() {
            self.result.outcome = ChainOutcome::Failed(kind);
        }
    }

    fn take_raw(&mut self, raw: &str) {
        let head = match is_canonical(raw) && !self.expected.is_lookup() {
            true => serde_json::from_str::<Head>(raw).ok(),
            false => None,
        };
        let Some(head) = head else {
            if let Ok(value) = serde_json::from_str::<Value>(raw) {
                self.take_value(&value);
            }
            return;
        };
        if raw == "{}" {
            return;
        }
        let line = || {
            let mut line = String::with_capacity(raw.len() + 1);
            line.push_str(raw);
            line.push('\n');
            line
        };
        let entry_type = head.resource_type.as_deref();
        if entry_type == Some("OperationOutcome") {
            // Severities are read from the tree: outcomes are rare, and this keeps one
            // definition of "an error".
            match serde_json::from_str::<Value>(raw) {
                Ok(outcome) => self.take_outcome(&outcome, line()),
                Err(_) => self.result.errors.push(line()),
            }
            return;
        }
        if entry_type != Some(self.result.resource_type.as_str()) {
            self.result
                .dropped
                .wrong_type(entry_type.unwrap_or("(no resourceType)"));
            return;
        }
        let mut owner = 0;
        if let Some(field) = self.expected.field() {
            let reference = head.reference(field);
            match self.expected.owner(reference) {
                Some(o) => owner = o,
                None => {
                    self.foreign(head.id.as_deref(), reference);
                    return;
                }
            }
        }
        let updated = head.meta.as_ref().and_then(|m| m.last_updated.as_deref());
        let created = self
            .result
            .resource_type
            .created_field()
            .and_then(|f| head.created(f));
        let id = head.id.as_deref().map(str::to_string);
        self.push(id, [updated, created], owner, line);
    }

    fn take_value(&mut self, resource: &Value) {
        if !is_non_empty(resource) {
            return;
        }
        let entry_type = resource.get("resourceType").and_then(Value::as_str);
        if entry_type == Some("OperationOutcome") {
            self.take_outcome(resource, line_of(resource));
            return;
        }
        if entry_type != Some(self.result.resource_type.as_str()) {
            self.result
                .dropped
                .wrong_type(entry_type.unwrap_or("(no resourceType)"));
            return;
        }
        let id = resource.get("id").and_then(Value::as_str);
        let mut owner = 0;
        if let Some(field) = self.expected.field() {
            let reference = resource
                .get(field)
                .and_then(|r| r.get("reference"))
                .and_then(Value::as_str);
            match self.expected.owner(reference) {
                Some(o) => owner = o,
                None => {
                    self.foreign(id, reference);
                    return;
                }
            }
        }
        if !self.expected.accepts_patient(resource) {
            if self.expected.is_list() {
                // Several lookups in one search: a stranger means the server did not
                // search by the list, and nothing of the answer can be trusted.
                self.result.outcome = ChainOutcome::Foreign(format!(
                    "Patient/{} carries none of the identifiers looked up",
                    id.unwrap_or("(no id)")
                ));
                return;
            }
            self.result.dropped.unmatched_patients += 1;
            return;
        }
        let updated = resource
            .get("meta")
            .and_then(|m| m.get("lastUpdated"))
            .and_then(Value::as_str);
        let created = self
            .result
            .resource_type
            .created_field()
            .and_then(|f| resource.get(f))
            .and_then(Value::as_str);
        self.push(id.map(str::to_string), [updated, created], owner, || {
            line_of(resource)
        });
    }

    /// An OperationOutcome entry goes to `error/`; one that reports an error fails the
    /// chain, since the page may lack what the error was about.
    fn take_outcome(&mut self, outcome: &Value, line: String) {
        if is_error_outcome(outcome) && !self.stopped() {
            self.result.outcome = ChainOutcome::Failed(FailureKind::ErrorInPage);
        }
        self.result.errors.push(line);
    }

    /// A resource of someone else (or of no one): the server ignored `patient=`.
    fn foreign(&mut self, id: Option<&str>, reference: Option<&str>) {
        let t = self.result.resource_type;
        let searched = self.expected.searched();
        let id = id.unwrap_or("(no id)");
        let whose = match reference {
            Some(r) => format!("names {r}"),
            None => "names no patient".to_string(),
        };
        self.result.outcome =
            ChainOutcome::Foreign(format!("{t}/{id} {whose}, searched {searched}"));
    }

    fn push(
        &mut self,
        id: Option<String>,
        dates: [Option<&str>; 2],
        owner: usize,
        line: impl FnOnce() -> String,
    ) {
        if let (Some(seen), Some(id)) = (self.seen.as_mut(), id.as_ref())
            && !seen.insert(id.clone())
        {
            return;
        }
        if let Some(d) = latest_date(dates, &self.now) {
            self.result.max_date = Some(self.result.max_date.map_or(d, |m| m.max(d)));
        }
        self.result.records.push(Record { id, line: line() });
        if matches!(self.expected, Expected::Patients { .. }) {
            self.result.owners.push(owner);
        }
    }
}

/// True when `raw` (one JSON value, as the server sent it) is byte for byte what
/// `json::to_ndjson_line` writes for it: no whitespace between tokens, ASCII only, and only
/// the escapes that serializer uses (`\"`, `\\`, `\b \f \n \r \t`, `\u00xx` in lower case
/// for the other control characters), and exponents with a sign (`arbitrary_precision`
/// keeps every other number as spelled: `1.50` stays `1.50`). One difference is left: a repeated key inside an object, which
/// the general path folds into one (as the Python tool does) and this path keeps. No FHIR
/// server sends that.
fn is_canonical(raw: &str) -> bool {
    let b = raw.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    while i < b.len() {
        let c = b[i];
        if c >= 0x7f {
            return false;
        }
        if in_string {
            match c {
                b'"' => in_string = false,
                b'\\' => {
                    match b.get(i + 1) {
                        Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => {}
                        Some(b'u') => {
                            let Some(hex) = b.get(i + 2..i + 6) else {
                                return false;
                            };
                            let lower_hex =
                                |h: &u8| h.is_ascii_digit() || (b'a'..=b'f').contains(h);
                            if !hex.iter().all(lower_hex) || hex[0] != b'0' || hex[1] != b'0' {
                                return false;
                            }
                            let code = u8::from_str_radix(&raw[i + 4..i + 6], 16).unwrap_or(0xff);
                            // Only controls without a short form are written as \u00xx.
                            if code >= 0x20 || matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return false;
                            }
                            i += 4;
                        }
                        _ => return false,
                    }
                    i += 1;
                }
                0..0x20 => return false,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_string = true,
                b' ' | b'\t' | b'\n' | b'\r' => return false,
                // Exponents are written `e+5` / `e-5` (`true` and `false` end in an `e` too,
                // but not after a digit).
                b'E' => return false,
                b'e' if i > 0
                    && b[i - 1].is_ascii_digit()
                    && !matches!(b.get(i + 1), Some(b'+' | b'-')) =>
                {
                    return false;
                }
                _ => {}
            }
        }
        i += 1;
    }
    !in_string
}

fn line_of(value: &Value) -> String {
    let mut line = json::to_ndjson_line(value);
    line.push('\n');
    line
}

fn is_non_empty(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Object(map) => !map.is_empty(),
        _ => true,
    }
}

fn next_link(page: &Value) -> Option<String> {
    page.get("link")?
        .as_array()?
        .iter()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))?
        .get("url")?
        .as_str()
        .filter(|u| !u.is_empty())
        .map(str::to_string)
}

/// Transaction-time candidates (docs/crawl.md#writing-resources-and-finishing-a-type):
/// `meta.lastUpdated` and the type's created field; dates in the future are typos and ignored.
fn latest_date(dates: [Option<&str>; 2], now: &Timestamp) -> Option<Timestamp> {
    dates
        .into_iter()
        .flatten()
        .filter_map(timestamp::parse_fhir)
        .filter(|d| d <= now)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path copies canonical resources as they came: that must be exactly what the
    /// general path (parse, then `json::to_ndjson_line`) writes.
    #[test]
    fn canonical_text_is_what_the_serializer_writes() {
        let canonical = [
            r#"{"resourceType":"Observation","id":"o1","valueQuantity":{"value":1.50,"unit":"%"}}"#,
            r#"{"a":[1,-0,2.5e+3,1e-5,true,false,null,{},[]],"b":"x\"y\\z\n\t\r\b\f\u0001\u001f"}"#,
            r#"{"text":"<div xmlns=\"http://www.w3.org/1999/xhtml\">a &amp; b</div>"}"#,
        ];
        for raw in canonical {
            assert!(is_canonical(raw), "{raw}");
            let value: Value = serde_json::from_str(raw).expect("valid JSON");
            assert_eq!(json::to_ndjson_line(&value), raw);
        }
        let general = [
            r#"{"a": 1}"#,
            r#"{"a":1E5}"#,
            r#"{"a":1e5}"#,
            r#"{"a":1.5e5}"#,
            "{\"a\":1}\n",
            r#"{"a":"x\/y"}"#,
            r#"{"a":"\u0041"}"#,
            r#"{"a":"\u001F"}"#,
            r#"{"a":"\u000a"}"#,
            "{\"a\":\"caf\u{e9}\"}",
            "{\"a\":\"\u{7f}\"}",
            r#"{"a":"\ud83d\ude00"}"#,
            r#"{"a":"open"#,
        ];
        for raw in general {
            assert!(!is_canonical(raw), "{raw}");
        }
        // Whatever the path, the line is the serializer's.
        let mut chain = test_chain(ResourceType::Observation, &Expected::Anything);
        let pretty = "{\n  \"resourceType\": \"Observation\",\n  \"id\": \"caf\u{e9}\",\n  \"issued\": \"2020-01-02T03:04:05Z\"\n}";
        chain.take_raw(pretty);
        chain.take_raw(r#"{"resourceType":"Observation","id":"o2","meta":{"lastUpdated":"2021-01-01T00:00:00Z"}}"#);
        chain.take_raw(r#"{"resourceType":"OperationOutcome","issue":[]}"#);
        chain.take_raw("{}");
        let lines: Vec<_> = chain
            .result
            .records
            .iter()
            .map(|r| r.line.as_str())
            .collect();
        assert_eq!(
            lines,
            [
                "{\"resourceType\":\"Observation\",\"id\":\"caf\\u00e9\",\"issued\":\"2020-01-02T03:04:05Z\"}\n",
                "{\"resourceType\":\"Observation\",\"id\":\"o2\",\"meta\":{\"lastUpdated\":\"2021-01-01T00:00:00Z\"}}\n",
            ]
        );
        assert_eq!(chain.result.records[0].id.as_deref(), Some("caf\u{e9}"));
        assert_eq!(chain.result.errors.len(), 1);
        assert_eq!(
            chain.result.max_date,
            timestamp::parse_fhir("2021-01-01T00:00:00Z")
        );
    }

    fn test_chain(t: ResourceType, expected: &Expected) -> Chain<'_> {
        Chain {
            result: ChainResult {
                resource_type: t,
                key: "p".into(),
                records: Vec::new(),
                errors: Vec::new(),
                max_date: None,
                outcome: ChainOutcome::Complete,
                dropped: Dropped::default(),
                links: Vec::new(),
                owners: Vec::new(),
            },
            seen: None,
            now: timestamp::now(),
            expected,
        }
    }

    mod properties {
        //! Whatever a server puts in a search page, taking it never panics, and what is
        //! kept is always one JSON line per resource.
        use super::*;
        use proptest::prelude::*;

        /// Random bytes, or a Bundle whose entries are random JSON-ish resources.
        fn pages() -> impl Strategy<Value = Vec<u8>> {
            let field = prop_oneof![
                Just(r#""subject":{"reference":"Patient/p1"}"#.to_string()),
                Just(r#""subject":{"reference":"Patient/p2"}"#.to_string()),
                Just(r#""subject":7"#.to_string()),
                Just(r#""meta":{"lastUpdated":"9999-99-99"}"#.to_string()),
                Just(r#""recordedDate":"2020-01-01T00:00:00+99:99""#.to_string()),
                Just(r#""issue":[{"severity":"fatal"}]"#.to_string()),
                "\\PC{0,12}".prop_map(|t| format!(r#""note":{}"#, serde_json::json!(t))),
                "[0-9eE+.-]{1,12}".prop_map(|n| format!(r#""value":{n}"#)),
            ];
            let kind = prop_oneof![
                Just("Condition"),
                Just("OperationOutcome"),
                Just("Patient"),
                Just("")
            ];
            let resource = (kind, proptest::collection::vec(field, 0..4)).prop_map(|(k, f)| {
                let mut parts = vec![format!(r#""resourceType":"{k}""#), r#""id":"x""#.into()];
                parts.extend(f);
                format!("{{{}}}", parts.join(","))
            });
            let next = prop_oneof![
                Just(String::new()),
                Just(r#","link":[{"relation":"next","url":"Condition?page=2"}]"#.to_string()),
                Just(r#","link":[{"relation":"next","url":7}]"#.to_string()),
            ];
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                (proptest::collection::vec(resource, 0..5), next).prop_map(|(rs, next)| {
                    let entries: Vec<String> = rs
                        .iter()
                        .map(|r| format!(r#"{{"resource":{r}}}"#))
                        .collect();
                    format!(
                        r#"{{"resourceType":"Bundle","entry":[{}]{next}}}"#,
                        entries.join(",")
                    )
                    .into_bytes()
                }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn search_pages_never_panic(body in pages()) {
                let expected = Expected::Patient {
                    field: "subject",
                    patient: "p1".into(),
                    linked: Vec::new(),
                };
                let mut chain = test_chain(ResourceType::Condition, &expected);
                let response = FhirResponse {
                    url: "http://ehr/Condition?patient=p1".into(),
                    status: 200,
                    headers: reqwest::header::HeaderMap::new(),
                    body: bytes::Bytes::from(body),
                };
                let _ = chain.take_page(&response);
                for record in &chain.result.records {
                    prop_assert!(record.line.ends_with('\n'));
                    prop_assert_eq!(record.line.matches('\n').count(), 1);
                }
            }
        }
    }

    /// Both paths (copied as sent, or through a tree) judge a resource the same way.
    #[test]
    fn both_paths_check_the_patient_and_the_type() {
        let expected = Expected::Patient {
            field: "subject",
            patient: "p1".into(),
            linked: vec!["p0".into()],
        };
        for spacing in ["", " "] {
            let mine = format!(
                r#"{{"resourceType":"Condition",{spacing}"id":"c1","subject":{{"reference":"Patient/p1"}}}}"#
            );
            let merged = format!(
                r#"{{"resourceType":"Condition",{spacing}"id":"c0","subject":{{"reference":"Patient/p0"}}}}"#
            );
            let wrong_type = format!(r#"{{"resourceType":"Patient",{spacing}"id":"p1"}}"#);
            let warning = format!(
                r#"{{"resourceType":"OperationOutcome",{spacing}"issue":[{{"severity":"warning"}}]}}"#
            );
            let mut chain = test_chain(ResourceType::Condition, &expected);
            for raw in [&mine, &merged, &wrong_type, &warning] {
                chain.take_raw(raw);
            }
            assert_eq!(chain.result.outcome, ChainOutcome::Complete);
            assert_eq!(chain.result.records.len(), 2, "{spacing:?}");
            assert_eq!(chain.result.errors.len(), 1);
            assert_eq!(chain.result.dropped.wrong_type["Patient"], 1);

            let theirs = format!(
                r#"{{"resourceType":"Condition",{spacing}"id":"c2","subject":{{"reference":"Patient/p2"}}}}"#
            );
            chain.take_raw(&theirs);
            assert_eq!(
                chain.result.outcome,
                ChainOutcome::Foreign("Condition/c2 names Patient/p2, searched Patient/p1".into())
            );

            let mut chain = test_chain(ResourceType::Condition, &expected);
            chain.take_raw(&format!(
                r#"{{"resourceType":"Condition",{spacing}"id":"c3"}}"#
            ));
            assert!(
                matches!(chain.result.outcome, ChainOutcome::Foreign(ref d) if d.contains("names no patient"))
            );

            let mut chain = test_chain(ResourceType::Condition, &expected);
            chain.take_raw(&format!(
                r#"{{"resourceType":"OperationOutcome",{spacing}"issue":[{{"severity":"error"}}]}}"#
            ));
            assert_eq!(
                chain.result.outcome,
                ChainOutcome::Failed(FailureKind::ErrorInPage)
            );
            assert_eq!(chain.result.errors.len(), 1);
        }
    }

    #[test]
    fn lookups_keep_only_patients_with_the_identifier() {
        let expected = Expected::Identifier {
            system: "urn:mrn".into(),
            value: "7".into(),
        };
        let mut chain = test_chain(ResourceType::Patient, &expected);
        chain.take_raw(r#"{"resourceType":"Patient","id":"a","identifier":[{"system":"urn:mrn","value":"7"}]}"#);
        chain.take_raw(r#"{"resourceType":"Patient","id":"b","identifier":[{"system":"urn:mrn","value":"8"}]}"#);
        chain.take_raw(r#"{"resourceType":"Patient","id":"c"}"#);
        let ids: Vec<_> = chain
            .result
            .records
            .iter()
            .map(|r| r.id.as_deref())
            .collect();
        assert_eq!(ids, [Some("a")]);
        assert_eq!(chain.result.dropped.unmatched_patients, 2);
        assert_eq!(chain.result.outcome, ChainOutcome::Complete);
    }

    #[test]
    fn page_guard_stops_loops_and_endless_chains() {
        let mut guard = PageGuard::default();
        assert!(guard.admit_key("a", "a").is_ok());
        assert!(guard.admit_key("b", "http://x/b").is_ok());
        let (kind, message) = guard.admit_key("a", "http://x/a").unwrap_err();
        assert_eq!(kind, FailureKind::PageLoop);
        assert!(message.contains("http://x/a"), "{message}");

        let mut guard = PageGuard::default();
        for page in 0..MAX_PAGES {
            let url = format!("http://x/?page={page}");
            assert!(guard.admit_key(&url, &url).is_ok());
        }
        let (kind, _) = guard.admit_key("?page=next", "?page=next").unwrap_err();
        assert_eq!(kind, FailureKind::TooManyPages);
    }
}
