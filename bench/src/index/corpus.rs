//! The benchmark corpus: the patients of [`index::synth`] (realistic FHIR R4 bundles: ICD-10-CM,
//! LOINC, SNOMED CT and RxNorm codes with prevalences by age and sex, values that follow the
//! conditions), one record per resource, each resource's terms from the real extractor
//! ([`index::keywords::extract_value`], with the patient's birth date for age bands), interned so
//! that a million records fit in memory with their terms.
//!
//! Patients are generated in parallel (rayon) in chunks, and records taken in patient order until
//! the count is reached; everything depends only on the seed, not on the thread count.

use std::collections::HashMap;

use index::keywords::{self, ExtractContext, FhirDate};
use index::synth::{self, SynthOptions};
use index::term::Term;
use rayon::prelude::*;
use serde_json::Value;

/// Where the corpus comes from, for the report.
pub const SOURCE: &str = "index::synth patients (years 2019-2025), one record per resource, terms from \
                          index::keywords::extract_value";

/// Patients generated per parallel chunk.
const CHUNK_PATIENTS: usize = 512;

/// The records' interned terms and public metadata.
pub struct Corpus {
    /// Term id → term (`priority` as the extractor gave it the first time it was seen).
    pub vocab: Vec<Term>,
    /// Term id → `field=value`, the plaintext token.
    pub tokens: Vec<String>,
    /// Record `i`'s term ids are `terms[offsets[i]..offsets[i + 1]]`: at most P of them, the
    /// highest-priority ones, as [`index::labels::Overflow::DropLowestPriority`] would keep.
    pub terms: Vec<u32>,
    /// See `terms`; one more entry than there are records.
    pub offsets: Vec<u32>,
    /// The record's data type (its FHIR resource type), an index into [`Corpus::data_types`].
    pub data_type: Vec<u8>,
    /// The data type names.
    pub data_types: Vec<String>,
    /// The patient of each record (the hospital follows from it).
    pub patient: Vec<u32>,
    /// Records whose terms were cut to P.
    pub records_truncated: usize,
    /// Terms left out by the cut.
    pub terms_dropped: usize,
    /// Most distinct terms a record had before the cut.
    pub terms_max: usize,
}

impl Corpus {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.patient.len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.patient.is_empty()
    }

    /// Record `i`'s term ids.
    pub fn record_terms(&self, i: usize) -> &[u32] {
        &self.terms[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// How many records hold each term, by term id.
    pub fn term_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.vocab.len()];
        for &t in &self.terms {
            counts[t as usize] += 1;
        }
        counts
    }

    /// The records (indices, ascending) holding each term, by term id.
    pub fn postings(&self) -> Vec<Vec<u32>> {
        let counts = self.term_counts();
        let mut postings: Vec<Vec<u32>> = counts.iter().map(|&c| Vec::with_capacity(c as usize)).collect();
        for i in 0..self.len() {
            for &t in self.record_terms(i) {
                postings[t as usize].push(i as u32);
            }
        }
        postings
    }
}

/// One record before interning: its resource type, its terms as the extractor ordered them
/// (at most P) with their `field=value` tokens (built on the parallel side), and how many
/// distinct terms it had before the cut to P.
struct RawRecord {
    data_type: String,
    terms: Vec<(String, Term)>,
    distinct: usize,
}

/// Why the corpus could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The generator produced a bundle the benchmark cannot split.
    #[error("synthetic patient {patient}: {problem}")]
    Bundle {
        /// The patient number.
        patient: u64,
        /// What is wrong.
        problem: String,
    },
    /// The extractor refused a generated resource.
    #[error("synthetic patient {patient}: {source}")]
    Extract {
        /// The patient number.
        patient: u64,
        /// The extractor's error.
        #[source]
        source: keywords::KeywordError,
    },
    /// More than 255 resource types or 2^32 terms: the interning would overflow.
    #[error("the corpus has more than {0}; use fewer records")]
    TooLarge(&'static str),
}

/// Builds `records` records from the patients of `seed`, keeping at most `p` terms per record,
/// calling `progress(records done)` after each chunk of patients.
pub fn generate(records: usize, p: usize, seed: u64, progress: &mut dyn FnMut(usize)) -> Result<Corpus, CorpusError> {
    let opts = SynthOptions { seed, ..SynthOptions::default() };
    let mut corpus = Corpus {
        vocab: Vec::new(),
        tokens: Vec::new(),
        terms: Vec::with_capacity(records * 16),
        offsets: Vec::with_capacity(records + 1),
        data_type: Vec::with_capacity(records),
        data_types: Vec::new(),
        patient: Vec::with_capacity(records),
        records_truncated: 0,
        terms_dropped: 0,
        terms_max: 0,
    };
    corpus.offsets.push(0);
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut type_ids: HashMap<String, u8> = HashMap::new();
    let mut next_patient = 0u64;
    while corpus.len() < records {
        let range = next_patient..next_patient + CHUNK_PATIENTS as u64;
        next_patient = range.end;
        let chunk: Vec<(u64, Vec<RawRecord>)> = range
            .into_par_iter()
            .map(|i| patient_records(seed, i, &opts, p).map(|r| (i, r)))
            .collect::<Result<_, _>>()?;
        for (patient, recs) in chunk {
            for rec in recs {
                if corpus.len() == records {
                    break;
                }
                add_record(&mut corpus, &mut ids, &mut type_ids, patient, rec)?;
            }
        }
        progress(corpus.len());
    }
    Ok(corpus)
}

fn add_record(
    corpus: &mut Corpus,
    ids: &mut HashMap<String, u32>,
    type_ids: &mut HashMap<String, u8>,
    patient: u64,
    rec: RawRecord,
) -> Result<(), CorpusError> {
    corpus.terms_max = corpus.terms_max.max(rec.distinct);
    if rec.distinct > rec.terms.len() {
        corpus.records_truncated += 1;
        corpus.terms_dropped += rec.distinct - rec.terms.len();
    }
    for (token, term) in rec.terms {
        let id = match ids.get(&token) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(corpus.vocab.len()).map_err(|_| CorpusError::TooLarge("2^32 terms"))?;
                ids.insert(token.clone(), id);
                corpus.tokens.push(token);
                corpus.vocab.push(term);
                id
            }
        };
        corpus.terms.push(id);
    }
    let end = u32::try_from(corpus.terms.len()).map_err(|_| CorpusError::TooLarge("2^32 term occurrences"))?;
    corpus.offsets.push(end);
    let t = match type_ids.get(&rec.data_type) {
        Some(&t) => t,
        None => {
            let t = u8::try_from(type_ids.len()).map_err(|_| CorpusError::TooLarge("255 resource types"))?;
            type_ids.insert(rec.data_type.clone(), t);
            corpus.data_types.push(rec.data_type);
            t
        }
    };
    corpus.data_type.push(t);
    corpus.patient.push(u32::try_from(patient).map_err(|_| CorpusError::TooLarge("2^32 patients"))?);
    Ok(())
}

/// Patient `i`'s records: every resource of its bundle, in bundle order, extracted alone with the
/// patient's birth date.
fn patient_records(seed: u64, i: u64, opts: &SynthOptions, p: usize) -> Result<Vec<RawRecord>, CorpusError> {
    let bundle = synth::patient(seed, i, opts).bundle;
    let bad = |problem: &str| CorpusError::Bundle { patient: i, problem: problem.to_owned() };
    let entries = bundle.get("entry").and_then(Value::as_array).ok_or_else(|| bad("the bundle has no entries"))?;
    let resources: Vec<&Value> = entries.iter().filter_map(|e| e.get("resource")).collect();
    let birth = resources
        .iter()
        .find(|r| r.get("resourceType").and_then(Value::as_str) == Some("Patient"))
        .and_then(|r| r.get("birthDate"))
        .and_then(Value::as_str)
        .and_then(|d| FhirDate::parse(d).ok());
    let ctx = ExtractContext { birth_date: birth };
    resources
        .into_iter()
        .map(|resource| {
            let extracted = keywords::extract_value(resource, &ctx)
                .map_err(|source| CorpusError::Extract { patient: i, source })?;
            let distinct = extracted.terms.len();
            // The extractor orders a record's distinct terms by priority (highest first), field,
            // value: the first P are exactly those Overflow::DropLowestPriority keeps.
            let terms = extracted.terms.into_iter().take(p).map(|t| (format!("{}={}", t.field, t.value), t)).collect();
            Ok(RawRecord { data_type: extracted.resource_type, terms, distinct })
        })
        .collect()
}
