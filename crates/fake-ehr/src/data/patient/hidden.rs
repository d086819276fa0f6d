//! What hydration follows: the extra references added to a patient's searchable resources
//! (PractitionerRoles, Specimens, EpisodesOfCare, hidden Observations, 404s, a contained
//! Medication) and the readable-only resources they point to (`hobs-…`, `hspec-…`,
//! `heoc-…`), which no search returns. Draws only from the hydration stream until the
//! hidden resources themselves are made, last.

use super::{Gen, category, coding, push, reference};
use crate::data::shared::{self, Pool};
use crate::data::time;
use crate::data::vocab;
use serde_json::{Value, json};

/// Hidden Observations: (number, LOINC code, display, unit, low, high).
const HIDDEN_OBSERVATIONS: [(usize, &str, &str, &str, f64, f64); 6] = [
    (1, "57698-3", "Lipid panel with direct LDL", "", 0.0, 0.0),
    (
        2,
        "18262-6",
        "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay",
        "mg/dL",
        60.0,
        190.0,
    ),
    (
        3,
        "2085-9",
        "Cholesterol in HDL [Mass/volume] in Serum or Plasma",
        "mg/dL",
        30.0,
        90.0,
    ),
    (
        4,
        "9830-1",
        "Cholesterol.total/Cholesterol in HDL [Mass Ratio] in Serum or Plasma",
        "{ratio}",
        2.0,
        7.0,
    ),
    (5, "8478-0", "Mean blood pressure", "mm[Hg]", 70.0, 110.0),
    (
        6,
        "4548-4",
        "Hemoglobin A1c/Hemoglobin.total in Blood",
        "%",
        4.5,
        9.5,
    ),
];

impl Gen {
    /// Id `<prefix>-<patient>-<n>` of one of this patient's resources.
    pub(super) fn hidden_id(&self, prefix: &str, n: usize) -> String {
        self.id(prefix, n)
    }

    fn hidden_ref(&self, ty: &str, prefix: &str, n: usize) -> Value {
        reference(ty, &self.hidden_id(prefix, n))
    }

    fn pick(&mut self, pool: Pool) -> Value {
        shared::pick_ref(&mut self.h, pool)
    }

    pub(super) fn hydrate_encounter(&mut self, r: &mut Value, n: usize, inpatient: bool) {
        if self.h.chance(0.4) {
            let role = self.pick(Pool::PractitionerRole);
            if let Some(participants) = r["participant"].as_array_mut() {
                participants.push(json!({
                    "type": [{ "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                        "code": "CON",
                        "display": "consultant"
                    }] }],
                    "individual": role
                }));
            }
        }
        if inpatient {
            let origin = self.pick(Pool::Location);
            let destination = self.pick(Pool::Organization);
            push(
                r,
                "hospitalization",
                json!({ "origin": origin, "destination": destination }),
            );
        }
        if n == 1 && self.plan.episode {
            let episode = self.hidden_ref("EpisodeOfCare", "heoc", 1);
            push(r, "episodeOfCare", json!([episode]));
        }
        if n == 2 && self.plan.searchable_episode {
            let episode = self.hidden_ref("EpisodeOfCare", "eoc", 1);
            push(r, "episodeOfCare", json!([episode]));
        }
    }

    pub(super) fn hydrate_observation(&mut self, r: &mut Value, n: usize, cat: &str) {
        let performer = match self.h.below(4) {
            1 => Some(self.pick(Pool::Practitioner)),
            2 => Some(self.pick(Pool::PractitionerRole)),
            3 => Some(self.pick(Pool::Organization)),
            _ => None,
        };
        if let Some(p) = performer {
            push(r, "performer", json!([p]));
        }
        if cat == "laboratory" && self.h.chance(0.5) {
            let specimen = self.hidden_ref("Specimen", "hspec", 1);
            push(r, "specimen", specimen);
        }
        if n == 1 && self.plan.obs_members {
            let members = json!([
                self.hidden_ref("Observation", "hobs", 5),
                self.hidden_ref("Observation", "obs", 2)
            ]);
            push(r, "hasMember", members);
        }
    }

    pub(super) fn hydrate_report(&mut self, r: &mut Value, n: usize) {
        let mut extra = Vec::new();
        if n == 1 {
            extra.push(self.hidden_ref("Observation", "hobs", 1));
        }
        if n == 2 && self.plan.dr2_hidden {
            extra.push(self.hidden_ref("Observation", "hobs", 6));
        }
        if n == 2 && self.plan.dr2_missing {
            extra.push(self.hidden_ref("Observation", "hobs", 99));
        }
        if let Some(results) = r["result"].as_array_mut() {
            results.extend(extra);
        }
        if n == 1 {
            let specimen = self.hidden_ref("Specimen", "hspec", 1);
            push(r, "specimen", json!([specimen]));
        } else if n == 2 && self.plan.searchable_specimen {
            let specimen = self.hidden_ref("Specimen", "spec", 1);
            push(r, "specimen", json!([specimen]));
        }
        if self.h.chance(0.5) {
            let role = self.pick(Pool::PractitionerRole);
            push(r, "resultsInterpreter", json!([role]));
        }
    }

    pub(super) fn hydrate_document(&mut self, r: &mut Value) {
        if self.h.chance(0.5) {
            let role = self.pick(Pool::PractitionerRole);
            push(r, "authenticator", role);
        }
        let custodian = self.pick(Pool::Organization);
        push(r, "custodian", custodian);
    }

    pub(super) fn hydrate_immunization(&mut self, r: &mut Value) {
        let manufacturer = self.pick(Pool::Organization);
        push(r, "manufacturer", manufacturer);
        if self.i.is_multiple_of(2) {
            let role = self.pick(Pool::PractitionerRole);
            if let Some(performers) = r["performer"].as_array_mut() {
                performers.push(json!({ "actor": role }));
            }
        }
        if self.h.chance(0.3) {
            let authority = self.pick(Pool::Organization);
            push(
                r,
                "protocolApplied",
                json!([{ "authority": authority, "doseNumberPositiveInt": 1 }]),
            );
        }
    }

    pub(super) fn hydrate_med_request(&mut self, r: &mut Value, n: usize) {
        if n == 1 && self.i % 10 == 5 {
            let (code, display) = vocab::MEDICATIONS[self.i / 10 % vocab::MEDICATIONS.len()];
            if let Some(map) = r.as_object_mut() {
                // `contained` belongs near the top; the reference points into it.
                let mut rebuilt = serde_json::Map::new();
                for (key, value) in std::mem::take(map) {
                    let is_meta = key == "meta";
                    rebuilt.insert(key, value);
                    if is_meta {
                        rebuilt.insert(
                            "contained".into(),
                            json!([{
                                "resourceType": "Medication",
                                "id": "med1",
                                "code": {
                                    "coding": [{
                                        "system": vocab::RXNORM,
                                        "code": code,
                                        "display": display
                                    }],
                                    "text": display
                                }
                            }]),
                        );
                    }
                }
                *map = rebuilt;
            }
            r["medicationReference"] = json!({ "reference": "#med1" });
        } else if n == 1 && self.i % 25 == 4 {
            r["medicationReference"] = json!({ "reference": shared::GONE_MEDICATION });
        }
        if self.h.chance(0.4) {
            let role = self.pick(Pool::PractitionerRole);
            push(r, "recorder", role);
        }
        if self.h.chance(0.2) {
            let performer = self.pick(Pool::Practitioner);
            push(r, "performer", performer);
        }
        if self.h.chance(0.3) {
            let pharmacy = self.pick(Pool::Organization);
            push(r, "dispenseRequest", json!({ "performer": pharmacy }));
        }
    }

    pub(super) fn hydrate_med_dispense(&mut self, r: &mut Value, n: usize) {
        if n == 1 && self.plan.episode {
            let episode = self.hidden_ref("EpisodeOfCare", "heoc", 1);
            push(r, "context", episode);
        }
        let pharmacist = self.pick(Pool::Practitioner);
        push(r, "performer", json!([{ "actor": pharmacist }]));
        let location = self.pick(Pool::Location);
        push(r, "location", location);
        if self.h.chance(0.3) {
            let receiver = self.pick(Pool::Practitioner);
            push(r, "receiver", json!([receiver]));
        }
    }

    pub(super) fn hydrate_procedure(&mut self, r: &mut Value, n: usize) {
        if n == 1 && self.i % 4 == 1 {
            push(
                r,
                "recorder",
                json!({ "reference": shared::GONE_PRACTITIONER }),
            );
        }
        if self.h.chance(0.5) {
            let org = self.pick(Pool::Organization);
            if let Some(performer) = r["performer"].get_mut(0) {
                push(performer, "onBehalfOf", org);
            }
        }
    }

    pub(super) fn hydrate_service_request(&mut self, r: &mut Value, n: usize) {
        let role = self.pick(Pool::PractitionerRole);
        push(r, "performer", json!([role]));
        if self.h.chance(0.5) {
            let location = self.pick(Pool::Location);
            push(r, "locationReference", json!([location]));
        }
        if n == 1 {
            let mut specimens = vec![self.hidden_ref("Specimen", "hspec", 2)];
            if self.plan.searchable_specimen {
                specimens.push(self.hidden_ref("Specimen", "spec", 1));
            }
            push(r, "specimen", json!(specimens));
        }
    }

    /// A moment during one of the encounters, drawn from the hydration stream.
    fn hidden_moment(&mut self) -> i64 {
        let k = self.h.below(self.encounters.len() as u64) as usize;
        let e = &self.encounters[k];
        let (start, end) = (e.start, e.end.max(e.start));
        self.h.range_i64(start, end)
    }

    /// The readable-only resources of this patient. Called last: it also draws from the
    /// main stream (timestamps), which nothing uses afterwards.
    pub(super) fn hidden(&mut self) -> Vec<Value> {
        let plan = self.plan;
        let mut out = Vec::new();
        let t = self.hidden_moment();
        for (n, code, display, unit, lo, hi) in HIDDEN_OBSERVATIONS {
            let wanted = match n {
                5 => plan.obs_members,
                6 => plan.dr2_hidden,
                _ => true,
            };
            if !wanted {
                continue;
            }
            let issued_at = time::later(&mut self.h, t, 2);
            let effective = self.instant(t);
            let issued = self.instant(issued_at);
            let cat = if n == 5 {
                ("vital-signs", "Vital Signs")
            } else {
                ("laboratory", "Laboratory")
            };
            let mut r = self.base("Observation", "hobs", n, issued_at);
            push(&mut r, "status", json!("final"));
            push(
                &mut r,
                "category",
                category(vocab::OBS_CATEGORY, cat.0, cat.1),
            );
            push(&mut r, "code", coding(vocab::LOINC, &(code, display)));
            push(&mut r, "subject", self.subject.clone());
            push(&mut r, "effectiveDateTime", json!(effective));
            push(&mut r, "issued", json!(issued));
            if !unit.is_empty() {
                let v = lo + self.h.unit() * (hi - lo);
                let value = super::number(&format!("{v:.1}"));
                push(
                    &mut r,
                    "valueQuantity",
                    json!({ "value": value, "unit": unit, "system": vocab::UCUM, "code": unit }),
                );
            }
            let performer = match n {
                1 => Some(self.pick(Pool::Organization)),
                2 => Some(self.pick(Pool::Practitioner)),
                5 | 6 => Some(self.pick(Pool::PractitionerRole)),
                _ => None,
            };
            if let Some(p) = performer {
                push(&mut r, "performer", json!([p]));
            }
            match n {
                1 => push(&mut r, "specimen", self.hidden_ref("Specimen", "hspec", 1)),
                6 => push(&mut r, "specimen", self.hidden_ref("Specimen", "hspec", 2)),
                _ => {}
            }
            // Members: a panel of two, a nested member, an optional cycle back.
            let members: Vec<usize> = match n {
                1 => vec![2, 3],
                3 => vec![4],
                4 if plan.cycle => vec![3],
                5 => vec![2],
                _ => vec![],
            };
            if !members.is_empty() {
                let refs: Vec<Value> = members
                    .into_iter()
                    .map(|m| self.hidden_ref("Observation", "hobs", m))
                    .collect();
                push(&mut r, "hasMember", json!(refs));
            }
            out.push(r);
        }

        // Specimens: blood collected by a practitioner known only through specimens and
        // roles, urine collected by a role.
        let picked = shared::picked("Practitioner");
        for (n, kind) in [(1, vocab::SPECIMENS[0]), (2, vocab::SPECIMENS[1])] {
            let received_at = time::later(&mut self.h, t, 1);
            let collected = self.instant(t);
            let received = self.instant(received_at);
            let collector = if n == 1 {
                reference(
                    "Practitioner",
                    &format!("prac-{:02}", picked + 1 + self.i % 4),
                )
            } else {
                self.pick(Pool::PractitionerRole)
            };
            let mut r = self.base("Specimen", "hspec", n, received_at);
            push(&mut r, "status", json!("available"));
            push(&mut r, "type", coding(vocab::SNOMED, &kind));
            push(&mut r, "subject", self.subject.clone());
            push(&mut r, "receivedTime", json!(received));
            push(
                &mut r,
                "collection",
                json!({ "collector": collector, "collectedDateTime": collected }),
            );
            out.push(r);
        }

        if plan.episode {
            let start = self.instant(t);
            let org = self.pick(Pool::Organization);
            let manager = if self.i.is_multiple_of(2) {
                self.pick(Pool::PractitionerRole)
            } else {
                self.pick(Pool::Practitioner)
            };
            let mut r = self.base("EpisodeOfCare", "heoc", 1, t);
            push(&mut r, "status", json!("active"));
            push(
                &mut r,
                "type",
                json!([{ "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/episodeofcare-type",
                    "code": "pac",
                    "display": "Post Acute Care"
                }] }]),
            );
            push(&mut r, "patient", self.subject.clone());
            push(&mut r, "managingOrganization", org);
            push(&mut r, "period", json!({ "start": start }));
            push(&mut r, "careManager", manager);
            out.push(r);
        }
        out
    }
}
