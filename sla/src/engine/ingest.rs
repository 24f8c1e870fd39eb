//! Taking verified events: gateways' observations into sessions, an
//! orchestrator's own reports into its self-reported series.
//!
//! Whose word counts (DESIGN.md §8): a score is made only of observations
//! signed by someone other than the orchestrator scored. So a gateway's
//! event about an orchestrator counts only when the orchestrator is in the
//! recorded authority view and is not the gateway's own principal, and it
//! counts in the region the gateway's certificate declares.

use std::collections::btree_map::Entry;

use vouch_delegation::Role;
use vouch_schema::{Address, BodyRef, EventRef, Family, Origin};

use super::{Engine, IngestReport, Observer, Usage, count, origin_code};
use crate::attempt::{
    AttemptKey, STATE_LOADING, STATE_OFFLINE, STATE_OTHER, STATE_RUNNING, Session, SessionKey,
    Status, min_into, min_pair_into,
};
use crate::bucket::MINUTE_MS;
use crate::definitions::Edge;

/// Why an event was not taken: a stable counter name.
type Refusal = &'static str;

impl Engine {
    /// One verified batch: its signer, its envelope timestamp (ms) and its
    /// events, owned (`&[Event]`) or read in place (a decoded batch's
    /// [`EventRef`]s).
    pub fn ingest<'a, E: Into<EventRef<'a>>>(
        &mut self,
        observer: &Observer,
        envelope_ts_ms: u64,
        events: impl IntoIterator<Item = E>,
    ) -> IngestReport {
        let mut report = IngestReport::default();
        let region = self.observer_region(observer);
        for ev in events {
            match self.ingest_one(observer, &region, envelope_ts_ms, &ev.into()) {
                Ok(true) => report.accepted += 1,
                Ok(false) => report.self_reported += 1,
                Err(reason) => *report.rejected.entry(reason).or_default() += 1,
            }
        }
        let c = &mut self.st.counters;
        count(c, "events_accepted", report.accepted);
        count(c, "events_self_reported", report.self_reported);
        for (reason, n) in &report.rejected {
            count(c, &format!("events_rejected_{reason}"), *n);
        }
        report
    }

    /// The region an observer's events are scored in: its certificate's,
    /// upper-cased; the policy's default region for a certificate that
    /// declares none.
    fn observer_region(&self, observer: &Observer) -> String {
        let region = observer.region.trim().to_uppercase();
        if region.is_empty() { self.policy.ingest.default_region.clone() } else { region }
    }

    /// Ok(true): an observation; Ok(false): a self-report.
    fn ingest_one(
        &mut self,
        observer: &Observer,
        region: &str,
        envelope_ts: u64,
        ev: &EventRef<'_>,
    ) -> Result<bool, Refusal> {
        let ts = ev.ts.ok_or("no_timestamp")?;
        if ts > envelope_ts {
            return Err("future_timestamp");
        }
        if envelope_ts - ts > self.policy.ingest.event_lag_ms {
            return Err("lag_exceeded");
        }
        if ts < self.st.sealed_end_ms {
            return Err("late_sealed");
        }
        match observer.role {
            Role::Gateway | Role::Loadtest => {
                let orch = orchestrator_of(ev);
                if orch == Some(observer.principal) {
                    // A principal observing itself: never an observation.
                    // Its status samples are kept as what it says of itself.
                    count(&mut self.st.counters, "self_dealing", 1);
                    return self.self_report(observer.principal, ev, ts).map(|()| false);
                }
                if let Some(claimed) = ev.gateway_region
                    && !claimed.trim().eq_ignore_ascii_case(region)
                {
                    count(&mut self.st.counters, "region_mismatch", 1);
                }
                let origin = if observer.role == Role::Loadtest {
                    Origin::Synthetic
                } else {
                    ev.origin.unwrap_or(Origin::Production)
                };
                let origin = origin_code(origin);
                let message = failure_message(ev);
                if let Some(r) =
                    self.inventory_event(observer.principal, origin, region, ev, message, ts)
                {
                    return r.map(|()| true);
                }
                self.observe(observer.principal, origin, region, ev, message, ts).map(|()| true)
            }
            Role::Orchestrator | Role::Runner => {
                self.self_report(observer.principal, ev, ts).map(|()| false)
            }
            Role::Verifier => Err("observer_role"),
        }
    }

    fn observe(
        &mut self,
        gateway: Address,
        origin: u8,
        region: &str,
        ev: &EventRef<'_>,
        message: Option<&str>,
        ts: u64,
    ) -> Result<(), Refusal> {
        if !matches!(
            ev.family,
            Family::StreamTrace | Family::AiStreamStatus | Family::AiStreamEvents
        ) {
            return Err("family_not_scored");
        }
        let orch = orchestrator_of(ev);
        if let Some(o) = orch
            && !self.st.orchestrators.contains(&o)
        {
            count(&mut self.st.counters, "orchestrator_unlisted", 1);
            return Err("orchestrator_unlisted");
        }
        let request_id = ev.request_id.ok_or("no_request_id")?.to_owned();
        let registry = &self.registry;
        let model = ev.model_id.map(|m| registry.canonical_ref(m));
        let subtype = ev.subtype.unwrap_or("");
        let fact_class = match (ev.family, subtype) {
            (Family::StreamTrace, "orchestrator_swap") | (Family::AiStreamEvents, "error") => {
                self.policy.classify(message.unwrap_or("")).index() as u8
            }
            _ => 0,
        };
        let (status, stream_start) = match ev.family {
            Family::AiStreamStatus => {
                let (status, start) = status_of(ev);
                (Some(status), start)
            }
            _ => (None, None),
        };
        let limits = self.limits;
        let usage = self.usage.get(&gateway).copied().unwrap_or_default();
        let sessions = self.st.sessions.len();
        // One search of the sessions: a new one is made only if it fits.
        let (s, is_new) = match self.st.sessions.entry(SessionKey { gateway, origin, request_id }) {
            Entry::Occupied(session) => {
                if usage.bytes >= limits.max_state_bytes_per_principal {
                    count(&mut self.st.counters, "limit_principal_bytes", 1);
                    return Err("limit_principal_bytes");
                }
                (session.into_mut(), false)
            }
            Entry::Vacant(slot) => {
                if let Some(refusal) = room_refusal(usage, sessions, &limits) {
                    count(&mut self.st.counters, refusal, 1);
                    return Err(refusal);
                }
                (slot.insert(Session::default()), true)
            }
        };
        let before = if is_new { 0 } else { s.heap_bytes() as u64 };
        let result =
            record(s, ev.family, subtype, orch, fact_class, (status, stream_start), ts, &limits);
        s.last_ts = s.last_ts.max(ts);
        if let Some(m) = &model {
            min_pair_into(&mut s.model, ts, m);
        }
        min_pair_into(&mut s.region, ts, region);
        let after = s.heap_bytes() as u64;
        let usage = self.usage.entry(gateway).or_default();
        usage.sessions += u64::from(is_new);
        usage.bytes = (usage.bytes + after).saturating_sub(before);
        if let Err(limit) = result
            && limit.starts_with("limit_")
        {
            count(&mut self.st.counters, limit, 1);
        }
        result
    }

    fn self_report(&mut self, orch: Address, ev: &EventRef<'_>, ts: u64) -> Result<(), Refusal> {
        if !self.st.self_series.contains_key(&orch)
            && self.st.self_series.len() >= self.limits.max_self_series
        {
            count(&mut self.st.counters, "limit_self_series", 1);
            return Err("limit_self_series");
        }
        let minute = (ts / MINUTE_MS) as u32;
        match ev.family {
            Family::AiStreamStatus => {
                let [inference, output_fps] = ev.data.members(["inference_status", "output_fps"]);
                let fps = fps_of(inference, output_fps).ok_or("no_fps")?;
                let b = self.st.self_series.entry(orch).or_default().minute_mut(minute);
                b.fps.record((fps.max(0.0) * 100.0).round() as u64);
            }
            Family::GpuStats => {
                let (idx, pct) = match ev.get_str("/source") {
                    Some("gpm") => (0, ev.get_f64("/tensor_active_pct")),
                    Some("nvml") => (1, ev.get_f64("/utilization_gpu_pct")),
                    Some("proxy") => (2, None),
                    _ => return Err("unknown_cue_source"),
                };
                let b = self.st.self_series.entry(orch).or_default().minute_mut(minute);
                b.sources[idx] += 1;
                if let Some(p) = pct {
                    b.cue_sum_milli += (p.clamp(0.0, 100.0) * 10.0).round() as u64;
                    b.cue_count += 1;
                }
            }
            _ => return Err("family_not_scored"),
        }
        Ok(())
    }
}

/// The orchestrator an event is about (the zero address reads as none).
fn orchestrator_of(ev: &EventRef<'_>) -> Option<Address> {
    ev.orchestrator.filter(|a| *a != Address::ZERO)
}

/// The message of a failure (an `ai_stream_events` error or an
/// orchestrator swap), read once for its two readers: the inventory's "no
/// orchestrator" test and the policy's classifier.
fn failure_message<'e>(ev: &EventRef<'e>) -> Option<&'e str> {
    match (ev.family, ev.subtype) {
        (Family::AiStreamEvents, Some("error"))
        | (Family::StreamTrace, Some("orchestrator_swap")) => ev.data.get_str("/message"),
        _ => None,
    }
}

/// Why a new session of a gateway holding `usage` does not fit, beside
/// `sessions` held in all: its share first, then the global bound.
fn room_refusal(usage: Usage, sessions: usize, limits: &super::Limits) -> Option<Refusal> {
    if usage.sessions >= limits.max_sessions_per_principal as u64 {
        Some("limit_principal_sessions")
    } else if usage.bytes >= limits.max_state_bytes_per_principal {
        Some("limit_principal_bytes")
    } else if sessions >= limits.max_sessions {
        Some("limit_sessions")
    } else {
        None
    }
}

/// A runner status sample as the engine keeps it, and go-livepeer's
/// `start_time`: the runner's stream start, ms since the epoch (0, read as
/// `None`, before the stream starts). The members are found in one pass
/// over the body, the largest go-livepeer sends.
fn status_of(ev: &EventRef<'_>) -> (Status, Option<u64>) {
    let [inference, output_fps, state, last, start] = ev.data.members([
        "inference_status",
        "output_fps",
        "state",
        "last_status_timestamp",
        "start_time",
    ]);
    let fps = fps_of(inference, output_fps).unwrap_or(0.0);
    let state = match state.and_then(|s| s.get_str("")) {
        Some("LOADING") => STATE_LOADING,
        Some("OFFLINE") => STATE_OFFLINE,
        Some("ONLINE" | "DEGRADED_INPUT" | "DEGRADED_INFERENCE") => STATE_RUNNING,
        _ => STATE_OTHER,
    };
    let status = Status {
        fps_centi: (fps.max(0.0) * 100.0).round().min(f64::from(u32::MAX)) as u32,
        state,
        prev_ts: last.and_then(|t| t.get_u64("")),
    };
    (status, start.and_then(|t| t.get_u64("")).filter(|&t| t > 0))
}

/// The runner's frame rate: `inference_status.fps`, else `output_fps`.
fn fps_of(inference: Option<BodyRef<'_>>, output_fps: Option<BodyRef<'_>>) -> Option<f64> {
    inference.and_then(|i| i.get_f64("/fps")).or_else(|| output_fps.and_then(|f| f.get_f64("")))
}

/// Records one event's fact into its session; `Err` names the bound it hit.
#[allow(clippy::too_many_arguments)]
fn record(
    s: &mut Session,
    family: &Family,
    subtype: &str,
    orch: Option<Address>,
    fact_class: u8,
    (status, stream_start): (Option<Status>, Option<u64>),
    ts: u64,
    limits: &super::Limits,
) -> Result<(), Refusal> {
    let facts = s.errors.len() + s.swaps.len() + s.restarts.len();
    let fact_room = facts < limits.max_facts_per_session;
    let attempt_key = |o: Address| AttemptKey { orch: o, manifest: String::new() };
    match (family, subtype) {
        (Family::StreamTrace, "gateway_receive_stream_request") => min_into(&mut s.request_ts, ts),
        (Family::StreamTrace, "gateway_ingest_stream_closed") => min_into(&mut s.close_ts, ts),
        (Family::StreamTrace, "orchestrator_swap") => {
            if !fact_room {
                return Err("limit_session_facts");
            }
            s.swaps.insert((ts, orch, fact_class));
        }
        (Family::StreamTrace, _) => {
            let Some(o) = orch else { return Ok(()) };
            let a = s
                .attempt(attempt_key(o), ts, limits.max_attempts_per_session)
                .ok_or("limit_attempts")?;
            if let Some(edge) = Edge::of_trace(subtype) {
                a.record_edge(edge, ts);
            }
        }
        (Family::AiStreamStatus, _) => {
            let o = orch.ok_or("no_orchestrator")?;
            let status = status.ok_or("no_status")?;
            let a = s
                .attempt(attempt_key(o), ts, limits.max_attempts_per_session)
                .ok_or("limit_attempts")?;
            if a.status.len() >= limits.max_status_per_attempt && !a.status.contains_key(&ts) {
                return Err("limit_status_samples");
            }
            if let Some(start) = stream_start {
                a.record_edge(Edge::StreamStart, start);
            }
            // Duplicates of one sample time keep the smallest reading,
            // whatever order they came in.
            let slot = a.status.entry(ts).or_insert(status);
            if (status.fps_centi, status.state, status.prev_ts)
                < (slot.fps_centi, slot.state, slot.prev_ts)
            {
                *slot = status;
            }
        }
        (Family::AiStreamEvents, "error") => {
            if !fact_room {
                return Err("limit_session_facts");
            }
            s.errors.insert((ts, fact_class));
        }
        (Family::AiStreamEvents, "restart") => {
            if !fact_room {
                return Err("limit_session_facts");
            }
            s.restarts.insert(ts);
        }
        _ => {}
    }
    Ok(())
}
