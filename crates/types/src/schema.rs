//! OpenAPI schemas of the wire types (feature `openapi`): the hex newtypes are strings with
//! their exact pattern, so the API document states what the node accepts.

use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;

/// Hex of `n` bytes, as the node writes it (lowercase) and accepts it (either case).
pub fn hex_bytes(n: usize, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some(format!("^[0-9a-fA-F]{{{}}}$", 2 * n)))
        .description(Some(description.to_string()))
        .examples([serde_json::Value::String("ab".repeat(n))])
        .into()
}

macro_rules! hex_schema {
    ($t:ty, $n:expr, $name:literal, $desc:literal) => {
        impl utoipa::PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                hex_bytes($n, $desc)
            }
        }
        impl utoipa::ToSchema for $t {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
        }
    };
}

hex_schema!(crate::Hash, 32, "Hash", "32 bytes, hex (an id, digest or pseudonym)");
hex_schema!(crate::PublicKey, 32, "PublicKey", "ed25519 public key, hex");
hex_schema!(crate::Signature, 64, "Signature", "ed25519 signature, hex");
