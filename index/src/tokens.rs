//! A hospital's token service (DESIGN.md §6): it hands an authorised researcher the term keys
//! k = [`term_key`]`(K, field, value, epoch)` of its search domain, for closed epochs only, and
//! only once the search is on chain.
//!
//! The flow: the hospital authorises the researcher on chain (a `SearchAuthorization` tx it
//! sends); the researcher builds a [`TokenQuery`] (the terms its query needs, an epoch range, a
//! random nonce), commits a `SearchLog` tx carrying [`TokenQuery::digest`] and the term count,
//! then sends a [`TokenRequest`] signed under [`Domain::TokenRequest`] to the hospital's
//! [`TokenService`]. [`TokenService::issue`] checks, in this order, each refusal a distinct
//! [`TokenError`]:
//!
//! 1. the signature, for the researcher, this domain and this chain id;
//! 2. the query names this service's hospital;
//! 3. the query's shape: terms non-empty, distinct and sorted by (field, value), each part at
//!    most [`TokenLimits::term_bytes_max`] bytes, at most [`TokenLimits::terms_max`] terms, a
//!    non-empty epoch range, at most [`TokenLimits::keys_max`] keys;
//! 4. every epoch asked for is closed at `now_ms`, so keys never match records written later
//!    (forward privacy);
//! 5. the authorization is committed, was given by this hospital to this researcher, and has not
//!    expired at `now_ms`;
//! 6. the `SearchLog` is committed, was sent by the researcher, names this hospital and this
//!    authorization, and commits to exactly this query (digest and term count);
//!
//! and only then derives one key per term and epoch. Hence every key handed out is accounted for
//! by a `SearchLog` on chain that an auditor can match against the researcher's query.
//!
//! Checks 1 to 4 need no state and cost little, so a flood of bad requests is cheap to refuse;
//! the work of a valid request is bounded by `keys_max` HMACs. Nothing here reads a clock or
//! draws randomness (`now_ms` comes in; the nonce is the researcher's), and nothing logs: error
//! messages name terms by position, never by content, so a caller may log them.
//!
//! A `SearchLog` may be presented again: it gets the same keys for the same query, which the log
//! already accounts for.

use std::fmt;
use std::num::NonZeroU64;

use engine::codec::{self, sha256_parts, Digest};
use engine::crypto::{self, ChainId, Domain, PublicKey, Signature, SigningKey};
use engine::state::State;
use engine::tx::TxId;
use serde::{Deserialize, Serialize};

use crate::labels::{term_key, IndexKey, TermKey};

/// Domain tag of [`TokenQuery::digest`], so the digest of a query is no other hash in medchain.
const QUERY_DIGEST_TAG: &[u8] = b"medchain/index/token-query/v1";

/// Keys one request may ask for unless configured otherwise.
pub const KEYS_MAX_DEFAULT: u64 = 100_000;
/// Terms one request may ask for unless configured otherwise: as many as a query may need.
pub const TERMS_MAX_DEFAULT: usize = crate::query::MAX_TERMS;
/// Longest field or value of a term unless configured otherwise, in bytes.
pub const TERM_BYTES_MAX_DEFAULT: usize = 1024;

const _: () = assert!(TERMS_MAX_DEFAULT as u64 <= KEYS_MAX_DEFAULT);
const _: () = assert!(TERM_BYTES_MAX_DEFAULT >= crate::query::MAX_QUERY_BYTES / 4);

/// One (field, value) term a query needs a key for, as the keyword extractor and the query
/// parser write it (already normalised).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TermRef {
    /// The field (`icd10`, `loinc`, `year`, `text`, ...).
    pub field: String,
    /// The normalised value.
    pub value: String,
}

impl TermRef {
    /// A term reference.
    pub fn new(field: impl Into<String>, value: impl Into<String>) -> Self {
        TermRef { field: field.into(), value: value.into() }
    }
}

impl From<&crate::term::Term> for TermRef {
    fn from(t: &crate::term::Term) -> Self {
        TermRef { field: t.field.clone(), value: t.value.clone() }
    }
}

/// What a `SearchLog` commits to and what the token service hands out keys for: some terms of
/// one hospital's search domain over a range of epochs.
///
/// Serde gives JSON for HTTP (keys, ids and the nonce as hex) and, through
/// [`engine::codec::encode`], the canonical bytes that [`TokenQuery::digest`] hashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenQuery {
    /// The hospital whose search domain is queried.
    pub hospital: PublicKey,
    /// The tx id of the `SearchAuthorization` relied on.
    pub authorization: TxId,
    /// The terms the query needs: distinct, sorted by (field, value).
    pub terms: Vec<TermRef>,
    /// First epoch, inclusive.
    pub epoch_from: u64,
    /// Last epoch, exclusive.
    pub epoch_to: u64,
    /// Random bytes chosen by the researcher, so that two identical searches log two distinct
    /// digests (and the chain does not show that a search was repeated).
    #[serde(with = "nonce_serde")]
    pub nonce: [u8; 16],
}

impl TokenQuery {
    /// The `SearchLog`'s `query_digest`: SHA-256 over a domain tag and the canonical encoding.
    pub fn digest(&self) -> Digest {
        sha256_parts(&[QUERY_DIGEST_TAG, &codec::encode(self)])
    }

    /// The key count it asks for: terms × epochs (saturating; 0 for an empty epoch range).
    pub fn key_count(&self) -> u64 {
        let terms = u64::try_from(self.terms.len()).unwrap_or(u64::MAX);
        terms.saturating_mul(self.epoch_to.saturating_sub(self.epoch_from))
    }
}

/// A researcher's request for term keys: the query, the `SearchLog` tx that logged it, signed by
/// the researcher under [`Domain::TokenRequest`] for one chain id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// The researcher (the signer, and the sender of the `SearchLog`).
    pub researcher: PublicKey,
    /// The tx id of the committed `SearchLog`.
    pub search_log: TxId,
    /// What keys are asked for.
    pub query: TokenQuery,
    /// The researcher's signature over [`TokenRequest::signing_payload`].
    pub signature: Signature,
}

impl TokenRequest {
    /// The request for `query`, logged by `search_log`, signed by `researcher` for `chain_id`.
    pub fn sign(researcher: &SigningKey, chain_id: &ChainId, search_log: TxId, query: TokenQuery) -> Self {
        let mut request =
            TokenRequest { researcher: researcher.public(), search_log, query, signature: Signature([0; 64]) };
        request.signature = researcher.sign(Domain::TokenRequest, chain_id, &request.signing_payload());
        request
    }

    /// What the signature covers (after the domain tag and chain id): the canonical encoding of
    /// (researcher, search_log, query).
    pub fn signing_payload(&self) -> Vec<u8> {
        codec::encode(&(&self.researcher, &self.search_log, &self.query))
    }

    /// Whether the signature is the researcher's over this request on `chain_id`.
    pub fn verify(&self, chain_id: &ChainId) -> bool {
        crypto::verify(&self.researcher, &self.signature, Domain::TokenRequest, chain_id, &self.signing_payload())
    }
}

/// One key handed out: k for (field, value) in `epoch`, as 64 lowercase hex characters.
#[derive(Clone, Serialize, Deserialize)]
pub struct IssuedKey {
    /// The term's field.
    pub field: String,
    /// The term's value.
    pub value: String,
    /// The epoch the key is for.
    pub epoch: u64,
    /// The term key k, hex.
    pub key: String,
}

impl IssuedKey {
    /// The key bytes, parsed from hex.
    pub fn term_key(&self) -> Result<TermKey, TokenError> {
        hex_decode::<32>(&self.key).map(TermKey::from_bytes).map_err(|reason| TokenError::MalformedKey {
            field: self.field.clone(),
            epoch: self.epoch,
            reason,
        })
    }

    /// The key as a searching node uses it, for `hospital`'s search domain.
    pub fn to_domain_key(&self, hospital: PublicKey) -> Result<crate::search::DomainKey, TokenError> {
        Ok(crate::search::DomainKey {
            hospital,
            field: self.field.clone(),
            value: self.value.clone(),
            epoch: self.epoch,
            key: self.term_key()?,
        })
    }
}

impl fmt::Debug for IssuedKey {
    /// Names the term and epoch; never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedKey")
            .field("field", &self.field)
            .field("value", &self.value)
            .field("epoch", &self.epoch)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The keys for one request, in (field, value, epoch) order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The hospital whose search domain the keys belong to.
    pub hospital: PublicKey,
    /// The `SearchLog` that accounts for them.
    pub search_log: TxId,
    /// One key per term and epoch asked for.
    pub keys: Vec<IssuedKey>,
}

/// Bounds on one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenLimits {
    /// Most keys (terms × epochs) per request.
    pub keys_max: u64,
    /// Most terms per request.
    pub terms_max: usize,
    /// Longest field, and longest value, of a term, in bytes.
    pub term_bytes_max: usize,
}

impl Default for TokenLimits {
    fn default() -> Self {
        TokenLimits { keys_max: KEYS_MAX_DEFAULT, terms_max: TERMS_MAX_DEFAULT, term_bytes_max: TERM_BYTES_MAX_DEFAULT }
    }
}

/// Which part of a term is too long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TermPart {
    /// The field name.
    Field,
    /// The value.
    Value,
}

impl TermPart {
    fn name(self) -> &'static str {
        match self {
            TermPart::Field => "field",
            TermPart::Value => "value",
        }
    }
}

/// What of a `SearchLog` differs from the request it is presented with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchLogMismatch {
    /// It was sent by someone other than the requesting researcher.
    Researcher,
    /// It names another hospital.
    Hospital,
    /// It names another authorization.
    Authorization,
    /// Its `query_digest` is not the digest of the query presented.
    QueryDigest,
    /// Its `term_count` is not the number of terms presented.
    TermCount,
}

impl SearchLogMismatch {
    /// The `SearchLog` field that differs.
    pub fn name(self) -> &'static str {
        match self {
            SearchLogMismatch::Researcher => "sender",
            SearchLogMismatch::Hospital => "hospital",
            SearchLogMismatch::Authorization => "authorization",
            SearchLogMismatch::QueryDigest => "query_digest",
            SearchLogMismatch::TermCount => "term_count",
        }
    }
}

/// Why a token request is refused. [`TokenError::code`] is stable and machine-readable,
/// [`TokenError::http_status`] is what the node's endpoint answers, [`TokenError::field`] the
/// request field to fix. Messages say what is wrong and what to do; they name terms by position,
/// never by content.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The signature does not verify.
    #[error("the signature does not verify for researcher {researcher} under the token-request domain on chain {chain_id}: sign the request with the researcher's key for this chain (TokenRequest::sign), after the last change to it")]
    BadSignature {
        /// The claimed researcher.
        researcher: PublicKey,
        /// This service's chain id.
        chain_id: ChainId,
    },
    /// The query is for another hospital's search domain.
    #[error("the query is for hospital {asked}'s search domain, but this token service serves hospital {served}: send it to {asked}'s token service")]
    WrongDomain {
        /// The hospital the query names.
        asked: PublicKey,
        /// This service's hospital.
        served: PublicKey,
    },
    /// The query has no term.
    #[error("the query asks for no term: list at least one (field, value) term")]
    NoTerms,
    /// More terms than allowed.
    #[error(
        "the query asks for {count} terms, more than the {max} allowed per request: split it into several searches"
    )]
    TooManyTerms {
        /// Terms asked for.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A field or value is longer than allowed.
    #[error("term {index}: its {} is {len} bytes, more than the {max} allowed: this is no term the index holds", part.name())]
    TermTooLong {
        /// Position in `query.terms`.
        index: usize,
        /// Which part.
        part: TermPart,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
        /// The request field (`query.terms[i].field`).
        path: String,
    },
    /// The terms are not strictly increasing by (field, value).
    #[error("term {index} {} term {}: the terms must be distinct and sorted by (field, value); sort and deduplicate them (and log the sorted query)", if *duplicate { "repeats" } else { "sorts before" }, index - 1)]
    TermsNotSorted {
        /// Position of the first term out of order.
        index: usize,
        /// Whether it equals the one before (else it sorts before it).
        duplicate: bool,
        /// The request field (`query.terms[i]`).
        path: String,
    },
    /// The epoch range is empty.
    #[error("epoch range [{epoch_from}, {epoch_to}) is empty: epoch_to is exclusive and must be above epoch_from")]
    EmptyEpochRange {
        /// First epoch.
        epoch_from: u64,
        /// Last epoch, exclusive.
        epoch_to: u64,
    },
    /// terms × epochs is more than allowed.
    #[error("the query asks for {count} keys ({terms} terms × {epochs} epochs), more than the {max} allowed per request: ask for fewer terms or a shorter epoch range")]
    TooManyKeys {
        /// Keys asked for (saturating).
        count: u64,
        /// Terms asked for.
        terms: usize,
        /// Epochs asked for.
        epochs: u64,
        /// The limit.
        max: u64,
    },
    /// Some epoch asked for is not closed yet.
    #[error("epoch {last} is not closed at {now_ms} ms (epoch {first_open} is open; epochs are {epoch_len_ms} ms): it closes at {closes_at_ms} ms; ask again then, or ask for epoch_to ≤ {first_open}")]
    EpochNotClosed {
        /// The last epoch asked for (`epoch_to - 1`).
        last: u64,
        /// The first epoch still open at `now_ms`.
        first_open: u64,
        /// When `last` closes (saturating).
        closes_at_ms: u64,
        /// The service's time.
        now_ms: u64,
        /// The epoch length.
        epoch_len_ms: u64,
    },
    /// The authorization is not committed on this node's chain.
    #[error("search authorization {authorization} is not committed on this node's chain (height {height}): wait for it to commit or check the id")]
    UnknownAuthorization {
        /// The id asked for.
        authorization: TxId,
        /// This node's height.
        height: u64,
    },
    /// The authorization was given by another hospital.
    #[error("search authorization {authorization} was given by hospital {given_by}, not by this service's hospital {served}: ask {served} for an authorization, or send the request to {given_by}'s token service")]
    AuthorizationFromOtherHospital {
        /// The authorization.
        authorization: TxId,
        /// Who gave it.
        given_by: PublicKey,
        /// This service's hospital.
        served: PublicKey,
    },
    /// The authorization names another researcher.
    #[error("search authorization {authorization} is given to researcher {named}, not to {researcher}: use an authorization given to you")]
    AuthorizationForOtherResearcher {
        /// The authorization.
        authorization: TxId,
        /// The researcher it names.
        named: PublicKey,
        /// The requesting researcher.
        researcher: PublicKey,
    },
    /// The authorization has expired.
    #[error("search authorization {authorization} expired at {expired_at_ms} ms; it is now {now_ms} ms: ask the hospital for a new authorization")]
    AuthorizationExpired {
        /// The authorization.
        authorization: TxId,
        /// Its `expires_at_ms`.
        expired_at_ms: u64,
        /// The service's time.
        now_ms: u64,
    },
    /// The `SearchLog` is not committed.
    #[error("search log {search_log} is not committed on this node's chain (height {height}): commit the SearchLog first, wait for it to commit, then ask again")]
    SearchLogNotCommitted {
        /// The id presented.
        search_log: TxId,
        /// This node's height.
        height: u64,
    },
    /// The `SearchLog` does not match the request.
    #[error("search log {search_log}: its {} {found} differs from the request's {expected}: present the SearchLog that logged exactly this query (same terms, epochs and nonce), or log this one", what.name())]
    SearchLogMismatch {
        /// The log.
        search_log: TxId,
        /// What differs.
        what: SearchLogMismatch,
        /// What the request implies (hex key or digest, or a count).
        expected: String,
        /// What the log holds.
        found: String,
    },
    /// An issued key is not 32 bytes of hex.
    #[error("issued key for field `{field}` in epoch {epoch}: {reason}; keys are 64 lowercase hex characters as the token service sends them")]
    MalformedKey {
        /// The term's field (a public name; the value is not echoed).
        field: String,
        /// The key's epoch.
        epoch: u64,
        /// What is wrong.
        reason: String,
    },
}

impl TokenError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::BadSignature { .. } => "bad_signature",
            TokenError::WrongDomain { .. } => "wrong_domain",
            TokenError::NoTerms => "no_terms",
            TokenError::TooManyTerms { .. } => "too_many_terms",
            TokenError::TermTooLong { .. } => "term_too_long",
            TokenError::TermsNotSorted { .. } => "terms_not_sorted",
            TokenError::EmptyEpochRange { .. } => "empty_epoch_range",
            TokenError::TooManyKeys { .. } => "too_many_keys",
            TokenError::EpochNotClosed { .. } => "epoch_not_closed",
            TokenError::UnknownAuthorization { .. } => "unknown_authorization",
            TokenError::AuthorizationFromOtherHospital { .. } => "authorization_other_hospital",
            TokenError::AuthorizationForOtherResearcher { .. } => "authorization_other_researcher",
            TokenError::AuthorizationExpired { .. } => "authorization_expired",
            TokenError::SearchLogNotCommitted { .. } => "search_log_not_committed",
            TokenError::SearchLogMismatch { .. } => "search_log_mismatch",
            TokenError::MalformedKey { .. } => "malformed_key",
        }
    }

    /// The HTTP status a node answers with: 401 for a bad signature, 403 for what the researcher
    /// may not have, 409 for what is not (yet) so on chain or in time, 400 for a malformed request.
    pub fn http_status(&self) -> u16 {
        match self {
            TokenError::BadSignature { .. } => 401,
            TokenError::WrongDomain { .. }
            | TokenError::UnknownAuthorization { .. }
            | TokenError::AuthorizationFromOtherHospital { .. }
            | TokenError::AuthorizationForOtherResearcher { .. }
            | TokenError::AuthorizationExpired { .. }
            | TokenError::SearchLogMismatch { .. } => 403,
            TokenError::EpochNotClosed { .. } | TokenError::SearchLogNotCommitted { .. } => 409,
            TokenError::NoTerms
            | TokenError::TooManyTerms { .. }
            | TokenError::TermTooLong { .. }
            | TokenError::TermsNotSorted { .. }
            | TokenError::EmptyEpochRange { .. }
            | TokenError::TooManyKeys { .. }
            | TokenError::MalformedKey { .. } => 400,
        }
    }

    /// The request field to fix, as a path into the JSON request (`query.terms[3].value`).
    pub fn field(&self) -> Option<&str> {
        Some(match self {
            TokenError::BadSignature { .. } => "signature",
            TokenError::WrongDomain { .. } => "query.hospital",
            TokenError::NoTerms | TokenError::TooManyTerms { .. } => "query.terms",
            TokenError::TermTooLong { path, .. } | TokenError::TermsNotSorted { path, .. } => path,
            TokenError::EmptyEpochRange { .. } | TokenError::EpochNotClosed { .. } => "query.epoch_to",
            TokenError::TooManyKeys { .. } => "query",
            TokenError::UnknownAuthorization { .. }
            | TokenError::AuthorizationFromOtherHospital { .. }
            | TokenError::AuthorizationForOtherResearcher { .. }
            | TokenError::AuthorizationExpired { .. } => "query.authorization",
            TokenError::SearchLogNotCommitted { .. } | TokenError::SearchLogMismatch { .. } => "search_log",
            TokenError::MalformedKey { .. } => "key",
        })
    }
}

/// A hospital's token service: holds its index key K and answers [`TokenRequest`]s against the
/// committed state. `Debug` never prints K.
#[derive(Debug)]
pub struct TokenService {
    hospital: PublicKey,
    index_key: IndexKey,
    epoch_len_ms: NonZeroU64,
    limits: TokenLimits,
}

impl TokenService {
    /// The service of `hospital`, deriving keys under `index_key` with epochs of `epoch_len_ms`
    /// (the writer's [`crate::labels::LabelPolicy::epoch_len_ms`]).
    pub fn new(hospital: PublicKey, index_key: IndexKey, epoch_len_ms: NonZeroU64, limits: TokenLimits) -> Self {
        TokenService { hospital, index_key, epoch_len_ms, limits }
    }

    /// The hospital whose search domain this service serves.
    pub fn hospital(&self) -> &PublicKey {
        &self.hospital
    }

    /// The epoch length.
    pub fn epoch_len_ms(&self) -> NonZeroU64 {
        self.epoch_len_ms
    }

    /// The limits.
    pub fn limits(&self) -> &TokenLimits {
        &self.limits
    }

    /// The first epoch still open at `now_ms`. The epochs closed at `now_ms` are every e with
    /// (e + 1) × len ≤ now_ms, i.e. e < now_ms / len.
    pub fn first_open_epoch(&self, now_ms: u64) -> u64 {
        now_ms / self.epoch_len_ms.get()
    }

    /// When `epoch` closes: (epoch + 1) × len, saturating.
    pub fn closes_at_ms(&self, epoch: u64) -> u64 {
        epoch.saturating_add(1).saturating_mul(self.epoch_len_ms.get())
    }

    /// The keys `request` asks for, after every check (see the [module docs](self)) against the
    /// committed `state` of chain `chain_id` at `now_ms`.
    pub fn issue(
        &self,
        state: &State,
        chain_id: &ChainId,
        request: &TokenRequest,
        now_ms: u64,
    ) -> Result<TokenResponse, TokenError> {
        if !request.verify(chain_id) {
            return Err(TokenError::BadSignature { researcher: request.researcher, chain_id: chain_id.clone() });
        }
        let query = &request.query;
        if query.hospital != self.hospital {
            return Err(TokenError::WrongDomain { asked: query.hospital, served: self.hospital });
        }
        self.check_shape(query)?;
        self.check_closed(query, now_ms)?;
        self.check_authorization(state, request, now_ms)?;
        self.check_search_log(state, request)?;

        let mut keys = Vec::with_capacity(usize::try_from(query.key_count()).unwrap_or(0));
        for term in &query.terms {
            for epoch in query.epoch_from..query.epoch_to {
                let k = term_key(&self.index_key, &term.field, &term.value, epoch);
                keys.push(IssuedKey {
                    field: term.field.clone(),
                    value: term.value.clone(),
                    epoch,
                    key: hex_encode(k.expose_bytes()),
                });
            }
        }
        Ok(TokenResponse { hospital: self.hospital, search_log: request.search_log, keys })
    }

    fn check_shape(&self, query: &TokenQuery) -> Result<(), TokenError> {
        let limits = &self.limits;
        if query.terms.is_empty() {
            return Err(TokenError::NoTerms);
        }
        if query.terms.len() > limits.terms_max {
            return Err(TokenError::TooManyTerms { count: query.terms.len(), max: limits.terms_max });
        }
        for (index, term) in query.terms.iter().enumerate() {
            for (part, text) in [(TermPart::Field, &term.field), (TermPart::Value, &term.value)] {
                if text.len() > limits.term_bytes_max {
                    let path = format!("query.terms[{index}].{}", part.name());
                    return Err(TokenError::TermTooLong {
                        index,
                        part,
                        len: text.len(),
                        max: limits.term_bytes_max,
                        path,
                    });
                }
            }
        }
        for (index, pair) in query.terms.windows(2).enumerate() {
            if pair[0] >= pair[1] {
                let index = index + 1;
                let path = format!("query.terms[{index}]");
                return Err(TokenError::TermsNotSorted { index, duplicate: pair[0] == pair[1], path });
            }
        }
        if query.epoch_from >= query.epoch_to {
            return Err(TokenError::EmptyEpochRange { epoch_from: query.epoch_from, epoch_to: query.epoch_to });
        }
        let count = query.key_count();
        if count > limits.keys_max {
            return Err(TokenError::TooManyKeys {
                count,
                terms: query.terms.len(),
                epochs: query.epoch_to - query.epoch_from,
                max: limits.keys_max,
            });
        }
        Ok(())
    }

    fn check_closed(&self, query: &TokenQuery, now_ms: u64) -> Result<(), TokenError> {
        let first_open = self.first_open_epoch(now_ms);
        if query.epoch_to <= first_open {
            return Ok(());
        }
        // `check_shape` made epoch_to > epoch_from ≥ 0.
        let last = query.epoch_to - 1;
        Err(TokenError::EpochNotClosed {
            last,
            first_open,
            closes_at_ms: self.closes_at_ms(last),
            now_ms,
            epoch_len_ms: self.epoch_len_ms.get(),
        })
    }

    fn check_authorization(&self, state: &State, request: &TokenRequest, now_ms: u64) -> Result<(), TokenError> {
        let authorization = request.query.authorization;
        let Some(entry) = state.search_authorization(&authorization) else {
            return Err(TokenError::UnknownAuthorization { authorization, height: state.height() });
        };
        if entry.hospital != self.hospital {
            return Err(TokenError::AuthorizationFromOtherHospital {
                authorization,
                given_by: entry.hospital,
                served: self.hospital,
            });
        }
        if entry.authorization.researcher != request.researcher {
            return Err(TokenError::AuthorizationForOtherResearcher {
                authorization,
                named: entry.authorization.researcher,
                researcher: request.researcher,
            });
        }
        // As the state machine does: expired once the time reaches `expires_at_ms`.
        if entry.authorization.expires_at_ms <= now_ms {
            return Err(TokenError::AuthorizationExpired {
                authorization,
                expired_at_ms: entry.authorization.expires_at_ms,
                now_ms,
            });
        }
        Ok(())
    }

    fn check_search_log(&self, state: &State, request: &TokenRequest) -> Result<(), TokenError> {
        let search_log = request.search_log;
        let Some(entry) = state.search_log(&search_log) else {
            return Err(TokenError::SearchLogNotCommitted { search_log, height: state.height() });
        };
        let query = &request.query;
        let log = &entry.log;
        let mismatch = |what, expected: String, found: String| {
            Err(TokenError::SearchLogMismatch { search_log, what, expected, found })
        };
        if entry.researcher != request.researcher {
            return mismatch(SearchLogMismatch::Researcher, request.researcher.to_hex(), entry.researcher.to_hex());
        }
        if log.hospital != query.hospital {
            return mismatch(SearchLogMismatch::Hospital, query.hospital.to_hex(), log.hospital.to_hex());
        }
        if log.authorization != query.authorization {
            return mismatch(
                SearchLogMismatch::Authorization,
                query.authorization.to_hex(),
                log.authorization.to_hex(),
            );
        }
        let digest = query.digest();
        if log.query_digest != digest {
            return mismatch(SearchLogMismatch::QueryDigest, digest.to_hex(), log.query_digest.to_hex());
        }
        if u64::from(log.term_count) != u64::try_from(query.terms.len()).unwrap_or(u64::MAX) {
            return mismatch(SearchLogMismatch::TermCount, query.terms.len().to_string(), log.term_count.to_string());
        }
        Ok(())
    }
}

/// Lowercase hex of `bytes`.
fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Exactly `N` bytes from `2N` hex digits (either case); the reason otherwise.
fn hex_decode<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return Err(format!("{} hex characters, expected {}", digits.len(), 2 * N));
    }
    let nibble = |at: usize| {
        let c = digits[at];
        char::from(c).to_digit(16).map(|d| d as u8).ok_or_else(|| format!("not a hex digit at position {at}"))
    };
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (nibble(2 * i)? << 4) | nibble(2 * i + 1)?;
    }
    Ok(out)
}

/// The nonce as raw bytes in the canonical encoding and as hex in JSON.
mod nonce_serde {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(nonce: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&super::hex_encode(nonce))
        } else {
            nonce.serialize(s)
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            super::hex_decode::<16>(&text).map_err(|e| D::Error::custom(format!("nonce: {e}")))
        } else {
            <[u8; 16]>::deserialize(d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_names_the_fault() {
        let bytes: [u8; 16] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        assert_eq!(hex_decode::<16>(&hex_encode(&bytes)), Ok(bytes));
        assert_eq!(hex_encode(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(hex_decode::<2>("ABcd"), Ok([0xab, 0xcd]));
        assert_eq!(hex_decode::<2>("abc"), Err("3 hex characters, expected 4".into()));
        assert_eq!(hex_decode::<2>("abcg"), Err("not a hex digit at position 3".into()));
        // A multi-byte character is not a digit and does not split a char boundary.
        assert!(hex_decode::<2>("é12").is_err());
    }

    #[test]
    fn key_count_saturates_and_is_zero_for_empty_ranges() {
        let mut q = TokenQuery {
            hospital: PublicKey([1; 32]),
            authorization: Digest([2; 32]),
            terms: vec![TermRef::new("a", "1"), TermRef::new("b", "2")],
            epoch_from: 5,
            epoch_to: 8,
            nonce: [0; 16],
        };
        assert_eq!(q.key_count(), 6);
        q.epoch_to = 5;
        assert_eq!(q.key_count(), 0);
        q.epoch_to = 2;
        assert_eq!(q.key_count(), 0);
        q.epoch_from = 0;
        q.epoch_to = u64::MAX;
        assert_eq!(q.key_count(), u64::MAX);
    }
}
