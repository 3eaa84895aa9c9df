//! Signature schemes: which bytes each sender signs, how the tag is written, the constant-time
//! check against every configured secret, and signing, written beside verifying so tests, tools
//! and benchmarks sign with the same code. Also the request headers as received and the HMAC
//! keys, whose `Debug` is redacted. No I/O, no parsing of the body.
//!
//! [`verify`] is the only way to obtain a [`Verified`] value, and routing accepts only a
//! `Verified<SignedRequest>`, so an unverified body cannot reach the queue without failing to
//! compile.
//!
//! Schemes:
//! - engine: `X-Webhook-Signature: sha256=<hex HMAC-SHA256(body)>`; the `sha256=` tag is exact
//!   (lowercase), the hex may be either case.
//! - Rekko: `x-webhook-signature: <hex HMAC-SHA256(body)>`, no tag.
//! - Standard Webhooks: `webhook-signature: v1,<base64> [v1,<base64> ...]` over
//!   `{webhook-id}.{webhook-timestamp}.{body}`; any listed `v1` signature may match, other
//!   versions (such as asymmetric `v1a`) are skipped. Svix sends the same scheme under its own
//!   header names (`svix-id`, `svix-timestamp`, `svix-signature`) unless a customer renamed them:
//!   a complete `svix-*` set is used when all three are present, and so is an incomplete one
//!   when no `webhook-*` header is present; otherwise the `webhook-*` set, so a mix of the two is
//!   read as an incomplete `webhook-*` set (never one header from each). The chosen family's
//!   names are the ones errors name, and a missing header gets the same answer in either family.
//!
//! Timestamps are checked after routing (the receiver's pipeline), because two of the three
//! senders carry theirs inside the signed body.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::config::Redacted;

type HmacSha256 = Hmac<Sha256>;

/// One HMAC-SHA256 key a sender may sign with, held pre-keyed: each verification clones a ready
/// state instead of re-deriving the key pads. Its `Debug` prints `[redacted]`; nothing in this
/// crate turns it back into text.
#[derive(Clone)]
pub struct SigningSecret {
    keyed: Redacted<HmacSha256>,
}

impl SigningSecret {
    /// A secret from its key bytes (the secret string's UTF-8 bytes for the engine and Rekko,
    /// the base64-decoded part after `whsec_` for Standard Webhooks).
    pub fn from_key_bytes(key: &[u8]) -> Self {
        // HMAC accepts keys of any length (long keys are hashed), so this cannot fail.
        let keyed = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        Self {
            keyed: Redacted::new(keyed),
        }
    }

    /// The HMAC-SHA256 of `label` under this key: a non-secret name for the key (never a plain
    /// hash of it, which would let a short secret be guessed offline from its name).
    pub fn fingerprint(&self, label: &[u8]) -> [u8; SHA256_LEN] {
        self.mac(&[label])
    }

    /// The HMAC-SHA256 of the concatenated `parts` under this key.
    fn mac(&self, parts: &[&[u8]]) -> [u8; SHA256_LEN] {
        let mut mac = self.keyed.expose().clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

/// The secrets one sender may currently sign with: more than one during a rotation.
/// Never empty: a sender without secrets is disabled rather than given an empty set.
#[derive(Clone, Debug)]
pub struct SecretSet {
    secrets: Vec<SigningSecret>,
}

impl SecretSet {
    /// A set from at least one secret; `None` when `secrets` is empty.
    pub fn new(secrets: Vec<SigningSecret>) -> Option<Self> {
        (!secrets.is_empty()).then_some(Self { secrets })
    }

    /// The secrets, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &SigningSecret> {
        self.secrets.iter()
    }

    /// How many secrets are configured.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Always false: a set is never empty (kept for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

/// Request headers as received: names compared case-insensitively, values as bytes. `Debug`
/// prints the names only: values carry signatures and the front's origin secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(name, _)| name))
            .finish()
    }
}

/// Why a header could not be read as one text value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderProblem {
    /// The header is absent, or present with an empty value.
    Missing,
    /// The header appears more than once, so which value counts would be a guess.
    Repeated,
    /// The value is not visible ASCII text.
    NotText,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one header (a repeated name is kept as a second value).
    pub fn append(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.entries.push((name.to_ascii_lowercase(), value.into()));
    }

    /// Sets `name` to `value`, replacing every earlier value of it.
    pub fn insert(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.remove(name);
        self.append(name, value);
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Removes every header.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Every header, names in lowercase, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// The single text value of header `name`, trimmed.
    pub fn get(&self, name: &str) -> Result<&str, HeaderProblem> {
        self.text(self.position(name)?)
    }

    fn position(&self, name: &str) -> Result<usize, HeaderProblem> {
        let mut found = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| n.eq_ignore_ascii_case(name))
            .map(|(at, _)| at);
        let at = found.next().ok_or(HeaderProblem::Missing)?;
        if found.next().is_some() {
            return Err(HeaderProblem::Repeated);
        }
        Ok(at)
    }

    fn text(&self, at: usize) -> Result<&str, HeaderProblem> {
        let value = &self.entries[at].1;
        // Visible ASCII and tab only, as the `http` crate's `HeaderValue::to_str` reads it.
        if !value
            .iter()
            .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        {
            return Err(HeaderProblem::NotText);
        }
        // Checked above: ASCII is UTF-8.
        let text = std::str::from_utf8(value).unwrap_or_default().trim();
        if text.is_empty() {
            return Err(HeaderProblem::Missing);
        }
        Ok(text)
    }
}

impl<N: AsRef<str>, V: Into<Vec<u8>>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> Self {
        let mut headers = Self::new();
        for (name, value) in pairs {
            headers.append(name.as_ref(), value);
        }
        headers
    }
}

/// A request as received, before anything is trusted: its headers and the body bytes exactly as
/// the sender signed them (after Lambda's base64 transport encoding, if any, was undone).
#[derive(Debug, Clone)]
pub struct SignedRequest {
    /// Request headers.
    pub headers: Headers,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// A request whose signature has been checked. Only [`verify`] can build one.
#[derive(Debug)]
pub struct Verified<T> {
    value: T,
    signature_at: usize,
    standard_names: Option<StandardHeaderNames>,
    secret_index: usize,
}

impl Verified<SignedRequest> {
    /// The verified request.
    pub fn get(&self) -> &SignedRequest {
        &self.value
    }

    /// The signature header's value as verified (trimmed), read once during verification.
    pub fn signature(&self) -> &str {
        self.value
            .headers
            .text(self.signature_at)
            .unwrap_or_default()
    }

    /// Which of the configured secrets (in configuration order) the signature matched; the
    /// last one when several did. Chosen in constant time, like the match itself. It names the
    /// sender's registration (each engine registration issues its own secret), for the
    /// sequence-gap streams.
    pub fn secret_index(&self) -> usize {
        self.secret_index
    }

    /// For a Standard Webhooks delivery, the header family that was verified (`webhook-*` or
    /// `svix-*`): where its id and timestamp are.
    pub fn standard_names(&self) -> Option<StandardHeaderNames> {
        self.standard_names
    }
}

/// How a sender signs its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Hex HMAC-SHA256 of the raw body in `header`, preceded by exactly `tag`.
    HexBodyHmac {
        /// Header carrying the signature.
        header: &'static str,
        /// Text before the hex digits (`"sha256="` for the engine, `""` for Rekko).
        tag: &'static str,
    },
    /// The Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    StandardWebhooks,
}

/// One family of Standard Webhooks header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StandardHeaderNames {
    /// The delivery's unique id, part of the signed content.
    pub id: &'static str,
    /// Unix seconds when the delivery was signed, part of the signed content.
    pub timestamp: &'static str,
    /// Space-separated `version,signature` pairs.
    pub signature: &'static str,
}

/// Standard Webhooks header names: the spec's (`webhook-*`) and Svix's (`svix-*`).
pub mod standard_headers {
    use super::{Headers, StandardHeaderNames};

    /// The delivery's unique id, part of the signed content.
    pub const ID: &str = "webhook-id";
    /// Unix seconds when the delivery was signed, part of the signed content.
    pub const TIMESTAMP: &str = "webhook-timestamp";
    /// Space-separated `version,signature` pairs.
    pub const SIGNATURE: &str = "webhook-signature";

    /// The spec's names.
    pub const WEBHOOK: StandardHeaderNames = StandardHeaderNames {
        id: ID,
        timestamp: TIMESTAMP,
        signature: SIGNATURE,
    };

    /// Svix's default names.
    pub const SVIX: StandardHeaderNames = StandardHeaderNames {
        id: "svix-id",
        timestamp: "svix-timestamp",
        signature: "svix-signature",
    };

    /// The family a request uses: `svix-*` when all three of its headers are present (with a
    /// value), or when some are and no `webhook-*` header is; else `webhook-*` (so a mix is an
    /// incomplete `webhook-*` set).
    pub fn family(headers: &Headers) -> StandardHeaderNames {
        // Present: there, with a value that isn't blank (a repeated or unreadable one counts).
        let present = |names: StandardHeaderNames| {
            [names.id, names.timestamp, names.signature]
                .into_iter()
                .filter(|name| headers.get(name) != Err(super::HeaderProblem::Missing))
                .count()
        };
        match (present(SVIX), present(WEBHOOK)) {
            (3, _) => SVIX,
            (1.., 0) => SVIX,
            _ => WEBHOOK,
        }
    }
}

/// Why a delivery failed verification. Messages never include a signature or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature header is absent or empty.
    #[error("the {header} header is missing")]
    MissingSignature {
        /// The header that was expected.
        header: &'static str,
    },
    /// A header that is part of the signed content is absent, so nothing can be checked.
    #[error("the {header} header is missing; it is part of the signed content")]
    MissingSignedHeader {
        /// The header that was expected.
        header: &'static str,
    },
    /// The signature is present but wrong, unreadable or ambiguous.
    #[error("{0}")]
    InvalidSignature(&'static str),
}

const SHA256_LEN: usize = 32;

impl Scheme {
    /// The header carrying the signature.
    pub fn signature_header(self) -> &'static str {
        match self {
            Self::HexBodyHmac { header, .. } => header,
            Self::StandardWebhooks => standard_headers::SIGNATURE,
        }
    }

    /// The key bytes of one configured secret: the text's UTF-8 bytes for the hex schemes (as
    /// the engine's and Rekko's own examples use them), the base64 after an optional `whsec_`
    /// for Standard Webhooks.
    pub fn key_from_text(self, text: &str) -> Result<Vec<u8>, &'static str> {
        match self {
            Self::HexBodyHmac { .. } => Ok(text.as_bytes().to_vec()),
            Self::StandardWebhooks => BASE64
                .decode(text.strip_prefix("whsec_").unwrap_or(text))
                .map_err(|_| "is not whsec_ followed by base64"),
        }
    }

    /// The headers that sign `body` with `secret`, as this scheme's senders send them. For
    /// Standard Webhooks, `id_and_timestamp` are the `webhook-id` and `webhook-timestamp` values
    /// (signed, and returned as headers too); the hex schemes ignore them.
    pub fn sign(
        self,
        secret: &SigningSecret,
        id_and_timestamp: Option<(&str, &str)>,
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        match self {
            Self::HexBodyHmac { header, tag } => {
                vec![(header, format!("{tag}{}", hex::encode(secret.mac(&[body]))))]
            }
            Self::StandardWebhooks => {
                let (id, timestamp) = id_and_timestamp.unwrap_or_default();
                vec![
                    (standard_headers::ID, id.to_owned()),
                    (standard_headers::TIMESTAMP, timestamp.to_owned()),
                    (
                        standard_headers::SIGNATURE,
                        format!(
                            "v1,{}",
                            BASE64.encode(standard_mac(secret, id, timestamp, body))
                        ),
                    ),
                ]
            }
        }
    }
}

/// Checks `request` against `scheme` with each of `secrets`; any one secret may have signed.
pub fn verify(
    scheme: Scheme,
    secrets: &SecretSet,
    request: SignedRequest,
) -> Result<Verified<SignedRequest>, VerifyError> {
    let standard_names =
        (scheme == Scheme::StandardWebhooks).then(|| standard_headers::family(&request.headers));
    let signature_header = standard_names.map_or(scheme.signature_header(), |n| n.signature);
    let signature_at = signature_position(&request.headers, signature_header)?;
    let signature = request
        .headers
        .text(signature_at)
        .map_err(|problem| signature_problem(signature_header, problem))?;
    let secret_index = match scheme {
        Scheme::HexBodyHmac { tag, .. } => verify_hex_body(signature, tag, secrets, &request.body)?,
        Scheme::StandardWebhooks => {
            let names = standard_names.unwrap_or(standard_headers::WEBHOOK);
            verify_standard(names, signature, secrets, &request)?
        }
    };
    Ok(Verified {
        value: request,
        signature_at,
        standard_names,
        secret_index,
    })
}

fn signature_problem(header: &'static str, problem: HeaderProblem) -> VerifyError {
    match problem {
        HeaderProblem::Missing => VerifyError::MissingSignature { header },
        HeaderProblem::Repeated => {
            VerifyError::InvalidSignature("the signature header appears more than once")
        }
        HeaderProblem::NotText => {
            VerifyError::InvalidSignature("the signature header is not ASCII text")
        }
    }
}

fn signature_position(headers: &Headers, header: &'static str) -> Result<usize, VerifyError> {
    headers
        .position(header)
        .map_err(|problem| signature_problem(header, problem))
}

fn verify_hex_body(
    value: &str,
    tag: &'static str,
    secrets: &SecretSet,
    body: &[u8],
) -> Result<usize, VerifyError> {
    let hex_digits = value
        .strip_prefix(tag)
        .ok_or(VerifyError::InvalidSignature(
            "the signature does not start with the expected scheme tag",
        ))?;
    let mut claimed = [0u8; SHA256_LEN];
    hex::decode_to_slice(hex_digits, &mut claimed).map_err(|_| {
        VerifyError::InvalidSignature("the signature is not the hex of a SHA-256 HMAC")
    })?;
    // Every secret is tried (no early exit), and which one matched is selected in constant
    // time, so timing does not reveal it.
    let mut matched = subtle::Choice::from(0);
    let mut index = 0u64;
    for (i, secret) in secrets.iter().enumerate() {
        let this = secret.mac(&[body]).ct_eq(&claimed);
        index = u64::conditional_select(&index, &(i as u64), this);
        matched |= this;
    }
    if bool::from(matched) {
        Ok(index as usize)
    } else {
        Err(VerifyError::InvalidSignature(
            "the signature does not match the body",
        ))
    }
}

fn standard_mac(
    secret: &SigningSecret,
    id: &str,
    timestamp: &str,
    body: &[u8],
) -> [u8; SHA256_LEN] {
    secret.mac(&[id.as_bytes(), b".", timestamp.as_bytes(), b".", body])
}

fn verify_standard(
    names: StandardHeaderNames,
    signatures: &str,
    secrets: &SecretSet,
    request: &SignedRequest,
) -> Result<usize, VerifyError> {
    let signed_header = |header: &'static str| {
        request
            .headers
            .get(header)
            .map_err(|problem| match problem {
                HeaderProblem::Missing => VerifyError::MissingSignedHeader { header },
                HeaderProblem::Repeated | HeaderProblem::NotText => {
                    VerifyError::InvalidSignature("a signed header is repeated or not ASCII text")
                }
            })
    };
    let id = signed_header(names.id)?;
    let timestamp = signed_header(names.timestamp)?;

    let mut claimed = Vec::new();
    for entry in signatures.split_ascii_whitespace() {
        let Some(("v1", encoded)) = entry.split_once(',') else {
            continue;
        };
        // A malformed entry can't match anything; skip it rather than fail the whole header,
        // as the spec lets senders list several signatures.
        if let Ok(bytes) = BASE64.decode(encoded) {
            claimed.push(bytes);
        }
    }
    if claimed.is_empty() {
        return Err(VerifyError::InvalidSignature(
            "the signature header has no readable v1 signature",
        ));
    }

    let mut matched = subtle::Choice::from(0);
    let mut index = 0u64;
    for (i, secret) in secrets.iter().enumerate() {
        let expected = standard_mac(secret, id, timestamp, &request.body);
        for candidate in &claimed {
            let this = expected.as_slice().ct_eq(candidate);
            index = u64::conditional_select(&index, &(i as u64), this);
            matched |= this;
        }
    }
    if bool::from(matched) {
        Ok(index as usize)
    } else {
        Err(VerifyError::InvalidSignature(
            "no v1 signature matches the signed content",
        ))
    }
}

#[cfg(test)]
#[path = "signature_tests.rs"]
mod tests;
