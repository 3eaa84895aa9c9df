//! The Rekko SSE feed (seed 000): `GET /v1/stream?events=...` with the Bearer key, read line by
//! line into the buffer until shutdown, reconnecting with backoff whenever it ends.
//!
//! Framing: the seed's examples read one JSON object per line; a standard SSE server frames the
//! same objects as `data:` lines ended by a blank line. [`SseDecoder`] accepts both: a line that
//! starts with `{` is an event on its own; `data:` lines accumulate until a blank line; `id:`
//! is remembered and sent back as `Last-Event-ID` on reconnect (so a server that supports it can
//! resume); `retry:` raises the next reconnect delay; comments (`:`) and `event:` are ignored
//! (the type is the object's own `type`). Lines end in `\n` or `\r\n`.
//!
//! A 401/403 is fatal (the process exits naming the key's variable); any other failure, the
//! stream ending, or silence for the idle timeout reconnects with jittered exponential backoff,
//! reset once a connection has delivered an event.

use std::time::Duration;

use hookrelay::providers::{StreamSource, parse_rekko_stream_event};
use http_body_util::{BodyExt, Empty};
use hyper::header::{ACCEPT, AUTHORIZATION, CACHE_CONTROL};
use tokio::time::{Instant, timeout_at};

use crate::backoff::Backoff;
use crate::config::{RekkoConfig, vars};
use crate::connect::{self, bearer_header};
use crate::stats::bump;
use crate::{FatalError, SessionEnd, StreamContext};

const STREAM: StreamSource = StreamSource::Rekko;
/// The longest line (or `data:` event) accepted; an SQS message holds at most 1 MiB.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Streams Rekko events into the buffer until shutdown or a fatal error.
pub(crate) async fn run(mut ctx: StreamContext, config: RekkoConfig) -> Result<(), FatalError> {
    let mut backoff = Backoff::new(ctx.backoff);
    let mut resume = Resume::default();
    loop {
        let end = session(&mut ctx, &config, &mut resume).await?;
        let SessionEnd::Dropped {
            reason, healthy, ..
        } = end
        else {
            return Ok(());
        };
        bump(&ctx.stats.of(STREAM).reconnects);
        if healthy {
            backoff.reset();
        }
        let delay = backoff
            .next_jittered()
            .max(resume.retry.unwrap_or_default());
        tracing::warn!(
            stream = STREAM.provider(),
            %reason,
            delay_ms = delay.as_millis() as u64,
            "stream ended; reconnecting"
        );
        if !ctx.pause(delay).await {
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
    let dropped = |reason: String, healthy: bool| SessionEnd::Dropped {
        reason,
        healthy,
        close_code: None,
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
    let response = match connect::send(&ctx.http, request, STREAM, vars::REKKO_API_KEY).await? {
        Ok(response) => response,
        Err(reason) => return Ok(dropped(reason, false)),
    };
    tracing::info!(stream = STREAM.provider(), events = %config.events.join(","), "connected");

    let stats = ctx.stats.clone();
    let counters = stats.of(STREAM);
    let mut body = response.into_body();
    let mut decoder = SseDecoder::default();
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
                return Ok(dropped(
                    format!("nothing received for {:?}", ctx.idle_timeout),
                    healthy,
                ));
            }
            Ok(None) => return Ok(dropped("the server ended the stream".into(), healthy)),
            Ok(Some(Err(error))) => return Ok(dropped(format!("read failed: {error}"), healthy)),
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(bytes) => bytes,
                Err(_trailers) => continue,
            },
        };
        let events = match decoder.feed(&bytes) {
            Ok(events) => events,
            Err(error) => return Ok(dropped(error.to_string(), healthy)),
        };
        resume.last_event_id.clone_from(&decoder.last_event_id);
        resume.retry = decoder.retry;
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

/// Why the stream can't be decoded further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line or event grew past the limit without ending.
    #[error("an event exceeded {MAX_EVENT_BYTES} bytes")]
    TooLong,
    /// A line is not UTF-8.
    #[error("the stream is not UTF-8")]
    NotUtf8,
}

/// Splits a byte stream into event texts (see the module docs for the framing accepted).
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    data: String,
    has_data: bool,
    /// The last `id:` seen.
    pub last_event_id: Option<String>,
    /// The last `retry:` seen.
    pub retry: Option<Duration>,
}

impl SseDecoder {
    /// Feeds the next bytes; returns the events they complete, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<String>, SseError> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
            self.on_line(line, &mut events)?;
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > MAX_EVENT_BYTES {
            return Err(SseError::TooLong);
        }
        Ok(events)
    }

    fn on_line(&mut self, line: String, events: &mut Vec<String>) -> Result<(), SseError> {
        if line.is_empty() {
            if self.has_data {
                events.push(std::mem::take(&mut self.data));
                self.has_data = false;
            }
            return Ok(());
        }
        if line.starts_with('{') && !self.has_data {
            events.push(line);
            return Ok(());
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
                    return Err(SseError::TooLong);
                }
            }
            "id" if !value.contains('\0') => self.last_event_id = Some(value.to_owned()),
            "retry" => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {} // `event:` and unknown fields
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_json_lines_as_the_seed_reads_them() {
        let mut d = SseDecoder::default();
        let events = d
            .feed(b"{\"type\":\"price_shift\",\"a\":1}\n\n{\"type\":\"whale_alert\"}\r\n")
            .unwrap();
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
        let events = d.feed(stream).unwrap();
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
            events.extend(d.feed(chunk).unwrap());
        }
        assert_eq!(
            events,
            [r#"{"type":"x","market_id":"m"}"#, r#"{"type":"y"}"#]
        );
    }

    #[test]
    fn runaway_lines_and_bad_utf8_are_errors() {
        let mut d = SseDecoder::default();
        assert_eq!(
            d.feed(&vec![b'a'; MAX_EVENT_BYTES + 1]),
            Err(SseError::TooLong)
        );
        let mut d = SseDecoder::default();
        assert_eq!(d.feed(b"data: \xff\n"), Err(SseError::NotUtf8));
    }
}
