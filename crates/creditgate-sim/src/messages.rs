//! `POST /v1/messages` and `POST /v1/messages/count_tokens`.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use crate::cache::breakpoints;
use crate::directives::Directives;
use crate::errors::ApiError;
use crate::generation::{thinking_request, Reply};
use crate::intake::Inbound;
use crate::stream::{self, Pacing};
use crate::tokenizer::count_request;
use crate::Simulator;

/// `POST /v1/messages`: a JSON `Message`, or an SSE stream when `"stream": true`.
pub(crate) async fn create(
    State(sim): State<Simulator>,
    Extension(inbound): Extension<Inbound>,
    headers: HeaderMap,
) -> Response {
    sim.shared.counters.bump(|c| &c.messages);
    match create_inner(&sim, &inbound, &headers).await {
        Ok(response) => response,
        Err(error) => error.into_response(&inbound.request_id),
    }
}

async fn create_inner(
    sim: &Simulator,
    inbound: &Inbound,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let body = parse_body(&inbound.body)?;
    let model = required_model(&body)?;
    validate_max_tokens(&body)?;
    validate_messages(&body)?;
    let thinking = thinking_request(&body).map_err(ApiError::invalid)?;
    let breakpoints = breakpoints(model, &body).map_err(ApiError::invalid)?;
    let directives = Directives::from_request(headers, &body).map_err(ApiError::invalid)?;
    injected_status(sim, &directives).await?;

    let total_input = count_request(&body);
    let cache = sim.shared.cache.settle(
        &breakpoints,
        sim.shared.config.cache_min_tokens,
        Instant::now(),
    );
    let id = format!("msg_sim_{}", sim.shared.ids.next());
    let reply = Reply::plan(id, &body, thinking, &directives, total_input, cache);

    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        sim.shared.counters.bump(|c| &c.streams);
        let pacing = Pacing {
            frame_latency: directives.latency.unwrap_or(Duration::ZERO),
            chunk_latency: sim.shared.config.chunk_latency,
            error_after: directives.error_after,
            reset_after: directives.reset_after,
            linger: directives.linger.unwrap_or(Duration::ZERO),
        };
        let on_fault_sim = sim.clone();
        let body = stream::body(reply, pacing, move || {
            on_fault_sim.shared.counters.bump(|c| &c.errors_injected);
        });
        let headers = [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ];
        return Ok((headers, body).into_response());
    }

    sleep_for(&directives).await;
    Ok(Json(reply.message_json()).into_response())
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": N}` with the messages tokenizer.
pub(crate) async fn count_tokens(
    State(sim): State<Simulator>,
    Extension(inbound): Extension<Inbound>,
    headers: HeaderMap,
) -> Response {
    sim.shared.counters.bump(|c| &c.count_tokens);
    let result = async {
        let body = parse_body(&inbound.body)?;
        required_model(&body)?;
        validate_messages(&body)?;
        let directives = Directives::from_request(&headers, &body).map_err(ApiError::invalid)?;
        injected_status(&sim, &directives).await?;
        sleep_for(&directives).await;
        Ok::<_, ApiError>(Json(json!({"input_tokens": count_request(&body)})).into_response())
    }
    .await;
    result.unwrap_or_else(|error| error.into_response(&inbound.request_id))
}

/// Answers with the injected error status, if the directives ask for one.
async fn injected_status(sim: &Simulator, directives: &Directives) -> Result<(), ApiError> {
    let Some(kind) = directives.status else {
        return Ok(());
    };
    sleep_for(directives).await;
    sim.shared.counters.bump(|c| &c.errors_injected);
    Err(ApiError::new(kind, kind.injected_message()))
}

async fn sleep_for(directives: &Directives) {
    if let Some(latency) = directives.latency.filter(|l| !l.is_zero()) {
        tokio::time::sleep(latency).await;
    }
}

fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    let body: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid(format!("The request body is not valid JSON: {e}")))?;
    if !body.is_object() {
        return Err(ApiError::invalid("The request body must be a JSON object"));
    }
    Ok(body)
}

fn required_model(body: &Value) -> Result<&str, ApiError> {
    match body.get("model") {
        None | Some(Value::Null) => Err(ApiError::invalid("model: Field required")),
        Some(Value::String(model)) if !model.is_empty() => Ok(model),
        Some(_) => Err(ApiError::invalid(
            "model: Input should be a non-empty string",
        )),
    }
}

fn validate_max_tokens(body: &Value) -> Result<(), ApiError> {
    match body.get("max_tokens") {
        None | Some(Value::Null) => Err(ApiError::invalid("max_tokens: Field required")),
        Some(v) if v.as_u64().is_some() => Ok(()),
        Some(v) if v.as_i64().is_some() => Err(ApiError::invalid(
            "max_tokens: Input should be greater than or equal to 0",
        )),
        Some(_) => Err(ApiError::invalid(
            "max_tokens: Input should be a valid integer",
        )),
    }
}

fn validate_messages(body: &Value) -> Result<(), ApiError> {
    let messages = match body.get("messages") {
        None | Some(Value::Null) => return Err(ApiError::invalid("messages: Field required")),
        Some(Value::Array(messages)) => messages,
        Some(_) => return Err(ApiError::invalid("messages: Input should be a valid list")),
    };
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "messages: at least one message is required",
        ));
    }
    for (i, message) in messages.iter().enumerate() {
        match message.get("role").and_then(Value::as_str) {
            Some("user" | "assistant") => {}
            _ => {
                return Err(ApiError::invalid(format!(
                    "messages.{i}.role: Input should be 'user' or 'assistant'"
                )))
            }
        }
        match message.get("content") {
            Some(Value::String(_) | Value::Array(_)) => {}
            _ => {
                return Err(ApiError::invalid(format!(
                    "messages.{i}.content: Input should be a string or a list of content blocks"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_what_the_api_rejects() {
        let ok =
            json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]});
        assert!(required_model(&ok).is_ok());
        assert!(validate_max_tokens(&ok).is_ok());
        assert!(validate_messages(&ok).is_ok());
        assert!(validate_max_tokens(&json!({"max_tokens": -1})).is_err());
        assert!(validate_max_tokens(&json!({"max_tokens": 1.5})).is_err());
        assert!(validate_max_tokens(&json!({})).is_err());
        assert!(required_model(&json!({"model": ""})).is_err());
        assert!(validate_messages(&json!({"messages": []})).is_err());
        assert!(
            validate_messages(&json!({"messages": [{"role": "system", "content": "x"}]})).is_err()
        );
        assert!(parse_body(b"[1]").is_err());
        assert!(parse_body(b"{").is_err());
    }
}
