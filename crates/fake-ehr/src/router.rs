//! Request dispatch: classifies each request (metadata, SMART config, token, search, read,
//! admin), counts it, applies latency, faults and auth, and calls the handler.

use crate::auth::Auth;
use crate::capability;
use crate::catalog;
use crate::config::Config;
use crate::data;
use crate::faults::{self, Fault, Faults};
use crate::latency::Latency;
use crate::outcome;
use crate::query;
use crate::search::{self, SearchRequest};
use crate::stats::{Counters, bump};
use crate::store::Store;
use crate::switches::{self, Switches, TruncateSearch, ValueLists};
use crate::token;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::sync::Arc;

/// Largest token request body accepted.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Everything a request handler needs.
pub struct AppState {
    pub config: Config,
    pub base_url: String,
    pub token_url: String,
    pub store: Store,
    pub counters: Counters,
    pub auth: Auth,
    pub faults: Faults,
    pub bulk: crate::bulk::BulkState,
    pub latency: Latency,
    pub switches: Switches,
    /// `Type/id`s whose reads answer 403 (an EHR that still has a resource but will not
    /// hand it over), set at runtime by tests.
    pub refused_reads: std::sync::Mutex<std::collections::HashSet<String>>,
    /// `Type/id`s whose reads answer 500 on every try (a server failing for now), set at
    /// runtime by tests.
    pub failing_reads: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl AppState {
    pub fn new(config: Config, base_url: String) -> Self {
        let token_url = format!("{base_url}/token");
        Self {
            store: Store::new(config.seed, config.patients, config.quarter),
            counters: Counters::default(),
            auth: Auth::new(config.auth.clone()),
            faults: Faults::new(
                config.seed,
                config.fault_rate,
                &config.fault_kinds,
                config.fault_retry_after,
            ),
            bulk: crate::bulk::BulkState::new(
                config.seed,
                &config.bulk,
                &config.fault_kinds,
                config.fault_retry_after,
            ),
            latency: Latency::new(config.latency),
            switches: Switches::new(&config),
            refused_reads: Default::default(),
            failing_reads: Default::default(),
            config,
            base_url,
            token_url,
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

enum Route<'a> {
    Metadata,
    SmartConfig,
    Token,
    Search(&'a str),
    Read(&'a str, &'a str),
    NotFound,
}

fn classify(path: &str) -> Route<'_> {
    let Some(rest) = path.strip_prefix("/fhir/") else {
        return Route::NotFound;
    };
    match rest {
        "metadata" => Route::Metadata,
        ".well-known/smart-configuration" => Route::SmartConfig,
        "token" => Route::Token,
        _ => {
            let mut parts = rest.split('/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(ty), None, None) if !ty.is_empty() => Route::Search(ty),
                (Some(ty), Some(id), None) if !ty.is_empty() && !id.is_empty() => {
                    Route::Read(ty, id)
                }
                _ => Route::NotFound,
            }
        }
    }
}

async fn dispatch(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let arrived = std::time::Instant::now();
    let latency = state.latency.get();
    let path = request.uri().path().to_string();
    if let Some(admin) = path.strip_prefix("/__admin/") {
        return match admin {
            "stats" => outcome::json(
                StatusCode::OK,
                &serde_json::to_value(state.counters.snapshot()).unwrap_or_default(),
            ),
            // Just the counters, without the recorded URLs: cheap enough to poll (benchmarks).
            "counts" => outcome::json(StatusCode::OK, &state.counters.counts()),
            "quarter" => admin_quarter(&state, request.method(), request.uri().query()),
            "changes" => admin_changes(&state, request.method()).await,
            "latency" => admin_latency(&state, request.method(), request.uri().query()),
            "truncate" => admin_truncate(&state, request.method(), request.uri().query()),
            "throttle" => admin_throttle(&state, request.method(), request.uri().query()),
            "faults" => admin_faults(&state, request.method(), request.uri().query()),
            "ignore-patient" => {
                admin_ignore_patient(&state, request.method(), request.uri().query())
            }
            "value-lists" => admin_value_lists(&state, request.method(), request.uri().query()),
            "id-needs-patient" => {
                admin_id_needs_patient(&state, request.method(), request.uri().query())
            }
            "max-in-flight" if request.method() == Method::POST => {
                state.counters.reset_max_in_flight();
                outcome::json(StatusCode::OK, &state.counters.counts())
            }
            _ => outcome::not_found("unknown admin endpoint"),
        };
    }
    let counters = &state.counters;
    bump(&counters.requests);
    counters.record_user_agent(request.headers().get(header::USER_AGENT));
    if let Some(route) = crate::bulk::classify(&path) {
        let latency = match (&route, state.config.bulk.file_latency) {
            (crate::bulk::Route::File(..), Some(first_byte)) => first_byte,
            _ => latency,
        };
        let response = crate::bulk::handle(state.clone(), route, request).await;
        Latency::hold(arrived, latency).await;
        return response;
    }
    if request.headers().contains_key("epic-client-id") {
        bump(&counters.epic_client_id_headers);
    }
    let route = classify(&path);
    let latency = match route {
        Route::Search(ty) | Route::Read(ty, _) => state
            .config
            .type_latency
            .iter()
            .find(|(t, _)| t == ty)
            .map_or(latency, |(_, l)| *l),
        _ => latency,
    };
    // Data requests count as in flight from arrival to response, latency included.
    let _in_flight =
        matches!(route, Route::Search(_) | Route::Read(..)).then(|| counters.enter_data_request());
    let response = answer(&state, route, request, &path).await;
    Latency::hold(arrived, latency).await;
    response
}

/// The answer to a FHIR (non-admin, non-bulk) request, before latency.
async fn answer(state: &Arc<AppState>, route: Route<'_>, request: Request, path: &str) -> Response {
    let counters = &state.counters;
    let method = request.method().clone();
    let expect = |wanted: Method| {
        (method != wanted).then(|| {
            outcome::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "not-supported",
                &format!("{method} is not supported here; use {wanted}"),
            )
        })
    };
    match route {
        Route::Metadata => {
            bump(&counters.metadata);
            if let Some(r) = expect(Method::GET) {
                return r;
            }
            let mut statement = capability::capability_statement(
                state.config.flavor,
                &state.base_url,
                &state.token_url,
            );
            let absent = &state.config.absent_types;
            if let Some(resources) = statement
                .pointer_mut("/rest/0/resource")
                .and_then(serde_json::Value::as_array_mut)
            {
                resources.retain(|r| {
                    !absent
                        .iter()
                        .any(|t| r["type"].as_str() == Some(t.as_str()))
                });
            }
            outcome::fhir(StatusCode::OK, &statement)
        }
        Route::SmartConfig => {
            bump(&counters.smart_config);
            if let Some(r) = expect(Method::GET) {
                return r;
            }
            outcome::json(
                StatusCode::OK,
                &capability::smart_configuration(&state.token_url),
            )
        }
        Route::Token => {
            bump(&counters.token);
            if let Some(r) = expect(Method::POST) {
                return r;
            }
            if let Some(r) = inject_fault(state, false).await {
                return r;
            }
            let body = match to_bytes(request.into_body(), MAX_FORM_BYTES).await {
                Ok(body) => body,
                Err(_) => {
                    return outcome::bad_request("token request body unreadable or too large");
                }
            };
            token::handle(
                &state.auth,
                counters,
                &state.token_url,
                &body,
                &state.config.absent_types,
            )
        }
        Route::Search(ty) => {
            let path_and_query = request
                .uri()
                .path_and_query()
                .map(|pq| pq.as_str())
                .unwrap_or(path);
            counters.record_search(path_and_query);
            if let Some(r) = expect(Method::GET) {
                return r;
            }
            if let Some(r) = inject_fault(state, true).await {
                return r;
            }
            if let Some(r) = authorize(state, request.headers()) {
                return r;
            }
            handle_search(state, ty, request.uri().query().unwrap_or_default())
        }
        Route::Read(ty, id) => {
            counters.record_read(ty, id);
            if let Some(r) = expect(Method::GET) {
                return r;
            }
            if let Some(r) = inject_fault(state, true).await {
                return r;
            }
            if let Some(r) = authorize(state, request.headers()) {
                return r;
            }
            handle_read(state, ty, id, request.headers())
        }
        Route::NotFound => outcome::not_found(&format!("no route for {path}")),
    }
}

/// The shape of the admin switches: `GET` reads the setting, `POST` changes it from the
/// query (`change` says what is wrong with a bad one: 400), any other method is a 405 that
/// names `usage`; the answer is the setting as it stands afterwards (`current`).
fn admin_switch(
    method: &Method,
    query: Option<&str>,
    usage: &str,
    change: impl FnOnce(Vec<(String, String)>) -> Result<(), String>,
    current: impl FnOnce() -> serde_json::Value,
) -> Response {
    if *method == Method::POST {
        if let Err(e) = query::parse(query.unwrap_or_default()).and_then(change) {
            return outcome::bad_request(&e);
        }
    } else if *method != Method::GET {
        return outcome::error(StatusCode::METHOD_NOT_ALLOWED, "not-supported", usage);
    }
    outcome::json(StatusCode::OK, &current())
}

/// The number in `?<key>=` of an admin POST, or what is wrong with the query.
fn posted_number<T: std::str::FromStr>(
    pairs: &[(String, String)],
    key: &str,
    endpoint: &str,
    what: &str,
) -> Result<T, String> {
    let (_, value) = pairs
        .iter()
        .find(|(k, _)| k == key)
        .ok_or_else(|| format!("POST {endpoint} needs ?{key}=<{what}>"))?;
    value
        .parse()
        .map_err(|_| format!("{key}={value:?} is not a number"))
}

/// Every non-empty `type=` of an admin POST (none: an empty list).
fn posted_types(pairs: Vec<(String, String)>) -> Vec<String> {
    pairs
        .into_iter()
        .filter(|(k, v)| k == "type" && !v.is_empty())
        .map(|(_, v)| v)
        .collect()
}

/// `GET /__admin/latency` gives the answer time in milliseconds; `POST
/// /__admin/latency?ms=N` changes it for requests arriving from now on (a file download
/// starts streaming at that time).
fn admin_latency(state: &AppState, method: &Method, query: Option<&str>) -> Response {
    admin_switch(
        method,
        query,
        "use GET or POST ?ms=<milliseconds>",
        |pairs| {
            let ms = posted_number::<u64>(&pairs, "ms", "/__admin/latency", "milliseconds")?;
            state.latency.set(std::time::Duration::from_millis(ms));
            Ok(())
        },
        || serde_json::json!({ "ms": state.latency.get().as_secs_f64() * 1e3 }),
    )
}

/// `POST /__admin/throttle?ms=W&retry_after=S`: every search and read arriving in the next
/// W milliseconds is answered 429 with `Retry-After: S` (default 1); `ms=0` ends it.
fn admin_throttle(state: &AppState, method: &Method, query: Option<&str>) -> Response {
    if *method != Method::POST {
        return outcome::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "not-supported",
            "use POST ?ms=<milliseconds>&retry_after=<seconds>",
        );
    }
    let endpoint = "/__admin/throttle";
    let window = query::parse(query.unwrap_or_default()).and_then(|pairs| {
        let ms = posted_number::<u64>(&pairs, "ms", endpoint, "milliseconds")?;
        let seconds = if pairs.iter().any(|(k, _)| k == "retry_after") {
            posted_number::<u64>(&pairs, "retry_after", endpoint, "seconds")?
        } else {
            1
        };
        Ok((ms, seconds))
    });
    let (ms, seconds) = match window {
        Ok(window) => window,
        Err(e) => return outcome::bad_request(&e),
    };
    state
        .faults
        .throttle_for(std::time::Duration::from_millis(ms), seconds);
    outcome::json(
        StatusCode::OK,
        &serde_json::json!({ "ms": ms, "retry_after": seconds }),
    )
}

/// `GET /__admin/faults` gives the fault settings; `POST
/// /__admin/faults?rate=0.05&kinds=500,502&retry_after=2&bulk_rate=0` changes those given
/// (`kinds=` empty: every kind; kinds and `retry_after` apply to the bulk routes too).
fn admin_faults(state: &AppState, method: &Method, query: Option<&str>) -> Response {
    admin_switch(
        method,
        query,
        "use GET or POST ?rate=<0..1>&kinds=<429,500,502,503,drop,slow>&retry_after=<s>",
        |pairs| {
            if pairs.is_empty() {
                return Err(
                    "POST /__admin/faults needs ?rate=, kinds=, retry_after= or bulk_rate=".into(),
                );
            }
            let mut rate = None;
            let mut bulk_rate = None;
            let mut kinds = None;
            let mut retry_after = None;
            for (key, value) in &pairs {
                let fraction = |what: &str| -> Result<f64, String> {
                    value
                        .parse::<f64>()
                        .ok()
                        .filter(|r| (0.0..=1.0).contains(r))
                        .ok_or_else(|| format!("{what}={value:?} is not a fraction from 0 to 1"))
                };
                match key.as_str() {
                    "rate" => rate = Some(fraction("rate")?),
                    "bulk_rate" => bulk_rate = Some(fraction("bulk_rate")?),
                    "retry_after" => {
                        retry_after = Some(value.parse::<u64>().map_err(|_| {
                            format!("retry_after={value:?} is not a number of seconds")
                        })?);
                    }
                    "kinds" => {
                        kinds = Some(
                            value
                                .split(',')
                                .filter(|k| !k.trim().is_empty())
                                .map(Fault::parse)
                                .collect::<Result<Vec<Fault>, String>>()?,
                        );
                    }
                    other => {
                        return Err(format!(
                            "unknown parameter {other:?} (rate, kinds, retry_after, bulk_rate)"
                        ));
                    }
                }
            }
            state.faults.set(rate, kinds.as_deref(), retry_after);
            if bulk_rate.is_some() || kinds.is_some() || retry_after.is_some() {
                state
                    .bulk
                    .faults
                    .set(bulk_rate, kinds.as_deref(), retry_after);
            }
            Ok(())
        },
        || {
            let settings = state.faults.settings();
            let kinds: Vec<_> = settings.kinds.iter().map(|k| k.name()).collect();
            serde_json::json!({
                "rate": settings.rate,
                "kinds": kinds,
                "retry_after": settings.retry_after,
                "bulk_rate": state.bulk.faults.settings().rate,
            })
        },
    )
}

/// `GET /__admin/truncate` names the search answered with cut-off JSON (or null); `POST
/// /__admin/truncate?type=Condition&patient=pat-000003` picks it; `DELETE` turns it off.
fn admin_truncate(state: &AppState, method: &Method, query: Option<&str>) -> Response {
    // DELETE answers like GET once it has turned the switch off.
    let method = if *method == Method::DELETE {
        state.switches.set_truncate(None);
        &Method::GET
    } else {
        method
    };
    admin_switch(
        method,
        query,
        "use GET, POST ?type=<type>&patient=<id> or DELETE",
        |pairs| {
            let get = |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
                    .filter(|v| !v.is_empty())
            };
            let (Some(resource_type), Some(patient)) = (get("type"), get("patient")) else {
                return Err("POST /__admin/truncate needs ?type=<type>&patient=<id>".into());
            };
            state.switches.set_truncate(Some(TruncateSearch {
                resource_type,
                patient,
            }));
            Ok(())
        },
        || {
            let current = state
                .switches
                .truncate()
                .map(|t| serde_json::json!({ "type": t.resource_type, "patient": t.patient }));
            serde_json::json!({ "truncate": current })
        },
    )
}

/// `GET /__admin/ignore-patient` lists the types whose searches ignore `patient=`; `POST
/// /__admin/ignore-patient?type=A&type=B` sets that list (no `type`: none).
fn admin_ignore_patient(state: &AppState, method: &Method, query: Option<&str>) -> Response {
    admin_switch(
        method,
        query,
        "use GET or POST ?type=<type>",
        |pairs| {
            state.switches.set_ignore_patient(posted_types(pairs));
            Ok(())
        },
        || serde_json::json!({ "types": state.switches.ignore_patient() }),
    )
}

/// `GET /__admin/value-lists` says how `_id`, `identifier` and `patient` searches with
/// several values are answered; `POST /__admin/value-lists?id=refuse&identifier=ignore`
/// changes any of them (`accept`, `refuse`, `ignore` or `first`).
fn admin_value_lists(state: &AppState, method: &Method, query: Option<&str>) -> Response {
    admin_switch(
        method,
        query,
        "use GET or POST ?id=<mode>&identifier=<mode>&patient=<mode> (accept, refuse, ignore, first)",
        |pairs| {
            let mode = |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| ValueLists::parse(v))
                    .transpose()
            };
            let (id, identifier, patient) = (mode("id")?, mode("identifier")?, mode("patient")?);
            state.switches.set_value_lists(id, identifier, patient);
            Ok(())
        },
        || {
            serde_json::json!({
                "id": state.switches.id_lists().name(),
                "identifier": state.switches.identifier_lists().name(),
                "patient": state.switches.patient_lists().name(),
            })
        },
    )
}

/// `GET /__admin/id-needs-patient` lists the types whose `_id` searches must name a
/// patient; `POST /__admin/id-needs-patient?type=A&type=B` sets that list (no `type`: none).
fn admin_id_needs_patient(state: &AppState, method: &Method, query: Option<&str>) -> Response {
    admin_switch(
        method,
        query,
        "use GET or POST ?type=<type>",
        |pairs| {
            state.switches.set_id_needs_patient(posted_types(pairs));
            Ok(())
        },
        || serde_json::json!({ "types": state.switches.id_needs_patient_types() }),
    )
}

/// `GET /__admin/quarter` says which quarter of the data is served; `POST
/// /__admin/quarter?n=2` switches to another one.
fn admin_quarter(state: &AppState, method: &Method, query: Option<&str>) -> Response {
    admin_switch(
        method,
        query,
        "use GET or POST ?n=<quarter>",
        |pairs| {
            let n = posted_number::<u8>(&pairs, "n", "/__admin/quarter", "quarter")?;
            state.store.set_quarter(n)
        },
        || serde_json::json!({ "quarter": state.store.quarter() }),
    )
}

/// `GET /__admin/changes`: quarter 2's change list against quarter 1 (`data::ChangeList`),
/// whichever quarter is served: the ground truth of what a delta of two full exports holds.
/// Computed from the data on each call (seconds for tens of thousands of patients), off the
/// request threads.
async fn admin_changes(state: &Arc<AppState>, method: &Method) -> Response {
    if *method != Method::GET {
        return outcome::error(StatusCode::METHOD_NOT_ALLOWED, "not-supported", "use GET");
    }
    let (seed, patients) = (state.store.seed(), state.store.patients());
    match tokio::task::spawn_blocking(move || data::quarter2_change_list(seed, patients).to_json())
        .await
    {
        Ok(list) => outcome::json(StatusCode::OK, &list),
        Err(e) => outcome::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            &format!("computing the change list failed: {e}"),
        ),
    }
}

/// Draws a fault; `Some` is the faulty response (a slow fault only waits, then `None`).
/// A data request (search or read) arriving in a throttle window is answered 429 first.
async fn inject_fault(state: &AppState, data: bool) -> Option<Response> {
    if data && let Some(seconds) = state.faults.throttled(std::time::Instant::now()) {
        state.counters.record_throttled();
        return Some(faults::response(Fault::TooManyRequests, seconds));
    }
    let fault = state.faults.next()?;
    state.counters.record_fault(fault);
    if fault == Fault::Slow {
        tokio::time::sleep(faults::SLOW_DELAY).await;
        return None;
    }
    Some(faults::response(fault, state.faults.retry_after()))
}

/// `Some` is the 401 response when the request may not read data.
pub(crate) fn authorize(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    state.auth.authorize(headers).err().map(|reason| {
        bump(&state.counters.unauthorized);
        let mut r = outcome::error(StatusCode::UNAUTHORIZED, "login", &reason);
        let challenge = match state.config.auth {
            crate::config::AuthMode::Basic { .. } => "Basic realm=\"fake-ehr\"",
            _ => "Bearer realm=\"fake-ehr\"",
        };
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        r
    })
}

fn handle_search(state: &AppState, ty: &str, raw_query: &str) -> Response {
    let Some(info) = catalog::lookup(ty) else {
        return outcome::not_found(&format!("Unknown resource type {ty:?}"));
    };
    let pairs = match query::parse(raw_query) {
        Ok(pairs) => pairs,
        Err(e) => return outcome::bad_request(&e),
    };
    let request = SearchRequest {
        info,
        flavor: state.config.flavor,
        raw_query,
        pairs: &pairs,
        base_url: &state.base_url,
        default_page_size: state.config.page_size,
        ignore_patient: state.switches.ignores_patient(ty),
        id_lists: state.switches.id_lists(),
        identifier_lists: state.switches.identifier_lists(),
        patient_lists: state.switches.patient_lists(),
        id_needs_patient: state.switches.id_needs_patient(ty),
        withheld: &|key: &str| withheld(state, key),
    };
    match search::search(&state.store, &request) {
        Ok(bundle) if state.switches.truncates(ty, &pairs) => {
            bump(&state.counters.truncated);
            let mut r = Response::new(Body::from(switches::cut(&bundle.to_string())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(outcome::FHIR_JSON),
            );
            r
        }
        Ok(bundle) => outcome::fhir(StatusCode::OK, &bundle),
        Err(message) => outcome::bad_request(&message),
    }
}

/// Whether reads of `key` (`Type/id`) are refused or failing now.
fn withheld(state: &AppState, key: &str) -> bool {
    let listed = |set: &std::sync::Mutex<std::collections::HashSet<String>>| {
        set.lock().map(|s| s.contains(key)).unwrap_or(false)
    };
    listed(&state.refused_reads) || listed(&state.failing_reads)
}

fn handle_read(state: &AppState, ty: &str, id: &str, headers: &HeaderMap) -> Response {
    if catalog::lookup(ty).is_none() {
        return outcome::not_found(&format!("Unknown resource type {ty:?}"));
    }
    let refused = state
        .refused_reads
        .lock()
        .map(|r| r.contains(&format!("{ty}/{id}")))
        .unwrap_or(false);
    let failing = state
        .failing_reads
        .lock()
        .map(|r| r.contains(&format!("{ty}/{id}")))
        .unwrap_or(false);
    if failing {
        return outcome::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            &format!("{ty}/{id} cannot be read right now"),
        );
    }
    if refused {
        return outcome::error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("{ty}/{id} may not be read"),
        );
    }
    let Some(resource) = state.store.read(ty, id) else {
        return outcome::not_found(&format!("{ty}/{id} is not known"));
    };
    if ty == "Binary" && wants_raw(headers) && !state.config.binary_as_resource {
        return raw_binary(&resource);
    }
    outcome::fhir(StatusCode::OK, &resource)
}

/// A Binary is sent as its raw content when the client asks for a non-JSON type.
fn wants_raw(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| !accept.contains("json") && !accept.contains("*/*"))
}

fn raw_binary(resource: &serde_json::Value) -> Response {
    let content_type = resource["contentType"]
        .as_str()
        .unwrap_or("application/octet-stream");
    let data = resource["data"]
        .as_str()
        .and_then(|d| STANDARD.decode(d).ok())
        .unwrap_or_default();
    let mut r = Response::new(Body::from(data));
    if let Ok(value) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    r
}
