//! Webhook routing, one module per sender: how each one's routing fields (type, identity,
//! market, sequence, timestamp) are read from a verified delivery into a [`RoutedEvent`]. This
//! file only registers them: a [`WebhookRoute`] pairs a sender (from the `hookrelay` library:
//! name and scheme) with its routing function.

pub mod engine;
pub mod rekko;
pub mod standard;

use hookrelay::senders::{self, Sender};
use hookrelay::signature::{SignedRequest, Verified};

use crate::routed::{ParseError, RoutedEvent};

/// A sender and how its verified deliveries are routed.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRoute {
    /// Who sends, and how it signs.
    pub sender: Sender,
    /// Reads the routing fields of one of its verified deliveries.
    pub route: for<'v> fn(&'v Verified<SignedRequest>) -> Result<RoutedEvent<'v>, ParseError>,
}

/// The prediction-engine operator API.
pub const ENGINE: WebhookRoute = WebhookRoute {
    sender: senders::ENGINE,
    route: engine::route,
};

/// Rekko.
pub const REKKO: WebhookRoute = WebhookRoute {
    sender: senders::REKKO,
    route: rekko::route,
};

/// Standard Webhooks senders.
pub const STANDARD: WebhookRoute = WebhookRoute {
    sender: senders::STANDARD,
    route: standard::route,
};

/// Every webhook route this crate has, in the library's sender order.
pub const ROUTES: [WebhookRoute; 3] = [ENGINE, REKKO, STANDARD];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_library_sender_has_exactly_one_route() {
        for sender in senders::SENDERS {
            assert_eq!(
                ROUTES.iter().filter(|route| route.sender == sender).count(),
                1,
                "{}",
                sender.name
            );
        }
        assert_eq!(ROUTES.len(), senders::SENDERS.len());
    }
}
