//! The providers, one module each holding everything hookrelay does with that provider's events:
//! its webhook routing (the routing fields and dedupe key of a verified delivery), its stream
//! routing when the bridge reads one, and its registration in [`WEBHOOKS`], the one list the
//! receiver serves and tests walk. Who a webhook sender is and how it signs (name, scheme,
//! secrets variable) is the library's (`hookrelay::senders`), because consumers re-verify with it.
//! Adding a provider: [docs/layout.md, "Adding a provider"](../../../docs/layout.md#adding-a-provider).

pub mod engine;
pub mod heisenberg;
pub mod rekko;
pub mod standard;

use hookrelay::senders::{self, Sender};
use hookrelay::signature::{SignedRequest, Verified};

use crate::event::{ParseError, RoutedEvent};

/// A webhook sender and how its verified deliveries are routed.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRoute {
    /// Who sends, and how it signs.
    pub sender: Sender,
    /// Reads the routing fields of one of its verified deliveries.
    pub route: for<'v> fn(&'v Verified<SignedRequest>) -> Result<RoutedEvent<'v>, ParseError>,
}

/// Every webhook provider, one registration line each, in the library's sender order; served
/// at `/{name}`.
pub const WEBHOOKS: [WebhookRoute; 3] = [
    WebhookRoute {
        sender: senders::ENGINE,
        route: engine::route,
    },
    WebhookRoute {
        sender: senders::REKKO,
        route: rekko::route,
    },
    WebhookRoute {
        sender: senders::STANDARD,
        route: standard::route,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_library_sender_has_exactly_one_route() {
        for sender in senders::SENDERS {
            assert_eq!(
                WEBHOOKS
                    .iter()
                    .filter(|route| route.sender == sender)
                    .count(),
                1,
                "{}",
                sender.name
            );
        }
        assert_eq!(WEBHOOKS.len(), senders::SENDERS.len());
    }
}
