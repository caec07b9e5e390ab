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
    /// An optional value: a presence flag, then the value written by `f`.
    pub fn opt<T>(&mut self, v: &Option<T>, f: impl FnOnce(&mut Writer, &T)) -> &mut Self {
        match v {
            Some(x) => {
                self.u8(1);
                f(self, x);
            }
            None => {
                self.u8(0);
            }
        }
        self
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
    /// An optional value written by [`Writer::opt`]: a strict presence flag, then `f`.
    pub fn opt<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut Reader<'a>) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        if self.bool(what)? {
            f(self).map(Some)
        } else {
            Ok(None)
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
    /// The next byte, not consumed.
    pub fn peek_u8(&self, what: &'static str) -> Result<u8, DecodeError> {
        self.buf.first().copied().ok_or(DecodeError::EndOfInput(what))
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

/// Serde for byte strings as hex (`#[serde(with = "medledger_types::codec::hex_bytes")]`): how
/// the API shows ciphertexts and wrapped keys.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// How one field of a declared type is written and read: `what` names it in errors and `max`
/// bounds its length (ignored by fixed-width fields).
///
/// Types declared with [`canonical_struct!`] or [`operations!`] list each field once, with its
/// label and limit; this trait supplies the two directions, so encode and decode cannot drift.
pub trait Field: Sized {
    fn put(&self, w: &mut Writer);
    fn take(r: &mut Reader<'_>, what: &'static str, max: usize) -> Result<Self, DecodeError>;
}

impl Field for String {
    fn put(&self, w: &mut Writer) {
        w.str(self);
    }
    fn take(r: &mut Reader<'_>, what: &'static str, max: usize) -> Result<Self, DecodeError> {
        r.string(what, max)
    }
}
impl Field for u32 {
    fn put(&self, w: &mut Writer) {
        w.u32(*self);
    }
    fn take(r: &mut Reader<'_>, what: &'static str, _: usize) -> Result<Self, DecodeError> {
        r.u32(what)
    }
}
impl Field for u64 {
    fn put(&self, w: &mut Writer) {
        w.u64(*self);
    }
    fn take(r: &mut Reader<'_>, what: &'static str, _: usize) -> Result<Self, DecodeError> {
        r.u64(what)
    }
}
impl Field for bool {
    fn put(&self, w: &mut Writer) {
        w.bool(*self);
    }
    fn take(r: &mut Reader<'_>, what: &'static str, _: usize) -> Result<Self, DecodeError> {
        r.bool(what)
    }
}
impl Field for crate::Hash {
    fn put(&self, w: &mut Writer) {
        w.fixed(&self.0);
    }
    fn take(r: &mut Reader<'_>, what: &'static str, _: usize) -> Result<Self, DecodeError> {
        Ok(crate::Hash(r.array(what)?))
    }
}

/// An optional value: `0`, or `1` and the value.
impl<T: Field> Field for Option<T> {
    fn put(&self, w: &mut Writer) {
        match self {
            None => {
                w.u8(0);
            }
            Some(v) => {
                w.u8(1);
                v.put(w);
            }
        }
    }
    fn take(r: &mut Reader<'_>, what: &'static str, max: usize) -> Result<Self, DecodeError> {
        Ok(if r.bool(what)? { Some(T::take(r, what, max)?) } else { None })
    }
}

/// The canonical encoding of a fieldless enum with an `ALL` list: one byte, the variant's
/// position in `ALL` (so `ALL` must list the variants in declaration order); any other byte is
/// an unknown tag named `label`. Also makes the enum a [`Field`].
#[macro_export]
macro_rules! canonical_enum {
    ($t:ty, $label:literal) => {
        impl $crate::codec::Canonical for $t {
            fn encode_to(&self, w: &mut $crate::codec::Writer) {
                w.u8(*self as u8);
            }
            fn decode_from(r: &mut $crate::codec::Reader<'_>) -> Result<Self, $crate::codec::DecodeError> {
                let t = r.u8($label)?;
                <$t>::ALL.get(t as usize).copied().ok_or($crate::codec::DecodeError::UnknownTag($label, t))
            }
        }
        $crate::canonical_field!($t);
    };
}

/// Makes a [`Canonical`] type usable as a [`Field`] (it carries its own labels and limits).
#[macro_export]
macro_rules! canonical_field {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::codec::Field for $t {
            fn put(&self, w: &mut $crate::codec::Writer) {
                $crate::codec::Canonical::encode_to(self, w);
            }
            fn take(
                r: &mut $crate::codec::Reader<'_>,
                _: &'static str,
                _: usize,
            ) -> Result<Self, $crate::codec::DecodeError> {
                <$t as $crate::codec::Canonical>::decode_from(r)
            }
        }
    )*};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __field_max {
    () => {
        0
    };
    ($max:expr) => {
        $max
    };
}

/// Declares a struct once: its fields in encoding order, each with its error label and (for
/// strings) its length limit. Generates the struct, its [`Canonical`] impl and a [`Field`] impl.
///
/// ```
/// medledger_types::canonical_struct! {
///     /// A labelled digest.
///     pub struct Note {
///         label: String = "label" max 16,
///         at_ms: u64 = "time",
///     }
/// }
/// ```
#[macro_export]
macro_rules! canonical_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $fty:ty = $label:literal $(max $max:expr)? ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $fty, )*
        }
        impl $crate::codec::Canonical for $name {
            fn encode_to(&self, w: &mut $crate::codec::Writer) {
                $( $crate::codec::Field::put(&self.$field, w); )*
            }
            fn decode_from(r: &mut $crate::codec::Reader<'_>) -> Result<Self, $crate::codec::DecodeError> {
                Ok($name { $( $field: <$fty as $crate::codec::Field>::take(r, $label, $crate::__field_max!($($max)?))?, )* })
            }
        }
        $crate::canonical_field!($name);
    };
}

/// Declares one domain's operations once: tag, name, fields in encoding order with their error
/// labels and limits. Generates the enum (JSON: internally tagged by `type`), its [`Canonical`]
/// impl (one tag byte, then the fields; unknown tags are rejected), `kind()` into
/// [`crate::tx::OpKind`] and `tag()`. The match arms are generated from the one list, so an
/// operation cannot be encoded but not decoded, or lack a kind.
#[macro_export]
macro_rules! operations {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $(
                $(#[$vmeta:meta])*
                $tag:literal => $variant:ident {
                    $( $(#[$fmeta:meta])* $field:ident : $fty:ty = $label:literal $(max $max:expr)? ),* $(,)?
                }
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant { $( $(#[$fmeta])* $field: $fty, )* }, )*
        }
        impl $name {
            /// The operation's column in the permission table.
            pub fn kind(&self) -> $crate::tx::OpKind {
                match self { $( $name::$variant { .. } => $crate::tx::OpKind::$variant, )* }
            }
            /// The operation's tag byte within its domain.
            pub fn tag(&self) -> u8 {
                match self { $( $name::$variant { .. } => $tag, )* }
            }
            /// Every operation kind of this domain, in tag order.
            pub const KINDS: &'static [$crate::tx::OpKind] = &[ $( $crate::tx::OpKind::$variant, )* ];
        }
        impl $crate::codec::Canonical for $name {
            fn encode_to(&self, w: &mut $crate::codec::Writer) {
                match self {
                    $( $name::$variant { $($field,)* } => {
                        w.u8($tag);
                        $( $crate::codec::Field::put($field, w); )*
                    } )*
                }
            }
            fn decode_from(r: &mut $crate::codec::Reader<'_>) -> Result<Self, $crate::codec::DecodeError> {
                Ok(match r.u8($what)? {
                    $( $tag => $name::$variant {
                        $( $field: <$fty as $crate::codec::Field>::take(r, $label, $crate::__field_max!($($max)?))?, )*
                    }, )*
                    t => return Err($crate::codec::DecodeError::UnknownTag($what, t)),
                })
            }
        }
    };
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
