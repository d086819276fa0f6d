//! Code tables and names the generators draw from (LOINC, SNOMED CT, RxNorm, CVX, people).

pub const LOINC: &str = "http://loinc.org";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
pub const CVX: &str = "http://hl7.org/fhir/sid/cvx";
pub const UCUM: &str = "http://unitsofmeasure.org";
pub const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

pub const GIVEN_NAMES: [&str; 24] = [
    "José",
    "Zoë",
    "Łukasz",
    "Søren",
    "François",
    "Ana",
    "Björn",
    "Chloé",
    "Mei",
    "Øyvind",
    "Renée",
    "Thomas",
    "Mary",
    "James",
    "Aisha",
    "Noah",
    "Olivia",
    "Liam",
    "Hana",
    "Dmitri",
    "Fatma",
    "Ines",
    "Jürgen",
    "Ngọc",
];

pub const FAMILY_NAMES: [&str; 24] = [
    "Müller",
    "García",
    "Nguyễn",
    "O'Brien",
    "Çelik",
    "Núñez",
    "Smith",
    "Johnson",
    "Kowalski",
    "Jensen",
    "Dubois",
    "Åström",
    "Williams",
    "Brown",
    "Okafor",
    "Tanaka",
    "Rossi",
    "Schäfer",
    "Петров",
    "Lee",
    "Martínez",
    "Davis",
    "Wilson",
    "Ødegård",
];

pub const CITIES: [(&str, &str, &str); 6] = [
    ("Boston", "MA", "02115"),
    ("Madison", "WI", "53703"),
    ("Verona", "WI", "53593"),
    ("San José", "CA", "95112"),
    ("Saint Paul", "MN", "55101"),
    ("Albuquerque", "NM", "87101"),
];

/// (code, display) pairs.
pub type Code = (&'static str, &'static str);

pub const CONDITIONS: [Code; 12] = [
    ("44054006", "Diabetes mellitus type 2"),
    ("38341003", "Hypertensive disorder"),
    ("195967001", "Asthma"),
    ("13645005", "Chronic obstructive lung disease"),
    ("35489007", "Depressive disorder"),
    ("197480006", "Anxiety disorder"),
    ("55822004", "Hyperlipidemia"),
    ("40055000", "Chronic sinusitis"),
    ("69896004", "Rheumatoid arthritis"),
    ("399211009", "History of myocardial infarction"),
    ("73211009", "Diabetes mellitus"),
    ("26929004", "Alzheimer's disease"),
];

pub const ALLERGIES: [(&str, &str, &str); 6] = [
    ("91936005", "Allergy to penicillin", "medication"),
    ("300913006", "Shellfish allergy", "food"),
    ("91935009", "Allergy to peanuts", "food"),
    ("418689008", "Allergy to grass pollen", "environment"),
    ("294505008", "Allergy to sulfonamide", "medication"),
    ("232347008", "Dander (animal) allergy", "environment"),
];

pub const PROCEDURES: [Code; 8] = [
    ("80146002", "Appendectomy"),
    ("73761001", "Colonoscopy"),
    ("274804006", "Evaluation of patient"),
    ("710824005", "Assessment of health and social care needs"),
    ("430193006", "Medication reconciliation"),
    ("173160006", "Diagnostic fiberoptic bronchoscopy"),
    ("18286008", "Catheter ablation of tissue of heart"),
    ("387685009", "Extraction of wisdom tooth"),
];

pub const SERVICE_REQUESTS: [Code; 6] = [
    ("24623002", "Screening mammography"),
    ("73761001", "Colonoscopy"),
    ("183460006", "Referral to cardiology service"),
    ("306206005", "Referral to physiotherapy service"),
    ("168537006", "Plain chest X-ray"),
    ("26604007", "Complete blood count"),
];

pub const VACCINES: [Code; 6] = [
    ("140", "Influenza, seasonal, injectable, preservative free"),
    ("208", "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose"),
    ("115", "Tdap"),
    ("133", "Pneumococcal conjugate PCV 13"),
    ("43", "Hepatitis B, adult dosage"),
    ("187", "Zoster vaccine recombinant"),
];

pub const DEVICES: [Code; 4] = [
    ("14106009", "Cardiac pacemaker"),
    ("468063009", "Coated femoral stem prosthesis"),
    ("337414009", "Blood glucose meter"),
    ("702172008", "Home insulin infusion pump"),
];

pub const SPECIMENS: [Code; 3] = [
    ("119297000", "Blood specimen"),
    ("122575003", "Urine specimen"),
    ("258529004", "Throat swab"),
];

pub const MEDICATIONS: [Code; 10] = [
    ("860975", "Metformin hydrochloride 500 MG Oral Tablet"),
    ("314076", "Lisinopril 10 MG Oral Tablet"),
    ("617312", "Atorvastatin 10 MG Oral Tablet"),
    ("197361", "Amlodipine 5 MG Oral Tablet"),
    ("245314", "Albuterol 0.09 MG/ACTUAT Inhalant Solution"),
    ("310965", "Ibuprofen 200 MG Oral Tablet"),
    ("312961", "Simvastatin 20 MG Oral Tablet"),
    ("198211", "Simvastatin 40 MG Oral Tablet"),
    ("313782", "Acetaminophen 325 MG Oral Tablet"),
    ("1049621", "Oxycodone hydrochloride 5 MG Oral Tablet"),
];

/// (LOINC code, display, unit, decimals, low, high). Values are spelled with exactly
/// `decimals` digits after the point, so trailing zeros such as `1.50` and `120.0` appear.
pub type Measure = (&'static str, &'static str, &'static str, u32, f64, f64);

pub const VITALS: [Measure; 6] = [
    ("8867-4", "Heart rate", "/min", 0, 52.0, 110.0),
    ("8310-5", "Body temperature", "Cel", 1, 36.0, 38.5),
    ("29463-7", "Body weight", "kg", 2, 45.0, 130.0),
    ("8302-2", "Body height", "cm", 1, 150.0, 195.0),
    ("9279-1", "Respiratory rate", "/min", 0, 10.0, 24.0),
    ("39156-5", "Body mass index", "kg/m2", 2, 18.0, 38.0),
];

pub const LABS: [Measure; 8] = [
    (
        "2339-0",
        "Glucose [Mass/volume] in Blood",
        "mg/dL",
        1,
        70.0,
        190.0,
    ),
    (
        "718-7",
        "Hemoglobin [Mass/volume] in Blood",
        "g/dL",
        2,
        10.5,
        17.5,
    ),
    (
        "2160-0",
        "Creatinine [Mass/volume] in Serum or Plasma",
        "mg/dL",
        2,
        0.5,
        1.6,
    ),
    (
        "2093-3",
        "Cholesterol [Mass/volume] in Serum or Plasma",
        "mg/dL",
        1,
        120.0,
        280.0,
    ),
    (
        "4548-4",
        "Hemoglobin A1c/Hemoglobin.total in Blood",
        "%",
        2,
        4.8,
        9.5,
    ),
    (
        "6690-2",
        "Leukocytes [#/volume] in Blood",
        "10*3/uL",
        3,
        3.5,
        11.0,
    ),
    (
        "2823-3",
        "Potassium [Moles/volume] in Serum or Plasma",
        "mmol/L",
        2,
        3.4,
        5.3,
    ),
    (
        "2951-2",
        "Sodium [Moles/volume] in Serum or Plasma",
        "mmol/L",
        1,
        134.0,
        146.0,
    ),
];

pub const ACTIVITY: [Measure; 3] = [
    (
        "41950-7",
        "Number of steps in 24 hour Measured",
        "/(24.h)",
        0,
        1500.0,
        14000.0,
    ),
    ("55411-3", "Exercise duration", "min", 1, 5.0, 90.0),
    ("68516-4", "Sleep duration", "h", 2, 4.0, 10.0),
];

pub const LAB_PANELS: [Code; 4] = [
    ("58410-2", "CBC panel - Blood by Automated count"),
    (
        "24323-8",
        "Comprehensive metabolic 2000 panel - Serum or Plasma",
    ),
    ("57698-3", "Lipid panel with direct LDL - Serum or Plasma"),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
];

pub const NOTE_TYPES: [Code; 5] = [
    ("11506-3", "Progress note"),
    ("18842-5", "Discharge summary"),
    ("34117-2", "History and physical note"),
    ("11488-4", "Consult note"),
    ("28570-0", "Procedure note"),
];

pub const SPECIALTIES: [&str; 8] = [
    "Family Medicine",
    "Cardiology",
    "Endocrinology",
    "Pulmonology",
    "Psychiatry",
    "Orthopedics",
    "Neurology",
    "Oncology",
];

pub const ORG_NAMES: [&str; 10] = [
    "Fake General Hospital",
    "Lakeside Clinic",
    "Hôpital Saint-Éloi",
    "Northside Family Practice",
    "Riverside Medical Group",
    "Valley Imaging Center",
    "Sunrise Pediatrics",
    "Central Lab Services",
    "Mountain View Health",
    "Bay Area Cardiology",
];
