//! Searches, paging, the Epic flavor's restrictions, capability statements and counters.

use crate::common::{all_pages, client, get};
use fake_ehr::data::{self, MRN_SYSTEM};
use fake_ehr::{Config, Flavor, start};
use serde_json::Value;

const LINKED: [&str; 14] = [
    "Encounter",
    "AllergyIntolerance",
    "Condition",
    "Device",
    "DiagnosticReport",
    "DocumentReference",
    "EpisodeOfCare",
    "Immunization",
    "MedicationDispense",
    "MedicationRequest",
    "Observation",
    "Procedure",
    "ServiceRequest",
    "Specimen",
];

fn of_type(resources: &[Value], ty: &str) -> Vec<Value> {
    resources
        .iter()
        .filter(|r| r["resourceType"] == ty)
        .cloned()
        .collect()
}

#[tokio::test]
async fn identifier_lookup() {
    let server = start(Config {
        patients: 50,
        ..Config::default()
    })
    .await
    .expect("start");
    let c = client();
    let base = server.base_url();
    let ids = |b: &Value| -> Vec<String> {
        b["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
            .collect()
    };
    let (status, b) = get(
        &c,
        &format!("{base}/Patient?identifier={MRN_SYSTEM}%7C{}", data::mrn(42)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ids(&b), vec![data::patient_id(42)]);
    assert_eq!(b["total"], 1);
    // A literal `|`, and a bare value, work too.
    let (_, b) = get(
        &c,
        &format!("{base}/Patient?identifier={MRN_SYSTEM}|{}", data::mrn(3)),
    )
    .await;
    assert_eq!(ids(&b), vec![data::patient_id(3)]);
    let (_, b) = get(&c, &format!("{base}/Patient?identifier={}", data::mrn(4))).await;
    assert_eq!(ids(&b), vec![data::patient_id(4)]);
    // Past the patient count, unknown, or under another system: nothing.
    for query in [
        format!("identifier={MRN_SYSTEM}%7C{}", data::mrn(50)),
        format!("identifier={MRN_SYSTEM}%7C12"),
        format!("identifier=urn:other%7C{}", data::mrn(4)),
    ] {
        let (status, b) = get(&c, &format!("{base}/Patient?{query}")).await;
        assert_eq!(status, 200, "{query}");
        assert!(ids(&b).is_empty(), "{query}: {b}");
    }
    // The secondary identifier is found by scanning.
    let external = data::patient_resources(1, 9)[0]["identifier"][1].clone();
    let query = format!(
        "identifier={}%7C{}",
        external["system"].as_str().unwrap_or_default(),
        external["value"].as_str().unwrap_or_default()
    );
    let (_, b) = get(&c, &format!("{base}/Patient?{query}")).await;
    assert_eq!(ids(&b), vec![data::patient_id(9)]);
    // _id and MRN together.
    let (_, b) = get(&c, &format!("{base}/Patient?_id=pat-000005,pat-000006")).await;
    assert_eq!(ids(&b), vec![data::patient_id(5), data::patient_id(6)]);
}

#[tokio::test]
async fn paging_returns_exactly_the_patient_resources() {
    let server = start(Config {
        page_size: 3,
        ..Config::default()
    })
    .await
    .expect("start");
    let c = client();
    let base = server.base_url();
    let patient = 7;
    let expected = data::patient_resources(1, patient);
    let pid = data::patient_id(patient);
    let mut total = 1;
    for ty in LINKED {
        let want = of_type(&expected, ty);
        let (got, pages) = all_pages(&c, &format!("{base}/{ty}?patient={pid}")).await;
        assert_eq!(got, want, "{ty}");
        assert_eq!(pages, want.len().div_ceil(3).max(1), "{ty}");
        // `subject=Patient/<id>` and `_count` work the same way where supported.
        if !matches!(
            ty,
            "AllergyIntolerance" | "Device" | "EpisodeOfCare" | "Immunization"
        ) {
            let (got, _) =
                all_pages(&c, &format!("{base}/{ty}?subject=Patient/{pid}&_count=100")).await;
            assert_eq!(got, want, "{ty} by subject");
        }
        total += got.len();
    }
    assert_eq!(total, expected.len());

    // Unfiltered Patient search pages through every patient.
    let (patients, pages) = all_pages(&c, &format!("{base}/Patient?_count=30")).await;
    assert_eq!(patients.len(), 100);
    assert_eq!(pages, 4);
    assert_eq!(patients[7], expected[0]);
}

#[tokio::test]
async fn filters() {
    let server = start(Config::default()).await.expect("start");
    let c = client();
    let base = server.base_url();
    let resources = data::patient_resources(1, 11);
    let observations = of_type(&resources, "Observation");
    let pid = data::patient_id(11);

    let (got, _) = all_pages(
        &c,
        &format!("{base}/Observation?patient={pid}&category=laboratory,exam&_count=50"),
    )
    .await;
    let want: Vec<Value> = observations
        .iter()
        .filter(|o| {
            matches!(
                o["category"][0]["coding"][0]["code"].as_str(),
                Some("laboratory" | "exam")
            )
        })
        .cloned()
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);

    let code = observations[0]["code"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default();
    let (got, _) = all_pages(
        &c,
        &format!("{base}/Observation?patient={pid}&code=http://loinc.org%7C{code}"),
    )
    .await;
    assert!(!got.is_empty());
    assert!(got.iter().all(|o| o["code"]["coding"][0]["code"] == code));

    // Date prefixes compare instants, offsets included.
    let cut = "2022-06-01T00:00:00Z";
    let cut_ms = chrono::DateTime::parse_from_rfc3339(cut)
        .map(|d| d.timestamp_millis())
        .unwrap_or(0);
    let millis = |v: &Value| {
        v.as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.timestamp_millis())
            .unwrap_or(i64::MIN)
    };
    let (got, _) = all_pages(
        &c,
        &format!("{base}/Observation?patient={pid}&issued=ge{cut}&_count=50"),
    )
    .await;
    let want: Vec<Value> = observations
        .iter()
        .filter(|o| millis(&o["issued"]) >= cut_ms)
        .cloned()
        .collect();
    assert_eq!(got, want);
    let (got, _) = all_pages(
        &c,
        &format!("{base}/Encounter?patient={pid}&_lastUpdated=lt{cut}"),
    )
    .await;
    let want: Vec<Value> = of_type(&resources, "Encounter")
        .into_iter()
        .filter(|o| millis(&o["meta"]["lastUpdated"]) < cut_ms)
        .collect();
    assert_eq!(got, want);
    // An offset spelled with %2B (a bare `+` would decode to a space and be rejected).
    let (status, _) = get(
        &c,
        &format!("{base}/Encounter?patient={pid}&_lastUpdated=gt2022-01-01T00:00:00%2B05:00"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = get(
        &c,
        &format!("{base}/Encounter?patient={pid}&_lastUpdated=gt2022-01-01T00:00:00+05:00"),
    )
    .await;
    assert_eq!(status, 400);

    // Strictness: unknown parameters, unsupported modifiers and missing patient are errors.
    for (query, needle) in [
        (
            "Condition?patient=pat-000001&clinical-status=active",
            "clinical-status",
        ),
        ("Condition?patient=pat-000001&code:text=x", "code:text"),
        ("Encounter?patient=pat-000001&date=ge2020", "date"),
        ("Patient?patient=pat-000001", "patient"),
        ("Observation?category=laboratory", "patient"),
    ] {
        let (status, outcome) = get(&c, &format!("{base}/{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        let diagnostics = outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap_or_default();
        assert!(diagnostics.contains(needle), "{query}: {diagnostics}");
    }
    let (status, _) = get(&c, &format!("{base}/Widget?patient={pid}")).await;
    assert_eq!(status, 404);
    let (status, _) = get(&c, &format!("{base}/Observation/obs-000011-99")).await;
    assert_eq!(status, 404);
    // Shared pools are searchable by _id and in full.
    let (got, _) = all_pages(&c, &format!("{base}/Practitioner?_count=100")).await;
    assert_eq!(got.len(), 40);
    let (got, _) = all_pages(&c, &format!("{base}/Medication?_id=med-03")).await;
    assert_eq!(got.len(), 1);
}

#[tokio::test]
async fn epic_restrictions() {
    let server = start(Config {
        flavor: Flavor::Epic,
        ..Config::default()
    })
    .await
    .expect("start");
    let c = client();
    let base = server.base_url();
    // A patient who has both an EpisodeOfCare and a Specimen.
    let i = (0..100)
        .find(|&i| {
            let r = data::patient_resources(1, i);
            !of_type(&r, "EpisodeOfCare").is_empty() && !of_type(&r, "Specimen").is_empty()
        })
        .expect("some patient has both");
    let pid = data::patient_id(i);
    let resources = data::patient_resources(1, i);
    for query in [
        format!("EpisodeOfCare?patient={pid}"),
        format!("Specimen?patient={pid}"),
        format!("Specimen?subject=Patient/{pid}"),
        format!("Observation?patient={pid}"),
        format!("Condition?patient={pid}&_lastUpdated=gt2020-01-01"),
    ] {
        let (status, outcome) = get(&c, &format!("{base}/{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
    }
    for ty in ["EpisodeOfCare", "Specimen"] {
        let want = &of_type(&resources, ty)[0];
        let id = want["id"].as_str().unwrap_or_default();
        let (status, got) = get(&c, &format!("{base}/{ty}/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(&got, want);
    }
    let categories =
        "vital-signs,laboratory,social-history,survey,exam,imaging,procedure,therapy,activity";
    let (got, _) = all_pages(
        &c,
        &format!("{base}/Observation?patient={pid}&category={categories}"),
    )
    .await;
    assert_eq!(got, of_type(&resources, "Observation"));
    let (status, _) = get(
        &c,
        &format!("{base}/Condition?patient={pid}&recorded-date=ge2020-01-01"),
    )
    .await;
    assert_eq!(status, 200);
}

fn search_params(statement: &Value, ty: &str) -> Vec<String> {
    statement["rest"][0]["resource"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["type"] == ty)
        .map(|r| {
            r["searchParam"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn capability_statements_and_smart_configuration() {
    let epic = start(Config {
        flavor: Flavor::Epic,
        ..Config::default()
    })
    .await
    .expect("start");
    let generic = start(Config::default()).await.expect("start");
    let c = client();
    let (status, e) = get(&c, &format!("{}/metadata", epic.base_url())).await;
    assert_eq!(status, 200);
    assert_eq!(e["software"]["name"], "Epic");
    assert_eq!(e["publisher"], "Epic");
    let (_, g) = get(&c, &format!("{}/metadata", generic.base_url())).await;
    assert_eq!(g["software"]["name"], "fake-ehr");
    assert_eq!(g["rest"][0]["mode"], "server");
    for (ty, created) in [
        ("AllergyIntolerance", "date"),
        ("Condition", "recorded-date"),
        ("DiagnosticReport", "issued"),
        ("DocumentReference", "date"),
        ("MedicationRequest", "authoredon"),
        ("Observation", "issued"),
        ("ServiceRequest", "authored"),
    ] {
        for statement in [&e, &g] {
            let params = search_params(statement, ty);
            assert!(params.contains(&created.to_string()), "{ty}");
            assert!(params.contains(&"patient".to_string()), "{ty}");
        }
    }
    assert!(search_params(&g, "Device").contains(&"_lastUpdated".to_string()));
    assert!(!search_params(&e, "Device").contains(&"_lastUpdated".to_string()));
    assert!(search_params(&g, "Patient").contains(&"identifier".to_string()));
    assert!(search_params(&g, "Observation").contains(&"category".to_string()));

    let (status, smart) = get(
        &c,
        &format!("{}/.well-known/smart-configuration", generic.base_url()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(smart["token_endpoint"], generic.token_url().as_str());
    assert!(
        smart["capabilities"]
            .as_array()
            .is_some_and(|caps| caps.iter().any(|c| c == "client-confidential-asymmetric"))
    );
    assert_eq!(generic.stats().metadata, 1);
    assert_eq!(generic.stats().smart_config, 1);
}

#[tokio::test]
async fn counters() {
    let server = start(Config {
        flavor: Flavor::Epic,
        ..Config::default()
    })
    .await
    .expect("start");
    let c = client();
    let base = server.base_url();
    assert_eq!(server.requests(), 0);
    get(&c, &format!("{base}/metadata")).await;
    let search = "/fhir/Condition?patient=pat-000001&_count=2";
    let origin = base.trim_end_matches("/fhir");
    let (_, first) = get(&c, &format!("{origin}{search}")).await;
    let next = first["link"][1]["url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        next.starts_with(&base) && next.contains("_offset=2"),
        "{next}"
    );
    get(&c, &next).await;
    let response = c
        .get(format!("{base}/Patient/pat-000001"))
        .header("Epic-Client-ID", "abc")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 200);
    get(&c, &format!("{base}/Nope/1")).await;
    // Admin requests are not counted.
    let (_, admin) = get(&c, &format!("{origin}/__admin/stats")).await;
    assert_eq!(admin["requests"], 5);
    let stats = server.stats();
    assert_eq!(server.requests(), 5);
    assert_eq!(stats.requests, 5);
    assert_eq!(stats.metadata, 1);
    assert_eq!(stats.searches, 2);
    assert_eq!(stats.reads, 2);
    assert_eq!(stats.epic_client_id_headers, 1);
    assert_eq!(stats.faults, 0);
    assert_eq!(stats.search_urls.len(), 2);
    assert_eq!(stats.search_urls[0], search);
    assert_eq!(format!("{origin}{}", stats.search_urls[1]), next);
    // One request at a time; an open server issues no tokens.
    assert_eq!(stats.max_in_flight, 1);
    assert!(stats.issued_tokens.is_empty());
}

/// GETs every URL at once and waits for all answers.
async fn all_at_once(c: &reqwest::Client, urls: &[String]) {
    let requests = urls.iter().map(|url| {
        let c = c.clone();
        let url = url.clone();
        async move {
            let response = c.get(&url).send().await.expect("send");
            assert_eq!(response.status().as_u16(), 200, "{url}");
            response.bytes().await.expect("body");
        }
    });
    futures_util::future::join_all(requests).await;
}

#[tokio::test]
async fn max_in_flight_counts_overlapping_data_requests() {
    let server = start(Config {
        latency: std::time::Duration::from_millis(300),
        ..Config::default()
    })
    .await
    .expect("start");
    let c = client();
    let base = server.base_url();
    assert_eq!(server.stats().max_in_flight, 0);

    // Metadata is not a data request, however many overlap.
    let metadata = vec![format!("{base}/metadata"); 3];
    all_at_once(&c, &metadata).await;
    assert_eq!(server.stats().max_in_flight, 0);

    // Pairs of overlapping requests, one pair after the other: the count goes back down
    // when a request is answered, so the maximum stays at two.
    let pair = vec![
        format!("{base}/Patient/pat-000001"),
        format!("{base}/Condition?patient=pat-000002"),
    ];
    for _ in 0..3 {
        all_at_once(&c, &pair).await;
    }
    assert_eq!(server.stats().max_in_flight, 2);

    // Five at once (searches and reads mixed), latency included in the time in flight.
    let five: Vec<String> = (0..5)
        .map(|i| {
            if i % 2 == 0 {
                format!("{base}/Patient/pat-00000{i}")
            } else {
                format!("{base}/Observation?patient=pat-00000{i}")
            }
        })
        .collect();
    all_at_once(&c, &five).await;
    assert_eq!(server.stats().max_in_flight, 5);
    let (status, _) = get(&c, &format!("{base}/Patient/pat-000009")).await;
    assert_eq!(status, 200);
    assert_eq!(
        server.stats().max_in_flight,
        5,
        "a maximum, not a current count"
    );
}
