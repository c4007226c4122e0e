//! FHIR `date`, `dateTime` and `instant` values: parsing (partial dates included), date buckets
//! and age bands.
//!
//! A dateTime's calendar date is taken as written, in the time zone it was recorded in
//! (`2024-03-05T23:30:00-05:00` is day `2024-03-05`, not the UTC `2024-03-06`): the clinical day
//! is the local day of the event, and this is what clinicians query for.

use std::fmt;

/// A FHIR date with the precision it was given: year, year-month, or full date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FhirDate {
    /// Four-digit year.
    pub year: u16,
    /// 1 to 12, when given.
    pub month: Option<u8>,
    /// 1 to the month's length, when given (only with a month).
    pub day: Option<u8>,
}

/// Why a date string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidDate;

fn is_leap(year: u16) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn month_length(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

impl FhirDate {
    /// Parse `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, or a dateTime/instant `YYYY-MM-DDThh:mm:ss[.f][Z|±hh:mm]`
    /// (the time part is checked for shape and ranges, then dropped; a missing zone is accepted).
    pub fn parse(s: &str) -> Result<FhirDate, InvalidDate> {
        let (date, time) = match s.split_once('T') {
            Some((d, t)) => (d, Some(t)),
            None => (s, None),
        };
        let mut parts = date.split('-');
        let year = parts.next().and_then(|y| digits(y, 4)).ok_or(InvalidDate)? as u16;
        let month =
            parts.next().map(|m| digits(m, 2).filter(|m| (1..=12).contains(m)).ok_or(InvalidDate)).transpose()?;
        let month = month.map(|m| m as u8);
        let day = parts.next().map(|d| digits(d, 2).ok_or(InvalidDate)).transpose()?.map(|d| d as u8);
        if parts.next().is_some() || year == 0 {
            return Err(InvalidDate);
        }
        if let (Some(m), Some(d)) = (month, day) {
            if d == 0 || d > month_length(year, m) {
                return Err(InvalidDate);
            }
        }
        if let Some(time) = time {
            if day.is_none() || !valid_time(time) {
                return Err(InvalidDate);
            }
        }
        Ok(FhirDate { year, month, day })
    }

    /// The buckets this date falls in, as (field, value): `day`/`YYYY-MM-DD`, `month`/`YYYY-MM`,
    /// `year`/`YYYY`, as far as the precision goes.
    pub fn buckets(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::with_capacity(3);
        if let Some(m) = self.month {
            if let Some(d) = self.day {
                out.push(("day", format!("{:04}-{m:02}-{d:02}", self.year)));
            }
            out.push(("month", format!("{:04}-{m:02}", self.year)));
        }
        out.push(("year", format!("{:04}", self.year)));
        out
    }

    /// The earliest and the latest full date (year, month, day) this date may stand for.
    fn span(&self) -> ((u16, u8, u8), (u16, u8, u8)) {
        let (y, m, d) = (self.year, self.month, self.day);
        let lo = (y, m.unwrap_or(1), d.unwrap_or(1));
        let hi_month = m.unwrap_or(12);
        (lo, (y, hi_month, d.unwrap_or(month_length(y, hi_month))))
    }
}

fn valid_time(t: &str) -> bool {
    let (clock, zone) = match t.find(['Z', '+', '-']) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let zone_ok = match zone {
        "" | "Z" => true,
        z => {
            let z = &z[1..];
            z.split_once(':')
                .is_some_and(|(h, m)| digits(h, 2).is_some_and(|h| h <= 14) && digits(m, 2).is_some_and(|m| m < 60))
        }
    };
    let (hms, fraction) = clock.split_once('.').map_or((clock, None), |(a, b)| (a, Some(b)));
    let mut fields = hms.split(':');
    let h = fields.next().and_then(|h| digits(h, 2));
    let m = fields.next().and_then(|m| digits(m, 2));
    let s = fields.next().map(|s| digits(s, 2));
    zone_ok
        && fields.next().is_none()
        && h.is_some_and(|h| h < 24)
        && m.is_some_and(|m| m < 60)
        && s.is_none_or(|s| s.is_some_and(|s| s <= 60))
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

impl fmt::Display for FhirDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.year)?;
        if let Some(m) = self.month {
            write!(f, "-{m:02}")?;
        }
        if let Some(d) = self.day {
            write!(f, "-{d:02}")?;
        }
        Ok(())
    }
}

fn age_between(birth: (u16, u8, u8), at: (u16, u8, u8)) -> i32 {
    let years = i32::from(at.0) - i32::from(birth.0);
    // A 29 February birthday is reached on 1 March in common years.
    if (at.1, at.2) < (birth.1, birth.2) {
        years - 1
    } else {
        years
    }
}

/// Completed years of age at `at` for someone born on `birth`, as the range (min, max) the
/// precision of both dates allows; `None` when the event may precede the birth.
pub fn age_range(birth: &FhirDate, at: &FhirDate) -> Option<(u32, u32)> {
    let (b_lo, b_hi) = birth.span();
    let (a_lo, a_hi) = at.span();
    let min = age_between(b_hi, a_lo);
    let max = age_between(b_lo, a_hi);
    (min >= 0).then_some((min as u32, max as u32))
}

/// Age band widths, in years, and their term fields.
pub const AGE_BANDS: [(u32, &str); 3] = [(1, "age1"), (5, "age5"), (20, "age20")];

/// The age band value for `age` at `width` years: `57` for width 1, `55-59` for width 5.
pub fn age_band(age: u32, width: u32) -> String {
    if width == 1 {
        age.to_string()
    } else {
        let lo = age / width * width;
        format!("{lo}-{}", lo + width - 1)
    }
}

/// The age band terms, as (field, value), for an age known to lie in `min..=max`: a band is given
/// only when the whole range falls into it (a birth year alone gives `age5`/`age20`, not `age1`).
pub fn age_terms(min: u32, max: u32) -> Vec<(&'static str, String)> {
    AGE_BANDS.iter().filter(|(w, _)| min / w == max / w).map(|&(w, field)| (field, age_band(min, w))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> FhirDate {
        FhirDate::parse(s).unwrap()
    }

    #[test]
    fn parses_partial_dates_and_datetimes() {
        assert_eq!(d("2024"), FhirDate { year: 2024, month: None, day: None });
        assert_eq!(d("2024-03"), FhirDate { year: 2024, month: Some(3), day: None });
        assert_eq!(d("2024-03-05"), FhirDate { year: 2024, month: Some(3), day: Some(5) });
        assert_eq!(d("2024-03-05T23:30:00-05:00"), d("2024-03-05"));
        assert_eq!(d("2024-03-05T04:30:00.123Z"), d("2024-03-05"));
        assert_eq!(d("2024-02-29"), FhirDate { year: 2024, month: Some(2), day: Some(29) });
        for bad in [
            "",
            "24",
            "2024-3",
            "2024-13",
            "2024-00",
            "2023-02-29",
            "2024-04-31",
            "2024-03-05T",
            "2024-03-05T25:00:00Z",
            "2024-03T10:00:00Z",
            "2024-03-05T10:00:00+5",
            "2024-03-05-01",
            "0000",
            "２０２４",
            "2024/03/05",
        ] {
            assert_eq!(FhirDate::parse(bad), Err(InvalidDate), "{bad:?}");
        }
    }

    #[test]
    fn buckets_follow_precision() {
        let all = |s: &str| d(s).buckets().into_iter().map(|(f, v)| format!("{f}:{v}")).collect::<Vec<_>>();
        assert_eq!(all("2024-03-05T23:30:00-05:00"), ["day:2024-03-05", "month:2024-03", "year:2024"]);
        assert_eq!(all("2024-03"), ["month:2024-03", "year:2024"]);
        assert_eq!(all("2024"), ["year:2024"]);
    }

    #[test]
    fn ages_at_birthday_boundaries() {
        assert_eq!(age_range(&d("1967-03-05"), &d("2024-03-04")), Some((56, 56)));
        assert_eq!(age_range(&d("1967-03-05"), &d("2024-03-05")), Some((57, 57)));
        assert_eq!(age_range(&d("2000-02-29"), &d("2021-02-28")), Some((20, 20)));
        assert_eq!(age_range(&d("2000-02-29"), &d("2021-03-01")), Some((21, 21)));
        assert_eq!(age_range(&d("1967"), &d("2024-03-05")), Some((56, 57)));
        assert_eq!(age_range(&d("1967-03"), &d("2024-04")), Some((57, 57)));
        assert_eq!(age_range(&d("2024-03-05"), &d("2024-03-04")), None);
        assert_eq!(age_range(&d("2024-03-05"), &d("2024-03-05")), Some((0, 0)));
    }

    #[test]
    fn age_bands_only_when_the_range_fits() {
        let t = |a, b| age_terms(a, b).into_iter().map(|(f, v)| format!("{f}:{v}")).collect::<Vec<_>>();
        assert_eq!(t(57, 57), ["age1:57", "age5:55-59", "age20:40-59"]);
        assert_eq!(t(59, 60), Vec::<String>::new());
        assert_eq!(t(56, 57), ["age5:55-59", "age20:40-59"]);
        assert_eq!(t(0, 0), ["age1:0", "age5:0-4", "age20:0-19"]);
        assert_eq!(t(19, 20), Vec::<String>::new());
        assert_eq!(t(20, 20), ["age1:20", "age5:20-24", "age20:20-39"]);
    }
}
