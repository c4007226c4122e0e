//! Keyword extraction from FHIR R4 resources: exact terms on a Synthea-like bundle, ICD-10
//! ancestors, partial dates, age-band boundaries, value-band coverage, errors that name the
//! resource and the field, determinism, and no panic on arbitrary input.

use index::keywords::bands::{band_cover, value_bands};
use index::keywords::{extract, extract_value, ExtractContext, Extracted, FhirDate, KeywordError, Skipped};
use proptest::prelude::*;
use serde_json::{json, Value};

const BUNDLE: &str = include_str!("fixtures/diabetes_bundle.json");

fn bundle() -> Value {
    serde_json::from_str(BUNDLE).unwrap()
}

fn entry(i: usize) -> Value {
    bundle()["entry"][i]["resource"].clone()
}

fn strings(x: &Extracted) -> Vec<String> {
    x.terms.iter().map(|t| format!("{}:{}@{}", t.field, t.value, t.priority)).collect()
}

fn has(x: &Extracted, field: &str, value: &str) -> bool {
    x.terms.iter().any(|t| t.field == field && t.value == value)
}

fn born_1967() -> ExtractContext {
    ExtractContext::with_birth_date(FhirDate::parse("1967-03-05").unwrap())
}

fn error_text(v: &Value) -> String {
    extract_value(v, &ExtractContext::default()).unwrap_err().to_string()
}

#[test]
fn condition_terms_exactly() {
    let x = extract_value(&entry(2), &born_1967()).unwrap();
    assert_eq!(x.resource_type, "Condition");
    assert_eq!(x.resource_types, ["Condition"]);
    assert_eq!(x.clinical_date, FhirDate::parse("2024-03-05").ok());
    assert_eq!(
        strings(&x),
        [
            "icd10:E11.9@200",
            "snomed:44054006@200",
            "icd10:E11@160",
            "icd10:E10-E14@150",
            "icd10:chapter-IV@140",
            "day:2024-03-05@80",
            "month:2024-03@75",
            "year:2024@70",
            "age1:57@60",
            "age5:55-59@55",
            "age20:40-59@50",
            "text:complications@30",
            "text:diabetes@30",
            "text:disorder@30",
            "text:mellitus@30",
            "text:type@30",
            "text:fatigue@20",
            "text:months@20",
            "text:polyuria@20",
            "text:three@20",
        ]
    );
}

#[test]
fn observation_terms_exactly() {
    let x = extract_value(&entry(3), &ExtractContext::default()).unwrap();
    assert_eq!(
        strings(&x),
        [
            "loinc:4548-4@200",
            "value:loinc|4548-4|w0.1|8.3@100",
            "value:loinc|4548-4|w1|8@99",
            "value:loinc|4548-4|w10|0@98",
            "value:loinc|4548-4|w100|0@97",
            "day:2024-03-05@80",
            "month:2024-03@75",
            "year:2024@70",
            "text:a1c@30",
            "text:blood@30",
            "text:hemoglobin@30",
            "text:total@30",
        ]
    );
}

#[test]
fn bundle_collects_every_indexed_resource() {
    let x = extract(BUNDLE, &ExtractContext::default()).unwrap();
    assert_eq!(x.resource_type, "Bundle");
    assert_eq!(
        x.resource_types,
        ["Condition", "DiagnosticReport", "Encounter", "MedicationRequest", "Observation", "Patient", "Procedure"]
    );
    assert_eq!(x.skipped, [Skipped { entry: 7, resource_type: "Claim".into() }]);
    assert_eq!(x.clinical_date, FhirDate::parse("2024-03-05").ok());
    for (field, value) in [
        ("icd10", "E11.9"),
        ("icd10", "chapter-IV"),
        ("snomed", "44054006"),
        ("snomed", "185349003"),
        ("snomed", "710824005"),
        ("loinc", "4548-4"),
        ("rxnorm", "860975"),
        ("code", "http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB"),
        ("gender", "female"),
        ("birthyear", "1967"),
        // The age comes from the bundle's Patient, found through subject.reference.
        ("age1", "57"),
        ("text", "metformin"),
        ("text", "elevated"),
        ("text", "controlled"),
    ] {
        assert!(has(&x, field, value), "missing {field}:{value} in {:?}", strings(&x));
    }
    // Nothing from the Claim, nor from fields that are not indexed.
    assert!(!x.terms.iter().any(|t| t.value.contains("129") || t.value == "keeling57" || t.value == "boston"));
    // The marital status, the condition's clinical status and category are not indexed.
    assert!(!has(&x, "code", "http://terminology.hl7.org/CodeSystem/condition-clinical|active"));
    // Deduplicated and ordered by priority, then field, then value.
    for pair in x.terms.windows(2) {
        let key = |t: &index::term::Term| (std::cmp::Reverse(t.priority), t.field.clone(), t.value.clone());
        assert!(key(&pair[0]) < key(&pair[1]), "{} before {}", pair[0], pair[1]);
    }
}

#[test]
fn icd10_codes_are_normalised_and_bring_their_ancestors() {
    for (system, code) in [
        ("http://hl7.org/fhir/sid/icd-10", "e11.9"),
        ("http://hl7.org/fhir/sid/icd-10-cm", " E119 "),
        ("http://hl7.org/fhir/sid/icd-10", "E11.9"),
    ] {
        let c = json!({"resourceType": "Condition", "code": {"coding": [{"system": system, "code": code}]}});
        let x = extract_value(&c, &ExtractContext::default()).unwrap();
        assert_eq!(strings(&x), ["icd10:E11.9@200", "icd10:E11@160", "icd10:E10-E14@150", "icd10:chapter-IV@140"]);
    }
    assert_eq!(index::keywords::icd10_ancestors("I21.4"), ["I21", "I20-I25", "chapter-IX"]);
    // A code outside every block keeps its code and category.
    let c = json!({"resourceType": "Condition", "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "A10.1"}]}});
    let x = extract_value(&c, &ExtractContext::default()).unwrap();
    assert_eq!(strings(&x), ["icd10:A10.1@200", "icd10:A10@160", "icd10:chapter-I@140"]);
    // Text that is not an ICD-10 code is kept, upper-cased, without ancestors.
    let c = json!({"resourceType": "Condition", "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "local-7"}]}});
    let x = extract_value(&c, &ExtractContext::default()).unwrap();
    assert_eq!(strings(&x), ["icd10:LOCAL-7@200"]);
}

#[test]
fn unknown_systems_and_codings_without_system() {
    let c = json!({"resourceType": "Procedure", "code": {"coding": [
        {"system": " http://example.org/local-procedures ", "code": " P-17 ", "display": "Foot examination"},
        {"code": "bare", "display": "Bare code"}
    ]}});
    let x = extract_value(&c, &ExtractContext::default()).unwrap();
    assert_eq!(
        strings(&x),
        [
            "code:http://example.org/local-procedures|P-17@190",
            "text:bare@30",
            "text:code@30",
            "text:examination@30",
            "text:foot@30"
        ]
    );
}

#[test]
fn partial_dates_give_coarser_buckets_and_ages() {
    let at = |onset: &str| {
        let c = json!({"resourceType": "Condition", "id": "c", "onsetDateTime": onset});
        strings(&extract_value(&c, &born_1967()).unwrap())
    };
    assert_eq!(at("2024-03"), ["month:2024-03@75", "year:2024@70", "age5:55-59@55", "age20:40-59@50"]);
    assert_eq!(at("2024"), ["year:2024@70", "age5:55-59@55", "age20:40-59@50"]);
    // The local calendar day, not the UTC one.
    assert_eq!(at("2024-03-05T23:30:00-05:00")[0], "day:2024-03-05@80");
    // The first date present wins: onsetPeriod.start before recordedDate.
    let c = json!({"resourceType": "Condition", "onsetPeriod": {"start": "2019-07"}, "recordedDate": "2024-03-05"});
    assert_eq!(extract_value(&c, &ExtractContext::default()).unwrap().clinical_date, FhirDate::parse("2019-07").ok());
}

#[test]
fn age_bands_at_birthday_boundaries() {
    let ages = |birth: &str, at: &str| {
        let ctx = ExtractContext::with_birth_date(FhirDate::parse(birth).unwrap());
        let o = json!({"resourceType": "Observation", "effectiveDateTime": at});
        let x = extract_value(&o, &ctx).unwrap();
        x.terms.iter().filter(|t| t.field.starts_with("age")).map(|t| t.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(ages("1964-03-05", "2024-03-04"), ["age1:59", "age5:55-59", "age20:40-59"]);
    assert_eq!(ages("1964-03-05", "2024-03-05"), ["age1:60", "age5:60-64", "age20:60-79"]);
    assert_eq!(ages("2024-03-05", "2024-03-05"), ["age1:0", "age5:0-4", "age20:0-19"]);
    assert_eq!(ages("2004-02-29", "2024-02-28"), ["age1:19", "age5:15-19", "age20:0-19"]);
    assert_eq!(ages("2004-02-29", "2024-02-29"), ["age1:20", "age5:20-24", "age20:20-39"]);
    // A birth year alone cannot tell 59 from 60.
    assert_eq!(ages("1964", "2024-03-05"), Vec::<String>::new());
    // An event before the birth has no age.
    assert_eq!(ages("2024-03-05", "2024-03-04"), Vec::<String>::new());
}

#[test]
fn patient_reference_picks_the_right_birth_date() {
    let b = json!({"resourceType": "Bundle", "entry": [
        {"fullUrl": "urn:uuid:a", "resource": {"resourceType": "Patient", "id": "a", "birthDate": "1950-01-01"}},
        {"fullUrl": "urn:uuid:b", "resource": {"resourceType": "Patient", "id": "b", "birthDate": "2000-01-01"}},
        {"resource": {"resourceType": "Encounter", "subject": {"reference": "Patient/b"}, "period": {"start": "2024-06-01"}}}
    ]});
    let x = extract_value(&b, &ExtractContext::default()).unwrap();
    assert!(has(&x, "age1", "24") && !has(&x, "age1", "74"), "{:?}", strings(&x));
    // Two patients, no usable reference: the context's birth date.
    let mut b2 = b.clone();
    b2["entry"][2]["resource"]["subject"]["reference"] = json!("Patient/zzz");
    let x = extract_value(&b2, &born_1967()).unwrap();
    assert!(has(&x, "age1", "57"), "{:?}", strings(&x));
}

#[test]
fn value_band_coverage_of_the_hba1c() {
    let x = extract_value(&entry(3), &ExtractContext::default()).unwrap();
    let matches = |pred: &str| {
        let cover = band_cover("loinc|4548-4", &pred.parse().unwrap());
        x.terms.iter().any(|t| t.field == "value" && cover.contains(&t.value))
    };
    for (pred, expected) in [
        (">8", true),
        (">=8.3", true),
        (">8.3", false),
        ("<=8.3", true),
        ("<8.3", false),
        ("<7", false),
        ("6.5..", true),
        ("8..9", true),
        ("8.4..9", false),
        ("=8.3", true),
        ("..6.5", false),
    ] {
        assert_eq!(matches(pred), expected, "{pred}");
    }
    // The cover of `> 8` is small: the range tree decomposition.
    assert!(band_cover("loinc|4548-4", &">8".parse().unwrap()).len() <= 20);
    assert_eq!(value_bands("loinc|4548-4", 8.3)[0], "loinc|4548-4|w0.1|8.3");
}

#[test]
fn components_are_banded_under_their_own_codes() {
    let bp = json!({"resourceType": "Observation", "id": "bp",
    "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
    "component": [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 142, "unit": "mm[Hg]"}},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 91}}
    ]});
    let x = extract_value(&bp, &ExtractContext::default()).unwrap();
    for v in ["loinc|8480-6|w1|142", "loinc|8480-6|w10|140", "loinc|8480-6|w100|100", "loinc|8462-4|w1|91"] {
        assert!(has(&x, "value", v), "missing {v} in {:?}", strings(&x));
    }
}

#[test]
fn malformed_fields_are_named() {
    let mut o = entry(3);
    o["valueQuantity"]["value"] = json!("8.3");
    assert_eq!(error_text(&o), "Observation/obs-1: valueQuantity.value: expected a number, found a string");
    let mut b = bundle();
    b["entry"][3]["resource"] = o;
    assert_eq!(
        error_text(&b),
        "Bundle.entry[3] Observation/obs-1: valueQuantity.value: expected a number, found a string"
    );

    let mut c = entry(2);
    c["code"]["coding"][1]["code"] = json!(44054006);
    assert_eq!(error_text(&c), "Condition/cond-1: code.coding[1].code: expected a string, found a number");
    c = entry(2);
    c["onsetDateTime"] = json!("05/03/2024");
    assert_eq!(error_text(&c), "Condition/cond-1: onsetDateTime: \"05/03/2024\" is not a FHIR date or dateTime");
    c = entry(2);
    c["note"] = json!({"text": "not in an array"});
    assert_eq!(error_text(&c), "Condition/cond-1: note: expected an array, found an object");
    c = entry(2);
    c.as_object_mut().unwrap().remove("id");
    c["code"] = json!("E11.9");
    assert_eq!(error_text(&c), "Condition (no id): code: expected an object, found a string");

    let mut p = entry(0);
    p["birthDate"] = json!("1967-02-30");
    let mut b = bundle();
    b["entry"][0]["resource"] = p;
    assert_eq!(
        error_text(&b),
        "Bundle.entry[0] Patient/8f1c7c52-3f0c-4b8e-9d7a-2a1e5f6c9b01: birthDate: \"1967-02-30\" is not a FHIR date or dateTime"
    );

    let mut b = bundle();
    b["entry"] = json!({"resource": {}});
    assert_eq!(error_text(&b), "Bundle (no id): entry: expected an array, found an object");
    assert_eq!(error_text(&json!([1, 2])), "resource: (root): expected an object, found an array");
    assert_eq!(error_text(&json!({"id": "x"})), "resource: resourceType: missing");
    assert_eq!(error_text(&json!({"resourceType": 7})), "resource: resourceType: expected a string, found a number");
    assert_eq!(
        error_text(&json!({"resourceType": "observation"})),
        "observation (no id): resourceType: \"observation\" is not a resource type"
    );
    assert_eq!(
        error_text(&json!({"resourceType": "Claim", "id": "c1"})),
        "Claim/c1: resourceType \"Claim\" is not indexed"
    );
    assert!(matches!(
        extract_value(&json!({"resourceType": "Claim"}), &ExtractContext::default()),
        Err(KeywordError::UnsupportedResourceType { .. })
    ));
    let not_json = extract("{\"resourceType\": \"Condition\",", &ExtractContext::default()).unwrap_err();
    assert!(matches!(not_json, KeywordError::NotJson(_)), "{not_json}");
    assert!(not_json.to_string().starts_with("not JSON: "));
}

#[test]
fn extensions_nulls_and_unknown_fields_are_ignored() {
    let mut o = entry(3);
    o["extension"] = json!([{"url": "http://example.org/x", "valueCodeableConcept": {"coding": "whatever"}}]);
    o["modifierExtension"] = json!([{"url": "http://example.org/y", "valueInteger": 3}]);
    o["_effectiveDateTime"] = json!({"extension": [{"url": "http://example.org/z", "valueBoolean": true}]});
    o["futureField"] = json!({"nested": [1, "two", null]});
    o["note"] = Value::Null;
    let plain = extract_value(&entry(3), &ExtractContext::default()).unwrap();
    assert_eq!(extract_value(&o, &ExtractContext::default()).unwrap(), plain);
    // An Observation without a value, code or date is fine, and has no terms.
    let bare = extract_value(&json!({"resourceType": "Observation", "status": "final"}), &ExtractContext::default());
    assert!(bare.unwrap().terms.is_empty());
}

#[test]
fn output_is_deterministic() {
    let ctx = ExtractContext::default();
    let a = extract(BUNDLE, &ctx).unwrap();
    assert_eq!(a, extract(BUNDLE, &ctx).unwrap());
    // Entry order does not change the terms.
    let mut reversed = bundle();
    reversed["entry"].as_array_mut().unwrap().reverse();
    let b = extract_value(&reversed, &ctx).unwrap();
    assert_eq!(a.terms, b.terms);
    assert_eq!(a.clinical_date, b.clinical_date);
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        prop_oneof![
            ".{0,12}",
            "[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}([+-][0-9]{2}:[0-9]{2}|Z)?)?)?)?",
            "[A-Z][0-9]{2}\\.?[0-9A-Z]{0,4}",
            Just("http://hl7.org/fhir/sid/icd-10".to_owned()),
            Just("http://loinc.org".to_owned()),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("resourceType".to_owned()),
            Just("code".to_owned()),
            Just("coding".to_owned()),
            Just("system".to_owned()),
            Just("valueQuantity".to_owned()),
            Just("value".to_owned()),
            Just("component".to_owned()),
            Just("entry".to_owned()),
            Just("resource".to_owned()),
            Just("subject".to_owned()),
            Just("reference".to_owned()),
            Just("birthDate".to_owned()),
            Just("onsetDateTime".to_owned()),
            Just("text".to_owned()),
            "[a-z]{1,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path to a value inside `v`, as a list of object keys / array indices.
fn paths(v: &Value, prefix: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(Value::from(k.as_str()));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                prefix.push(Value::from(i));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn at_path<'a>(v: &'a mut Value, path: &[Value]) -> &'a mut Value {
    path.iter().fold(v, |v, step| match step {
        Value::String(k) => &mut v[k.as_str()],
        other => &mut v[other.as_u64().unwrap() as usize],
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(v in arb_json(), rt in prop::sample::select(vec![
        "Bundle", "Condition", "Observation", "MedicationRequest", "Procedure", "DiagnosticReport", "Encounter", "Patient",
    ])) {
        let _ = extract_value(&v, &born_1967());
        let mut with_type = v.clone();
        if let Value::Object(m) = &mut with_type {
            m.insert("resourceType".into(), Value::from(rt));
        }
        let _ = extract_value(&with_type, &born_1967());
        let _ = extract(&v.to_string(), &ExtractContext::default());
    }

    #[test]
    fn mutated_fixture_never_panics_and_stays_deterministic(pick in any::<prop::sample::Index>(), replacement in arb_json()) {
        let mut b = bundle();
        let mut all = Vec::new();
        paths(&b, &mut Vec::new(), &mut all);
        let path = pick.get(&all).clone();
        *at_path(&mut b, &path) = replacement;
        let first = extract_value(&b, &ExtractContext::default());
        prop_assert_eq!(first, extract_value(&b, &ExtractContext::default()));
    }

    #[test]
    fn arbitrary_text_never_panics(s in ".{0,200}") {
        let _ = extract(&s, &ExtractContext::default());
        let _ = s.parse::<index::keywords::bands::ValueRange>();
        let _ = FhirDate::parse(&s);
        let _ = index::keywords::icd10_ancestors(&s);
    }
}
