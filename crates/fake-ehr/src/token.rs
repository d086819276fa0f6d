//! The token endpoint (`POST /fhir/token`): client-credentials grant with a signed client
//! assertion, answered with an access token or an OAuth error.

use crate::auth::Auth;
use crate::config::AuthMode;
use crate::jwt::Jws;
use crate::outcome;
use crate::query;
use crate::stats::Counters;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    outcome::json(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

/// Handles one token request whose form body is `body`.
pub fn handle(
    auth: &Auth,
    counters: &Counters,
    token_url: &str,
    body: &[u8],
    absent_types: &[String],
) -> Response {
    let AuthMode::Smart {
        client_id,
        public_jwks,
        token_lifetime,
    } = auth.mode()
    else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "this server is not configured for SMART Backend Services",
        );
    };
    let form = std::str::from_utf8(body)
        .map_err(|_| "form body is not UTF-8".to_string())
        .and_then(query::parse);
    let form = match form {
        Ok(form) => form,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if field("grant_type") != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    if field("client_assertion_type") != Some(ASSERTION_TYPE) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("client_assertion_type must be {ASSERTION_TYPE}"),
        );
    }
    let Some(assertion) = field("client_assertion") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_assertion is missing",
        );
    };
    let jws = match Jws::decode(assertion) {
        Ok(jws) => jws,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", &e),
    };
    counters.record_jku(jws.header["jku"].as_str().map(str::to_string));
    let now = chrono::Utc::now().timestamp();
    let verified = jws
        .verify_signature(public_jwks)
        .and_then(|()| jws.check_claims(client_id, token_url, now));
    if let Err(e) = verified {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", &e);
    }
    let scope = field("scope").unwrap_or_default();
    counters.record_scope(scope);
    for requested in scope.split_whitespace() {
        let resource_type = requested
            .strip_prefix("system/")
            .and_then(|s| s.split('.').next())
            .unwrap_or_default();
        if absent_types.iter().any(|t| t == resource_type) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                &format!(
                    "Resources of type \"{resource_type}\" do not exist on this server (requested by scope \"{requested}\")"
                ),
            );
        }
    }
    let access_token = auth.issue(*token_lifetime);
    counters.record_issued_token(&access_token);
    outcome::json(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": token_lifetime.as_secs(),
            "scope": scope
        }),
    )
}
