//! The configuration vocabulary every hookrelay process shares (the receiver, the bridge, the
//! example consumer): one error type naming the variable, one lookup helper over the
//! environment (or a map in tests), and one redacted wrapper for anything secret. Pure.

use std::fmt;

/// A configuration problem, naming the variable. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The variable at fault.
    pub variable: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    /// A problem with `variable`.
    pub fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

/// Reads configuration variables through a lookup function (the process environment, a map in
/// tests, or Secrets Manager layered over the environment). Values are trimmed; an empty value
/// counts as unset.
pub struct Env<L> {
    lookup: L,
}

impl Env<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        Self::new(|name| std::env::var(name).ok())
    }
}

impl<L: Fn(&str) -> Option<String>> Env<L> {
    /// Variables read through `lookup`.
    pub fn new(lookup: L) -> Self {
        Self { lookup }
    }

    /// The trimmed value of `name`, `None` when unset or empty.
    pub fn text(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// `name` as a whole number, `default` when unset.
    pub fn number(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.text(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| ConfigError::new(name, "must be a whole number")),
        }
    }

    /// `name` as a whole number within `range`, `default` when unset; the error names the range
    /// in `unit`.
    pub fn number_in(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
        unit: &str,
    ) -> Result<u64, ConfigError> {
        let value = self.number(name, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                name,
                format!("must be {} to {} {unit}", range.start(), range.end()),
            ))
        }
    }

    /// The lookup itself, for code that layers another source over it.
    pub fn lookup(&self) -> &L {
        &self.lookup
    }
}

/// A secret value: its `Debug` prints `[redacted]`, and only [`Redacted::expose`] reads it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself, for the one place that must use it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_trimmed_empty_is_unset_and_numbers_name_their_variable() {
        let env = Env::new(|name: &str| match name {
            "A" => Some("  x ".to_owned()),
            "EMPTY" => Some("   ".to_owned()),
            "N" => Some("5m".to_owned()),
            "SEVEN" => Some("7".to_owned()),
            _ => None,
        });
        assert_eq!(env.text("A").as_deref(), Some("x"));
        assert_eq!(env.text("EMPTY"), None);
        assert_eq!(env.number("UNSET", 3), Ok(3));
        assert_eq!(env.number("N", 3).unwrap_err().variable, "N");
        assert_eq!(env.number_in("SEVEN", 1, 1..=10, "s"), Ok(7));
        let error = env.number_in("SEVEN", 1, 1..=5, "seconds").unwrap_err();
        assert_eq!(error.to_string(), "SEVEN: must be 1 to 5 seconds");
    }

    #[test]
    fn redacted_debug_hides_the_value() {
        let token = Redacted::new("hunter2".to_owned());
        assert_eq!(format!("{token:?}"), "[redacted]");
        assert_eq!(token.expose(), "hunter2");
    }
}
