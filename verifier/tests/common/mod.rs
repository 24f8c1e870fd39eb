//! Helpers shared by the end-to-end tests.

#[allow(unreachable_pub)]
pub mod bridge;
#[path = "../../../delegation/tests/common/ganache.rs"]
pub mod ganache;
#[allow(unreachable_pub)]
pub mod identity;
#[allow(unreachable_pub)]
pub mod mosquitto;
#[allow(unreachable_pub)]
pub mod node;
#[allow(unreachable_pub)]
pub mod sla;
#[allow(unreachable_pub)]
pub mod streamr;
#[allow(unreachable_pub)]
pub mod subscriber;
