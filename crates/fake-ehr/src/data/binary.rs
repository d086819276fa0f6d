//! Attachment Binaries (`Binary/bin-...`): the note text behind DocumentReference and
//! DiagnosticReport attachments, generated from the seed and the Binary id. The id's last
//! part names the kind: `txt`, `html` and `xhtml` notes (their `contentType` sometimes with
//! `charset=utf-8`, `UTF-8` or `ascii`, sometimes without), `pdf` documents, `rtf` documents
//! whose attachment wrongly declares `text/html`, and `pre` notes whose attachment already
//! carries the data.

use super::rng::{Rng, mix};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

const DOMAIN: u64 = 0x4249_4E41_5259;

const SENTENCES: [&str; 8] = [
    "Patient seen for follow-up; reports feeling well overall.",
    "Denies chest pain, dyspnea or fever.",
    "Blood pressure reviewed and discussed with the patient.",
    "Continue current medications; return in three months.",
    "Labs ordered: CBC, BMP, lipid panel.",
    "Patient prefers to be called by first name — café visits help with mood.",
    "Counselled on diet and exercise (30 min/day).",
    "No known drug allergies reported at this visit.",
];

/// The text a `pre` attachment carries inline (and its Binary holds).
pub fn pre_inlined_text(title: &str) -> String {
    format!("{title}\n(inlined by the source system)\n")
}

/// The Binary resource with id `id` of this data set, if it exists.
pub fn binary(seed: u64, id: &str) -> Option<Value> {
    let i = super::patient_index_from_id(id)?;
    let resources = super::patient_resources(seed, i);
    binary_from(seed, id, &resources)
}

/// Like [`binary`] given the owning patient's resources (as `patient_resources` returns).
pub fn binary_from(seed: u64, id: &str, resources: &[Value]) -> Option<Value> {
    let (declared, title) = find_attachment(id, resources)?;
    let name = resources
        .first()
        .and_then(|p| p["name"][0]["text"].as_str())
        .unwrap_or("Unknown patient");
    let mut h = DOMAIN;
    for b in id.bytes() {
        h = mix(h ^ u64::from(b));
    }
    let mut rng = Rng::new(seed, DOMAIN, h);
    let count = rng.range(2, 5);
    let body: Vec<&str> = (0..count).map(|_| *rng.pick(&SENTENCES)).collect();
    let charset = match rng.below(4) {
        0 => None,
        1 => Some("utf-8"),
        2 => Some("ascii"),
        _ => Some("UTF-8"),
    };
    let meta_charset = charset.unwrap_or("utf-8");
    let paragraphs: String = body.iter().map(|s| format!("<p>{s}</p>")).collect();
    let kind = id.rsplit('-').next().unwrap_or_default();
    let (mime, text) = match kind {
        "html" => (
            "text/html",
            format!(
                "<html><head><meta charset=\"{meta_charset}\"><title>{title}</title></head>\
                 <body><h1>{title}</h1><p>Patient: {name}</p>{paragraphs}</body></html>"
            ),
        ),
        "xhtml" => (
            "application/xhtml+xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"{meta_charset}\"?>\n\
                 <html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>{title}</title></head>\
                 <body><h1>{title}</h1><p>Patient: {name}</p>{paragraphs}</body></html>\n"
            ),
        ),
        "pdf" => {
            let text = format!(
                "%PDF-1.4\n1 0 obj << /Title ({title}) >> endobj\n% {}\ntrailer << /Root 1 0 R >>\n%%EOF\n",
                body.join(" ")
            );
            return Some(resource(id, "application/pdf", &ascii(&text)));
        }
        "rtf" => {
            let text = format!(
                "{{\\rtf1\\ansi {{\\b {title}}}\\par {}\\par }}",
                body.join(" ")
            );
            return Some(resource(id, "application/rtf", &ascii(&text)));
        }
        "pre" => return Some(resource(id, "text/plain", &pre_inlined_text(&title))),
        "txt" => (
            "text/plain",
            format!("{title}\nPatient: {name}\n\n{}\n", body.join("\n")),
        ),
        _ => (
            declared.split(';').next().unwrap_or("text/plain").trim(),
            format!("{title}\nPatient: {name}\n\n{}\n", body.join("\n")),
        ),
    };
    let (content_type, text) = match charset {
        None => (mime.to_string(), text),
        Some("ascii") => (format!("{mime}; charset=ascii"), ascii(&text)),
        Some(c) => (format!("{mime}; charset={c}"), text),
    };
    Some(resource(id, &content_type, &text))
}

fn resource(id: &str, content_type: &str, text: &str) -> Value {
    json!({
        "resourceType": "Binary",
        "id": id,
        "contentType": content_type,
        "data": STANDARD.encode(text.as_bytes())
    })
}

/// `text` with every non-ASCII character replaced by `?`.
fn ascii(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .collect()
}

/// The content type and title of the attachment whose url is `Binary/<id>`.
fn find_attachment(id: &str, resources: &[Value]) -> Option<(String, String)> {
    let url = format!("Binary/{id}");
    let candidates = resources.iter().flat_map(|r| {
        let forms = r["presentedForm"].as_array().into_iter().flatten();
        let contents = r["content"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| &c["attachment"]);
        forms.chain(contents)
    });
    for attachment in candidates {
        if attachment["url"].as_str() == Some(url.as_str()) {
            let content_type = attachment["contentType"].as_str()?.to_string();
            let title = attachment["title"].as_str().unwrap_or("Note").to_string();
            return Some((content_type, title));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attachment_resolves() {
        let resources = super::super::patient_resources(1, 5);
        let mut found = 0;
        for r in &resources {
            for url in r["presentedForm"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| &f["url"])
                .chain(
                    r["content"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| &c["attachment"]["url"]),
                )
            {
                let id = url.as_str().and_then(|u| u.strip_prefix("Binary/"));
                let b = id.and_then(|id| binary(1, id));
                assert!(b.is_some(), "{url}");
                found += 1;
            }
        }
        assert!(found >= 4);
        assert!(binary(1, "bin-000005-doc-99-txt").is_none());
    }
}
