//! Reads each request body before any handler runs, bounded.
//!
//! Every body this API accepts is small JSON, so holding it in memory is
//! cheap, and reading it first means no answer (413, 401, 415…) leaves
//! unread bytes on the socket. That matters: closing a connection with
//! unread input makes the kernel send a reset, which can destroy the
//! answer before the client reads it. For a body over the limit the rest
//! is read and discarded, within bounds, before the 413 goes out: the
//! "lingering close" nginx does for the same reason.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::MAX_BODY_BYTES;
use super::error::ApiError;

/// Most bytes of an oversized body read and discarded before answering.
const DRAIN_BYTES: usize = 32 << 20;
/// Longest time spent discarding an oversized body.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// The middleware: buffers the body up to [`MAX_BODY_BYTES`], or answers 413.
pub async fn buffer_body(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (parts, body) = req.into_parts();
    let mut stream = body.into_data_stream();
    let mut buffered = Vec::new();
    let oversized = declared.is_some_and(|n| n > MAX_BODY_BYTES as u64);
    if !oversized {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) if buffered.len() + bytes.len() <= MAX_BODY_BYTES => {
                    buffered.extend_from_slice(&bytes);
                }
                Ok(_) => return too_large(stream).await,
                Err(e) => {
                    return ApiError::bad_request("", format!("the body could not be read: {e}"))
                        .into_response();
                }
            }
        }
        return next
            .run(Request::from_parts(
                parts,
                Body::from(Bytes::from(buffered)),
            ))
            .await;
    }
    too_large(stream).await
}

async fn too_large(mut rest: axum::body::BodyDataStream) -> Response {
    let drain = async {
        let mut discarded = 0usize;
        while discarded < DRAIN_BYTES {
            match rest.next().await {
                Some(Ok(bytes)) => discarded += bytes.len(),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    ApiError::PayloadTooLarge(MAX_BODY_BYTES).into_response()
}
