//! Reading Anthropic's SSE stream as it passes through: whole events out of arbitrary chunks, and
//! the usage they report.
//!
//! Usage follows the SDK's accumulator: start from `message_start.message.usage`, then each
//! `message_delta` overwrites `output_tokens` and, when present, the input and cache totals and
//! `server_tool_use` (the values are cumulative; they are never summed). The 5m/1h cache split
//! only exists in `message_start`.

use bytes::{Bytes, BytesMut};
use serde_json::Value;

/// Longest single SSE event accepted from the upstream; a longer one ends the stream as broken.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One complete SSE event: its raw bytes (forwarded unchanged), its name and its data, not yet
/// parsed: metering parses the data of the few kinds of event it reads, and of those only what
/// it reads (`UsageTally::observe`).
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub raw: Bytes,
    name: Option<Text>,
    data: Option<Text>,
}

/// Where a field of an event is: in place in its raw bytes (valid UTF-8, one trimmed line),
/// otherwise a copy (several `data:` lines joined, invalid UTF-8 replaced, a name read from the
/// data's `type`).
#[derive(Debug, Clone)]
enum Text {
    InPlace(std::ops::Range<usize>),
    Owned(String),
}

impl SseEvent {
    /// The event's name: its last `event:` line, else its data's `type`.
    pub fn name(&self) -> Option<&str> {
        self.text(self.name.as_ref()?)
    }

    /// The event's data: its `data:` lines, each trimmed, joined by line breaks.
    pub fn data(&self) -> Option<&str> {
        self.text(self.data.as_ref()?)
    }

    fn text<'a>(&'a self, text: &'a Text) -> Option<&'a str> {
        match text {
            // In place only when `raw` is valid UTF-8 and the range within one line of it.
            Text::InPlace(range) => std::str::from_utf8(&self.raw[range.clone()]).ok(),
            Text::Owned(text) => Some(text),
        }
    }
}

/// Splits a byte stream into whole events (terminated by a blank line, `\n\n` or `\r\n\r\n`).
#[derive(Debug, Default)]
pub struct SseScanner {
    buf: BytesMut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an upstream SSE event exceeded {MAX_EVENT_BYTES} bytes")]
pub struct EventTooLarge;

impl SseScanner {
    /// Adds a chunk. Its events are then taken one at a time with [`SseScanner::next_event`], so
    /// only one event's parsed JSON is alive at a time however large the chunk: a stream the
    /// upstream is far ahead of arrives in chunks of hundreds of KiB, thousands of events, and
    /// parsing them all at once held megabytes per slow reader (`docs/benchmarks.md`).
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), EventTooLarge> {
        // The events handed out are gone by now, so the space before the unfinished event is
        // reused in place; failing that, a buffer just large enough replaces it. (`BytesMut`'s own
        // growth doubles its capacity and counts the consumed prefix: with slow readers that was
        // twice the largest chunk per stream, `docs/benchmarks.md`.)
        if !self.buf.try_reclaim(chunk.len()) {
            let mut fresh = BytesMut::with_capacity(self.buf.len() + chunk.len());
            fresh.extend_from_slice(&self.buf);
            self.buf = fresh;
        }
        self.buf.extend_from_slice(chunk);
        if self.buf.len() > MAX_EVENT_BYTES && find_event_end(&self.buf).is_none() {
            return Err(EventTooLarge);
        }
        Ok(())
    }

    /// The next complete event, if the chunks pushed so far hold one.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        let end = find_event_end(&self.buf)?;
        Some(parse_event(self.buf.split_to(end).freeze()))
    }

    /// Bytes of an unfinished event left at the end of the stream.
    pub fn remainder(&self) -> &[u8] {
        &self.buf
    }
}

/// Index just past the blank line that ends the first event, if the buffer holds one.
fn find_event_end(buf: &[u8]) -> Option<usize> {
    for i in memchr::memchr_iter(b'\n', buf) {
        match buf.get(i + 1..) {
            Some([b'\n', ..]) => return Some(i + 2),
            Some([b'\r', b'\n', ..]) => return Some(i + 3),
            _ => {}
        }
    }
    None
}

fn parse_event(raw: Bytes) -> SseEvent {
    let (name, data) = read_fields(&raw);
    let mut event = SseEvent { raw, name, data };
    if event.name.is_none() {
        // Without an `event:` line the data's `type` names the event.
        event.name = event
            .data()
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
            .and_then(|d| d.get("type")?.as_str().map(|t| Text::Owned(t.to_owned())));
    }
    event
}

/// An event's name (its last `event:` line) and where its data is. A valid UTF-8 event, every
/// event a real stream sends, is read without a copy or an allocation unless it has several
/// `data:` lines.
fn read_fields(raw: &[u8]) -> (Option<Text>, Option<Text>) {
    let Ok(text) = std::str::from_utf8(raw) else {
        let text = String::from_utf8_lossy(raw);
        let owned = |field: &str| Text::Owned(field.to_owned());
        let (name, data) = fields(&text);
        return (name.map(owned), data.map(|d| d.into_text(owned)));
    };
    let at = |field: &str| {
        let start = field.as_ptr() as usize - text.as_ptr() as usize;
        Text::InPlace(start..start + field.len())
    };
    let (name, data) = fields(text);
    (name.map(at), data.map(|d| d.into_text(at)))
}

/// An event's `data:` lines, each trimmed.
enum DataLines<'a> {
    One(&'a str),
    Joined(String),
}

impl DataLines<'_> {
    /// Where the data is: `one` says where a single line is; lines joined are a copy.
    fn into_text(self, one: impl FnOnce(&str) -> Text) -> Text {
        match self {
            DataLines::One(line) => one(line),
            DataLines::Joined(joined) => Text::Owned(joined),
        }
    }
}

/// An event's last `event:` line and its `data:` lines, each trimmed (real recordings pad
/// `data:` lines with trailing spaces).
fn fields(text: &str) -> (Option<&str>, Option<DataLines<'_>>) {
    let mut name = None;
    let mut data = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = Some(v.trim());
        } else if let Some(v) = line.strip_prefix("data:") {
            let v = v.trim();
            data = Some(match data {
                None => DataLines::One(v),
                Some(DataLines::One(first)) => DataLines::Joined(format!("{first}\n{v}")),
                Some(DataLines::Joined(mut joined)) => {
                    joined.push('\n');
                    joined.push_str(v);
                    DataLines::Joined(joined)
                }
            });
        }
    }
    (name, data)
}

/// Estimated tokens of streamed text, used only where the upstream has not (yet) said the exact
/// count: growing a stream's hold and charging a stream that ended early. It is the core's text
/// rule (each run of ASCII letters and digits ⌈len/4⌉, every other non-space character 1), which
/// errs high on real English text, plus the whitespace that rule counts as free but a real
/// tokenizer does not: each line break, and each run of two or more spaces or tabs.
pub fn estimate_text_tokens(text: &str) -> u64 {
    let mut whitespace = 0u64;
    let mut run = 0usize;
    for c in text.chars() {
        if c == '\n' {
            whitespace += 1;
        }
        if c == ' ' || c == '\t' {
            run += 1;
        } else {
            whitespace += u64::from(run >= 2);
            run = 0;
        }
    }
    whitespace += u64::from(run >= 2);
    creditgate_core::pricing::estimate_text_tokens(text).saturating_add(whitespace)
}

/// The output tokens a `content_block_delta` event's data stands for: every kind of delta counts
/// (text, thinking, tool input JSON, and kinds not known yet), each text field of its `delta`
/// except its type and the signature. `None` if the data is not valid JSON.
///
/// The same answer as reading the data into a `Value` (a repeated field counts once, its last
/// value, as there), without building one or any map: one pass over the data in place
/// ([`in_place::Part`]), which gives up on anything it does not expect (a repeated field, an
/// escaped key, a number with a fraction), and then the data is read whole instead.
fn delta_estimate(data: &str) -> Option<u64> {
    let mut de = serde_json::Deserializer::from_str(data);
    let read = serde::de::DeserializeSeed::deserialize(in_place::Part::Event, &mut de);
    if let (Ok(tokens), Ok(())) = (read, de.end()) {
        return Some(tokens);
    }
    let data: Value = serde_json::from_str(data).ok()?;
    let Some(delta) = data.get("delta").and_then(Value::as_object) else {
        return Some(0);
    };
    Some(
        delta
            .iter()
            .filter(|(field, _)| counted(field))
            .filter_map(|(_, value)| value.as_str())
            .map(estimate_text_tokens)
            .fold(0u64, u64::saturating_add),
    )
}

/// [`delta_estimate`]'s pass over a delta event in place: serde visitors that count as they read
/// and keep nothing. Each refuses (an error, so the caller reads the data whole) what the
/// answer of a `Value` would not be sure to match.
mod in_place {
    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    use super::{counted, estimate_text_tokens};

    /// Fields of a delta counted at most; a delta with more is read whole.
    const MAX_COUNTED: usize = 4;

    /// A part of the event read with [`deserialize_any`](de::Deserializer::deserialize_any):
    /// the event (an object's `delta` counted), the `delta` (an object's text fields counted) or
    /// one of its fields (a string's tokens); anything else counts nothing, as in a `Value`.
    #[derive(Clone, Copy)]
    pub(super) enum Part {
        Event,
        Delta,
        Field,
    }

    impl<'de> DeserializeSeed<'de> for Part {
        type Value = u64;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Part {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a delta event or a part of one")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
            match self {
                Part::Event => delta(map),
                Part::Delta => text_fields(map),
                Part::Field => {
                    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    Ok(0)
                }
            }
        }
        /// Borrowed in place, or decoded (escapes) into serde_json's scratch buffer.
        fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
            Ok(match self {
                Part::Event | Part::Delta => 0,
                Part::Field => estimate_text_tokens(text),
            })
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(0)
        }
        fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
            Ok(0)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<u64, E> {
            Ok(0)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<u64, E> {
            Ok(0)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<u64, E> {
            Ok(0)
        }
    }

    /// The event's `delta`, once.
    fn delta<'de, A: MapAccess<'de>>(mut map: A) -> Result<u64, A::Error> {
        let mut tokens = None;
        while let Some(key) = map.next_key::<&'de str>()? {
            if key != "delta" {
                map.next_value::<IgnoredAny>()?;
            } else if tokens.is_some() {
                return Err(de::Error::custom("a repeated delta"));
            } else {
                tokens = Some(map.next_value_seed(Part::Delta)?);
            }
        }
        Ok(tokens.unwrap_or(0))
    }

    /// The delta's fields but its type and signature, each at most once, their text's tokens
    /// summed.
    fn text_fields<'de, A: MapAccess<'de>>(mut map: A) -> Result<u64, A::Error> {
        let mut seen: [&str; MAX_COUNTED] = [""; MAX_COUNTED];
        let (mut fields, mut tokens) = (0, 0u64);
        while let Some(key) = map.next_key::<&'de str>()? {
            if !counted(key) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if fields == MAX_COUNTED || seen[..fields].contains(&key) {
                return Err(de::Error::custom("a repeated or unexpected field"));
            }
            seen[fields] = key;
            fields += 1;
            tokens = tokens.saturating_add(map.next_value_seed(Part::Field)?);
        }
        Ok(tokens)
    }
}

/// Whether a field of a delta is text the model produced: all but its type and signature.
fn counted(field: &str) -> bool {
    field != "type" && field != "signature"
}

/// What the stream has said so far.
#[derive(Debug, Default, Clone)]
pub struct UsageTally {
    start_usage: Option<Value>,
    last_delta_usage: Option<Value>,
    /// Output tokens estimated from the delta text seen. Blocks that arrive whole are not
    /// counted: server-tool results are input of the next sampling step, and redacted thinking
    /// is opaque; both are charged from the upstream's final usage.
    pub output_estimate: u64,
    pub saw_message_start: bool,
    pub saw_message_stop: bool,
    /// The upstream's `error` event, if it sent one.
    pub error: Option<Value>,
    /// The model the upstream says it used.
    pub model: Option<String>,
}

impl UsageTally {
    /// Reads what an event says of the usage. The data of an event is read only if it is valid
    /// JSON; a `content_block_delta`, most of a stream, is read without building its tree
    /// (`delta_estimate`), and events metering does not read are not parsed at all.
    pub fn observe(&mut self, ev: &SseEvent) {
        let Some(text) = ev.data() else { return };
        match ev.name() {
            Some("content_block_delta") => {
                self.output_estimate += delta_estimate(text).unwrap_or(0);
            }
            Some("message_stop") => {
                self.saw_message_stop |=
                    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
            }
            Some("message_start" | "message_delta" | "error") => {
                if let Ok(data) = serde_json::from_str::<Value>(text) {
                    self.observe_parsed(ev.name(), &data);
                }
            }
            _ => {}
        }
    }

    /// [`Self::observe`] of an event whose data was parsed whole.
    fn observe_parsed(&mut self, name: Option<&str>, data: &Value) {
        match name {
            Some("message_start") => {
                self.saw_message_start = true;
                let msg = data.get("message");
                self.start_usage = msg.and_then(|m| m.get("usage")).cloned();
                self.model = msg
                    .and_then(|m| m.get("model"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            Some("message_delta") => {
                if let Some(u) = data.get("usage") {
                    self.last_delta_usage = Some(u.clone());
                }
            }
            Some("error") => self.error = Some(data.clone()),
            _ => {}
        }
    }

    /// The final usage object: `message_start`'s, overwritten field by field by the last
    /// `message_delta`. `None` before `message_start`.
    pub fn final_usage(&self) -> Option<Value> {
        let mut usage = self.start_usage.clone()?;
        if let (Some(obj), Some(Value::Object(delta))) =
            (usage.as_object_mut(), self.last_delta_usage.as_ref())
        {
            for (k, v) in delta {
                if !v.is_null() {
                    obj.insert(k.clone(), v.clone());
                }
            }
        }
        Some(usage)
    }

    /// Whether the last `message_delta` stated the output count (not missing or null).
    pub fn reported_output(&self) -> bool {
        self.last_delta_usage
            .as_ref()
            .and_then(|u| u.get("output_tokens"))
            .is_some_and(|v| !v.is_null())
    }

    /// Whether a `message_delta` with usage arrived (the output count is then the upstream's).
    pub fn has_final_output(&self) -> bool {
        self.last_delta_usage.is_some()
    }

    /// Usage for a stream that ended early: the input side from `message_start` (and any later
    /// delta), output = the larger of what the upstream last said and the estimate from deltas.
    pub fn partial_usage(&self) -> Option<Value> {
        let mut usage = self.final_usage()?;
        let reported = usage
            .get("output_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let output = if self.has_final_output() {
            reported.max(self.output_estimate)
        } else {
            // message_start's output_tokens is a placeholder (1–7), not a count.
            self.output_estimate
        };
        if let Some(obj) = usage.as_object_mut() {
            obj.insert("output_tokens".into(), Value::from(output));
        }
        Some(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Anthropic's documented stream transcript (padding kept), cut at awkward places.
    const TRANSCRIPT: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5-20250929\",\"id\":\"msg_013nnniYDrJDocdy5nrMU7cH\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":135,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"cache_creation\":{\"ephemeral_5m_input_tokens\":0,\"ephemeral_1h_input_tokens\":0},\"output_tokens\":1,\"service_tier\":\"standard\",\"inference_geo\":\"not_available\"}}   }\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}     }\n\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"[\"}             }\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"12\"}   }\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"345,\"}    }\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"67890]\"}               }\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0        }\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":135,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":10}             }\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"              }\n\n",
    );

    #[test]
    fn recorded_transcript_in_any_chunking_gives_the_same_usage() {
        for chunk in [1, 7, 64, 4096] {
            let mut scanner = SseScanner::default();
            let mut tally = UsageTally::default();
            let mut forwarded = Vec::new();
            for piece in TRANSCRIPT.as_bytes().chunks(chunk) {
                scanner.push(piece).unwrap();
                while let Some(ev) = scanner.next_event() {
                    tally.observe(&ev);
                    forwarded.extend_from_slice(&ev.raw);
                }
            }
            assert_eq!(
                forwarded,
                TRANSCRIPT.as_bytes(),
                "bytes pass through unchanged"
            );
            assert!(scanner.remainder().is_empty());
            let usage = tally.final_usage().unwrap();
            assert_eq!(usage["input_tokens"], 135);
            assert_eq!(usage["output_tokens"], 10);
            assert_eq!(usage["cache_creation"]["ephemeral_1h_input_tokens"], 0);
            assert!(tally.saw_message_stop);
            assert_eq!(tally.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
        }
    }

    /// A long stream pushed a read at a time (reads cut events anywhere), each read's events
    /// taken before the next, as the pump does: the buffer never grows past one read and the
    /// unfinished event carried over, however long the stream.
    #[test]
    fn the_buffer_stays_the_size_of_one_read() {
        let read = crate::upstream::UPSTREAM_READ_BUFFER_MAX;
        let stream = TRANSCRIPT.repeat(400);
        let longest_event = TRANSCRIPT
            .split_inclusive("\n\n")
            .map(str::len)
            .max()
            .unwrap();
        let mut scanner = SseScanner::default();
        let (mut largest, mut forwarded) = (0, 0);
        for piece in stream.as_bytes().chunks(read) {
            scanner.push(piece).unwrap();
            largest = largest.max(scanner.buf.capacity());
            while let Some(ev) = scanner.next_event() {
                forwarded += ev.raw.len();
            }
        }
        assert_eq!(forwarded, stream.len());
        assert!(
            largest <= read + longest_event,
            "the buffer grew to {largest} bytes for reads of {read}"
        );
    }

    #[test]
    fn the_last_delta_wins_and_deltas_are_never_summed() {
        let mut scanner = SseScanner::default();
        let mut tally = UsageTally::default();
        let text = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":50,\"cache_creation\":{\"ephemeral_5m_input_tokens\":0,\"ephemeral_1h_input_tokens\":7},\"cache_creation_input_tokens\":7,\"output_tokens\":1}}}\n\n\
            event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":20,\"input_tokens\":250,\"server_tool_use\":{\"web_search_requests\":1}}}\n\n\
            event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":30,\"input_tokens\":450,\"server_tool_use\":{\"web_search_requests\":2}}}\n\n";
        scanner.push(text.as_bytes()).unwrap();
        while let Some(ev) = scanner.next_event() {
            tally.observe(&ev);
        }
        let u = tally.final_usage().unwrap();
        assert_eq!(u["output_tokens"], 30);
        assert_eq!(u["input_tokens"], 450);
        assert_eq!(u["server_tool_use"]["web_search_requests"], 2);
        assert_eq!(
            u["cache_creation"]["ephemeral_1h_input_tokens"], 7,
            "split from start"
        );
    }

    #[test]
    fn partial_usage_uses_observed_output() {
        let mut tally = UsageTally::default();
        let mut scanner = SseScanner::default();
        let text = "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":9,\"output_tokens\":3}}}\r\n\r\n\
            event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"abcd efgh ij\"}}\r\n\r\n";
        scanner.push(text.as_bytes()).unwrap();
        while let Some(ev) = scanner.next_event() {
            tally.observe(&ev);
        }
        let u = tally.partial_usage().unwrap();
        assert_eq!(u["input_tokens"], 9);
        assert_eq!(u["output_tokens"], 3, "three words, not the placeholder");
    }

    #[test]
    fn text_estimate_rule() {
        assert_eq!(estimate_text_tokens(""), 0);
        assert_eq!(estimate_text_tokens("word word"), 2);
        assert_eq!(estimate_text_tokens("hello"), 2);
        assert_eq!(estimate_text_tokens("a, b!"), 4);
        assert_eq!(estimate_text_tokens("日本"), 2);
        // Whitespace a tokenizer spends tokens on: line breaks, runs of spaces or tabs.
        assert_eq!(estimate_text_tokens("a\n\nb"), 4);
        assert_eq!(estimate_text_tokens("a    b\t\t"), 4);
    }

    #[test]
    fn a_chunk_of_many_events_gives_them_one_at_a_time() {
        let mut scanner = SseScanner::default();
        let one = "event: ping\ndata: {\"type\":\"ping\"}\n\n";
        scanner.push(one.repeat(3).as_bytes()).unwrap();
        for left in [2, 1, 0] {
            let ev = scanner.next_event().unwrap();
            assert_eq!(ev.name(), Some("ping"));
            assert_eq!(
                scanner.remainder().len(),
                one.len() * left,
                "the rest stays raw"
            );
        }
        assert!(scanner.next_event().is_none());
    }

    /// The tally before events were read in place (their data parsed whole into a `Value`,
    /// every event), kept as the oracle of `events_read_in_place_tally_as_parsed_whole`.
    fn tally_parsed_whole(raw: &[u8]) -> UsageTally {
        let text = String::from_utf8_lossy(raw);
        let mut name = None;
        let mut data = String::new();
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.trim());
            }
        }
        let data: Option<Value> = if data.is_empty() {
            None
        } else {
            serde_json::from_str(&data).ok()
        };
        let name = name.or_else(|| data.as_ref()?.get("type")?.as_str().map(str::to_owned));
        let mut tally = UsageTally::default();
        let Some(data) = data else { return tally };
        match name.as_deref() {
            Some("content_block_delta") => {
                if let Some(delta) = data.get("delta").and_then(Value::as_object) {
                    for (field, value) in delta {
                        if let (false, Some(t)) =
                            (field == "type" || field == "signature", value.as_str())
                        {
                            tally.output_estimate += estimate_text_tokens(t);
                        }
                    }
                }
            }
            Some("message_stop") => tally.saw_message_stop = true,
            other => tally.observe_parsed(other, &data),
        }
        tally
    }

    /// Reading an event in place (its name, its data, a delta's text fields) tallies exactly what
    /// parsing its data whole did, for the shapes a stream sends and for every odd one: escapes,
    /// repeated fields, data that is not an object or not JSON, invalid UTF-8, several data
    /// lines, no `event:` line.
    #[test]
    fn events_read_in_place_tally_as_parsed_whole() {
        let deltas = [
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello, world"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\nb \"q\"\t\t\u00e9"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"Let me  think\n\nabout it"}}"#,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Par"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pk"}}"#,
            r#"{"type":"content_block_delta","delta":{"type":"future_delta","text":"one two","extra":"three four five","n":5,"o":{"text":"nested"},"a":["x"]}}"#,
            r#"{"type":"content_block_delta","delta":null}"#,
            r#"{"type":"content_block_delta","delta":"text"}"#,
            r#"{"type":"content_block_delta","delta":["text"]}"#,
            r#"{"type":"content_block_delta"}"#,
            r#"{"delta":{"text":"first one"},"delta":{"text":"second"}}"#,
            r#"{"delta":{"text":"first one"},"delta":7}"#,
            r#"{"delta":{"text":"first one","text":"2"}}"#,
            r#"{"delta":"x","delta":{"text":"the last one counts"}}"#,
            r#"{"delta":{"a":"one","b":"two","c":"three","d":"four","e":"five six"}}"#,
            r#"{"delta":{"text":"x y","n":1.5,"m":-3,"t":true,"f":false,"z":null}}"#,
            r#"{"delta":1.25}"#,
            r#"{"delta":-7}"#,
            r#"{"type":"content_block_delta","delta":{"type":"citations_delta","citation":{"type":"char_location","cited_text":"some words"}}}"#,
            r#"{"del\u0074a":{"text":"escaped key"}}"#,
            r#"{"delta":{"te\u0078t":"escaped field","type":"x"}}"#,
            r#"{"delta":{"type":"text_delta","text":"日本語のテキスト"}}"#,
            r#"  {"delta" : { "text" : "padded" } }   "#,
            r#"[{"delta":{"text":"in an array"}}]"#,
            r#""just a string""#,
            r#"{"delta":{"text":"unterminated"}"#,
            r#"{"delta":{"text":"trailing"}} x"#,
            "",
        ];
        let mut events: Vec<Vec<u8>> = Vec::new();
        for data in deltas {
            for name in [
                "content_block_delta",
                "message_stop",
                "message_delta",
                "ping",
            ] {
                events.push(format!("event: {name}\ndata: {data}\n\n").into_bytes());
            }
            events.push(format!("data: {data}\n\n").into_bytes());
        }
        let odd: [&[u8]; 8] = [
            b"event: content_block_delta\ndata: {\"delta\":{\"text\":\"ab\xffcd\"}}\n\n",
            b"event: content_block_delta\ndata: {\"delta\":\ndata: {\"text\":\"two lines\"}}\n\n",
            b"event: content_block_delta\r\ndata: {\"delta\":{\"text\":\"crlf\"}}\r\n\r\n",
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            b"event: message_stop\n\n",
            b"data: {\"type\":\"message_stop\"}\n\n",
            b"event: message_start\ndata: {\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":3}}}\n\n",
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n",
        ];
        events.extend(odd.iter().map(|e| e.to_vec()));
        for raw in &events {
            let mut scanner = SseScanner::default();
            scanner.push(raw).unwrap();
            let ev = scanner.next_event().unwrap();
            let mut tally = UsageTally::default();
            tally.observe(&ev);
            let whole = tally_parsed_whole(raw);
            let shown = String::from_utf8_lossy(raw);
            assert_eq!(tally.output_estimate, whole.output_estimate, "{shown}");
            assert_eq!(tally.saw_message_stop, whole.saw_message_stop, "{shown}");
            assert_eq!(tally.saw_message_start, whole.saw_message_start, "{shown}");
            assert_eq!(tally.start_usage, whole.start_usage, "{shown}");
            assert_eq!(tally.last_delta_usage, whole.last_delta_usage, "{shown}");
            assert_eq!(tally.error, whole.error, "{shown}");
            assert_eq!(tally.model, whole.model, "{shown}");
        }
        // The ordinary delta is read in place and counted.
        let ordinary = &events[0];
        assert!(tally_parsed_whole(ordinary).output_estimate > 0);
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut scanner = SseScanner::default();
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert!(scanner.push(&big).is_err());
    }
}
