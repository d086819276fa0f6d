//! Attachment Binaries (`Binary/bin-...`): the note text behind DocumentReference and
//! DiagnosticReport attachments, generated from the seed and the Binary id.

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

/// The Binary resource with id `id` of this data set, if it exists.
pub fn binary(seed: u64, id: &str) -> Option<Value> {
    let i = super::patient_index_from_id(id)?;
    let resources = super::patient_resources(seed, i);
    binary_from(seed, id, &resources)
}

/// Like [`binary`] given the owning patient's resources (as `patient_resources` returns).
pub fn binary_from(seed: u64, id: &str, resources: &[Value]) -> Option<Value> {
    let (content_type, title) = find_attachment(id, resources)?;
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
    let text = if content_type == "text/html" {
        let paragraphs: String = body.iter().map(|s| format!("<p>{s}</p>")).collect();
        format!(
            "<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><h1>{title}</h1><p>Patient: {name}</p>{paragraphs}</body></html>"
        )
    } else {
        format!("{title}\nPatient: {name}\n\n{}\n", body.join("\n"))
    };
    Some(json!({
        "resourceType": "Binary",
        "id": id,
        "contentType": content_type,
        "data": STANDARD.encode(text.as_bytes())
    }))
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
