//! The researcher query language: a boolean expression over search predicates, the terms each
//! predicate stands for, public filters, and a plaintext reference evaluator.
//!
//! A researcher writes `icd10:E11 AND loinc:4548-4>8 AND NOT rxnorm:860975 AND year:2024`.
//! [`parse`] turns it into a [`Query`]: an [`Expr`] whose leaves are [`Predicate`]s, each the OR
//! of the [`Term`]s (field, value) the extractor ([`crate::keywords`]) emits for matching
//! records, plus a [`PublicFilter`] the node applies on plaintext fast fields. [`Query::terms`]
//! lists the distinct terms the researcher needs trapdoor keys for; [`Expr::matches`] and
//! [`evaluate`] are the plaintext ground truth, and [`Expr::eval_sets`] is the same boolean
//! combinator over per-predicate hit sets, for the encrypted path.
//!
//! # Grammar
//!
//! ```text
//! query      = or_expr ;
//! or_expr    = and_expr , { OR , and_expr } ;
//! and_expr   = unary , { [ AND ] , unary } ;          (* adjacent clauses: implicit AND *)
//! unary      = NOT , unary | primary ;
//! primary    = "(" , or_expr , ")" | predicate | filter ;
//! predicate  = field , ":" , value ;
//! filter     = ( "hospital" | "type" | "created" ) , ":" , value ;
//! value      = ( quoted , [ bare ] ) | bare ;          (* no space between the parts *)
//! quoted     = '"' , { char - ( '"' | "\" ) | "\" , char } , '"' ;
//! bare       = char - ( space | "(" | ")" | '"' ) , { char - ( space | "(" | ")" | '"' ) } ;
//! AND        = "AND" | "&" | "&&" ;                   (* keywords in any case *)
//! OR         = "OR" | "|" | "||" ;
//! NOT        = "NOT" | "!" | "-" ;                    (* "-" only where a clause starts *)
//! ```
//!
//! Precedence is NOT over AND over OR; AND and OR are n-ary and parentheses are kept as written
//! (`(a AND b) AND c` is a nested AND), so that [`Display`](fmt::Display) round-trips exactly.
//! Field names are case-insensitive. A bare value runs to the next space or parenthesis, so a
//! symbolic operator written right after a bare value is part of the value: write
//! `icd10:E11 | icd10:E12`, not `icd10:E11|icd10:E12`.
//!
//! # Predicates
//!
//! | predicate                         | terms (field:value)                                   |
//! |-----------------------------------|-------------------------------------------------------|
//! | `icd10:e119`, `icd10:E11`         | `icd10:E11.9`, `icd10:E11` (normalised as the extractor does; any level matches its descendants) |
//! | `icd10:E10-E14`, `icd10:chapter-iv` | `icd10:E10-E14`, `icd10:chapter-IV` (WHO blocks, block groups and chapters only) |
//! | `loinc:4548-4` (also `snomed`, `rxnorm`) | `loinc:4548-4` (the code is present)           |
//! | `loinc:4548-4>8`, `>=`, `<`, `<=`, `=5`, `loinc:4548-4:4..6` (also `4..=6`, `..6`, `4..`) | OR of the value bands of [`band_cover`] (field `value`), at the code's band resolution |
//! | `code:"http://x.org/cs\|A1"`      | `code:http://x.org/cs\|A1`; known systems (LOINC, SNOMED CT, RxNorm, ICD-10) are rewritten to their own field, as the extractor files them |
//! | `code:"http://x.org/cs\|A1">8`    | value bands under `code\|http://x.org/cs\|A1` (a comparison on `code` needs the quoted form) |
//! | `year:2024`, `month:2024-03`, `day:2024-03-05`, `birthyear:1967` | the same value       |
//! | `age1:57`, `age5:55-59` (or `age5:57`), `age20:40-59` (or `age20:45`) | the band holding that age |
//! | `gender:female`                   | `gender:female` (`male`, `female`, `other`, `unknown`) |
//! | `text:metformin`, `text:"Type 2 diabetes"` | [`tokens`] of the text; several tokens are an AND of one predicate per token (not a phrase: order and adjacency are not indexed) |
//!
//! A predicate that can never match is refused rather than silently empty: a text with no
//! indexed token (`text:the`, `text:500`), an empty value range (`loinc:4548-4:5..5`), an ICD-10
//! block that WHO does not define.
//!
//! # Public filters
//!
//! `hospital:<64 hex digits>`, `type:<data type>` (e.g. `Condition`, `Bundle`) and
//! `created:<dates>` restrict the records searched by their public, unencrypted metadata; the node
//! applies them as fast-field filters before any encrypted term is looked at. They are written in
//! the query, but only as top-level AND clauses (not under OR, NOT or parentheses, where they
//! would not be a plain restriction), at most one of each kind, and a query needs at least one
//! predicate besides them. A command line can build the same [`PublicFilter`] from flags with
//! [`PublicFilter::parse_hospital`], [`PublicFilter::parse_type`] and
//! [`PublicFilter::parse_created`]. `created` takes `2024-01-01..2024-06-30` (both ends
//! inclusive), `2024-01-01..`, `..2024-06-30`, or a single date; each date may be a year, a
//! month or a day (`created:2024-01..2024-06` is January to June), in UTC.
//!
//! # Negation
//!
//! `NOT e` is the complement of `e` over the universe: the records admitted by the public filter.
//! A query made only of negations (`NOT icd10:E11`) is therefore valid and returns every admitted
//! record without the term; [`Expr::is_positive`] tells a node that wants to refuse such
//! (costly, broad) queries.
//!
//! # Limits
//!
//! A query is at most [`MAX_QUERY_BYTES`] bytes, [`MAX_DEPTH`] nested levels, and [`MAX_TERMS`]
//! distinct terms: each term costs the researcher a token request and the node a label expansion
//! over every writer and counter, so an unbounded query is a denial of service. A value range
//! alone can take a hundred band terms at a fine scale, so the cap leaves room for a couple of
//! ranges and a hundred codes.

use std::collections::BTreeSet;
use std::fmt;

use engine::crypto::PublicKey;

use crate::keywords::bands::{band_cover, ValueRange};
use crate::keywords::date::{age_band, FhirDate};
use crate::keywords::icd10;
use crate::keywords::text::tokens;
use crate::term::Term;

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Most distinct terms a query may need keys for.
pub const MAX_TERMS: usize = 256;
/// Deepest nesting of parentheses and NOTs.
pub const MAX_DEPTH: usize = 32;

/// The predicate fields, in the order error messages list them.
pub const FIELDS: [&str; 15] = [
    "icd10",
    "loinc",
    "snomed",
    "rxnorm",
    "code",
    "year",
    "month",
    "day",
    "birthyear",
    "age1",
    "age5",
    "age20",
    "gender",
    "text",
    "value",
];

/// The public filter fields.
pub const FILTER_FIELDS: [&str; 3] = ["hospital", "type", "created"];

/// A parsed query: the boolean expression over predicates and the public filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The encrypted part: predicates combined with AND, OR, NOT.
    pub expr: Expr,
    /// The plaintext restriction applied by the node.
    pub filter: PublicFilter,
}

/// A boolean expression over predicates. Parsed expressions have at least two operands in every
/// `And` and `Or`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// A record matches when it has any of the predicate's terms.
    Pred(Predicate),
    /// Every operand matches.
    And(Vec<Expr>),
    /// Some operand matches.
    Or(Vec<Expr>),
    /// The operand does not match (complement over the universe).
    Not(Box<Expr>),
}

/// One predicate: what the researcher wrote, canonicalised, and the terms it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Predicate {
    /// The field as written in the query language (`icd10`, `loinc`, `text`, ...).
    pub field: String,
    /// The canonical argument, quoted where needed, exactly as [`fmt::Display`] writes it
    /// (`E11.9`, `4548-4>8`, `"http://x.org/cs|A1"`).
    pub arg: String,
    /// The terms, one of which a record must have; never empty. Their priority is 0: priorities
    /// only order a record's own terms.
    pub terms: Vec<Term>,
}

/// Restrictions on public record metadata; `None` is no restriction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublicFilter {
    /// The hospital whose records are searched.
    pub hospital: Option<PublicKey>,
    /// The record's data type (`Condition`, `Bundle`, ...).
    pub resource_type: Option<String>,
    /// The creation dates.
    pub created: Option<CreatedRange>,
}

/// An inclusive range of calendar periods (UTC), either end open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreatedRange {
    /// The first period (its start is included).
    pub first: Option<FhirDate>,
    /// The last period (its end is included).
    pub last: Option<FhirDate>,
}

/// The public metadata of a record, as the node's fast fields hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicMeta {
    /// The hospital that wrote it.
    pub hospital: PublicKey,
    /// Its data type.
    pub resource_type: String,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// A record in plaintext, for the reference evaluator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainRecord<Id> {
    /// Its id.
    pub id: Id,
    /// Its terms as (field, value).
    pub terms: BTreeSet<(String, String)>,
    /// Its public metadata.
    pub meta: PublicMeta,
}

/// Why a query was refused, and where (a byte offset into the query).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at {offset}")]
pub struct QueryError {
    /// Byte offset of the problem in the query text.
    pub offset: usize,
    /// What is wrong.
    pub kind: QueryErrorKind,
}

/// What is wrong with a query.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryErrorKind {
    /// Nothing but spaces.
    #[error("empty query")]
    Empty,
    /// Over [`MAX_QUERY_BYTES`].
    #[error("query of {len} bytes is longer than the {max} allowed")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Over [`MAX_TERMS`].
    #[error("query needs {count} terms, more than the {max} allowed")]
    TooManyTerms {
        /// Distinct terms needed.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Over [`MAX_DEPTH`].
    #[error("query nests deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A clause was expected.
    #[error("expected {expected}{}{}", after.as_ref().map(|a| format!(" after {a}")).unwrap_or_default(), found.as_ref().map(|f| format!(", found `{f}`")).unwrap_or_default())]
    Expected {
        /// What was expected, e.g. `a predicate`.
        expected: &'static str,
        /// The token before, e.g. `AND`.
        after: Option<String>,
        /// What was found instead; `None` at the end of the query.
        found: Option<String>,
    },
    /// `(` never closed.
    #[error("unbalanced parentheses: `(` is never closed")]
    Unclosed,
    /// `)` without `(`.
    #[error("unbalanced parentheses: `)` without `(`")]
    Unopened,
    /// A `"` never closed.
    #[error("unterminated quoted value")]
    UnterminatedQuote,
    /// A field that is neither a predicate nor a filter field.
    #[error("unknown field `{0}` (known: {known})", known = known_fields())]
    UnknownField(String),
    /// A value the field does not accept.
    #[error("bad value for {field}: {problem}")]
    BadValue {
        /// The field.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// A value range that does not parse or matches nothing.
    #[error("bad range `{range}`: {problem}")]
    BadRange {
        /// The range as written.
        range: String,
        /// What is wrong.
        problem: String,
    },
    /// A public filter under OR, NOT or parentheses.
    #[error("`{0}:` is a public filter: it may only be a top-level AND clause")]
    MisplacedFilter(String),
    /// The same public filter twice.
    #[error("`{0}:` given twice")]
    DuplicateFilter(String),
    /// Only public filters.
    #[error("a query needs at least one predicate besides public filters")]
    NoPredicate,
}

fn known_fields() -> String {
    FIELDS.iter().chain(FILTER_FIELDS.iter()).copied().collect::<Vec<_>>().join(", ")
}

impl QueryError {
    fn new(offset: usize, kind: QueryErrorKind) -> Self {
        QueryError { offset, kind }
    }

    /// The query on one line and a caret under the offset, then the message:
    ///
    /// ```text
    /// icd10:E11 AND
    ///               ^ expected a predicate after AND at 14
    /// ```
    pub fn render(&self, query: &str) -> String {
        let line: String = query.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let column = query.get(..self.offset).map_or(self.offset, |s| s.chars().count());
        format!("{line}\n{}^ {self}", " ".repeat(column))
    }
}

/// Parse a query (see the module documentation).
pub fn parse(input: &str) -> Result<Query, QueryError> {
    if input.len() > MAX_QUERY_BYTES {
        return Err(QueryError::new(
            MAX_QUERY_BYTES,
            QueryErrorKind::TooLong { len: input.len(), max: MAX_QUERY_BYTES },
        ));
    }
    let tokens = lex(input)?;
    if tokens.is_empty() {
        return Err(QueryError::new(0, QueryErrorKind::Empty));
    }
    let mut p = Parser { tokens, pos: 0, end: input.len(), filter: PublicFilter::default() };
    let expr = p.root()?;
    let query = Query { expr, filter: p.filter };
    let count = query.terms().len();
    if count > MAX_TERMS {
        return Err(QueryError::new(0, QueryErrorKind::TooManyTerms { count, max: MAX_TERMS }));
    }
    Ok(query)
}

impl std::str::FromStr for Query {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    And,
    Or,
    Not,
    Open,
    Close,
    /// `field:value`; `quoted` is the unescaped quoted part, `bare` what follows it (or the whole
    /// value when unquoted).
    Pred {
        field: String,
        quoted: Option<String>,
        bare: String,
        value_at: usize,
    },
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    at: usize,
    text: String,
}

fn is_bare(c: char) -> bool {
    !(c.is_whitespace() || c == '(' || c == ')' || c == '"')
}

fn lex(input: &str) -> Result<Vec<Token>, QueryError> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let simple = |tok: Tok, len: usize| Token { tok, at, text: input[at..at + len].to_owned() };
        let rest = &input[at..];
        let token = match c {
            '(' => simple(Tok::Open, 1),
            ')' => simple(Tok::Close, 1),
            '&' => simple(Tok::And, if rest.starts_with("&&") { 2 } else { 1 }),
            '|' => simple(Tok::Or, if rest.starts_with("||") { 2 } else { 1 }),
            '!' | '-' => simple(Tok::Not, 1),
            _ => {
                // A word: a keyword, or `field:value`.
                let word_len = rest.find(|c: char| !is_bare(c) || c == ':').unwrap_or(rest.len());
                let word = &rest[..word_len];
                if rest[word_len..].starts_with(':') {
                    let value_at = at + word_len + 1;
                    let (quoted, bare, end) = lex_value(input, value_at)?;
                    let tok = Tok::Pred { field: word.to_ascii_lowercase(), quoted, bare, value_at };
                    let token = Token { tok, at, text: input[at..end].to_owned() };
                    while chars.peek().is_some_and(|&(i, _)| i < end) {
                        chars.next();
                    }
                    out.push(token);
                    continue;
                }
                let word_len = rest.find(|c: char| !is_bare(c)).unwrap_or(rest.len()).max(c.len_utf8());
                let word = &rest[..word_len];
                let tok = match word.to_ascii_uppercase().as_str() {
                    "AND" => Tok::And,
                    "OR" => Tok::Or,
                    "NOT" => Tok::Not,
                    _ => {
                        return Err(QueryError::new(
                            at,
                            QueryErrorKind::Expected {
                                expected: "a predicate (field:value) or an operator",
                                after: None,
                                found: Some(word.to_owned()),
                            },
                        ))
                    }
                };
                simple(tok, word_len)
            }
        };
        let end = token.at + token.text.len();
        while chars.peek().is_some_and(|&(i, _)| i < end) {
            chars.next();
        }
        out.push(token);
    }
    Ok(out)
}

/// The value starting at `at`: (quoted part, bare part, end offset).
fn lex_value(input: &str, at: usize) -> Result<(Option<String>, String, usize), QueryError> {
    let mut pos = at;
    let mut quoted = None;
    if input[at..].starts_with('"') {
        let mut s = String::new();
        let mut it = input[at + 1..].char_indices();
        let mut closed = None;
        while let Some((i, c)) = it.next() {
            match c {
                '"' => {
                    closed = Some(at + 1 + i + 1);
                    break;
                }
                '\\' => match it.next() {
                    Some((_, e)) => s.push(e),
                    None => break,
                },
                c => s.push(c),
            }
        }
        pos = closed.ok_or_else(|| QueryError::new(at, QueryErrorKind::UnterminatedQuote))?;
        quoted = Some(s);
    }
    let rest = &input[pos..];
    let len = rest.find(|c: char| !is_bare(c)).unwrap_or(rest.len());
    Ok((quoted, rest[..len].to_owned(), pos + len))
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    end: usize,
    filter: PublicFilter,
}

enum Clause {
    Expr(Expr),
    Filter,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn here(&self) -> usize {
        self.peek().map_or(self.end, |t| t.at)
    }

    fn starts_clause(tok: &Tok) -> bool {
        matches!(tok, Tok::Not | Tok::Open | Tok::Pred { .. })
    }

    fn expected(&self, after: Option<&Token>) -> QueryError {
        let after = after.map(|t| match t.tok {
            Tok::And => "AND".to_owned(),
            Tok::Or => "OR".to_owned(),
            Tok::Not => "NOT".to_owned(),
            _ => format!("`{}`", t.text),
        });
        QueryError::new(
            self.here(),
            QueryErrorKind::Expected { expected: "a predicate", after, found: self.peek().map(|t| t.text.clone()) },
        )
    }

    /// The whole query: an OR of AND chains, where the first chain may hold the public filters
    /// when no OR follows.
    fn root(&mut self) -> Result<Expr, QueryError> {
        let (first, filters) = self.and_chain(true, 0)?;
        let mut operands = Vec::new();
        operands.extend(first);
        while let Some(Tok::Or) = self.peek().map(|t| &t.tok) {
            if let Some((field, at)) = filters.first() {
                return Err(QueryError::new(*at, QueryErrorKind::MisplacedFilter(field.clone())));
            }
            let op = self.tokens[self.pos].clone();
            self.pos += 1;
            let (next, _) = self.clause_required(Some(&op), |p| p.and_chain(false, 0))?;
            operands.push(next.expect("a chain below the root has a predicate"));
        }
        self.finish()?;
        match operands.len() {
            0 => Err(QueryError::new(filters.first().map_or(0, |f| f.1), QueryErrorKind::NoPredicate)),
            1 => Ok(operands.pop().expect("one operand")),
            _ => Ok(Expr::Or(operands)),
        }
    }

    /// After the last clause: only a stray `)` or a token that cannot follow can be left.
    fn finish(&self) -> Result<(), QueryError> {
        match self.peek() {
            None => Ok(()),
            Some(t) if t.tok == Tok::Close => Err(QueryError::new(t.at, QueryErrorKind::Unopened)),
            Some(t) => Err(QueryError::new(
                t.at,
                QueryErrorKind::Expected { expected: "an operator", after: None, found: Some(t.text.clone()) },
            )),
        }
    }

    /// Run `f` where a clause must start, else report what was expected after `after`.
    fn clause_required<T>(
        &mut self,
        after: Option<&Token>,
        f: impl FnOnce(&mut Self) -> Result<T, QueryError>,
    ) -> Result<T, QueryError> {
        match self.peek() {
            Some(t) if Self::starts_clause(&t.tok) => f(self),
            _ => Err(self.expected(after)),
        }
    }

    fn or_expr(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let (first, _) = self.and_chain(false, depth)?;
        let mut operands = vec![first.expect("a nested chain has a predicate")];
        while let Some(Tok::Or) = self.peek().map(|t| &t.tok) {
            let op = self.tokens[self.pos].clone();
            self.pos += 1;
            let (next, _) = self.clause_required(Some(&op), |p| p.and_chain(false, depth))?;
            operands.push(next.expect("a nested chain has a predicate"));
        }
        Ok(if operands.len() == 1 { operands.pop().expect("one operand") } else { Expr::Or(operands) })
    }

    /// Unary clauses joined by AND (explicit or implicit). At the top, filters are taken out and
    /// returned as (field, offset); the expression is `None` when only filters were found.
    #[allow(clippy::type_complexity)]
    fn and_chain(&mut self, top: bool, depth: usize) -> Result<(Option<Expr>, Vec<(String, usize)>), QueryError> {
        let mut operands = Vec::new();
        let mut filters = Vec::new();
        let mut after: Option<Token> = None;
        loop {
            let at = self.here();
            let clause = self.clause_required(after.as_ref(), |p| p.unary(top, depth))?;
            match clause {
                Clause::Expr(e) => operands.push(e),
                Clause::Filter => {
                    let field = match &self.tokens[self.pos - 1].tok {
                        Tok::Pred { field, .. } => field.clone(),
                        _ => unreachable!("a filter is a field:value token"),
                    };
                    filters.push((field, at));
                }
            }
            match self.peek() {
                Some(t) if t.tok == Tok::And => {
                    after = Some(t.clone());
                    self.pos += 1;
                }
                Some(t) if Self::starts_clause(&t.tok) => after = None,
                _ => break,
            }
        }
        let expr = match operands.len() {
            0 => None,
            1 => operands.pop(),
            _ => Some(Expr::And(operands)),
        };
        Ok((expr, filters))
    }

    fn unary(&mut self, top: bool, depth: usize) -> Result<Clause, QueryError> {
        let token = self.tokens[self.pos].clone();
        if matches!(token.tok, Tok::Not | Tok::Open) && depth >= MAX_DEPTH {
            return Err(QueryError::new(token.at, QueryErrorKind::TooDeep { max: MAX_DEPTH }));
        }
        match &token.tok {
            Tok::Not => {
                self.pos += 1;
                let inner = self.clause_required(Some(&token), |p| p.unary(false, depth + 1))?;
                match inner {
                    Clause::Expr(e) => Ok(Clause::Expr(Expr::Not(Box::new(e)))),
                    Clause::Filter => unreachable!("filters below the top are refused"),
                }
            }
            Tok::Open => {
                self.pos += 1;
                let inner = self.clause_required(Some(&token), |p| p.or_expr(depth + 1))?;
                match self.peek() {
                    Some(t) if t.tok == Tok::Close => {
                        self.pos += 1;
                        Ok(Clause::Expr(inner))
                    }
                    None => Err(QueryError::new(token.at, QueryErrorKind::Unclosed)),
                    Some(t) => Err(QueryError::new(
                        t.at,
                        QueryErrorKind::Expected {
                            expected: "an operator or `)`",
                            after: None,
                            found: Some(t.text.clone()),
                        },
                    )),
                }
            }
            Tok::Pred { field, quoted, bare, value_at } => {
                self.pos += 1;
                if FILTER_FIELDS.contains(&field.as_str()) {
                    if !top {
                        return Err(QueryError::new(token.at, QueryErrorKind::MisplacedFilter(field.clone())));
                    }
                    let seen = match field.as_str() {
                        "hospital" => self.filter.hospital.is_some(),
                        "type" => self.filter.resource_type.is_some(),
                        _ => self.filter.created.is_some(),
                    };
                    if seen {
                        return Err(QueryError::new(token.at, QueryErrorKind::DuplicateFilter(field.clone())));
                    }
                    let value = plain_value(field, quoted.as_deref(), bare, *value_at)?;
                    let bad = |kind| QueryError::new(*value_at, kind);
                    match field.as_str() {
                        "hospital" => self.filter.hospital = Some(PublicFilter::parse_hospital(&value).map_err(bad)?),
                        "type" => self.filter.resource_type = Some(PublicFilter::parse_type(&value).map_err(bad)?),
                        _ => self.filter.created = Some(PublicFilter::parse_created(&value).map_err(bad)?),
                    }
                    return Ok(Clause::Filter);
                }
                if !FIELDS.contains(&field.as_str()) {
                    return Err(QueryError::new(token.at, QueryErrorKind::UnknownField(field.clone())));
                }
                resolve(field, quoted.as_deref(), bare, *value_at).map(Clause::Expr)
            }
            Tok::And | Tok::Or | Tok::Close => unreachable!("clause_required checked the token"),
        }
    }
}

/// A value that is either quoted or bare, not both.
fn plain_value(field: &str, quoted: Option<&str>, bare: &str, at: usize) -> Result<String, QueryError> {
    match quoted {
        Some(_) if !bare.is_empty() => Err(QueryError::new(
            at,
            QueryErrorKind::BadValue {
                field: field.to_owned(),
                problem: format!("unexpected `{bare}` after the quoted value"),
            },
        )),
        Some(q) => Ok(q.to_owned()),
        None => Ok(bare.to_owned()),
    }
}

/// Characters that make a value need quotes when written back.
fn needs_quotes(s: &str) -> bool {
    s.is_empty() || s.chars().any(|c| !is_bare(c) || matches!(c, '<' | '>' | '=' | ':' | '\\'))
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn quote_if_needed(s: &str) -> String {
    if needs_quotes(s) {
        quote(s)
    } else {
        s.to_owned()
    }
}

fn single(field: &str, value: String) -> Expr {
    Expr::Pred(Predicate {
        field: field.to_owned(),
        arg: quote_if_needed(&value),
        terms: vec![Term::new(field, value, 0)],
    })
}

/// A predicate's expression.
fn resolve(field: &str, quoted: Option<&str>, bare: &str, at: usize) -> Result<Expr, QueryError> {
    let bad = |problem: String| QueryError::new(at, QueryErrorKind::BadValue { field: field.to_owned(), problem });
    if matches!(field, "loinc" | "snomed" | "rxnorm" | "code") {
        return coded(field, quoted, bare, at);
    }
    let value = plain_value(field, quoted, bare, at)?;
    let value = value.trim();
    match field {
        "icd10" => icd10_value(value).map(|v| single("icd10", v)).map_err(bad),
        "year" | "birthyear" => date_value(value, 1).map(|v| single(field, v)).map_err(bad),
        "month" => date_value(value, 2).map(|v| single(field, v)).map_err(bad),
        "day" => date_value(value, 3).map(|v| single(field, v)).map_err(bad),
        "age1" | "age5" | "age20" => age_value(field, value).map(|v| single(field, v)).map_err(bad),
        "gender" => {
            let g = value.to_lowercase();
            if ["male", "female", "other", "unknown"].contains(&g.as_str()) {
                Ok(single("gender", g))
            } else {
                Err(bad(format!("`{value}` is not male, female, other or unknown")))
            }
        }
        "text" => {
            let words = tokens(value);
            match words.len() {
                0 => Err(bad(format!(
                    "`{value}` has no indexed word (words under 3 letters, numbers and stop words are not indexed)"
                ))),
                1 => Ok(single("text", words.into_iter().next().expect("one token"))),
                _ => Ok(Expr::And(words.into_iter().map(|w| single("text", w)).collect())),
            }
        }
        "value" if !value.is_empty() => Ok(single("value", value.to_owned())),
        "value" => Err(bad("empty band".to_owned())),
        _ => Err(QueryError::new(at, QueryErrorKind::UnknownField(field.to_owned()))),
    }
}

/// `loinc`, `snomed`, `rxnorm` and `code` predicates, with an optional value comparison.
fn coded(field: &str, quoted: Option<&str>, bare: &str, at: usize) -> Result<Expr, QueryError> {
    let bad = |problem: String| QueryError::new(at, QueryErrorKind::BadValue { field: field.to_owned(), problem });
    let (code, suffix) = match quoted {
        Some(q) => (q.trim(), bare),
        None if field == "code" => (bare, ""),
        None => bare.split_at(bare.find(['<', '>', '=', ':']).unwrap_or(bare.len())),
    };
    if code.is_empty() {
        return Err(bad("missing code".to_owned()));
    }
    // The field and code the extractor files this code under.
    let (field, code) = if field == "code" {
        let Some((system, c)) = code.rsplit_once('|').map(|(s, c)| (s.trim(), c.trim())) else {
            return Err(bad(format!("expected `<system>|<code>`, found `{code}`")));
        };
        if system.is_empty() || c.is_empty() {
            return Err(bad(format!("expected `<system>|<code>`, found `{code}`")));
        }
        match crate::keywords::system_field(system) {
            Some("icd10") => ("icd10", icd10::normalise(c).unwrap_or_else(|| c.to_uppercase())),
            Some(f) => (f, c.to_owned()),
            None => ("code", format!("{system}|{c}")),
        }
    } else {
        (field, code.to_owned())
    };
    if suffix.is_empty() {
        return Ok(single(field, code));
    }
    let bad_range = |problem: &str| {
        QueryError::new(at, QueryErrorKind::BadRange { range: suffix.to_owned(), problem: problem.to_owned() })
    };
    let range_text = match suffix.strip_prefix(':') {
        Some(r) if r.contains("..") => r,
        Some(_) => return Err(bad_range("expected a range such as 4..6, 4..=6, ..6 or 4..")),
        None => suffix,
    };
    let range: ValueRange =
        range_text.parse().map_err(|_| bad_range("expected >x, >=x, <x, <=x, =x or :a..b with plain decimals"))?;
    let cover = band_cover(&format!("{field}|{code}"), &range);
    if cover.is_empty() {
        return Err(bad_range("no value lies in this range"));
    }
    let code_arg = if field == "code" { quote(&code) } else { quote_if_needed(&code) };
    Ok(Expr::Pred(Predicate {
        field: field.to_owned(),
        arg: format!("{code_arg}{suffix}"),
        terms: cover.into_iter().map(|band| Term::new("value", band, 0)).collect(),
    }))
}

fn icd10_value(value: &str) -> Result<String, String> {
    if value.len() > 8 && value[..8].eq_ignore_ascii_case("chapter-") {
        let numeral = value[8..].to_ascii_uppercase();
        return if icd10::CHAPTERS.iter().any(|c| c.numeral == numeral) {
            Ok(format!("chapter-{numeral}"))
        } else {
            Err(format!("`{value}` is not a WHO ICD-10 chapter (chapter-I to chapter-XXII)"))
        };
    }
    if let Some((a, b)) = value.split_once('-').filter(|(_, b)| !b.is_empty()) {
        let (a, b) = (a.trim().to_ascii_uppercase(), b.trim().to_ascii_uppercase());
        let known = icd10::BLOCKS.iter().chain(icd10::BLOCK_GROUPS.iter()).any(|&(x, y)| x == a && y == b);
        return if known {
            Ok(format!("{a}-{b}"))
        } else {
            Err(format!("`{value}` is not a WHO ICD-10 block or block group (such as E10-E14)"))
        };
    }
    icd10::normalise(value)
        .ok_or_else(|| format!("`{value}` is not an ICD-10 code (E11.9), block (E10-E14) or chapter (chapter-IV)"))
}

/// A date of exactly `parts` parts (1 year, 2 month, 3 day), written as the extractor does.
fn date_value(value: &str, parts: usize) -> Result<String, String> {
    const SHAPES: [&str; 3] = ["YYYY", "YYYY-MM", "YYYY-MM-DD"];
    let wrong = || format!("`{value}` is not a date of the form {}", SHAPES[parts - 1]);
    if value.contains('T') {
        return Err(wrong());
    }
    let date = FhirDate::parse(value).map_err(|_| wrong())?;
    let have = 1 + usize::from(date.month.is_some()) + usize::from(date.day.is_some());
    if have != parts {
        return Err(wrong());
    }
    Ok(date.buckets().swap_remove(0).1)
}

/// Oldest age accepted in an age predicate.
const MAX_AGE: u32 = 200;

fn age_value(field: &str, value: &str) -> Result<String, String> {
    let width = match field {
        "age1" => 1,
        "age5" => 5,
        _ => 20,
    };
    let age = |s: &str| s.trim().parse::<u32>().ok().filter(|a| *a <= MAX_AGE && !s.trim().starts_with('+'));
    let example = age_band(57, width);
    let wrong = || format!("`{value}` is not an age or a {width}-year band such as {example}");
    if let Some(a) = age(value) {
        return Ok(age_band(a, width));
    }
    let (a, b) = value.split_once('-').filter(|_| width > 1).ok_or_else(wrong)?;
    let (a, b) = (age(a).ok_or_else(wrong)?, age(b).ok_or_else(wrong)?);
    let band = age_band(a, width);
    if band != format!("{a}-{b}") {
        return Err(wrong());
    }
    Ok(band)
}

// ---------------------------------------------------------------------------------------------
// Public filters

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const MS_PER_DAY: i64 = 86_400_000;

fn days_to_ms(days: i64) -> u64 {
    u64::try_from(days.saturating_mul(MS_PER_DAY)).unwrap_or(0)
}

fn render_date(d: &FhirDate) -> String {
    match (d.month, d.day) {
        (Some(m), Some(day)) => format!("{:04}-{m:02}-{day:02}", d.year),
        (Some(m), None) => format!("{:04}-{m:02}", d.year),
        _ => format!("{:04}", d.year),
    }
}

/// First day of the period, in days since the epoch.
fn period_start(d: &FhirDate) -> i64 {
    days_from_civil(i64::from(d.year), u32::from(d.month.unwrap_or(1)), u32::from(d.day.unwrap_or(1)))
}

/// The day after the period, in days since the epoch.
fn period_end(d: &FhirDate) -> i64 {
    let y = i64::from(d.year);
    match (d.month, d.day) {
        (Some(_), Some(_)) => period_start(d) + 1,
        (Some(12), None) => days_from_civil(y + 1, 1, 1),
        (Some(m), None) => days_from_civil(y, u32::from(m) + 1, 1),
        _ => days_from_civil(y + 1, 1, 1),
    }
}

impl CreatedRange {
    /// Start of the range in ms since the epoch (inclusive); `None` when open.
    pub fn start_ms(&self) -> Option<u64> {
        self.first.as_ref().map(|d| days_to_ms(period_start(d)))
    }

    /// End of the range in ms since the epoch (exclusive); `None` when open.
    pub fn end_ms(&self) -> Option<u64> {
        self.last.as_ref().map(|d| days_to_ms(period_end(d)))
    }

    /// Whether a creation time falls in the range.
    pub fn contains(&self, created_at_ms: u64) -> bool {
        self.start_ms().is_none_or(|s| s <= created_at_ms) && self.end_ms().is_none_or(|e| created_at_ms < e)
    }
}

impl fmt::Display for CreatedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.first, &self.last) {
            (Some(a), Some(b)) if a == b => f.write_str(&render_date(a)),
            (a, b) => {
                write!(
                    f,
                    "{}..{}",
                    a.as_ref().map(render_date).unwrap_or_default(),
                    b.as_ref().map(render_date).unwrap_or_default()
                )
            }
        }
    }
}

impl PublicFilter {
    /// A hospital's public key as 64 hex digits (either case).
    pub fn parse_hospital(value: &str) -> Result<PublicKey, QueryErrorKind> {
        PublicKey::from_hex(&value.trim().to_ascii_lowercase()).map_err(|_| QueryErrorKind::BadValue {
            field: "hospital".to_owned(),
            problem: "expected a hospital public key as 64 hex digits".to_owned(),
        })
    }

    /// A record data type: ASCII letters, starting with a capital (`Condition`, `Bundle`).
    pub fn parse_type(value: &str) -> Result<String, QueryErrorKind> {
        let t = value.trim();
        if t.starts_with(|c: char| c.is_ascii_uppercase()) && t.chars().all(|c| c.is_ascii_alphabetic()) {
            Ok(t.to_owned())
        } else {
            Err(QueryErrorKind::BadValue {
                field: "type".to_owned(),
                problem: format!("`{t}` is not a resource type such as Condition"),
            })
        }
    }

    /// `A..B` (both inclusive), `A..`, `..B` or `A`, each a `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub fn parse_created(value: &str) -> Result<CreatedRange, QueryErrorKind> {
        let bad = |problem: String| QueryErrorKind::BadValue { field: "created".to_owned(), problem };
        let date = |s: &str| -> Result<Option<FhirDate>, QueryErrorKind> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            if s.contains('T') {
                return Err(bad(format!("`{s}` is not a date (YYYY, YYYY-MM or YYYY-MM-DD)")));
            }
            FhirDate::parse(s).map(Some).map_err(|_| bad(format!("`{s}` is not a date (YYYY, YYYY-MM or YYYY-MM-DD)")))
        };
        let range = match value.split_once("..") {
            Some((a, b)) => CreatedRange { first: date(a)?, last: date(b)? },
            None => {
                let d = date(value)?;
                CreatedRange { first: d, last: d }
            }
        };
        match (&range.first, &range.last) {
            (None, None) => Err(bad("expected dates such as 2024-01-01..2024-06-30".to_owned())),
            (Some(a), Some(b)) if period_start(a) >= period_end(b) => {
                Err(bad(format!("`{value}` ends before it starts")))
            }
            _ => Ok(range),
        }
    }

    /// Whether no restriction is set.
    pub fn is_empty(&self) -> bool {
        self.hospital.is_none() && self.resource_type.is_none() && self.created.is_none()
    }

    /// Whether a record's public metadata passes the filter.
    pub fn admits(&self, meta: &PublicMeta) -> bool {
        self.hospital.is_none_or(|h| h == meta.hospital)
            && self.resource_type.as_ref().is_none_or(|t| *t == meta.resource_type)
            && self.created.as_ref().is_none_or(|c| c.contains(meta.created_at_ms))
    }

    /// The clauses as the query language writes them.
    fn clauses(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(h) = &self.hospital {
            out.push(format!("hospital:{}", h.to_hex()));
        }
        if let Some(t) = &self.resource_type {
            out.push(format!("type:{}", quote_if_needed(t)));
        }
        if let Some(c) = &self.created {
            out.push(format!("created:{c}"));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Display

fn write_joined(f: &mut fmt::Formatter<'_>, operands: &[Expr], op: &str, parens: fn(&Expr) -> bool) -> fmt::Result {
    for (i, e) in operands.iter().enumerate() {
        if i > 0 {
            f.write_str(op)?;
        }
        if parens(e) {
            write!(f, "({e})")?;
        } else {
            write!(f, "{e}")?;
        }
    }
    Ok(())
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.field, self.arg)
    }
}

/// Writes the expression in the query language; parsing it gives the same expression back
/// (for expressions whose `And` and `Or` have two or more operands, as parsed ones do).
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Pred(p) => write!(f, "{p}"),
            Expr::And(xs) => write_joined(f, xs, " AND ", |e| matches!(e, Expr::And(_) | Expr::Or(_))),
            Expr::Or(xs) => write_joined(f, xs, " OR ", |e| matches!(e, Expr::Or(_))),
            Expr::Not(x) => match **x {
                Expr::Pred(_) | Expr::Not(_) => write!(f, "NOT {x}"),
                _ => write!(f, "NOT ({x})"),
            },
        }
    }
}

/// Writes the query in the query language, public filters first; parsing it gives the same query.
impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for clause in self.filter.clauses() {
            write!(f, "{clause} AND ")?;
        }
        if matches!(self.expr, Expr::Or(_)) && !self.filter.is_empty() {
            write!(f, "({})", self.expr)
        } else {
            write!(f, "{}", self.expr)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Terms and evaluation

/// A record's terms as the (field, value) set the evaluators take.
pub fn term_set(terms: &[Term]) -> BTreeSet<(String, String)> {
    terms.iter().map(|t| (t.field.clone(), t.value.clone())).collect()
}

impl Predicate {
    /// Whether a record with these terms has any of the predicate's terms.
    pub fn matches(&self, record: &BTreeSet<(String, String)>) -> bool {
        self.terms.iter().any(|t| record.contains(&(t.field.clone(), t.value.clone())))
    }
}

impl Expr {
    /// The predicates, left to right.
    pub fn predicates(&self) -> Vec<&Predicate> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a Predicate>) {
            match e {
                Expr::Pred(p) => out.push(p),
                Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| walk(x, out)),
                Expr::Not(x) => walk(x, out),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }

    /// Whether every match has one of the expression's terms, so that the result can be found
    /// from the term hits alone, without the universe: false for `NOT a`, `a OR NOT b`.
    pub fn is_positive(&self) -> bool {
        match self {
            Expr::Pred(_) => true,
            Expr::And(xs) => xs.iter().any(Expr::is_positive),
            Expr::Or(xs) => !xs.is_empty() && xs.iter().all(Expr::is_positive),
            Expr::Not(_) => false,
        }
    }

    /// Whether a record with these terms matches (the plaintext reference).
    pub fn matches(&self, record: &BTreeSet<(String, String)>) -> bool {
        match self {
            Expr::Pred(p) => p.matches(record),
            Expr::And(xs) => xs.iter().all(|x| x.matches(record)),
            Expr::Or(xs) => xs.iter().any(|x| x.matches(record)),
            Expr::Not(x) => !x.matches(record),
        }
    }

    /// The records matching, from per-predicate hit sets: `lookup` gives the records holding any
    /// of a predicate's terms (as the encrypted index finds them), and the boolean structure
    /// combines them, NOT as the complement within `universe`. Every predicate is looked up,
    /// whatever the others gave (no short cut that would make the lookups depend on the data).
    /// The result is always within `universe`; hits outside it are ignored.
    pub fn eval_sets<Id: Ord + Clone>(
        &self,
        lookup: &mut dyn FnMut(&[Term]) -> BTreeSet<Id>,
        universe: &BTreeSet<Id>,
    ) -> BTreeSet<Id> {
        match self {
            Expr::Pred(p) => lookup(&p.terms).into_iter().filter(|id| universe.contains(id)).collect(),
            Expr::And(xs) => {
                let sets: Vec<BTreeSet<Id>> = xs.iter().map(|x| x.eval_sets(lookup, universe)).collect();
                let mut acc = universe.clone();
                for s in &sets {
                    acc.retain(|id| s.contains(id));
                }
                acc
            }
            Expr::Or(xs) => xs.iter().flat_map(|x| x.eval_sets(lookup, universe)).collect(),
            Expr::Not(x) => {
                let inner = x.eval_sets(lookup, universe);
                universe.iter().filter(|id| !inner.contains(id)).cloned().collect()
            }
        }
    }
}

impl Query {
    /// The distinct terms the researcher needs keys for, sorted by (field, value).
    pub fn terms(&self) -> Vec<Term> {
        let mut seen = BTreeSet::new();
        for p in self.expr.predicates() {
            for t in &p.terms {
                seen.insert((t.field.clone(), t.value.clone()));
            }
        }
        seen.into_iter().map(|(f, v)| Term::new(f, v, 0)).collect()
    }

    /// Whether a record matches: its metadata passes the filter and its terms the expression.
    pub fn matches(&self, terms: &BTreeSet<(String, String)>, meta: &PublicMeta) -> bool {
        self.filter.admits(meta) && self.expr.matches(terms)
    }
}

/// The ids of the records matching `query`, in the order given: the ground truth the encrypted
/// search must agree with.
pub fn evaluate<Id: Clone>(query: &Query, records: &[PlainRecord<Id>]) -> Vec<Id> {
    records.iter().filter(|r| query.matches(&r.terms, &r.meta)).map(|r| r.id.clone()).collect()
}
