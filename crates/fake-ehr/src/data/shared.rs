//! The shared pools every patient references: Practitioner, PractitionerRole, Organization,
//! Location and Medication, each a fixed-size list with ids like `prac-07`.

use super::rng::Rng;
use super::time;
use super::vocab;
use serde_json::{Value, json};

const DOMAIN: u64 = 0x5348_4152_4544;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    Practitioner,
    PractitionerRole,
    Organization,
    Location,
    Medication,
}

/// `(resource type, id prefix, size)` of every pool.
pub const SHARED_POOLS: [(&str, &str, usize); 5] = [
    ("Practitioner", "prac", 40),
    ("PractitionerRole", "role", 20),
    ("Organization", "org", 10),
    ("Location", "loc", 20),
    ("Medication", "med", 30),
];

impl Pool {
    const ALL: [Pool; 5] = [
        Pool::Practitioner,
        Pool::PractitionerRole,
        Pool::Organization,
        Pool::Location,
        Pool::Medication,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn info(self) -> (&'static str, &'static str, usize) {
        SHARED_POOLS[self.index()]
    }

    fn of_type(ty: &str) -> Option<Pool> {
        Self::ALL.into_iter().find(|p| p.info().0 == ty)
    }
}

/// Id of member `k` (1-based) of a pool.
fn id(pool: Pool, k: usize) -> String {
    format!("{}-{k:02}", pool.info().1)
}

/// `{"reference": "Practitioner/prac-07"}` for a random member of `pool`.
pub fn pick_ref(rng: &mut Rng, pool: Pool) -> Value {
    let (ty, _, size) = pool.info();
    let k = rng.range(1, size);
    json!({ "reference": format!("{ty}/{}", id(pool, k)) })
}

/// Every member of the pool of type `ty` (empty for other types).
pub fn shared_pool(seed: u64, ty: &str) -> Vec<Value> {
    let Some(pool) = Pool::of_type(ty) else {
        return Vec::new();
    };
    (1..=pool.info().2).map(|k| member(seed, pool, k)).collect()
}

/// The pool member of type `ty` with id `id`, if there is one.
pub fn shared_resource(seed: u64, ty: &str, id: &str) -> Option<Value> {
    let pool = Pool::of_type(ty)?;
    let (_, prefix, size) = pool.info();
    let digits = id.strip_prefix(prefix)?.strip_prefix('-')?;
    if digits.len() != 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let k: usize = digits.parse().ok()?;
    (1..=size).contains(&k).then(|| member(seed, pool, k))
}

fn member(seed: u64, pool: Pool, k: usize) -> Value {
    let mut rng = Rng::new(seed, DOMAIN + pool.index() as u64, k as u64);
    let updated = time::between(&mut rng, time::EARLIEST, time::LATEST);
    let meta = json!({ "lastUpdated": time::random_instant(&mut rng, updated) });
    let id = id(pool, k);
    match pool {
        Pool::Practitioner => {
            let given = *rng.pick(&vocab::GIVEN_NAMES);
            let family = *rng.pick(&vocab::FAMILY_NAMES);
            json!({
                "resourceType": "Practitioner",
                "id": id,
                "meta": meta,
                "identifier": [{
                    "system": "http://hl7.org/fhir/sid/us-npi",
                    "value": format!("{}", 1_000_000_000 + rng.below(999_999_999))
                }],
                "active": true,
                "name": [{
                    "use": "official",
                    "text": format!("{given} {family}, MD"),
                    "family": family,
                    "given": [given],
                    "suffix": ["MD"]
                }],
                "gender": *rng.pick(&["female", "male"])
            })
        }
        Pool::PractitionerRole => {
            let practitioner = pick_ref(&mut rng, Pool::Practitioner);
            let organization = pick_ref(&mut rng, Pool::Organization);
            let location = pick_ref(&mut rng, Pool::Location);
            let specialty = *rng.pick(&vocab::SPECIALTIES);
            json!({
                "resourceType": "PractitionerRole",
                "id": id,
                "meta": meta,
                "active": true,
                "practitioner": practitioner,
                "organization": organization,
                "specialty": [{ "text": specialty }],
                "location": [location]
            })
        }
        Pool::Organization => json!({
            "resourceType": "Organization",
            "id": id,
            "meta": meta,
            "identifier": [{
                "system": "urn:fake-ehr:organization",
                "value": format!("ORG{k:03}")
            }],
            "active": true,
            "name": vocab::ORG_NAMES[(k - 1) % vocab::ORG_NAMES.len()]
        }),
        Pool::Location => {
            let (city, state, zip) = *rng.pick(&vocab::CITIES);
            let org = pick_ref(&mut rng, Pool::Organization);
            json!({
                "resourceType": "Location",
                "id": id,
                "meta": meta,
                "status": "active",
                "name": format!("{city} Clinic {k}"),
                "address": { "city": city, "state": state, "postalCode": zip, "country": "US" },
                "managingOrganization": org
            })
        }
        Pool::Medication => {
            let (code, display) = vocab::MEDICATIONS[(k - 1) % vocab::MEDICATIONS.len()];
            json!({
                "resourceType": "Medication",
                "id": id,
                "meta": meta,
                "code": {
                    "coding": [{ "system": vocab::RXNORM, "code": code, "display": display }],
                    "text": display
                },
                "status": "active"
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_resolve() {
        for (ty, prefix, size) in SHARED_POOLS {
            let all = shared_pool(1, ty);
            assert_eq!(all.len(), size);
            let last = format!("{prefix}-{size:02}");
            assert_eq!(shared_resource(1, ty, &last), Some(all[size - 1].clone()));
            assert_eq!(shared_resource(1, ty, &format!("{prefix}-00")), None);
            assert_eq!(
                shared_resource(1, ty, &format!("{prefix}-{:02}", size + 1)),
                None
            );
        }
    }
}
