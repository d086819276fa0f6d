//! `single`: fetch one resource (or one search page) and print it (docs/commands.md#single): pretty
//! JSON by default, one compact line with `--compact`, raw decoded bytes for a Binary with
//! `--binary`.

use super::args::SingleArgs;
use super::clients;
use crate::error::AppError;
use crate::fhir::FhirError;
use crate::report::Reporter;
use base64::Engine;
use serde_json::Value;
use std::io::Write;

pub async fn run(args: SingleArgs, reporter: &Reporter) -> Result<(), AppError> {
    let clients = clients::prepare(&args.auth, reporter)?;
    clients.rest.open().await?;
    let response = match clients.rest.get(&args.path, "application/fhir+json").await {
        Ok(response) => response,
        Err(err) => return Err(request_error(err, reporter.is_verbose())),
    };
    let value = response.json()?;
    let output = render(&value, args.binary, args.compact)?;
    // The data itself, not a message: stdout in every log format.
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is the reader's choice, not an error worth reporting.
    let _ = stdout.write_all(&output).and_then(|()| stdout.flush());
    Ok(())
}

/// docs/commands.md#single step 3: with `--verbose` an HTTP error shows the raw response body;
/// otherwise the usual one-line error message.
fn request_error(err: FhirError, verbose: bool) -> AppError {
    match err {
        FhirError::Http { body, .. } if verbose => AppError::Message(body),
        err => err.into(),
    }
}

/// The bytes `single` prints for a parsed resource.
pub fn render(value: &Value, binary: bool, compact: bool) -> Result<Vec<u8>, AppError> {
    if binary && value.get("resourceType").and_then(Value::as_str) == Some("Binary") {
        let data = value.get("data").and_then(Value::as_str).unwrap_or("");
        // Like Python's decoder, look past line breaks and spaces inside the data.
        let data: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        return base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| {
                AppError::Message(format!("Could not decode the Binary's data as base64: {e}"))
            });
    }
    let mut text = if compact {
        crate::json::to_ndjson_line(value)
    } else {
        serde_json::to_string_pretty(value)
            .map_err(|e| AppError::Message(format!("Could not print the resource: {e}")))?
    };
    text.push('\n');
    Ok(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn pretty_by_default_without_ascii_escaping() {
        let v =
            json!({"resourceType": "Patient", "id": "alice", "name": [{"text": "Zoë"}], "x": []});
        let out = render(&v, false, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            text(out),
            "{\n  \"resourceType\": \"Patient\",\n  \"id\": \"alice\",\n  \"name\": [\n    {\n      \"text\": \"Zoë\"\n    }\n  ],\n  \"x\": []\n}\n"
        );
        let v = json!({"resourceType": "Patient", "id": "alice"});
        let out = render(&v, false, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            text(out),
            "{\n  \"resourceType\": \"Patient\",\n  \"id\": \"alice\"\n}\n"
        );
    }

    #[test]
    fn compact_is_one_escaped_line() {
        let v = json!({"resourceType": "Patient", "id": "a", "text": "x\ny", "n": "é"});
        let out = render(&v, false, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            text(out),
            "{\"resourceType\":\"Patient\",\"id\":\"a\",\"text\":\"x\\ny\",\"n\":\"\\u00e9\"}\n"
        );
    }

    #[test]
    fn binary_raw_bytes() {
        let v = json!({"resourceType": "Binary", "data": "aGVs\nbG8="});
        assert_eq!(
            render(&v, true, false).unwrap_or_else(|e| panic!("{e}")),
            b"hello"
        );
        let v = json!({"resourceType": "Binary"});
        assert_eq!(
            render(&v, true, true).unwrap_or_else(|e| panic!("{e}")),
            b""
        );
        assert!(
            render(
                &json!({"resourceType": "Binary", "data": "!!"}),
                true,
                false
            )
            .is_err()
        );
        // --binary on something else prints JSON.
        let v = json!({"resourceType": "Patient", "id": "a"});
        assert!(text(render(&v, true, false).unwrap_or_else(|e| panic!("{e}"))).starts_with("{\n"));
    }

    #[test]
    fn verbose_errors_show_the_body() {
        let err = FhirError::Http {
            url: "http://example.invalid/R4/Patient/x".into(),
            status: 400,
            detail: "bad request, bruh".into(),
            body: "{\"raw\": true}".into(),
        };
        assert_eq!(request_error(err, true).to_string(), "{\"raw\": true}");
        let err = FhirError::Http {
            url: "http://example.invalid/R4/Patient/x".into(),
            status: 400,
            detail: "bad request, bruh".into(),
            body: "{\"raw\": true}".into(),
        };
        assert!(
            request_error(err, false)
                .to_string()
                .ends_with(": [400] bad request, bruh")
        );
    }
}
