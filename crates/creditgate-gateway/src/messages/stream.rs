//! The stream pump: upstream bytes pass through to the client as whole events while usage is
//! read and the hold grows ahead of the output; when the stream ends it is settled once. The
//! events from the one carrying `message_stop` on are passed on with the stream's cost comment,
//! after the settle: one write to the client instead of two, and nothing the client could act on
//! comes later for it (the stream's HTTP body ended after the comment already).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use creditgate_core::ledger::LedgerError;
use creditgate_core::metering::StreamEnd;
use creditgate_core::usage::{DisconnectPolicy, ReceiptStatus, ReportedUsage};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::admission::refusal;
use super::forward::{copy_response_headers, header_value, ANSWER_HEADERS};
use super::hold::ProgressiveHold;
use super::Admitted;
use crate::config::STREAM_BUFFER_CHUNKS;
use crate::error::ApiError;
use crate::metrics::UpstreamWait;
use crate::sse::{SseScanner, UsageTally};
use crate::upstream::UpstreamResponse;

/// How long the events from `message_stop` on are kept for the stream's last words while the
/// upstream has not ended its body (it ends it at once after `message_stop`).
const LAST_WORDS_WAIT: Duration = Duration::from_millis(200);

/// How a stream's pump loop ended.
enum Ending {
    Eof,
    Broken(String),
    DrainTimeout,
    ClientGone,
    Cut(LedgerError),
    /// The shutdown deadline came first.
    Shutdown,
}

/// A stream in progress: what was read, what is held, whether the client is still there.
struct Pumping {
    scanner: SseScanner,
    tally: UsageTally,
    hold: ProgressiveHold,
    client_gone: bool,
    /// Set when the client left under `drain`: the upstream is read until then, no longer.
    drain_deadline: Option<Instant>,
    /// Events read since `message_stop` (that one included), not passed on yet: they go with
    /// the stream's last words ([`Admitted::finish`]).
    last: Vec<u8>,
}

impl Admitted {
    /// A stream: bytes pass through as whole events while usage is read and the hold grows.
    pub(super) async fn stream(self, resp: UpstreamResponse) -> Response {
        let waited = UpstreamWait(self.upstream_sent.elapsed());
        let mut out_headers = HeaderMap::with_capacity(ANSWER_HEADERS);
        copy_response_headers(resp.headers(), &mut out_headers);
        out_headers.insert("request-id", header_value(self.request_id.as_str()));
        let (tx, rx) = mpsc::channel::<Bytes>(STREAM_BUFFER_CHUNKS);
        tokio::spawn(self.pump(resp, tx));
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
        });
        let mut answer = (StatusCode::OK, out_headers, Body::from_stream(body)).into_response();
        answer.extensions_mut().insert(waited);
        answer
    }

    /// Runs in its own task: relays the stream until it ends, then settles it exactly once.
    async fn pump(mut self, mut resp: UpstreamResponse, tx: mpsc::Sender<Bytes>) {
        let mut run = Pumping {
            scanner: SseScanner::default(),
            tally: UsageTally::default(),
            hold: self.first_slice(),
            client_gone: false,
            drain_deadline: None,
            last: Vec::new(),
        };
        let ending = loop {
            let read = self.next_chunk(&mut resp, run.drain_deadline);
            let next = if run.last.is_empty() {
                Some(read.await)
            } else {
                // After `message_stop` the upstream's end is due at once; if it is late, what
                // was kept for the last words is passed on now (the read is cancel-safe).
                tokio::time::timeout(LAST_WORDS_WAIT, read).await.ok()
            };
            let read_more = next.is_some();
            let (mut batch, cut) = match next {
                None => (std::mem::take(&mut run.last), None),
                Some(Err(ending)) => break ending,
                Some(Ok(chunk)) => {
                    if let Err(err) = run.scanner.push(&chunk) {
                        break Ending::Broken(err.to_string());
                    }
                    // The scanner has its own copy: the upstream's buffer is not kept while a
                    // slow client is waited for below.
                    let capacity = chunk.len();
                    drop(chunk);
                    self.meter_events(capacity, &mut run).await
                }
            };
            if read_more && run.tally.saw_message_stop && !run.client_gone {
                run.last.append(&mut batch);
            }
            let sent = if batch.is_empty() || run.client_gone {
                Some(Ok(()))
            } else {
                // A slow client blocks this send; the hold stays alive meanwhile (`Live`).
                self.unless_cut(tx.send(Bytes::from(batch))).await
            };
            let Some(sent) = sent else {
                break Ending::Shutdown;
            };
            if sent.is_err() {
                run.client_gone = true;
                match self.policy {
                    DisconnectPolicy::Cancel => break Ending::ClientGone,
                    DisconnectPolicy::Drain => {
                        run.drain_deadline = Some(
                            Instant::now() + Duration::from_millis(self.app.cfg.drain_timeout_ms),
                        );
                    }
                }
            }
            if let Some(err) = cut {
                break Ending::Cut(err);
            }
        };
        drop(resp);
        self.held = run.hold.held;
        self.finish(ending, run, &tx).await;
    }

    /// The next upstream chunk, or how the stream ended.
    async fn next_chunk(
        &self,
        resp: &mut UpstreamResponse,
        drain_deadline: Option<Instant>,
    ) -> Result<Bytes, Ending> {
        let read = async {
            match drain_deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, resp.chunk())
                    .await
                    .map_err(|_| Ending::DrainTimeout),
                None => Ok(resp.chunk().await),
            }
        };
        let next = match self.unless_cut(read).await {
            None => return Err(Ending::Shutdown),
            Some(Err(ending)) => return Err(ending),
            Some(Ok(next)) => next,
        };
        match next {
            Ok(Some(chunk)) => Ok(chunk),
            Ok(None) => Err(Ending::Eof),
            Err(err) => {
                // The receipt's note is shown to the client: the URL stays in the log.
                tracing::warn!(request_id = %self.request_id, error = %err, "upstream stream broke");
                Err(Ending::Broken(crate::upstream::failure(&err).to_owned()))
            }
        }
    }

    /// Reads each complete event's usage, one event at a time, and grows the hold before the
    /// event is passed on; returns the bytes to pass on and, if the hold could not grow, why (the
    /// events after it are not sent).
    async fn meter_events(
        &self,
        capacity: usize,
        run: &mut Pumping,
    ) -> (Vec<u8>, Option<LedgerError>) {
        let mut batch = Vec::with_capacity(capacity);
        while let Some(ev) = run.scanner.next_event() {
            let had_start = run.tally.saw_message_start;
            run.tally.observe(&ev);
            if !had_start && run.tally.saw_message_start {
                if let Err(e) = self.correct_input(&run.tally, &mut run.hold).await {
                    return (batch, Some(e));
                }
            }
            // Hold the output before passing on the event that carries it.
            if let Err(e) = self.cover(&mut run.hold, run.tally.output_estimate).await {
                return (batch, Some(e));
            }
            batch.extend_from_slice(&ev.raw);
        }
        (batch, None)
    }

    /// Settles the ended stream and, if the client is still there, tells it what went wrong
    /// (as an SSE error event) and what the stream cost.
    async fn finish(&self, ending: Ending, run: Pumping, tx: &mpsc::Sender<Bytes>) {
        let (end, client_error) = self.classify(ending, &run.tally);
        let (status, usage, note) = if !end.is_complete() {
            (end.status(), run.tally.partial_usage(), end.note())
        } else if run.tally.reported_output() {
            (end.status(), run.tally.final_usage(), end.note())
        } else {
            // `message_start`'s output count is a placeholder: without a final count the
            // output is estimated from the deltas (never "input plus one token").
            let note = "the stream's final usage did not state the output; estimated";
            (
                ReceiptStatus::Estimated,
                run.tally.partial_usage(),
                note.into(),
            )
        };
        // The edge: the stream's merged usage is parsed here, once, into its typed form.
        let usage = usage.map(|u| ReportedUsage::parse(&u));
        let settled = self.settle_with_retries(status, usage, &note).await;
        if run.client_gone {
            return;
        }
        let mut words = run.last;
        if let Some(err) = client_error {
            words.extend_from_slice(err.sse_event().as_bytes());
        }
        words.extend_from_slice(self.stream_summary(&settled).as_bytes());
        let _ = tx.send(Bytes::from(words)).await;
    }

    /// What the ending means for the charge, and the error the client should see, if any.
    fn classify(&self, ending: Ending, tally: &UsageTally) -> (StreamEnd, Option<ApiError>) {
        let failure = match &ending {
            Ending::Eof if tally.saw_message_stop => None,
            Ending::Eof if tally.error.is_some() => Some("stream_error_event"),
            Ending::Eof => Some("stream_ended_early"),
            Ending::Broken(_) => Some("stream_broken"),
            _ => None,
        };
        if let Some(kind) = failure {
            self.app.metrics.upstream_failure(kind);
        }
        match ending {
            Ending::Eof if tally.saw_message_stop => (StreamEnd::Complete, None),
            Ending::Eof if tally.error.is_some() => (StreamEnd::ErrorEvent, None),
            Ending::Eof => (
                StreamEnd::EndedEarly,
                Some(ApiError::upstream_unreachable(
                    "The upstream stream ended early.",
                )),
            ),
            Ending::Broken(reason) => (
                StreamEnd::ConnectionLost(reason),
                Some(ApiError::upstream_unreachable(
                    "The upstream connection was lost.",
                )),
            ),
            Ending::DrainTimeout => (StreamEnd::DrainTimeout, None),
            Ending::Shutdown => (
                StreamEnd::Shutdown,
                Some(ApiError::unavailable("The gateway is shutting down.")),
            ),
            Ending::ClientGone => (StreamEnd::ClientLeft, None),
            Ending::Cut(err) => (
                StreamEnd::CreditRanOut,
                Some(refusal(
                    err,
                    &self.estimate,
                    true,
                    &self.app.cfg.credit_unit.name,
                )),
            ),
        }
    }
}
