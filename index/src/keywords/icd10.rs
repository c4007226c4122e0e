//! ICD-10 code normalisation and the classification's hierarchy (code → category → block →
//! chapter), from the WHO ICD-10 2019 tabular list.
//!
//! # Value encoding (field `icd10`)
//!
//! All levels share the field `icd10` and are told apart by their shape, so a query for any of them
//! is the single term `icd10:<value>`:
//!
//! | level                 | value           | example       |
//! |-----------------------|-----------------|---------------|
//! | code (as recorded)    | `A00.0` form    | `E11.9`       |
//! | category (3 chars)    | `A00`           | `E11`         |
//! | block (and groups)    | `A00-A09`       | `E10-E14`     |
//! | chapter               | `chapter-<roman>` | `chapter-IV` |
//!
//! Codes are upper-cased, trimmed, and written with a dot after the category (`E119` and `e11.9`
//! both become `E11.9`); WHO dagger/asterisk marks and a trailing `-` are dropped. Blocks are
//! always written `first-last`, also when they hold one category (`C50-C50`), so a block never
//! collides with a category. Where WHO groups blocks (`C00-C97` > `C00-C75` > `C00-C14`), every
//! enclosing group is an ancestor as well. ICD-10-CM codes (up to 7 characters, `S72.001A`) are
//! accepted; their categories are placed with the WHO tables, which agree with ICD-10-CM for
//! almost all categories. A category no block holds (WHO leaves some unused, e.g. `A10`) keeps its
//! code, category and chapter; unknown ancestors are skipped, never guessed.

/// One WHO chapter: roman numeral and the first and last category it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chapter {
    /// Roman numeral, `I` to `XXII`.
    pub numeral: &'static str,
    /// First category, e.g. `E00`.
    pub first: &'static str,
    /// Last category, e.g. `E90`.
    pub last: &'static str,
}

/// The 22 chapters of WHO ICD-10 2019.
pub const CHAPTERS: [Chapter; 22] = [
    Chapter { numeral: "I", first: "A00", last: "B99" },
    Chapter { numeral: "II", first: "C00", last: "D48" },
    Chapter { numeral: "III", first: "D50", last: "D89" },
    Chapter { numeral: "IV", first: "E00", last: "E90" },
    Chapter { numeral: "V", first: "F00", last: "F99" },
    Chapter { numeral: "VI", first: "G00", last: "G99" },
    Chapter { numeral: "VII", first: "H00", last: "H59" },
    Chapter { numeral: "VIII", first: "H60", last: "H95" },
    Chapter { numeral: "IX", first: "I00", last: "I99" },
    Chapter { numeral: "X", first: "J00", last: "J99" },
    Chapter { numeral: "XI", first: "K00", last: "K93" },
    Chapter { numeral: "XII", first: "L00", last: "L99" },
    Chapter { numeral: "XIII", first: "M00", last: "M99" },
    Chapter { numeral: "XIV", first: "N00", last: "N99" },
    Chapter { numeral: "XV", first: "O00", last: "O99" },
    Chapter { numeral: "XVI", first: "P00", last: "P96" },
    Chapter { numeral: "XVII", first: "Q00", last: "Q99" },
    Chapter { numeral: "XVIII", first: "R00", last: "R99" },
    Chapter { numeral: "XIX", first: "S00", last: "T98" },
    Chapter { numeral: "XX", first: "V01", last: "Y98" },
    Chapter { numeral: "XXI", first: "Z00", last: "Z99" },
    Chapter { numeral: "XXII", first: "U00", last: "U85" },
];

/// The leaf blocks of WHO ICD-10 2019 (the finest grouping above categories), chapter by chapter
/// in category order. Within a chapter they do not overlap; the gaps between them are categories
/// WHO leaves unused (see the unit test `leaf_blocks_tile_their_chapters`).
pub const BLOCKS: &[(&str, &str)] = &[
    // I Certain infectious and parasitic diseases
    ("A00", "A09"),
    ("A15", "A19"),
    ("A20", "A28"),
    ("A30", "A49"),
    ("A50", "A64"),
    ("A65", "A69"),
    ("A70", "A74"),
    ("A75", "A79"),
    ("A80", "A89"),
    ("A92", "A99"),
    ("B00", "B09"),
    ("B15", "B19"),
    ("B20", "B24"),
    ("B25", "B34"),
    ("B35", "B49"),
    ("B50", "B64"),
    ("B65", "B83"),
    ("B85", "B89"),
    ("B90", "B94"),
    ("B95", "B98"),
    ("B99", "B99"),
    // II Neoplasms
    ("C00", "C14"),
    ("C15", "C26"),
    ("C30", "C39"),
    ("C40", "C41"),
    ("C43", "C44"),
    ("C45", "C49"),
    ("C50", "C50"),
    ("C51", "C58"),
    ("C60", "C63"),
    ("C64", "C68"),
    ("C69", "C72"),
    ("C73", "C75"),
    ("C76", "C80"),
    ("C81", "C96"),
    ("C97", "C97"),
    ("D00", "D09"),
    ("D10", "D36"),
    ("D37", "D48"),
    // III Blood and immune mechanism
    ("D50", "D53"),
    ("D55", "D59"),
    ("D60", "D64"),
    ("D65", "D69"),
    ("D70", "D77"),
    ("D80", "D89"),
    // IV Endocrine, nutritional and metabolic
    ("E00", "E07"),
    ("E10", "E14"),
    ("E15", "E16"),
    ("E20", "E35"),
    ("E40", "E46"),
    ("E50", "E64"),
    ("E65", "E68"),
    ("E70", "E90"),
    // V Mental and behavioural
    ("F00", "F09"),
    ("F10", "F19"),
    ("F20", "F29"),
    ("F30", "F39"),
    ("F40", "F48"),
    ("F50", "F59"),
    ("F60", "F69"),
    ("F70", "F79"),
    ("F80", "F89"),
    ("F90", "F98"),
    ("F99", "F99"),
    // VI Nervous system
    ("G00", "G09"),
    ("G10", "G14"),
    ("G20", "G26"),
    ("G30", "G32"),
    ("G35", "G37"),
    ("G40", "G47"),
    ("G50", "G59"),
    ("G60", "G64"),
    ("G70", "G73"),
    ("G80", "G83"),
    ("G90", "G99"),
    // VII Eye and adnexa
    ("H00", "H06"),
    ("H10", "H13"),
    ("H15", "H22"),
    ("H25", "H28"),
    ("H30", "H36"),
    ("H40", "H42"),
    ("H43", "H45"),
    ("H46", "H48"),
    ("H49", "H52"),
    ("H53", "H54"),
    ("H55", "H59"),
    // VIII Ear and mastoid process
    ("H60", "H62"),
    ("H65", "H75"),
    ("H80", "H83"),
    ("H90", "H95"),
    // IX Circulatory system
    ("I00", "I02"),
    ("I05", "I09"),
    ("I10", "I15"),
    ("I20", "I25"),
    ("I26", "I28"),
    ("I30", "I52"),
    ("I60", "I69"),
    ("I70", "I79"),
    ("I80", "I89"),
    ("I95", "I99"),
    // X Respiratory system
    ("J00", "J06"),
    ("J09", "J18"),
    ("J20", "J22"),
    ("J30", "J39"),
    ("J40", "J47"),
    ("J60", "J70"),
    ("J80", "J84"),
    ("J85", "J86"),
    ("J90", "J94"),
    ("J95", "J99"),
    // XI Digestive system
    ("K00", "K14"),
    ("K20", "K31"),
    ("K35", "K38"),
    ("K40", "K46"),
    ("K50", "K52"),
    ("K55", "K64"),
    ("K65", "K67"),
    ("K70", "K77"),
    ("K80", "K87"),
    ("K90", "K93"),
    // XII Skin and subcutaneous tissue
    ("L00", "L08"),
    ("L10", "L14"),
    ("L20", "L30"),
    ("L40", "L45"),
    ("L50", "L54"),
    ("L55", "L59"),
    ("L60", "L75"),
    ("L80", "L99"),
    // XIII Musculoskeletal system and connective tissue
    ("M00", "M03"),
    ("M05", "M14"),
    ("M15", "M19"),
    ("M20", "M25"),
    ("M30", "M36"),
    ("M40", "M43"),
    ("M45", "M49"),
    ("M50", "M54"),
    ("M60", "M63"),
    ("M65", "M68"),
    ("M70", "M79"),
    ("M80", "M85"),
    ("M86", "M90"),
    ("M91", "M94"),
    ("M95", "M99"),
    // XIV Genitourinary system
    ("N00", "N08"),
    ("N10", "N16"),
    ("N17", "N19"),
    ("N20", "N23"),
    ("N25", "N29"),
    ("N30", "N39"),
    ("N40", "N51"),
    ("N60", "N64"),
    ("N70", "N77"),
    ("N80", "N98"),
    ("N99", "N99"),
    // XV Pregnancy, childbirth and the puerperium
    ("O00", "O08"),
    ("O10", "O16"),
    ("O20", "O29"),
    ("O30", "O48"),
    ("O60", "O75"),
    ("O80", "O84"),
    ("O85", "O92"),
    ("O94", "O99"),
    // XVI Perinatal period
    ("P00", "P04"),
    ("P05", "P08"),
    ("P10", "P15"),
    ("P20", "P29"),
    ("P35", "P39"),
    ("P50", "P61"),
    ("P70", "P74"),
    ("P75", "P78"),
    ("P80", "P83"),
    ("P90", "P96"),
    // XVII Congenital malformations
    ("Q00", "Q07"),
    ("Q10", "Q18"),
    ("Q20", "Q28"),
    ("Q30", "Q34"),
    ("Q35", "Q37"),
    ("Q38", "Q45"),
    ("Q50", "Q56"),
    ("Q60", "Q64"),
    ("Q65", "Q79"),
    ("Q80", "Q89"),
    ("Q90", "Q99"),
    // XVIII Symptoms, signs and abnormal findings
    ("R00", "R09"),
    ("R10", "R19"),
    ("R20", "R23"),
    ("R25", "R29"),
    ("R30", "R39"),
    ("R40", "R46"),
    ("R47", "R49"),
    ("R50", "R69"),
    ("R70", "R79"),
    ("R80", "R82"),
    ("R83", "R89"),
    ("R90", "R94"),
    ("R95", "R99"),
    // XIX Injury, poisoning and other consequences of external causes
    ("S00", "S09"),
    ("S10", "S19"),
    ("S20", "S29"),
    ("S30", "S39"),
    ("S40", "S49"),
    ("S50", "S59"),
    ("S60", "S69"),
    ("S70", "S79"),
    ("S80", "S89"),
    ("S90", "S99"),
    ("T00", "T07"),
    ("T08", "T14"),
    ("T15", "T19"),
    ("T20", "T25"),
    ("T26", "T28"),
    ("T29", "T32"),
    ("T33", "T35"),
    ("T36", "T50"),
    ("T51", "T65"),
    ("T66", "T78"),
    ("T79", "T79"),
    ("T80", "T88"),
    ("T90", "T98"),
    // XX External causes of morbidity and mortality
    ("V01", "V09"),
    ("V10", "V19"),
    ("V20", "V29"),
    ("V30", "V39"),
    ("V40", "V49"),
    ("V50", "V59"),
    ("V60", "V69"),
    ("V70", "V79"),
    ("V80", "V89"),
    ("V90", "V94"),
    ("V95", "V97"),
    ("V98", "V99"),
    ("W00", "W19"),
    ("W20", "W49"),
    ("W50", "W64"),
    ("W65", "W74"),
    ("W75", "W84"),
    ("W85", "W99"),
    ("X00", "X09"),
    ("X10", "X19"),
    ("X20", "X29"),
    ("X30", "X39"),
    ("X40", "X49"),
    ("X50", "X57"),
    ("X58", "X59"),
    ("X60", "X84"),
    ("X85", "Y09"),
    ("Y10", "Y34"),
    ("Y35", "Y36"),
    ("Y40", "Y59"),
    ("Y60", "Y69"),
    ("Y70", "Y82"),
    ("Y83", "Y84"),
    ("Y85", "Y89"),
    ("Y90", "Y98"),
    // XXI Factors influencing health status and contact with health services
    ("Z00", "Z13"),
    ("Z20", "Z29"),
    ("Z30", "Z39"),
    ("Z40", "Z54"),
    ("Z55", "Z65"),
    ("Z70", "Z76"),
    ("Z80", "Z99"),
    // XXII Codes for special purposes
    ("U00", "U49"),
    ("U82", "U85"),
];

/// WHO's groups of blocks (a level between block and chapter), each the union of leaf blocks.
pub const BLOCK_GROUPS: &[(&str, &str)] = &[
    ("C00", "C97"), // Malignant neoplasms
    ("C00", "C75"), // ... of specified sites, primary
    ("T20", "T32"), // Burns and corrosions
    ("M00", "M25"), // Arthropathies
    ("M40", "M54"), // Dorsopathies
    ("M60", "M79"), // Soft tissue disorders
    ("M80", "M94"), // Osteopathies and chondropathies
    ("V01", "X59"), // Accidents
    ("V01", "V99"), // Transport accidents
    ("W00", "X59"), // Other external causes of accidental injury
    ("Y40", "Y84"), // Complications of medical and surgical care
];

/// A category as a number for range comparisons: letter × 100 + two digits (`E11` → 411).
/// `None` when the third character is a letter (ICD-10-CM's `C4A`, `M1A`, `Z3A`).
fn category_key(category: &str) -> Option<u32> {
    let b = category.as_bytes();
    if b.len() != 3 || !b[0].is_ascii_uppercase() || !b[1].is_ascii_digit() || !b[2].is_ascii_digit() {
        return None;
    }
    Some(u32::from(b[0] - b'A') * 100 + u32::from(b[1] - b'0') * 10 + u32::from(b[2] - b'0'))
}

fn key(category: &str) -> u32 {
    category_key(category).expect("the embedded tables hold well-formed categories")
}

/// Normalise an ICD-10 (WHO or -CM) code to its canonical form (`e119 ` → `E11.9`, `E11` stays).
/// `None` when the text does not have the shape of an ICD-10 code: a letter, a digit, a letter or
/// digit, then up to four letters or digits. Dagger (`†`), asterisk (`*`), `+` and a trailing `-`
/// or `.` are dropped.
pub fn normalise(code: &str) -> Option<String> {
    let trimmed = code.trim().trim_end_matches(['†', '*', '+', '-', '.']).trim();
    let compact: String = trimmed.chars().filter(|c| *c != '.').map(|c| c.to_ascii_uppercase()).collect();
    let b = compact.as_bytes();
    let shaped = (3..=7).contains(&b.len())
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_digit()
        && b[2].is_ascii_alphanumeric()
        && b[3..].iter().all(u8::is_ascii_alphanumeric)
        && trimmed.matches('.').count() <= 1
        && trimmed.find('.').is_none_or(|i| i == 3);
    if !shaped {
        return None;
    }
    Some(if b.len() == 3 { compact } else { format!("{}.{}", &compact[..3], &compact[3..]) })
}

/// The chapter holding a category, if any.
pub fn chapter_of(category: &str) -> Option<&'static Chapter> {
    let k = category_key(category).or_else(|| {
        // `C4A`-style: place it by its first two characters when all ten numeric categories
        // sharing them lie in one chapter.
        let b = category.as_bytes();
        let lo = category_key(&format!("{}{}0", b.first().copied()? as char, b.get(1).copied()? as char))?;
        let hi = lo + 9;
        let c = CHAPTERS.iter().find(|c| (key(c.first)..=key(c.last)).contains(&lo))?;
        (hi <= key(c.last)).then_some(lo)
    })?;
    CHAPTERS.iter().find(|c| (key(c.first)..=key(c.last)).contains(&k))
}

/// The ancestors of an ICD-10 code, narrowest first, as `icd10` term values (see the module
/// documentation): category, leaf block, enclosing block groups (narrowest first), chapter. The
/// code itself is not included, nor its category when the code is a category. Empty for text that
/// is not an ICD-10 code.
///
/// ```
/// use index::keywords::icd10::ancestors;
/// assert_eq!(ancestors("E119"), ["E11", "E10-E14", "chapter-IV"]);
/// assert_eq!(ancestors("C34.1"), ["C34", "C30-C39", "C00-C75", "C00-C97", "chapter-II"]);
/// ```
pub fn ancestors(code: &str) -> Vec<String> {
    let Some(code) = normalise(code) else { return Vec::new() };
    let category = &code[..3];
    let mut out = Vec::new();
    if code.len() > 3 {
        out.push(category.to_owned());
    }
    if let Some(k) = category_key(category) {
        let contains = |&&(first, last): &&(&str, &str)| (key(first)..=key(last)).contains(&k);
        if let Some((first, last)) = BLOCKS.iter().find(contains) {
            out.push(format!("{first}-{last}"));
        }
        let mut groups: Vec<_> = BLOCK_GROUPS.iter().filter(contains).collect();
        groups.sort_by_key(|(first, last)| key(last) - key(first));
        out.extend(groups.into_iter().map(|(first, last)| format!("{first}-{last}")));
    }
    if let Some(chapter) = chapter_of(category) {
        out.push(format!("chapter-{}", chapter.numeral));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Categories WHO ICD-10 2019 leaves unused between the blocks of a chapter, as (first, last).
    const WHO_GAPS: &[(&str, &str)] = &[
        ("A10", "A14"),
        ("A29", "A29"),
        ("A90", "A91"), // dengue, moved to A97 in 2016
        ("B10", "B14"),
        ("B84", "B84"),
        ("C27", "C29"),
        ("C42", "C42"),
        ("C59", "C59"),
        ("C98", "C99"),
        ("D54", "D54"),
        ("D78", "D79"),
        ("E08", "E09"),
        ("E17", "E19"),
        ("E36", "E39"),
        ("E47", "E49"),
        ("E69", "E69"),
        ("F49", "F49"),
        ("G15", "G19"),
        ("G27", "G29"),
        ("G33", "G34"),
        ("G38", "G39"),
        ("G48", "G49"),
        ("G65", "G69"),
        ("G74", "G79"),
        ("G84", "G89"),
        ("H07", "H09"),
        ("H14", "H14"),
        ("H23", "H24"),
        ("H29", "H29"),
        ("H37", "H39"),
        ("H63", "H64"),
        ("H76", "H79"),
        ("H84", "H89"),
        ("I03", "I04"),
        ("I16", "I19"),
        ("I29", "I29"),
        ("I53", "I59"),
        ("I90", "I94"),
        ("J07", "J08"),
        ("J19", "J19"),
        ("J23", "J29"),
        ("J48", "J59"),
        ("J71", "J79"),
        ("J87", "J89"),
        ("K15", "K19"),
        ("K32", "K34"),
        ("K39", "K39"),
        ("K47", "K49"),
        ("K53", "K54"),
        ("K68", "K69"),
        ("K78", "K79"),
        ("K88", "K89"),
        ("L09", "L09"),
        ("L15", "L19"),
        ("L31", "L39"),
        ("L46", "L49"),
        ("L76", "L79"),
        ("M04", "M04"),
        ("M26", "M29"),
        ("M37", "M39"),
        ("M44", "M44"),
        ("M55", "M59"),
        ("M64", "M64"),
        ("M69", "M69"),
        ("N09", "N09"),
        ("N24", "N24"),
        ("N52", "N59"),
        ("N65", "N69"),
        ("N78", "N79"),
        ("O09", "O09"),
        ("O17", "O19"),
        ("O49", "O59"),
        ("O76", "O79"),
        ("O93", "O93"),
        ("P09", "P09"),
        ("P16", "P19"),
        ("P30", "P34"),
        ("P40", "P49"),
        ("P62", "P69"),
        ("P79", "P79"),
        ("P84", "P89"),
        ("Q08", "Q09"),
        ("Q19", "Q19"),
        ("Q29", "Q29"),
        ("Q46", "Q49"),
        ("Q57", "Q59"),
        ("R24", "R24"),
        ("T89", "T89"),
        ("Y37", "Y39"),
        ("Z14", "Z19"),
        ("Z66", "Z69"),
        ("Z77", "Z79"),
        ("U50", "U81"),
    ];

    #[test]
    fn chapters_are_ordered_and_disjoint() {
        let mut sorted: Vec<_> = CHAPTERS.iter().collect();
        sorted.sort_by_key(|c| key(c.first));
        for pair in sorted.windows(2) {
            assert!(key(pair[0].last) < key(pair[1].first), "{:?} overlaps {:?}", pair[0], pair[1]);
        }
    }

    #[test]
    fn leaf_blocks_tile_their_chapters() {
        assert!(BLOCKS.len() > 200, "{} blocks", BLOCKS.len());
        let mut expected_gaps: Vec<(u32, u32)> = WHO_GAPS.iter().map(|(a, b)| (key(a), key(b))).collect();
        expected_gaps.sort();
        let mut found_gaps = Vec::new();
        for chapter in &CHAPTERS {
            let (lo, hi) = (key(chapter.first), key(chapter.last));
            let mut blocks: Vec<(u32, u32)> =
                BLOCKS.iter().map(|(a, b)| (key(a), key(b))).filter(|(a, _)| (lo..=hi).contains(a)).collect();
            blocks.sort();
            assert!(!blocks.is_empty(), "chapter {} has no block", chapter.numeral);
            assert_eq!(blocks[0].0, lo, "chapter {} starts with a gap", chapter.numeral);
            assert_eq!(blocks.last().unwrap().1, hi, "chapter {} ends with a gap or overhang", chapter.numeral);
            for &(a, b) in &blocks {
                assert!(a <= b && b <= hi, "block {a}-{b} leaves chapter {}", chapter.numeral);
            }
            for pair in blocks.windows(2) {
                let (end, next) = (pair[0].1, pair[1].0);
                assert!(end < next, "blocks overlap in chapter {}: {:?}", chapter.numeral, pair);
                if next > end + 1 {
                    found_gaps.push((end + 1, next - 1));
                }
            }
        }
        found_gaps.sort();
        assert_eq!(found_gaps, expected_gaps);
    }

    #[test]
    fn groups_are_unions_of_leaf_blocks_within_one_chapter() {
        for &(first, last) in BLOCK_GROUPS {
            assert!(BLOCKS.iter().any(|(a, _)| *a == first), "group {first}-{last} starts mid-block");
            assert!(BLOCKS.iter().any(|(_, b)| *b == last), "group {first}-{last} ends mid-block");
            assert_eq!(chapter_of(first), chapter_of(last), "group {first}-{last} spans chapters");
        }
    }

    #[test]
    fn normalises_codes() {
        assert_eq!(normalise("E11.9").as_deref(), Some("E11.9"));
        assert_eq!(normalise(" e119 ").as_deref(), Some("E11.9"));
        assert_eq!(normalise("E11").as_deref(), Some("E11"));
        assert_eq!(normalise("E11.").as_deref(), Some("E11"));
        assert_eq!(normalise("A17.0†").as_deref(), Some("A17.0"));
        assert_eq!(normalise("G01*").as_deref(), Some("G01"));
        assert_eq!(normalise("S72.001A").as_deref(), Some("S72.001A"));
        assert_eq!(normalise("C4A.9").as_deref(), Some("C4A.9"));
        for bad in ["", "E1", "11.9", "E11.9.1", "E1.19", "E11.12345", "E11 9", "Ä11"] {
            assert_eq!(normalise(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ancestors_at_every_level() {
        assert_eq!(ancestors("E11.9"), ["E11", "E10-E14", "chapter-IV"]);
        assert_eq!(ancestors("E11"), ["E10-E14", "chapter-IV"]);
        assert_eq!(ancestors("I21.0"), ["I21", "I20-I25", "chapter-IX"]);
        assert_eq!(ancestors("M17.1"), ["M17", "M15-M19", "M00-M25", "chapter-XIII"]);
        assert_eq!(ancestors("W19"), ["W00-W19", "W00-X59", "V01-X59", "chapter-XX"]);
        assert_eq!(ancestors("T21.2"), ["T21", "T20-T25", "T20-T32", "chapter-XIX"]);
        assert_eq!(ancestors("U07.1"), ["U07", "U00-U49", "chapter-XXII"]);
        assert_eq!(ancestors("H65.0"), ["H65", "H65-H75", "chapter-VIII"]);
        assert_eq!(ancestors("H59"), ["H55-H59", "chapter-VII"]);
        assert_eq!(ancestors("D48.9"), ["D48", "D37-D48", "chapter-II"]);
        assert_eq!(ancestors("D50.0"), ["D50", "D50-D53", "chapter-III"]);
    }

    #[test]
    fn unknown_ancestors_are_skipped() {
        // Unused by WHO, but a well-formed category: chapter only.
        assert_eq!(ancestors("A10.1"), ["A10", "chapter-I"]);
        // Outside every chapter.
        assert_eq!(ancestors("E95"), Vec::<String>::new());
        assert_eq!(ancestors("E95.1"), ["E95"]);
        // ICD-10-CM alphanumeric categories: placed in their chapter.
        assert_eq!(ancestors("C4A.9"), ["C4A", "chapter-II"]);
        assert_eq!(ancestors("not a code"), Vec::<String>::new());
    }
}
