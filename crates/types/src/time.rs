//! Time formatting without a calendar dependency: milliseconds since the Unix epoch as an
//! RFC 3339 / FHIR `instant` string in UTC.

/// Formats `ms` since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian, UTC).
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
}

/// (year, month, day) to days since 1970-01-01, the inverse of [`civil_from_days`].
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days in `month` (1–12) of `year`, or `None` for a month out of range.
pub fn days_in_month(year: i64, month: u32) -> Option<u32> {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    Some(match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    })
}

/// Parses an RFC 3339 date-time (`2026-11-22T10:00:00Z`, fractional seconds and a `±HH:MM`
/// offset allowed) into milliseconds since the epoch, UTC. Times before 1970 are refused.
pub fn parse_rfc3339_ms(s: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("`{s}` is not an RFC 3339 date-time: {why}");
    let b = s.as_bytes();
    if b.len() < 20 || !s.is_ascii() {
        return Err(bad("expected YYYY-MM-DDTHH:MM:SS followed by Z or an offset"));
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
        let part = &s[r];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse::<u32>().map_err(|_| bad("a number is out of range"))
        } else {
            Err(bad(&format!("`{part}` is not a number")))
        }
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return Err(bad("expected YYYY-MM-DDTHH:MM:SS"));
    }
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let dim = days_in_month(i64::from(y), mo).ok_or_else(|| bad(&format!("month {mo} is not 01-12")))?;
    if d == 0 || d > dim {
        return Err(bad(&format!("day {d} is not in month {mo}")));
    }
    if h > 23 || mi > 59 || sec > 60 {
        return Err(bad("time of day out of range"));
    }
    let mut i = 19;
    let mut millis = 0u64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad("empty fraction of a second"));
        }
        let frac = &s[start..i.min(start + 3)];
        millis = frac.parse::<u64>().map_err(|_| bad("bad fraction"))? * 10u64.pow(3 - frac.len() as u32);
    }
    let offset_min: i64 = match &s[i..] {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return Err(bad("offset out of range"));
            }
            let v = i64::from(oh * 60 + om);
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return Err(bad("expected Z or an offset ±HH:MM at the end")),
    };
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + sec.min(59)) - offset_min * 60;
    if secs < 0 {
        return Err(bad("times before 1970 are not accepted"));
    }
    Ok(secs as u64 * 1000 + millis)
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day in a century leap year) 12:34:56.789.
        assert_eq!(rfc3339_ms(951_827_696_789), "2000-02-29T12:34:56.789Z");
        // 2026-11-22T00:00:00Z.
        assert_eq!(rfc3339_ms(1_795_305_600_000), "2026-11-22T00:00:00.000Z");
        // 2100-03-01 (2100 is not a leap year).
        assert_eq!(rfc3339_ms(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for ms in [0u64, 951_827_696_789, 1_795_305_600_000, 4_107_542_400_000] {
            assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)), Ok(ms));
        }
        assert_eq!(parse_rfc3339_ms("2026-11-22T01:00:00+01:00"), Ok(1_795_305_600_000));
        assert_eq!(parse_rfc3339_ms("2026-11-21T23:00:00.5-01:00"), Ok(1_795_305_600_500));
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-22 00:00:00",
            "2026-11-22T00:00:00",
            "1969-12-31T23:59:59Z",
            "２０２６-11-22T00:00:00Z",
        ] {
            assert!(parse_rfc3339_ms(bad).is_err(), "{bad}");
        }
    }
}
