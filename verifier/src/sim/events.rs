//! go-livepeer-shaped events of simulated sessions and self-reports.
//!
//! The shapes are those the SLA engine is tested against
//! (`testkit/src/sla.rs`): `stream_trace` milestones
//! (`gateway_receive_stream_request`, `gateway_send_first_ingest_segment`,
//! `gateway_receive_first_processed_segment`,
//! `gateway_receive_few_processed_segments`, `orchestrator_swap`,
//! `gateway_ingest_stream_closed`), runner status samples relayed by the
//! gateway (`ai_stream_status`) and runner errors (`ai_stream_events`). The
//! timings are shortened so that a session fits in a demo's minute.

use std::fmt;
use std::str::FromStr;

use serde_json::{Value as Json, json};
use vouch_schema::{Address, Event, Origin};

use super::rng::SplitMix64;

/// The model every simulated session runs (in the model registry).
pub const DEMO_MODEL: &str = "streamdiffusion";

/// Runner status samples are this far apart, ms.
pub const STATUS_INTERVAL_MS: u64 = 2_000;

/// Status samples a served session reports before it closes.
const STATUS_SAMPLES: u64 = 5;

/// How an orchestrator behaves towards the gateways that use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Profile {
    /// Fast first frame (~0.8 s), 30 fps.
    Healthy,
    /// Slow first frame (~4 s), 18 fps.
    Slow,
    /// Like healthy, but every third session fails with a runner error before output.
    Flaky,
    /// Degrades after its first frame and is swapped away from before playable.
    Swapping,
    /// Starts fast, but gateways see 12 fps while it reports 30 fps about itself.
    SelfInflating,
}

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 5] = [
        Profile::Healthy,
        Profile::Slow,
        Profile::Flaky,
        Profile::Swapping,
        Profile::SelfInflating,
    ];

    /// The lowercase name (`healthy`, `slow`, `flaky`, `swapping`, `self_inflating`).
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Healthy => "healthy",
            Profile::Slow => "slow",
            Profile::Flaky => "flaky",
            Profile::Swapping => "swapping",
            Profile::SelfInflating => "self_inflating",
        }
    }

    /// The profile of the `i`-th of `n` simulated orchestrators: one
    /// self-inflating, then about half healthy and the rest slow, flaky or
    /// swapping, interleaved so that any prefix has a mix.
    pub fn for_index(i: usize) -> Profile {
        const PATTERN: [Profile; 10] = [
            Profile::Healthy,
            Profile::Healthy,
            Profile::Slow,
            Profile::Flaky,
            Profile::Healthy,
            Profile::Swapping,
            Profile::Healthy,
            Profile::Flaky,
            Profile::Slow,
            Profile::Healthy,
        ];
        if i == 0 { Profile::SelfInflating } else { PATTERN[(i - 1) % PATTERN.len()] }
    }

    /// The output fps gateways observe.
    pub fn observed_fps(self) -> f64 {
        match self {
            Profile::Healthy | Profile::Flaky => 30.0,
            Profile::Slow => 18.0,
            Profile::Swapping => 5.0,
            Profile::SelfInflating => 12.0,
        }
    }

    /// The output fps the orchestrator reports about itself.
    pub fn self_reported_fps(self) -> f64 {
        match self {
            Profile::SelfInflating => 30.0,
            other => other.observed_fps(),
        }
    }

    /// The GPU utilization (percent) the orchestrator reports about itself.
    pub fn self_reported_utilization(self) -> f64 {
        match self {
            Profile::SelfInflating => 97.0,
            other => 100.0 * other.observed_fps() / 30.0 * 0.9,
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A profile name that is not one of [`Profile::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown profile {0:?}; expected healthy, slow, flaky, swapping or self_inflating")]
pub struct UnknownProfile(pub String);

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Profile, UnknownProfile> {
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownProfile(s.to_owned()))
    }
}

/// An event and the wall-clock time (ms) it happens at: publish it then,
/// not before (its `timestamp` is `at_ms`; a verifier refuses events stamped
/// after their envelope).
#[derive(Debug, Clone, PartialEq)]
pub struct TimedEvent {
    /// When the event happens, ms since the Unix epoch.
    pub at_ms: u64,
    /// The event, stamped `at_ms`.
    pub event: Event,
}

/// One gateway session to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPlan {
    /// The gateway session id (`request_id`), unique per gateway.
    pub request_id: String,
    /// The orchestrator that serves it first.
    pub orchestrator: Address,
    /// How that orchestrator behaves.
    pub profile: Profile,
    /// Who takes over after a swap (a healthy orchestrator).
    pub backup: Address,
    /// The gateway's region.
    pub region: String,
    /// `production`, or `synthetic` for a load-test probe.
    pub origin: Origin,
    /// When the client's request arrives, ms since the Unix epoch.
    pub start_ms: u64,
    /// How many sessions this orchestrator served before (a flaky one fails every third).
    pub nth: u64,
}

impl SessionPlan {
    /// Every event of the session, in time order, with jitter from `rng`.
    pub fn events(&self, rng: &mut SplitMix64) -> Vec<TimedEvent> {
        let b = Builder { plan: self };
        let t = self.start_ms;
        let orch = self.orchestrator;
        let mut out = vec![b.trace("gateway_receive_stream_request", None, t)];
        out.push(b.trace("gateway_send_first_ingest_segment", Some(orch), t + 100));
        let end = match self.profile {
            Profile::Healthy => b.served(&mut out, orch, t, rng.between(700, 900), 30.0, rng),
            Profile::Slow => b.served(&mut out, orch, t, rng.between(3_600, 4_400), 18.0, rng),
            Profile::Flaky if self.nth % 3 == 2 => {
                out.push(b.status(orch, t + 2_000, 0.0, "LOADING"));
                out.push(b.error(t + 3_000, "runner crashed: CUDA out of memory"));
                t + 4_000
            }
            Profile::Flaky => b.served(&mut out, orch, t, rng.between(750, 950), 30.0, rng),
            Profile::SelfInflating => b.served(&mut out, orch, t, rng.between(700, 900), 12.0, rng),
            Profile::Swapping => {
                out.push(b.trace("gateway_receive_first_processed_segment", Some(orch), t + 1_500));
                out.push(b.status(orch, t + 3_000, 5.0, "DEGRADED_INFERENCE"));
                out.push(b.swap(orch, t + 4_000, "too many inflight segments"));
                let backup = self.backup;
                let t2 = t + 4_200;
                out.push(b.trace("gateway_send_first_ingest_segment", Some(backup), t2));
                b.served(&mut out, backup, t2, rng.between(700, 900), 30.0, rng)
            }
        };
        out.push(b.trace("gateway_ingest_stream_closed", None, end + 500));
        out.sort_by_key(|e| e.at_ms);
        out
    }
}

struct Builder<'a> {
    plan: &'a SessionPlan,
}

impl Builder<'_> {
    /// The common members every gateway-observed event carries.
    fn data(&self, mut data: Json, ts: u64) -> Json {
        let p = self.plan;
        data["timestamp"] = json!(ts);
        data["request_id"] = json!(p.request_id);
        data["stream_id"] = json!(format!("stream-{}", p.request_id));
        data["pipeline"] = json!(DEMO_MODEL);
        data["gateway_region"] = json!(p.region);
        data["origin"] = json!(p.origin.as_str());
        data
    }

    fn timed(&self, family: &str, data: Json, ts: u64) -> TimedEvent {
        TimedEvent { at_ms: ts, event: make_event(family, self.data(data, ts), ts) }
    }

    fn trace(&self, subtype: &str, orch: Option<Address>, ts: u64) -> TimedEvent {
        let address = orch.map_or(String::new(), |a| a.to_hex());
        self.timed(
            "stream_trace",
            json!({"type": subtype, "pipeline_id": "", "orchestrator_info": {"address": address, "url": ""}}),
            ts,
        )
    }

    fn swap(&self, orch: Address, ts: u64, message: &str) -> TimedEvent {
        self.timed(
            "stream_trace",
            json!({"type": "orchestrator_swap", "message": message,
                   "orchestrator_info": {"address": orch.to_hex(), "url": ""}}),
            ts,
        )
    }

    fn status(&self, orch: Address, ts: u64, fps: f64, state: &str) -> TimedEvent {
        self.timed(
            "ai_stream_status",
            json!({"type": "status", "state": state,
                   "inference_status": {"fps": fps, "last_output_time": ts},
                   "input_status": {"fps": 30.0},
                   "orchestrator_info": {"address": orch.to_hex(), "url": ""}}),
            ts,
        )
    }

    fn error(&self, ts: u64, message: &str) -> TimedEvent {
        self.timed("ai_stream_events", json!({"type": "error", "message": message}), ts)
    }

    /// First frame after `ptff`, playable 500 ms later, then status samples;
    /// returns the time of the last event.
    fn served(
        &self,
        out: &mut Vec<TimedEvent>,
        orch: Address,
        t: u64,
        ptff: u64,
        fps: f64,
        rng: &mut SplitMix64,
    ) -> u64 {
        out.push(self.trace("gateway_receive_first_processed_segment", Some(orch), t + ptff));
        out.push(self.trace("gateway_receive_few_processed_segments", Some(orch), t + ptff + 500));
        let mut last = t + ptff + 500;
        for i in 1..=STATUS_SAMPLES {
            last = t + ptff + i * STATUS_INTERVAL_MS;
            // ±0.5 fps of noise: real runners never report a flat line.
            let noisy = fps + (rng.unit() - 0.5);
            out.push(self.status(orch, last, (noisy * 100.0).round() / 100.0, "ONLINE"));
        }
        last
    }
}

fn make_event(family: &str, data: Json, ts: u64) -> Event {
    match Event::from_type_and_data(family, data, ts) {
        Ok(event) => event,
        // The families are fixed names and the data is two levels deep.
        Err(e) => unreachable!("simulated {family} event: {e}"),
    }
}

/// A runner status sample an orchestrator publishes about itself (role
/// orchestrator): shown beside its score as self-reported, never in it.
pub fn self_status(orch: Address, ts: u64, fps: f64) -> Event {
    make_event(
        "ai_stream_status",
        json!({"type": "status", "timestamp": ts, "pipeline": DEMO_MODEL, "state": "ONLINE",
               "inference_status": {"fps": fps, "last_output_time": ts},
               "orchestrator_info": {"address": orch.to_hex(), "url": ""}}),
        ts,
    )
}

/// A GPU sample an orchestrator publishes about itself (NVML utilization).
pub fn self_gpu_stats(ts: u64, utilization_pct: f64) -> Event {
    make_event(
        "gpu_stats",
        json!({"timestamp": ts, "source": "nvml", "utilization_gpu_pct": utilization_pct,
               "gpu_index": 0}),
        ts,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plan(profile: Profile, nth: u64) -> SessionPlan {
        SessionPlan {
            request_id: "r1".into(),
            orchestrator: Address([1; 20]),
            profile,
            backup: Address([2; 20]),
            region: "FRA".into(),
            origin: Origin::Production,
            start_ms: 1_795_687_200_000,
            nth,
        }
    }

    #[test]
    fn sessions_are_ordered_and_stamped() {
        for profile in Profile::ALL {
            for nth in 0..3 {
                let ev = plan(profile, nth).events(&mut SplitMix64::new(3));
                assert!(ev.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
                for e in &ev {
                    assert_eq!(e.event.ts, Some(e.at_ms));
                    assert_eq!(e.event.request_id.as_deref(), Some("r1"));
                    assert_eq!(e.event.origin, Some(Origin::Production));
                    e.event.validate().unwrap();
                }
            }
        }
        let flaky_fail = plan(Profile::Flaky, 2).events(&mut SplitMix64::new(3));
        assert!(flaky_fail.iter().any(|e| e.event.subtype.as_deref() == Some("error")));
        let swap = plan(Profile::Swapping, 0).events(&mut SplitMix64::new(3));
        assert!(swap.iter().any(|e| e.event.subtype.as_deref() == Some("orchestrator_swap")));
        assert!(swap.iter().any(|e| e.event.orchestrator == Some(Address([2; 20]))));
    }

    #[test]
    fn profiles_round_trip_and_mix() {
        for p in Profile::ALL {
            assert_eq!(p.as_str().parse::<Profile>().unwrap(), p);
        }
        let first: Vec<Profile> = (0..7).map(Profile::for_index).collect();
        for p in Profile::ALL {
            assert!(first.contains(&p), "{p} missing from {first:?}");
        }
    }
}
