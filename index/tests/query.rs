//! The researcher query language: precedence and parentheses, every predicate kind and its terms
//! (normalised exactly as the extractor normalises, checked against a record extracted from the
//! fixture bundle), public filters, errors with offsets, limits, Display round-trips, and the
//! plaintext evaluator against the set-based combinator.

use std::collections::BTreeSet;

use engine::crypto::PublicKey;
use index::keywords::bands::{band_cover, ValueRange};
use index::keywords::{extract, ExtractContext, FhirDate};
use index::query::{
    evaluate, parse, term_set, CreatedRange, Expr, PlainRecord, Predicate, PublicFilter, PublicMeta, Query,
    QueryErrorKind, MAX_DEPTH, MAX_QUERY_BYTES, MAX_TERMS,
};
use index::term::Term;
use proptest::prelude::*;

const BUNDLE: &str = include_str!("fixtures/diabetes_bundle.json");

fn q(s: &str) -> Query {
    parse(s).unwrap_or_else(|e| panic!("{}", e.render(s)))
}

fn e(s: &str) -> Expr {
    q(s).expr
}

fn err(s: &str) -> (usize, QueryErrorKind, String) {
    let e = parse(s).expect_err(s);
    (e.offset, e.kind.clone(), e.to_string())
}

/// The (field, value) strings of a single predicate.
fn terms_of(s: &str) -> Vec<String> {
    match e(s) {
        Expr::Pred(p) => p.terms.iter().map(|t| format!("{}:{}", t.field, t.value)).collect(),
        other => panic!("{s} is not one predicate: {other:?}"),
    }
}

fn pred(s: &str) -> Expr {
    let x = e(s);
    assert!(matches!(x, Expr::Pred(_)), "{s}");
    x
}

fn not(x: Expr) -> Expr {
    Expr::Not(Box::new(x))
}

fn record(terms: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    terms.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect()
}

fn hospital(b: u8) -> PublicKey {
    PublicKey([b; 32])
}

fn meta(h: u8, t: &str, ms: u64) -> PublicMeta {
    PublicMeta { hospital: hospital(h), resource_type: t.to_owned(), created_at_ms: ms }
}

// ---------------------------------------------------------------------------------------------
// Structure

#[test]
fn precedence_is_not_over_and_over_or() {
    let (a, b, c) = (pred("icd10:E11"), pred("year:2024"), pred("gender:male"));
    assert_eq!(
        e("icd10:E11 OR year:2024 AND NOT gender:male"),
        Expr::Or(vec![a.clone(), Expr::And(vec![b.clone(), not(c.clone())])])
    );
    assert_eq!(
        e("NOT icd10:E11 AND year:2024 OR gender:male"),
        Expr::Or(vec![Expr::And(vec![not(a.clone()), b.clone()]), c.clone()])
    );
    assert_eq!(
        e("(icd10:E11 OR year:2024) AND gender:male"),
        Expr::And(vec![Expr::Or(vec![a.clone(), b.clone()]), c.clone()])
    );
    assert_eq!(e("NOT (icd10:E11 OR year:2024)"), not(Expr::Or(vec![a.clone(), b.clone()])));
    assert_eq!(e("NOT NOT icd10:E11"), not(not(a.clone())));
    // n-ary, and parentheses kept as written
    assert_eq!(e("icd10:E11 AND year:2024 AND gender:male"), Expr::And(vec![a.clone(), b.clone(), c.clone()]));
    assert_eq!(
        e("(icd10:E11 AND year:2024) AND gender:male"),
        Expr::And(vec![Expr::And(vec![a.clone(), b.clone()]), c.clone()])
    );
    assert_eq!(e("((icd10:E11))"), a);
}

#[test]
fn keyword_spellings_and_implicit_and() {
    let words = e("icd10:E11 AND NOT year:2024 OR gender:male");
    for s in [
        "icd10:E11 and not year:2024 or gender:male",
        "ICD10:e11 And Not YEAR:2024 Or Gender:Male",
        "icd10:E11 & !year:2024 | gender:male",
        "icd10:E11 && -year:2024 || gender:male",
        "icd10:E11 NOT year:2024 OR gender:male",
        "icd10:E11 -year:2024 OR gender:male",
        "  icd10:E11\tAND\nNOT year:2024 OR gender:male  ",
        "icd10:E11 AND(NOT year:2024)OR(gender:male)",
    ] {
        // (the last one has redundant parentheses, which the parser drops for a single clause)
        assert_eq!(e(s), words, "{s}");
    }
    assert_eq!(e("icd10:E11 year:2024"), e("icd10:E11 AND year:2024"));
    assert_eq!(e("icd10:E11 (year:2024 OR gender:male)"), e("icd10:E11 AND (year:2024 OR gender:male)"));
}

// ---------------------------------------------------------------------------------------------
// Predicates

#[test]
fn icd10_at_every_level_normalised_like_the_extractor() {
    assert_eq!(terms_of("icd10:e119"), ["icd10:E11.9"]);
    assert_eq!(terms_of("icd10:E11.9"), ["icd10:E11.9"]);
    assert_eq!(terms_of("icd10:e11"), ["icd10:E11"]);
    assert_eq!(terms_of("icd10:E11-"), ["icd10:E11"]);
    assert_eq!(terms_of("icd10:e10-e14"), ["icd10:E10-E14"]);
    assert_eq!(terms_of("icd10:C00-C97"), ["icd10:C00-C97"]); // a block group
    assert_eq!(terms_of("icd10:chapter-iv"), ["icd10:chapter-IV"]);
    assert_eq!(terms_of("icd10:S72.001A"), ["icd10:S72.001A"]);
    assert_eq!(terms_of("icd10:\"e11.9\""), ["icd10:E11.9"]);
    for bad in ["icd10:E10-E15", "icd10:chapter-XXX", "icd10:11E", "icd10:E1", "icd10:\"\""] {
        assert!(matches!(err(bad).1, QueryErrorKind::BadValue { .. }), "{bad}");
    }
}

#[test]
fn codes_and_value_comparisons() {
    assert_eq!(terms_of("loinc:4548-4"), ["loinc:4548-4"]);
    assert_eq!(terms_of("snomed:44054006"), ["snomed:44054006"]);
    assert_eq!(terms_of("rxnorm:860975"), ["rxnorm:860975"]);
    assert_eq!(terms_of("code:\"http://example.org/cs|A1\""), ["code:http://example.org/cs|A1"]);
    assert_eq!(terms_of("code:urn:oid:1.2.3|A1"), ["code:urn:oid:1.2.3|A1"]);
    // known systems are filed under their own field by the extractor
    assert_eq!(terms_of("code:\"http://loinc.org|4548-4\""), ["loinc:4548-4"]);
    assert_eq!(terms_of("code:http://hl7.org/fhir/sid/icd-10|e119"), ["icd10:E11.9"]);
    assert_eq!(q("code:http://loinc.org|4548-4").to_string(), "loinc:4548-4");

    let cover = |key: &str, r: &str| -> Vec<String> {
        band_cover(key, &r.parse::<ValueRange>().unwrap()).into_iter().map(|b| format!("value:{b}")).collect()
    };
    for (query, range) in [
        ("loinc:4548-4>8", ">8"),
        ("loinc:4548-4>=6.5", ">=6.5"),
        ("loinc:4548-4<7.5", "<7.5"),
        ("loinc:4548-4<=7.5", "<=7.5"),
        ("loinc:4548-4=5", "=5"),
        ("loinc:4548-4:4..6", "4..6"),
        ("loinc:4548-4:4..=6", "4..=6"),
        ("loinc:4548-4:..6", "..6"),
        ("loinc:4548-4:4..", "4.."),
        ("loinc:\"4548-4\">8", ">8"),
    ] {
        let expected = cover("loinc|4548-4", range);
        assert!(!expected.is_empty());
        assert_eq!(terms_of(query), expected, "{query}");
    }
    assert_eq!(terms_of("snomed:1234>2"), cover("snomed|1234", ">2"));
    assert_eq!(terms_of("code:\"http://x.org/cs|A1\"<=3"), cover("code|http://x.org/cs|A1", "<=3"));
    assert_eq!(q("code:\"http://x.org/cs|A1\"<=3").to_string(), "code:\"http://x.org/cs|A1\"<=3");
    assert_eq!(q("loinc:\"4548-4\">8").to_string(), "loinc:4548-4>8");

    for (bad, at) in
        [("loinc:4548-4>abc", 6), ("loinc:4548-4:5..5", 6), ("loinc:4548-4:>5", 6), ("year:2024 loinc:1-1=>5", 16)]
    {
        let (offset, kind, _) = err(bad);
        assert!(matches!(kind, QueryErrorKind::BadRange { .. }), "{bad}: {kind:?}");
        assert_eq!(offset, at, "{bad}");
    }
    for bad in ["loinc:", "loinc:>8", "code:A1", "code:\"|A1\"", "code:\"sys|\""] {
        assert!(matches!(err(bad).1, QueryErrorKind::BadValue { .. }), "{bad}");
    }
}

#[test]
fn dates_ages_gender_text() {
    assert_eq!(terms_of("year:2024"), ["year:2024"]);
    assert_eq!(terms_of("birthyear:1967"), ["birthyear:1967"]);
    assert_eq!(terms_of("month:2024-03"), ["month:2024-03"]);
    assert_eq!(terms_of("day:2024-03-05"), ["day:2024-03-05"]);
    for bad in ["year:24", "year:2024-03", "month:2024", "month:2024-13", "day:2024-02-30", "day:2024-03-05T10:00:00Z"]
    {
        assert!(matches!(err(bad).1, QueryErrorKind::BadValue { .. }), "{bad}");
    }
    assert_eq!(terms_of("age1:57"), ["age1:57"]);
    assert_eq!(terms_of("age5:55-59"), ["age5:55-59"]);
    assert_eq!(terms_of("age5:57"), ["age5:55-59"]);
    assert_eq!(terms_of("age20:40-59"), ["age20:40-59"]);
    assert_eq!(terms_of("age20:0"), ["age20:0-19"]);
    for bad in ["age1:55-59", "age5:55-60", "age5:56-60", "age1:-3", "age1:+3", "age1:999", "age20:x"] {
        assert!(matches!(err(bad).1, QueryErrorKind::BadValue { .. }), "{bad}");
    }
    assert_eq!(terms_of("gender:Female"), ["gender:female"]);
    assert!(matches!(err("gender:f").1, QueryErrorKind::BadValue { .. }));
    assert_eq!(terms_of("text:Metformin"), ["text:metformin"]);
    assert_eq!(terms_of("text:\"Metformin 500 MG\""), ["text:metformin"]);
    // several tokens: an AND of one predicate each
    assert_eq!(e("text:\"Type 2 diabetes\""), e("text:type AND text:diabetes"));
    for bad in ["text:the", "text:500", "text:\"a of\""] {
        assert!(matches!(err(bad).1, QueryErrorKind::BadValue { .. }), "{bad}");
    }
    assert_eq!(terms_of("value:\"loinc|4548-4|w1|8\""), ["value:loinc|4548-4|w1|8"]);
}

#[test]
fn fixture_record_matches_like_the_extractor_says() {
    let x = extract(BUNDLE, &ExtractContext::default()).unwrap();
    let rec = term_set(&x.terms);
    let yes = [
        "icd10:E11 AND loinc:4548-4>8 AND year:2024",
        "icd10:e119 loinc:4548-4>=8.3 year:2024",
        "icd10:E10-E14 AND icd10:chapter-IV AND month:2024-03 AND day:2024-03-05",
        "loinc:4548-4:8..9 AND loinc:4548-4<=8.3 AND loinc:4548-4=8.3",
        "gender:female AND birthyear:1967 AND age1:57 AND age5:55-59 AND age20:40-59",
        "text:\"Type 2 diabetes\" AND text:metformin",
        "snomed:44054006 AND NOT icd10:I10",
        "code:\"http://loinc.org|4548-4\"",
    ];
    for s in yes {
        assert!(q(s).expr.matches(&rec), "{s} should match");
    }
    let no = [
        "icd10:E11 AND loinc:4548-4>9 AND year:2024",
        "loinc:4548-4>8.3",
        "loinc:4548-4<8.3",
        "loinc:4548-4:..8",
        "icd10:E10",
        "year:2023",
        "NOT icd10:E11",
        "gender:male",
        "age1:58",
    ];
    for s in no {
        assert!(!q(s).expr.matches(&rec), "{s} should not match");
    }
    // every term of the record is findable by writing it as a predicate
    for t in &x.terms {
        let source = format!("{}:\"{}\"", t.field, t.value.replace('\\', "\\\\").replace('"', "\\\""));
        let query = q(&source);
        assert!(query.terms().iter().any(|qt| qt.field == t.field && qt.value == t.value), "{source}");
    }
}

// ---------------------------------------------------------------------------------------------
// Public filters

#[test]
fn public_filters_are_top_level_and_clauses() {
    let key = "ab".repeat(32);
    let s =
        format!("type:Condition AND icd10:E11 AND hospital:{} AND created:2024-01-01..2024-06-30", key.to_uppercase());
    let query = q(&s);
    assert_eq!(query.expr, pred("icd10:E11"));
    assert_eq!(query.filter.hospital, Some(hospital(0xab)));
    assert_eq!(query.filter.resource_type.as_deref(), Some("Condition"));
    let created = query.filter.created.unwrap();
    assert_eq!(created.start_ms(), Some(1_704_067_200_000)); // 2024-01-01T00:00Z
    assert_eq!(created.end_ms(), Some(1_719_792_000_000)); // 2024-07-01T00:00Z
    assert_eq!(
        query.to_string(),
        format!("hospital:{key} AND type:Condition AND created:2024-01-01..2024-06-30 AND icd10:E11")
    );

    assert!(query.filter.admits(&meta(0xab, "Condition", 1_719_791_999_999)));
    assert!(!query.filter.admits(&meta(0xab, "Condition", 1_719_792_000_000)));
    assert!(!query.filter.admits(&meta(0xab, "Condition", 1_704_067_199_999)));
    assert!(!query.filter.admits(&meta(0xab, "Observation", 1_710_000_000_000)));
    assert!(!query.filter.admits(&meta(0xac, "Condition", 1_710_000_000_000)));
    assert!(PublicFilter::default().admits(&meta(1, "X", 0)));

    // created forms
    let c = |v: &str| PublicFilter::parse_created(v).unwrap();
    assert_eq!(c("2024").start_ms(), Some(1_704_067_200_000));
    assert_eq!(c("2024").end_ms(), Some(1_735_689_600_000));
    assert_eq!(c("2024-12").end_ms(), Some(1_735_689_600_000));
    assert_eq!(c("2024-02..2024-02").end_ms(), Some(1_709_251_200_000)); // leap February
    assert_eq!(c("2024-01-01..").end_ms(), None);
    assert_eq!(c("..2024-01-01").start_ms(), None);
    assert_eq!(c("2024-03").to_string(), "2024-03");
    assert_eq!(
        c("2024..2025-06"),
        CreatedRange { first: FhirDate::parse("2024").ok(), last: FhirDate::parse("2025-06").ok() }
    );
    for bad in ["..", "", "2024-07..2024-06", "2024-13", "2024-01-01T00:00:00Z..", "x..2024"] {
        assert!(PublicFilter::parse_created(bad).is_err(), "{bad}");
    }
    assert!(PublicFilter::parse_type("condition").is_err());
    assert!(PublicFilter::parse_hospital("abc").is_err());

    // the OR of filtered expressions keeps its parentheses
    let query = q("type:Condition (icd10:E11 OR icd10:E10)");
    assert_eq!(query.to_string(), "type:Condition AND (icd10:E11 OR icd10:E10)");
    assert_eq!(q(&query.to_string()), query);

    // misplaced, repeated, alone
    for (s, at) in [
        ("icd10:E11 OR type:Condition", 13),
        ("type:Condition AND icd10:E11 OR year:2024", 0),
        ("NOT type:Condition AND icd10:E11", 4),
        ("(type:Condition AND icd10:E11)", 1),
    ] {
        let (offset, kind, _) = err(s);
        assert_eq!((offset, kind), (at, QueryErrorKind::MisplacedFilter("type".into())), "{s}");
    }
    let (offset, kind, _) = err("type:Condition type:Observation icd10:E11");
    assert_eq!((offset, kind), (15, QueryErrorKind::DuplicateFilter("type".into())));
    assert_eq!(err("type:Condition").1, QueryErrorKind::NoPredicate);
    assert!(matches!(err("icd10:E11 hospital:zz").1, QueryErrorKind::BadValue { .. }));
    assert_eq!(err("icd10:E11 hospital:zz").0, 19);
}

// ---------------------------------------------------------------------------------------------
// Errors and limits

#[test]
fn errors_name_the_offset() {
    let (offset, kind, msg) = err("icd10:E11 AND ");
    assert_eq!(offset, 14);
    assert_eq!(msg, "expected a predicate after AND at 14");
    assert!(matches!(kind, QueryErrorKind::Expected { .. }));
    assert_eq!(err("icd10:E11 AND )").2, "expected a predicate after AND, found `)` at 14");
    assert_eq!(err("icd10:E11 OR").2, "expected a predicate after OR at 12");
    assert_eq!(err("NOT").2, "expected a predicate after NOT at 3");
    assert_eq!(err("()").2, "expected a predicate after `(`, found `)` at 1");
    assert_eq!(err("icd10:E11 AND OR year:2024").0, 14);
    assert_eq!(err("AND icd10:E11").2, "expected a predicate, found `AND` at 0");
    assert_eq!(err("(icd10:E11").1, QueryErrorKind::Unclosed);
    assert_eq!(err("year:2024 AND (icd10:E11 OR (gender:male)").0, 14);
    assert_eq!(err("icd10:E11)").0, 9);
    assert_eq!(err("icd10:E11)").1, QueryErrorKind::Unopened);
    assert_eq!(err("(icd10:E11 year:2024))").0, 21);
    assert_eq!(err("year:2024 foo:bar").0, 10);
    assert_eq!(err("year:2024 foo:bar").1, QueryErrorKind::UnknownField("foo".into()));
    assert!(err("year:2024 foo:bar").2.starts_with("unknown field `foo` (known: icd10, loinc,"));
    assert_eq!(
        err("year:2024 metformin").2,
        "expected a predicate (field:value) or an operator, found `metformin` at 10"
    );
    assert_eq!(err("text:\"abc").0, 5);
    assert_eq!(err("text:\"abc").1, QueryErrorKind::UnterminatedQuote);
    assert_eq!(err("text:\"abc\"def").0, 5);
    assert_eq!(err("year:2024 \"x\"").2, "expected a predicate (field:value) or an operator, found `\"` at 10");
    assert_eq!(err("").1, QueryErrorKind::Empty);
    assert_eq!(err(" \t\n").1, QueryErrorKind::Empty);
    assert_eq!(
        err("year:2024 AND day:2024-02-30").2,
        "bad value for day: `2024-02-30` is not a date of the form YYYY-MM-DD at 18"
    );
    // a symbolic operator glued to a bare value is part of the value
    assert_eq!(err("icd10:E11|icd10:E12").0, 6);

    let e = parse("icd10:E11 AND ").unwrap_err();
    assert_eq!(e.render("icd10:E11 AND "), "icd10:E11 AND \n              ^ expected a predicate after AND at 14");
    // the caret counts characters, the offset bytes
    let s = "text:\"éclair\" AND";
    assert_eq!(
        parse(s).unwrap_err().render(s).lines().nth(1).unwrap(),
        format!("{}^ expected a predicate after AND at 18", " ".repeat(17))
    );
}

#[test]
fn limits() {
    let long = format!("text:{}", "a".repeat(MAX_QUERY_BYTES));
    assert_eq!(err(&long).1, QueryErrorKind::TooLong { len: MAX_QUERY_BYTES + 5, max: MAX_QUERY_BYTES });
    let fits = format!("text:{}", "a".repeat(MAX_QUERY_BYTES - 5));
    assert!(parse(&fits).is_ok());

    let years = |n: usize| (0..n).map(|i| format!("year:{}", 1700 + i)).collect::<Vec<_>>().join(" OR ");
    assert!(parse(&years(MAX_TERMS)).is_ok());
    assert_eq!(err(&years(MAX_TERMS + 1)).1, QueryErrorKind::TooManyTerms { count: MAX_TERMS + 1, max: MAX_TERMS });
    // repeated terms count once
    assert!(parse(&vec!["year:2024"; 300].join(" OR ")).is_ok());

    let nested = |n: usize| format!("{}icd10:E11{}", "(".repeat(n), ")".repeat(n));
    assert!(parse(&nested(MAX_DEPTH)).is_ok());
    assert_eq!(err(&nested(MAX_DEPTH + 1)).1, QueryErrorKind::TooDeep { max: MAX_DEPTH });
    assert_eq!(err(&nested(MAX_DEPTH + 1)).0, MAX_DEPTH);
    assert!(parse(&format!("{}icd10:E11", "NOT ".repeat(MAX_DEPTH))).is_ok());
    assert_eq!(
        err(&format!("{}icd10:E11", "NOT ".repeat(MAX_DEPTH + 1))).1,
        QueryErrorKind::TooDeep { max: MAX_DEPTH }
    );
    // the byte cap bounds nesting long before the stack does
    assert!(parse(&"(".repeat(MAX_QUERY_BYTES)).is_err());
}

// ---------------------------------------------------------------------------------------------
// Evaluation

#[test]
fn truth_tables() {
    let a = ("icd10", "E11");
    let b = ("year", "2024");
    let records = [record(&[]), record(&[a]), record(&[b]), record(&[a, b])];
    let table = |s: &str| -> Vec<bool> { records.iter().map(|r| e(s).matches(r)).collect() };
    assert_eq!(table("icd10:E11"), [false, true, false, true]);
    assert_eq!(table("NOT icd10:E11"), [true, false, true, false]);
    assert_eq!(table("icd10:E11 AND year:2024"), [false, false, false, true]);
    assert_eq!(table("icd10:E11 OR year:2024"), [false, true, true, true]);
    assert_eq!(table("icd10:E11 AND NOT year:2024"), [false, true, false, false]);
    assert_eq!(table("NOT (icd10:E11 OR year:2024)"), [true, false, false, false]);
    assert_eq!(table("NOT icd10:E11 OR year:2024"), [true, false, true, true]);
    assert_eq!(table("year:2024 OR year:2024 AND icd10:E11"), [false, false, true, true]);
    assert_eq!(table("(year:2024 OR year:2024) AND icd10:E11"), [false, false, false, true]);

    // eval_sets over the same records, universe = all of them
    let universe: BTreeSet<usize> = (0..records.len()).collect();
    for s in ["icd10:E11", "NOT icd10:E11", "icd10:E11 AND NOT year:2024", "NOT icd10:E11 OR year:2024"] {
        let mut lookup = |terms: &[Term]| -> BTreeSet<usize> {
            (0..records.len())
                .filter(|&i| terms.iter().any(|t| records[i].contains(&(t.field.clone(), t.value.clone()))))
                .collect()
        };
        let got = e(s).eval_sets(&mut lookup, &universe);
        let want: BTreeSet<usize> = table(s).iter().enumerate().filter(|(_, m)| **m).map(|(i, _)| i).collect();
        assert_eq!(got, want, "{s}");
    }
    // NOT is the complement within the universe, and hits outside it are dropped
    let small: BTreeSet<usize> = [1, 2].into();
    let mut all = |_: &[Term]| -> BTreeSet<usize> { [0, 1, 3, 9].into() };
    assert_eq!(e("icd10:E11").eval_sets(&mut all, &small), [1].into());
    assert_eq!(e("NOT icd10:E11").eval_sets(&mut all, &small), [2].into());

    assert!(e("icd10:E11 AND NOT year:2024").is_positive());
    assert!(!e("NOT icd10:E11").is_positive());
    assert!(!e("icd10:E11 OR NOT year:2024").is_positive());
    assert!(e("(icd10:E11 OR year:2024) AND NOT gender:male").is_positive());
}

#[test]
fn evaluate_applies_filter_and_expression() {
    let recs = vec![
        PlainRecord { id: "a", terms: record(&[("icd10", "E11")]), meta: meta(1, "Condition", 1_710_000_000_000) },
        PlainRecord { id: "b", terms: record(&[("icd10", "E11")]), meta: meta(2, "Condition", 1_710_000_000_000) },
        PlainRecord { id: "c", terms: record(&[("icd10", "E10")]), meta: meta(1, "Condition", 1_710_000_000_000) },
        PlainRecord { id: "d", terms: record(&[("icd10", "E11")]), meta: meta(1, "Observation", 1_710_000_000_000) },
        PlainRecord { id: "e", terms: record(&[("icd10", "E11")]), meta: meta(1, "Condition", 1_600_000_000_000) },
    ];
    let h1 = "01".repeat(32);
    assert_eq!(evaluate(&q("icd10:E11"), &recs), ["a", "b", "d", "e"]);
    assert_eq!(evaluate(&q(&format!("icd10:E11 hospital:{h1}")), &recs), ["a", "d", "e"]);
    assert_eq!(evaluate(&q(&format!("icd10:E11 hospital:{h1} type:Condition")), &recs), ["a", "e"]);
    assert_eq!(evaluate(&q(&format!("icd10:E11 hospital:{h1} type:Condition created:2024")), &recs), ["a"]);
    assert_eq!(evaluate(&q(&format!("NOT icd10:E11 hospital:{h1}")), &recs), ["c"]);
}

#[test]
fn query_terms_are_distinct_and_cover_every_predicate() {
    let query = q("icd10:E11 OR (icd10:E11 AND NOT year:2024) OR loinc:4548-4>8");
    let terms = query.terms();
    let set: BTreeSet<_> = terms.iter().map(|t| (t.field.clone(), t.value.clone())).collect();
    assert_eq!(set.len(), terms.len());
    assert!(set.contains(&("icd10".into(), "E11".into())));
    assert!(set.contains(&("year".into(), "2024".into())));
    let bands = band_cover("loinc|4548-4", &">8".parse().unwrap());
    assert_eq!(terms.len(), 2 + bands.len());
    assert!(bands.iter().all(|b| set.contains(&("value".into(), b.clone()))));
}

// ---------------------------------------------------------------------------------------------
// Properties

/// Predicates as written, each parsing to a single predicate.
const LEAVES: &[&str] = &[
    "icd10:E11",
    "icd10:E11.9",
    "icd10:E10-E14",
    "icd10:chapter-IV",
    "icd10:I10",
    "loinc:4548-4",
    "loinc:4548-4>8",
    "loinc:4548-4:6..7.5",
    "snomed:44054006",
    "rxnorm:860975",
    "code:\"http://x.org/a b|A\\\"1\"",
    "code:\"urn:x|B\">=2",
    "year:2024",
    "month:2024-03",
    "day:2024-03-05",
    "birthyear:1967",
    "age1:57",
    "age5:55-59",
    "age20:40-59",
    "gender:female",
    "text:metformin",
    "text:diabetes",
    "value:\"loinc|4548-4|w1|8\"",
];

fn leaf() -> impl Strategy<Value = Expr> {
    prop::sample::select(LEAVES).prop_map(pred)
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
            inner.prop_map(|x| Expr::Not(Box::new(x))),
        ]
    })
}

fn filter() -> impl Strategy<Value = PublicFilter> {
    (
        prop::option::of(any::<u8>().prop_map(hospital)),
        prop::option::of(prop::sample::select(vec!["Condition", "Bundle"]).prop_map(str::to_owned)),
        prop::option::of(prop::sample::select(vec!["2024", "2024-01..2024-06", "..2023-12-31", "2020-02-29.."])),
    )
        .prop_map(|(hospital, resource_type, created)| PublicFilter {
            hospital,
            resource_type,
            created: created.map(|c| PublicFilter::parse_created(c).unwrap()),
        })
}

/// The distinct (field, value) terms of the leaves, plus terms no predicate asks for.
fn term_pool() -> Vec<(String, String)> {
    let mut pool: BTreeSet<(String, String)> = BTreeSet::new();
    for l in LEAVES {
        for t in q(l).terms() {
            pool.insert((t.field, t.value));
        }
    }
    pool.insert(("icd10".into(), "J45".into()));
    pool.insert(("text".into(), "asthma".into()));
    pool.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn display_round_trips(expr in expr(), filter in filter()) {
        let query = Query { expr, filter };
        prop_assume!(query.terms().len() <= MAX_TERMS);
        let text = query.to_string();
        let back = parse(&text).map_err(|e| TestCaseError::fail(e.render(&text)))?;
        prop_assert_eq!(&back, &query, "{}", text);
    }

    #[test]
    fn eval_sets_agrees_with_matches(
        expr in expr(),
        picks in prop::collection::vec(prop::collection::vec(any::<prop::sample::Index>(), 0..8), 0..24),
        universe_mask in any::<u32>(),
    ) {
        let pool = term_pool();
        let records: Vec<BTreeSet<(String, String)>> =
            picks.iter().map(|p| p.iter().map(|i| pool[i.index(pool.len())].clone()).collect()).collect();
        let lookups = std::cell::Cell::new(0);
        let mut lookup = |terms: &[Term]| -> BTreeSet<usize> {
            lookups.set(lookups.get() + 1);
            (0..records.len())
                .filter(|&i| terms.iter().any(|t| records[i].contains(&(t.field.clone(), t.value.clone()))))
                .collect()
        };
        let all: BTreeSet<usize> = (0..records.len()).collect();
        let got = expr.eval_sets(&mut lookup, &all);
        let want: BTreeSet<usize> = (0..records.len()).filter(|&i| expr.matches(&records[i])).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(lookups.get(), expr.predicates().len());
        // within a smaller universe: the same answer restricted to it
        let some: BTreeSet<usize> = (0..records.len()).filter(|i| universe_mask >> (i % 32) & 1 == 1).collect();
        let got = expr.eval_sets(&mut lookup, &some);
        let want: BTreeSet<usize> = some.iter().copied().filter(|&i| expr.matches(&records[i])).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn parse_never_panics_and_display_is_a_fixed_point(s in "[ a-zA-Z0-9:().<>=&|!\"-]{0,60}") {
        if let Ok(query) = parse(&s) {
            let text = query.to_string();
            let back = parse(&text).map_err(|e| TestCaseError::fail(e.render(&text)))?;
            prop_assert_eq!(back, query);
        }
    }

    #[test]
    fn error_offsets_are_in_bounds(s in "\\PC{0,40}") {
        if let Err(e) = parse(&s) {
            prop_assert!(e.offset <= s.len());
            prop_assert!(s.is_char_boundary(e.offset));
            let _ = e.render(&s);
        }
    }
}

#[test]
fn predicate_display() {
    let p = Predicate { field: "text".into(), arg: "metformin".into(), terms: vec![Term::new("text", "metformin", 0)] };
    assert_eq!(Expr::Pred(p.clone()).to_string(), "text:metformin");
    assert_eq!(e("text:metformin"), Expr::Pred(p));
    assert_eq!(
        q("NOT (icd10:E11 OR year:2024) AND NOT NOT gender:male").to_string(),
        "NOT (icd10:E11 OR year:2024) AND NOT NOT gender:male"
    );
    assert_eq!(q("  icd10:e119   and  (year:2024) ").to_string(), "icd10:E11.9 AND year:2024");
    assert_eq!("icd10:E11".parse::<Query>().unwrap(), q("icd10:E11"));
}
