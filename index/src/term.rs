//! A search term: what a keyword becomes before it is turned into labels.

use serde::{Deserialize, Serialize};

/// One (field, value) pair a record can be found by, e.g. `icd10` / `E11.9`, `year` / `2024`,
/// `text` / `metformin`. Fields are short lowercase ASCII names; values are normalised by the
/// extractor so that the writer and the researcher derive the same key from the same term.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Term {
    /// The field (`icd10`, `loinc`, `snomed`, `rxnorm`, `day`, `month`, `year`, `age1`, ...).
    pub field: String,
    /// The normalised value.
    pub value: String,
    /// Higher is kept first when a record has more terms than labels (see
    /// `labels::Overflow::DropLowestPriority`): exact codes over ancestors over dates over text.
    pub priority: u8,
}

impl Term {
    /// A term with the given priority.
    pub fn new(field: impl Into<String>, value: impl Into<String>, priority: u8) -> Self {
        Term { field: field.into(), value: value.into(), priority }
    }
}

impl std::fmt::Display for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.field, self.value)
    }
}
