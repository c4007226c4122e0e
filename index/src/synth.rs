//! Synthetic, realistic FHIR R4 patients for demos, tests and benchmarks, deterministic from a
//! seed.
//!
//! [`patient`]`(seed, i, opts)` builds patient `i`'s Bundle (type `collection`) from a ChaCha20
//! stream keyed by `seed` and numbered `i`, so a patient depends only on `(seed, i)` and the year
//! window: any range of patients can be generated alone, in any order, in parallel.
//! [`patients`] yields patients `0..opts.patients` lazily.
//!
//! # What a patient holds
//!
//! One `Patient` (gender, birth date giving an age of 0 to 95 at the end of the window, skewed
//! to adults; an invented name and record number), then their `Encounter`s, `Condition`s,
//! `Observation`s, `MedicationRequest`s, `Procedure`s and `DiagnosticReport`s, each group in
//! chronological order, each resource referencing the patient with `subject.reference =
//! "urn:uuid:<patient>"` and its encounter with `encounter.reference`; every entry's `fullUrl` is
//! `urn:uuid:<id>` with the resource's `id`, a version-4 UUID drawn from the stream.
//!
//! - **Conditions**: 56 ICD-10-CM codes (see [`icd10_codes`]) with their official titles (and the SNOMED CT
//!   concept where one is well established): chronic ones (E11.9, I10, E78.5, N18.30, J45.909, ...)
//!   with a prevalence that rises with age, differs by sex where it does (C50.911 only for women,
//!   C61 only for men, M81.0 mostly women) and is raised by related conditions (obesity → type 2
//!   diabetes → chronic kidney disease, smoking → COPD and lung cancer); acute episodes (J02.0,
//!   J18.9, N39.0, U07.1 from March 2020, I21.4, ...) with a yearly incidence by age.
//!   A chronic condition that began before the window is recorded at the first visit, with its
//!   onset as known (a year, a month or a day, possibly before the window).
//! - **Visits**: yearly check-ups (not every year), a visit when a condition is diagnosed in the
//!   window, follow-ups of chronic conditions, and ambulatory, emergency or inpatient encounters
//!   for acute episodes; at least one visit per patient.
//! - **Observations** (LOINC, UCUM units, all effective within the window): height, weight, BMI,
//!   blood pressure (panel 85354-9 with components 8480-6 / 8462-4), heart rate, temperature,
//!   smoking status, HbA1c, glucose, lipids, creatinine with eGFR by the MDRD formula, sodium,
//!   potassium, haemoglobin, leukocytes, TSH, PHQ-9. Values follow the patient: HbA1c is 4.5–5.6 %
//!   normally, 5.7–6.4 % in prediabetes, 6.5–12.5 % (mostly 7–11) in diabetes and lower once
//!   treated; glucose follows HbA1c; eGFR is 30–59 in stage 3 kidney disease; LDL is high in
//!   hyperlipidaemia and falls on a statin; blood pressure rises with age, hypertension and
//!   obesity.
//! - **Medication requests** (RxNorm) tied to their condition by `reasonCode` and
//!   `reasonReference` (metformin 860975 and insulin glargine 261551 for diabetes, lisinopril
//!   314076, amlodipine 197361, atorvastatin 617312, albuterol 745679, sertraline 312940,
//!   omeprazole 198053, ...), renewed at later visits.
//! - **Procedures** (SNOMED CT): screening (mammography, colonoscopy, depression screening),
//!   tests (spirometry, ECG, echocardiography, throat culture, chest X-ray) and operations
//!   (appendectomy, coronary stent, knee replacement, lumpectomy).
//! - **Diagnostic reports** (LOINC panels: HbA1c, lipid panel, basic metabolic panel, CBC) listing
//!   their observations, often with a conclusion. Free text appears in `note` and `conclusion`
//!   now and then ("Patient reports improved glycaemic control on metformin.").
//!
//! Everything passes [`crate::keywords::extract`]. The data is invented: no real person, and the
//! prevalences are rough figures, fit for demos and benchmarks, not for epidemiology.
//!
//! # Determinism
//!
//! Every draw comes from the ChaCha20 stream through this module's own samplers (no `rand`
//! distribution whose algorithm may change between versions), values are rounded to the
//! precision they are reported in, and the JSON has no maps with random order: the same
//! `(seed, i, window)` gives the same bytes. Options out of range never panic: [`patient`]
//! clamps the window (see [`SynthOptions::validate`] for the checked form).

use std::collections::BTreeMap;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};

/// The earliest year a window may start.
pub const YEAR_MIN: i32 = 1900;
/// The latest year a window may end.
pub const YEAR_MAX: i32 = 2999;
/// The most years a window may span (a patient's visits grow with it).
pub const WINDOW_YEARS_MAX: i32 = 50;
/// The oldest age, in completed years at the end of the window.
pub const AGE_MAX: u32 = 95;

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynthOptions {
    /// The seed every patient's stream is keyed by.
    pub seed: u64,
    /// How many patients [`patients`] yields.
    pub patients: usize,
    /// First year of clinical activity (default 2019).
    pub start_year: i32,
    /// Last year of clinical activity, inclusive (default 2025); ages are counted at its end.
    pub end_year: i32,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions { seed: 0, patients: 100, start_year: 2019, end_year: 2025 }
    }
}

impl SynthOptions {
    /// Check the year window: both years in [`YEAR_MIN`]`..=`[`YEAR_MAX`], in order, spanning at
    /// most [`WINDOW_YEARS_MAX`] years. [`patient`] clamps instead of refusing.
    pub fn validate(&self) -> Result<(), SynthError> {
        for year in [self.start_year, self.end_year] {
            if !(YEAR_MIN..=YEAR_MAX).contains(&year) {
                return Err(SynthError::YearOutOfRange { year });
            }
        }
        if self.start_year > self.end_year {
            return Err(SynthError::YearsReversed { start: self.start_year, end: self.end_year });
        }
        let years = self.end_year - self.start_year + 1;
        if years > WINDOW_YEARS_MAX {
            return Err(SynthError::WindowTooLong { start: self.start_year, end: self.end_year, years });
        }
        Ok(())
    }
}

/// Why [`SynthOptions`] were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SynthError {
    /// A year outside [`YEAR_MIN`]`..=`[`YEAR_MAX`].
    #[error("year {year} is outside {YEAR_MIN}..={YEAR_MAX}: give a year in that range")]
    YearOutOfRange {
        /// The year given.
        year: i32,
    },
    /// The start year is after the end year.
    #[error("start year {start} is after end year {end}: give a start year no later than the end year")]
    YearsReversed {
        /// The start year given.
        start: i32,
        /// The end year given.
        end: i32,
    },
    /// The window spans more than [`WINDOW_YEARS_MAX`] years.
    #[error("the years {start} to {end} span {years} years, more than {WINDOW_YEARS_MAX}: give a shorter window")]
    WindowTooLong {
        /// The start year given.
        start: i32,
        /// The end year given.
        end: i32,
        /// How many years that is.
        years: i32,
    },
}

/// One patient's Bundle.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthBundle {
    /// The Patient's `id` (a UUID; its `fullUrl` is `urn:uuid:<patient_id>`).
    pub patient_id: String,
    /// The FHIR R4 Bundle of type `collection`, as JSON.
    pub bundle: Value,
}

impl SynthBundle {
    /// How many entries of each `resourceType` the bundle holds.
    pub fn resource_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        let entries = self.bundle["entry"].as_array().map(Vec::as_slice).unwrap_or_default();
        for entry in entries {
            if let Some(t) = entry["resource"]["resourceType"].as_str() {
                *counts.entry(t.to_owned()).or_insert(0) += 1;
            }
        }
        counts
    }
}

/// Patients `0..opts.patients` of `opts.seed`, generated one at a time as the iterator is
/// advanced; the same as calling [`patient`] for each index.
pub fn patients(opts: &SynthOptions) -> impl Iterator<Item = SynthBundle> {
    let opts = *opts;
    (0..opts.patients as u64).map(move |i| patient(opts.seed, i, &opts))
}

/// Patient `i` of `seed`, with clinical activity in the window of `opts` (its `seed` and
/// `patients` are not read). A window out of range is clamped into it: years into
/// [`YEAR_MIN`]`..=`[`YEAR_MAX`], swapped when reversed, shortened from the start to
/// [`WINDOW_YEARS_MAX`] years.
pub fn patient(seed: u64, i: u64, opts: &SynthOptions) -> SynthBundle {
    let (first, last) = window(opts);
    let mut gen = Gen::new(Draw::new(seed, i), first, last);
    gen.sample_conditions();
    for visit in gen.plan_visits() {
        gen.visit(&visit);
    }
    gen.finish()
}

/// Every ICD-10-CM code the generator can write, with its title, in the order conditions are
/// drawn (risk factors first, acute episodes last).
pub fn icd10_codes() -> impl Iterator<Item = (&'static str, &'static str)> {
    DISEASES.iter().flat_map(|d| d.icd10.iter().map(|(code, title, _)| (*code, *title)))
}

fn window(opts: &SynthOptions) -> (i32, i32) {
    let a = opts.start_year.clamp(YEAR_MIN, YEAR_MAX);
    let b = opts.end_year.clamp(YEAR_MIN, YEAR_MAX);
    let (first, last) = (a.min(b), a.max(b));
    (first.max(last - (WINDOW_YEARS_MAX - 1)), last)
}

// ---------------------------------------------------------------------------------------------
// Randomness: our own samplers over the ChaCha20 stream, so outputs depend only on the stream.

struct Draw {
    rng: ChaCha20Rng,
}

impl Draw {
    fn new(seed: u64, i: u64) -> Draw {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        rng.set_stream(i);
        Draw { rng }
    }

    /// Uniform in [0, 1), 53 bits.
    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (0 when `n` is 0); the bias of the multiply-shift is below 2^-50 here.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.rng.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi` (`lo` when `hi < lo`).
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Approximately normal (Irwin–Hall sum of 12 uniforms): only additions, so the same bits on
    /// every platform, and bounded to ±6 standard deviations.
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let sum: f64 = (0..12).map(|_| self.unit()).sum();
        mean + sd * (sum - 6.0)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An index into `weights`, drawn in proportion to them (the last when all are zero).
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut x = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            if x < u64::from(*w) {
                return i;
            }
            x -= u64::from(*w);
        }
        weights.len().saturating_sub(1)
    }

    /// A version-4 UUID.
    fn uuid(&mut self) -> String {
        let mut b = [0u8; 16];
        self.rng.fill_bytes(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    }
}

// ---------------------------------------------------------------------------------------------
// Calendar: days since 1970-01-01 (proleptic Gregorian), minutes for times (UTC).

const MINUTES_PER_DAY: i64 = 1440;

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let (m, d) = (i64::from(m), i64::from(d));
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn year_start(y: i64) -> i64 {
    days_from_civil(y, 1, 1)
}

fn year_end(y: i64) -> i64 {
    days_from_civil(y, 12, 31)
}

fn date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

fn stamp(minute: i64) -> String {
    let day = minute.div_euclid(MINUTES_PER_DAY);
    let m = minute.rem_euclid(MINUTES_PER_DAY);
    format!("{}T{:02}:{:02}:00Z", date(day), m / 60, m % 60)
}

/// Completed years between two days.
fn age_at(birth: i64, day: i64) -> u32 {
    let (by, bm, bd) = civil_from_days(birth);
    let (y, m, d) = civil_from_days(day);
    let years = y - by - i64::from((m, d) < (bm, bd));
    years.max(0) as u32
}

fn years_between(birth: i64, day: i64) -> f64 {
    (day - birth) as f64 / 365.25
}

fn round(x: f64, decimals: u32) -> f64 {
    let scale = 10f64.powi(decimals as i32);
    (x * scale).round() / scale
}

// ---------------------------------------------------------------------------------------------
// Terminology.

const ICD10CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";
const SNOMED: &str = "http://snomed.info/sct";
const LOINC: &str = "http://loinc.org";
const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
const UCUM: &str = "http://unitsofmeasure.org";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const CONDITION_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
const CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
const REPORT_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";

/// A lab or vital sign: LOINC code, its long common name, UCUM unit, decimals reported.
struct Loinc {
    code: &'static str,
    display: &'static str,
    unit: &'static str,
    decimals: u32,
    category: &'static str,
}

const fn loinc(code: &'static str, display: &'static str, unit: &'static str, decimals: u32) -> Loinc {
    Loinc { code, display, unit, decimals, category: "laboratory" }
}

const fn vital(code: &'static str, display: &'static str, unit: &'static str, decimals: u32) -> Loinc {
    Loinc { code, display, unit, decimals, category: "vital-signs" }
}

const HEIGHT: Loinc = vital("8302-2", "Body height", "cm", 1);
const WEIGHT: Loinc = vital("29463-7", "Body weight", "kg", 1);
const BMI: Loinc = vital("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 1);
const HEART_RATE: Loinc = vital("8867-4", "Heart rate", "/min", 0);
const TEMPERATURE: Loinc = vital("8310-5", "Body temperature", "Cel", 1);
const BP_PANEL: Loinc = vital("85354-9", "Blood pressure panel with all children optional", "mm[Hg]", 0);
const SYSTOLIC: Loinc = vital("8480-6", "Systolic blood pressure", "mm[Hg]", 0);
const DIASTOLIC: Loinc = vital("8462-4", "Diastolic blood pressure", "mm[Hg]", 0);
const HBA1C: Loinc = loinc("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 1);
const GLUCOSE: Loinc = loinc("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 0);
const CHOLESTEROL: Loinc = loinc("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 0);
const HDL: Loinc = loinc("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 0);
const LDL: Loinc = loinc("18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay", "mg/dL", 0);
const TRIGLYCERIDES: Loinc = loinc("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", 0);
const CREATININE: Loinc = loinc("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 2);
const EGFR: Loinc = loinc(
    "33914-3",
    "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma by Creatinine-based formula (MDRD)",
    "mL/min/{1.73_m2}",
    0,
);
const SODIUM: Loinc = loinc("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 0);
const POTASSIUM: Loinc = loinc("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 1);
const HEMOGLOBIN: Loinc = loinc("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 1);
const LEUKOCYTES: Loinc = loinc("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 1);
const TSH: Loinc = loinc("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 2);
const PHQ9: Loinc = Loinc {
    code: "44261-6",
    display: "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
    unit: "{score}",
    decimals: 0,
    category: "survey",
};
const SMOKING_STATUS: (&str, &str) = ("72166-2", "Tobacco smoking status");

/// A SNOMED CT procedure; `minutes` > 0 makes it an operation with a `performedPeriod`.
struct Proc {
    code: &'static str,
    display: &'static str,
    minutes: i64,
}

const fn proc(code: &'static str, display: &'static str) -> Proc {
    Proc { code, display, minutes: 0 }
}

const fn operation(code: &'static str, display: &'static str, minutes: i64) -> Proc {
    Proc { code, display, minutes }
}

const COLONOSCOPY: Proc = proc("73761001", "Colonoscopy (procedure)");
const COLON_BIOPSY: Proc = proc("76164006", "Biopsy of colon (procedure)");
const MAMMOGRAPHY: Proc = proc("71651007", "Mammography (procedure)");
const LUMPECTOMY: Proc = operation("392021009", "Lumpectomy of breast (procedure)", 90);
const PROSTATE_BIOPSY: Proc = proc("65575008", "Biopsy of prostate (procedure)");
const BRONCHOSCOPY: Proc = proc("10847001", "Bronchoscopy (procedure)");
const MED_RECONCILIATION: Proc = proc("430193006", "Medication reconciliation (procedure)");
const DEPRESSION_SCREENING: Proc = proc("171207006", "Depression screening (procedure)");
const NEEDS_ASSESSMENT: Proc = proc("710824005", "Assessment of health and social care needs (procedure)");
const SPIROMETRY: Proc = proc("127783003", "Spirometry (procedure)");
const ECG: Proc = proc("29303009", "Electrocardiographic procedure (procedure)");
const ECHOCARDIOGRAPHY: Proc = proc("40701008", "Echocardiography (procedure)");
const CORONARY_STENT: Proc = operation("36969009", "Placement of stent in coronary artery (procedure)", 75);
const CABG: Proc = operation("232717009", "Coronary artery bypass grafting (procedure)", 240);
const APPENDECTOMY: Proc = operation("80146002", "Appendectomy (procedure)", 60);
const KNEE_REPLACEMENT: Proc = operation("609588000", "Total knee replacement (procedure)", 120);
const THROAT_CULTURE: Proc = proc("117015009", "Throat culture (procedure)");
const CHEST_XRAY: Proc = proc("399208008", "Plain X-ray of chest (procedure)");

/// What a drug changes in the values measured after it is started.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Effect {
    None,
    Glucose,
    Lipids,
    Pressure,
    Mood,
    Thyroid,
}

/// An RxNorm clinical drug.
struct Med {
    code: &'static str,
    display: &'static str,
    text: &'static str,
    dosage: &'static str,
    /// The drug class: a long-term drug is not started twice for one class (one statin).
    class: &'static str,
    /// Taken long term (`active`), else a course (`completed`).
    chronic: bool,
    effect: Effect,
    /// A remark a clinician may add when renewing it.
    renewal_note: &'static str,
}

const METFORMIN: Med = Med {
    code: "860975",
    display: "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet",
    text: "Metformin 500 mg extended-release tablet",
    dosage: "Take one tablet daily with the evening meal",
    class: "biguanide",
    chronic: true,
    effect: Effect::Glucose,
    renewal_note: "Patient reports improved glycaemic control on metformin.",
};
const INSULIN_GLARGINE: Med = Med {
    code: "261551",
    display: "Lantus",
    text: "Insulin glargine 100 units/mL (Lantus)",
    dosage: "Inject 20 units subcutaneously at bedtime; titrate to fasting glucose",
    class: "basal insulin",
    chronic: true,
    effect: Effect::Glucose,
    renewal_note: "Fasting glucose log reviewed; basal insulin dose adjusted.",
};
const LISINOPRIL: Med = Med {
    code: "314076",
    display: "lisinopril 10 MG Oral Tablet",
    text: "Lisinopril 10 mg tablet",
    dosage: "Take one tablet by mouth daily",
    class: "ACE inhibitor",
    chronic: true,
    effect: Effect::Pressure,
    renewal_note: "Blood pressure better controlled on current regimen.",
};
const AMLODIPINE: Med = Med {
    code: "197361",
    display: "amlodipine 5 MG Oral Tablet",
    text: "Amlodipine 5 mg tablet",
    dosage: "Take one tablet by mouth daily",
    class: "calcium channel blocker",
    chronic: true,
    effect: Effect::Pressure,
    renewal_note: "Mild ankle swelling on amlodipine; continue and review.",
};
const HYDROCHLOROTHIAZIDE: Med = Med {
    code: "310798",
    display: "Hydrochlorothiazide 25 MG Oral Tablet",
    text: "Hydrochlorothiazide 25 mg tablet",
    dosage: "Take one tablet by mouth every morning",
    class: "thiazide",
    chronic: true,
    effect: Effect::Pressure,
    renewal_note: "Electrolytes checked on thiazide; within normal limits.",
};
const ATORVASTATIN: Med = Med {
    code: "617312",
    display: "atorvastatin 10 MG Oral Tablet",
    text: "Atorvastatin 10 mg tablet",
    dosage: "Take one tablet by mouth at bedtime",
    class: "statin",
    chronic: true,
    effect: Effect::Lipids,
    renewal_note: "Tolerating statin well; no myalgia reported.",
};
const ATORVASTATIN_HIGH: Med = Med {
    code: "259255",
    display: "atorvastatin 80 MG Oral Tablet",
    text: "Atorvastatin 80 mg tablet (high-intensity statin)",
    dosage: "Take one tablet by mouth daily",
    class: "statin",
    chronic: true,
    effect: Effect::Lipids,
    renewal_note: "High-intensity statin continued for secondary prevention.",
};
const ASPIRIN: Med = Med {
    code: "243670",
    display: "aspirin 81 MG Oral Tablet",
    text: "Low-dose aspirin 81 mg",
    dosage: "Take one tablet by mouth daily",
    class: "antiplatelet",
    chronic: true,
    effect: Effect::None,
    renewal_note: "",
};
const CLOPIDOGREL: Med = Med {
    code: "309362",
    display: "Clopidogrel 75 MG Oral Tablet",
    text: "Clopidogrel 75 mg tablet",
    dosage: "Take one tablet by mouth daily for twelve months",
    class: "P2Y12 inhibitor",
    chronic: true,
    effect: Effect::None,
    renewal_note: "Dual antiplatelet therapy continued; no bleeding reported.",
};
const NITROGLYCERIN: Med = Med {
    code: "705129",
    display: "Nitroglycerin 0.4 MG/ACTUAT Mucosal Spray",
    text: "Glyceryl trinitrate sublingual spray",
    dosage: "One spray under the tongue at onset of chest pain; may repeat after five minutes",
    class: "nitrate",
    chronic: true,
    effect: Effect::None,
    renewal_note: "Rarely needs the nitrate spray.",
};
const WARFARIN: Med = Med {
    code: "855332",
    display: "Warfarin Sodium 5 MG Oral Tablet",
    text: "Warfarin 5 mg tablet",
    dosage: "Take as directed by the anticoagulation clinic; target INR 2 to 3",
    class: "anticoagulant",
    chronic: true,
    effect: Effect::None,
    renewal_note: "INR stable within target range.",
};
const ALBUTEROL: Med = Med {
    code: "745679",
    display: "200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
    text: "Albuterol (salbutamol) reliever inhaler",
    dosage: "Inhale two puffs every four to six hours as needed for wheeze",
    class: "short-acting beta agonist",
    chronic: true,
    effect: Effect::None,
    renewal_note: "Using reliever inhaler less than twice a week.",
};
const FLUTICASONE: Med = Med {
    code: "895994",
    display: "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler",
    text: "Fluticasone preventer inhaler",
    dosage: "Inhale two puffs twice daily; rinse mouth after use",
    class: "inhaled corticosteroid",
    chronic: true,
    effect: Effect::None,
    renewal_note: "Inhaler technique checked.",
};
const SERTRALINE: Med = Med {
    code: "312940",
    display: "sertraline 50 MG Oral Tablet",
    text: "Sertraline 50 mg tablet",
    dosage: "Take one tablet by mouth every morning",
    class: "SSRI",
    chronic: true,
    effect: Effect::Mood,
    renewal_note: "Mood and sleep improved since starting sertraline.",
};
const OMEPRAZOLE: Med = Med {
    code: "198053",
    display: "omeprazole 20 MG Delayed Release Oral Capsule",
    text: "Omeprazole 20 mg capsule",
    dosage: "Take one capsule by mouth before breakfast",
    class: "proton pump inhibitor",
    chronic: true,
    effect: Effect::None,
    renewal_note: "Heartburn controlled; consider step-down.",
};
const LEVOTHYROXINE: Med = Med {
    code: "966222",
    display: "Levothyroxine Sodium 0.075 MG Oral Tablet",
    text: "Levothyroxine 75 micrograms",
    dosage: "Take one tablet on an empty stomach every morning",
    class: "thyroid hormone",
    chronic: true,
    effect: Effect::Thyroid,
    renewal_note: "TSH within range on current dose.",
};
const ALLOPURINOL: Med = Med {
    code: "197319",
    display: "Allopurinol 100 MG Oral Tablet",
    text: "Allopurinol 100 mg tablet",
    dosage: "Take one tablet by mouth daily after food",
    class: "xanthine oxidase inhibitor",
    chronic: true,
    effect: Effect::None,
    renewal_note: "No gout flares since last review.",
};
const DONEPEZIL: Med = Med {
    code: "997223",
    display: "Donepezil hydrochloride 10 MG Oral Tablet",
    text: "Donepezil 10 mg tablet",
    dosage: "Take one tablet by mouth at bedtime",
    class: "cholinesterase inhibitor",
    chronic: true,
    effect: Effect::None,
    renewal_note: "Carer reports stable memory and daily function.",
};
const ACETAMINOPHEN: Med = Med {
    code: "313782",
    display: "Acetaminophen 325 MG Oral Tablet",
    text: "Acetaminophen (paracetamol) 325 mg",
    dosage: "Take one to two tablets every six hours as needed; no more than 3 g a day",
    class: "analgesic",
    chronic: false,
    effect: Effect::None,
    renewal_note: "",
};
const IBUPROFEN: Med = Med {
    code: "310965",
    display: "Ibuprofen 200 MG Oral Tablet",
    text: "Ibuprofen 200 mg",
    dosage: "Take one to two tablets every eight hours with food as needed",
    class: "NSAID",
    chronic: false,
    effect: Effect::None,
    renewal_note: "",
};
const NAPROXEN: Med = Med {
    code: "849574",
    display: "Naproxen sodium 220 MG Oral Tablet",
    text: "Naproxen 220 mg",
    dosage: "Take one tablet every twelve hours with food as needed",
    class: "NSAID",
    chronic: false,
    effect: Effect::None,
    renewal_note: "",
};
const AMOXICILLIN: Med = Med {
    code: "308182",
    display: "Amoxicillin 250 MG Oral Capsule",
    text: "Amoxicillin 250 mg capsule",
    dosage: "Take one capsule three times daily for seven days",
    class: "penicillin",
    chronic: false,
    effect: Effect::None,
    renewal_note: "",
};
const AMOXICILLIN_CLAVULANATE: Med = Med {
    code: "562251",
    display: "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet",
    text: "Co-amoxiclav 250/125 mg tablet",
    dosage: "Take one tablet three times daily for seven days",
    class: "penicillin",
    chronic: false,
    effect: Effect::None,
    renewal_note: "",
};
const PENICILLIN_V: Med = Med {
    code: "834061",
    display: "Penicillin V Potassium 250 MG Oral Tablet",
    text: "Penicillin V 250 mg tablet",
    dosage: "Take one tablet four times daily for ten days",
    class: "penicillin",
    chronic: false,
    effect: Effect::None,
    renewal_note: "",
};

// ---------------------------------------------------------------------------------------------
// The clinical model.

/// Ages at which rates are given; rates are interpolated linearly between them and held beyond.
const AGES: [f64; 6] = [0.0, 10.0, 20.0, 40.0, 60.0, 80.0];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sex {
    Female,
    Male,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Smoking {
    Never,
    Former,
    Current,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dx {
    Obesity,
    Type1Diabetes,
    Prediabetes,
    Type2Diabetes,
    Hypertension,
    Hyperlipidemia,
    CoronaryDisease,
    AtrialFibrillation,
    HeartFailure,
    KidneyDisease,
    Asthma,
    Copd,
    Depression,
    Anxiety,
    Adhd,
    Reflux,
    IrritableBowel,
    FattyLiver,
    LowBackPain,
    KneeOsteoarthritis,
    Osteoporosis,
    Gout,
    RheumatoidArthritis,
    Migraine,
    SleepApnea,
    Alzheimer,
    Epilepsy,
    BreastCancer,
    ProstateCancer,
    ColonCancer,
    LungCancer,
    Hypothyroidism,
    VitaminDDeficiency,
    Anemia,
    ProstateHyperplasia,
    AtopicDermatitis,
    Psoriasis,
    NicotineDependence,
    UpperRespiratoryInfection,
    Sinusitis,
    StrepThroat,
    OtitisMedia,
    Bronchitis,
    Pneumonia,
    UrinaryInfection,
    Covid19,
    Appendicitis,
    AnkleSprain,
    Nstemi,
    Stroke,
}

/// What raises a risk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Factor {
    Has(Dx),
    Smoker,
    FormerSmoker,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Panel {
    A1c,
    Lipids,
    Metabolic,
    BloodCount,
    Thyroid,
    Phq9,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Setting {
    Ambulatory,
    Emergency,
    Inpatient,
}

/// An acute episode's course.
#[derive(Clone, Copy)]
struct Acute {
    /// Days until it resolves.
    days: (i64, i64),
    /// Where it is seen.
    setting: Setting,
    /// Chance it is seen in the emergency department instead (ambulatory ones only).
    emergency: f64,
    fever: bool,
    /// The first day it can occur, as (year, month, day).
    not_before: Option<(i64, u32, u32)>,
}

struct Disease {
    dx: Dx,
    /// ICD-10-CM code, title, weight among the variants (0: only set by a rule).
    icd10: &'static [(&'static str, &'static str, u32)],
    snomed: Option<(&'static str, &'static str)>,
    text: &'static str,
    /// Chronic: chance of having it by each age of [`AGES`]; acute: episodes per year.
    rate: [f64; 6],
    acute: Option<Acute>,
    /// Relative risk of women to men (the rate is the average of both).
    female: f64,
    only: Option<Sex>,
    onset_age_min: f64,
    /// A factor without which the condition never occurs.
    requires: Option<Factor>,
    risks: &'static [(Factor, f64)],
    excludes: &'static [Dx],
    meds: &'static [(&'static Med, f64)],
    at_diagnosis: &'static [(&'static Proc, f64)],
    at_follow_up: &'static [(&'static Proc, f64)],
    labs: &'static [Panel],
    /// Chance of a follow-up visit each year (chronic).
    follow_up: f64,
    notes: &'static [&'static str],
    severity: bool,
}

const CHRONIC: Disease = Disease {
    dx: Dx::Obesity,
    icd10: &[],
    snomed: None,
    text: "",
    rate: [0.0; 6],
    acute: None,
    female: 1.0,
    only: None,
    onset_age_min: 0.0,
    requires: None,
    risks: &[],
    excludes: &[],
    meds: &[],
    at_diagnosis: &[],
    at_follow_up: &[],
    labs: &[],
    follow_up: 0.3,
    notes: &[],
    severity: false,
};

const fn acute(setting: Setting, days: (i64, i64), fever: bool) -> Option<Acute> {
    Some(Acute { days, setting, emergency: 0.0, fever, not_before: None })
}

/// Risk factors come before the conditions they raise: conditions are drawn in this order.
const DISEASES: &[Disease] = &[
    Disease {
        dx: Dx::Obesity,
        icd10: &[("E66.9", "Obesity, unspecified", 1)],
        snomed: Some(("414916001", "Obesity (disorder)")),
        text: "Obesity",
        rate: [0.01, 0.07, 0.11, 0.19, 0.22, 0.15],
        onset_age_min: 2.0,
        notes: &["Weight management plan discussed; referred to dietitian.", "Counselled on physical activity."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::NicotineDependence,
        icd10: &[("F17.210", "Nicotine dependence, cigarettes, uncomplicated", 1)],
        snomed: Some(("56294008", "Nicotine dependence (disorder)")),
        text: "Nicotine dependence, cigarettes",
        rate: [0.0, 0.0, 0.55, 0.6, 0.6, 0.6],
        onset_age_min: 14.0,
        requires: Some(Factor::Smoker),
        notes: &["Smokes about fifteen cigarettes a day; smoking cessation advice given."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Type1Diabetes,
        icd10: &[("E10.9", "Type 1 diabetes mellitus without complications", 1)],
        snomed: Some(("46635009", "Diabetes mellitus type 1 (disorder)")),
        text: "Type 1 diabetes mellitus",
        rate: [0.0, 0.002, 0.004, 0.004, 0.004, 0.003],
        onset_age_min: 1.0,
        meds: &[(&INSULIN_GLARGINE, 1.0)],
        labs: &[Panel::A1c, Panel::Metabolic],
        follow_up: 0.8,
        notes: &["Insulin pump considered; continuous glucose monitor in use."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Prediabetes,
        icd10: &[("R73.03", "Prediabetes", 1)],
        snomed: Some(("714628002", "Prediabetes (finding)")),
        text: "Prediabetes",
        rate: [0.0, 0.003, 0.02, 0.08, 0.11, 0.09],
        onset_age_min: 10.0,
        risks: &[(Factor::Has(Dx::Obesity), 2.0)],
        excludes: &[Dx::Type1Diabetes],
        labs: &[Panel::A1c],
        notes: &["Lifestyle changes advised; recheck HbA1c in a year."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Type2Diabetes,
        icd10: &[
            ("E11.9", "Type 2 diabetes mellitus without complications", 70),
            ("E11.65", "Type 2 diabetes mellitus with hyperglycemia", 30),
            ("E11.22", "Type 2 diabetes mellitus with diabetic chronic kidney disease", 0),
        ],
        snomed: Some(("44054006", "Diabetes mellitus type 2 (disorder)")),
        text: "Type 2 diabetes mellitus",
        rate: [0.0, 0.001, 0.01, 0.06, 0.16, 0.21],
        onset_age_min: 12.0,
        risks: &[(Factor::Has(Dx::Obesity), 2.5)],
        excludes: &[Dx::Type1Diabetes, Dx::Prediabetes],
        meds: &[(&METFORMIN, 0.85), (&INSULIN_GLARGINE, 0.12)],
        labs: &[Panel::A1c, Panel::Metabolic],
        follow_up: 0.7,
        notes: &[
            "Polyuria and fatigue for three months.",
            "Counselled on diet, exercise and home glucose monitoring.",
            "Referred to diabetes education; foot examination normal.",
        ],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Hypertension,
        icd10: &[("I10", "Essential (primary) hypertension", 1)],
        snomed: Some(("59621000", "Essential hypertension (disorder)")),
        text: "Essential hypertension",
        rate: [0.0, 0.003, 0.03, 0.17, 0.38, 0.55],
        onset_age_min: 12.0,
        risks: &[(Factor::Has(Dx::Obesity), 1.6), (Factor::Has(Dx::Type2Diabetes), 1.5)],
        meds: &[(&LISINOPRIL, 0.5), (&AMLODIPINE, 0.35), (&HYDROCHLOROTHIAZIDE, 0.3)],
        labs: &[Panel::Metabolic],
        follow_up: 0.5,
        notes: &[
            "Elevated readings on two separate visits; lifestyle advice given.",
            "Home blood pressure log reviewed.",
            "Advised to reduce salt intake.",
        ],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Hyperlipidemia,
        icd10: &[
            ("E78.5", "Hyperlipidemia, unspecified", 70),
            ("E78.00", "Pure hypercholesterolemia, unspecified", 30),
        ],
        snomed: Some(("55822004", "Hyperlipidemia (disorder)")),
        text: "Hyperlipidaemia",
        rate: [0.0, 0.002, 0.02, 0.15, 0.31, 0.34],
        onset_age_min: 15.0,
        risks: &[(Factor::Has(Dx::Type2Diabetes), 1.5), (Factor::Has(Dx::Obesity), 1.3)],
        meds: &[(&ATORVASTATIN, 0.65)],
        labs: &[Panel::Lipids],
        follow_up: 0.35,
        notes: &[
            "Family history of premature coronary disease.",
            "Dietary advice given; recheck lipids in twelve months.",
        ],
        ..CHRONIC
    },
    Disease {
        dx: Dx::CoronaryDisease,
        icd10: &[("I25.10", "Atherosclerotic heart disease of native coronary artery without angina pectoris", 1)],
        snomed: Some(("53741008", "Coronary arteriosclerosis (disorder)")),
        text: "Coronary artery disease",
        rate: [0.0, 0.0, 0.0, 0.015, 0.05, 0.11],
        female: 0.6,
        onset_age_min: 30.0,
        risks: &[
            (Factor::Has(Dx::Hypertension), 1.8),
            (Factor::Has(Dx::Hyperlipidemia), 1.6),
            (Factor::Has(Dx::Type2Diabetes), 1.7),
            (Factor::Smoker, 1.8),
        ],
        meds: &[(&ASPIRIN, 0.8), (&ATORVASTATIN_HIGH, 0.6), (&NITROGLYCERIN, 0.4)],
        at_diagnosis: &[(&ECG, 0.9), (&CABG, 0.05)],
        at_follow_up: &[(&ECG, 0.4)],
        labs: &[Panel::Lipids],
        follow_up: 0.6,
        notes: &["Exertional chest tightness relieved by rest.", "Cardiac rehabilitation completed."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::AtrialFibrillation,
        icd10: &[("I48.91", "Unspecified atrial fibrillation", 1)],
        snomed: Some(("49436004", "Atrial fibrillation (disorder)")),
        text: "Atrial fibrillation",
        rate: [0.0, 0.0, 0.0, 0.005, 0.03, 0.09],
        female: 0.7,
        onset_age_min: 30.0,
        risks: &[(Factor::Has(Dx::Hypertension), 1.4)],
        meds: &[(&WARFARIN, 0.6)],
        at_diagnosis: &[(&ECG, 1.0)],
        at_follow_up: &[(&ECG, 0.5)],
        follow_up: 0.6,
        notes: &["Irregularly irregular pulse; palpitations on exertion."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::HeartFailure,
        icd10: &[("I50.9", "Heart failure, unspecified", 1)],
        snomed: Some(("84114007", "Heart failure (disorder)")),
        text: "Heart failure",
        rate: [0.0, 0.0, 0.0, 0.004, 0.018, 0.05],
        onset_age_min: 30.0,
        risks: &[
            (Factor::Has(Dx::CoronaryDisease), 2.5),
            (Factor::Has(Dx::Hypertension), 1.6),
            (Factor::Has(Dx::AtrialFibrillation), 2.0),
        ],
        meds: &[(&LISINOPRIL, 0.6)],
        at_diagnosis: &[(&ECHOCARDIOGRAPHY, 0.9), (&ECG, 0.6)],
        at_follow_up: &[(&ECHOCARDIOGRAPHY, 0.3)],
        labs: &[Panel::Metabolic],
        follow_up: 0.7,
        notes: &["Ankle oedema and breathlessness on exertion.", "Daily weights advised."],
        severity: true,
        ..CHRONIC
    },
    Disease {
        dx: Dx::KidneyDisease,
        icd10: &[
            ("N18.30", "Chronic kidney disease, stage 3 unspecified", 85),
            ("N18.4", "Chronic kidney disease, stage 4 (severe)", 15),
        ],
        snomed: Some(("709044004", "Chronic kidney disease (disorder)")),
        text: "Chronic kidney disease",
        rate: [0.0, 0.0005, 0.002, 0.015, 0.05, 0.12],
        onset_age_min: 18.0,
        risks: &[(Factor::Has(Dx::Type2Diabetes), 2.5), (Factor::Has(Dx::Hypertension), 2.0)],
        meds: &[(&LISINOPRIL, 0.4)],
        labs: &[Panel::Metabolic, Panel::BloodCount],
        follow_up: 0.6,
        notes: &["Avoid NSAIDs; renal function monitored every six months."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Asthma,
        icd10: &[
            ("J45.909", "Unspecified asthma, uncomplicated", 70),
            ("J45.20", "Mild intermittent asthma, uncomplicated", 30),
        ],
        snomed: Some(("195967001", "Asthma (disorder)")),
        text: "Asthma",
        rate: [0.01, 0.07, 0.07, 0.07, 0.065, 0.06],
        onset_age_min: 2.0,
        meds: &[(&ALBUTEROL, 0.9), (&FLUTICASONE, 0.5)],
        at_diagnosis: &[(&SPIROMETRY, 0.7)],
        at_follow_up: &[(&SPIROMETRY, 0.3)],
        follow_up: 0.4,
        notes: &["Wheeze worse at night and with exercise.", "Asthma action plan reviewed."],
        severity: true,
        ..CHRONIC
    },
    Disease {
        dx: Dx::Copd,
        icd10: &[("J44.9", "Chronic obstructive pulmonary disease, unspecified", 1)],
        snomed: Some(("13645005", "Chronic obstructive lung disease (disorder)")),
        text: "Chronic obstructive pulmonary disease",
        rate: [0.0, 0.0, 0.001, 0.015, 0.06, 0.09],
        onset_age_min: 35.0,
        risks: &[(Factor::Smoker, 4.0), (Factor::FormerSmoker, 2.5)],
        meds: &[(&ALBUTEROL, 0.9), (&FLUTICASONE, 0.4)],
        at_diagnosis: &[(&SPIROMETRY, 0.9)],
        at_follow_up: &[(&SPIROMETRY, 0.3)],
        follow_up: 0.5,
        notes: &["Chronic productive cough; breathless climbing one flight of stairs."],
        severity: true,
        ..CHRONIC
    },
    Disease {
        dx: Dx::Depression,
        icd10: &[("F32.9", "Major depressive disorder, single episode, unspecified", 1)],
        snomed: Some(("370143000", "Major depressive disorder (disorder)")),
        text: "Major depressive disorder",
        rate: [0.0, 0.01, 0.07, 0.09, 0.08, 0.07],
        female: 1.7,
        onset_age_min: 10.0,
        meds: &[(&SERTRALINE, 0.6)],
        labs: &[Panel::Phq9],
        follow_up: 0.5,
        notes: &["Low mood and poor sleep for two months; no suicidal ideation.", "Referred for talking therapy."],
        severity: true,
        ..CHRONIC
    },
    Disease {
        dx: Dx::Anxiety,
        icd10: &[("F41.1", "Generalized anxiety disorder", 1)],
        snomed: Some(("21897009", "Generalized anxiety disorder (disorder)")),
        text: "Generalized anxiety disorder",
        rate: [0.0, 0.01, 0.05, 0.06, 0.05, 0.04],
        female: 1.8,
        onset_age_min: 8.0,
        meds: &[(&SERTRALINE, 0.35)],
        notes: &["Persistent worry affecting work; breathing exercises taught."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Adhd,
        icd10: &[("F90.9", "Attention-deficit hyperactivity disorder, unspecified type", 1)],
        snomed: Some(("406506008", "Attention deficit hyperactivity disorder (disorder)")),
        text: "Attention-deficit hyperactivity disorder",
        rate: [0.0, 0.07, 0.06, 0.03, 0.01, 0.005],
        female: 0.5,
        onset_age_min: 4.0,
        notes: &["School reports difficulty concentrating; behavioural support arranged."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Reflux,
        icd10: &[("K21.9", "Gastro-esophageal reflux disease without esophagitis", 1)],
        snomed: Some(("235595009", "Gastroesophageal reflux disease (disorder)")),
        text: "Gastro-oesophageal reflux disease",
        rate: [0.0, 0.005, 0.05, 0.1, 0.14, 0.15],
        onset_age_min: 10.0,
        risks: &[(Factor::Has(Dx::Obesity), 1.5)],
        meds: &[(&OMEPRAZOLE, 0.7)],
        notes: &["Heartburn after meals and at night."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::IrritableBowel,
        icd10: &[("K58.9", "Irritable bowel syndrome without diarrhea", 1)],
        snomed: Some(("10743008", "Irritable bowel syndrome (disorder)")),
        text: "Irritable bowel syndrome",
        rate: [0.0, 0.005, 0.04, 0.05, 0.04, 0.03],
        female: 2.0,
        onset_age_min: 12.0,
        notes: &["Intermittent abdominal bloating; low-FODMAP diet suggested."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::FattyLiver,
        icd10: &[("K76.0", "Fatty (change of) liver, not elsewhere classified", 1)],
        snomed: None,
        text: "Non-alcoholic fatty liver",
        rate: [0.0, 0.002, 0.01, 0.04, 0.06, 0.04],
        onset_age_min: 12.0,
        risks: &[(Factor::Has(Dx::Obesity), 3.0), (Factor::Has(Dx::Type2Diabetes), 2.0)],
        notes: &["Incidental finding on abdominal ultrasound."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::LowBackPain,
        icd10: &[("M54.50", "Low back pain, unspecified", 1)],
        snomed: Some(("279039007", "Low back pain (finding)")),
        text: "Low back pain",
        rate: [0.0, 0.005, 0.06, 0.1, 0.12, 0.12],
        onset_age_min: 12.0,
        meds: &[(&IBUPROFEN, 0.4), (&ACETAMINOPHEN, 0.3)],
        notes: &["Mechanical back pain without red flags; physiotherapy advised."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::KneeOsteoarthritis,
        icd10: &[("M17.11", "Unilateral primary osteoarthritis, right knee", 1)],
        snomed: Some(("239873007", "Osteoarthritis of knee (disorder)")),
        text: "Osteoarthritis of right knee",
        rate: [0.0, 0.0, 0.002, 0.03, 0.1, 0.18],
        onset_age_min: 35.0,
        risks: &[(Factor::Has(Dx::Obesity), 2.0)],
        meds: &[(&ACETAMINOPHEN, 0.5), (&NAPROXEN, 0.3)],
        at_follow_up: &[(&KNEE_REPLACEMENT, 0.04)],
        follow_up: 0.3,
        notes: &["Knee pain on stairs; crepitus on examination."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Osteoporosis,
        icd10: &[("M81.0", "Age-related osteoporosis without current pathological fracture", 1)],
        snomed: Some(("64859006", "Osteoporosis (disorder)")),
        text: "Osteoporosis",
        rate: [0.0, 0.0, 0.0, 0.01, 0.06, 0.15],
        female: 4.0,
        onset_age_min: 45.0,
        notes: &["Bone density scan shows T-score below -2.5; calcium and vitamin D advised."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Gout,
        icd10: &[("M10.9", "Gout, unspecified", 1)],
        snomed: Some(("90560007", "Gout (disorder)")),
        text: "Gout",
        rate: [0.0, 0.0, 0.002, 0.02, 0.04, 0.05],
        female: 0.3,
        onset_age_min: 20.0,
        risks: &[(Factor::Has(Dx::KidneyDisease), 2.0)],
        meds: &[(&ALLOPURINOL, 0.7)],
        notes: &["Acute painful swelling of the first metatarsophalangeal joint."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::RheumatoidArthritis,
        icd10: &[("M06.9", "Rheumatoid arthritis, unspecified", 1)],
        snomed: Some(("69896004", "Rheumatoid arthritis (disorder)")),
        text: "Rheumatoid arthritis",
        rate: [0.0, 0.0, 0.002, 0.007, 0.012, 0.015],
        female: 2.5,
        onset_age_min: 18.0,
        meds: &[(&NAPROXEN, 0.4)],
        follow_up: 0.5,
        notes: &["Morning stiffness of the hands lasting over an hour; referred to rheumatology."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Migraine,
        icd10: &[("G43.909", "Migraine, unspecified, not intractable, without status migrainosus", 1)],
        snomed: Some(("37796009", "Migraine (disorder)")),
        text: "Migraine",
        rate: [0.002, 0.02, 0.08, 0.08, 0.05, 0.03],
        female: 3.0,
        onset_age_min: 6.0,
        meds: &[(&IBUPROFEN, 0.6)],
        notes: &["Throbbing unilateral headaches with photophobia, about two a month."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::SleepApnea,
        icd10: &[("G47.33", "Obstructive sleep apnea (adult) (pediatric)", 1)],
        snomed: Some(("78275009", "Obstructive sleep apnea syndrome (disorder)")),
        text: "Obstructive sleep apnoea",
        rate: [0.0, 0.005, 0.02, 0.06, 0.09, 0.08],
        female: 0.5,
        onset_age_min: 5.0,
        risks: &[(Factor::Has(Dx::Obesity), 3.0)],
        notes: &["Loud snoring and daytime sleepiness; CPAP started."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Alzheimer,
        icd10: &[("G30.9", "Alzheimer's disease, unspecified", 1)],
        snomed: Some(("26929004", "Alzheimer's disease (disorder)")),
        text: "Alzheimer's disease",
        rate: [0.0, 0.0, 0.0, 0.0, 0.01, 0.12],
        female: 1.5,
        onset_age_min: 60.0,
        meds: &[(&DONEPEZIL, 0.7)],
        follow_up: 0.6,
        notes: &["Progressive memory loss reported by family; MMSE 21/30."],
        severity: true,
        ..CHRONIC
    },
    Disease {
        dx: Dx::Epilepsy,
        icd10: &[("G40.909", "Epilepsy, unspecified, not intractable, without status epilepticus", 1)],
        snomed: Some(("84757009", "Epilepsy (disorder)")),
        text: "Epilepsy",
        rate: [0.002, 0.006, 0.007, 0.007, 0.008, 0.01],
        onset_age_min: 0.5,
        follow_up: 0.5,
        notes: &["Seizure-free for twelve months; driving advice given."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::BreastCancer,
        icd10: &[
            ("C50.911", "Malignant neoplasm of unspecified site of right female breast", 1),
            ("C50.912", "Malignant neoplasm of unspecified site of left female breast", 1),
        ],
        snomed: Some(("254837009", "Malignant neoplasm of breast (disorder)")),
        text: "Breast cancer",
        rate: [0.0, 0.0, 0.0005, 0.008, 0.025, 0.04],
        only: Some(Sex::Female),
        onset_age_min: 25.0,
        at_diagnosis: &[(&MAMMOGRAPHY, 1.0), (&LUMPECTOMY, 0.6)],
        at_follow_up: &[(&MAMMOGRAPHY, 0.6)],
        labs: &[Panel::BloodCount],
        follow_up: 0.8,
        notes: &["Palpable lump found on self-examination.", "Oestrogen receptor positive; oncology follow-up."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::ProstateCancer,
        icd10: &[("C61", "Malignant neoplasm of prostate", 1)],
        snomed: Some(("399068003", "Malignant tumor of prostate (disorder)")),
        text: "Prostate cancer",
        rate: [0.0, 0.0, 0.0, 0.002, 0.03, 0.07],
        only: Some(Sex::Male),
        onset_age_min: 40.0,
        at_diagnosis: &[(&PROSTATE_BIOPSY, 0.9)],
        follow_up: 0.7,
        notes: &["Raised PSA on screening; active surveillance agreed."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::ColonCancer,
        icd10: &[("C18.9", "Malignant neoplasm of colon, unspecified", 1)],
        snomed: Some(("363406005", "Malignant tumor of colon (disorder)")),
        text: "Colon cancer",
        rate: [0.0, 0.0, 0.0002, 0.002, 0.008, 0.015],
        onset_age_min: 30.0,
        at_diagnosis: &[(&COLONOSCOPY, 1.0), (&COLON_BIOPSY, 0.9)],
        at_follow_up: &[(&COLONOSCOPY, 0.3)],
        labs: &[Panel::BloodCount],
        follow_up: 0.8,
        notes: &["Change in bowel habit and iron-deficiency picture."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::LungCancer,
        icd10: &[("C34.90", "Malignant neoplasm of unspecified part of unspecified bronchus or lung", 1)],
        snomed: Some(("254637007", "Non-small cell lung cancer (disorder)")),
        text: "Lung cancer",
        rate: [0.0, 0.0, 0.0, 0.001, 0.005, 0.009],
        onset_age_min: 35.0,
        risks: &[(Factor::Smoker, 8.0), (Factor::FormerSmoker, 3.0)],
        at_diagnosis: &[(&CHEST_XRAY, 1.0), (&BRONCHOSCOPY, 0.8)],
        labs: &[Panel::BloodCount],
        follow_up: 0.8,
        notes: &["Persistent cough and weight loss; mass on chest imaging."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Hypothyroidism,
        icd10: &[("E03.9", "Hypothyroidism, unspecified", 1)],
        snomed: Some(("40930008", "Hypothyroidism (disorder)")),
        text: "Hypothyroidism",
        rate: [0.001, 0.003, 0.01, 0.04, 0.06, 0.08],
        female: 4.0,
        onset_age_min: 0.5,
        meds: &[(&LEVOTHYROXINE, 0.95)],
        labs: &[Panel::Thyroid],
        follow_up: 0.4,
        notes: &["Tiredness, cold intolerance and weight gain."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::VitaminDDeficiency,
        icd10: &[("E55.9", "Vitamin D deficiency, unspecified", 1)],
        snomed: Some(("34713006", "Vitamin D deficiency (disorder)")),
        text: "Vitamin D deficiency",
        rate: [0.005, 0.02, 0.04, 0.06, 0.07, 0.08],
        onset_age_min: 1.0,
        notes: &["Supplementation with colecalciferol advised."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Anemia,
        icd10: &[("D64.9", "Anemia, unspecified", 1)],
        snomed: Some(("271737000", "Anemia (disorder)")),
        text: "Anaemia",
        rate: [0.01, 0.02, 0.03, 0.03, 0.04, 0.08],
        female: 1.6,
        onset_age_min: 0.5,
        risks: &[(Factor::Has(Dx::KidneyDisease), 2.5), (Factor::Has(Dx::ColonCancer), 3.0)],
        labs: &[Panel::BloodCount],
        notes: &["Fatigue and pallor; iron studies requested."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::ProstateHyperplasia,
        icd10: &[("N40.0", "Benign prostatic hyperplasia without lower urinary tract symptoms", 1)],
        snomed: Some(("266569009", "Benign prostatic hyperplasia (disorder)")),
        text: "Benign prostatic hyperplasia",
        rate: [0.0, 0.0, 0.0, 0.05, 0.25, 0.4],
        only: Some(Sex::Male),
        onset_age_min: 40.0,
        notes: &["Smooth enlarged prostate on examination."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::AtopicDermatitis,
        icd10: &[("L20.9", "Atopic dermatitis, unspecified", 1)],
        snomed: Some(("24079001", "Atopic dermatitis (disorder)")),
        text: "Atopic dermatitis",
        rate: [0.1, 0.08, 0.03, 0.02, 0.01, 0.01],
        onset_age_min: 0.2,
        notes: &["Flexural eczema; emollients and bathing advice given."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Psoriasis,
        icd10: &[("L40.0", "Psoriasis vulgaris", 1)],
        snomed: Some(("9014002", "Psoriasis (disorder)")),
        text: "Psoriasis vulgaris",
        rate: [0.002, 0.005, 0.015, 0.025, 0.03, 0.03],
        onset_age_min: 3.0,
        notes: &["Plaques on elbows and knees; topical therapy started."],
        ..CHRONIC
    },
    // Acute episodes: the rate is episodes per year.
    Disease {
        dx: Dx::UpperRespiratoryInfection,
        icd10: &[("J06.9", "Acute upper respiratory infection, unspecified", 1)],
        snomed: Some(("54150009", "Upper respiratory infection (disorder)")),
        text: "Upper respiratory tract infection",
        rate: [0.35, 0.2, 0.12, 0.1, 0.09, 0.09],
        acute: acute(Setting::Ambulatory, (5, 10), true),
        meds: &[(&ACETAMINOPHEN, 0.3)],
        notes: &["Runny nose, sore throat and mild fever for three days."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Sinusitis,
        icd10: &[("J01.90", "Acute sinusitis, unspecified", 1)],
        snomed: Some(("444814009", "Viral sinusitis (disorder)")),
        text: "Acute sinusitis",
        rate: [0.01, 0.04, 0.08, 0.09, 0.07, 0.05],
        acute: acute(Setting::Ambulatory, (7, 21), false),
        meds: &[(&AMOXICILLIN_CLAVULANATE, 0.4)],
        notes: &["Facial pain and purulent nasal discharge for ten days."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::StrepThroat,
        icd10: &[("J02.0", "Streptococcal pharyngitis", 1)],
        snomed: Some(("43878008", "Streptococcal sore throat (disorder)")),
        text: "Streptococcal pharyngitis",
        rate: [0.03, 0.12, 0.04, 0.02, 0.01, 0.005],
        acute: acute(Setting::Ambulatory, (5, 10), true),
        meds: &[(&PENICILLIN_V, 0.9)],
        at_diagnosis: &[(&THROAT_CULTURE, 0.8)],
        notes: &["Sore throat and fever; tonsillar exudate, no cough."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::OtitisMedia,
        icd10: &[("H66.90", "Otitis media, unspecified, unspecified ear", 1)],
        snomed: Some(("65363002", "Otitis media (disorder)")),
        text: "Otitis media",
        rate: [0.35, 0.06, 0.008, 0.003, 0.002, 0.002],
        acute: acute(Setting::Ambulatory, (5, 14), true),
        meds: &[(&AMOXICILLIN, 0.7)],
        notes: &["Ear pain and fever; bulging tympanic membrane."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Bronchitis,
        icd10: &[("J20.9", "Acute bronchitis, unspecified", 1)],
        snomed: Some(("10509002", "Acute bronchitis (disorder)")),
        text: "Acute bronchitis",
        rate: [0.05, 0.03, 0.04, 0.05, 0.06, 0.07],
        acute: acute(Setting::Ambulatory, (10, 21), true),
        risks: &[(Factor::Smoker, 1.8), (Factor::Has(Dx::Asthma), 1.5)],
        meds: &[(&ACETAMINOPHEN, 0.3)],
        notes: &["Cough for a week with scattered wheeze; chest clear of crackles."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Pneumonia,
        icd10: &[("J18.9", "Pneumonia, unspecified organism", 1)],
        snomed: Some(("233604007", "Pneumonia (disorder)")),
        text: "Community-acquired pneumonia",
        rate: [0.03, 0.01, 0.005, 0.01, 0.02, 0.06],
        acute: Some(Acute {
            days: (10, 28),
            setting: Setting::Ambulatory,
            emergency: 0.35,
            fever: true,
            not_before: None,
        }),
        risks: &[(Factor::Has(Dx::Copd), 3.0), (Factor::Smoker, 1.5), (Factor::Has(Dx::HeartFailure), 2.0)],
        meds: &[(&AMOXICILLIN_CLAVULANATE, 0.85)],
        at_diagnosis: &[(&CHEST_XRAY, 0.9)],
        labs: &[Panel::BloodCount],
        notes: &["Productive cough and fever for four days; crackles at the right base."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::UrinaryInfection,
        icd10: &[("N39.0", "Urinary tract infection, site not specified", 1)],
        snomed: Some(("68566005", "Urinary tract infectious disease (disorder)")),
        text: "Urinary tract infection",
        rate: [0.02, 0.02, 0.04, 0.04, 0.05, 0.08],
        acute: acute(Setting::Ambulatory, (3, 10), false),
        female: 4.0,
        meds: &[(&AMOXICILLIN_CLAVULANATE, 0.7)],
        notes: &["Dysuria and frequency; urine dipstick positive for nitrites."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Covid19,
        icd10: &[("U07.1", "COVID-19", 1)],
        snomed: Some(("840539006", "Disease caused by severe acute respiratory syndrome coronavirus 2 (disorder)")),
        text: "COVID-19",
        rate: [0.035, 0.05, 0.07, 0.07, 0.065, 0.06],
        acute: Some(Acute {
            days: (7, 21),
            setting: Setting::Ambulatory,
            emergency: 0.08,
            fever: true,
            not_before: Some((2020, 3, 1)),
        }),
        risks: &[(Factor::Has(Dx::Copd), 1.3)],
        meds: &[(&ACETAMINOPHEN, 0.5)],
        notes: &["Positive SARS-CoV-2 PCR; fever, cough and loss of smell.", "Isolation advice given."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Appendicitis,
        icd10: &[("K35.80", "Unspecified acute appendicitis", 1)],
        snomed: Some(("74400008", "Appendicitis (disorder)")),
        text: "Acute appendicitis",
        rate: [0.0005, 0.002, 0.0015, 0.0008, 0.0005, 0.0004],
        acute: acute(Setting::Inpatient, (10, 21), true),
        meds: &[(&ACETAMINOPHEN, 0.6)],
        at_diagnosis: &[(&APPENDECTOMY, 0.95)],
        labs: &[Panel::BloodCount],
        notes: &["Periumbilical pain migrating to the right iliac fossa."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::AnkleSprain,
        icd10: &[("S93.401A", "Sprain of unspecified ligament of right ankle, initial encounter", 1)],
        snomed: Some(("44465007", "Sprain of ankle (disorder)")),
        text: "Sprain of right ankle",
        rate: [0.005, 0.02, 0.02, 0.01, 0.006, 0.004],
        acute: Some(Acute {
            days: (14, 42),
            setting: Setting::Ambulatory,
            emergency: 0.4,
            fever: false,
            not_before: None,
        }),
        meds: &[(&IBUPROFEN, 0.7)],
        notes: &["Inversion injury playing sport; able to bear weight."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Nstemi,
        icd10: &[("I21.4", "Non-ST elevation (NSTEMI) myocardial infarction", 1)],
        snomed: Some(("401314000", "Acute non-ST segment elevation myocardial infarction (disorder)")),
        text: "Non-ST elevation myocardial infarction",
        rate: [0.0, 0.0, 0.0, 0.0005, 0.003, 0.008],
        acute: acute(Setting::Inpatient, (28, 28), false),
        female: 0.6,
        risks: &[(Factor::Has(Dx::CoronaryDisease), 6.0), (Factor::Smoker, 2.0), (Factor::Has(Dx::Type2Diabetes), 1.5)],
        meds: &[(&ASPIRIN, 1.0), (&CLOPIDOGREL, 0.8), (&ATORVASTATIN_HIGH, 0.8)],
        at_diagnosis: &[(&ECG, 1.0), (&CORONARY_STENT, 0.7)],
        labs: &[Panel::Metabolic, Panel::BloodCount],
        notes: &["Central chest pain radiating to the left arm; troponin raised."],
        ..CHRONIC
    },
    Disease {
        dx: Dx::Stroke,
        icd10: &[("I63.9", "Cerebral infarction, unspecified", 1)],
        snomed: Some(("230690007", "Cerebrovascular accident (disorder)")),
        text: "Ischaemic stroke",
        rate: [0.0, 0.0, 0.0, 0.0005, 0.002, 0.01],
        acute: acute(Setting::Inpatient, (30, 90), false),
        risks: &[(Factor::Has(Dx::AtrialFibrillation), 3.0), (Factor::Has(Dx::Hypertension), 2.0)],
        meds: &[(&ASPIRIN, 0.8), (&ATORVASTATIN_HIGH, 0.6)],
        at_diagnosis: &[(&ECG, 0.8)],
        labs: &[Panel::Metabolic],
        notes: &["Sudden right-sided weakness and slurred speech; thrombolysis window missed."],
        ..CHRONIC
    },
];

/// Condition severities (SNOMED CT), with weights.
const SEVERITIES: [(&str, &str, u32); 3] = [
    ("255604002", "Mild (qualifier value)", 50),
    ("6736007", "Moderate (severity modifier) (qualifier value)", 35),
    ("24484000", "Severe (severity modifier) (qualifier value)", 15),
];

/// Ages at the end of the window: (first, last, weight), skewed to adults as a hospital's
/// records are.
const AGE_BANDS: [(u32, u32, u32); 7] =
    [(0, 4, 6), (5, 17, 10), (18, 34, 18), (35, 49, 19), (50, 64, 22), (65, 79, 18), (80, AGE_MAX, 7)];

const GIVEN_FEMALE: [&str; 16] = [
    "Maria", "Anna", "Sofia", "Emma", "Olivia", "Grace", "Amara", "Leila", "Hannah", "Chloe", "Ines", "Mei", "Priya",
    "Zoe", "Clara", "Nadia",
];
const GIVEN_MALE: [&str; 16] = [
    "James", "Lucas", "Omar", "Daniel", "Mateo", "Ethan", "Noah", "Samuel", "Ravi", "Kenji", "Tomas", "Felix", "Adam",
    "Hugo", "Leon", "Jonas",
];
const FAMILY: [&str; 20] = [
    "Keller",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Novak",
    "Garcia",
    "Haddad",
    "Murphy",
    "Rossi",
    "Schmidt",
    "Kowalski",
    "Nguyen",
    "Silva",
    "Jensen",
    "Byrne",
    "Fischer",
    "Costa",
    "Ahmed",
    "Dubois",
];

/// A rate at `age`, interpolated between [`AGES`].
fn at_age(rate: &[f64; 6], age: f64) -> f64 {
    if age <= AGES[0] {
        return rate[0];
    }
    for k in 1..AGES.len() {
        if age <= AGES[k] {
            let t = (age - AGES[k - 1]) / (AGES[k] - AGES[k - 1]);
            return rate[k - 1] + t * (rate[k] - rate[k - 1]);
        }
    }
    rate[AGES.len() - 1]
}

/// Linear interpolation in a table of (x, y) points sorted by x, held beyond its ends.
fn interpolate(points: &[(f64, f64)], x: f64) -> f64 {
    let Some(&(x0, y0)) = points.first() else { return 0.0 };
    if x <= x0 {
        return y0;
    }
    for w in points.windows(2) {
        let ((xa, ya), (xb, yb)) = (w[0], w[1]);
        if x <= xb {
            return ya + (x - xa) / (xb - xa) * (yb - ya);
        }
    }
    points.last().map_or(0.0, |p| p.1)
}

// ---------------------------------------------------------------------------------------------
// One patient.

struct Person {
    id: String,
    sex: Sex,
    birth: i64,
    age_end: u32,
    given: &'static str,
    family: &'static str,
    mrn: u64,
    smoking: Smoking,
    // Stable traits, as standard scores or values, combined with conditions when measured.
    height_cm: f64,
    bmi_z: f64,
    pressure_z: f64,
    ldl_z: f64,
    hdl: f64,
    triglycerides: f64,
    egfr_z: f64,
    hemoglobin: f64,
    a1c_diabetic: f64,
    egfr_kidney: f64,
}

impl Person {
    fn draw(draw: &mut Draw, last_year: i32) -> Person {
        let id = draw.uuid();
        let sex = if draw.chance(0.51) { Sex::Female } else { Sex::Male };
        let band = AGE_BANDS[draw.weighted(&AGE_BANDS.map(|b| b.2))];
        let age_end = draw.int(i64::from(band.0), i64::from(band.1)) as u32;
        let birth_year = i64::from(last_year) - i64::from(age_end);
        let birth = year_start(birth_year) + draw.int(0, year_end(birth_year) - year_start(birth_year));
        let given = if sex == Sex::Female { *draw.pick(&GIVEN_FEMALE) } else { *draw.pick(&GIVEN_MALE) };
        let family = *draw.pick(&FAMILY);
        let mrn = draw.int(10_000_000, 99_999_999) as u64;
        let age = f64::from(age_end);
        let current =
            interpolate(&[(14.0, 0.0), (18.0, 0.08), (25.0, 0.16), (45.0, 0.16), (65.0, 0.1), (85.0, 0.04)], age);
        let former = interpolate(&[(18.0, 0.0), (30.0, 0.08), (50.0, 0.2), (70.0, 0.3), (90.0, 0.3)], age);
        let u = draw.unit();
        let smoking = if u < current {
            Smoking::Current
        } else if u < current + former {
            Smoking::Former
        } else {
            Smoking::Never
        };
        let (height_mean, hdl_mean, hb_mean) =
            if sex == Sex::Female { (163.0, 58.0, 13.6) } else { (176.5, 47.0, 15.1) };
        Person {
            id,
            sex,
            birth,
            age_end,
            given,
            family,
            mrn,
            smoking,
            height_cm: draw.normal(height_mean, 6.8).clamp(140.0, 205.0),
            bmi_z: draw.normal(0.0, 1.0),
            pressure_z: draw.normal(0.0, 1.0),
            ldl_z: draw.normal(0.0, 1.0),
            hdl: draw.normal(hdl_mean, 9.0).clamp(25.0, 95.0),
            triglycerides: draw.normal(120.0, 35.0).clamp(40.0, 400.0),
            egfr_z: draw.normal(0.0, 1.0),
            hemoglobin: draw.normal(hb_mean, 0.8),
            a1c_diabetic: draw.normal(8.3, 1.0).clamp(7.0, 11.0),
            egfr_kidney: draw.unit(),
        }
    }
}

/// A drug a diagnosis brought, from `start`.
struct Rx {
    med: &'static Med,
    start: i64,
    emitted: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Precision {
    Year,
    Month,
    Day,
}

struct Diagnosis {
    disease: &'static Disease,
    code: usize,
    onset: i64,
    precision: Precision,
    /// Onset before the window: recorded at the first visit.
    prevalent: bool,
    /// Acute: the day it resolved.
    end: Option<i64>,
    severity: Option<usize>,
    /// When its drugs start (before the window for a condition known before it).
    med_start: i64,
    meds: Vec<Rx>,
    /// fullUrl of its Condition, once written.
    url: Option<String>,
}

impl Diagnosis {
    fn active(&self, day: i64) -> bool {
        self.onset <= day && self.end.is_none_or(|end| day <= end)
    }

    fn code(&self) -> (&'static str, &'static str) {
        let (code, display, _) = self.disease.icd10[self.code];
        (code, display)
    }

    /// The CodeableConcept: ICD-10-CM, then SNOMED CT when known.
    fn concept(&self) -> Value {
        let (code, display) = self.code();
        let mut codings = vec![coding(ICD10CM, code, display)];
        if let Some((code, display)) = self.disease.snomed {
            codings.push(coding(SNOMED, code, display));
        }
        json!({ "coding": codings, "text": self.disease.text })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum VisitKind {
    Diagnosis(usize),
    Acute(usize),
    FollowUp(usize),
    Wellness,
}

struct Visit {
    day: i64,
    kind: VisitKind,
}

/// The encounter being written: what the resources made during it refer to.
struct Enc {
    url: String,
    start: i64,
    minutes: i64,
}

#[derive(Default)]
struct Out {
    encounters: Vec<Value>,
    conditions: Vec<Value>,
    observations: Vec<Value>,
    medications: Vec<Value>,
    procedures: Vec<Value>,
    reports: Vec<Value>,
}

struct Gen {
    draw: Draw,
    first_day: i64,
    last_day: i64,
    person: Person,
    diagnoses: Vec<Diagnosis>,
    out: Out,
    prevalent_recorded: bool,
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "system": system, "code": code, "display": display })
}

fn urn(id: &str) -> String {
    format!("urn:uuid:{id}")
}

fn entry(id: &str, resource: Value) -> Value {
    json!({ "fullUrl": urn(id), "resource": resource })
}

fn quantity(value: f64, loinc: &Loinc) -> Value {
    let v = round(value, loinc.decimals);
    let number = if loinc.decimals == 0 { json!(v as i64) } else { json!(v) };
    json!({ "value": number, "unit": loinc.unit, "system": UCUM, "code": loinc.unit })
}

fn loinc_concept(code: &str, display: &str) -> Value {
    json!({ "coding": [coding(LOINC, code, display)], "text": display })
}

impl Gen {
    fn new(mut draw: Draw, first_year: i32, last_year: i32) -> Gen {
        let person = Person::draw(&mut draw, last_year);
        Gen {
            draw,
            first_day: year_start(i64::from(first_year)),
            last_day: year_end(i64::from(last_year)),
            person,
            diagnoses: Vec::new(),
            out: Out::default(),
            prevalent_recorded: false,
        }
    }

    fn patient_ref(&self) -> Value {
        json!({ "reference": urn(&self.person.id) })
    }

    fn has(&self, dx: Dx) -> bool {
        self.diagnoses.iter().any(|d| d.disease.dx == dx)
    }

    fn active(&self, dx: Dx, day: i64) -> Option<&Diagnosis> {
        self.diagnoses.iter().find(|d| d.disease.dx == dx && d.active(day))
    }

    fn is_active(&self, dx: Dx, day: i64) -> bool {
        self.active(dx, day).is_some()
    }

    /// Whether a drug with `effect` was started at least `lag` days before `day`.
    fn treated(&self, effect: Effect, day: i64, lag: i64) -> bool {
        self.diagnoses.iter().flat_map(|d| &d.meds).any(|rx| rx.med.effect == effect && rx.start + lag <= day)
    }

    fn factor(&self, f: Factor) -> bool {
        match f {
            Factor::Has(dx) => self.has(dx),
            Factor::Smoker => self.person.smoking == Smoking::Current,
            Factor::FormerSmoker => self.person.smoking == Smoking::Former,
        }
    }

    /// The rate of `d` at `age` for this person: sex, required and risk factors applied.
    fn rate(&self, d: &Disease, age: f64) -> f64 {
        if d.only.is_some_and(|s| s != self.person.sex)
            || d.requires.is_some_and(|f| !self.factor(f))
            || d.excludes.iter().any(|dx| self.has(*dx))
            || age < d.onset_age_min
        {
            return 0.0;
        }
        let mut r = at_age(&d.rate, age);
        if d.only.is_none() {
            let f = d.female;
            r *= if self.person.sex == Sex::Female { 2.0 * f / (1.0 + f) } else { 2.0 / (1.0 + f) };
        }
        for (factor, m) in d.risks {
            if self.factor(*factor) {
                r *= m;
            }
        }
        r
    }

    fn sample_conditions(&mut self) {
        for d in DISEASES {
            match d.acute {
                None => self.sample_chronic(d),
                Some(a) => self.sample_acute(d, a),
            }
        }
        // Diabetic kidney disease is coded as such.
        let ckd = self.has(Dx::KidneyDisease);
        if let Some(i) = self.diagnoses.iter().position(|d| d.disease.dx == Dx::Type2Diabetes) {
            if ckd && self.draw.chance(0.4) {
                self.diagnoses[i].code = 2;
            }
        }
        self.choose_meds();
    }

    /// Drugs for every diagnosis, in the order they start, so that a long-term drug of a class
    /// already taken is not started again (atorvastatin after a myocardial infarction is not
    /// prescribed again when hyperlipidaemia is diagnosed later).
    fn choose_meds(&mut self) {
        let mut order: Vec<usize> = (0..self.diagnoses.len()).collect();
        order.sort_by_key(|&i| (self.diagnoses[i].med_start, i));
        let mut classes: Vec<&'static str> = Vec::new();
        for i in order {
            let d = &self.diagnoses[i];
            let (disease, start, code) = (d.disease, d.med_start, d.code().0);
            for (med, p) in disease.meds {
                // Basal insulin is likelier when glucose runs high.
                let p = if med.code == INSULIN_GLARGINE.code && code == "E11.65" { p + 0.25 } else { *p };
                if !self.draw.chance(p) || (med.chronic && classes.contains(&med.class)) {
                    continue;
                }
                if med.chronic {
                    classes.push(med.class);
                }
                self.diagnoses[i].meds.push(Rx { med, start, emitted: false });
            }
        }
    }

    fn sample_chronic(&mut self, d: &'static Disease) {
        let age_end = f64::from(self.person.age_end);
        if !self.draw.chance(self.rate(d, age_end).min(0.95)) {
            return;
        }
        // Onset: invert the cumulative (running maximum) prevalence curve, so conditions of
        // childhood begin young and those of old age late.
        let curve: Vec<f64> = (0..=self.person.age_end)
            .scan(0.0f64, |max, a| {
                *max = max.max(self.rate(d, f64::from(a)));
                Some(*max)
            })
            .collect();
        let top = curve.last().copied().unwrap_or(0.0);
        let target = self.draw.unit() * top;
        let years = curve.iter().position(|p| *p >= target && *p > 0.0).unwrap_or(curve.len().saturating_sub(1));
        let onset_age = (years as f64 - 1.0 + self.draw.unit()).max(d.onset_age_min).min(age_end + 0.99);
        let onset = (self.person.birth + (onset_age * 365.25) as i64).clamp(self.person.birth, self.last_day);
        let prevalent = onset < self.first_day;
        let precision = if !prevalent {
            Precision::Day
        } else {
            [Precision::Year, Precision::Month, Precision::Day][self.draw.weighted(&[40, 25, 35])]
        };
        let code = self.draw.weighted(&d.icd10.iter().map(|c| c.2).collect::<Vec<_>>());
        let severity = d.severity.then(|| self.draw.weighted(&SEVERITIES.map(|s| s.2)));
        let med_start = if prevalent { (onset + self.draw.int(7, 365)).min(self.first_day - 1) } else { onset };
        self.diagnoses.push(Diagnosis {
            disease: d,
            code,
            onset,
            precision,
            prevalent,
            end: None,
            severity,
            med_start,
            meds: Vec::new(),
            url: None,
        });
    }

    fn sample_acute(&mut self, d: &'static Disease, a: Acute) {
        let first_year = civil_from_days(self.first_day).0;
        let last_year = civil_from_days(self.last_day).0;
        let not_before = a.not_before.map_or(i64::MIN, |(y, m, d)| days_from_civil(y, m, d));
        for year in first_year..=last_year {
            let lo = year_start(year).max(self.person.birth).max(not_before);
            let hi = year_end(year);
            if lo > hi {
                continue;
            }
            let age = years_between(self.person.birth, (lo + hi) / 2).max(0.0);
            let rate = self.rate(d, age);
            let episodes =
                u32::from(self.draw.chance(rate.min(0.9))) + u32::from(self.draw.chance((rate / 4.0).min(0.5)));
            for _ in 0..episodes {
                let onset = self.draw.int(lo, hi);
                let end = onset + self.draw.int(a.days.0, a.days.1);
                let code = self.draw.weighted(&d.icd10.iter().map(|c| c.2).collect::<Vec<_>>());
                self.diagnoses.push(Diagnosis {
                    disease: d,
                    code,
                    onset,
                    precision: Precision::Day,
                    prevalent: false,
                    end: Some(end),
                    severity: None,
                    med_start: onset,
                    meds: Vec::new(),
                    url: None,
                });
            }
        }
    }

    fn plan_visits(&mut self) -> Vec<Visit> {
        let mut visits = Vec::new();
        let first_year = civil_from_days(self.first_day).0;
        let last_year = civil_from_days(self.last_day).0;
        let chronic = self.diagnoses.iter().any(|d| d.end.is_none());
        for year in first_year..=last_year {
            let lo = year_start(year).max(self.person.birth);
            let hi = year_end(year);
            if lo > hi {
                continue;
            }
            let age = age_at(self.person.birth, hi);
            let p = if age < 18 || chronic { 0.8 } else { 0.6 };
            if self.draw.chance(p) {
                visits.push(Visit { day: self.draw.int(lo, hi), kind: VisitKind::Wellness });
            }
        }
        for (i, d) in self.diagnoses.iter().enumerate() {
            if d.end.is_some() {
                visits.push(Visit { day: d.onset, kind: VisitKind::Acute(i) });
                continue;
            }
            if !d.prevalent {
                visits.push(Visit { day: d.onset, kind: VisitKind::Diagnosis(i) });
            }
            for year in first_year..=last_year {
                let lo = year_start(year).max(self.person.birth).max(if d.prevalent { i64::MIN } else { d.onset + 30 });
                let hi = year_end(year);
                if lo <= hi && self.draw.chance(d.disease.follow_up) {
                    visits.push(Visit { day: self.draw.int(lo, hi), kind: VisitKind::FollowUp(i) });
                }
            }
        }
        if visits.is_empty() {
            let lo = year_start(last_year).max(self.person.birth);
            visits.push(Visit { day: self.draw.int(lo, self.last_day), kind: VisitKind::Wellness });
        }
        visits.sort_by_key(|v| (v.day, v.kind));
        visits
    }

    // -----------------------------------------------------------------------------------------
    // Visits.

    fn visit(&mut self, v: &Visit) {
        let enc = self.encounter(v);
        if !self.prevalent_recorded {
            self.prevalent_recorded = true;
            for i in 0..self.diagnoses.len() {
                if self.diagnoses[i].prevalent {
                    self.condition(i, &enc);
                }
            }
        }
        match v.kind {
            VisitKind::Wellness => self.wellness(&enc, v.day),
            VisitKind::Diagnosis(i) => {
                self.condition(i, &enc);
                self.vitals(&enc, v.day, false, false);
                self.disease_work(i, &enc, v.day, true);
            }
            VisitKind::FollowUp(i) => {
                self.vitals(&enc, v.day, false, false);
                self.disease_work(i, &enc, v.day, false);
            }
            VisitKind::Acute(i) => {
                self.condition(i, &enc);
                let fever = self.diagnoses[i].disease.acute.is_some_and(|a| a.fever);
                self.vitals(&enc, v.day, false, fever);
                self.disease_work(i, &enc, v.day, true);
            }
        }
    }

    fn encounter(&mut self, v: &Visit) -> Enc {
        let id = self.draw.uuid();
        let setting = match v.kind {
            VisitKind::Acute(i) => {
                let a = self.diagnoses[i].disease.acute;
                match a {
                    Some(a) if a.setting == Setting::Ambulatory && self.draw.chance(a.emergency) => Setting::Emergency,
                    Some(a) => a.setting,
                    None => Setting::Ambulatory,
                }
            }
            _ => Setting::Ambulatory,
        };
        // Planned visits in opening hours; emergencies at any hour up to mid-afternoon, so that
        // what is done during them stays on the same day.
        let (first_hour, last_hour) = if setting == Setting::Ambulatory { (8, 16) } else { (0, 15) };
        let start = v.day * MINUTES_PER_DAY + self.draw.int(first_hour * 12, last_hour * 12 + 11) * 5;
        let minutes = match setting {
            Setting::Ambulatory => self.draw.int(3, 9) * 5,
            Setting::Emergency => self.draw.int(90, 360),
            Setting::Inpatient => self.draw.int(2, 6) * MINUTES_PER_DAY + self.draw.int(0, 600),
        };
        let age = age_at(self.person.birth, v.day);
        let (class_code, class_display) = match setting {
            Setting::Ambulatory => ("AMB", "ambulatory"),
            Setting::Emergency => ("EMER", "emergency"),
            Setting::Inpatient => ("IMP", "inpatient encounter"),
        };
        let (type_code, type_display) = match (v.kind, setting) {
            (VisitKind::Wellness, _) if age < 18 => ("410620009", "Well child visit (procedure)"),
            (VisitKind::Wellness, _) => ("162673000", "General examination of patient (procedure)"),
            (VisitKind::Diagnosis(_), _) => ("185347001", "Encounter for problem (procedure)"),
            (VisitKind::FollowUp(_), _) => ("390906007", "Follow-up encounter (procedure)"),
            (VisitKind::Acute(_), Setting::Emergency) => ("50849002", "Emergency room admission (procedure)"),
            (VisitKind::Acute(_), Setting::Inpatient) => ("32485007", "Hospital admission (procedure)"),
            (VisitKind::Acute(_), Setting::Ambulatory) => ("185345009", "Encounter for symptom (procedure)"),
        };
        let mut resource = json!({
            "resourceType": "Encounter",
            "id": id,
            "status": "finished",
            "class": { "system": ACT_CODE, "code": class_code, "display": class_display },
            "type": [{ "coding": [coding(SNOMED, type_code, type_display)], "text": type_display }],
            "subject": self.patient_ref(),
            "period": { "start": stamp(start), "end": stamp(start + minutes) },
        });
        if let VisitKind::Diagnosis(i) | VisitKind::FollowUp(i) | VisitKind::Acute(i) = v.kind {
            resource["reasonCode"] = json!([self.diagnoses[i].concept()]);
        }
        self.out.encounters.push(entry(&id, resource));
        Enc { url: urn(&id), start, minutes }
    }

    /// A time during the encounter, early in it.
    fn moment(&mut self, enc: &Enc) -> i64 {
        enc.start + self.draw.int(1, enc.minutes.clamp(2, 60) - 1)
    }

    fn condition(&mut self, i: usize, enc: &Enc) {
        if self.diagnoses[i].url.is_some() {
            return;
        }
        let id = self.draw.uuid();
        let d = &self.diagnoses[i];
        // A condition that begins in the window is recorded at the visit on its onset day.
        let onset = match d.precision {
            _ if !d.prevalent => stamp(enc.start),
            Precision::Year => date(d.onset)[..4].to_owned(),
            Precision::Month => date(d.onset)[..7].to_owned(),
            Precision::Day => date(d.onset),
        };
        let status = if d.end.is_some() { "resolved" } else { "active" };
        let category = if d.end.is_some() || !d.prevalent {
            ("encounter-diagnosis", "Encounter Diagnosis")
        } else {
            ("problem-list-item", "Problem List Item")
        };
        let mut resource = json!({
            "resourceType": "Condition",
            "id": id,
            "clinicalStatus": { "coding": [coding(CONDITION_CLINICAL, status, if status == "active" { "Active" } else { "Resolved" })] },
            "verificationStatus": { "coding": [coding(CONDITION_VERIFICATION, "confirmed", "Confirmed")] },
            "category": [{ "coding": [coding(CONDITION_CATEGORY, category.0, category.1)] }],
            "code": d.concept(),
            "subject": self.patient_ref(),
            "encounter": { "reference": enc.url },
            "onsetDateTime": onset,
            "recordedDate": stamp(enc.start),
        });
        if let Some(end) = d.end {
            resource["abatementDateTime"] = json!(date(end));
        }
        if let Some(s) = d.severity {
            let (code, display, _) = SEVERITIES[s];
            resource["severity"] = json!({ "coding": [coding(SNOMED, code, display)] });
        }
        let notes = d.disease.notes;
        if !notes.is_empty() && self.draw.chance(0.4) {
            let note = *self.draw.pick(notes);
            resource["note"] = json!([{ "text": note }]);
        }
        self.diagnoses[i].url = Some(urn(&id));
        self.out.conditions.push(entry(&id, resource));
    }

    fn wellness(&mut self, enc: &Enc, day: i64) {
        let age = age_at(self.person.birth, day);
        self.vitals(enc, day, true, false);
        if age >= 13 && self.draw.chance(0.9) {
            self.smoking_status(enc);
        }
        let diabetic = self.is_active(Dx::Type2Diabetes, day) || self.is_active(Dx::Type1Diabetes, day);
        let obese = self.is_active(Dx::Obesity, day);
        let p_a1c = if diabetic {
            1.0
        } else if self.is_active(Dx::Prediabetes, day) {
            0.8
        } else if age >= 45 || (age >= 18 && obese) {
            0.25
        } else {
            0.0
        };
        let lipid_risk = self.is_active(Dx::Hyperlipidemia, day) || self.is_active(Dx::CoronaryDisease, day);
        let p_lipids = if lipid_risk {
            0.8
        } else if age >= 40 {
            0.35
        } else if age >= 20 {
            0.1
        } else {
            0.0
        };
        let metabolic_risk =
            diabetic || self.is_active(Dx::KidneyDisease, day) || self.is_active(Dx::Hypertension, day);
        let p_metabolic = if metabolic_risk {
            0.6
        } else if age >= 18 {
            0.3
        } else {
            0.0
        };
        let p_count = if self.is_active(Dx::Anemia, day) {
            0.9
        } else if age >= 18 {
            0.15
        } else {
            0.0
        };
        for (panel, p) in [
            (Panel::A1c, p_a1c),
            (Panel::Lipids, p_lipids),
            (Panel::Metabolic, p_metabolic),
            (Panel::BloodCount, p_count),
        ] {
            if self.draw.chance(p) {
                self.panel(enc, day, panel);
            }
        }
        if age >= 12 && self.draw.chance(if self.is_active(Dx::Depression, day) { 0.6 } else { 0.2 }) {
            self.procedure(enc, &DEPRESSION_SCREENING, None);
            self.panel(enc, day, Panel::Phq9);
        }
        let on_meds = self.diagnoses.iter().any(|d| d.end.is_none() && d.meds.iter().any(|rx| rx.start <= day));
        if on_meds && self.draw.chance(0.5) {
            self.procedure(enc, &MED_RECONCILIATION, None);
        }
        if self.person.sex == Sex::Female && (40..=74).contains(&age) && self.draw.chance(0.4) {
            self.procedure(enc, &MAMMOGRAPHY, None);
        }
        if (45..=75).contains(&age) && self.draw.chance(0.07) {
            self.procedure(enc, &COLONOSCOPY, None);
        }
        if age >= 18 && self.draw.chance(0.15) {
            self.procedure(enc, &NEEDS_ASSESSMENT, None);
        }
        // Long-term drugs are renewed now and then, and listed at least once.
        for i in 0..self.diagnoses.len() {
            if self.diagnoses[i].end.is_none() {
                self.renew(i, enc, day, 0.25);
            }
        }
    }

    /// Labs, procedures and drugs of diagnosis `i` at its diagnosis (`first`) or a follow-up.
    fn disease_work(&mut self, i: usize, enc: &Enc, day: i64, first: bool) {
        let d = self.diagnoses[i].disease;
        for panel in d.labs {
            if first || self.draw.chance(0.8) {
                self.panel(enc, day, *panel);
            }
        }
        let procedures = if first { d.at_diagnosis } else { d.at_follow_up };
        for (p, chance) in procedures {
            if self.draw.chance(*chance) {
                self.procedure(enc, p, Some(i));
            }
        }
        if first {
            for k in 0..self.diagnoses[i].meds.len() {
                if self.diagnoses[i].meds[k].start <= day {
                    self.medication(i, k, enc, false);
                }
            }
        } else {
            self.renew(i, enc, day, 0.6);
        }
    }

    /// Drugs of diagnosis `i` started by `day`: written if never written, else (long-term drugs)
    /// with chance `p`.
    fn renew(&mut self, i: usize, enc: &Enc, day: i64, p: f64) {
        for k in 0..self.diagnoses[i].meds.len() {
            let rx = &self.diagnoses[i].meds[k];
            if rx.start > day {
                continue;
            }
            let chronic = rx.med.chronic;
            if !rx.emitted || (chronic && self.draw.chance(p)) {
                let renewal = self.diagnoses[i].meds[k].emitted;
                self.medication(i, k, enc, renewal);
            }
        }
    }

    fn medication(&mut self, i: usize, k: usize, enc: &Enc, renewal: bool) {
        let id = self.draw.uuid();
        let d = &self.diagnoses[i];
        let med = d.meds[k].med;
        let mut resource = json!({
            "resourceType": "MedicationRequest",
            "id": id,
            "status": if med.chronic { "active" } else { "completed" },
            "intent": "order",
            "medicationCodeableConcept": { "coding": [coding(RXNORM, med.code, med.display)], "text": med.text },
            "subject": self.patient_ref(),
            "encounter": { "reference": enc.url },
            "authoredOn": stamp(enc.start + enc.minutes.min(30)),
            "reasonCode": [d.concept()],
            "dosageInstruction": [{ "sequence": 1, "text": med.dosage }],
        });
        if let Some(url) = &d.url {
            resource["reasonReference"] = json!([{ "reference": url }]);
        }
        if renewal && !med.renewal_note.is_empty() && self.draw.chance(0.3) {
            resource["note"] = json!([{ "text": med.renewal_note }]);
        }
        self.diagnoses[i].meds[k].emitted = true;
        self.out.medications.push(entry(&id, resource));
    }

    fn procedure(&mut self, enc: &Enc, p: &Proc, reason: Option<usize>) {
        let id = self.draw.uuid();
        let mut resource = json!({
            "resourceType": "Procedure",
            "id": id,
            "status": "completed",
            "code": { "coding": [coding(SNOMED, p.code, p.display)], "text": p.display.trim_end_matches(" (procedure)") },
            "subject": self.patient_ref(),
            "encounter": { "reference": enc.url },
        });
        if p.minutes > 0 {
            let start = enc.start + self.draw.int(60, 240);
            let end = start + p.minutes + self.draw.int(0, p.minutes / 2);
            resource["performedPeriod"] = json!({ "start": stamp(start), "end": stamp(end) });
        } else {
            let at = self.moment(enc);
            resource["performedDateTime"] = json!(stamp(at));
        }
        if let Some(i) = reason {
            resource["reasonCode"] = json!([self.diagnoses[i].concept()]);
            if let Some(url) = &self.diagnoses[i].url {
                resource["reasonReference"] = json!([{ "reference": url }]);
            }
        }
        self.out.procedures.push(entry(&id, resource));
    }

    // -----------------------------------------------------------------------------------------
    // Observations.

    fn observation(&mut self, enc: &Enc, at: i64, code: &Loinc, value: f64) -> String {
        let id = self.draw.uuid();
        let mut resource = json!({
            "resourceType": "Observation",
            "id": id,
            "status": "final",
            "category": [{ "coding": [coding(OBSERVATION_CATEGORY, code.category, category_display(code.category))] }],
            "code": loinc_concept(code.code, code.display),
            "subject": self.patient_ref(),
            "encounter": { "reference": enc.url },
            "effectiveDateTime": stamp(at),
            "valueQuantity": quantity(value, code),
        });
        if code.category == "laboratory" {
            resource["issued"] = json!(stamp(at + self.draw.int(60, 600)));
        }
        self.out.observations.push(entry(&id, resource));
        urn(&id)
    }

    fn vitals(&mut self, enc: &Enc, day: i64, full: bool, fever: bool) {
        let at = self.moment(enc);
        let age = years_between(self.person.birth, day);
        let height = self.height(age) + self.draw.normal(0.0, 0.3);
        let bmi = self.bmi(day, age) + self.draw.normal(0.0, 0.35);
        let weight = round(bmi * (height / 100.0).powi(2), 1);
        let height = round(height, 1);
        if full {
            self.observation(enc, at, &HEIGHT, height);
        }
        self.observation(enc, at, &WEIGHT, weight);
        if age >= 2.0 {
            let bmi = weight / (height / 100.0).powi(2);
            self.observation(enc, at, &BMI, bmi);
        }
        if fever {
            let t = self.draw.uniform(37.9, 39.6);
            self.observation(enc, at, &TEMPERATURE, t);
        }
        if age >= 3.0 {
            self.blood_pressure(enc, at, day, age);
        }
        let rate = self.heart_rate(day, age, fever);
        self.observation(enc, at, &HEART_RATE, rate);
    }

    fn height(&self, age: f64) -> f64 {
        // Share of adult height by age (both sexes; a rough growth curve).
        let share = interpolate(
            &[(0.0, 0.29), (1.0, 0.43), (2.0, 0.5), (4.0, 0.58), (8.0, 0.72), (12.0, 0.85), (15.0, 0.95), (18.0, 1.0)],
            age,
        );
        self.person.height_cm * share
    }

    fn bmi(&self, day: i64, age: f64) -> f64 {
        let z = self.person.bmi_z;
        let obese = self.is_active(Dx::Obesity, day);
        if age < 2.0 {
            return 13.5 + 2.0 * age + z * 0.8;
        }
        if age < 18.0 {
            let base = interpolate(&[(2.0, 16.5), (6.0, 15.5), (12.0, 18.0), (18.0, 21.5)], age);
            return base + z * 1.8 + if obese { 6.0 } else { 0.0 };
        }
        if obese {
            (31.0 + z.abs() * 4.0).min(48.0)
        } else {
            (24.8 + z * 2.6).clamp(17.5, 29.8)
        }
    }

    fn blood_pressure(&mut self, enc: &Enc, at: i64, day: i64, age: f64) {
        let z = self.person.pressure_z;
        let mut systolic = if age < 13.0 {
            92.0 + 1.5 * age + z * 5.0
        } else if age < 18.0 {
            108.0 + z * 7.0
        } else {
            112.0 + 0.35 * (age - 20.0).max(0.0) + z * 7.0
        };
        if self.is_active(Dx::Hypertension, day) {
            systolic += if self.treated(Effect::Pressure, day, 30) { 8.0 } else { 22.0 };
        }
        if self.is_active(Dx::Obesity, day) {
            systolic += 4.0;
        }
        let systolic = (systolic + self.draw.normal(0.0, 6.0)).clamp(75.0, 220.0).round();
        let diastolic = (0.45 * systolic + 18.0 + self.draw.normal(0.0, 5.0)).clamp(40.0, systolic - 20.0).round();
        let id = self.draw.uuid();
        let component =
            |c: &Loinc, v: f64| json!({ "code": loinc_concept(c.code, c.display), "valueQuantity": quantity(v, c) });
        let resource = json!({
            "resourceType": "Observation",
            "id": id,
            "status": "final",
            "category": [{ "coding": [coding(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")] }],
            "code": loinc_concept(BP_PANEL.code, BP_PANEL.display),
            "subject": self.patient_ref(),
            "encounter": { "reference": enc.url },
            "effectiveDateTime": stamp(at),
            "component": [component(&SYSTOLIC, systolic), component(&DIASTOLIC, diastolic)],
        });
        self.out.observations.push(entry(&id, resource));
    }

    fn heart_rate(&mut self, day: i64, age: f64, fever: bool) -> f64 {
        let base = interpolate(&[(0.0, 130.0), (1.0, 115.0), (6.0, 95.0), (13.0, 80.0), (18.0, 73.0)], age);
        let af = self.is_active(Dx::AtrialFibrillation, day);
        let rate = base
            + self.draw.normal(0.0, if af { 15.0 } else { 8.0 })
            + if af { 12.0 } else { 0.0 }
            + if fever { 12.0 } else { 0.0 };
        rate.clamp(40.0, 190.0)
    }

    fn smoking_status(&mut self, enc: &Enc) {
        let id = self.draw.uuid();
        let at = self.moment(enc);
        let (code, display) = match self.person.smoking {
            Smoking::Current => ("449868002", "Current every day smoker (finding)"),
            Smoking::Former => ("8517006", "Ex-smoker (finding)"),
            Smoking::Never => ("266919005", "Never smoked tobacco (finding)"),
        };
        let resource = json!({
            "resourceType": "Observation",
            "id": id,
            "status": "final",
            "category": [{ "coding": [coding(OBSERVATION_CATEGORY, "social-history", "Social History")] }],
            "code": loinc_concept(SMOKING_STATUS.0, SMOKING_STATUS.1),
            "subject": self.patient_ref(),
            "encounter": { "reference": enc.url },
            "effectiveDateTime": stamp(at),
            "valueCodeableConcept": { "coding": [coding(SNOMED, code, display)], "text": display.trim_end_matches(" (finding)") },
        });
        self.out.observations.push(entry(&id, resource));
    }

    /// A lab panel (its observations and, for real panels, a DiagnosticReport).
    fn panel(&mut self, enc: &Enc, day: i64, panel: Panel) {
        let at = self.moment(enc);
        let age = years_between(self.person.birth, day);
        let (report, results, conclusion): ((&str, &str), Vec<String>, Option<String>) = match panel {
            Panel::A1c => {
                let a1c = round(self.a1c(day), 1);
                let url = self.observation(enc, at, &HBA1C, a1c);
                let conclusion = if a1c >= 6.5 {
                    format!("HbA1c {a1c} %, above target: consistent with poorly controlled diabetes.")
                } else if a1c >= 5.7 {
                    format!("HbA1c {a1c} %, in the prediabetes range.")
                } else {
                    "HbA1c within normal limits.".to_owned()
                };
                ((HBA1C.code, HBA1C.display), vec![url], Some(conclusion))
            }
            Panel::Lipids => {
                let ldl = self.ldl(day);
                let hdl = (self.person.hdl + self.draw.normal(0.0, 3.0)).round();
                let tg = (self.person.triglycerides
                    + if self.is_active(Dx::Type2Diabetes, day) || self.is_active(Dx::Obesity, day) {
                        60.0
                    } else {
                        0.0
                    }
                    + self.draw.normal(0.0, 15.0))
                .clamp(35.0, 600.0)
                .round();
                let total = (ldl + hdl + tg / 5.0).round();
                let urls = vec![
                    self.observation(enc, at, &CHOLESTEROL, total),
                    self.observation(enc, at, &HDL, hdl),
                    self.observation(enc, at, &LDL, ldl),
                    self.observation(enc, at, &TRIGLYCERIDES, tg),
                ];
                let conclusion = if ldl >= 160.0 {
                    "LDL cholesterol elevated; lipid-lowering therapy recommended."
                } else if ldl >= 130.0 {
                    "LDL cholesterol borderline high."
                } else {
                    "Lipid panel within target."
                };
                (("57698-3", "Lipid panel with direct LDL - Serum or Plasma"), urls, Some(conclusion.to_owned()))
            }
            Panel::Metabolic => {
                let a1c = self.a1c(day);
                let fasting = if a1c < 5.7 { 12.0 } else { 0.0 };
                let glucose = (28.7 * a1c - 46.7 - fasting + self.draw.normal(0.0, 9.0)).clamp(60.0, 450.0).round();
                let ckd = self.is_active(Dx::KidneyDisease, day);
                let sodium = self.draw.normal(140.0, 2.0).clamp(130.0, 150.0).round();
                let potassium = (self.draw.normal(4.2, 0.3) + if ckd { 0.4 } else { 0.0 }).clamp(3.0, 6.2);
                let mut urls = vec![
                    self.observation(enc, at, &GLUCOSE, glucose),
                    self.observation(enc, at, &SODIUM, sodium),
                    self.observation(enc, at, &POTASSIUM, potassium),
                ];
                let egfr = if age >= 18.0 {
                    let (creatinine, egfr) = self.kidney(day, age);
                    urls.push(self.observation(enc, at, &CREATININE, creatinine));
                    urls.push(self.observation(enc, at, &EGFR, egfr));
                    Some(egfr)
                } else {
                    let creatinine = (0.2 + 0.03 * age + self.draw.normal(0.0, 0.05)).clamp(0.15, 1.0);
                    urls.push(self.observation(enc, at, &CREATININE, creatinine));
                    None
                };
                let conclusion = match egfr {
                    Some(e) if e < 30.0 => "Severely reduced eGFR, consistent with chronic kidney disease stage 4.",
                    Some(e) if e < 60.0 => "Reduced eGFR, consistent with chronic kidney disease stage 3.",
                    _ if glucose >= 200.0 => "Glucose markedly raised.",
                    _ => "Electrolytes and renal function within normal limits.",
                };
                (("51990-0", "Basic metabolic panel - Blood"), urls, Some(conclusion.to_owned()))
            }
            Panel::BloodCount => {
                let hb = self.hemoglobin(day, age);
                let infection = self.is_active(Dx::Pneumonia, day) || self.is_active(Dx::Appendicitis, day);
                let wbc =
                    if infection { self.draw.uniform(11.5, 18.0) } else { self.draw.normal(7.0, 1.4).clamp(3.8, 10.8) };
                let urls =
                    vec![self.observation(enc, at, &HEMOGLOBIN, hb), self.observation(enc, at, &LEUKOCYTES, wbc)];
                let low = if self.person.sex == Sex::Female { 12.0 } else { 13.0 };
                let conclusion = match (round(hb, 1) < low, infection) {
                    (true, _) => "Low haemoglobin, consistent with anaemia.",
                    (false, true) => "Leucocytosis, consistent with acute infection.",
                    (false, false) => "Full blood count within normal limits.",
                };
                (("58410-2", "CBC panel - Blood by Automated count"), urls, Some(conclusion.to_owned()))
            }
            Panel::Thyroid => {
                let tsh = if self.is_active(Dx::Hypothyroidism, day) && !self.treated(Effect::Thyroid, day, 60) {
                    self.draw.uniform(6.0, 15.0)
                } else {
                    self.draw.uniform(0.5, 4.0)
                };
                self.observation(enc, at, &TSH, tsh);
                return;
            }
            Panel::Phq9 => {
                let score = if self.is_active(Dx::Depression, day) {
                    (self.draw.int(10, 22) - if self.treated(Effect::Mood, day, 42) { 5 } else { 0 }) as f64
                } else {
                    self.draw.int(0, 5) as f64
                };
                self.observation(enc, at, &PHQ9, score);
                return;
            }
        };
        let id = self.draw.uuid();
        let mut resource = json!({
            "resourceType": "DiagnosticReport",
            "id": id,
            "status": "final",
            "category": [{ "coding": [coding(REPORT_CATEGORY, "LAB", "Laboratory")] }],
            "code": loinc_concept(report.0, report.1),
            "subject": self.patient_ref(),
            "encounter": { "reference": enc.url },
            "effectiveDateTime": stamp(at),
            "issued": stamp(at + self.draw.int(120, 900)),
            "result": results.iter().map(|r| json!({ "reference": r })).collect::<Vec<_>>(),
        });
        if let Some(text) = conclusion.filter(|_| self.draw.chance(0.6)) {
            resource["conclusion"] = json!(text);
        }
        self.out.reports.push(entry(&id, resource));
    }

    fn a1c(&mut self, day: i64) -> f64 {
        let diabetic = self.active(Dx::Type2Diabetes, day).or_else(|| self.active(Dx::Type1Diabetes, day));
        if let Some(d) = diabetic {
            let hyper = if d.code().0 == "E11.65" { 0.8 } else { 0.0 };
            let treated = if self.treated(Effect::Glucose, day, 90) { 0.7 } else { 0.0 };
            return (self.person.a1c_diabetic + hyper - treated + self.draw.normal(0.0, 0.25)).clamp(6.5, 12.5);
        }
        if self.is_active(Dx::Prediabetes, day) {
            return self.draw.uniform(5.7, 6.4);
        }
        self.draw.normal(5.3, 0.18).clamp(4.5, 5.6)
    }

    fn ldl(&mut self, day: i64) -> f64 {
        let base = if self.is_active(Dx::Hyperlipidemia, day) {
            (168.0 + self.person.ldl_z * 20.0).clamp(135.0, 240.0)
        } else {
            (108.0 + self.person.ldl_z * 20.0).clamp(50.0, 159.0)
        };
        let statin = if self.treated(Effect::Lipids, day, 42) { 0.62 } else { 1.0 };
        (base * statin + self.draw.normal(0.0, 6.0)).clamp(30.0, 300.0).round()
    }

    /// Creatinine (mg/dL) and the eGFR the MDRD study equation gives for it (adults).
    fn kidney(&mut self, day: i64, age: f64) -> (f64, f64) {
        let target = match self.active(Dx::KidneyDisease, day).map(|d| d.code().0) {
            Some("N18.4") => 16.0 + 13.0 * self.person.egfr_kidney,
            Some(_) => 32.0 + 26.0 * self.person.egfr_kidney,
            None => (100.0 - 0.7 * (age - 30.0).max(0.0) + 9.0 * self.person.egfr_z).clamp(62.0, 125.0),
        };
        let target = target * (1.0 + self.draw.normal(0.0, 0.03));
        let sex = if self.person.sex == Sex::Female { 0.742 } else { 1.0 };
        let factor = 175.0 * age.powf(-0.203) * sex;
        let creatinine = round((target / factor).powf(-1.0 / 1.154), 2).clamp(0.3, 8.0);
        let egfr = (factor * creatinine.powf(-1.154)).round();
        (creatinine, egfr)
    }

    fn hemoglobin(&mut self, day: i64, age: f64) -> f64 {
        let anemic = self.is_active(Dx::Anemia, day);
        let mut hb = if anemic {
            if self.person.sex == Sex::Female {
                self.draw.uniform(9.0, 11.4)
            } else {
                self.draw.uniform(10.0, 12.4)
            }
        } else if age < 12.0 {
            self.draw.normal(12.4, 0.6)
        } else {
            self.person.hemoglobin + self.draw.normal(0.0, 0.3)
        };
        if self.is_active(Dx::KidneyDisease, day) {
            hb -= 0.8;
        }
        hb.clamp(6.5, 18.5)
    }

    fn finish(self) -> SynthBundle {
        let p = &self.person;
        let gender = if p.sex == Sex::Female { "female" } else { "male" };
        let mut name = json!({ "use": "official", "family": p.family, "given": [p.given] });
        if p.age_end >= 18 {
            name["prefix"] = json!([if p.sex == Sex::Female { "Ms." } else { "Mr." }]);
        }
        let patient = json!({
            "resourceType": "Patient",
            "id": p.id,
            "identifier": [{
                "type": { "coding": [coding("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number")] },
                "system": "urn:medchain:synthetic:mrn",
                "value": p.mrn.to_string(),
            }],
            "name": [name],
            "gender": gender,
            "birthDate": date(p.birth),
        });
        let mut entries = vec![entry(&p.id, patient)];
        let out = self.out;
        for group in [out.encounters, out.conditions, out.observations, out.medications, out.procedures, out.reports] {
            entries.extend(group);
        }
        let bundle = json!({ "resourceType": "Bundle", "type": "collection", "entry": entries });
        SynthBundle { patient_id: self.person.id, bundle }
    }
}

fn category_display(code: &str) -> &'static str {
    match code {
        "vital-signs" => "Vital Signs",
        "laboratory" => "Laboratory",
        "survey" => "Survey",
        _ => "Social History",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        for day in [-719_468, -1, 0, 1, 11_016, 19_787, 20_000, 400_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day, "{y}-{m}-{d}");
        }
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(days_from_civil(2024, 2, 29)), "2024-02-29");
        assert_eq!(stamp(days_from_civil(2024, 3, 5) * MINUTES_PER_DAY + 9 * 60 + 30), "2024-03-05T09:30:00Z");
        assert_eq!(age_at(days_from_civil(1967, 3, 5), days_from_civil(2024, 3, 4)), 56);
        assert_eq!(age_at(days_from_civil(1967, 3, 5), days_from_civil(2024, 3, 5)), 57);
    }

    #[test]
    fn risk_factors_are_drawn_before_what_they_raise() {
        for (i, d) in DISEASES.iter().enumerate() {
            let earlier = |dx: Dx| DISEASES[..i].iter().any(|e| e.dx == dx);
            for (factor, _) in d.risks {
                if let Factor::Has(dx) = factor {
                    assert!(earlier(*dx), "{:?} is raised by {dx:?}, drawn later", d.dx);
                }
            }
            for dx in d.excludes {
                assert!(earlier(*dx), "{:?} excludes {dx:?}, drawn later", d.dx);
            }
            assert!(!d.icd10.is_empty() && d.icd10.iter().any(|c| c.2 > 0), "{:?} has no code to draw", d.dx);
        }
    }

    #[test]
    fn samplers_stay_in_range() {
        let mut draw = Draw::new(7, 3);
        for n in [1u64, 2, 3, 10, 1000] {
            for _ in 0..200 {
                assert!(draw.below(n) < n);
            }
        }
        for _ in 0..1000 {
            let u = draw.unit();
            assert!((0.0..1.0).contains(&u));
            let x = draw.int(-3, 4);
            assert!((-3..=4).contains(&x));
        }
        assert_eq!(draw.int(5, 5), 5);
        assert_eq!(draw.int(5, 2), 5);
        assert_eq!(draw.weighted(&[0, 0, 3]), 2);
        let uuid = draw.uuid();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
    }

    #[test]
    fn windows_are_clamped_not_refused() {
        let w = |start_year, end_year| window(&SynthOptions { seed: 0, patients: 0, start_year, end_year });
        assert_eq!(w(2019, 2025), (2019, 2025));
        assert_eq!(w(2025, 2019), (2019, 2025));
        assert_eq!(w(-5, i32::MAX), (YEAR_MAX - WINDOW_YEARS_MAX + 1, YEAR_MAX));
        assert_eq!(w(0, 0), (YEAR_MIN, YEAR_MIN));
    }
}
