//! The synthetic patient generator: determinism (same seed, same bytes; patient i alone equals
//! patient i in sequence), bundle shape and references, every resource accepted by the keyword
//! extractor with the expected kinds of terms, valid ICD-10 codes, dates in the window, and
//! clinical plausibility (prevalence by age, values that follow conditions).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use index::keywords::{extract, extract_value, icd10_ancestors, ExtractContext, Extracted, FhirDate};
use index::synth::{icd10_codes, patient, patients, SynthBundle, SynthError, SynthOptions, AGE_MAX};
use serde_json::Value;

fn opts(seed: u64, n: usize) -> SynthOptions {
    SynthOptions { seed, patients: n, ..SynthOptions::default() }
}

fn bytes(b: &SynthBundle) -> String {
    serde_json::to_string(&b.bundle).unwrap()
}

fn resources(b: &SynthBundle) -> impl Iterator<Item = &Value> {
    b.bundle["entry"].as_array().unwrap().iter().map(|e| &e["resource"])
}

fn of_type<'a>(b: &'a SynthBundle, t: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    resources(b).filter(move |r| r["resourceType"] == t)
}

fn codes<'a>(concept: &'a Value, system: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    concept["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |c| c["system"] == system)
        .filter_map(|c| c["code"].as_str())
}

const ICD10CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";
const LOINC: &str = "http://loinc.org";

/// The 200 patients most tests look at, generated once per test binary run.
fn cohort() -> &'static [SynthBundle] {
    static COHORT: std::sync::OnceLock<Vec<SynthBundle>> = std::sync::OnceLock::new();
    COHORT.get_or_init(|| patients(&opts(20_240_305, 200)).collect())
}

fn birth_date(b: &SynthBundle) -> FhirDate {
    FhirDate::parse(of_type(b, "Patient").next().unwrap()["birthDate"].as_str().unwrap()).unwrap()
}

fn has(x: &Extracted, field: &str, value: &str) -> bool {
    x.terms.iter().any(|t| t.field == field && t.value == value)
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a: Vec<String> = patients(&opts(42, 20)).map(|b| bytes(&b)).collect();
    let b: Vec<String> = patients(&opts(42, 20)).map(|b| bytes(&b)).collect();
    assert_eq!(a, b);
    let c: Vec<String> = patients(&opts(43, 20)).map(|b| bytes(&b)).collect();
    for (x, y) in a.iter().zip(&c) {
        assert_ne!(x, y);
    }
    // Patients of one seed differ from each other too.
    assert_eq!(a.iter().collect::<HashSet<_>>().len(), a.len());
    // The window changes the patients.
    let shifted = SynthOptions { start_year: 2015, end_year: 2021, ..opts(42, 1) };
    assert_ne!(bytes(&patient(42, 0, &shifted)), a[0]);
}

#[test]
fn patient_i_alone_equals_patient_i_in_sequence() {
    let o = opts(9, 30);
    let all: Vec<SynthBundle> = patients(&o).collect();
    assert_eq!(all.len(), 30);
    for i in [0usize, 1, 17, 29] {
        assert_eq!(patient(9, i as u64, &o), all[i]);
    }
    // In reverse order and out of a different `patients` count.
    for i in (0..30).rev() {
        assert_eq!(bytes(&patient(9, i, &opts(9, 1000))), bytes(&all[i as usize]));
    }
    // A large index does not need the ones before it.
    let far = patient(9, 5_000_000_000, &o);
    assert_eq!(far, patient(9, 5_000_000_000, &o));
}

#[test]
fn bundles_are_well_formed_collections_with_resolving_references() {
    let order =
        ["Patient", "Encounter", "Condition", "Observation", "MedicationRequest", "Procedure", "DiagnosticReport"];
    let mut ids = HashSet::new();
    for b in cohort() {
        assert_eq!(b.bundle["resourceType"], "Bundle");
        assert_eq!(b.bundle["type"], "collection");
        let entries = b.bundle["entry"].as_array().unwrap();
        let patient_url = format!("urn:uuid:{}", b.patient_id);
        assert_eq!(entries[0]["fullUrl"], patient_url.as_str());
        assert_eq!(entries[0]["resource"]["resourceType"], "Patient");
        assert_eq!(entries[0]["resource"]["id"], b.patient_id.as_str());
        let urls: HashSet<&str> = entries.iter().map(|e| e["fullUrl"].as_str().unwrap()).collect();
        assert_eq!(urls.len(), entries.len(), "fullUrls repeat in {}", b.patient_id);
        let mut last_rank = 0;
        for e in entries {
            let r = &e["resource"];
            let t = r["resourceType"].as_str().unwrap();
            let rank = order.iter().position(|o| *o == t).unwrap_or_else(|| panic!("unexpected {t}"));
            assert!(rank >= last_rank, "{t} after {}", order[last_rank]);
            last_rank = rank;
            let id = r["id"].as_str().unwrap();
            assert_eq!(e["fullUrl"], format!("urn:uuid:{id}").as_str());
            assert!(is_uuid_v4(id), "{id}");
            assert!(ids.insert(id.to_owned()), "id {id} used twice");
            if t != "Patient" {
                assert_eq!(r["subject"]["reference"], patient_url.as_str(), "{t}/{id}");
            }
            if t != "Patient" && t != "Encounter" {
                let enc = r["encounter"]["reference"].as_str().unwrap_or_else(|| panic!("{t}/{id} has no encounter"));
                assert!(urls.contains(enc), "{t}/{id}: encounter {enc} not in the bundle");
            }
            for key in ["result", "reasonReference"] {
                for reference in r[key].as_array().into_iter().flatten() {
                    let target = reference["reference"].as_str().unwrap();
                    assert!(urls.contains(target), "{t}/{id}: {key} {target} not in the bundle");
                }
            }
        }
        let counts = b.resource_counts();
        assert_eq!(counts["Patient"], 1);
        assert!(counts["Encounter"] >= 1);
        assert_eq!(counts.values().sum::<usize>(), entries.len());
    }
}

fn is_uuid_v4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        && parts[2].starts_with('4')
        && parts[3].starts_with(['8', '9', 'a', 'b'])
}

#[test]
fn every_resource_extracts_with_the_expected_kinds_of_terms() {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut resource_count = 0;
    for b in cohort() {
        let ctx = ExtractContext::with_birth_date(birth_date(b));
        for r in resources(b) {
            resource_count += 1;
            let t = r["resourceType"].as_str().unwrap();
            let x = extract_value(r, &ctx).unwrap_or_else(|e| panic!("{e}\n{r:#}"));
            assert_eq!(x.resource_type, t);
            let terms: Vec<String> = x.terms.iter().map(|t| t.to_string()).collect();
            if t != "Patient" {
                let date = x.clinical_date.unwrap_or_else(|| panic!("{t} without a clinical date"));
                assert!(x.terms.iter().any(|t| t.field == "year"), "{t}: no year in {terms:?}");
                // A full date gives every age band; a partial one (the onset of an old condition)
                // only those its uncertainty allows.
                if date.day.is_some() {
                    assert!(x.terms.iter().any(|t| t.field == "age1"), "{t}: no age in {terms:?}");
                } else {
                    *kinds.entry("partial date").or_default() += 1;
                }
            }
            match t {
                "Patient" => {
                    assert!(x.terms.iter().any(|t| t.field == "gender"));
                    assert!(x.terms.iter().any(|t| t.field == "birthyear"));
                }
                "Condition" => {
                    let code = codes(&r["code"], ICD10CM).next().unwrap();
                    assert!(has(&x, "icd10", code), "{terms:?}");
                    let chapter = icd10_ancestors(code).into_iter().find(|a| a.starts_with("chapter-")).unwrap();
                    assert!(has(&x, "icd10", &chapter), "{terms:?}");
                    *kinds.entry("icd10 chapter").or_default() += 1;
                }
                "Observation" => {
                    let code = codes(&r["code"], LOINC).next().unwrap();
                    assert!(has(&x, "loinc", code));
                    if r.get("valueQuantity").is_some() || r.get("component").is_some() {
                        assert!(
                            x.terms.iter().any(|t| t.field == "value" && t.value.starts_with("loinc|")),
                            "no value band in {terms:?}"
                        );
                        *kinds.entry("value band").or_default() += 1;
                    }
                }
                "MedicationRequest" => {
                    assert!(x.terms.iter().any(|t| t.field == "rxnorm"), "{terms:?}");
                    assert!(x.terms.iter().any(|t| t.field == "icd10"), "no reason code in {terms:?}");
                }
                "Procedure" => assert!(x.terms.iter().any(|t| t.field == "snomed"), "{terms:?}"),
                "DiagnosticReport" => assert!(x.terms.iter().any(|t| t.field == "loinc"), "{terms:?}"),
                "Encounter" => {
                    assert!(x.terms.iter().any(|t| t.field == "snomed"), "{terms:?}");
                    assert!(x.terms.iter().any(|t| t.field == "code"), "no class in {terms:?}");
                }
                other => panic!("unexpected resource type {other}"),
            }
            if x.terms.iter().any(|t| t.field == "text") {
                *kinds.entry("text").or_default() += 1;
            }
        }
        // The whole bundle too, as one record: ages come from the bundle's own Patient.
        let x = extract(&bytes(b), &ExtractContext::default()).unwrap();
        assert!(x.skipped.is_empty());
        assert!(x.terms.iter().any(|t| t.field == "age5"));
    }
    assert!(resource_count > 200 * 20, "only {resource_count} resources");
    assert!(kinds["icd10 chapter"] > 200, "{kinds:?}");
    assert!(kinds["value band"] > 1000, "{kinds:?}");
    assert!(kinds["text"] > 1000, "{kinds:?}");
}

#[test]
fn every_icd10_code_is_valid_and_placed_in_a_chapter_and_block() {
    let mut used = BTreeSet::new();
    for b in cohort() {
        for r in resources(b) {
            for key in ["code", "reasonCode"] {
                let concepts: Vec<&Value> = match &r[key] {
                    Value::Array(a) => a.iter().collect(),
                    Value::Null => Vec::new(),
                    v => vec![v],
                };
                for c in concepts {
                    used.extend(codes(c, ICD10CM).map(str::to_owned));
                }
            }
        }
    }
    assert!(used.len() >= 30, "only {} ICD-10 codes used: {used:?}", used.len());
    let known: BTreeSet<String> = icd10_codes().map(|(code, _)| code.to_owned()).collect();
    assert!(known.len() >= 50, "{known:?}");
    assert!(used.is_subset(&known), "codes outside the catalogue: {:?}", used.difference(&known).collect::<Vec<_>>());
    assert!(icd10_codes().all(|(_, title)| !title.is_empty()));
    for code in &known {
        assert_eq!(index::keywords::icd10::normalise(code).as_deref(), Some(code.as_str()), "{code} is not canonical");
        let ancestors = icd10_ancestors(code);
        assert!(ancestors.iter().any(|a| a.starts_with("chapter-")), "{code}: no chapter in {ancestors:?}");
        assert!(
            ancestors.iter().any(|a| a.contains('-') && !a.starts_with("chapter-")),
            "{code}: no block in {ancestors:?}"
        );
    }
}

#[test]
fn ages_and_dates_are_plausible() {
    let o = SynthOptions::default();
    let (first, last) = (FhirDate::parse("2019-01-01").unwrap(), FhirDate::parse("2025-12-31").unwrap());
    let mut ages = Vec::new();
    let mut genders = BTreeMap::new();
    for b in cohort() {
        let birth = birth_date(b);
        let age = 2025 - u32::from(birth.year);
        assert!(age <= AGE_MAX, "age {age}");
        ages.push(age);
        let p = of_type(b, "Patient").next().unwrap();
        *genders.entry(p["gender"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        // Observations, encounters, orders, procedures and reports lie in the window and after birth.
        for r in resources(b).filter(|r| r["resourceType"] != "Patient" && r["resourceType"] != "Condition") {
            let x = extract_value(r, &ExtractContext::default()).unwrap();
            let d = x.clinical_date.unwrap();
            assert!(
                first <= d && d <= last,
                "{} dated {d:?} outside {}..={}",
                r["resourceType"],
                o.start_year,
                o.end_year
            );
            assert!(d >= birth, "{} dated before birth", r["resourceType"]);
        }
        // Conditions may begin before the window (known since), never before birth or after it.
        for c in of_type(b, "Condition") {
            let onset = FhirDate::parse(c["onsetDateTime"].as_str().unwrap()).unwrap();
            assert!(onset.year >= birth.year && onset <= last, "onset {onset:?}");
        }
    }
    let adults = ages.iter().filter(|a| **a >= 18).count();
    assert!((120..=185).contains(&adults), "{adults} adults of 200");
    assert!(ages.iter().any(|a| *a < 5) && ages.iter().any(|a| *a >= 80));
    assert!(genders["female"] > 70 && genders["male"] > 70, "{genders:?}");
}

fn condition_codes(b: &SynthBundle) -> Vec<String> {
    of_type(b, "Condition").flat_map(|c| codes(&c["code"], ICD10CM).map(str::to_owned).collect::<Vec<_>>()).collect()
}

fn values(b: &SynthBundle, loinc: &str) -> Vec<f64> {
    of_type(b, "Observation")
        .filter(|o| codes(&o["code"], LOINC).any(|c| c == loinc))
        .filter_map(|o| o["valueQuantity"]["value"].as_f64())
        .collect()
}

/// The values of `loinc` before and from the onset of the first condition whose ICD-10 code starts
/// with one of `prefixes` (all before when there is none).
fn split_at_onset(b: &SynthBundle, prefixes: &[&str], loinc: &str) -> (Vec<f64>, Vec<f64>) {
    let onset = of_type(b, "Condition")
        .filter(|c| codes(&c["code"], ICD10CM).any(|code| prefixes.iter().any(|p| code.starts_with(p))))
        .map(|c| FhirDate::parse(c["onsetDateTime"].as_str().unwrap()).unwrap())
        .min();
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for o in of_type(b, "Observation").filter(|o| codes(&o["code"], LOINC).any(|c| c == loinc)) {
        let v = o["valueQuantity"]["value"].as_f64().unwrap();
        let at = FhirDate::parse(o["effectiveDateTime"].as_str().unwrap()).unwrap();
        if onset.is_some_and(|onset| onset <= at) { &mut after } else { &mut before }.push(v);
    }
    (before, after)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn prevalence_and_values_follow_the_conditions() {
    let cohort = cohort();
    let diabetic = |b: &SynthBundle| condition_codes(b).iter().any(|c| c.starts_with("E11") || c.starts_with("E10"));
    let type2 = cohort.iter().filter(|b| condition_codes(b).iter().any(|c| c.starts_with("E11"))).count();
    assert!((4..=60).contains(&type2), "{type2} of 200 with E11.*");

    // Diabetics' HbA1c (once diabetic) is higher, and in the ranges the brief gives.
    let (mut dm, mut other) = (Vec::new(), Vec::new());
    for b in cohort {
        let (_, after) = split_at_onset(b, &["E10", "E11"], "4548-4");
        dm.extend(after);
        if !diabetic(b) {
            other.extend(values(b, "4548-4"));
        }
    }
    assert!(cohort.iter().any(diabetic));
    assert!(dm.len() >= 10 && other.len() >= 10, "{} / {} HbA1c values", dm.len(), other.len());
    assert!(mean(&dm) >= 7.0 && mean(&dm) <= 10.5, "diabetic mean {}", mean(&dm));
    assert!(mean(&other) < 6.0, "non-diabetic mean {}", mean(&other));
    assert!(dm.iter().all(|v| (6.5..=12.5).contains(v)) && other.iter().all(|v| (4.5..6.5).contains(v)));

    // Conditions of old age are found among the old, of childhood among the young.
    let age = |b: &SynthBundle| 2025 - u32::from(birth_date(b).year);
    let with = |prefix: &str| -> Vec<u32> {
        cohort.iter().filter(|b| condition_codes(b).iter().any(|c| c.starts_with(prefix))).map(age).collect()
    };
    let hypertensive = with("I10");
    assert!(!hypertensive.is_empty() && hypertensive.len() < 150);
    let all: Vec<f64> = cohort.iter().map(|b| f64::from(age(b))).collect();
    let htn: Vec<f64> = hypertensive.iter().map(|a| f64::from(*a)).collect();
    assert!(mean(&htn) > mean(&all) + 8.0, "hypertensives {} vs all {}", mean(&htn), mean(&all));
    assert!(with("I10").iter().all(|a| *a >= 12));
    assert!(with("G30").iter().all(|a| *a >= 60));
    let otitis = with("H66");
    assert!(otitis.iter().filter(|a| **a < 18).count() * 2 > otitis.len(), "otitis media at ages {otitis:?}");
    // Sex-specific cancers.
    for b in cohort {
        let gender = of_type(b, "Patient").next().unwrap()["gender"].as_str().unwrap().to_owned();
        let codes = condition_codes(b);
        assert!(gender == "female" || !codes.iter().any(|c| c.starts_with("C50")));
        assert!(gender == "male" || !codes.iter().any(|c| c.starts_with("C61") || c.starts_with("N40")));
    }

    // Stage 3 kidney disease has eGFR 30-59, and eGFR follows creatinine.
    for b in cohort {
        let codes = condition_codes(b);
        let (_, egfr) = split_at_onset(b, &["N18.30"], "33914-3");
        assert!(egfr.iter().all(|v| (25.0..=65.0).contains(v)), "CKD 3 eGFR {egfr:?}");
        let egfr = values(b, "33914-3");
        if codes.iter().all(|c| !c.starts_with("N18")) {
            assert!(egfr.iter().all(|v| *v >= 55.0), "eGFR {egfr:?} without kidney disease");
        }
    }
    // Blood pressure components are systolic above diastolic.
    for b in cohort {
        for o in of_type(b, "Observation").filter(|o| codes(&o["code"], LOINC).any(|c| c == "85354-9")) {
            let sys = o["component"][0]["valueQuantity"]["value"].as_f64().unwrap();
            let dia = o["component"][1]["valueQuantity"]["value"].as_f64().unwrap();
            assert!(sys > dia && (70.0..=230.0).contains(&sys) && (40.0..=130.0).contains(&dia), "{sys}/{dia}");
        }
    }
}

#[test]
fn medications_are_tied_to_conditions() {
    let mut metformin_reasons = BTreeSet::new();
    let mut seen = 0;
    for b in cohort() {
        let conditions: HashSet<String> = condition_codes(b).into_iter().collect();
        for m in of_type(b, "MedicationRequest") {
            seen += 1;
            let reason: Vec<&str> =
                m["reasonCode"].as_array().unwrap().iter().flat_map(|c| codes(c, ICD10CM)).collect();
            assert_eq!(reason.len(), 1);
            assert!(conditions.contains(reason[0]), "ordered for {} which the bundle does not hold", reason[0]);
            if codes(&m["medicationCodeableConcept"], "http://www.nlm.nih.gov/research/umls/rxnorm")
                .any(|c| c == "860975")
            {
                metformin_reasons.insert(reason[0].to_owned());
            }
        }
    }
    assert!(seen > 100, "{seen} medication requests");
    assert!(
        !metformin_reasons.is_empty() && metformin_reasons.iter().all(|r| r.starts_with("E11")),
        "{metformin_reasons:?}"
    );
}

#[test]
fn options_are_validated_and_bad_ones_do_not_panic() {
    assert_eq!(SynthOptions::default().validate(), Ok(()));
    let bad = |start_year, end_year| SynthOptions { start_year, end_year, ..SynthOptions::default() };
    assert_eq!(bad(2025, 2019).validate(), Err(SynthError::YearsReversed { start: 2025, end: 2019 }));
    assert_eq!(bad(0, 2019).validate(), Err(SynthError::YearOutOfRange { year: 0 }));
    assert!(matches!(bad(1900, 2025).validate(), Err(SynthError::WindowTooLong { years: 126, .. })));
    let message = bad(2025, 2019).validate().unwrap_err().to_string();
    assert!(message.contains("2025") && message.contains("2019"), "{message}");
    // The generator clamps instead, and still produces extractable bundles.
    for o in [bad(2025, 2019), bad(i32::MIN, i32::MAX), bad(0, 0), bad(2025, 2025)] {
        for i in 0..5 {
            let b = patient(1, i, &o);
            extract(&bytes(&b), &ExtractContext::default()).unwrap();
        }
    }
    assert_eq!(patient(1, 3, &bad(2025, 2019)), patient(1, 3, &bad(2019, 2025)));
}
