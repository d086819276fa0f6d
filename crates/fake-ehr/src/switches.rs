//! Misbehaviours of real EHRs that a test turns on, and off again while the server runs
//! ("fix the server, run the same command"): searches of some types that ignore the
//! `patient` parameter (every patient's resources come back, as from a server that drops a
//! parameter it does not support), one search whose answer is cut off in the middle of
//! its JSON on every attempt, `_id` and `identifier` searches with several values that are
//! refused or ignored (servers without OR lists), and `_id` searches that need a patient.
//! Decides only *whether* a request misbehaves; `search` and `router` make the answer.

use std::sync::RwLock;

/// The searches of one patient for one type (every page, every attempt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruncateSearch {
    /// e.g. `Condition`.
    pub resource_type: String,
    /// The patient id searched, e.g. `pat-000003`.
    pub patient: String,
}

/// How the server treats one search parameter given several values (`_id=a,b,c`,
/// `identifier=sys|1,sys|2`): FHIR's OR list, or what servers without it do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ValueLists {
    /// Any of the values matches (FHIR search, comma = OR).
    #[default]
    Accept,
    /// 400, as a server that allows one value only.
    Refuse,
    /// Answered as if the parameter were absent, as a server that drops what it does not
    /// understand (one value still works).
    Ignore,
    /// Only the first value is used, as a server that reads one value and drops the rest:
    /// its answers look plausible, which is what makes it dangerous.
    First,
}

impl ValueLists {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "accept" => Ok(ValueLists::Accept),
            "refuse" => Ok(ValueLists::Refuse),
            "ignore" => Ok(ValueLists::Ignore),
            "first" => Ok(ValueLists::First),
            other => Err(format!(
                "{other:?} is not one of accept, refuse, ignore, first"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ValueLists::Accept => "accept",
            ValueLists::Refuse => "refuse",
            ValueLists::Ignore => "ignore",
            ValueLists::First => "first",
        }
    }
}

#[derive(Default)]
pub struct Switches {
    state: RwLock<State>,
}

#[derive(Clone, Default)]
struct State {
    ignore_patient: Vec<String>,
    truncate: Option<TruncateSearch>,
    id_lists: ValueLists,
    identifier_lists: ValueLists,
    patient_lists: ValueLists,
    id_needs_patient: Vec<String>,
}

impl Switches {
    pub fn new(config: &crate::config::Config) -> Self {
        Switches {
            state: RwLock::new(State {
                ignore_patient: config.ignore_patient_param.clone(),
                truncate: config.truncate.clone(),
                id_lists: config.id_lists,
                identifier_lists: config.identifier_lists,
                patient_lists: config.patient_lists,
                id_needs_patient: config.id_search_needs_patient.clone(),
            }),
        }
    }

    /// How `_id` searches with several values are answered.
    pub fn id_lists(&self) -> ValueLists {
        self.read().id_lists
    }

    /// How `identifier` searches with several values are answered.
    pub fn identifier_lists(&self) -> ValueLists {
        self.read().identifier_lists
    }

    /// How `patient` / `subject` searches with several values are answered.
    pub fn patient_lists(&self) -> ValueLists {
        self.read().patient_lists
    }

    pub fn set_value_lists(
        &self,
        id: Option<ValueLists>,
        identifier: Option<ValueLists>,
        patient: Option<ValueLists>,
    ) {
        let mut state = self.write();
        if let Some(patient) = patient {
            state.patient_lists = patient;
        }
        if let Some(id) = id {
            state.id_lists = id;
        }
        if let Some(identifier) = identifier {
            state.identifier_lists = identifier;
        }
    }

    /// Whether `_id` searches of `ty` are refused unless they name a patient.
    pub fn id_needs_patient(&self, ty: &str) -> bool {
        self.read().id_needs_patient.iter().any(|t| t == ty)
    }

    pub fn set_id_needs_patient(&self, types: Vec<String>) {
        self.write().id_needs_patient = types;
    }

    pub fn id_needs_patient_types(&self) -> Vec<String> {
        self.read().id_needs_patient.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // Every update replaces a whole field, so a panicked writer leaves a usable state.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether searches of `ty` ignore `patient=` / `subject=`.
    pub fn ignores_patient(&self, ty: &str) -> bool {
        self.read().ignore_patient.iter().any(|t| t == ty)
    }

    pub fn set_ignore_patient(&self, types: Vec<String>) {
        self.write().ignore_patient = types;
    }

    pub fn ignore_patient(&self) -> Vec<String> {
        self.read().ignore_patient.clone()
    }

    pub fn truncate(&self) -> Option<TruncateSearch> {
        self.read().truncate.clone()
    }

    pub fn set_truncate(&self, truncate: Option<TruncateSearch>) {
        self.write().truncate = truncate;
    }

    /// Whether the search of `ty` with these decoded query pairs is the one to cut off:
    /// its `patient` (or `subject`) names the patient, as an id or a `Patient/` reference.
    pub fn truncates(&self, ty: &str, pairs: &[(String, String)]) -> bool {
        let state = self.read();
        let Some(t) = &state.truncate else {
            return false;
        };
        t.resource_type == ty
            && pairs
                .iter()
                .filter(|(k, _)| k == "patient" || k == "subject")
                .flat_map(|(_, v)| v.split(','))
                .any(|v| v.rsplit('/').next() == Some(t.patient.as_str()))
    }
}

/// The first half of `body`: JSON that ends in the middle (a complete HTTP answer whose
/// content is unusable, as when a proxy or the EHR cuts a page short).
pub fn cut(body: &str) -> String {
    let mut end = body.len() / 2;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn truncates_only_the_named_search() {
        let s = Switches::default();
        let condition_3 = pairs(&[("patient", "pat-000003")]);
        assert!(!s.truncates("Condition", &condition_3));
        s.set_truncate(Some(TruncateSearch {
            resource_type: "Condition".into(),
            patient: "pat-000003".into(),
        }));
        assert!(s.truncates("Condition", &condition_3));
        assert!(s.truncates(
            "Condition",
            &pairs(&[("subject", "Patient/pat-000003"), ("_offset", "10")])
        ));
        assert!(!s.truncates("Condition", &pairs(&[("patient", "pat-000013")])));
        assert!(!s.truncates("Observation", &condition_3));
        s.set_truncate(None);
        assert!(!s.truncates("Condition", &condition_3));
    }

    #[test]
    fn cut_leaves_half_on_a_character_boundary() {
        assert_eq!(cut("{\"a\":1}"), "{\"a");
        assert_eq!(cut("ééé"), "é");
        assert!(serde_json::from_str::<serde_json::Value>(&cut("{\"a\":[1,2,3]}")).is_err());
    }
}
