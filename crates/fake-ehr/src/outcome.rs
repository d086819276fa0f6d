//! Response helpers: FHIR JSON responses and OperationOutcome errors.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// `value` as a FHIR JSON response.
pub fn fhir(status: StatusCode, value: &Value) -> Response {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

/// A plain JSON response (OAuth endpoints, admin).
pub fn json(status: StatusCode, value: &Value) -> Response {
    let mut response = fhir(status, value);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An OperationOutcome with one error issue.
pub fn outcome_value(code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": code, "diagnostics": diagnostics }]
    })
}

/// An error response carrying an OperationOutcome.
pub fn error(status: StatusCode, code: &str, diagnostics: &str) -> Response {
    fhir(status, &outcome_value(code, diagnostics))
}

pub fn bad_request(diagnostics: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid", diagnostics)
}

pub fn not_found(diagnostics: &str) -> Response {
    error(StatusCode::NOT_FOUND, "not-found", diagnostics)
}
