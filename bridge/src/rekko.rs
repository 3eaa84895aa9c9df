//! The Rekko SSE feed (docs/contract.md, "The senders"): `GET /v1/stream?events=...` with the Bearer key, read line by
//! line into the buffer until shutdown, reconnecting with backoff whenever it ends.
//!
//! Framing: the provider's examples read one JSON object per line; a standard SSE server frames the
//! same objects as `data:` lines ended by a blank line. [`SseDecoder`] accepts both: a line that
//! starts with `{` is an event on its own; `data:` lines accumulate until a blank line; `id:`
//! is remembered and sent back as `Last-Event-ID` on reconnect (so a server that supports it can
//! resume); `retry:` raises the next reconnect delay; comments (`:`) and `event:` are ignored
//! (the type is the object's own `type`). Lines end in `\n` or `\r\n`.
//!
//! A line that is not UTF-8 or longer than an SQS message can hold is skipped (logged, counted
//! as `Malformed`); the stream goes on.
//!
//! A 401/403 is fatal once its few long-delayed retries are used up (the process exits naming
//! the key's variable); any other failure or the
//! stream ending reconnects with jittered exponential backoff (at least the server's `retry:`,
//! capped like the backoff), reset once a connection has delivered an event. Silence for the
//! idle timeout (waiting for buffer room doesn't count) reconnects without growing the delay:
//! the seed documents no heartbeat, so a quiet feed may simply be a quiet market.

use std::time::Duration;

use hookrelay_ingest::providers::rekko::route_stream_event as parse_rekko_stream_event;
use hookrelay_ingest::stream::StreamSource;
use http_body_util::{BodyExt, Empty};
use hyper::header::{ACCEPT, AUTHORIZATION, CACHE_CONTROL};
use tokio::time::{Instant, timeout_at};

use crate::backoff::Ending;
use crate::config::{RekkoConfig, vars};
use crate::connect::{self, bearer_header};
use crate::stats::bump;
use crate::{AuthRetries, FatalError, Reconnects, SessionEnd, StreamContext, until_shutdown};

const STREAM: StreamSource = StreamSource::Rekko;
/// The longest line (or `data:` event) accepted; an SQS message holds at most 1 MiB.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Streams Rekko events into the buffer until shutdown or a fatal error.
pub(crate) async fn run(mut ctx: StreamContext, config: RekkoConfig) -> Result<(), FatalError> {
    let mut resume = Resume::default();
    let mut reconnects = Reconnects::new(&ctx, STREAM);
    let mut refusals = AuthRetries::new(STREAM);
    loop {
        let end = match session(&mut ctx, &config, &mut resume).await {
            Ok(end) => end,
            Err(error) => match refusals.after(&mut ctx, error).await? {
                true => continue,
                false => return Ok(()),
            },
        };
        refusals.accepted();
        if !reconnects.after(&mut ctx, end).await {
            return Ok(());
        }
    }
}

/// What carries over from one connection to the next.
#[derive(Debug, Default)]
struct Resume {
    last_event_id: Option<String>,
    retry: Option<Duration>,
}

async fn session(
    ctx: &mut StreamContext,
    config: &RekkoConfig,
    resume: &mut Resume,
) -> Result<SessionEnd, FatalError> {
    // Healthy once an event came through. A feed that answered 200 and then went quiet for the
    // whole idle timeout is treated as healthy too: the seed documents no heartbeat, so silence
    // may just be a quiet market, and a growing delay would only widen the gap.
    let ended = |reason: String, healthy: bool, resume: &Resume| {
        let at_least = resume.retry.unwrap_or_default();
        SessionEnd::dropped(
            reason,
            Ending {
                healthy,
                prompt: false,
                at_least,
            },
        )
    };
    let url = format!("{}?events={}", config.stream_url, config.events.join(","));
    let mut request = hyper::Request::get(&url)
        .header(AUTHORIZATION, bearer_header(&config.token.bearer())?)
        .header(ACCEPT, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache");
    if let Some(id) = &resume.last_event_id {
        request = request.header("last-event-id", id.as_str());
    }
    let request = request
        .body(Empty::new())
        .map_err(|error| FatalError::Setup(format!("{}: {error}", vars::REKKO_STREAM_URL)))?;
    let mut shutdown = ctx.shutdown.clone();
    let sending = connect::send(&ctx.http, request, STREAM, vars::REKKO_API_KEY);
    let response = match until_shutdown(&mut shutdown, sending).await {
        None => return Ok(SessionEnd::Shutdown),
        Some(sent) => match sent? {
            Ok(response) => response,
            Err(reason) => return Ok(ended(reason, false, resume)),
        },
    };
    tracing::info!(stream = STREAM.provider(), events = %config.events.join(","), "connected");

    let stats = ctx.stats.clone();
    let counters = stats.of(STREAM);
    let mut body = response.into_body();
    let mut decoder = SseDecoder::resuming(resume.last_event_id.clone());
    let mut healthy = false;
    let mut last_bytes = Instant::now();
    loop {
        let frame = tokio::select! {
            biased;
            () = ctx.shutdown.requested() => return Ok(SessionEnd::Shutdown),
            frame = timeout_at(last_bytes + ctx.idle_timeout, body.frame()) => frame,
        };
        let bytes = match frame {
            Err(_) => {
                let reason = format!("nothing received for {:?}", ctx.idle_timeout);
                return Ok(ended(reason, true, resume));
            }
            Ok(None) => return Ok(ended("the server ended the stream".into(), healthy, resume)),
            Ok(Some(Err(error))) => {
                return Ok(ended(format!("read failed: {error}"), healthy, resume));
            }
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(bytes) => bytes,
                Err(_trailers) => continue,
            },
        };
        let events = decoder.feed(&bytes);
        for skipped in decoder.take_skipped() {
            bump(&counters.malformed);
            tracing::warn!(stream = STREAM.provider(), error = %skipped, "line skipped");
        }
        resume.last_event_id.clone_from(&decoder.last_event_id);
        resume.retry = decoder.retry.or(resume.retry);
        for text in events {
            match parse_rekko_stream_event(text) {
                Ok(event) => {
                    healthy = true;
                    bump(&counters.events);
                    if !ctx.deliver(event).await {
                        return Ok(SessionEnd::Shutdown);
                    }
                }
                Err(error) => {
                    bump(&counters.malformed);
                    tracing::warn!(stream = STREAM.provider(), %error, "event skipped");
                }
            }
        }
        // Time spent waiting for buffer room (backpressure) is not silence.
        last_bytes = Instant::now();
    }
}

/// Why a line of the stream was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line or event grew past the limit without ending.
    #[error("an event exceeded {MAX_EVENT_BYTES} bytes")]
    TooLong,
    /// A line is not UTF-8.
    #[error("a line is not UTF-8")]
    NotUtf8,
}

/// Splits a byte stream into event texts (see the module docs for the framing accepted). A bad
/// line (not UTF-8, or longer than an SQS message can hold) is skipped and reported through
/// [`SseDecoder::take_skipped`]; the stream goes on.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    /// Inside an over-long line: drop bytes until its end.
    discarding: bool,
    data: String,
    has_data: bool,
    skipped: Vec<SseError>,
    /// The last `id:` seen (only ids an HTTP header can carry back).
    pub last_event_id: Option<String>,
    /// The last `retry:` seen.
    pub retry: Option<Duration>,
}

impl SseDecoder {
    /// A decoder for a stream resumed after `last_event_id`, which it keeps until a new `id:`.
    pub fn resuming(last_event_id: Option<String>) -> Self {
        Self {
            last_event_id,
            ..Self::default()
        }
    }

    /// Feeds the next bytes; returns the events they complete, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = (&rest[..end], &rest[end + 1..]);
            rest = tail;
            if std::mem::take(&mut self.discarding) {
                self.line.clear();
                continue;
            }
            self.line.extend_from_slice(head);
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            match String::from_utf8(line) {
                Ok(line) => self.on_line(line, &mut events),
                Err(_) => self.skip(SseError::NotUtf8),
            }
        }
        if self.discarding {
            return events;
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > MAX_EVENT_BYTES {
            self.line.clear();
            self.discarding = true;
            self.skip(SseError::TooLong);
        }
        events
    }

    /// The lines skipped since the last call.
    pub fn take_skipped(&mut self) -> Vec<SseError> {
        std::mem::take(&mut self.skipped)
    }

    fn skip(&mut self, error: SseError) {
        // A bad line inside a `data:` event spoils the whole event.
        self.data.clear();
        self.has_data = false;
        self.skipped.push(error);
    }

    fn on_line(&mut self, line: String, events: &mut Vec<String>) {
        if line.is_empty() {
            if self.has_data {
                events.push(std::mem::take(&mut self.data));
                self.has_data = false;
            }
            return;
        }
        if line.starts_with('{') && !self.has_data {
            events.push(line);
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "" => {} // a comment, e.g. a keep-alive
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > MAX_EVENT_BYTES {
                    self.skip(SseError::TooLong);
                }
            }
            // Sent back as a header on reconnect, so only what a header can carry.
            "id" if value
                .bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) =>
            {
                self.last_event_id = Some(value.to_owned());
            }
            "retry" => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {} // `event:` and unknown fields
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_json_lines_as_the_seed_reads_them() {
        let mut d = SseDecoder::default();
        let events =
            d.feed(b"{\"type\":\"price_shift\",\"a\":1}\n\n{\"type\":\"whale_alert\"}\r\n");
        assert_eq!(
            events,
            [
                r#"{"type":"price_shift","a":1}"#,
                r#"{"type":"whale_alert"}"#
            ]
        );
    }

    #[test]
    fn standard_data_framing_ids_retry_and_comments() {
        let mut d = SseDecoder::default();
        let stream = b": keep-alive\nevent: price_shift\nid: 41\nretry: 2500\ndata: {\"type\":\ndata:\"price_shift\"}\n\ndata: {\"type\":\"whale_alert\"}\n\n";
        let events = d.feed(stream);
        assert_eq!(
            events,
            ["{\"type\":\n\"price_shift\"}", "{\"type\":\"whale_alert\"}"]
        );
        assert_eq!(d.last_event_id.as_deref(), Some("41"));
        assert_eq!(d.retry, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn events_split_across_reads_are_joined() {
        let mut d = SseDecoder::default();
        let whole = b"data: {\"type\":\"x\",\"market_id\":\"m\"}\r\n\r\n{\"type\":\"y\"}\n";
        let mut events = Vec::new();
        for chunk in whole.chunks(3) {
            events.extend(d.feed(chunk));
        }
        assert_eq!(
            events,
            [r#"{"type":"x","market_id":"m"}"#, r#"{"type":"y"}"#]
        );
    }

    #[test]
    fn bad_lines_are_skipped_and_the_stream_goes_on() {
        let mut d = SseDecoder::default();
        let mut events = d.feed(b"{\"type\":\"a\"}\ndata: \xff\n\n");
        events.extend(d.feed(&vec![b'x'; MAX_EVENT_BYTES + 1]));
        events.extend(d.feed(b"still the long line\n{\"type\":\"b\"}\n"));
        assert_eq!(events, [r#"{"type":"a"}"#, r#"{"type":"b"}"#]);
        assert_eq!(d.take_skipped(), [SseError::NotUtf8, SseError::TooLong]);
        assert!(d.take_skipped().is_empty());
    }

    #[test]
    fn ids_a_header_cannot_carry_are_ignored_and_resumed_ids_kept() {
        let mut d = SseDecoder::resuming(Some("7".into()));
        d.feed(b"id: bad\x01id\ndata: {}\n\n");
        assert_eq!(d.last_event_id.as_deref(), Some("7"));
        d.feed(b"id: 8\n");
        assert_eq!(d.last_event_id.as_deref(), Some("8"));
    }
}
