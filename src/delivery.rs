//! What a sender delivered, before anything is trusted: which sender (by route), the headers,
//! and the raw body bytes exactly as received. No I/O.

use lambda_http::http::HeaderMap;

use crate::providers::Provider;

/// One webhook delivery as received. Nothing in it is trusted until
/// [`crate::verify::verify`] turns it into a `Verified<Delivery>`.
#[derive(Debug)]
pub struct Delivery {
    /// The sender, chosen by the request path.
    pub provider: Provider,
    /// Request headers; names are case-insensitive.
    pub headers: HeaderMap,
    /// The body bytes exactly as the sender signed them (after Lambda's base64 transport
    /// encoding, if any, was undone).
    pub body: Vec<u8>,
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

impl Delivery {
    /// The single text value of header `name`.
    pub fn header(&self, name: &str) -> Result<&str, HeaderProblem> {
        let mut values = self.headers.get_all(name).iter();
        let value = values.next().ok_or(HeaderProblem::Missing)?;
        if values.next().is_some() {
            return Err(HeaderProblem::Repeated);
        }
        let text = value.to_str().map_err(|_| HeaderProblem::NotText)?.trim();
        if text.is_empty() {
            return Err(HeaderProblem::Missing);
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::HeaderValue;

    fn delivery(headers: &[(&'static str, &[u8])]) -> Delivery {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        Delivery {
            provider: Provider::Engine,
            headers: map,
            body: Vec::new(),
        }
    }

    #[test]
    fn header_names_are_case_insensitive_and_values_trimmed() {
        let d = delivery(&[("X-Webhook-Signature", b" sha256=ab ")]);
        assert_eq!(d.header("x-webhook-signature"), Ok("sha256=ab"));
        assert_eq!(d.header("X-WEBHOOK-SIGNATURE"), Ok("sha256=ab"));
    }

    #[test]
    fn absent_empty_repeated_and_binary_headers_are_told_apart() {
        assert_eq!(delivery(&[]).header("a"), Err(HeaderProblem::Missing));
        assert_eq!(
            delivery(&[("a", b"  ")]).header("a"),
            Err(HeaderProblem::Missing)
        );
        assert_eq!(
            delivery(&[("a", b"1"), ("a", b"1")]).header("a"),
            Err(HeaderProblem::Repeated)
        );
        assert_eq!(
            delivery(&[("a", b"\xff")]).header("a"),
            Err(HeaderProblem::NotText)
        );
    }
}
