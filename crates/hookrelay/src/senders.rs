//! Who the providers are: each webhook sender's name (in routes, envelopes, attributes and dedupe
//! keys), its signature scheme and the variable holding its secrets, and the envelope names of the
//! providers that send no webhooks. Data only. A webhook sender is one constant here and its
//! entry in [`SENDERS`]; how its deliveries are routed is `hookrelay-ingest`'s (docs/layout.md,
//! "Adding a provider").

use crate::signature::Scheme;

/// A webhook sender: who signs, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sender {
    /// The name used in routes (`/{name}`), envelopes, attributes and dedupe keys.
    pub name: &'static str,
    /// How it signs.
    pub scheme: Scheme,
    /// The variable holding its comma-separated secrets (also the Secrets Manager key's
    /// variable).
    pub secrets_variable: &'static str,
}

/// The prediction-engine operator API (docs/contract.md, "The senders").
pub const ENGINE: Sender = Sender {
    name: "engine",
    scheme: Scheme::HexBodyHmac {
        header: "x-webhook-signature",
        tag: "sha256=",
    },
    secrets_variable: "HOOKRELAY_ENGINE_SECRETS",
};

/// Rekko (docs/contract.md, "The senders").
pub const REKKO: Sender = Sender {
    name: "rekko",
    scheme: Scheme::HexBodyHmac {
        header: "x-webhook-signature",
        tag: "",
    },
    secrets_variable: "HOOKRELAY_REKKO_SECRETS",
};

/// Any sender following the Standard Webhooks spec, e.g. Svix.
pub const STANDARD: Sender = Sender {
    name: "standard",
    scheme: Scheme::StandardWebhooks,
    secrets_variable: "HOOKRELAY_STANDARD_SECRETS",
};

/// The envelope `provider` of Heisenberg's events: a stream provider (the bridge reads its
/// WebSocket gateway), not a webhook sender.
pub const HEISENBERG: &str = "heisenberg";

/// The envelope `provider` of hookrelay's own events (sequence-gap reports).
pub const HOOKRELAY: &str = "hookrelay";

/// Every webhook sender, in route order.
pub const SENDERS: [Sender; 3] = [ENGINE, REKKO, STANDARD];

/// The sender named `name` (an envelope's `provider`), if this crate knows it.
pub fn by_name(name: &str) -> Option<Sender> {
    SENDERS.into_iter().find(|sender| sender.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_find_their_sender_and_nothing_else() {
        for sender in SENDERS {
            assert_eq!(by_name(sender.name), Some(sender));
        }
        assert_eq!(by_name(HEISENBERG), None);
        assert_eq!(by_name("Engine"), None);
    }
}
