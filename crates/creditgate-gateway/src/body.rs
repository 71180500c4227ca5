//! Reading a request body within bounds: its size (checked against `content-length` before a
//! byte is read), its time (a whole-body deadline, so a client trickling bytes cannot hold a
//! request open), and memory shared by all requests (a budget of bytes in flight).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// The budget is counted in units of this many bytes (a semaphore counts in `u32`).
const UNIT: usize = 1024;

/// Budget taken at a time while a body without a `content-length` arrives.
const GROW_STEP: usize = 64 * 1024;

/// Bytes of request bodies the process holds at once, shared by every request.
pub struct BodyBudget {
    units: Arc<Semaphore>,
}

/// A share of the budget, returned when dropped: keep it while the body (or anything built
/// from it) is alive.
pub struct InFlight(Option<OwnedSemaphorePermit>);

fn units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX)
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        Self {
            units: Arc::new(Semaphore::new(units(bytes) as usize)),
        }
    }

    /// Takes `bytes` more of the budget into `held`, or refuses without waiting.
    fn take(&self, held: &mut InFlight, bytes: usize) -> Result<(), ApiError> {
        let more = self
            .units
            .clone()
            .try_acquire_many_owned(units(bytes))
            .map_err(|_| busy())?;
        match &mut held.0 {
            Some(permit) => permit.merge(more),
            None => held.0 = Some(more),
        }
        Ok(())
    }
}

fn busy() -> ApiError {
    ApiError::new(
        StatusCode::from_u16(529).expect("529 is a valid status"),
        "overloaded_error",
        "The gateway is receiving too many large requests at once; retry shortly.",
    )
}

fn too_large(limit: usize) -> ApiError {
    ApiError::too_large(format!(
        "Request body exceeds the maximum size of {limit} bytes."
    ))
}

/// Reads `body` whole: 413 past `limit` bytes (at once when `content-length` says so), 408 if
/// it has not all arrived within `timeout`, 529 if the budget of bodies in flight is spent.
pub async fn read(
    body: Body,
    limit: usize,
    timeout: Duration,
    budget: &BodyBudget,
) -> Result<(Bytes, InFlight), ApiError> {
    let declared =
        usize::try_from(axum::body::HttpBody::size_hint(&body).lower()).unwrap_or(usize::MAX);
    if declared > limit {
        return Err(too_large(limit));
    }
    let mut held = InFlight(None);
    budget.take(&mut held, declared)?;
    let mut taken = declared;
    let mut buf = BytesMut::with_capacity(declared);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut frames = body.into_data_stream();
    loop {
        let next = tokio::time::timeout_at(deadline, frames.next())
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "timeout_error",
                    format!(
                        "The request body did not arrive within {} seconds.",
                        timeout.as_secs()
                    ),
                )
            })?;
        let chunk = match next {
            None => break,
            Some(Ok(chunk)) => chunk,
            Some(Err(_)) => {
                return Err(ApiError::invalid_request(
                    "The request body could not be read.",
                ))
            }
        };
        if buf.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        if buf.len() + chunk.len() > taken {
            // In steps, so a body sent in tiny chunks does not round up chunk by chunk.
            let grow = (buf.len() + chunk.len() - taken).max(GROW_STEP);
            budget.take(&mut held, grow)?;
            taken += grow;
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf.freeze(), held))
}
