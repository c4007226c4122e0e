//! Value bands for numeric observations, and the band covers that turn a range predicate into an
//! OR of band terms: a decimal range tree.
//!
//! # Encoding (field `value`)
//!
//! A value `v` observed under code key `K` (`loinc|4548-4`; see [`BandScale`]) yields one term per
//! level of its scale, field `value`, value `K|w<width>|<lower>`, where `width` is `10^e` for every
//! `e` in `fine..=top` and `lower = floor(v / width) * width`, both written as plain decimals:
//! HbA1c 8.3 % gives `loinc|4548-4|w0.1|8.3`, `loinc|4548-4|w1|8`, `loinc|4548-4|w10|0`,
//! `loinc|4548-4|w100|0`. Values outside the scale's domain `[-10^top, 10^top)` give the single
//! term `K|under` or `K|over` instead.
//!
//! # Resolution
//!
//! Values are compared after truncation to the finest width (`floor(v / 10^fine) * 10^fine`): at
//! resolution 0.1, `> 8` matches 8.1 and above, not 8.05. Within the domain a cover is exact at
//! that resolution: a record matches the OR of the cover's bands exactly when its truncated value
//! satisfies the predicate. A predicate reaching beyond the domain adds `K|under` / `K|over`, which
//! hold every value out there (a superset). Units are not converted: LOINC codes name a property
//! with its unit class, and values are banded as recorded.

use std::fmt;
use std::str::FromStr;

/// The band widths used for one code: `10^fine` up to `10^top`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BandScale {
    /// Exponent of the finest width (the resolution).
    pub fine: i32,
    /// Exponent of the widest width; the domain is `[-10^top, 10^top)`.
    pub top: i32,
}

/// The scale for codes without their own: widths 0.1 to 10 000.
pub const DEFAULT_SCALE: BandScale = BandScale { fine: -1, top: 4 };

/// Scales for common LOINC codes (values in their usual UCUM units), chosen so that one term per
/// clinically meaningful step exists and the domain holds every plausible value.
const LOINC_SCALES: &[(&str, BandScale)] = &[
    ("4548-4", BandScale { fine: -1, top: 2 }), // Hemoglobin A1c/Hemoglobin.total in Blood, %
    ("17856-6", BandScale { fine: -1, top: 2 }), // Hemoglobin A1c (HPLC), %
    ("2345-7", BandScale { fine: 0, top: 4 }),  // Glucose in Serum or Plasma, mg/dL
    ("2339-0", BandScale { fine: 0, top: 4 }),  // Glucose in Blood, mg/dL
    ("2093-3", BandScale { fine: 0, top: 3 }),  // Cholesterol total, mg/dL
    ("2085-9", BandScale { fine: 0, top: 3 }),  // HDL cholesterol, mg/dL
    ("18262-6", BandScale { fine: 0, top: 3 }), // LDL cholesterol (direct), mg/dL
    ("2571-8", BandScale { fine: 0, top: 4 }),  // Triglycerides, mg/dL
    ("2160-0", BandScale { fine: -2, top: 2 }), // Creatinine, mg/dL
    ("33914-3", BandScale { fine: 0, top: 3 }), // eGFR (MDRD), mL/min/1.73m2
    ("2951-2", BandScale { fine: 0, top: 3 }),  // Sodium, mmol/L
    ("2823-3", BandScale { fine: -1, top: 2 }), // Potassium, mmol/L
    ("718-7", BandScale { fine: -1, top: 2 }),  // Hemoglobin, g/dL
    ("8480-6", BandScale { fine: 0, top: 3 }),  // Systolic blood pressure, mm[Hg]
    ("8462-4", BandScale { fine: 0, top: 3 }),  // Diastolic blood pressure, mm[Hg]
    ("8867-4", BandScale { fine: 0, top: 3 }),  // Heart rate, /min
    ("8310-5", BandScale { fine: -1, top: 2 }), // Body temperature, Cel
    ("29463-7", BandScale { fine: -1, top: 3 }), // Body weight, kg
    ("8302-2", BandScale { fine: 0, top: 3 }),  // Body height, cm
    ("39156-5", BandScale { fine: -1, top: 2 }), // Body mass index, kg/m2
];

/// The band scale for a code key (`loinc|4548-4`, `snomed|...`, `code|<system>|<code>`).
pub fn scale_for(code_key: &str) -> BandScale {
    code_key
        .strip_prefix("loinc|")
        .and_then(|code| LOINC_SCALES.iter().find(|(c, _)| *c == code))
        .map_or(DEFAULT_SCALE, |(_, s)| *s)
}

/// An exact decimal: `mantissa × 10^-scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

/// A number that is not a plain decimal (`1e5`, `NaN`, `--1`), or has more than 30 digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidNumber(pub String);

impl FromStr for Decimal {
    type Err = InvalidNumber;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || InvalidNumber(s.to_owned());
        let t = s.trim();
        let (negative, body) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) || int.len() + frac.len() > 30 {
            return Err(err());
        }
        let mut mantissa: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa * 10 + i128::from(b - b'0');
        }
        Ok(Decimal { mantissa: if negative { -mantissa } else { mantissa }, scale: frac.len() as u32 })
    }
}

impl Decimal {
    /// The exact decimal an `f64` prints as (Rust prints the shortest string that reads back as
    /// the same `f64`, never in exponent form): 8.3 is 8.3, not 8.2999… `None` for non-finite
    /// values and values beyond 10^30.
    pub fn from_f64(v: f64) -> Option<Decimal> {
        if !v.is_finite() || v.abs() >= 1e30 {
            return None;
        }
        format!("{v}").parse().ok()
    }

    /// `floor(self / 10^exp)` and whether the division was exact; `None` on overflow.
    fn div_pow10(&self, exp: i32) -> Option<(i128, bool)> {
        // self / 10^exp = mantissa / 10^(scale + exp)
        let shift = i64::from(self.scale) + i64::from(exp);
        if shift <= 0 {
            let m = 10i128.checked_pow(u32::try_from(-shift).ok()?)?;
            return Some((self.mantissa.checked_mul(m)?, true));
        }
        let Some(d) = u32::try_from(shift).ok().and_then(|s| 10i128.checked_pow(s)) else {
            // Divisor beyond i128: |self| < 1 at that scale, so the floor is 0 or -1.
            return Some((if self.mantissa < 0 { -1 } else { 0 }, self.mantissa == 0));
        };
        Some((self.mantissa.div_euclid(d), self.mantissa.rem_euclid(d) == 0))
    }
}

/// `n × 10^exp` as a plain decimal string.
fn format_scaled(n: i128, exp: i32) -> String {
    if exp >= 0 {
        return format!("{}{}", n, if n == 0 { String::new() } else { "0".repeat(exp as usize) });
    }
    let places = (-exp) as usize;
    let digits = format!("{:0>width$}", n.unsigned_abs(), width = places + 1);
    let (int, frac) = digits.split_at(digits.len() - places);
    let frac = frac.trim_end_matches('0');
    let sign = if n < 0 { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

fn band_value(code_key: &str, width_exp: i32, lower: i128) -> String {
    format!("{code_key}|w{}|{}", format_scaled(1, width_exp), format_scaled(lower, width_exp))
}

/// The band term values (field `value`) of a value `v` under `code_key`, finest width first.
/// Empty for values that are not finite.
pub fn value_bands(code_key: &str, v: f64) -> Vec<String> {
    let Some(d) = Decimal::from_f64(v) else { return Vec::new() };
    let scale = scale_for(code_key);
    let Some((n, _)) = d.div_pow10(scale.fine) else { return Vec::new() };
    let limit = 10i128.pow((scale.top - scale.fine) as u32);
    if n >= limit {
        return vec![format!("{code_key}|over")];
    }
    if n < -limit {
        return vec![format!("{code_key}|under")];
    }
    (scale.fine..=scale.top)
        .map(|e| {
            let w = 10i128.pow((e - scale.fine) as u32);
            band_value(code_key, e, n.div_euclid(w))
        })
        .collect()
}

/// One end of a [`ValueRange`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// No limit.
    Unbounded,
    /// The limit is part of the range.
    Included(Decimal),
    /// The limit is not part of the range.
    Excluded(Decimal),
}

/// A range predicate on a numeric value. Parses `>8`, `>=8`, `<7.5`, `<=7.5`, `=5`, `4..6`
/// (half-open, as in Rust), `4..=6`, `..6`, `4..`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueRange {
    /// Lower end.
    pub lower: Bound,
    /// Upper end.
    pub upper: Bound,
}

impl FromStr for ValueRange {
    type Err = InvalidNumber;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let num = |x: &str| x.parse::<Decimal>();
        let range = |lower, upper| Ok(ValueRange { lower, upper });
        if let Some(x) = t.strip_prefix(">=") {
            return range(Bound::Included(num(x)?), Bound::Unbounded);
        }
        if let Some(x) = t.strip_prefix("<=") {
            return range(Bound::Unbounded, Bound::Included(num(x)?));
        }
        if let Some(x) = t.strip_prefix('>') {
            return range(Bound::Excluded(num(x)?), Bound::Unbounded);
        }
        if let Some(x) = t.strip_prefix('<') {
            return range(Bound::Unbounded, Bound::Excluded(num(x)?));
        }
        if let Some(x) = t.strip_prefix('=') {
            let x = num(x)?;
            return range(Bound::Included(x), Bound::Included(x));
        }
        if let Some((a, b)) = t.split_once("..") {
            let lower = if a.trim().is_empty() { Bound::Unbounded } else { Bound::Included(num(a)?) };
            let upper = match b.strip_prefix('=') {
                Some(b) => Bound::Included(num(b)?),
                None if b.trim().is_empty() => Bound::Unbounded,
                None => Bound::Excluded(num(b)?),
            };
            return range(lower, upper);
        }
        Err(InvalidNumber(s.to_owned()))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_scaled(self.mantissa, -(self.scale as i32)))
    }
}

/// The bands (term values, field `value`) whose OR matches exactly the values under `code_key`
/// whose truncation to the finest width satisfies `range` (see the module documentation), plus
/// `K|under` / `K|over` when the range reaches beyond the domain. The cover is the canonical
/// range-tree decomposition into maximal aligned bands, so it is minimal: at most 9 bands per
/// level and side. Empty when nothing can match.
pub fn band_cover(code_key: &str, range: &ValueRange) -> Vec<String> {
    let scale = scale_for(code_key);
    let levels = (scale.top - scale.fine) as u32;
    let limit = 10i128.pow(levels);
    // The range on n = floor(v / 10^fine), as an inclusive interval; None = unbounded.
    let lo = match range.lower {
        Bound::Unbounded => None,
        Bound::Included(x) => Some(x.div_pow10(scale.fine).map(|(q, exact)| if exact { q } else { q + 1 })),
        Bound::Excluded(x) => Some(x.div_pow10(scale.fine).map(|(q, _)| q + 1)),
    };
    let hi = match range.upper {
        Bound::Unbounded => None,
        Bound::Included(x) => Some(x.div_pow10(scale.fine).map(|(q, _)| q)),
        Bound::Excluded(x) => Some(x.div_pow10(scale.fine).map(|(q, exact)| if exact { q - 1 } else { q })),
    };
    // A bound too large for i128 lies beyond the domain either way.
    let lo = lo.map(|b| b.unwrap_or(if range_sign(&range.lower) { i128::MAX } else { i128::MIN }));
    let hi = hi.map(|b| b.unwrap_or(if range_sign(&range.upper) { i128::MAX } else { i128::MIN }));
    if let (Some(a), Some(b)) = (lo, hi) {
        if a > b {
            return Vec::new();
        }
    }
    let mut out = Vec::new();
    if lo.is_none_or(|a| a < -limit) {
        out.push(format!("{code_key}|under"));
    }
    let a = lo.unwrap_or(i128::MIN).max(-limit);
    let b = hi.unwrap_or(i128::MAX).min(limit - 1);
    let mut x = a;
    while x <= b {
        let mut k = levels;
        loop {
            let w = 10i128.pow(k);
            if x.rem_euclid(w) == 0 && x + (w - 1) <= b {
                out.push(band_value(code_key, scale.fine + k as i32, x / w));
                x += w;
                break;
            }
            k -= 1;
        }
    }
    if hi.is_none_or(|b| b >= limit) {
        out.push(format!("{code_key}|over"));
    }
    out
}

fn range_sign(bound: &Bound) -> bool {
    match bound {
        Bound::Unbounded => true,
        Bound::Included(x) | Bound::Excluded(x) => x.mantissa >= 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HBA1C: &str = "loinc|4548-4";

    #[test]
    fn decimals_are_exact() {
        assert_eq!(Decimal::from_f64(8.3).unwrap().div_pow10(-1), Some((83, true)));
        assert_eq!(Decimal::from_f64(-0.05).unwrap().div_pow10(-1), Some((-1, false)));
        assert_eq!("7.50".parse::<Decimal>().unwrap().div_pow10(0), Some((7, false)));
        assert_eq!("1e5".parse::<Decimal>(), Err(InvalidNumber("1e5".into())));
        assert!(".".parse::<Decimal>().is_err());
        assert!("-".parse::<Decimal>().is_err());
        assert_eq!(Decimal::from_f64(f64::NAN), None);
        assert_eq!(format_scaled(-5, -1), "-0.5");
        assert_eq!(format_scaled(83, -1), "8.3");
        assert_eq!(format_scaled(80, -1), "8");
        assert_eq!(format_scaled(3, 2), "300");
        assert_eq!(format_scaled(0, 2), "0");
        assert_eq!(format_scaled(1, -2), "0.01");
    }

    #[test]
    fn bands_of_a_value() {
        assert_eq!(
            value_bands(HBA1C, 8.3),
            ["loinc|4548-4|w0.1|8.3", "loinc|4548-4|w1|8", "loinc|4548-4|w10|0", "loinc|4548-4|w100|0"]
        );
        assert_eq!(
            value_bands("loinc|2345-7", 126.0),
            [
                "loinc|2345-7|w1|126",
                "loinc|2345-7|w10|120",
                "loinc|2345-7|w100|100",
                "loinc|2345-7|w1000|0",
                "loinc|2345-7|w10000|0"
            ]
        );
        assert_eq!(value_bands("code|x|y", -0.25)[..2], ["code|x|y|w0.1|-0.3", "code|x|y|w1|-1"]);
        assert_eq!(value_bands(HBA1C, 100.0), ["loinc|4548-4|over"]);
        assert_eq!(value_bands(HBA1C, -100.01), ["loinc|4548-4|under"]);
        assert_eq!(value_bands(HBA1C, -100.0).len(), 4);
        assert!(value_bands(HBA1C, f64::INFINITY).is_empty());
    }

    #[test]
    fn covers_of_typical_predicates() {
        let cover = |s: &str| band_cover(HBA1C, &s.parse().unwrap());
        assert_eq!(
            cover(">8"),
            [
                "loinc|4548-4|w0.1|8.1",
                "loinc|4548-4|w0.1|8.2",
                "loinc|4548-4|w0.1|8.3",
                "loinc|4548-4|w0.1|8.4",
                "loinc|4548-4|w0.1|8.5",
                "loinc|4548-4|w0.1|8.6",
                "loinc|4548-4|w0.1|8.7",
                "loinc|4548-4|w0.1|8.8",
                "loinc|4548-4|w0.1|8.9",
                "loinc|4548-4|w1|9",
                "loinc|4548-4|w10|10",
                "loinc|4548-4|w10|20",
                "loinc|4548-4|w10|30",
                "loinc|4548-4|w10|40",
                "loinc|4548-4|w10|50",
                "loinc|4548-4|w10|60",
                "loinc|4548-4|w10|70",
                "loinc|4548-4|w10|80",
                "loinc|4548-4|w10|90",
                "loinc|4548-4|over"
            ]
        );
        assert_eq!(cover("4..6"), ["loinc|4548-4|w1|4", "loinc|4548-4|w1|5"]);
        assert_eq!(cover("4..=6"), ["loinc|4548-4|w1|4", "loinc|4548-4|w1|5", "loinc|4548-4|w0.1|6"]);
        assert_eq!(cover("=6.5"), ["loinc|4548-4|w0.1|6.5"]);
        assert_eq!(cover("0..100"), ["loinc|4548-4|w100|0"]);
        assert_eq!(cover("6..4"), Vec::<String>::new());
        assert_eq!(cover("<0").first().map(String::as_str), Some("loinc|4548-4|under"));
        assert_eq!(cover(&format!(">{}", "9".repeat(30))), ["loinc|4548-4|over"]);
        assert_eq!(cover(&format!("<-{}", "9".repeat(30))), ["loinc|4548-4|under"]);
    }

    /// Brute force over every finest-width value of a small domain: the cover matches exactly the
    /// values that satisfy the predicate after truncation, and it is made of maximal bands.
    #[test]
    fn covers_are_exact_and_minimal() {
        let key = "loinc|2160-0"; // fine -2, top 2: n in [-10_000, 10_000)
        let bounds = ["-100.5", "-3", "-0.015", "0", "0.01", "0.999", "1", "1.234", "7.5", "42", "99.99", "100", "250"];
        let mut preds = Vec::new();
        for a in bounds {
            preds.extend([format!(">{a}"), format!(">={a}"), format!("<{a}"), format!("<={a}"), format!("={a}")]);
            for b in bounds {
                preds.extend([format!("{a}..{b}"), format!("{a}..={b}")]);
            }
        }
        for p in &preds {
            let range: ValueRange = p.parse().unwrap();
            let cover = band_cover(key, &range);
            let set: std::collections::HashSet<&str> = cover.iter().map(String::as_str).collect();
            assert_eq!(set.len(), cover.len(), "{p}: duplicate bands");
            for n in (-10_000i128..10_000).step_by(7).chain([-10_000, -1, 0, 1, 9_999]) {
                let v = Decimal { mantissa: n, scale: 2 };
                let truth = match range.lower {
                    Bound::Unbounded => true,
                    Bound::Included(x) => cmp(v, x).is_ge(),
                    Bound::Excluded(x) => cmp(v, x).is_gt(),
                } && match range.upper {
                    Bound::Unbounded => true,
                    Bound::Included(x) => cmp(v, x).is_le(),
                    Bound::Excluded(x) => cmp(v, x).is_lt(),
                };
                let bands = value_bands(key, n as f64 / 100.0);
                let hit = bands.iter().any(|b| set.contains(b.as_str()));
                assert_eq!(hit, truth, "{p} at {v}: bands {bands:?}, cover {cover:?}");
            }
            // Maximality: no ten sibling bands that could have been one wider band.
            for level in 0..4 {
                let per_parent = cover
                    .iter()
                    .filter(|b| b.contains(&format!("|w{}|", format_scaled(1, level - 2))))
                    .filter_map(|b| b.rsplit('|').next()?.parse::<Decimal>().ok()?.div_pow10(level - 1).map(|q| q.0))
                    .fold(std::collections::HashMap::<i128, usize>::new(), |mut m, parent| {
                        *m.entry(parent).or_default() += 1;
                        m
                    });
                assert!(per_parent.values().all(|&c| c <= 9), "{p}: not minimal: {cover:?}");
            }
        }
    }

    fn cmp(a: Decimal, b: Decimal) -> std::cmp::Ordering {
        let s = a.scale.max(b.scale);
        (a.mantissa * 10i128.pow(s - a.scale)).cmp(&(b.mantissa * 10i128.pow(s - b.scale)))
    }

    #[test]
    fn parses_predicates() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(">8".parse(), Ok(ValueRange { lower: Bound::Excluded(d("8")), upper: Bound::Unbounded }));
        assert_eq!("..6".parse(), Ok(ValueRange { lower: Bound::Unbounded, upper: Bound::Excluded(d("6")) }));
        assert_eq!("4..".parse(), Ok(ValueRange { lower: Bound::Included(d("4")), upper: Bound::Unbounded }));
        assert!("about 5".parse::<ValueRange>().is_err());
        assert!(">".parse::<ValueRange>().is_err());
    }
}
