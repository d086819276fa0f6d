//! The shared pools every patient references: Practitioner, PractitionerRole, Organization,
//! Location and Medication, each a fixed-size list with ids like `prac-07`. Patients pick
//! only from the first members of each pool ([`picked`]); the rest are reachable only through
//! other shared resources, so hydration has chains to follow: roles name practitioners and
//! locations, `Location.partOf` and `Organization.partOf` climb to a campus and a parent
//! organization, and some roles are referenced by nobody (found only by
//! `PractitionerRole?practitioner=`). A few shared references answer 404 on purpose.

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
    ("PractitionerRole", "role", 30),
    ("Organization", "org", 12),
    ("Location", "loc", 23),
    ("Medication", "med", 30),
];

/// How many members (the first ones) of each pool patients' resources pick from, in
/// [`SHARED_POOLS`] order. Practitioners 37..40 are reached only through roles and
/// specimens, roles 21..30 only by search, `org-11`/`org-12` and `loc-19`..`loc-23` only
/// through other shared resources.
const PICKED: [usize; 5] = [36, 20, 10, 18, 30];

/// A Practitioner nobody has: referenced from many resources, it answers 404.
pub const GONE_PRACTITIONER: &str = "Practitioner/prac-gone-1";
/// A Medication that answers 404.
pub const GONE_MEDICATION: &str = "Medication/med-gone-1";
/// The parent `Organization.partOf` of `org-09`, which answers 404.
pub const GONE_ORGANIZATION: &str = "Organization/org-gone-1";

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

    fn picked(self) -> usize {
        PICKED[self.index()]
    }

    fn of_type(ty: &str) -> Option<Pool> {
        Self::ALL.into_iter().find(|p| p.info().0 == ty)
    }
}

/// Id of member `k` (1-based) of a pool.
fn id(pool: Pool, k: usize) -> String {
    format!("{}-{k:02}", pool.info().1)
}

/// `{"reference": "Practitioner/prac-07"}` for member `k` of `pool`.
pub fn member_ref(pool: Pool, k: usize) -> Value {
    json!({ "reference": format!("{}/{}", pool.info().0, id(pool, k)) })
}

/// `{"reference": "Practitioner/prac-07"}` for a random member of the part of `pool` that
/// patients pick from.
pub fn pick_ref(rng: &mut Rng, pool: Pool) -> Value {
    let k = rng.range(1, pool.picked());
    member_ref(pool, k)
}

/// How many members of the pool of type `ty` patients pick from (0 for other types).
pub fn picked(ty: &str) -> usize {
    Pool::of_type(ty).map_or(0, Pool::picked)
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
            let mut r = json!({
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
            });
            // Licensing boards: the parent organization (only reachable this way or by
            // `partOf`) for every third practitioner.
            if k.is_multiple_of(3) {
                push(
                    &mut r,
                    "qualification",
                    json!([{
                        "code": { "text": "Doctor of Medicine" },
                        "issuer": member_ref(Pool::Organization, 11)
                    }]),
                );
            }
            r
        }
        Pool::PractitionerRole => {
            let picked = Pool::Practitioner.picked();
            let practitioner = match k {
                3 => json!({ "reference": GONE_PRACTITIONER }),
                // Practitioners 37..40 are known only through these roles (and specimens).
                5 | 10 | 15 | 20 => member_ref(Pool::Practitioner, picked + k / 5),
                _ => pick_ref(&mut rng, Pool::Practitioner),
            };
            let organization = pick_ref(&mut rng, Pool::Organization);
            let mut locations = vec![pick_ref(&mut rng, Pool::Location)];
            if k.is_multiple_of(4) {
                // loc-19 and loc-20 are known only through roles.
                let extra = Pool::Location.picked() + 1 + usize::from(k.is_multiple_of(8));
                locations.push(member_ref(Pool::Location, extra));
            }
            let specialty = *rng.pick(&vocab::SPECIALTIES);
            json!({
                "resourceType": "PractitionerRole",
                "id": id,
                "meta": meta,
                "active": true,
                "practitioner": practitioner,
                "organization": organization,
                "specialty": [{ "text": specialty }],
                "location": locations
            })
        }
        Pool::Organization => {
            let name = match k {
                11 => "Regional Health Alliance",
                12 => "National Health Holdings",
                _ => vocab::ORG_NAMES[(k - 1) % vocab::ORG_NAMES.len()],
            };
            let mut r = json!({
                "resourceType": "Organization",
                "id": id,
                "meta": meta,
                "identifier": [{
                    "system": "urn:fake-ehr:organization",
                    "value": format!("ORG{k:03}")
                }],
                "active": true,
                "name": name
            });
            // A chain: even organizations belong to org-11, which belongs to org-12.
            let parent = match k {
                9 => Some(json!({ "reference": GONE_ORGANIZATION })),
                11 => Some(member_ref(Pool::Organization, 12)),
                12 => None,
                _ if k.is_multiple_of(2) => Some(member_ref(Pool::Organization, 11)),
                _ => None,
            };
            if let Some(parent) = parent {
                push(&mut r, "partOf", parent);
            }
            r
        }
        Pool::Location => {
            let (city, state, zip) = *rng.pick(&vocab::CITIES);
            let picked_org = pick_ref(&mut rng, Pool::Organization);
            // Rooms (1..20) are part of a building (21, 22), part of the campus (23).
            let (name, parent, org) = match k {
                21 | 22 => (
                    format!("{city} Building {}", k - 20),
                    Some(member_ref(Pool::Location, 23)),
                    member_ref(Pool::Organization, 11),
                ),
                23 => (
                    format!("{city} Campus"),
                    None,
                    member_ref(Pool::Organization, 12),
                ),
                _ => (
                    format!("{city} Clinic {k}"),
                    Some(member_ref(Pool::Location, 21 + (k + 1) % 2)),
                    picked_org,
                ),
            };
            let mut r = json!({
                "resourceType": "Location",
                "id": id,
                "meta": meta,
                "status": "active",
                "name": name,
                "address": { "city": city, "state": state, "postalCode": zip, "country": "US" },
                "managingOrganization": org
            });
            if let Some(parent) = parent {
                push(&mut r, "partOf", parent);
            }
            r
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

/// Inserts `key: value` at the end of a JSON object.
fn push(resource: &mut Value, key: &str, value: Value) {
    if let Some(map) = resource.as_object_mut() {
        map.insert(key.to_string(), value);
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
