//! Request extractors whose rejections are problem+json naming the field.
//!
//! Axum's own `Json` and `Query` reject with text/plain and report
//! deserialization errors by line and column; clients need the field.

use std::fmt;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde_json::Value;

use super::error::{ApiError, FieldError};

/// A JSON body deserialized into `T`.
///
/// Rejects, in order: a content type other than JSON (415), a body over the
/// limit (413), invalid UTF-8 (400), malformed JSON (400), and JSON that
/// does not fit `T` (422 naming the member: unknown, missing, or of the
/// wrong type).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        check_content_type(req.headers().get(header::CONTENT_TYPE))?;
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(super::MAX_BODY_BYTES)
            } else {
                ApiError::bad_request("", format!("the body could not be read: {rejection}"))
            }
        })?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| ApiError::bad_request("", format!("the body is not valid UTF-8: {e}")))?;
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request("", format!("the body is not valid JSON: {e}")))?;
        from_value(value).map(ApiJson)
    }
}

/// Accepts `application/json` and any `application/*+json` (such as
/// `application/merge-patch+json`), with or without parameters.
fn check_content_type(value: Option<&axum::http::HeaderValue>) -> Result<(), ApiError> {
    let essence = value.and_then(|v| v.to_str().ok()).map(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        Some(t) if t.starts_with("application/") && t.ends_with("+json") => Ok(()),
        Some(t) => Err(ApiError::UnsupportedMediaType(format!(
            "expected Content-Type application/json, got {t}"
        ))),
        None => Err(ApiError::UnsupportedMediaType(
            "expected Content-Type application/json".to_owned(),
        )),
    }
}

/// Deserializes a JSON object member by member so that every error names
/// the member at fault.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    let Value::Object(map) = value else {
        return Err(ApiError::invalid("", "the body must be a JSON object"));
    };
    T::deserialize(Members(map))
        .map_err(|e| ApiError::Unprocessable(vec![FieldError::new(e.field, e.message)]))
}

/// A JSON object as a serde deserializer whose errors carry the member name.
struct Members(serde_json::Map<String, Value>);

#[derive(Debug)]
struct MemberError {
    field: String,
    message: String,
}

impl fmt::Display for MemberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for MemberError {}

impl de::Error for MemberError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        MemberError {
            field: String::new(),
            message: msg.to_string(),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        MemberError {
            field: field.to_owned(),
            message: "is required".to_owned(),
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        MemberError {
            field: field.to_owned(),
            message: format!("unknown field; expected one of: {}", expected.join(", ")),
        }
    }
}

impl<'de> de::Deserializer<'de> for Members {
    type Error = MemberError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, MemberError> {
        visitor.visit_map(MemberAccess {
            members: self.0.into_iter(),
            pending: None,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct MemberAccess {
    members: serde_json::map::IntoIter,
    pending: Option<(String, Value)>,
}

impl<'de> MapAccess<'de> for MemberAccess {
    type Error = MemberError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, MemberError> {
        let Some((key, value)) = self.members.next() else {
            return Ok(None);
        };
        let parsed = seed.deserialize(key.as_str().into_deserializer())?;
        self.pending = Some((key, value));
        Ok(Some(parsed))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, MemberError> {
        let (field, value) = self
            .pending
            .take()
            .ok_or_else(|| de::Error::custom("value before key"))?;
        seed.deserialize(value).map_err(|e| MemberError {
            field,
            message: e.to_string(),
        })
    }
}

/// The single `{id}` segment of a route.
#[derive(Debug)]
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(id) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::bad_request("id", e.body_text()))?;
        Ok(PathId(id))
    }
}

/// Query parameters, taken one by one so that leftovers can be rejected.
#[derive(Debug)]
pub struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::bad_request("", format!("invalid query string: {e}")))?;
        Ok(QueryParams(pairs))
    }
}

impl QueryParams {
    /// Removes and returns parameter `name`; an empty value counts as absent.
    /// Given twice, the parameter is ambiguous and rejected.
    pub fn take(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        let mut values = Vec::new();
        self.0.retain(|(k, v)| {
            let hit = k == name;
            if hit {
                values.push(v.clone());
            }
            !hit
        });
        match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop().filter(|v| !v.is_empty())),
            _ => Err(ApiError::bad_request(name, "given more than once")),
        }
    }

    /// Rejects parameters nobody took: a misspelt filter must not silently
    /// widen a listing.
    pub fn finish(self) -> Result<(), ApiError> {
        let errors: Vec<FieldError> = self
            .0
            .into_iter()
            .map(|(k, _)| FieldError::new(k, "unknown query parameter"))
            .collect();
        if errors.is_empty() {
            return Ok(());
        }
        Err(ApiError::BadRequest {
            detail: "unknown query parameters".to_owned(),
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use dbaas_core::domain::Size;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: String,
        size: Size,
        replicas: Option<u32>,
    }

    fn field_of(value: Value) -> (String, String) {
        match from_value::<Body>(value) {
            Err(ApiError::Unprocessable(errors)) => {
                (errors[0].field.clone(), errors[0].message.clone())
            }
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn reads_a_valid_object() {
        let body: Body =
            from_value(json!({"name": "a", "size": "db.t3.small", "replicas": null})).unwrap();
        assert_eq!(
            body,
            Body {
                name: "a".into(),
                size: Size::Small,
                replicas: None
            }
        );
    }

    #[test]
    fn errors_name_the_member() {
        assert_eq!(
            field_of(json!({"name": "a", "size": "db.t3.small", "extra": 1})).0,
            "extra"
        );
        assert_eq!(
            field_of(json!({"name": "a"})),
            ("size".into(), "is required".into())
        );
        let (field, message) = field_of(json!({"name": "a", "size": "db.t3.huge"}));
        assert_eq!(field, "size");
        assert!(message.contains("db.t3.huge"), "{message}");
        let (field, message) =
            field_of(json!({"name": "a", "size": "db.t3.small", "replicas": "3"}));
        assert_eq!(field, "replicas");
        assert!(message.contains("invalid type"), "{message}");
        assert_eq!(
            field_of(json!({"name": "a", "size": "db.t3.small", "replicas": -1})).0,
            "replicas"
        );
        assert_eq!(
            field_of(json!({"name": "a", "size": "db.t3.small", "replicas": 1.5})).0,
            "replicas"
        );
        assert_eq!(
            field_of(json!({"name": 7, "size": "db.t3.small"})).0,
            "name"
        );
        assert_eq!(field_of(json!([1, 2])).0, "");
    }

    #[test]
    fn content_types() {
        let ok =
            |v: &'static str| check_content_type(Some(&axum::http::HeaderValue::from_static(v)));
        assert!(ok("application/json").is_ok());
        assert!(ok("Application/JSON; charset=utf-8").is_ok());
        assert!(ok("application/merge-patch+json").is_ok());
        assert!(matches!(
            ok("text/plain"),
            Err(ApiError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            check_content_type(None),
            Err(ApiError::UnsupportedMediaType(_))
        ));
    }
}
