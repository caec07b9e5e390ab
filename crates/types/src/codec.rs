//! The one canonical binary encoding for everything MedLedger signs or hashes.
//!
//! Rules (they make the encoding canonical by construction):
//! - integers are fixed-width big-endian (no varints, so no overlong forms);
//! - byte strings and lists carry a `u32` big-endian length prefix and a per-field limit;
//! - strings are UTF-8, checked on decode;
//! - enums are a one-byte tag; unknown tags are rejected;
//! - `Option<T>` is a `0`/`1` byte followed by the value; other bytes are rejected;
//! - decoding rejects trailing bytes.
//!
//! Signed and hashed data are always the exact bytes received, never a re-encoding.

use thiserror::Error;

/// A decoding failure, with enough context to tell the user what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("unexpected end of input while reading {0}")]
    EndOfInput(&'static str),
    #[error("{0} is {1} bytes long, above the limit of {2}")]
    TooLong(&'static str, usize, usize),
    #[error("unknown {0} tag {1}")]
    UnknownTag(&'static str, u8),
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    #[error("{0} trailing bytes after the end of the value")]
    TrailingBytes(usize),
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, String),
}

/// Appends canonical encodings to a byte vector.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_capacity(n: usize) -> Self {
        Self { buf: Vec::with_capacity(n) }
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(v as u8)
    }
    pub fn fixed(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// Length-prefixed bytes. Callers guarantee the length fits the field's limit.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).expect("field length checked against its limit before encoding");
        self.u32(len);
        self.fixed(v)
    }
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Reads canonical encodings from a byte slice.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::EndOfInput(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            t => Err(DecodeError::UnknownTag(what, t)),
        }
    }
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let b = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }
    pub fn bytes(&mut self, what: &'static str, limit: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(what)? as usize;
        if len > limit {
            return Err(DecodeError::TooLong(what, len, limit));
        }
        self.take(len, what)
    }
    pub fn string(&mut self, what: &'static str, limit: usize) -> Result<String, DecodeError> {
        let b = self.bytes(what, limit)?;
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| DecodeError::InvalidUtf8(what))
    }
    /// Reads a list length and checks it against `limit`.
    pub fn len(&mut self, what: &'static str, limit: usize) -> Result<usize, DecodeError> {
        let len = self.u32(what)? as usize;
        if len > limit {
            return Err(DecodeError::TooLong(what, len, limit));
        }
        Ok(len)
    }
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }
}

/// A value with one canonical encoding.
pub trait Canonical: Sized {
    fn encode_to(&self, w: &mut Writer);
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_to(&mut w);
        w.finish()
    }
    /// Decodes a whole buffer; trailing bytes are an error.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::decode_from(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_trailing_and_truncated_input() {
        let mut w = Writer::new();
        w.u64(7).str("abc");
        let bytes = w.finish();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u64("n").unwrap(), 7);
        assert_eq!(r.string("s", 8).unwrap(), "abc");
        assert!(r.finish().is_ok());

        let mut r = Reader::new(&bytes[..bytes.len() - 1]);
        r.u64("n").unwrap();
        assert_eq!(r.string("s", 8), Err(DecodeError::EndOfInput("s")));

        let mut r = Reader::new(&bytes);
        r.u64("n").unwrap();
        assert_eq!(r.string("s", 2), Err(DecodeError::TooLong("s", 3, 2)));
    }

    #[test]
    fn rejects_non_boolean_bytes() {
        let mut r = Reader::new(&[2]);
        assert_eq!(r.bool("flag"), Err(DecodeError::UnknownTag("flag", 2)));
    }
}
