//! The encrypted keyword index of medchain (DESIGN.md §6): keyword extraction from FHIR R4
//! resources, per-(field, value, epoch) keys and counter labels on the writer's side, and (to
//! come) the tantivy index as a view of committed blocks with trapdoor queries. The only crate
//! that will touch tantivy.
//!
//! - [`term`]: a search term (field, value) and its priority;
//! - [`keywords`]: FHIR R4 resources to terms (coded terms with ICD-10 ancestors, date buckets,
//!   age bands, value bands, normalised free text);
//! - [`labels`]: the writer side: keys, counters kept durably without plaintext, exactly P labels
//!   per record;
//! - [`query`]: the researcher's boolean query language, its terms, and a plaintext evaluator
//!   (the reference the encrypted search must agree with);
//! - [`view`]: the tantivy index as a view of committed blocks, resumable and rebuildable;
//! - [`search`]: a node's side of a search: term keys expanded into labels, the boolean query
//!   run on the view;
//! - [`tokens`]: a hospital's token service: term keys of closed epochs, only for a committed
//!   `SearchAuthorization` and `SearchLog`;
//! - [`synth`]: a deterministic generator of realistic FHIR R4 bundles for demos and benchmarks.
#![forbid(unsafe_code)]

pub mod keywords;
pub mod labels;
pub mod query;
pub mod search;
pub mod synth;
pub mod term;
pub mod tokens;
pub mod view;
