//! GS1 identifiers of medicine packs, logistic units and locations: GTIN, serial number
//! (AI 21), batch/lot (AI 10), expiry date (AI 17), SSCC (AI 00), GLN (AI 414) with its
//! extension (AI 254), and national healthcare reimbursement numbers (NHRN, AIs 710–715).
//!
//! Three textual forms are read and written:
//!
//! * **Element strings** (GS1 General Specifications, §3 and §7.8): the human-readable
//!   interpretation `(01)09506000134352(17)201225(10)ABC123(21)12345`, and the raw scanned
//!   form, optionally led by a symbology identifier (`]d2`, `]C1`, `]Q3`, `]e0`), where
//!   fixed-length values follow their AI directly and a variable-length value ends with
//!   GS (ASCII 29, also written `<GS>`) or at the end of the data.
//! * **EPC URIs** (GS1 EPC Tag Data Standard, §6–7): `urn:epc:id:sgtin:…`,
//!   `urn:epc:id:sscc:…`, `urn:epc:id:sgln:…`, and the class-level
//!   `urn:epc:idpat:sgtin:…` and `urn:epc:class:lgtin:…`.
//! * **Digital Link URIs** (GS1 Digital Link standard: URI syntax):
//!   `https://id.gs1.org/01/{gtin}/10/{lot}/21/{serial}?17={expiry}`, on any host.
//!
//! Every parser is total: any `&str` yields a validated [`Gs1Id`] or a [`Gs1Error`] naming
//! the field and the rule it breaks. Byte offsets in errors refer to the input as given.
//!
//! The human-readable form cannot carry a variable-length value containing `(` followed by
//! two to four digits and `)`, which reads as the next AI; likewise the text `<GS>` always
//! reads as a separator in the raw form.

use std::fmt::{self, Write as _};

/// The group separator (ASCII 29) that ends a variable-length value in the raw form.
pub const GS: char = '\u{1d}';
/// Maximum length of the variable-length values supported here (AIs 10, 21, 254, 710–715).
pub const MAX_VAR_LEN: usize = 20;

const CSET82: &str = "GS1 AI encodable character set 82";
const DIGITS_ONLY: &str = "digits only";
const SYMBOLOGY_IDS: [&str; 4] = ["]d2", "]C1", "]Q3", "]e0"];

/// The GS1 mod-10 check digit of a digit string (weights 3, 1, 3, … from the right).
///
/// `None` if the input is empty or holds anything but ASCII digits.
pub fn check_digit(digits_without_check: &str) -> Option<u8> {
    if digits_without_check.is_empty() {
        return None;
    }
    let mut sum = 0u8;
    for (i, b) in digits_without_check.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return None;
        }
        let weight = if i % 2 == 0 { 3 } else { 1 };
        sum = (sum + weight * (b - b'0')) % 10;
    }
    Some((10 - sum) % 10)
}

/// Whether a whole digit string (at least two ASCII digits) ends with its GS1 check digit.
pub fn has_valid_check_digit(s: &str) -> bool {
    if s.len() < 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    match (s.get(..s.len() - 1), s.bytes().last()) {
        (Some(body), Some(last)) => check_digit(body) == Some(last.wrapping_sub(b'0')),
        _ => false,
    }
}

/// Whether `c` belongs to GS1 AI encodable character set 82.
pub fn is_cset82(c: char) -> bool {
    matches!(c,
        '!' | '"' | '%' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | '-' | '.' | '/'
        | '0'..='9' | ':' | ';' | '<' | '=' | '>' | '?' | 'A'..='Z' | '_' | 'a'..='z')
}

/// Why a GS1 identifier was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gs1Error {
    /// Nothing to parse.
    Empty { what: &'static str },
    /// The last digit is not the GS1 mod-10 check digit of the others.
    CheckDigit { field: &'static str, value: String, expected: u8, found: u8 },
    /// A value of the wrong length (`len` counts characters).
    Length { field: &'static str, len: usize, rule: &'static str },
    /// A character outside the field's set (`pos`: zero-based character index in the value).
    Charset { field: &'static str, ch: char, pos: usize, rule: &'static str },
    /// A YYMMDD date that does not exist.
    Date { field: &'static str, value: String, reason: String },
    /// An application identifier that is unknown or not supported here.
    UnknownAi { ai: String, pos: usize },
    /// A variable-length value in the raw form ran past its maximum without a GS.
    Unterminated { ai: &'static str, pos: usize },
    /// A malformed element string, URI or escape.
    Syntax { what: &'static str, detail: String },
    /// A required part is absent.
    Missing { field: &'static str },
    /// An AI given twice where the syntax allows it once.
    Duplicate { ai: &'static str },
    /// An AI given twice with different values.
    Conflict { ai: &'static str, first: String, second: String },
    /// A GS1 company prefix length outside 6..=12.
    PrefixLength { len: usize },
}

impl fmt::Display for Gs1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty { what } => write!(f, "{what}: input is empty"),
            Self::CheckDigit { field, value, expected, found } => write!(
                f,
                "{field} `{}`: check digit is {found}, expected {expected} (GS1 mod-10)",
                value.escape_debug()
            ),
            Self::Length { field, len, rule } => write!(f, "{field}: {len} characters, {rule}"),
            Self::Charset { field, ch, pos, rule } => {
                write!(f, "{field}: character `{}` at index {pos} is not allowed ({rule})", ch.escape_debug())
            }
            Self::Date { field, value, reason } => {
                write!(f, "{field} `{}`: {reason}", value.escape_debug())
            }
            Self::UnknownAi { ai, pos } => {
                write!(f, "unknown or unsupported application identifier `{}` at byte {pos}", ai.escape_debug())
            }
            Self::Unterminated { ai, pos } => write!(
                f,
                "AI ({ai}) at byte {pos}: value runs past {MAX_VAR_LEN} characters; \
                 a variable-length value must end with GS (ASCII 29) when data follows"
            ),
            Self::Syntax { what, detail } => write!(f, "{what}: {detail}"),
            Self::Missing { field } => write!(f, "{field} is missing"),
            Self::Duplicate { ai } => write!(f, "AI ({ai}) is given more than once"),
            Self::Conflict { ai, first, second } => write!(
                f,
                "AI ({ai}) is given twice with different values `{}` and `{}`",
                first.escape_debug(),
                second.escape_debug()
            ),
            Self::PrefixLength { len } => {
                write!(f, "GS1 company prefix length {len} is outside 6..=12")
            }
        }
    }
}

impl std::error::Error for Gs1Error {}

fn syntax(what: &'static str, detail: impl Into<String>) -> Gs1Error {
    Gs1Error::Syntax { what, detail: detail.into() }
}

fn digits_only(field: &'static str, s: &str) -> Result<(), Gs1Error> {
    match s.chars().enumerate().find(|&(_, c)| !c.is_ascii_digit()) {
        Some((pos, ch)) => Err(Gs1Error::Charset { field, ch, pos, rule: DIGITS_ONLY }),
        None => Ok(()),
    }
}

/// Verifies the check digit of a string already known to be ASCII digits.
fn verify_check_digit(field: &'static str, s: &str) -> Result<(), Gs1Error> {
    let body = s.get(..s.len().saturating_sub(1)).unwrap_or("");
    match (check_digit(body), s.bytes().last()) {
        (Some(expected), Some(last)) if expected == last.wrapping_sub(b'0') => Ok(()),
        (Some(expected), Some(last)) => {
            Err(Gs1Error::CheckDigit { field, value: s.to_string(), expected, found: last.wrapping_sub(b'0') })
        }
        _ => Err(Gs1Error::Length { field, len: s.len(), rule: "too short for a check digit" }),
    }
}

fn fixed_digits(field: &'static str, s: &str, len: usize, rule: &'static str) -> Result<String, Gs1Error> {
    digits_only(field, s)?;
    if s.len() != len {
        return Err(Gs1Error::Length { field, len: s.len(), rule });
    }
    verify_check_digit(field, s)?;
    Ok(s.to_string())
}

fn cset82_value(field: &'static str, s: &str) -> Result<String, Gs1Error> {
    if let Some((pos, ch)) = s.chars().enumerate().find(|&(_, c)| !is_cset82(c)) {
        return Err(Gs1Error::Charset { field, ch, pos, rule: CSET82 });
    }
    let len = s.chars().count();
    if len == 0 {
        return Err(Gs1Error::Length { field, len, rule: "below the minimum of 1" });
    }
    if len > MAX_VAR_LEN {
        return Err(Gs1Error::Length { field, len, rule: "above the maximum of 20" });
    }
    Ok(s.to_string())
}

/// Validates a GTIN-8, -12, -13 or -14 and returns its 14-digit form (zero-padded).
pub fn validate_gtin(s: &str) -> Result<String, Gs1Error> {
    digits_only("gtin", s)?;
    if !matches!(s.len(), 8 | 12 | 13 | 14) {
        return Err(Gs1Error::Length { field: "gtin", len: s.len(), rule: "expected 8, 12, 13 or 14 digits" });
    }
    verify_check_digit("gtin", s)?;
    Ok(format!("{s:0>14}"))
}

/// Validates a serial number (AI 21): 1 to 20 characters of set 82.
pub fn validate_serial(s: &str) -> Result<String, Gs1Error> {
    cset82_value("serial", s)
}

/// Validates a batch/lot number (AI 10): 1 to 20 characters of set 82.
pub fn validate_lot(s: &str) -> Result<String, Gs1Error> {
    cset82_value("lot", s)
}

/// Validates a GLN extension component (AI 254): 1 to 20 characters of set 82.
pub fn validate_gln_extension(s: &str) -> Result<String, Gs1Error> {
    cset82_value("gln extension", s)
}

/// Validates a national healthcare reimbursement number (AIs 710–715): 1 to 20 characters of set 82.
pub fn validate_nhrn(s: &str) -> Result<String, Gs1Error> {
    cset82_value("nhrn", s)
}

/// Validates an 18-digit SSCC (AI 00) with its check digit.
pub fn validate_sscc(s: &str) -> Result<String, Gs1Error> {
    fixed_digits("sscc", s, 18, "expected exactly 18 digits")
}

/// Validates a 13-digit GLN (AI 414) with its check digit.
pub fn validate_gln(s: &str) -> Result<String, Gs1Error> {
    fixed_digits("gln", s, 13, "expected exactly 13 digits")
}

/// Validates an expiry date (AI 17) as YYMMDD, year 20YY; day `00` means the end of the month.
pub fn validate_expiry(s: &str) -> Result<String, Gs1Error> {
    const FIELD: &str = "expiry";
    digits_only(FIELD, s)?;
    if s.len() != 6 {
        return Err(Gs1Error::Length { field: FIELD, len: s.len(), rule: "expected exactly 6 digits (YYMMDD)" });
    }
    let two = |at: usize| s.get(at..at + 2).and_then(|t| t.parse::<u32>().ok()).unwrap_or(0);
    let (yy, mm, dd) = (two(0), two(2), two(4));
    let date_err = |reason: String| Gs1Error::Date { field: FIELD, value: s.to_string(), reason };
    if !(1..=12).contains(&mm) {
        return Err(date_err(format!("month {mm:02} is outside 01..12")));
    }
    let year = 2000 + yy;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let last = match mm {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if dd > last {
        return Err(date_err(format!("day {dd:02} is past the end of {year}-{mm:02} ({last} days)")));
    }
    Ok(s.to_string())
}

fn check_prefix_len(len: usize) -> Result<(), Gs1Error> {
    if (6..=12).contains(&len) {
        Ok(())
    } else {
        Err(Gs1Error::PrefixLength { len })
    }
}

/// A GS1 identifier with the attributes that travel with it. Digit fields hold the full key
/// including its check digit; `company_prefix_len` is known only from an EPC URI (or master data).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Gs1Id {
    /// GTIN-14 (AI 01).
    pub gtin: Option<String>,
    /// Serial number (AI 21).
    pub serial: Option<String>,
    /// Batch/lot number (AI 10).
    pub lot: Option<String>,
    /// Expiry date YYMMDD (AI 17).
    pub expiry: Option<String>,
    /// 18-digit SSCC (AI 00).
    pub sscc: Option<String>,
    /// 13-digit GLN (AI 414).
    pub gln: Option<String>,
    /// GLN extension component (AI 254).
    pub gln_extension: Option<String>,
    /// National healthcare reimbursement numbers as (AI `710`..`715`, value), sorted by AI.
    pub nhrn: Vec<(String, String)>,
    /// Digits of the GS1 company prefix (6..=12), when known.
    pub company_prefix_len: Option<usize>,
}

#[derive(Clone, Copy)]
enum Field {
    Sscc,
    Gtin,
    Lot,
    Expiry,
    Serial,
    GlnExt,
    Gln,
    Nhrn,
}

/// A supported AI; `fixed` is the value length of a fixed-length AI.
struct Ai {
    code: &'static str,
    field: Field,
    fixed: Option<usize>,
}

const AIS: &[Ai] = &[
    Ai { code: "00", field: Field::Sscc, fixed: Some(18) },
    Ai { code: "01", field: Field::Gtin, fixed: Some(14) },
    Ai { code: "10", field: Field::Lot, fixed: None },
    Ai { code: "17", field: Field::Expiry, fixed: Some(6) },
    Ai { code: "21", field: Field::Serial, fixed: None },
    Ai { code: "254", field: Field::GlnExt, fixed: None },
    Ai { code: "414", field: Field::Gln, fixed: Some(13) },
    Ai { code: "710", field: Field::Nhrn, fixed: None },
    Ai { code: "711", field: Field::Nhrn, fixed: None },
    Ai { code: "712", field: Field::Nhrn, fixed: None },
    Ai { code: "713", field: Field::Nhrn, fixed: None },
    Ai { code: "714", field: Field::Nhrn, fixed: None },
    Ai { code: "715", field: Field::Nhrn, fixed: None },
];

fn lookup_ai(code: &str) -> Option<&'static Ai> {
    AIS.iter().find(|a| a.code == code)
}

/// Validates `value` for `ai` and records it; a repeat must carry the same value.
fn apply(id: &mut Gs1Id, ai: &'static Ai, value: &str) -> Result<(), Gs1Error> {
    let (slot, v) = match ai.field {
        Field::Gtin => (&mut id.gtin, fixed_digits("gtin", value, 14, "expected exactly 14 digits")?),
        Field::Expiry => (&mut id.expiry, validate_expiry(value)?),
        Field::Lot => (&mut id.lot, validate_lot(value)?),
        Field::Serial => (&mut id.serial, validate_serial(value)?),
        Field::Sscc => (&mut id.sscc, validate_sscc(value)?),
        Field::Gln => (&mut id.gln, validate_gln(value)?),
        Field::GlnExt => (&mut id.gln_extension, validate_gln_extension(value)?),
        Field::Nhrn => {
            let v = validate_nhrn(value)?;
            let prev = id.nhrn.iter().find(|(a, _)| a == ai.code).map(|(_, p)| p.clone());
            return match prev {
                Some(first) if first != v => Err(Gs1Error::Conflict { ai: ai.code, first, second: v }),
                Some(_) => Ok(()),
                None => {
                    id.nhrn.push((ai.code.to_string(), v));
                    Ok(())
                }
            };
        }
    };
    match slot {
        Some(first) if *first != v => Err(Gs1Error::Conflict { ai: ai.code, first: first.clone(), second: v }),
        Some(_) => Ok(()),
        None => {
            *slot = Some(v);
            Ok(())
        }
    }
}

/// Checks the AI dependencies (attributes need their key) and canonicalises the NHRN order.
fn finish(mut id: Gs1Id, what: &'static str) -> Result<Gs1Id, Gs1Error> {
    if id == Gs1Id::default() {
        return Err(Gs1Error::Empty { what });
    }
    let needs_gtin = id.serial.is_some() || id.lot.is_some() || id.expiry.is_some() || !id.nhrn.is_empty();
    if needs_gtin && id.gtin.is_none() {
        return Err(Gs1Error::Missing { field: "gtin" });
    }
    if id.gln_extension.is_some() && id.gln.is_none() {
        return Err(Gs1Error::Missing { field: "gln" });
    }
    id.nhrn.sort();
    Ok(id)
}

/// Byte offset of `sub` within `s` (`sub` must be a slice of `s`).
fn offset_in(s: &str, sub: &str) -> usize {
    (sub.as_ptr() as usize).wrapping_sub(s.as_ptr() as usize)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.get(..prefix.len()).filter(|head| head.eq_ignore_ascii_case(prefix)).and(s.get(prefix.len()..))
}

/// Parses a GS1 element string, human-readable (`(01)…(21)…`) or raw (AIs concatenated,
/// GS after variable-length values, optional symbology identifier). AIs may come in any order.
pub fn parse_element_string(s: &str) -> Result<Gs1Id, Gs1Error> {
    let s = s.trim_end();
    if s.is_empty() {
        return Err(Gs1Error::Empty { what: "element string" });
    }
    if s.starts_with('(') {
        parse_hri(s)
    } else {
        parse_raw(s)
    }
}

/// Whether `s` starts with `(`, two to four digits and `)`.
fn starts_ai_paren(s: &str) -> bool {
    let b = s.as_bytes();
    let n = b.iter().skip(1).take_while(|x| x.is_ascii_digit()).count();
    b.first() == Some(&b'(') && (2..=4).contains(&n) && b.get(1 + n) == Some(&b')')
}

fn parse_hri(s: &str) -> Result<Gs1Id, Gs1Error> {
    const WHAT: &str = "element string";
    let mut id = Gs1Id::default();
    let mut pos = 0;
    while let Some(rest) = s.get(pos..).filter(|r| !r.is_empty()) {
        let Some(inner) = rest.strip_prefix('(') else {
            let c = rest.chars().next().unwrap_or(' ');
            return Err(syntax(WHAT, format!("expected `(` at byte {pos}, found `{}`", c.escape_debug())));
        };
        let Some(close) = inner.find(')') else {
            return Err(syntax(WHAT, format!("`(` at byte {pos} is never closed")));
        };
        let code = inner.get(..close).unwrap_or("");
        if !(2..=4).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax(
                WHAT,
                format!("`({})` at byte {pos} is not an application identifier", code.escape_debug()),
            ));
        }
        let ai = lookup_ai(code).ok_or_else(|| Gs1Error::UnknownAi { ai: code.to_string(), pos })?;
        let start = pos + close + 2;
        let region = s.get(start..).unwrap_or("");
        let len = region
            .char_indices()
            .find(|&(i, c)| c == '(' && starts_ai_paren(region.get(i..).unwrap_or("")))
            .map_or(region.len(), |(i, _)| i);
        apply(&mut id, ai, region.get(..len).unwrap_or(""))?;
        pos = start + len;
    }
    finish(id, WHAT)
}

/// Length of a separator (GS or the text `<GS>`) at the start of `s`.
fn separator_len(s: &str) -> Option<usize> {
    ["\u{1d}", "<GS>"].into_iter().find(|sep| s.starts_with(sep)).map(str::len)
}

fn parse_raw(s: &str) -> Result<Gs1Id, Gs1Error> {
    const WHAT: &str = "element string";
    let mut pos = 0;
    if s.starts_with(']') {
        if !SYMBOLOGY_IDS.iter().any(|p| s.starts_with(p)) {
            let head: String = s.chars().take(3).collect();
            return Err(syntax(
                WHAT,
                format!("unsupported symbology identifier `{}`; expected ]d2, ]C1, ]Q3 or ]e0", head.escape_debug()),
            ));
        }
        pos = 3;
    }
    let mut id = Gs1Id::default();
    while let Some(rest) = s.get(pos..).filter(|r| !r.is_empty()) {
        if let Some(n) = separator_len(rest) {
            pos += n;
            continue;
        }
        let ai = (2..=4)
            .find_map(|n| rest.get(..n).and_then(lookup_ai))
            .ok_or_else(|| Gs1Error::UnknownAi { ai: rest.chars().take(2).collect(), pos })?;
        let start = pos + ai.code.len();
        let region = s.get(start..).unwrap_or("");
        let limit = ai.fixed.unwrap_or(MAX_VAR_LEN);
        let mut end = region.len();
        for (count, (i, _)) in region.char_indices().enumerate() {
            if separator_len(region.get(i..).unwrap_or("")).is_some() {
                end = i;
                break;
            }
            if count == limit {
                if ai.fixed.is_none() {
                    return Err(Gs1Error::Unterminated { ai: ai.code, pos });
                }
                end = i;
                break;
            }
        }
        apply(&mut id, ai, region.get(..end).unwrap_or(""))?;
        pos = start + end;
    }
    finish(id, WHAT)
}

fn hex_value(b: &u8) -> Option<u8> {
    char::from(*b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Decodes `%HH` escapes; the result must be UTF-8.
fn percent_decode(what: &'static str, s: &str) -> Result<String, Gs1Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            match (bytes.get(i + 1).and_then(hex_value), bytes.get(i + 2).and_then(hex_value)) {
                (Some(hi), Some(lo)) => out.push(hi * 16 + lo),
                _ => return Err(syntax(what, format!("invalid percent-escape at byte {i} of `{}`", s.escape_debug()))),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| syntax(what, format!("`{}` does not decode to UTF-8", s.escape_debug())))
}

fn percent_encode(s: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if keep(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// EPC URI escaping (Tag Data Standard): `" % & / < > ?` become `%HH`.
fn epc_escape(s: &str) -> String {
    percent_encode(s, |c| is_cset82(c) && !matches!(c, '"' | '%' | '&' | '/' | '<' | '>' | '?'))
}

/// Digital Link escaping: everything but RFC 3986 unreserved characters becomes `%HH`.
fn link_escape(s: &str) -> String {
    percent_encode(s, |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
}

const EPC: &str = "EPC URI";

/// Rebuilds a key from an EPC company prefix and reference: the first `lead` reference digits
/// (indicator or extension digit), the prefix, the remaining digits, and the check digit.
fn epc_key(prefix: &str, reference: &str, lead: usize, total: usize, rule: &'static str) -> Result<String, Gs1Error> {
    digits_only("company prefix", prefix)?;
    digits_only("reference", reference)?;
    check_prefix_len(prefix.len())?;
    let len = prefix.len() + reference.len();
    if len != total {
        return Err(Gs1Error::Length { field: "company prefix + reference", len, rule });
    }
    let body = format!("{}{prefix}{}", reference.get(..lead).unwrap_or(""), reference.get(lead..).unwrap_or(""));
    Ok(format!("{body}{}", check_digit(&body).unwrap_or(0)))
}

/// Splits a key (check digit last) into the EPC company prefix and reference, the first
/// `lead` digits moving to the front of the reference.
fn epc_split(key: &str, prefix_len: usize, lead: usize) -> Result<(String, String), Gs1Error> {
    check_prefix_len(prefix_len)?;
    let body = key.get(..key.len().saturating_sub(1)).unwrap_or("");
    match (body.get(..lead), body.get(lead..lead + prefix_len), body.get(lead + prefix_len..)) {
        (Some(head), Some(prefix), Some(tail)) => Ok((prefix.to_string(), format!("{head}{tail}"))),
        _ => Err(Gs1Error::PrefixLength { len: prefix_len }),
    }
}

/// Parses an EPC pure-identity URI (SGTIN, SSCC, SGLN) or a class-level SGTIN pattern / LGTIN.
pub fn parse_epc_uri(s: &str) -> Result<Gs1Id, Gs1Error> {
    const SCHEMES: [&str; 5] =
        ["urn:epc:id:sgtin:", "urn:epc:idpat:sgtin:", "urn:epc:class:lgtin:", "urn:epc:id:sscc:", "urn:epc:id:sgln:"];
    let s = s.trim_end();
    if s.is_empty() {
        return Err(Gs1Error::Empty { what: EPC });
    }
    let Some((scheme, body)) = SCHEMES.iter().find_map(|p| strip_prefix_ci(s, p).map(|b| (*p, b))) else {
        let head: String = s.chars().take(24).collect();
        let detail = format!("`{}` is not a supported scheme ({})", head.escape_debug(), SCHEMES.join(", "));
        return Err(syntax(EPC, detail));
    };
    let mut parts = body.splitn(3, '.');
    let (prefix, reference, rest) = (parts.next().unwrap_or(""), parts.next(), parts.next());
    let shape = |expected: &str| syntax(EPC, format!("expected {scheme}{expected}, found `{}`", s.escape_debug()));
    let mut id = Gs1Id { company_prefix_len: Some(prefix.len()), ..Gs1Id::default() };
    if scheme == "urn:epc:id:sscc:" {
        let (Some(reference), None) = (reference, rest) else { return Err(shape("CompanyPrefix.SerialReference")) };
        id.sscc = Some(epc_key(prefix, reference, 1, 17, "expected 17 digits in total (SSCC)")?);
    } else if scheme == "urn:epc:id:sgln:" {
        let (Some(reference), Some(ext)) = (reference, rest) else {
            return Err(shape("CompanyPrefix.LocationReference.Extension"));
        };
        id.gln = Some(epc_key(prefix, reference, 0, 12, "expected 12 digits in total (SGLN)")?);
        let ext = percent_decode(EPC, ext)?;
        if ext != "0" {
            id.gln_extension = Some(validate_gln_extension(&ext)?);
        }
    } else {
        let (Some(reference), Some(rest)) = (reference, rest) else { return Err(shape("CompanyPrefix.ItemRef.X")) };
        id.gtin = Some(epc_key(prefix, reference, 1, 13, "expected 13 digits in total (GTIN)")?);
        match scheme {
            "urn:epc:id:sgtin:" => id.serial = Some(validate_serial(&percent_decode(EPC, rest)?)?),
            "urn:epc:class:lgtin:" => id.lot = Some(validate_lot(&percent_decode(EPC, rest)?)?),
            _ if rest != "*" => return Err(shape("CompanyPrefix.ItemRef.* (an item-level pattern)")),
            _ => {}
        }
    }
    finish(id, EPC)
}

/// The SGTIN EPC URI of a GTIN and serial, given the company prefix length.
pub fn sgtin_uri(gtin14: &str, serial: &str, prefix_len: usize) -> Result<String, Gs1Error> {
    let (prefix, item) = epc_split(&validate_gtin(gtin14)?, prefix_len, 1)?;
    Ok(format!("urn:epc:id:sgtin:{prefix}.{item}.{}", epc_escape(&validate_serial(serial)?)))
}

/// The LGTIN EPC class URI of a GTIN and lot, given the company prefix length.
pub fn lgtin_uri(gtin14: &str, lot: &str, prefix_len: usize) -> Result<String, Gs1Error> {
    let (prefix, item) = epc_split(&validate_gtin(gtin14)?, prefix_len, 1)?;
    Ok(format!("urn:epc:class:lgtin:{prefix}.{item}.{}", epc_escape(&validate_lot(lot)?)))
}

/// The SSCC EPC URI of an 18-digit SSCC, given the company prefix length.
pub fn sscc_uri(sscc: &str, prefix_len: usize) -> Result<String, Gs1Error> {
    let (prefix, serial_ref) = epc_split(&validate_sscc(sscc)?, prefix_len, 1)?;
    Ok(format!("urn:epc:id:sscc:{prefix}.{serial_ref}"))
}

/// The SGLN EPC URI of a 13-digit GLN and optional extension (`0` when absent).
pub fn sgln_uri(gln: &str, extension: Option<&str>, prefix_len: usize) -> Result<String, Gs1Error> {
    let (prefix, location) = epc_split(&validate_gln(gln)?, prefix_len, 0)?;
    let ext = extension.map(validate_gln_extension).transpose()?.map_or_else(|| "0".into(), |e| epc_escape(&e));
    Ok(format!("urn:epc:id:sgln:{prefix}.{location}.{ext}"))
}

/// Maps Digital Link short names to AIs.
fn link_key(k: &str) -> &str {
    match k {
        "gtin" => "01",
        "sscc" => "00",
        "gln" => "414",
        "cpv" => "22",
        "lot" => "10",
        "ser" => "21",
        "exp" => "17",
        other => other,
    }
}

/// Parses a GS1 Digital Link URI on any host: primary key `01`, `00` or `414` in the path
/// (after an optional path prefix), qualifiers `10` then `21` (or `254` after `414`), and
/// `17`/`exp` and `710`–`715` as query parameters. Other non-numeric parameters are ignored.
pub fn parse_digital_link(s: &str) -> Result<Gs1Id, Gs1Error> {
    const WHAT: &str = "digital link";
    let s = s.trim_end();
    if s.is_empty() {
        return Err(Gs1Error::Empty { what: WHAT });
    }
    let rest = strip_prefix_ci(s, "https://")
        .or_else(|| strip_prefix_ci(s, "http://"))
        .ok_or_else(|| syntax(WHAT, "expected an http:// or https:// URI"))?;
    let rest = rest.split('#').next().unwrap_or("");
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, path) = match before_query.find('/') {
        Some(i) => (before_query.get(..i).unwrap_or(""), before_query.get(i..).unwrap_or("")),
        None => (before_query, ""),
    };
    if host.is_empty() {
        return Err(syntax(WHAT, "missing host"));
    }
    let segments: Vec<&str> = path.strip_suffix('/').unwrap_or(path).split('/').skip(1).collect();
    let start = segments
        .iter()
        .position(|seg| matches!(link_key(seg), "01" | "00" | "414"))
        .ok_or_else(|| syntax(WHAT, "no primary key (01, 00 or 414) in the path"))?;
    let pairs = segments.get(start..).unwrap_or(&[]);
    if pairs.len() % 2 != 0 {
        let last = pairs.last().copied().unwrap_or("");
        return Err(syntax(WHAT, format!("path segment `{}` has no value", last.escape_debug())));
    }
    let mut id = Gs1Id::default();
    let mut seen: Vec<&'static str> = Vec::new();
    let mut primary = "";
    for pair in pairs.chunks(2) {
        let (key, raw) = (pair.first().copied().unwrap_or(""), pair.get(1).copied().unwrap_or(""));
        let code = link_key(key);
        if code == "22" {
            return Err(syntax(WHAT, "consumer product variant (AI 22) is not supported"));
        }
        let ai = lookup_ai(code).ok_or_else(|| Gs1Error::UnknownAi { ai: key.to_string(), pos: offset_in(s, key) })?;
        let allowed: &[&str] = match primary {
            "" => &["01", "00", "414"],
            "01" => &["10", "21"],
            "414" => &["254"],
            _ => &[],
        };
        if seen.contains(&ai.code) {
            return Err(Gs1Error::Duplicate { ai: ai.code });
        }
        let Some(rank) = allowed.iter().position(|a| *a == ai.code) else {
            return Err(syntax(
                WHAT,
                format!(
                    "`/{}/` cannot follow AI ({primary}); path order is 01, 22, 10, 21 (or 414, 254)",
                    key.escape_debug()
                ),
            ));
        };
        if seen.iter().any(|prev| allowed.iter().position(|a| a == prev).is_some_and(|r| r > rank)) {
            return Err(syntax(WHAT, format!("qualifier ({}) is out of order; path order is 01, 22, 10, 21", ai.code)));
        }
        let mut value = percent_decode(WHAT, raw)?;
        if matches!(ai.field, Field::Gtin) {
            value = validate_gtin(&value)?;
        }
        apply(&mut id, ai, &value)?;
        if primary.is_empty() {
            primary = ai.code;
        }
        seen.push(ai.code);
    }
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (key, raw) = param.split_once('=').unwrap_or((param, ""));
        let Some(ai) = lookup_ai(link_key(key)) else {
            if key.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Gs1Error::UnknownAi { ai: key.to_string(), pos: offset_in(s, key) });
            }
            continue;
        };
        if !matches!(ai.field, Field::Expiry | Field::Nhrn) {
            return Err(syntax(WHAT, format!("AI ({}) belongs in the path, not the query", ai.code)));
        }
        if seen.contains(&ai.code) {
            return Err(Gs1Error::Duplicate { ai: ai.code });
        }
        seen.push(ai.code);
        apply(&mut id, ai, &percent_decode(WHAT, raw)?)?;
    }
    finish(id, WHAT)
}

/// Parses any supported form: `urn:epc:` → EPC URI, `http(s)://` → Digital Link, else element string.
pub fn parse_any(s: &str) -> Result<Gs1Id, Gs1Error> {
    if strip_prefix_ci(s, "urn:epc:").is_some() {
        parse_epc_uri(s)
    } else if strip_prefix_ci(s, "https://").is_some() || strip_prefix_ci(s, "http://").is_some() {
        parse_digital_link(s)
    } else {
        parse_element_string(s)
    }
}

impl Gs1Id {
    /// (AI, value) pairs in element-string order: 01, 17, 10, 21, 710–715, 00, 414, 254.
    fn pairs(&self) -> Vec<(&str, &str)> {
        let mut out = Vec::new();
        for (ai, v) in [("01", &self.gtin), ("17", &self.expiry), ("10", &self.lot), ("21", &self.serial)] {
            out.extend(v.as_deref().map(|v| (ai, v)));
        }
        out.extend(self.nhrn.iter().map(|(a, v)| (a.as_str(), v.as_str())));
        for (ai, v) in [("00", &self.sscc), ("414", &self.gln), ("254", &self.gln_extension)] {
            out.extend(v.as_deref().map(|v| (ai, v)));
        }
        out
    }

    /// Checks every field and the AI dependencies as the parsers do.
    pub fn validate(&self) -> Result<(), Gs1Error> {
        let mut probe = Gs1Id::default();
        for (code, v) in self.pairs() {
            let ai = lookup_ai(code).ok_or_else(|| Gs1Error::UnknownAi { ai: code.to_string(), pos: 0 })?;
            apply(&mut probe, ai, v)?;
        }
        if let Some(len) = self.company_prefix_len {
            check_prefix_len(len)?;
        }
        finish(probe, "gs1 id").map(|_| ())
    }

    /// The human-readable element string, e.g. `(01)09506000134352(17)201225(10)ABC123(21)12345`.
    pub fn element_string(&self) -> String {
        self.pairs().iter().map(|(ai, v)| format!("({ai}){v}")).collect()
    }

    /// The raw element string: fixed-length AIs (01, 17, 00, 414) first, then the
    /// variable-length ones (10, 21, 710–715, 254), each but the last followed by GS.
    pub fn raw_element_string(&self) -> String {
        let is_var = |ai: &str| lookup_ai(ai).is_none_or(|a| a.fixed.is_none());
        let pairs = self.pairs();
        let (var, fixed): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(ai, _)| is_var(ai));
        let mut out: String = fixed.iter().map(|(ai, v)| format!("{ai}{v}")).collect();
        for (i, (ai, v)) in var.iter().enumerate() {
            out.push_str(ai);
            out.push_str(v);
            if i + 1 < var.len() {
                out.push(GS);
            }
        }
        out
    }

    /// The Digital Link URI on `id.gs1.org` for one primary key: the GTIN (with lot, serial,
    /// expiry and NHRNs), else the SSCC, else the GLN (with extension). `None` without a key.
    pub fn digital_link(&self) -> Option<String> {
        let mut out = String::from("https://id.gs1.org");
        if let Some(gtin) = &self.gtin {
            let _ = write!(out, "/01/{gtin}");
            if let Some(lot) = &self.lot {
                let _ = write!(out, "/10/{}", link_escape(lot));
            }
            if let Some(serial) = &self.serial {
                let _ = write!(out, "/21/{}", link_escape(serial));
            }
            let query: Vec<String> = self
                .expiry
                .iter()
                .map(|e| format!("17={e}"))
                .chain(self.nhrn.iter().map(|(ai, v)| format!("{ai}={}", link_escape(v))))
                .collect();
            if !query.is_empty() {
                let _ = write!(out, "?{}", query.join("&"));
            }
        } else if let Some(sscc) = &self.sscc {
            let _ = write!(out, "/00/{sscc}");
        } else if let Some(gln) = &self.gln {
            let _ = write!(out, "/414/{gln}");
            if let Some(ext) = &self.gln_extension {
                let _ = write!(out, "/254/{}", link_escape(ext));
            }
        } else {
            return None;
        }
        Some(out)
    }

    /// The EPC URI: SGTIN for GTIN + serial, else SSCC, else SGLN, else LGTIN for GTIN + lot;
    /// `Ok(None)` when none applies. The prefix length is the argument, else the stored one.
    pub fn epc_uri(&self, company_prefix_len: Option<usize>) -> Result<Option<String>, Gs1Error> {
        let len = || {
            company_prefix_len.or(self.company_prefix_len).ok_or(Gs1Error::Missing { field: "company prefix length" })
        };
        let uri = match (&self.gtin, &self.serial, &self.lot, &self.sscc, &self.gln) {
            (Some(gtin), Some(serial), ..) => sgtin_uri(gtin, serial, len()?)?,
            (_, _, _, Some(sscc), _) => sscc_uri(sscc, len()?)?,
            (.., Some(gln)) => sgln_uri(gln, self.gln_extension.as_deref(), len()?)?,
            (Some(gtin), None, Some(lot), ..) => lgtin_uri(gtin, lot, len()?)?,
            _ => return Ok(None),
        };
        Ok(Some(uri))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL82: &str = r#"!"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"#;

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
        fn digits(&mut self, n: usize) -> String {
            (0..n).map(|_| char::from(b'0' + self.below(10) as u8)).collect()
        }
        fn cset82(&mut self, n: usize) -> String {
            (0..n).map(|_| ALL82.as_bytes()[self.below(82)] as char).collect()
        }
        fn var(&mut self, digits: bool) -> String {
            let n = 1 + self.below(MAX_VAR_LEN);
            if digits {
                self.digits(n)
            } else {
                self.cset82(n)
            }
        }
    }

    fn with_check_digit(body: &str) -> String {
        format!("{body}{}", check_digit(body).unwrap())
    }

    #[test]
    fn check_digit_vectors() {
        for v in ["02345673", "416000336108", "1234567890128", "12345678901231", "123456789012345675"] {
            assert!(has_valid_check_digit(v), "{v}");
            let (body, last) = v.split_at(v.len() - 1);
            assert_eq!(check_digit(body), Some(last.parse().unwrap()), "{v}");
            let bumped = (last.parse::<u8>().unwrap() + 1) % 10;
            assert!(!has_valid_check_digit(&format!("{body}{bumped}")), "{v} with last digit {bumped}");
        }
        for bad in ["", "7", "12a4", "１２", "0234567 3"] {
            assert!(!has_valid_check_digit(bad), "{bad:?}");
        }
        assert_eq!(check_digit(""), None);
        assert_eq!(check_digit("12x"), None);
    }

    #[test]
    fn charset_82_has_82_ascii_characters() {
        assert_eq!(ALL82.len(), 82);
        assert!(ALL82.chars().all(is_cset82));
        assert_eq!((0u8..128).filter(|b| is_cset82(char::from(*b))).count(), 82);
        assert!(!is_cset82(' ') && !is_cset82('#') && !is_cset82('é') && !is_cset82(GS));
    }

    #[test]
    fn short_gtins_are_padded() {
        assert_eq!(validate_gtin("02345673").unwrap(), "00000002345673");
        assert_eq!(validate_gtin("416000336108").unwrap(), "00416000336108");
        assert_eq!(validate_gtin("1234567890128").unwrap(), "01234567890128");
        assert_eq!(validate_gtin("12345678901231").unwrap(), "12345678901231");
    }

    #[test]
    fn sgtin_three_forms_agree() {
        let epc = "urn:epc:id:sgtin:0614141.107346.2017";
        let es = "(01)10614141073464(21)2017";
        let dl = "https://id.gs1.org/01/10614141073464/21/2017";
        let a = parse_epc_uri(epc).unwrap();
        let b = parse_element_string(es).unwrap();
        let c = parse_digital_link(dl).unwrap();
        assert_eq!(a.gtin.as_deref(), Some("10614141073464"));
        assert_eq!(a.serial.as_deref(), Some("2017"));
        assert_eq!(a.company_prefix_len, Some(7));
        assert_eq!(Gs1Id { company_prefix_len: None, ..a.clone() }, b);
        assert_eq!(b, c);
        for id in [&a, &b, &c] {
            assert_eq!(id.element_string(), es);
            assert_eq!(id.digital_link().as_deref(), Some(dl));
            assert_eq!(id.epc_uri(Some(7)), Ok(Some(epc.to_string())));
        }
        assert_eq!(a.epc_uri(None), Ok(Some(epc.to_string())));
        assert_eq!(b.epc_uri(None), Err(Gs1Error::Missing { field: "company prefix length" }));
        assert_eq!(parse_any(epc), Ok(a));
        assert_eq!(parse_any(es), Ok(b.clone()));
        assert_eq!(parse_any(dl), Ok(b));
    }

    #[test]
    fn full_example_round_trips_through_raw_form() {
        let hri = "(01)09506000134352(17)201225(10)ABC123(21)12345";
        let id = parse_element_string(hri).unwrap();
        assert_eq!(id.expiry.as_deref(), Some("201225"));
        assert_eq!(id.lot.as_deref(), Some("ABC123"));
        assert_eq!(id.element_string(), hri);
        assert_eq!(id.raw_element_string(), concat!("0109506000134352", "17201225", "10ABC123\u{1d}", "2112345"));
        let reordered = concat!("]d2", "0109506000134352", "2112345\u{1d}", "10ABC123\u{1d}", "17201225");
        assert_eq!(parse_element_string(reordered), Ok(id.clone()));
        let text_gs = "]C10109506000134352<GS>2112345<GS>10ABC123<GS>17201225\r\n";
        assert_eq!(parse_element_string(text_gs), Ok(id.clone()));
        assert_eq!(parse_element_string(&id.raw_element_string()), Ok(id.clone()));
        assert_eq!(parse_digital_link(&id.digital_link().unwrap()), Ok(id));
    }

    #[test]
    fn percent_encoding_round_trip() {
        let serial = "A/B%C\"1";
        let uri = sgtin_uri("10614141073464", serial, 7).unwrap();
        assert_eq!(uri, "urn:epc:id:sgtin:0614141.107346.A%2FB%25C%221");
        assert_eq!(parse_epc_uri(&uri).unwrap().serial.as_deref(), Some(serial));
        let id = Gs1Id { gtin: Some("10614141073464".into()), serial: Some(serial.into()), ..Default::default() };
        let dl = id.digital_link().unwrap();
        assert_eq!(dl, "https://id.gs1.org/01/10614141073464/21/A%2FB%25C%221");
        assert_eq!(parse_digital_link(&dl), Ok(id.clone()));
        let all = Gs1Id { serial: Some("!&'()*+,-.:;<=>?_z".into()), ..id };
        let uri = all.epc_uri(Some(7)).unwrap().unwrap();
        assert_eq!(parse_epc_uri(&uri).unwrap().serial, all.serial);
        assert_eq!(parse_digital_link(&all.digital_link().unwrap()).unwrap(), all);
        assert!(matches!(parse_epc_uri("urn:epc:id:sgtin:0614141.107346.A%2"), Err(Gs1Error::Syntax { .. })));
        assert!(matches!(parse_epc_uri("urn:epc:id:sgtin:0614141.107346.%C3%A9"), Err(Gs1Error::Charset { .. })));
    }

    #[test]
    fn sscc_forms() {
        assert!(has_valid_check_digit("106141412345678908"));
        let a = parse_epc_uri("urn:epc:id:sscc:0614141.1234567890").unwrap();
        let b = parse_element_string("(00)106141412345678908").unwrap();
        assert_eq!(a.sscc.as_deref(), Some("106141412345678908"));
        assert_eq!(Gs1Id { company_prefix_len: None, ..a.clone() }, b);
        assert_eq!(b.epc_uri(Some(7)), Ok(Some("urn:epc:id:sscc:0614141.1234567890".into())));
        assert_eq!(a.element_string(), "(00)106141412345678908");
        assert_eq!(a.digital_link().as_deref(), Some("https://id.gs1.org/00/106141412345678908"));
        assert_eq!(parse_digital_link("https://id.gs1.org/00/106141412345678908"), Ok(b));
    }

    #[test]
    fn sgln_forms() {
        assert_eq!(with_check_digit("061414112345"), "0614141123452");
        let a = parse_epc_uri("urn:epc:id:sgln:0614141.12345.400").unwrap();
        assert_eq!(a.gln.as_deref(), Some("0614141123452"));
        assert_eq!(a.gln_extension.as_deref(), Some("400"));
        assert_eq!(a.element_string(), "(414)0614141123452(254)400");
        assert_eq!(a.epc_uri(None), Ok(Some("urn:epc:id:sgln:0614141.12345.400".into())));
        let dl = a.digital_link().unwrap();
        assert_eq!(dl, "https://id.gs1.org/414/0614141123452/254/400");
        assert_eq!(parse_digital_link(&dl).unwrap().gln_extension.as_deref(), Some("400"));
        let plain = parse_epc_uri("urn:epc:id:sgln:0614141.12345.0").unwrap();
        assert_eq!(plain.gln_extension, None);
        assert_eq!(plain.epc_uri(None), Ok(Some("urn:epc:id:sgln:0614141.12345.0".into())));
        let raw = a.raw_element_string();
        assert_eq!(raw, "4140614141123452254400");
        assert_eq!(parse_element_string(&raw).unwrap().gln_extension.as_deref(), Some("400"));
    }

    #[test]
    fn class_level_uris() {
        let p = parse_epc_uri("urn:epc:idpat:sgtin:0614141.107346.*").unwrap();
        assert_eq!((p.gtin.as_deref(), p.serial.as_deref()), (Some("10614141073464"), None));
        assert!(matches!(parse_epc_uri("urn:epc:idpat:sgtin:0614141.*.*"), Err(Gs1Error::Charset { ch: '*', .. })));
        assert!(matches!(parse_epc_uri("urn:epc:idpat:sgtin:0614141.107346.1"), Err(Gs1Error::Syntax { .. })));
        let l = parse_epc_uri("urn:epc:class:lgtin:0614141.107346.LOT%2F7").unwrap();
        assert_eq!(l.lot.as_deref(), Some("LOT/7"));
        assert_eq!(l.epc_uri(None), Ok(Some("urn:epc:class:lgtin:0614141.107346.LOT%2F7".into())));
    }

    #[test]
    fn check_digit_error_names_field_and_expected_digit() {
        let e = parse_element_string("(01)10614141073465").unwrap_err();
        assert_eq!(e, Gs1Error::CheckDigit { field: "gtin", value: "10614141073465".into(), expected: 4, found: 5 });
        assert_eq!(e.to_string(), "gtin `10614141073465`: check digit is 5, expected 4 (GS1 mod-10)");
        assert!(matches!(validate_sscc("106141412345678909"), Err(Gs1Error::CheckDigit { field: "sscc", .. })));
        assert!(matches!(validate_gln("0614141123453"), Err(Gs1Error::CheckDigit { field: "gln", .. })));
    }

    #[test]
    fn length_and_charset_errors() {
        let e = validate_serial(&"A".repeat(21)).unwrap_err();
        assert_eq!(e, Gs1Error::Length { field: "serial", len: 21, rule: "above the maximum of 20" });
        assert_eq!(e.to_string(), "serial: 21 characters, above the maximum of 20");
        assert!(validate_serial(&"A".repeat(20)).is_ok());
        assert!(matches!(validate_lot(""), Err(Gs1Error::Length { field: "lot", len: 0, .. })));
        for (s, ch, pos) in [("AB C", ' ', 2), ("#1", '#', 0), ("xé", 'é', 1)] {
            assert_eq!(validate_serial(s), Err(Gs1Error::Charset { field: "serial", ch, pos, rule: CSET82 }));
        }
        assert!(matches!(
            parse_element_string("(01)10614141073464(21)A#1"),
            Err(Gs1Error::Charset { field: "serial", ch: '#', pos: 1, .. })
        ));
        assert!(matches!(validate_gtin("1061414107346"), Err(Gs1Error::CheckDigit { .. })));
        assert!(matches!(validate_gtin("123456789"), Err(Gs1Error::Length { field: "gtin", len: 9, .. })));
        assert!(matches!(validate_gtin("1234x"), Err(Gs1Error::Charset { ch: 'x', pos: 4, .. })));
        assert!(matches!(
            parse_element_string("(01)0950600013435"),
            Err(Gs1Error::Length { field: "gtin", len: 13, .. })
        ));
        assert!(matches!(parse_element_string("01095060001"), Err(Gs1Error::Length { field: "gtin", len: 9, .. })));
    }

    #[test]
    fn expiry_dates() {
        let e = parse_element_string("(01)09506000134352(17)251301").unwrap_err();
        assert!(matches!(&e, Gs1Error::Date { field: "expiry", value, .. } if value == "251301"), "{e}");
        assert!(e.to_string().contains("month 13"), "{e}");
        assert!(matches!(validate_expiry("250431"), Err(Gs1Error::Date { .. })));
        assert!(validate_expiry("250430").is_ok());
        assert!(validate_expiry("250400").is_ok());
        assert!(validate_expiry("240229").is_ok());
        assert!(validate_expiry("000229").is_ok());
        assert!(validate_expiry("250229").is_err());
        assert!(validate_expiry("251232").is_err());
        assert!(validate_expiry("250001").is_err());
        assert!(matches!(validate_expiry("2504"), Err(Gs1Error::Length { .. })));
        let id = parse_element_string("(01)09506000134352(17)250200").unwrap();
        assert_eq!(id.expiry.as_deref(), Some("250200"));
    }

    #[test]
    fn unknown_ai() {
        assert_eq!(parse_element_string("(99)x"), Err(Gs1Error::UnknownAi { ai: "99".into(), pos: 0 }));
        assert_eq!(parse_element_string("99123"), Err(Gs1Error::UnknownAi { ai: "99".into(), pos: 0 }));
        assert_eq!(
            parse_element_string("]d20109506000134352991"),
            Err(Gs1Error::UnknownAi { ai: "99".into(), pos: 19 })
        );
        assert!(matches!(parse_element_string("(ab)1"), Err(Gs1Error::Syntax { .. })));
        assert!(matches!(parse_element_string("]X901"), Err(Gs1Error::Syntax { .. })));
    }

    #[test]
    fn unterminated_variable_field() {
        let raw = format!("0109506000134352{}{}", "10", "ABCDEFGHIJKLMNOPQRSTU");
        assert_eq!(parse_element_string(&raw), Err(Gs1Error::Unterminated { ai: "10", pos: 16 }));
        let ok = format!("0109506000134352{}{}", "10", "ABCDEFGHIJKLMNOPQRST");
        assert_eq!(parse_element_string(&ok).unwrap().lot.as_deref(), Some("ABCDEFGHIJKLMNOPQRST"));
    }

    #[test]
    fn repeated_ais() {
        let e = parse_element_string("(01)09506000134352(21)A(21)B").unwrap_err();
        assert_eq!(e, Gs1Error::Conflict { ai: "21", first: "A".into(), second: "B".into() });
        assert!(parse_element_string("(01)09506000134352(21)A(21)A").is_ok());
        assert!(matches!(
            parse_element_string("0109506000134352711A\u{1d}711B"),
            Err(Gs1Error::Conflict { ai: "711", .. })
        ));
        assert_eq!(
            parse_digital_link("https://id.gs1.org/01/09506000134352?17=250101&exp=250101"),
            Err(Gs1Error::Duplicate { ai: "17" })
        );
    }

    #[test]
    fn empty_and_missing() {
        for s in ["", "   ", "]d2"] {
            assert!(matches!(parse_any(s), Err(Gs1Error::Empty { .. }) | Err(Gs1Error::UnknownAi { .. })), "{s:?}");
        }
        assert_eq!(parse_element_string(""), Err(Gs1Error::Empty { what: "element string" }));
        assert_eq!(parse_element_string("]d2"), Err(Gs1Error::Empty { what: "element string" }));
        assert_eq!(parse_element_string("(21)12345"), Err(Gs1Error::Missing { field: "gtin" }));
        assert_eq!(parse_element_string("(254)1"), Err(Gs1Error::Missing { field: "gln" }));
    }

    #[test]
    fn digital_link_variants_and_errors() {
        let want = parse_element_string("(01)09506000134352(17)201225(10)AB/1(21)12345(710)X1").unwrap();
        for dl in [
            "https://id.gs1.org/01/09506000134352/10/AB%2F1/21/12345?17=201225&710=X1",
            "http://example.com/shop/x/gtin/9506000134352/lot/AB%2f1/ser/12345/?exp=201225&710=X1&linkType=all",
            "HTTPS://brand.example/01/09506000134352/10/AB%2F1/21/12345?710=X1&17=201225#frag",
        ] {
            assert_eq!(parse_digital_link(dl), Ok(want.clone()), "{dl}");
        }
        assert!(matches!(
            parse_digital_link("https://id.gs1.org/01/10614141073465/21/2017"),
            Err(Gs1Error::CheckDigit { field: "gtin", expected: 4, .. })
        ));
        let syntax_errors = [
            "https://id.gs1.org/01/09506000134352/22/ABC",
            "https://id.gs1.org/01/09506000134352/21/1/10/2",
            "https://id.gs1.org/01/09506000134352/21",
            "https://id.gs1.org/foo/bar",
            "https:///01/09506000134352",
            "https://id.gs1.org/01/09506000134352?10=ABC",
            "https://id.gs1.org/01/09506000134352/21/%4",
            "ftp://id.gs1.org/01/09506000134352",
        ];
        for dl in syntax_errors {
            let got = parse_digital_link(dl);
            assert!(matches!(got, Err(Gs1Error::Syntax { .. })), "{dl}: {got:?}");
        }
        assert!(matches!(
            parse_digital_link("https://id.gs1.org/01/09506000134352?3103=000189"),
            Err(Gs1Error::UnknownAi { .. })
        ));
        assert_eq!(
            parse_digital_link("https://id.gs1.org/01/09506000134352/21/1/21/2"),
            Err(Gs1Error::Duplicate { ai: "21" })
        );
    }

    #[test]
    fn epc_uri_errors() {
        assert!(matches!(parse_epc_uri("urn:epc:id:sgtin:0614141.10734.2017"), Err(Gs1Error::Length { len: 12, .. })));
        assert!(matches!(parse_epc_uri("urn:epc:id:sscc:0614141.123456789"), Err(Gs1Error::Length { len: 16, .. })));
        assert!(matches!(parse_epc_uri("urn:epc:id:sgln:0614141.1234.0"), Err(Gs1Error::Length { len: 11, .. })));
        assert_eq!(parse_epc_uri("urn:epc:id:sgtin:06141.10734612.1"), Err(Gs1Error::PrefixLength { len: 5 }));
        assert!(matches!(parse_epc_uri("urn:epc:id:sgtin:0614141.107346"), Err(Gs1Error::Syntax { .. })));
        assert!(matches!(parse_epc_uri("urn:epc:id:grai:0614141.12345.400"), Err(Gs1Error::Syntax { .. })));
        assert!(matches!(parse_epc_uri("urn:epc:id:sgtin:06141a1.107346.1"), Err(Gs1Error::Charset { ch: 'a', .. })));
        assert_eq!(sgtin_uri("10614141073464", "1", 13), Err(Gs1Error::PrefixLength { len: 13 }));
    }

    #[test]
    fn validate_reports_bad_fields() {
        let mut id = parse_element_string("(01)09506000134352(21)1").unwrap();
        assert_eq!(id.validate(), Ok(()));
        id.gtin = Some("9506000134352".into());
        assert!(matches!(id.validate(), Err(Gs1Error::Length { field: "gtin", .. })));
        id.gtin = None;
        assert_eq!(id.validate(), Err(Gs1Error::Missing { field: "gtin" }));
    }

    #[test]
    fn generated_identifiers_round_trip_through_every_form() {
        let mut rng = Lcg(0x5eed);
        for round in 0..2000 {
            let gtin = with_check_digit(&rng.digits(13));
            let serial = rng.var(false);
            let lot = (rng.below(3) > 0).then(|| rng.var(false));
            let expiry = (rng.below(3) > 0).then(|| {
                let (yy, mm) = (rng.below(100), 1 + rng.below(12));
                format!("{yy:02}{mm:02}{:02}", rng.below(29))
            });
            let nhrn = (0..rng.below(3)).map(|i| (format!("71{}", i * 2 + rng.below(2)), rng.var(true))).collect();
            let id = Gs1Id { gtin: Some(gtin), serial: Some(serial), lot, expiry, nhrn, ..Default::default() };
            assert_eq!(id.validate(), Ok(()), "round {round}");
            let hri = id.element_string();
            let raw = id.raw_element_string();
            let dl = id.digital_link().unwrap();
            assert_eq!(parse_element_string(&hri).as_ref(), Ok(&id), "round {round}: {hri}");
            assert_eq!(parse_element_string(&raw).as_ref(), Ok(&id), "round {round}: {raw:?}");
            assert_eq!(parse_digital_link(&dl).as_ref(), Ok(&id), "round {round}: {dl}");
            let len = 6 + rng.below(7);
            let epc = id.epc_uri(Some(len)).unwrap().unwrap();
            let back = parse_epc_uri(&epc).unwrap();
            assert_eq!((&back.gtin, &back.serial, back.company_prefix_len), (&id.gtin, &id.serial, Some(len)), "{epc}");
            let sscc = with_check_digit(&rng.digits(17));
            let unit = Gs1Id { sscc: Some(sscc), company_prefix_len: Some(len), ..Default::default() };
            assert_eq!(parse_epc_uri(&unit.epc_uri(None).unwrap().unwrap()), Ok(unit.clone()));
            let gln = with_check_digit(&rng.digits(12));
            let ext = (rng.below(2) == 0).then(|| rng.var(false)).filter(|e| e != "0");
            let place =
                Gs1Id { gln: Some(gln), gln_extension: ext, company_prefix_len: Some(len), ..Default::default() };
            assert_eq!(parse_epc_uri(&place.epc_uri(None).unwrap().unwrap()), Ok(place.clone()));
        }
    }

    #[test]
    fn parsers_are_total_on_arbitrary_input() {
        let tokens: Vec<&str> = concat!(
            "(|)|%|%2|%ZZ|%C3|%FF|\u{1d}|<GS>|]d2|]C1|01|21|10|17|00|414|254|710|99|é|漢|🙂|\u{0}|",
            "urn:epc:id:sgtin:|urn:epc:id:sscc:|urn:epc:id:sgln:|urn:epc:idpat:sgtin:|urn:epc:class:lgtin:|",
            "https://|http://x/|/|.|?|&|=|*|#| |0614141|107346|09506000134352|9|A|exp|gtin|ser"
        )
        .split('|')
        .collect();
        let seeds = [
            "(01)09506000134352(17)201225(10)ABC123(21)12345",
            concat!("]d20109506000134352", "2112345\u{1d}10ABC123"),
            "urn:epc:id:sgtin:0614141.107346.2017",
            "urn:epc:id:sgln:0614141.12345.400",
            "https://id.gs1.org/01/09506000134352/10/A%2F1/21/1?17=201225",
        ];
        let mut rng = Lcg(42);
        for _ in 0..600 {
            let s: String = if rng.below(2) == 0 {
                (0..rng.below(14)).map(|_| rng.pick(&tokens)).collect()
            } else {
                let seed: Vec<char> = rng.pick(&seeds).chars().collect();
                let cut = rng.below(seed.len() + 1);
                let mut v: Vec<char> = seed[..cut].to_vec();
                v.push(rng.pick(&tokens).chars().next().unwrap_or('x'));
                v.extend(&seed[cut..]);
                v.into_iter().collect()
            };
            for parse in [parse_any, parse_element_string, parse_epc_uri, parse_digital_link] {
                match parse(&s) {
                    Ok(id) => {
                        let _ = (id.element_string(), id.raw_element_string(), id.digital_link(), id.epc_uri(Some(7)));
                        assert_eq!(id.validate(), Ok(()), "{s:?}");
                    }
                    Err(e) => assert!(!e.to_string().is_empty()),
                }
            }
        }
    }
}
