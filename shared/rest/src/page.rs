//! Cursor pagination: a page of items and an opaque cursor to the next.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;

/// One page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> Page<T> {
    /// Builds a page from up to `limit + 1` fetched items: the extra item
    /// only tells that another page exists.
    pub fn from_overfetch(
        mut items: Vec<T>,
        limit: usize,
        cursor_of: impl Fn(&T) -> String,
    ) -> Self {
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor_of)
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

fn encode(raw: &str) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

fn decode(cursor: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()
}

fn bad_cursor() -> ApiError {
    ApiError::bad_request("cursor", "not a cursor returned by this listing")
}

/// Cursor of a database listing (ordered by id): the last id.
pub fn id_cursor(id: &str) -> String {
    encode(id)
}

pub fn parse_id_cursor(cursor: &str) -> Result<String, ApiError> {
    decode(cursor)
        .filter(|id| !id.is_empty())
        .ok_or_else(bad_cursor)
}

/// Cursor of an operation listing (newest first): the last `(created_at, id)`.
pub fn time_id_cursor(created_at: DateTime<Utc>, id: &str) -> String {
    encode(&format!(
        "{}|{id}",
        created_at.to_rfc3339_opts(SecondsFormat::Nanos, true)
    ))
}

pub fn parse_time_id_cursor(cursor: &str) -> Result<(DateTime<Utc>, String), ApiError> {
    let raw = decode(cursor).ok_or_else(bad_cursor)?;
    let (time, id) = raw.split_once('|').ok_or_else(bad_cursor)?;
    let time = DateTime::parse_from_rfc3339(time).map_err(|_| bad_cursor())?;
    if id.is_empty() {
        return Err(bad_cursor());
    }
    Ok((time.with_timezone(&Utc), id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(parse_id_cursor(&id_cursor("db-abc")).unwrap(), "db-abc");
        let t = DateTime::parse_from_rfc3339("2025-01-02T03:04:05.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_time_id_cursor(&time_id_cursor(t, "op-1")).unwrap(),
            (t, "op-1".to_owned())
        );
        for bad in [
            "",
            "!!",
            &encode("no-separator"),
            &encode("yesterday|op-1"),
            &encode("2025-01-02T03:04:05Z|"),
        ] {
            assert!(parse_time_id_cursor(bad).is_err(), "{bad}");
        }
        assert!(parse_id_cursor("").is_err());
    }

    #[test]
    fn overfetch_tells_whether_more_exist() {
        let page = Page::from_overfetch(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(
            (page.items, page.next_cursor),
            (vec![1, 2], Some("2".to_owned()))
        );
        let last = Page::from_overfetch(vec![1, 2], 2, |n| n.to_string());
        assert_eq!((last.items, last.next_cursor), (vec![1, 2], None));
    }
}
