//! The per-patient generator: one PRNG stream per `(seed, patient)` drawn in a fixed order,
//! producing the Patient and every patient-linked resource with consistent references. A
//! second stream (`h`) adds the references hydration follows (roles, specimens, episodes,
//! hidden Observations, 404s) and the readable-only resources of `hidden`, so the searchable
//! data keeps its shape whatever those additions draw.

mod hidden;

use super::binary::pre_inlined_text;
use super::rng::Rng;
use super::shared::{self, Pool};
use super::time::{self, EARLIEST, LATEST, days};
use super::vocab::{self, Code, Measure};
use super::{MRN_SYSTEM, mrn, patient_id, resource_id};
use serde_json::{Map, Value, json};

const DOMAIN: u64 = 0x5041_5449_454E_5453;
/// The hydration stream of the patient's other resources.
const HYDRATION_DOMAIN: u64 = 0x0048_5944_5241_5445;
/// The hydration stream of the Patient resource itself.
const PATIENT_HYDRATION_DOMAIN: u64 = 0x0048_5944_5250_4154;

/// What the generator makes for one patient.
pub struct Generated {
    /// What searches return: Patient first, then the linked types in canonical order.
    pub resources: Vec<Value>,
    /// Readable by id only: hidden Observations, Specimens and EpisodesOfCare.
    pub hidden: Vec<Value>,
}

/// Which of the per-patient hydration references exist, decided by the patient index alone
/// so references and the resources they point to agree.
#[derive(Clone, Copy)]
struct Plan {
    /// `heoc-…-01` exists (referenced by an Encounter, a DocumentReference and a
    /// MedicationDispense).
    episode: bool,
    /// The first Observation has members: `hobs-…-05` (hidden) and `obs-…-02`.
    obs_members: bool,
    /// The second DiagnosticReport also results in `hobs-…-06`.
    dr2_hidden: bool,
    /// The second DiagnosticReport also results in `hobs-…-99`, which answers 404.
    dr2_missing: bool,
    /// `hobs-…-04` has `hobs-…-03` as member, closing the cycle 03 → 04 → 03.
    cycle: bool,
    /// A searchable EpisodeOfCare (`eoc-…-01`) exists and an Encounter references it.
    searchable_episode: bool,
    /// A searchable Specimen (`spec-…-01`) exists and reports and requests reference it.
    searchable_specimen: bool,
}

impl Plan {
    fn new(i: usize, n_eoc: usize, n_spec: usize) -> Self {
        Self {
            episode: i % 3 != 2,
            obs_members: i.is_multiple_of(3),
            dr2_hidden: i.is_multiple_of(2),
            dr2_missing: i.is_multiple_of(10),
            cycle: i % 4 == 1,
            searchable_episode: n_eoc > 0,
            searchable_specimen: n_spec > 0,
        }
    }
}

struct Encounter {
    id: String,
    start: i64,
    end: i64,
    practitioner: Value,
    location: Value,
}

struct Gen {
    rng: Rng,
    /// Draws for the hydration additions only.
    h: Rng,
    plan: Plan,
    i: usize,
    subject: Value,
    encounters: Vec<Encounter>,
    spelled_round: bool,
    spelled_tenth: bool,
}

pub fn generate_patient_only(seed: u64, i: usize) -> Value {
    let mut rng = Rng::new(seed, DOMAIN, i as u64);
    patient(&mut rng, seed, i)
}

pub fn generate(seed: u64, i: usize) -> Generated {
    let mut rng = Rng::new(seed, DOMAIN, i as u64);
    let patient = patient(&mut rng, seed, i);

    let mut n_enc = rng.range(3, 6);
    let n_alg = rng.range(0, 2);
    let n_cond = rng.range(2, 5);
    let n_dev = rng.range(0, 1);
    let n_dr = rng.range(2, 4);
    let n_doc = rng.range(2, 4);
    let n_eoc = rng.range(0, 1);
    let n_imm = rng.range(1, 3);
    let n_mdisp = rng.range(0, 2);
    let n_mreq = rng.range(1, 3);
    let n_proc = rng.range(1, 3);
    let n_sreq = rng.range(1, 2);
    let n_spec = rng.range(0, 1);
    let mut others = n_enc
        + n_alg
        + n_cond
        + n_dev
        + n_dr
        + n_doc
        + n_eoc
        + n_imm
        + n_mdisp
        + n_mreq
        + n_proc
        + n_sreq
        + n_spec;
    if others < 15 {
        n_enc += 1;
        others += 1;
    }
    // Keep the total (Patient + others + observations) within 40..=60.
    let n_obs = rng.range(12.max(39 - others.min(39)), 25.min(59 - others));

    let mut g = Gen {
        rng,
        h: Rng::new(seed, HYDRATION_DOMAIN, i as u64),
        plan: Plan::new(i, n_eoc, n_spec),
        i,
        subject: json!({ "reference": format!("Patient/{}", patient_id(i)) }),
        encounters: Vec::new(),
        spelled_round: false,
        spelled_tenth: false,
    };
    let encounters = g.encounters(n_enc);
    let observations = g.observations(n_obs);
    let mut out = Vec::with_capacity(1 + others + n_obs);
    out.push(patient);
    out.extend(encounters);
    out.extend((1..=n_alg).map(|n| g.allergy(n)));
    out.extend((1..=n_cond).map(|n| g.condition(n)));
    out.extend((1..=n_dev).map(|n| g.device(n)));
    let reports: Vec<Value> = (1..=n_dr).map(|n| g.report(n, &observations)).collect();
    out.extend(reports);
    out.extend((1..=n_doc).map(|n| g.document(n)));
    out.extend((1..=n_eoc).map(|n| g.episode(n)));
    out.extend((1..=n_imm).map(|n| g.immunization(n)));
    let requests: Vec<Value> = (1..=n_mreq).map(|n| g.med_request(n)).collect();
    out.extend((1..=n_mdisp).map(|n| g.med_dispense(n, &requests)));
    out.extend(requests);
    out.extend(observations);
    out.extend((1..=n_proc).map(|n| g.procedure(n)));
    out.extend((1..=n_sreq).map(|n| g.service_request(n)));
    out.extend((1..=n_spec).map(|n| g.specimen(n)));
    let hidden = g.hidden();
    Generated {
        resources: out,
        hidden,
    }
}

fn patient(rng: &mut Rng, seed: u64, i: usize) -> Value {
    let first = *rng.pick(&vocab::GIVEN_NAMES);
    let middle = rng
        .chance(0.3)
        .then(|| *rng.pick(&vocab::GIVEN_NAMES))
        .filter(|m| *m != first);
    let family = *rng.pick(&vocab::FAMILY_NAMES);
    let gender = *rng.pick(&["female", "male", "female", "male", "other", "unknown"]);
    // 1930-01-01 .. 2015-12-31
    let birth = rng.range_i64(-1_262_304_000, 1_451_520_000);
    let created = time::between(rng, EARLIEST, EARLIEST + days(3 * 365));
    let updated = time::later(rng, created, 1500);
    let (city, state, zip) = *rng.pick(&vocab::CITIES);
    let mut given = vec![first];
    given.extend(middle);
    let text = format!("{} {}", given.join(" "), family);
    let mut r = json!({
        "resourceType": "Patient",
        "id": patient_id(i),
        "meta": { "lastUpdated": time::random_instant(rng, updated) },
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                        "code": "MR",
                        "display": "Medical Record Number"
                    }],
                    "text": "MRN"
                },
                "system": MRN_SYSTEM,
                "value": mrn(i)
            },
            {
                "use": "secondary",
                "system": "urn:fake-ehr:external-id",
                "value": format!("X{:012X}", rng.next_u64() >> 16)
            }
        ],
        "active": true,
        "name": [{ "use": "official", "text": text, "family": family, "given": given }],
        "telecom": [{
            "system": "phone",
            "value": format!("555-01{:02}", rng.below(100)),
            "use": "home"
        }],
        "gender": gender,
        "birthDate": time::date(birth),
        "address": [{
            "use": "home",
            "line": [format!("{} Main St", rng.range(1, 9999))],
            "city": city,
            "state": state,
            "postalCode": zip,
            "country": "US"
        }],
        "generalPractitioner": [shared::pick_ref(rng, Pool::Practitioner)],
        "managingOrganization": shared::pick_ref(rng, Pool::Organization)
    });
    let mut h = Rng::new(seed, PATIENT_HYDRATION_DOMAIN, i as u64);
    if let Some(gps) = r["generalPractitioner"].as_array_mut() {
        if i % 4 == 1 {
            gps.push(shared::pick_ref(&mut h, Pool::PractitionerRole));
        }
        if i % 10 == 3 {
            // Another server's practitioner: not ours to fetch.
            gps.push(json!({ "reference": EXTERNAL_PRACTITIONER }));
        }
    }
    if i % 5 == 2 {
        push(
            &mut r,
            "contact",
            json!([{
                "relationship": [{ "text": "Employer" }],
                "name": { "text": "Human resources" },
                "organization": shared::pick_ref(&mut h, Pool::Organization)
            }]),
        );
    }
    r
}

/// An absolute reference to another server, in some patients' `generalPractitioner`.
pub const EXTERNAL_PRACTITIONER: &str = "https://directory.example.org/fhir/Practitioner/ext-77";

fn coding(system: &str, code: &Code) -> Value {
    json!({ "coding": [{ "system": system, "code": code.0, "display": code.1 }], "text": code.1 })
}

fn category(system: &str, code: &str, display: &str) -> Value {
    json!([{ "coding": [{ "system": system, "code": code, "display": display }] }])
}

fn reference(ty: &str, id: &str) -> Value {
    json!({ "reference": format!("{ty}/{id}") })
}

/// Inserts `key: value` at the end of a JSON object.
fn push(resource: &mut Value, key: &str, value: Value) {
    if let Some(map) = resource.as_object_mut() {
        map.insert(key.to_string(), value);
    }
}

fn number(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

impl Gen {
    fn id(&self, prefix: &str, n: usize) -> String {
        resource_id(prefix, self.i, n)
    }

    /// Resource skeleton: `resourceType`, `id`, `meta.lastUpdated` some days after `created`.
    fn base(&mut self, ty: &str, prefix: &str, n: usize, created: i64) -> Value {
        let updated = time::later(&mut self.rng, created, 120);
        let mut map = Map::new();
        map.insert("resourceType".into(), json!(ty));
        map.insert("id".into(), json!(self.id(prefix, n)));
        map.insert(
            "meta".into(),
            json!({ "lastUpdated": time::random_instant(&mut self.rng, updated) }),
        );
        Value::Object(map)
    }

    fn instant(&mut self, secs: i64) -> String {
        time::random_instant(&mut self.rng, secs)
    }

    /// A random encounter index and a moment during it.
    fn during_encounter(&mut self) -> (usize, i64) {
        let k = self.rng.below(self.encounters.len() as u64) as usize;
        let e = &self.encounters[k];
        let (start, end) = (e.start, e.end.max(e.start));
        (k, self.rng.range_i64(start, end))
    }

    fn encounter_ref(&self, k: usize) -> Value {
        reference("Encounter", &self.encounters[k].id)
    }

    fn encounters(&mut self, count: usize) -> Vec<Value> {
        let care_start = time::between(&mut self.rng, EARLIEST, EARLIEST + days(4 * 365));
        let mut starts: Vec<i64> = (0..count)
            .map(|_| time::between(&mut self.rng, care_start, LATEST - days(30)))
            .collect();
        starts.sort_unstable();
        let mut out = Vec::with_capacity(count);
        for (n, start) in starts.into_iter().enumerate() {
            let n = n + 1;
            let (class, class_display, length) = match self.rng.below(10) {
                0 => ("IMP", "inpatient encounter", days(self.rng.range_i64(1, 6))),
                1 => ("EMER", "emergency", self.rng.range_i64(3_600, 8 * 3_600)),
                _ => ("AMB", "ambulatory", self.rng.range_i64(900, 3 * 3_600)),
            };
            let end = time::clamp(start + length);
            let practitioner = shared::pick_ref(&mut self.rng, Pool::Practitioner);
            let location = shared::pick_ref(&mut self.rng, Pool::Location);
            let org = shared::pick_ref(&mut self.rng, Pool::Organization);
            let kind = *self.rng.pick(&[
                ("185349003", "Encounter for check up"),
                ("185345009", "Encounter for symptom"),
                ("390906007", "Follow-up encounter"),
                ("50849002", "Emergency room admission"),
            ]);
            let mut r = self.base("Encounter", "enc", n, end);
            let period = json!({ "start": self.instant(start), "end": self.instant(end) });
            push(&mut r, "status", json!("finished"));
            push(
                &mut r,
                "class",
                json!({
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": class,
                    "display": class_display
                }),
            );
            push(&mut r, "type", json!([coding(vocab::SNOMED, &kind)]));
            push(&mut r, "subject", self.subject.clone());
            push(
                &mut r,
                "participant",
                json!([{
                    "type": [{ "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                        "code": "ATND",
                        "display": "attender"
                    }] }],
                    "individual": practitioner
                }]),
            );
            push(&mut r, "period", period);
            push(&mut r, "location", json!([{ "location": location }]));
            push(&mut r, "serviceProvider", org);
            self.hydrate_encounter(&mut r, n, class == "IMP");
            self.encounters.push(Encounter {
                id: self.id("enc", n),
                start,
                end,
                practitioner: practitioner_of(&r),
                location: location_of(&r),
            });
            out.push(r);
        }
        out
    }

    fn allergy(&mut self, n: usize) -> Value {
        let (k, t) = self.during_encounter();
        let (code, display, cat) = *self.rng.pick(&vocab::ALLERGIES);
        let recorded = self.maybe_date(t);
        let recorder = self.encounters[k].practitioner.clone();
        let mut r = self.base("AllergyIntolerance", "alg", n, t);
        push(
            &mut r,
            "clinicalStatus",
            json!({ "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "code": "active"
            }] }),
        );
        push(
            &mut r,
            "verificationStatus",
            json!({ "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                "code": "confirmed"
            }] }),
        );
        push(&mut r, "category", json!([cat]));
        push(&mut r, "code", coding(vocab::SNOMED, &(code, display)));
        push(&mut r, "patient", self.subject.clone());
        push(&mut r, "recordedDate", json!(recorded));
        push(&mut r, "recorder", recorder);
        if self.h.chance(0.5) {
            push(
                &mut r,
                "asserter",
                shared::pick_ref(&mut self.h, Pool::PractitionerRole),
            );
        }
        r
    }

    /// A date-only spelling a quarter of the time, else an instant.
    fn maybe_date(&mut self, t: i64) -> String {
        if self.rng.chance(0.25) {
            time::date(t)
        } else {
            self.instant(t)
        }
    }

    fn condition(&mut self, n: usize) -> Value {
        let (k, t) = self.during_encounter();
        let code = *self.rng.pick(&vocab::CONDITIONS);
        let (cat, cat_display) = if self.rng.chance(0.5) {
            ("problem-list-item", "Problem List Item")
        } else {
            ("encounter-diagnosis", "Encounter Diagnosis")
        };
        let onset = time::date(t - self.rng.range_i64(0, days(2000)));
        let recorded = self.maybe_date(t);
        let recorder = self.encounters[k].practitioner.clone();
        let mut r = self.base("Condition", "cond", n, t);
        push(
            &mut r,
            "clinicalStatus",
            json!({ "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active"
            }] }),
        );
        push(
            &mut r,
            "category",
            category(
                "http://terminology.hl7.org/CodeSystem/condition-category",
                cat,
                cat_display,
            ),
        );
        push(&mut r, "code", coding(vocab::SNOMED, &code));
        push(&mut r, "subject", self.subject.clone());
        push(&mut r, "encounter", self.encounter_ref(k));
        push(&mut r, "onsetDateTime", json!(onset));
        push(&mut r, "recordedDate", json!(recorded));
        push(&mut r, "recorder", recorder);
        if n == 1 && self.i.is_multiple_of(3) {
            push(
                &mut r,
                "asserter",
                json!({ "reference": shared::GONE_PRACTITIONER }),
            );
        } else if self.h.chance(0.3) {
            push(
                &mut r,
                "asserter",
                shared::pick_ref(&mut self.h, Pool::PractitionerRole),
            );
        }
        r
    }

    fn device(&mut self, n: usize) -> Value {
        let (_, t) = self.during_encounter();
        let code = *self.rng.pick(&vocab::DEVICES);
        let serial = format!("SN{:010}", self.rng.below(10_000_000_000));
        let mut r = self.base("Device", "dev", n, t);
        push(&mut r, "status", json!("active"));
        push(&mut r, "serialNumber", json!(serial));
        push(&mut r, "type", coding(vocab::SNOMED, &code));
        push(&mut r, "patient", self.subject.clone());
        push(
            &mut r,
            "owner",
            shared::pick_ref(&mut self.h, Pool::Organization),
        );
        push(
            &mut r,
            "location",
            shared::pick_ref(&mut self.h, Pool::Location),
        );
        r
    }

    /// A measured value spelled with the measure's decimals; the first few per patient are
    /// forced to carry trailing zeros (`120.0`, `1.50`) so re-spelled numbers are caught.
    fn measured(&mut self, m: &Measure) -> Value {
        let (_, _, unit, decimals, lo, hi) = *m;
        let v = lo + self.rng.unit() * (hi - lo);
        let d = decimals as usize;
        let text = if d >= 1 && (!self.spelled_round || self.rng.chance(0.15)) {
            self.spelled_round = true;
            format!("{:.d$}", v.round())
        } else if d >= 2 && (!self.spelled_tenth || self.rng.chance(0.2)) {
            self.spelled_tenth = true;
            format!("{:.d$}", (v * 10.0).round() / 10.0)
        } else {
            format!("{v:.d$}")
        };
        json!({ "value": number(&text), "unit": unit, "system": vocab::UCUM, "code": unit })
    }

    fn observations(&mut self, count: usize) -> Vec<Value> {
        const EXTRA: [&str; 12] = [
            "vital-signs",
            "laboratory",
            "laboratory",
            "vital-signs",
            "social-history",
            "survey",
            "exam",
            "imaging",
            "procedure",
            "therapy",
            "activity",
            "laboratory",
        ];
        (1..=count)
            .map(|n| {
                let cat = match n {
                    1..=3 => "vital-signs",
                    4..=6 => "laboratory",
                    _ => *self.rng.pick(&EXTRA),
                };
                self.observation(n, cat)
            })
            .collect()
    }

    fn observation(&mut self, n: usize, cat: &str) -> Value {
        let (k, eff) = self.during_encounter();
        let issued_at = time::later(&mut self.rng, eff, 2);
        let (code, value_key, value): (Code, &str, Value) = match cat {
            "vital-signs" if self.rng.chance(0.2) => {
                let sys = self.rng.range(100, 160);
                let dia = self.rng.range(60, 95);
                let comp = |c: &str, d: &str, v: usize| {
                    json!({
                        "code": { "coding": [{ "system": vocab::LOINC, "code": c, "display": d }] },
                        "valueQuantity": {
                            "value": number(&format!("{v}.0")),
                            "unit": "mm[Hg]",
                            "system": vocab::UCUM,
                            "code": "mm[Hg]"
                        }
                    })
                };
                let components = json!([
                    comp("8480-6", "Systolic blood pressure", sys),
                    comp("8462-4", "Diastolic blood pressure", dia)
                ]);
                (("85354-9", "Blood pressure panel"), "component", components)
            }
            "vital-signs" | "laboratory" | "activity" => {
                let table: &[Measure] = match cat {
                    "vital-signs" => &vocab::VITALS,
                    "laboratory" => &vocab::LABS,
                    _ => &vocab::ACTIVITY,
                };
                let m = *self.rng.pick(table);
                ((m.0, m.1), "valueQuantity", self.measured(&m))
            }
            "social-history" => {
                let status = *self.rng.pick(&[
                    ("266919005", "Never smoker"),
                    ("8517006", "Ex-smoker"),
                    ("77176002", "Smoker"),
                ]);
                (
                    ("72166-2", "Tobacco smoking status"),
                    "valueCodeableConcept",
                    coding(vocab::SNOMED, &status),
                )
            }
            "survey" => (
                (
                    "44261-6",
                    "Patient Health Questionnaire-9: Modified for Teens total score",
                ),
                "valueInteger",
                json!(self.rng.range(0, 27)),
            ),
            "exam" => {
                let finding = *self.rng.pick(&[
                    "Lungs clear to auscultation bilaterally.",
                    "Regular rate and rhythm, no murmurs.",
                    "Abdomen soft, non-tender — no rebound.",
                ]);
                (
                    ("29545-1", "Physical findings"),
                    "valueString",
                    json!(finding),
                )
            }
            "imaging" => {
                let finding = *self.rng.pick(&[
                    "No acute cardiopulmonary process.",
                    "Mild degenerative changes of the lumbar spine.",
                    "Small nodule (4 mm) in the right upper lobe; follow-up advised.",
                ]);
                (
                    ("18748-4", "Diagnostic imaging study"),
                    "valueString",
                    json!(finding),
                )
            }
            "procedure" => {
                let minutes = self.measured(&("", "", "min", 1, 10.0, 240.0));
                (("67781-5", "Procedure duration"), "valueQuantity", minutes)
            }
            _ => (
                ("89239-0", "Therapy session note"),
                "valueString",
                json!(*self.rng.pick(&[
                    "Tolerated physical therapy well.",
                    "Completed 45 min occupational therapy.",
                ])),
            ),
        };
        let display = match cat {
            "vital-signs" => "Vital Signs",
            "laboratory" => "Laboratory",
            "social-history" => "Social History",
            "survey" => "Survey",
            "exam" => "Exam",
            "imaging" => "Imaging",
            "procedure" => "Procedure",
            "therapy" => "Therapy",
            _ => "Activity",
        };
        let effective = self.instant(eff);
        let issued = self.instant(issued_at);
        let mut r = self.base("Observation", "obs", n, issued_at);
        push(&mut r, "status", json!("final"));
        push(
            &mut r,
            "category",
            category(vocab::OBS_CATEGORY, cat, display),
        );
        push(&mut r, "code", coding(vocab::LOINC, &code));
        push(&mut r, "subject", self.subject.clone());
        push(&mut r, "encounter", self.encounter_ref(k));
        push(&mut r, "effectiveDateTime", json!(effective));
        push(&mut r, "issued", json!(issued));
        push(&mut r, value_key, value);
        self.hydrate_observation(&mut r, n, cat);
        r
    }

    fn report(&mut self, n: usize, observations: &[Value]) -> Value {
        let of_category = |cat: &str| -> Vec<&Value> {
            observations
                .iter()
                .filter(|o| o["category"][0]["coding"][0]["code"] == cat)
                .collect()
        };
        let imaging = of_category("imaging");
        let radiology = !imaging.is_empty() && self.rng.chance(0.3);
        let pool = if radiology {
            imaging
        } else {
            of_category("laboratory")
        };
        let take = self.rng.range(1, 4).min(pool.len());
        let first = self.rng.below(pool.len() as u64) as usize;
        let results: Vec<Value> = (0..take)
            .map(|j| {
                let id = pool[(first + j) % pool.len()]["id"]
                    .as_str()
                    .unwrap_or_default();
                reference("Observation", id)
            })
            .collect();
        let (code, cat, cat_display) = if radiology {
            (("18748-4", "Diagnostic imaging study"), "RAD", "Radiology")
        } else {
            (*self.rng.pick(&vocab::LAB_PANELS), "LAB", "Laboratory")
        };
        let (k, eff) = self.during_encounter();
        let issued_at = time::later(&mut self.rng, eff, 3);
        let performer = if self.rng.chance(0.5) {
            shared::pick_ref(&mut self.rng, Pool::Organization)
        } else {
            self.encounters[k].practitioner.clone()
        };
        let effective = self.instant(eff);
        let issued = self.instant(issued_at);
        let stem = binary_stem(self.i, "dr", n);
        let mut r = self.base("DiagnosticReport", "dr", n, issued_at);
        push(&mut r, "status", json!("final"));
        push(
            &mut r,
            "category",
            category(
                "http://terminology.hl7.org/CodeSystem/v2-0074",
                cat,
                cat_display,
            ),
        );
        push(&mut r, "code", coding(vocab::LOINC, &code));
        push(&mut r, "subject", self.subject.clone());
        push(&mut r, "encounter", self.encounter_ref(k));
        push(&mut r, "effectiveDateTime", json!(effective));
        push(&mut r, "issued", json!(issued));
        push(&mut r, "performer", json!([performer]));
        push(&mut r, "result", json!(results));
        let mut forms = vec![form(&stem, "txt", code.1)];
        let i = self.i;
        if n == 1 && i.is_multiple_of(2) {
            let mut html = form(&stem, "html", code.1);
            if i.is_multiple_of(7) {
                // Media types are case-insensitive.
                html["contentType"] = json!("Text/HTML");
            }
            forms.push(html);
        }
        if n == 2 && i % 5 == 4 {
            forms.push(form(&stem, "pdf", code.1));
        }
        if n == 2 && i % 6 == 1 {
            forms.push(form(&stem, "xhtml", code.1));
        }
        push(&mut r, "presentedForm", json!(forms));
        self.hydrate_report(&mut r, n);
        r
    }

    fn document(&mut self, n: usize) -> Value {
        let (k, t) = self.during_encounter();
        let note = *self.rng.pick(&vocab::NOTE_TYPES);
        let stem = binary_stem(self.i, "doc", n);
        let mut attachments: Vec<Value> = match self.rng.below(10) {
            0..=3 => vec![attachment(&stem, "html", note.1)],
            4..=6 => vec![attachment(&stem, "txt", note.1)],
            _ => vec![
                attachment(&stem, "html", note.1),
                attachment(&stem, "txt", note.1),
            ],
        };
        let i = self.i;
        for (wanted, ext) in [
            (n == 1 && i.is_multiple_of(3), "xhtml"),
            (n == 2 && i % 4 == 2, "pdf"),
            (n == 2 && i % 7 == 3, "rtf"),
            (n == 1 && i % 5 == 1, "pre"),
        ] {
            if wanted {
                attachments.push(attachment(&stem, ext, note.1));
            }
        }
        if i % 3 == 1 {
            // A declared charset, which the served one replaces when inlined.
            for a in &mut attachments {
                if a["attachment"]["contentType"] == "text/plain" {
                    a["attachment"]["contentType"] = json!("text/plain; charset=UTF-8");
                }
            }
        }
        let author = self.encounters[k].practitioner.clone();
        let date = self.instant(t);
        let (start, end) = (self.encounters[k].start, self.encounters[k].end);
        let period = json!({ "start": self.instant(start), "end": self.instant(end) });
        let mut r = self.base("DocumentReference", "doc", n, t);
        push(&mut r, "status", json!("current"));
        push(&mut r, "docStatus", json!("final"));
        push(&mut r, "type", coding(vocab::LOINC, &note));
        push(
            &mut r,
            "category",
            category(
                "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                "clinical-note",
                "Clinical Note",
            ),
        );
        push(&mut r, "subject", self.subject.clone());
        push(&mut r, "date", json!(date));
        push(&mut r, "author", json!([author]));
        push(&mut r, "content", json!(attachments));
        let mut encounters = vec![self.encounter_ref(k)];
        if n == 1 && self.plan.episode {
            encounters.push(reference("EpisodeOfCare", &self.hidden_id("heoc", 1)));
        }
        push(
            &mut r,
            "context",
            json!({ "encounter": encounters, "period": period }),
        );
        self.hydrate_document(&mut r);
        r
    }

    fn episode(&mut self, n: usize) -> Value {
        let (_, t) = self.during_encounter();
        let org = shared::pick_ref(&mut self.rng, Pool::Organization);
        let start = self.instant(t);
        let mut r = self.base("EpisodeOfCare", "eoc", n, t);
        push(&mut r, "status", json!("active"));
        push(
            &mut r,
            "type",
            json!([{ "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/episodeofcare-type",
                "code": "hacc",
                "display": "Home and Community Care"
            }] }]),
        );
        push(&mut r, "patient", self.subject.clone());
        push(&mut r, "managingOrganization", org);
        push(&mut r, "period", json!({ "start": start }));
        push(
            &mut r,
            "careManager",
            shared::pick_ref(&mut self.h, Pool::Practitioner),
        );
        r
    }

    fn immunization(&mut self, n: usize) -> Value {
        let (k, t) = self.during_encounter();
        let vaccine = *self.rng.pick(&vocab::VACCINES);
        let recorded_at = time::later(&mut self.rng, t, 1);
        let occurrence = self.instant(t);
        let recorded = self.instant(recorded_at);
        let performer = self.encounters[k].practitioner.clone();
        let location = self.encounters[k].location.clone();
        let mut r = self.base("Immunization", "imm", n, recorded_at);
        push(&mut r, "status", json!("completed"));
        push(&mut r, "vaccineCode", coding(vocab::CVX, &vaccine));
        push(&mut r, "patient", self.subject.clone());
        push(&mut r, "encounter", self.encounter_ref(k));
        push(&mut r, "occurrenceDateTime", json!(occurrence));
        push(&mut r, "recorded", json!(recorded));
        push(&mut r, "primarySource", json!(true));
        push(&mut r, "location", location);
        push(&mut r, "performer", json!([{ "actor": performer }]));
        self.hydrate_immunization(&mut r);
        r
    }

    fn med_request(&mut self, n: usize) -> Value {
        let (k, t) = self.during_encounter();
        let medication = shared::pick_ref(&mut self.rng, Pool::Medication);
        let status = *self.rng.pick(&["active", "completed", "stopped"]);
        let cat = *self.rng.pick(&["outpatient", "community", "discharge"]);
        let authored = self.instant(t);
        let requester = self.encounters[k].practitioner.clone();
        let mut r = self.base("MedicationRequest", "mreq", n, t);
        push(&mut r, "status", json!(status));
        push(&mut r, "intent", json!("order"));
        push(
            &mut r,
            "category",
            category(
                "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                cat,
                cat,
            ),
        );
        push(&mut r, "medicationReference", medication);
        push(&mut r, "subject", self.subject.clone());
        push(&mut r, "encounter", self.encounter_ref(k));
        push(&mut r, "authoredOn", json!(authored));
        push(&mut r, "requester", requester);
        push(
            &mut r,
            "dosageInstruction",
            json!([{ "text": "Take 1 tablet by mouth once daily" }]),
        );
        self.hydrate_med_request(&mut r, n);
        r
    }

    fn med_dispense(&mut self, n: usize, requests: &[Value]) -> Value {
        let k = self.rng.below(requests.len() as u64) as usize;
        let request = &requests[k];
        let (_, t) = self.during_encounter();
        let handed = self.instant(t);
        let mut r = self.base("MedicationDispense", "mdisp", n, t);
        push(&mut r, "status", json!("completed"));
        let mut medication = request["medicationReference"].clone();
        if medication["reference"]
            .as_str()
            .is_some_and(|m| m.starts_with('#'))
        {
            // The request's Medication is contained in it; the dispense names a real one.
            medication = shared::pick_ref(&mut self.h, Pool::Medication);
        }
        push(&mut r, "medicationReference", medication);
        push(&mut r, "subject", self.subject.clone());
        push(
            &mut r,
            "authorizingPrescription",
            json!([reference(
                "MedicationRequest",
                request["id"].as_str().unwrap_or_default()
            )]),
        );
        push(
            &mut r,
            "quantity",
            json!({ "value": 30, "unit": "tablet", "system": vocab::UCUM, "code": "{tbl}" }),
        );
        push(&mut r, "whenHandedOver", json!(handed));
        self.hydrate_med_dispense(&mut r, n);
        r
    }

    fn procedure(&mut self, n: usize) -> Value {
        let (k, t) = self.during_encounter();
        let code = *self.rng.pick(&vocab::PROCEDURES);
        let (cat, cat_display) = *self.rng.pick(&[
            ("103693007", "Diagnostic procedure"),
            ("387713003", "Surgical procedure"),
        ]);
        let performed = self.instant(t);
        let performer = self.encounters[k].practitioner.clone();
        let location = self.encounters[k].location.clone();
        let mut r = self.base("Procedure", "proc", n, t);
        push(&mut r, "status", json!("completed"));
        push(
            &mut r,
            "category",
            coding(vocab::SNOMED, &(cat, cat_display)),
        );
        push(&mut r, "code", coding(vocab::SNOMED, &code));
        push(&mut r, "subject", self.subject.clone());
        push(&mut r, "encounter", self.encounter_ref(k));
        push(&mut r, "performedDateTime", json!(performed));
        push(&mut r, "performer", json!([{ "actor": performer }]));
        push(&mut r, "location", location);
        self.hydrate_procedure(&mut r, n);
        r
    }

    fn service_request(&mut self, n: usize) -> Value {
        let (k, t) = self.during_encounter();
        let code = *self.rng.pick(&vocab::SERVICE_REQUESTS);
        let (cat, cat_display) = *self.rng.pick(&[
            ("108252007", "Laboratory procedure"),
            ("363679005", "Imaging"),
            ("3457005", "Patient referral"),
        ]);
        let status = *self.rng.pick(&["active", "completed"]);
        let authored = self.instant(t);
        let requester = self.encounters[k].practitioner.clone();
        let mut r = self.base("ServiceRequest", "sreq", n, t);
        push(&mut r, "status", json!(status));
        push(&mut r, "intent", json!("order"));
        push(
            &mut r,
            "category",
            category(vocab::SNOMED, cat, cat_display),
        );
        push(&mut r, "code", coding(vocab::SNOMED, &code));
        push(&mut r, "subject", self.subject.clone());
        push(&mut r, "encounter", self.encounter_ref(k));
        push(&mut r, "authoredOn", json!(authored));
        push(&mut r, "requester", requester);
        self.hydrate_service_request(&mut r, n);
        r
    }

    fn specimen(&mut self, n: usize) -> Value {
        let (_, t) = self.during_encounter();
        let kind = *self.rng.pick(&vocab::SPECIMENS);
        let collected = self.instant(t);
        let received_at = time::later(&mut self.rng, t, 1);
        let received = self.instant(received_at);
        let mut r = self.base("Specimen", "spec", n, received_at);
        push(&mut r, "status", json!("available"));
        push(&mut r, "type", coding(vocab::SNOMED, &kind));
        push(&mut r, "subject", self.subject.clone());
        push(&mut r, "receivedTime", json!(received));
        let collector = shared::pick_ref(&mut self.h, Pool::Practitioner);
        push(
            &mut r,
            "collection",
            json!({ "collector": collector, "collectedDateTime": collected }),
        );
        r
    }
}

fn practitioner_of(encounter: &Value) -> Value {
    encounter["participant"][0]["individual"].clone()
}

fn location_of(encounter: &Value) -> Value {
    encounter["location"][0]["location"].clone()
}

/// `bin-000012-doc-01`: the stem of a Binary id; the suffix (`-txt`, `-html`) names its type.
pub fn binary_stem(i: usize, kind: &str, n: usize) -> String {
    format!("bin-{i:06}-{kind}-{n:02}")
}

/// The attachment of Binary `<stem>-<ext>`, declaring the content type that `ext` stands
/// for: `txt`, `html`, `xhtml`, `pdf`; `rtf` declares `text/html` but the Binary is RTF (a
/// wrong-MIME answer); `pre` already carries its `data`.
fn form(stem: &str, ext: &str, title: &str) -> Value {
    let content_type = match ext {
        "html" | "rtf" => "text/html",
        "xhtml" => "application/xhtml+xml",
        "pdf" => "application/pdf",
        _ => "text/plain",
    };
    let mut a = json!({
        "contentType": content_type,
        "url": format!("Binary/{stem}-{ext}"),
        "title": title
    });
    if ext == "pre" {
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD.encode(pre_inlined_text(title));
        push(&mut a, "data", json!(data));
    }
    a
}

fn attachment(stem: &str, ext: &str, title: &str) -> Value {
    json!({ "attachment": form(stem, ext, title) })
}
