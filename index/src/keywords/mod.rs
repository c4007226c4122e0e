//! FHIR R4 resources to search terms (DESIGN.md §6).
//!
//! [`extract`] takes one resource, or a `Bundle` whose entries hold resources, and returns the
//! record's [`Extracted`] terms: deduplicated, ordered by priority (highest first), then field,
//! then value, so the same input always gives the same list and a record with more terms than
//! labels keeps the most useful ones by truncation.
//!
//! # Resources and fields read
//!
//! | resource          | codes                                                        | date (first present)                               |
//! |-------------------|--------------------------------------------------------------|----------------------------------------------------|
//! | Condition         | code, bodySite, severity                                      | onsetDateTime, onsetPeriod.start, recordedDate     |
//! | Observation       | code, valueCodeableConcept, bodySite, component[].code/value | effectiveDateTime, effectivePeriod.start, effectiveInstant, issued |
//! | MedicationRequest | medicationCodeableConcept, reasonCode                         | authoredOn                                         |
//! | Procedure         | code, reasonCode, bodySite                                    | performedDateTime, performedPeriod.start           |
//! | DiagnosticReport  | code, conclusionCode                                          | effectiveDateTime, effectivePeriod.start, issued   |
//! | Encounter         | class, type, serviceType, reasonCode                          | period.start                                       |
//! | Patient           | (gender)                                                      | (birthDate: birth year and the age of the others)  |
//!
//! Free text comes from the `text` and every coding's `display` of those concepts, `note[].text`
//! and `DiagnosticReport.conclusion`.
//!
//! # Term encodings (what the query side must produce)
//!
//! | field       | value                               | example                      | priority |
//! |-------------|-------------------------------------|------------------------------|----------|
//! | `icd10`     | code, see [`icd10`]                 | `E11.9`                      | 200      |
//! | `loinc`, `snomed`, `rxnorm` | code, trimmed       | `4548-4`                     | 200      |
//! | `code`      | `<system>\|<code>` (other systems)  | `http://x.org/cs\|A1`        | 190      |
//! | `icd10`     | category, block, group, chapter     | `E11`, `E10-E14`, `chapter-IV` | 160, 150, 145, 140 |
//! | `value`     | band, see [`bands`]                 | `loinc\|4548-4\|w1\|8`       | 100 (finest) down by one per level |
//! | `day`, `month`, `year` | `YYYY-MM-DD`, `YYYY-MM`, `YYYY` | `2024-03-05`           | 80, 75, 70 |
//! | `birthyear` | `YYYY` (Patient only)               | `1967`                       | 70       |
//! | `gender`    | FHIR administrative gender          | `female`                     | 65       |
//! | `age1`, `age5`, `age20` | see [`date::age_band`]  | `57`, `55-59`, `40-59`       | 60, 55, 50 |
//! | `text`      | token, see [`text::tokens`]         | `metformin`                  | 30 (concept text), 20 (notes) |
//!
//! A term found twice keeps its highest priority. Codings without a `system` or a `code` give no
//! code term (a bare code means nothing across hospitals), only their display text.
//!
//! # Age
//!
//! The age at a resource's date needs the patient's birth date: from the Patient its `subject`
//! (or `patient`) reference names in the same Bundle (matched on `fullUrl` or `Patient/<id>`), else
//! the Bundle's only Patient, else [`ExtractContext::birth_date`]. Partial dates give only the
//! bands the uncertainty allows (see [`date::age_terms`]).
//!
//! # Leniency and errors
//!
//! Unknown fields and extensions are ignored, missing fields are fine, JSON `null` counts as
//! missing. A field that is present with the wrong JSON type or an invalid value (a date that is
//! not a date) is refused with a [`KeywordError`] naming the resource and the field path. Inside a
//! Bundle, entries of resource types this module does not index (`Claim`, `Immunization`, ...) are
//! listed in [`Extracted::skipped`]; given alone, such a resource is an error.

pub mod bands;
pub mod date;
pub mod icd10;
pub mod text;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::{Map, Value};

pub use date::FhirDate;

use crate::term::Term;

/// Term priorities (see [`Term::priority`]): exact codes over ancestors over value bands over
/// dates over age bands over text.
pub mod priority {
    /// A code of a known system.
    pub const CODE: u8 = 200;
    /// A code of another system (`code` field).
    pub const OTHER_CODE: u8 = 190;
    /// ICD-10 category of a longer code.
    pub const ICD10_CATEGORY: u8 = 160;
    /// ICD-10 block.
    pub const ICD10_BLOCK: u8 = 150;
    /// ICD-10 group of blocks.
    pub const ICD10_GROUP: u8 = 145;
    /// ICD-10 chapter.
    pub const ICD10_CHAPTER: u8 = 140;
    /// The finest value band; each wider level is one lower.
    pub const VALUE_BAND: u8 = 100;
    /// `day` bucket.
    pub const DAY: u8 = 80;
    /// `month` bucket.
    pub const MONTH: u8 = 75;
    /// `year` and `birthyear` buckets.
    pub const YEAR: u8 = 70;
    /// Patient gender.
    pub const GENDER: u8 = 65;
    /// `age1`; `age5` and `age20` are 5 and 10 lower.
    pub const AGE1: u8 = 60;
    /// Tokens of concept texts and displays.
    pub const TEXT: u8 = 30;
    /// Tokens of notes and conclusions.
    pub const NOTE_TEXT: u8 = 20;
}

/// The resource types [`extract`] indexes (besides `Bundle`).
pub const RESOURCE_TYPES: [&str; 7] =
    ["Condition", "DiagnosticReport", "Encounter", "MedicationRequest", "Observation", "Patient", "Procedure"];

/// What extraction needs to know beyond the resource itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtractContext {
    /// The patient's birth date, for age bands when the input holds no Patient resource.
    pub birth_date: Option<FhirDate>,
}

impl ExtractContext {
    /// A context knowing the patient's birth date.
    pub fn with_birth_date(birth_date: FhirDate) -> Self {
        ExtractContext { birth_date: Some(birth_date) }
    }
}

/// A Bundle entry left out because its resource type is not indexed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Index in `Bundle.entry`.
    pub entry: usize,
    /// Its `resourceType`.
    pub resource_type: String,
}

/// The result of [`extract`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted {
    /// The input's `resourceType` (`Bundle` for a bundle): the record's data type, kept apart from
    /// the terms.
    pub resource_type: String,
    /// The indexed resource types found, sorted, without repeats (for a single resource, its type).
    pub resource_types: Vec<String>,
    /// The clinically relevant date (see the module table); for a Bundle the earliest of its
    /// entries'. `None` when no resource carries one.
    pub clinical_date: Option<FhirDate>,
    /// The search terms, deduplicated, by priority (highest first), field, value.
    pub terms: Vec<Term>,
    /// Bundle entries not indexed.
    pub skipped: Vec<Skipped>,
}

/// Where in the input an error was found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// Index in `Bundle.entry`, when the resource came from a Bundle.
    pub entry: Option<usize>,
    /// The resource's `resourceType`, when it is a string.
    pub resource_type: Option<String>,
    /// The resource's `id`, when it is a string.
    pub id: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(i) = self.entry {
            write!(f, "Bundle.entry[{i}] ")?;
        }
        match (&self.resource_type, &self.id) {
            (Some(t), Some(id)) => write!(f, "{t}/{id}"),
            (Some(t), None) => write!(f, "{t} (no id)"),
            (None, _) => f.write_str("resource"),
        }
    }
}

/// Why a resource was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeywordError {
    /// The input is not JSON.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// A field is present but has the wrong JSON type or an invalid value.
    #[error("{at}: {field}: {problem}")]
    Malformed {
        /// The resource.
        at: Location,
        /// Path of the field inside the resource, e.g. `valueQuantity.value`, `note[1].text`.
        field: String,
        /// What is wrong, e.g. `expected a number`.
        problem: String,
    },
    /// A resource given alone whose type is not indexed (see [`RESOURCE_TYPES`]).
    #[error("{at}: resourceType {resource_type:?} is not indexed")]
    UnsupportedResourceType {
        /// The resource.
        at: Location,
        /// Its `resourceType`.
        resource_type: String,
    },
}

/// Extract the terms of one FHIR R4 resource or Bundle given as JSON text.
pub fn extract(json: &str, ctx: &ExtractContext) -> Result<Extracted, KeywordError> {
    let value: Value = serde_json::from_str(json).map_err(|e| KeywordError::NotJson(e.to_string()))?;
    extract_value(&value, ctx)
}

/// Extract the terms of one FHIR R4 resource or Bundle.
pub fn extract_value(value: &Value, ctx: &ExtractContext) -> Result<Extracted, KeywordError> {
    let top = Node::resource(value, None)?;
    let resource_type = top.resource_type()?.to_owned();
    let mut sink = Sink::default();
    let mut skipped = Vec::new();
    let mut types = Vec::new();
    let mut dates = Vec::new();
    if resource_type == "Bundle" {
        let entries = top.array("entry")?;
        let mut resources = Vec::new();
        for (i, entry_node) in entries.iter().enumerate() {
            let entry_obj = entry_node.object()?;
            let Some(resource) = entry_obj.get("resource").filter(|v| !v.is_null()) else { continue };
            let node = Node::resource(resource, Some(i))?;
            let full_url = entry_node.str("fullUrl")?;
            resources.push((i, node, full_url));
        }
        let mut patients: HashMap<String, Option<FhirDate>> = HashMap::new();
        let mut patient_count = 0;
        let mut only_birth_date = None;
        for (_, node, full_url) in &resources {
            if node.resource_type()? == "Patient" {
                let birth = node.date("birthDate")?;
                patient_count += 1;
                only_birth_date = birth;
                if let Some(url) = full_url {
                    patients.insert((*url).to_owned(), birth);
                }
                if let Some(id) = &node.loc.id {
                    patients.insert(format!("Patient/{id}"), birth);
                }
            }
        }
        let fallback = if patient_count == 1 { only_birth_date } else { ctx.birth_date };
        for (i, node, _) in &resources {
            let t = node.resource_type()?;
            if !RESOURCE_TYPES.contains(&t) {
                skipped.push(Skipped { entry: *i, resource_type: t.to_owned() });
                continue;
            }
            let birth = match node.patient_reference()? {
                Some(r) if patients.contains_key(r) => patients[r],
                _ => fallback,
            };
            dates.extend(extract_resource(node, t, birth, &mut sink)?);
            types.push(t.to_owned());
        }
    } else if RESOURCE_TYPES.contains(&resource_type.as_str()) {
        let birth = if resource_type == "Patient" { top.date("birthDate")? } else { ctx.birth_date };
        dates.extend(extract_resource(&top, &resource_type, birth, &mut sink)?);
        types.push(resource_type.clone());
    } else {
        return Err(KeywordError::UnsupportedResourceType { at: (*top.loc).clone(), resource_type });
    }
    types.sort();
    types.dedup();
    Ok(Extracted {
        resource_type,
        resource_types: types,
        clinical_date: dates.into_iter().min(),
        terms: sink.finish(),
        skipped,
    })
}

/// The ICD-10 ancestors of a code as `icd10` term values, narrowest first; the query side uses
/// the same function. See [`icd10::ancestors`].
pub fn icd10_ancestors(code: &str) -> Vec<String> {
    icd10::ancestors(code)
}

/// Collects terms, keeping the highest priority of a repeated term.
#[derive(Default)]
struct Sink {
    terms: BTreeMap<(String, String), u8>,
}

impl Sink {
    fn push(&mut self, field: &str, value: impl Into<String>, priority: u8) {
        let p = self.terms.entry((field.to_owned(), value.into())).or_insert(priority);
        *p = (*p).max(priority);
    }

    fn text(&mut self, text: &str, priority: u8) {
        for token in text::tokens(text) {
            self.push("text", token, priority);
        }
    }

    fn finish(self) -> Vec<Term> {
        let mut terms: Vec<Term> = self.terms.into_iter().map(|((f, v), p)| Term::new(f, v, p)).collect();
        terms.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| (&a.field, &a.value).cmp(&(&b.field, &b.value))));
        terms
    }
}

/// A JSON value inside a resource, with its path for error messages.
#[derive(Clone)]
struct Node<'a> {
    value: &'a Value,
    path: String,
    loc: std::rc::Rc<Location>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'a> Node<'a> {
    /// The root of a resource: must be an object with a string `resourceType`.
    fn resource(value: &'a Value, entry: Option<usize>) -> Result<Node<'a>, KeywordError> {
        let obj = value.as_object();
        let resource_type = obj.and_then(|o| o.get("resourceType")).and_then(Value::as_str).map(str::to_owned);
        let id = obj.and_then(|o| o.get("id")).and_then(Value::as_str).map(str::to_owned);
        let node = Node { value, path: String::new(), loc: std::rc::Rc::new(Location { entry, resource_type, id }) };
        let obj = node.object()?;
        let t = node.str("resourceType")?.ok_or_else(|| node.error("resourceType", "missing"))?;
        if t.is_empty()
            || !t.starts_with(|c: char| c.is_ascii_uppercase())
            || !t.chars().all(|c| c.is_ascii_alphabetic())
        {
            return Err(node.error("resourceType", format!("{t:?} is not a resource type")));
        }
        if let Some(id) = obj.get("id").filter(|v| !v.is_null() && !v.is_string()) {
            return Err(node.error("id", format!("expected a string, found {}", type_name(id))));
        }
        Ok(node)
    }

    fn resource_type(&self) -> Result<&'a str, KeywordError> {
        self.str("resourceType")?.ok_or_else(|| self.error("resourceType", "missing"))
    }

    fn error(&self, field: &str, problem: impl Into<String>) -> KeywordError {
        let field = self.join(field);
        let field = if field.is_empty() { "(root)".to_owned() } else { field };
        KeywordError::Malformed { at: (*self.loc).clone(), field, problem: problem.into() }
    }

    fn join(&self, key: &str) -> String {
        match (self.path.is_empty(), key.is_empty()) {
            (true, _) => key.to_owned(),
            (false, true) => self.path.clone(),
            (false, false) if key.starts_with('[') => format!("{}{key}", self.path),
            (false, false) => format!("{}.{key}", self.path),
        }
    }

    fn child(&self, value: &'a Value, key: String) -> Node<'a> {
        Node { value, path: self.join(&key), loc: self.loc.clone() }
    }

    fn object(&self) -> Result<&'a Map<String, Value>, KeywordError> {
        self.value
            .as_object()
            .ok_or_else(|| self.error("", format!("expected an object, found {}", type_name(self.value))))
    }

    /// A present, non-null field.
    fn field(&self, key: &str) -> Result<Option<Node<'a>>, KeywordError> {
        Ok(self.object()?.get(key).filter(|v| !v.is_null()).map(|v| self.child(v, key.to_owned())))
    }

    fn str(&self, key: &str) -> Result<Option<&'a str>, KeywordError> {
        match self.field(key)? {
            None => Ok(None),
            Some(n) => n
                .value
                .as_str()
                .map(Some)
                .ok_or_else(|| n.error("", format!("expected a string, found {}", type_name(n.value)))),
        }
    }

    fn number(&self, key: &str) -> Result<Option<f64>, KeywordError> {
        match self.field(key)? {
            None => Ok(None),
            Some(n) => n
                .value
                .as_f64()
                .map(Some)
                .ok_or_else(|| n.error("", format!("expected a number, found {}", type_name(n.value)))),
        }
    }

    fn date(&self, key: &str) -> Result<Option<FhirDate>, KeywordError> {
        let Some(s) = self.str(key)? else { return Ok(None) };
        FhirDate::parse(s).map(Some).map_err(|_| self.error(key, format!("{s:?} is not a FHIR date or dateTime")))
    }

    /// The elements of an array field (each as a node); empty when absent.
    fn array(&self, key: &str) -> Result<Vec<Node<'a>>, KeywordError> {
        match self.field(key)? {
            None => Ok(Vec::new()),
            Some(n) => match n.value {
                Value::Array(items) => {
                    Ok(items.iter().enumerate().map(|(i, v)| n.child(v, format!("[{i}]"))).collect())
                }
                other => Err(n.error("", format!("expected an array, found {}", type_name(other)))),
            },
        }
    }

    /// `subject.reference`, or `patient.reference`.
    fn patient_reference(&self) -> Result<Option<&'a str>, KeywordError> {
        for key in ["subject", "patient"] {
            if let Some(reference) = self.field(key)? {
                if let Some(r) = reference.str("reference")? {
                    return Ok(Some(r));
                }
            }
        }
        Ok(None)
    }
}

/// The term field for a code system URI.
pub(crate) fn system_field(system: &str) -> Option<&'static str> {
    match system {
        "http://hl7.org/fhir/sid/icd-10" | "http://hl7.org/fhir/sid/icd-10-cm" => Some("icd10"),
        "http://loinc.org" => Some("loinc"),
        "http://snomed.info/sct" => Some("snomed"),
        "http://www.nlm.nih.gov/research/umls/rxnorm" => Some("rxnorm"),
        _ => None,
    }
}

/// Emit the terms of one Coding; returns its band key (`loinc|4548-4`), if it has a code.
fn coding(node: &Node<'_>, sink: &mut Sink) -> Result<Option<String>, KeywordError> {
    node.object()?;
    if let Some(display) = node.str("display")? {
        sink.text(display, priority::TEXT);
    }
    let system = node.str("system")?.map(str::trim).filter(|s| !s.is_empty());
    let code = node.str("code")?.map(str::trim).filter(|s| !s.is_empty());
    let (Some(system), Some(code)) = (system, code) else { return Ok(None) };
    Ok(Some(match system_field(system) {
        Some("icd10") => {
            let code = icd10::normalise(code).unwrap_or_else(|| code.to_uppercase());
            sink.push("icd10", code.clone(), priority::CODE);
            for ancestor in icd10::ancestors(&code) {
                let p = if ancestor.starts_with("chapter-") {
                    priority::ICD10_CHAPTER
                } else if ancestor.len() == 3 {
                    priority::ICD10_CATEGORY
                } else if icd10::BLOCKS.iter().any(|(a, b)| format!("{a}-{b}") == ancestor) {
                    priority::ICD10_BLOCK
                } else {
                    priority::ICD10_GROUP
                };
                sink.push("icd10", ancestor, p);
            }
            format!("icd10|{code}")
        }
        Some(field) => {
            sink.push(field, code, priority::CODE);
            format!("{field}|{code}")
        }
        None => {
            let value = format!("{system}|{code}");
            sink.push("code", value.clone(), priority::OTHER_CODE);
            format!("code|{value}")
        }
    }))
}

/// Emit the terms of a CodeableConcept; returns the band key of its first LOINC coding, else of
/// its first coding with a code.
fn concept(node: &Node<'_>, sink: &mut Sink) -> Result<Option<String>, KeywordError> {
    node.object()?;
    if let Some(text) = node.str("text")? {
        sink.text(text, priority::TEXT);
    }
    let mut keys = Vec::new();
    for c in node.array("coding")? {
        keys.extend(coding(&c, sink)?);
    }
    Ok(keys.iter().find(|k| k.starts_with("loinc|")).or(keys.first()).cloned())
}

fn concept_field(node: &Node<'_>, key: &str, sink: &mut Sink) -> Result<Option<String>, KeywordError> {
    match node.field(key)? {
        Some(n) => concept(&n, sink),
        None => Ok(None),
    }
}

fn concept_list(node: &Node<'_>, key: &str, sink: &mut Sink) -> Result<(), KeywordError> {
    for n in node.array(key)? {
        concept(&n, sink)?;
    }
    Ok(())
}

fn notes(node: &Node<'_>, sink: &mut Sink) -> Result<(), KeywordError> {
    for n in node.array("note")? {
        if let Some(text) = n.str("text")? {
            sink.text(text, priority::NOTE_TEXT);
        }
    }
    Ok(())
}

/// The first present date among `paths` (`a` or `a.b`).
fn first_date(node: &Node<'_>, paths: &[&str]) -> Result<Option<FhirDate>, KeywordError> {
    for path in paths {
        let found = match path.split_once('.') {
            Some((outer, inner)) => match node.field(outer)? {
                Some(n) => n.date(inner)?,
                None => None,
            },
            None => node.date(path)?,
        };
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

fn quantity_bands(node: &Node<'_>, key: Option<&str>, sink: &mut Sink) -> Result<(), KeywordError> {
    let Some(q) = node.field("valueQuantity")? else { return Ok(()) };
    let Some(v) = q.number("value")? else { return Ok(()) };
    if let Some(key) = key {
        for (level, band) in bands::value_bands(key, v).into_iter().enumerate() {
            sink.push("value", band, priority::VALUE_BAND.saturating_sub(level as u8));
        }
    }
    Ok(())
}

/// Emit one resource's terms; returns its clinical date.
fn extract_resource(
    node: &Node<'_>,
    resource_type: &str,
    birth: Option<FhirDate>,
    sink: &mut Sink,
) -> Result<Option<FhirDate>, KeywordError> {
    let date = match resource_type {
        "Condition" => {
            concept_field(node, "code", sink)?;
            concept_list(node, "bodySite", sink)?;
            concept_field(node, "severity", sink)?;
            notes(node, sink)?;
            first_date(node, &["onsetDateTime", "onsetPeriod.start", "recordedDate"])?
        }
        "Observation" => {
            let key = concept_field(node, "code", sink)?;
            concept_field(node, "valueCodeableConcept", sink)?;
            concept_list(node, "bodySite", sink)?;
            quantity_bands(node, key.as_deref(), sink)?;
            for component in node.array("component")? {
                let key = concept_field(&component, "code", sink)?;
                concept_field(&component, "valueCodeableConcept", sink)?;
                quantity_bands(&component, key.as_deref(), sink)?;
            }
            notes(node, sink)?;
            first_date(node, &["effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued"])?
        }
        "MedicationRequest" => {
            concept_field(node, "medicationCodeableConcept", sink)?;
            concept_list(node, "reasonCode", sink)?;
            notes(node, sink)?;
            node.date("authoredOn")?
        }
        "Procedure" => {
            concept_field(node, "code", sink)?;
            concept_list(node, "reasonCode", sink)?;
            concept_list(node, "bodySite", sink)?;
            notes(node, sink)?;
            first_date(node, &["performedDateTime", "performedPeriod.start"])?
        }
        "DiagnosticReport" => {
            concept_field(node, "code", sink)?;
            concept_list(node, "conclusionCode", sink)?;
            if let Some(conclusion) = node.str("conclusion")? {
                sink.text(conclusion, priority::NOTE_TEXT);
            }
            first_date(node, &["effectiveDateTime", "effectivePeriod.start", "issued"])?
        }
        "Encounter" => {
            if let Some(class) = node.field("class")? {
                coding(&class, sink)?;
            }
            concept_list(node, "type", sink)?;
            concept_field(node, "serviceType", sink)?;
            concept_list(node, "reasonCode", sink)?;
            first_date(node, &["period.start"])?
        }
        "Patient" => {
            if let Some(gender) = node.str("gender")? {
                let gender = gender.trim().to_lowercase();
                if !gender.is_empty() {
                    sink.push("gender", gender, priority::GENDER);
                }
            }
            if let Some(birth) = node.date("birthDate")? {
                sink.push("birthyear", format!("{:04}", birth.year), priority::YEAR);
            }
            return Ok(None);
        }
        _ => return Ok(None),
    };
    if let Some(date) = date {
        for (field, value) in date.buckets() {
            let p = match field {
                "day" => priority::DAY,
                "month" => priority::MONTH,
                _ => priority::YEAR,
            };
            sink.push(field, value, p);
        }
        if let Some((min, max)) = birth.as_ref().and_then(|b| date::age_range(b, &date)) {
            for (i, (field, value)) in date::age_terms(min, max).into_iter().enumerate() {
                let p = priority::AGE1 - 5 * date::AGE_BANDS.iter().position(|(_, f)| *f == field).unwrap_or(i) as u8;
                sink.push(field, value, p);
            }
        }
    }
    Ok(date)
}
