//! Sequence gaps (opt-in, `HOOKRELAY_SEQUENCE_GAPS=on`): the engine numbers its deliveries with
//! `sequence`, and a delivery the engine gave up on (after its 3 attempts) leaves a hole nobody
//! would otherwise notice. This module owns the pure part: what a stream is, and which holes
//! in the sequences seen are confirmed gaps. The receiver records each published sequence (two
//! writes per event, `hookrelay-aws`'s sequence store); the scheduled gap detector reads them
//! back, calls [`detect`] and queues a `hookrelay.sequence_gap` event for each gap.
//!
//! **The assumption, stated:** the engine's document says neither whether `sequence` counts every event of
//! the operator or only the deliveries of one webhook registration. hookrelay assumes it counts
//! the deliveries of one registration: a stream is the operator plus a fingerprint of the secret
//! that verified the delivery (each engine registration issues its own secret). A registration
//! with an event filter whose `sequence` counted every event of the operator would show gaps that
//! are not losses; that is why the detection is off by default. Rotating a registration's secret
//! starts a new stream (its first sequence is the new stream's start, never a gap).
//!
//! **A gap is confirmed** when a later sequence of the same stream arrived at least `grace`
//! before now: the missing ones then had the sender's whole retry schedule (the engine's last
//! attempt is 35 s after the first, plus its 10 s timeout) and the grace besides. Holes before the
//! first sequence a stream ever showed are not gaps (hookrelay was not listening), and a missing
//! sequence with nothing after it can't be known yet. Out-of-order arrivals fill their hole
//! before the grace runs out, so they are counted (at recording), never reported.

use hookrelay::signature::SigningSecret;

use crate::idempotency::StoreError;

/// The label the registration fingerprint is an HMAC of, under the registration's secret.
pub const FINGERPRINT_LABEL: &[u8] = b"hookrelay sequence stream v1";

/// The event type of a gap report.
pub const GAP_EVENT_TYPE: &str = "hookrelay.sequence_gap";

/// A non-secret name for the registration a secret belongs to: the first 8 bytes (hex) of the
/// HMAC-SHA256 of [`FINGERPRINT_LABEL`] under it. An HMAC, never a plain hash of the secret: the
/// fingerprint says nothing about the secret without it, even for a short secret.
pub fn registration_fingerprint(secret: &SigningSecret) -> String {
    hex::encode(&secret.fingerprint(FINGERPRINT_LABEL)[..8])
}

/// One stream of sequences: an engine operator as one registration (one secret) sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SequenceStream {
    /// The registration's fingerprint ([`registration_fingerprint`]).
    pub registration: String,
    /// The body's `operatorId` (empty when the delivery had none).
    pub operator: String,
}

impl SequenceStream {
    /// The stream's key in the store: `engine/{registration}/{operator}` (the fingerprint is
    /// fixed-length hex, so no operator id can make two streams share a key).
    pub fn key(&self) -> String {
        format!("engine/{}/{}", self.registration, self.operator)
    }

    /// The stream a key names, if it is one.
    pub fn from_key(key: &str) -> Option<Self> {
        let rest = key.strip_prefix("engine/")?;
        let (registration, operator) = rest.split_once('/')?;
        (registration.len() == 16 && registration.bytes().all(|b| b.is_ascii_hexdigit())).then(
            || Self {
                registration: registration.to_owned(),
                operator: operator.to_owned(),
            },
        )
    }
}

/// A sequence seen, and when (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The sequence.
    pub sequence: u64,
    /// When its delivery was published.
    pub seen_at: i64,
}

/// Missing sequences `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The first missing sequence.
    pub first: u64,
    /// The last missing sequence.
    pub last: u64,
    /// The sequence seen just before the gap.
    pub after: u64,
    /// The sequence seen just after it.
    pub before: u64,
}

/// What one detection pass over a stream found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// The confirmed gaps, in order.
    pub gaps: Vec<Gap>,
    /// Every sequence up to this one is now seen or reported (the detector's checkpoint);
    /// `None` when nothing was checked yet.
    pub checked_through: Option<u64>,
}

/// The confirmed gaps in `seen` (ascending by sequence, each above `checked_through`), at `now`,
/// with a gap confirmed once the sequence after it is `grace_secs` old. Stops at the first gap
/// not confirmed yet, so a late arrival can still fill it.
pub fn detect(checked_through: Option<u64>, seen: &[Seen], now: i64, grace_secs: i64) -> Detection {
    let mut gaps = Vec::new();
    // The next sequence expected; before the first one a stream ever showed, none.
    let mut next = checked_through.map(|c| c.saturating_add(1));
    for item in seen {
        let expected = *next.get_or_insert(item.sequence);
        if item.sequence < expected {
            continue;
        }
        if item.sequence > expected {
            if now.saturating_sub(item.seen_at) < grace_secs {
                break;
            }
            gaps.push(Gap {
                first: expected,
                last: item.sequence - 1,
                after: expected - 1,
                before: item.sequence,
            });
        }
        next = Some(item.sequence.saturating_add(1));
    }
    Detection {
        gaps,
        checked_through: next.map(|n| n - 1).or(checked_through),
    }
}

/// The type of a sequence store that is `None` (gap detection off): it has no values, so it only
/// names the type parameter of an absent store.
#[derive(Debug, Clone, Copy)]
pub enum NoSequences {}

impl SequenceStore for NoSequences {
    async fn record(
        &self,
        _: &SequenceStream,
        _: u64,
        _: i64,
        _: i64,
    ) -> Result<Arrival, StoreError> {
        match *self {}
    }

    async fn streams(&self) -> Result<Vec<StreamHead>, StoreError> {
        match *self {}
    }

    async fn seen_since(
        &self,
        _: &SequenceStream,
        _: Option<u64>,
        _: usize,
    ) -> Result<Vec<Seen>, StoreError> {
        match *self {}
    }

    async fn checkpoint(
        &self,
        _: &SequenceStream,
        _: Option<u64>,
        _: u64,
    ) -> Result<(), StoreError> {
        match *self {}
    }
}

/// How a recorded sequence arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Above every sequence the stream showed before.
    InOrder,
    /// Below the stream's highest: a late one (counted as `OutOfOrder`, never a gap).
    OutOfOrder,
}

/// A stream as the store keeps its head: the highest sequence seen and the detector's
/// checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHead {
    /// The stream.
    pub stream: SequenceStream,
    /// The highest sequence seen.
    pub max_sequence: u64,
    /// Everything up to here is seen or reported ([`Detection::checked_through`]).
    pub checked_through: Option<u64>,
}

/// Where sequences are recorded and read back: two writes per recorded event (the sequence, and
/// the stream's head), and for the detector one query of its streams and one per stream with
/// new sequences. DynamoDB in `hookrelay-aws`.
pub trait SequenceStore {
    /// Records that `sequence` of `stream` was published at `seen_at`, kept until `expires_at`.
    fn record(
        &self,
        stream: &SequenceStream,
        sequence: u64,
        seen_at: i64,
        expires_at: i64,
    ) -> impl Future<Output = Result<Arrival, StoreError>> + Send;

    /// Every stream's head.
    fn streams(&self) -> impl Future<Output = Result<Vec<StreamHead>, StoreError>> + Send;

    /// The sequences of `stream` above `after` (all when `None`), ascending, at most `limit`.
    fn seen_since(
        &self,
        stream: &SequenceStream,
        after: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Seen>, StoreError>> + Send;

    /// Moves `stream`'s checkpoint from `from` to `to`, only if it is still `from` (so two
    /// detectors never report one gap twice).
    fn checkpoint(
        &self,
        stream: &SequenceStream,
        from: Option<u64>,
        to: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The `data` of a gap report: what a trading bot needs to reconcile from the engine's REST API.
pub fn gap_report(stream: &SequenceStream, gap: &Gap, detected_at: &str) -> String {
    serde_json::json!({
        "type": GAP_EVENT_TYPE,
        "operator_id": stream.operator,
        "registration": stream.registration,
        "first_missing": gap.first,
        "last_missing": gap.last,
        "missing": gap.last - gap.first + 1,
        "last_seen_before": gap.after,
        "first_seen_after": gap.before,
        "detected_at": detected_at,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;
    const GRACE: i64 = 120;

    fn seen(sequences: &[(u64, i64)]) -> Vec<Seen> {
        sequences
            .iter()
            .map(|&(sequence, age)| Seen {
                sequence,
                seen_at: NOW - age,
            })
            .collect()
    }

    fn ranges(detection: &Detection) -> Vec<(u64, u64)> {
        detection.gaps.iter().map(|g| (g.first, g.last)).collect()
    }

    #[test]
    fn exactly_the_missing_sequences_are_gaps_once_the_grace_has_passed() {
        let d = detect(
            None,
            &seen(&[
                (10, 900),
                (11, 900),
                (13, 800),
                (14, 700),
                (18, 600),
                (19, 10),
            ]),
            NOW,
            GRACE,
        );
        assert_eq!(ranges(&d), vec![(12, 12), (15, 17)]);
        assert_eq!(d.checked_through, Some(19));
        assert_eq!((d.gaps[1].after, d.gaps[1].before), (14, 18));
    }

    #[test]
    fn a_gap_whose_next_sequence_is_recent_waits_for_a_late_arrival() {
        let d = detect(Some(4), &seen(&[(5, 500), (7, 30), (8, 20)]), NOW, GRACE);
        assert!(d.gaps.is_empty());
        assert_eq!(d.checked_through, Some(5), "stops before the open hole");
        // The late one arrived (out of order): nothing to report, ever.
        let d = detect(Some(5), &seen(&[(6, 1), (7, 30), (8, 20)]), NOW, GRACE);
        assert!(d.gaps.is_empty());
        assert_eq!(d.checked_through, Some(8));
    }

    #[test]
    fn the_first_sequence_of_a_stream_is_its_start_and_duplicates_are_ignored() {
        let d = detect(
            None,
            &seen(&[(1000, 900), (1000, 900), (1001, 800)]),
            NOW,
            GRACE,
        );
        assert!(d.gaps.is_empty());
        assert_eq!(d.checked_through, Some(1001));
        let nothing = detect(Some(7), &[], NOW, GRACE);
        assert_eq!(nothing.checked_through, Some(7));
        assert_eq!(detect(None, &[], NOW, GRACE).checked_through, None);
    }

    #[test]
    fn a_hole_right_after_the_checkpoint_is_a_gap() {
        let d = detect(Some(41), &seen(&[(45, 500)]), NOW, GRACE);
        assert_eq!(ranges(&d), vec![(42, 44)]);
        assert_eq!(d.checked_through, Some(45));
    }

    #[test]
    fn stream_keys_round_trip_and_fingerprints_are_keyed_not_plain_hashes() {
        let secret = SigningSecret::from_key_bytes(b"registration-a-secret");
        let fingerprint = registration_fingerprint(&secret);
        assert_eq!(fingerprint.len(), 16);
        assert_ne!(
            fingerprint,
            registration_fingerprint(&SigningSecret::from_key_bytes(b"registration-b-secret"))
        );
        use sha2::Digest;
        let plain = hex::encode(sha2::Sha256::digest(b"registration-a-secret"));
        assert!(!plain.starts_with(&fingerprint));
        let stream = SequenceStream {
            registration: fingerprint,
            operator: "op/with/slashes".to_owned(),
        };
        assert_eq!(SequenceStream::from_key(&stream.key()), Some(stream));
        assert_eq!(SequenceStream::from_key("engine/short/op"), None);
    }

    #[test]
    fn a_report_names_the_stream_and_the_range() {
        let stream = SequenceStream {
            registration: "0123456789abcdef".to_owned(),
            operator: "op-1".to_owned(),
        };
        let gap = Gap {
            first: 42,
            last: 44,
            after: 41,
            before: 45,
        };
        let report: serde_json::Value =
            serde_json::from_str(&gap_report(&stream, &gap, "2026-12-02T17:00:00.000Z")).unwrap();
        assert_eq!(report["type"], GAP_EVENT_TYPE);
        assert_eq!(report["missing"], 3);
        assert_eq!(report["operator_id"], "op-1");
    }
}
