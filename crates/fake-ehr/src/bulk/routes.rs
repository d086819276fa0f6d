//! The bulk routes: kickoff (`$export` at system, `Patient` and `Group/<id>` level), the
//! status URL (GET: 202 with progress or 200 with the manifest; DELETE: forget the job) and
//! the file URLs (optionally on another host, behind a redirect, or needing the token).

use super::jobs::{self, Category, Level, Refusal};
use super::{RetryAfter, bump, bump_key};
use crate::faults::{self, Fault};
use crate::outcome;
use crate::router::AppState;
use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const STATUS_PATH: &str = "bulk-status";
const FILES_PATH: &str = "bulk-files";

/// A request on one of the bulk routes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Kickoff(Level),
    Status(String),
    File(String, usize),
}

/// Recognizes a bulk route from the request path (`/fhir/...`).
pub fn classify(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/fhir/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let is_export = |p: &str| p == "$export" || p.eq_ignore_ascii_case("%24export");
    match parts.as_slice() {
        [op] if is_export(op) => Some(Route::Kickoff(Level::System)),
        ["Patient", op] if is_export(op) => Some(Route::Kickoff(Level::Patient)),
        ["Group", id, op] if is_export(op) && !id.is_empty() => {
            Some(Route::Kickoff(Level::Group((*id).to_string())))
        }
        [STATUS_PATH, job] if !job.is_empty() => Some(Route::Status((*job).to_string())),
        [FILES_PATH, job, n] if !job.is_empty() => {
            let n = n.parse::<usize>().ok()?;
            Some(Route::File((*job).to_string(), n))
        }
        _ => None,
    }
}

/// Answers a bulk request.
pub async fn handle(state: Arc<AppState>, route: Route, request: Request) -> Response {
    // The body is never needed; the head is (and, unlike the body, may be held across
    // awaits by a `Send` future).
    let (request, _) = request.into_parts();
    match route {
        Route::Kickoff(level) => kickoff(&state, &level, &request),
        Route::Status(job) => {
            if request.method == Method::DELETE {
                return delete(&state, &job, &request.headers);
            }
            status(&state, &job, &request.headers).await
        }
        Route::File(job, n) => file(state, &job, n, &request).await,
    }
}

fn method_not_allowed(method: &Method) -> Response {
    outcome::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "not-supported",
        &format!("{method} is not supported here"),
    )
}

fn kickoff(state: &AppState, level: &Level, request: &Parts) -> Response {
    let bulk = &state.counters.bulk;
    let path_and_query = request
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_default();
    bulk.kickoff_urls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path_and_query.clone());
    if request.method != Method::GET {
        return method_not_allowed(&request.method);
    }
    let prefer = request
        .headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !prefer.contains("respond-async") {
        return outcome::bad_request("$export needs the header Prefer: respond-async");
    }
    if let Some(r) = crate::router::authorize(state, &request.headers) {
        return r;
    }
    let id = state.bulk.jobs.next_id();
    let origin = state.base_url.trim_end_matches("/fhir");
    let built = jobs::build(
        &state.store,
        &state.config.bulk,
        id.clone(),
        level,
        request.uri.query().unwrap_or_default(),
        format!("{origin}{path_and_query}"),
    );
    match built {
        Ok(job) => {
            state.bulk.jobs.insert(job);
            bump(&bulk.kickoffs);
            let mut r = outcome::fhir(
                StatusCode::ACCEPTED,
                &json!({
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "information", "code": "informational",
                               "diagnostics": "Export job accepted"}]
                }),
            );
            let location = format!("{}/{STATUS_PATH}/{id}", state.base_url);
            if let Ok(value) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::CONTENT_LOCATION, value);
            }
            r
        }
        Err(Refusal(404, message)) => outcome::not_found(&message),
        Err(Refusal(_, message)) => outcome::bad_request(&message),
    }
}

/// An injected fault of a bulk route (a slow one only waits, then `None`).
async fn inject_fault(state: &AppState) -> Option<Response> {
    let fault = state.bulk.faults.next()?;
    bump(&state.counters.bulk.faults);
    state.counters.record_fault(fault);
    if fault == Fault::Slow {
        tokio::time::sleep(faults::SLOW_DELAY).await;
        return None;
    }
    Some(faults::response(fault, state.bulk.faults.retry_after()))
}

async fn status(state: &AppState, id: &str, headers: &HeaderMap) -> Response {
    bump(&state.counters.bulk.status_polls);
    if let Some(r) = inject_fault(state).await {
        return r;
    }
    if let Some(r) = crate::router::authorize(state, headers) {
        return r;
    }
    let Some(job) = state.bulk.jobs.get(id) else {
        return outcome::not_found(&format!(
            "Export job {id} is not known (expired or deleted)"
        ));
    };
    if let Some(pct) = job.progress() {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::ACCEPTED;
        let retry_after = retry_after_value(state.config.bulk.retry_after);
        let headers = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&format!("{pct}% complete")) {
            headers.insert("x-progress", v);
        }
        if let Ok(v) = HeaderValue::from_str(&retry_after) {
            headers.insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    outcome::json(StatusCode::OK, &manifest(state, &job))
}

fn retry_after_value(style: RetryAfter) -> String {
    match style {
        RetryAfter::Seconds(s) => s.to_string(),
        RetryAfter::HttpDate(s) => {
            let at = SystemTime::now() + Duration::from_secs(s);
            let utc: chrono::DateTime<chrono::Utc> = at.into();
            utc.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
        }
        RetryAfter::Epoch(s) => {
            (chrono::Utc::now().timestamp() + i64::try_from(s).unwrap_or(0)).to_string()
        }
    }
}

/// `http://127.0.0.1:PORT/fhir` with its host replaced.
fn with_host(base: &str, host: &str) -> String {
    let Some((scheme, rest)) = base.split_once("://") else {
        return base.to_string();
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let port = authority
        .rsplit_once(':')
        .map(|(_, p)| format!(":{p}"))
        .unwrap_or_default();
    format!("{scheme}://{host}{port}/{path}")
}

fn manifest(state: &AppState, job: &jobs::Job) -> Value {
    let config = &state.config.bulk;
    let file_base = match &config.file_host {
        Some(host) if !config.redirect_files => with_host(&state.base_url, host),
        _ => state.base_url.clone(),
    };
    let mut output = Vec::new();
    let mut error = Vec::new();
    let mut deleted = Vec::new();
    for (i, spec) in job.files.iter().enumerate() {
        let entry = json!({
            "type": spec.type_name,
            "url": format!("{file_base}/{FILES_PATH}/{}/{}", job.id, i + 1),
            "count": spec.content.len(),
        });
        match spec.category {
            Category::Output => output.push(entry),
            Category::Error => error.push(entry),
            Category::Deleted => deleted.push(entry),
        }
    }
    json!({
        "transactionTime": job.transaction_time,
        "request": job.request,
        "requiresAccessToken": config.requires_access_token,
        "output": output,
        "deleted": deleted,
        "error": error,
    })
}

fn delete(state: &AppState, id: &str, headers: &HeaderMap) -> Response {
    bump(&state.counters.bulk.deletes);
    if let Some(r) = crate::router::authorize(state, headers) {
        return r;
    }
    if state.config.bulk.refuse_deletes {
        return outcome::bad_request("Export jobs cannot be deleted on this server");
    }
    if state.bulk.jobs.remove(id) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::ACCEPTED;
        r
    } else {
        outcome::not_found(&format!(
            "Export job {id} is not known (expired or deleted)"
        ))
    }
}

async fn file(state: Arc<AppState>, id: &str, n: usize, request: &Parts) -> Response {
    let bulk = &state.counters.bulk;
    let key = request.uri.path().to_string();
    bump_key(&bulk.downloads, &key);
    if request.method != Method::GET {
        return method_not_allowed(&request.method);
    }
    if let Some(r) = inject_fault(&state).await {
        return r;
    }
    let config = &state.config.bulk;
    let own_authority = state
        .base_url
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
        .unwrap_or_default()
        .to_string();
    let host = request
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let foreign = host != own_authority;
    if foreign && request.headers.contains_key(header::AUTHORIZATION) {
        bump(&bulk.foreign_authorizations);
    }
    // A storage host behind a redirect takes signed URLs, not the FHIR server's token.
    let signed = foreign && config.redirect_files;
    if config.requires_access_token
        && !signed
        && let Some(r) = crate::router::authorize(&state, &request.headers)
    {
        bump(&bulk.unauthorized_downloads);
        return r;
    }
    let Some(job) = state.bulk.jobs.get(id) else {
        return outcome::not_found(&format!(
            "Export job {id} is not known (expired or deleted)"
        ));
    };
    if n == 0 || n > job.files.len() {
        return outcome::not_found(&format!("Export job {id} has no file {n}"));
    }
    if config.redirect_files && !foreign {
        let target = match &config.file_host {
            Some(host) => with_host(&state.base_url, host),
            None => state.base_url.clone(),
        };
        let location = format!("{target}/{FILES_PATH}/{id}/{n}?signature=fake");
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    let body = super::files::body(state.clone(), job, n - 1, key);
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+ndjson"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            classify("/fhir/$export"),
            Some(Route::Kickoff(Level::System))
        );
        assert_eq!(
            classify("/fhir/Patient/$export"),
            Some(Route::Kickoff(Level::Patient))
        );
        assert_eq!(
            classify("/fhir/Group/even/%24export"),
            Some(Route::Kickoff(Level::Group("even".into())))
        );
        assert_eq!(
            classify("/fhir/bulk-status/job-1"),
            Some(Route::Status("job-1".into()))
        );
        assert_eq!(
            classify("/fhir/bulk-files/job-1/3"),
            Some(Route::File("job-1".into(), 3))
        );
        assert_eq!(classify("/fhir/Patient/pat-000001"), None);
        assert_eq!(classify("/fhir/Observation"), None);
        assert_eq!(
            with_host("http://127.0.0.1:8080/fhir", "localhost"),
            "http://localhost:8080/fhir"
        );
    }
}
