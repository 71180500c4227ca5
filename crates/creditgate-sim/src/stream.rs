//! Server-sent events for a streamed reply, produced one frame at a time, with stream faults.

use std::io;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::stream;
use serde_json::{json, Value};

use crate::generation::{Block, Chunks, Reply};

/// One SSE frame: `event: <name>` and `data: <json>`.
#[derive(Clone, Debug)]
pub(crate) struct Frame {
    pub event: &'static str,
    pub data: Value,
}

impl Frame {
    fn new(event: &'static str, data: Value) -> Self {
        Self { event, data }
    }

    fn encode(&self) -> Bytes {
        Bytes::from(format!("event: {}\ndata: {}\n\n", self.event, self.data))
    }

    fn is_content_delta(&self) -> bool {
        self.event == "content_block_delta"
    }
}

/// The frames of a reply, lazily: a long answer is never held in memory as a whole.
fn frames(reply: Reply) -> impl Iterator<Item = Frame> + Send + 'static {
    let start = Frame::new(
        "message_start",
        json!({"type": "message_start", "message": reply.start_message_json()}),
    );
    let end = [
        Frame::new(
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": null},
                "usage": reply.usage.delta_json(),
            }),
        ),
        Frame::new("message_stop", json!({"type": "message_stop"})),
    ];
    let chunk_tokens = reply.chunk_tokens;
    std::iter::once(start)
        .chain(
            reply
                .blocks
                .into_iter()
                .enumerate()
                .flat_map(move |(index, block)| block_frames(index, block, chunk_tokens)),
        )
        .chain(end)
}

/// `content_block_start`, a `ping` after the very first one, the deltas, `content_block_stop`.
fn block_frames(
    index: usize,
    block: Block,
    chunk_tokens: u64,
) -> impl Iterator<Item = Frame> + Send + 'static {
    let start = Frame::new(
        "content_block_start",
        json!({"type": "content_block_start", "index": index, "content_block": block.start_json()}),
    );
    let ping = (index == 0).then(|| Frame::new("ping", json!({"type": "ping"})));
    let stop = Frame::new(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    );
    let delta = move |delta: Value| {
        Frame::new(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        )
    };
    let deltas: Box<dyn Iterator<Item = Frame> + Send> = match block {
        Block::Thinking {
            seed,
            shown,
            signature,
            ..
        } => Box::new(
            Chunks::new(seed, shown, chunk_tokens)
                .map(|t| json!({"type": "thinking_delta", "thinking": t}))
                .chain(std::iter::once(
                    json!({"type": "signature_delta", "signature": signature}),
                ))
                .map(delta),
        ),
        Block::ServerToolUse { query, .. } => {
            let input = json!({"query": query}).to_string();
            Box::new(
                ["".to_owned(), input]
                    .into_iter()
                    .map(move |p| delta(json!({"type": "input_json_delta", "partial_json": p}))),
            )
        }
        Block::WebSearchResult { .. } => Box::new(std::iter::empty()),
        Block::Text { seed, tokens } => Box::new(
            Chunks::new(seed, tokens, chunk_tokens)
                .map(move |t| delta(json!({"type": "text_delta", "text": t}))),
        ),
    };
    std::iter::once(start)
        .chain(ping)
        .chain(deltas)
        .chain(std::iter::once(stop))
}

/// Faults and pacing of one stream.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pacing {
    /// Sleep before every frame.
    pub frame_latency: Duration,
    /// Extra sleep before every content delta.
    pub chunk_latency: Duration,
    /// Send an `error` event after this many content deltas, then end.
    pub error_after: Option<u64>,
    /// Abort the connection after this many content deltas.
    pub reset_after: Option<u64>,
    /// Keep the body open this long after `message_stop` before ending it.
    pub linger: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    ErrorEvent,
    Reset,
}

struct Pump<I> {
    frames: I,
    pacing: Pacing,
    deltas_sent: u64,
    due: Option<Fault>,
    finished: bool,
    on_fault: Box<dyn Fn() + Send>,
}

impl<I: Iterator<Item = Frame>> Pump<I> {
    /// After `message_start` or a content delta, a fault whose count has been reached is due.
    fn check_fault(&mut self) {
        if self.pacing.error_after == Some(self.deltas_sent) {
            self.due = Some(Fault::ErrorEvent);
        } else if self.pacing.reset_after == Some(self.deltas_sent) {
            self.due = Some(Fault::Reset);
        }
    }
}

/// The response body: frames pulled one at a time as the client reads, each after its sleep.
///
/// `on_fault` runs when an injected error event or reset is actually sent.
pub(crate) fn body(reply: Reply, pacing: Pacing, on_fault: impl Fn() + Send + 'static) -> Body {
    let pump = Pump {
        frames: frames(reply),
        pacing,
        deltas_sent: 0,
        due: None,
        finished: false,
        on_fault: Box::new(on_fault),
    };
    Body::from_stream(stream::unfold(pump, |mut pump| async move {
        if pump.finished {
            return None;
        }
        if let Some(fault) = pump.due.take() {
            pump.finished = true;
            sleep(pump.pacing.frame_latency).await;
            (pump.on_fault)();
            let item = match fault {
                Fault::ErrorEvent => Ok(Frame::new(
                    "error",
                    json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                )
                .encode()),
                Fault::Reset => {
                    // Hand control back once so hyper flushes the frames already written:
                    // the client must see them before the connection breaks.
                    tokio::task::yield_now().await;
                    Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "simulated connection reset",
                    ))
                }
            };
            return Some((item, pump));
        }
        let Some(frame) = pump.frames.next() else {
            sleep(pump.pacing.linger).await;
            return None;
        };
        sleep(pump.pacing.frame_latency).await;
        if frame.is_content_delta() {
            sleep(pump.pacing.chunk_latency).await;
            pump.deltas_sent += 1;
            pump.check_fault();
        } else if frame.event == "message_start" {
            pump.check_fault();
        }
        Some((Ok::<_, io::Error>(frame.encode()), pump))
    }))
}

async fn sleep(duration: Duration) {
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
}
