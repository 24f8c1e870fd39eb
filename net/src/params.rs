//! Gossipsub as every Vouch node runs it (DESIGN.md §5): the protocol
//! configuration, peer scoring and the subscription filter. A publisher and
//! the verifiers must agree on these, so they live in one place.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::gossipsub::{self, TopicHash};
use vouch_schema::limits::MAX_PARTITIONS;
use vouch_schema::topic;

/// The weight of gossipsub's application-specific score (P5), which the
/// sync layer sets to `-count²` of a peer's penalties (invalid envelopes
/// served by sync, protocol bounds broken): a penalty costs what an invalid
/// gossip message costs under P4 (`-10 × count²`), so the same thresholds
/// ([`peer_score_thresholds`]) apply.
pub const APP_SPECIFIC_WEIGHT: f64 = 10.0;

/// Peers a publish goes to, and the mesh size each node aims for
/// (gossipsub's `mesh_n`). A publisher that does not subscribe uses fanout:
/// up to this many subscribed peers per topic.
pub const MESH_N: usize = 4;

/// Heartbeats of messages gossip advertises and the message cache keeps
/// (libp2p's default advertises 3 and keeps 5).
pub const HISTORY_GOSSIP: usize = 3;

/// The most topics a peer may be subscribed to, and announce in one RPC:
/// every telemetry partition plus the control topic, with room to grow.
/// libp2p's default (100 and 100) is one short of a verifier that follows
/// all partitions, and drops that verifier's whole subscription RPC.
pub const MAX_PEER_TOPICS: usize = 2 * MAX_PARTITIONS as usize;

/// The subscription filter every Vouch node uses: any topic, at most
/// [`MAX_PEER_TOPICS`] per peer and per RPC.
pub(crate) fn subscription_filter()
-> gossipsub::MaxCountSubscriptionFilter<gossipsub::AllowAllSubscriptionFilter> {
    gossipsub::MaxCountSubscriptionFilter {
        filter: gossipsub::AllowAllSubscriptionFilter {},
        max_subscribed_topics: MAX_PEER_TOPICS,
        max_subscriptions_per_request: MAX_PEER_TOPICS,
    }
}

/// Gossipsub as DESIGN.md §5 and the verifiers configure it.
pub fn gossipsub_config() -> Result<gossipsub::Config, gossipsub::ConfigBuilderError> {
    gossipsub::ConfigBuilder::default()
        // Peers forward nothing before their checks: a verifier reports each
        // message's verdict; a publisher checks nothing it receives.
        .validate_messages()
        // No libp2p author, seqno or signature: the envelope carries its own.
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        // Content-addressed ids: the same envelope is the same message everywhere.
        .message_id_fn(|m: &gossipsub::Message| {
            gossipsub::MessageId::from(topic::message_id(m.topic.as_str(), &m.data).to_vec())
        })
        // The frame limit (whole RPC); publishers enforce the 64 KiB envelope limit.
        .max_transmit_size(topic::GOSSIP_MAX_TRANSMIT_SIZE)
        // Publish to mesh/fanout peers only, as Ethereum consensus clients do.
        .flood_publish(false)
        // Sized for small networks: a handful of verifiers per region.
        .mesh_n(MESH_N)
        .mesh_n_low(2)
        .mesh_n_high(8)
        .mesh_outbound_min(1)
        .heartbeat_interval(Duration::from_millis(700))
        // The message cache keeps every message received in its window, so
        // at a node's full ingest rate it is the node's largest buffer. Keep
        // only the heartbeats that gossip advertises (IHAVE); libp2p's
        // default keeps two more, which no IWANT we answer can ask for
        // unless it comes late.
        .history_length(HISTORY_GOSSIP)
        .history_gossip(HISTORY_GOSSIP)
        // Long enough that a message looping back through a slow peer is
        // still recognised as seen.
        .duplicate_cache_time(Duration::from_secs(120))
        .build()
}

/// Scoring kept deliberately simple: the one behaviour anyone can judge for
/// sure is forwarding envelopes that fail the checks, so the only topic
/// penalty is P4 (invalid deliveries, applied on Reject). Mesh-delivery
/// penalties (P3) stay off: telemetry is bursty and a quiet region would look
/// like a failing mesh. IP colocation is off: several nodes behind one
/// address (NAT, one host, tests) are normal here. P7 (broken promises)
/// keeps libp2p's default. P5 (the application's score) carries sync's
/// penalties ([`APP_SPECIFIC_WEIGHT`]).
pub fn peer_score_params(
    topics: impl IntoIterator<Item = TopicHash>,
) -> gossipsub::PeerScoreParams {
    let topic_params = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // weight × count²: one invalid message costs 10, three 90 (below
        // the publish threshold), four 160 (graylisted).
        invalid_message_deliveries_weight: -10.0,
        // Decays to a tenth in 10 minutes.
        invalid_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(
            600,
        )),
        ..Default::default()
    };
    let mut params = gossipsub::PeerScoreParams {
        topics: HashMap::new(),
        app_specific_weight: APP_SPECIFIC_WEIGHT,
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    };
    for t in topics {
        params.topics.insert(t, topic_params.clone());
    }
    params
}

/// Score thresholds matching [`peer_score_params`]: three invalid messages
/// stop a peer's publishes reaching us, four graylist it.
pub fn peer_score_thresholds() -> gossipsub::PeerScoreThresholds {
    gossipsub::PeerScoreThresholds {
        gossip_threshold: -20.0,
        publish_threshold: -80.0,
        graylist_threshold: -150.0,
        accept_px_threshold: 100.0,
        opportunistic_graft_threshold: 5.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::all_topic_hashes;

    #[test]
    fn config_and_scoring_are_valid() {
        assert!(gossipsub_config().is_ok());
        assert!(peer_score_params(all_topic_hashes()).validate().is_ok());
        assert!(peer_score_thresholds().validate().is_ok());
    }
}
