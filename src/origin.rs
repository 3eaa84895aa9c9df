//! The origin check of the optional front (docs/security.md, "The optional front"): with
//! `HOOKRELAY_ORIGIN_SECRETS` set (the webhook secret's `origin` key in the stack), a request is
//! handled only if it carries one of those values in [`ORIGIN_HEADER`], the header the front's
//! CloudFront distribution adds on its way to the Function URL. A delivery sent straight to the
//! URL is then refused before its signature is even checked. Unset (the default), nothing is
//! checked. Pure.

use hookrelay::config::ConfigError;
use hookrelay::signature::Headers;
use subtle::ConstantTimeEq;

/// The header the front adds.
pub const ORIGIN_HEADER: &str = "x-hookrelay-origin";

/// The variable holding the origin values (comma-separated: two during a rotation).
pub const ORIGIN_SECRETS: &str = "HOOKRELAY_ORIGIN_SECRETS";

/// Origin values shorter than this are refused at startup: the value is all that tells the
/// front's requests from anyone else's.
pub const MIN_ORIGIN_CHARS: usize = 32;

/// The values a request's [`ORIGIN_HEADER`] may carry. `Debug` never prints them.
#[derive(Clone)]
pub struct OriginSecrets(Vec<Vec<u8>>);

impl std::fmt::Debug for OriginSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OriginSecrets({} values)", self.0.len())
    }
}

impl OriginSecrets {
    /// Parses the comma-separated `text` of [`ORIGIN_SECRETS`] (never echoing it in an error).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut values = Vec::new();
        for (index, value) in text.split(',').map(str::trim).enumerate() {
            if value.len() < MIN_ORIGIN_CHARS || !value.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::new(
                    ORIGIN_SECRETS,
                    format!(
                        "value #{} must be at least {MIN_ORIGIN_CHARS} visible ASCII characters",
                        index + 1
                    ),
                ));
            }
            values.push(value.as_bytes().to_vec());
        }
        Ok(Self(values))
    }

    /// Whether `headers` carry one of the values, compared in constant time (a length that
    /// differs is told apart at once: it says nothing of the value).
    pub fn admits(&self, headers: &Headers) -> bool {
        let Ok(sent) = headers.get(ORIGIN_HEADER) else {
            return false;
        };
        let mut admitted = subtle::Choice::from(0);
        for value in &self.0 {
            admitted |= value.as_slice().ct_eq(sent.as_bytes());
        }
        admitted.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "0123456789abcdef0123456789abcdef";
    const NEXT: &str = "fedcba9876543210fedcba9876543210";

    fn with(value: &str) -> Headers {
        let mut headers = Headers::new();
        headers.append(ORIGIN_HEADER, value);
        headers
    }

    #[test]
    fn only_a_configured_value_is_admitted() {
        let origin = OriginSecrets::parse(&format!("{VALUE}, {NEXT}")).unwrap();
        assert!(origin.admits(&with(VALUE)));
        assert!(origin.admits(&with(NEXT)), "both during a rotation");
        assert!(!origin.admits(&with(&VALUE[1..])));
        assert!(!origin.admits(&with(&format!("{VALUE}0"))));
        assert!(!origin.admits(&Headers::new()), "absent");
        let mut twice = with(VALUE);
        twice.append(ORIGIN_HEADER, VALUE);
        assert!(
            !origin.admits(&twice),
            "repeated: which one counts would be a guess"
        );
    }

    #[test]
    fn short_or_unprintable_values_are_refused_without_echoing_them() {
        for bad in [
            "short",
            "",
            &format!("{VALUE},"),
            &format!("{VALUE} with space"),
        ] {
            let error = OriginSecrets::parse(bad).unwrap_err();
            assert_eq!(error.variable, ORIGIN_SECRETS);
            assert!(!error.problem.contains(VALUE), "{error:?}");
        }
        assert!(!format!("{:?}", OriginSecrets::parse(VALUE).unwrap()).contains(VALUE));
    }
}
