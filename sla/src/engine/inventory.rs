//! The engine's inventory: taking `network_capabilities`, `create_new_payment`
//! and "no orchestrator" signals, deciding unserved sessions at seal, and
//! answering capabilities and the demand figures they add (types and the
//! rules they follow: [`crate::inventory`]).
//!
//! Whose word counts: only gateways' (and load-test gateways') reports are
//! taken, never about the gateway's own principal, and only about
//! orchestrators the recorded authority view lists.

use std::collections::{BTreeMap, BTreeSet};

use vouch_schema::{Address, EventRef, Family};

use super::{Engine, count};
use crate::attempt::SessionKey;
use crate::bucket::{MINUTE_MS, Series};
use crate::inventory::{
    self, Ledger, LedgerKey, Listing, REPORT_HORIZON_MS, UNSERVED_HOLD_MS, Unplaced, bound_sorted,
};
use crate::policy::contains_ignore_ascii_case;
use crate::query::Query;
use crate::response::{
    AdvertisedGpu, AdvertisedModel, AdvertisedPrice, CapabilitiesResponse, DemandFees, GpuCount,
    RestrictedCapabilities, round,
};

/// The message NaaP reads as "no orchestrator" in an `ai_stream_events` error.
pub(crate) const NO_ORCHESTRATOR_MESSAGE: &str = "no orchestrators available";

/// Why an event was not taken: a stable counter name.
type Refusal = &'static str;

/// `fees_wei`-scale integers to ETH for an answer.
fn eth(wei: u128) -> f64 {
    wei as f64 / inventory::WEI_PER_ETH as f64
}

impl Engine {
    /// Takes what the inventory reads from a gateway's event. `Some` when the
    /// event belongs to the inventory alone (capabilities, payments): the
    /// outcome is the event's. `None` lets the event go on to sessions (a
    /// "no orchestrator" signal is noted here and also kept there).
    pub(super) fn inventory_event(
        &mut self,
        gateway: Address,
        origin: u8,
        region: &str,
        ev: &EventRef<'_>,
        message: Option<&str>,
        ts: u64,
    ) -> Option<Result<(), Refusal>> {
        match (ev.family, ev.subtype) {
            (Family::NetworkCapabilities, _) => Some(self.capabilities_event(gateway, ev, ts)),
            (Family::CreateNewPayment, _) => {
                Some(self.payment_event(gateway, origin, region, ev, ts))
            }
            (Family::StreamTrace, Some("gateway_no_orchestrators_available")) => {
                self.unplaced_signal(gateway, origin, region, ev, ts);
                None
            }
            (Family::AiStreamEvents, Some("error"))
                if message
                    .is_some_and(|m| contains_ignore_ascii_case(m, NO_ORCHESTRATOR_MESSAGE)) =>
            {
                self.unplaced_signal(gateway, origin, region, ev, ts);
                None
            }
            _ => None,
        }
    }

    /// Every listed orchestrator of the array; the event is refused only when
    /// none could be taken (the reason of the last one not taken).
    fn capabilities_event(
        &mut self,
        gateway: Address,
        ev: &EventRef<'_>,
        ts: u64,
    ) -> Result<(), Refusal> {
        let data = ev.data.tree();
        let entries = data.as_array().ok_or("capabilities_not_array")?;
        let mut outcome = Err("capabilities_empty");
        for entry in entries {
            let taken = self.advertisement(gateway, entry, ts);
            if let Err(reason) = taken {
                count(&mut self.st.counters, &format!("capabilities_{reason}"), 1);
            }
            if outcome.is_err() {
                outcome = taken;
            }
        }
        outcome
    }

    fn advertisement(
        &mut self,
        gateway: Address,
        entry: &serde_json::Value,
        ts: u64,
    ) -> Result<(), Refusal> {
        let (orch, mut advert) = inventory::advert(entry).ok_or("no_address")?;
        if orch == gateway {
            count(&mut self.st.counters, "self_dealing", 1);
            return Err("self_dealing");
        }
        if !self.st.orchestrators.contains(&orch) {
            return Err("orchestrator_unlisted");
        }
        let inv = &mut self.st.inventory;
        if !inv.listings.contains_key(&orch)
            && inv.listings.len() >= self.limits.max_advertised_orchestrators
        {
            count(&mut self.st.counters, "limit_advertised_orchestrators", 1);
            return Err("limit_advertised_orchestrators");
        }
        let max = self.limits.max_hardware_rows_per_orchestrator;
        let cut = bound_sorted(&mut advert.hardware, max) + bound_sorted(&mut advert.prices, max);
        let listing = inv.listings.entry(orch).or_default();
        if (ts, &advert) > (listing.ts, &listing.advert) {
            listing.ts = ts;
            listing.advert = advert;
        }
        let seen = listing.gateways.entry(gateway).or_insert(ts);
        *seen = (*seen).max(ts);
        // Over the bound, the greatest (time, gateway) stay: a set that does
        // not depend on arrival order.
        let mut evicted = 0;
        while listing.gateways.len() > self.limits.max_reporting_gateways {
            let least = listing.gateways.iter().map(|(g, t)| (*t, *g)).min();
            if let Some((_, g)) = least {
                listing.gateways.remove(&g);
                evicted += 1;
            }
        }
        count(&mut self.st.counters, "limit_advertised_hardware", cut);
        count(&mut self.st.counters, "limit_reporting_gateways", evicted);
        Ok(())
    }

    fn payment_event(
        &mut self,
        gateway: Address,
        origin: u8,
        region: &str,
        ev: &EventRef<'_>,
        ts: u64,
    ) -> Result<(), Refusal> {
        // One pass over the body for every member read.
        let [recipient, manifest, face, tickets, win] =
            ev.data.members(["recipient", "manifestID", "faceValue", "numTickets", "winProb"]);
        let recipient: Address = recipient
            .and_then(|r| r.get_str(""))
            .and_then(|r| r.parse().ok())
            .ok_or("payment_recipient")?;
        if recipient == gateway {
            count(&mut self.st.counters, "self_dealing", 1);
            return Err("self_dealing");
        }
        if !self.st.orchestrators.contains(&recipient) {
            count(&mut self.st.counters, "orchestrator_unlisted", 1);
            return Err("orchestrator_unlisted");
        }
        let paid = inventory::payment([face, tickets, win])?;
        let model =
            self.registry.model_of_manifest(manifest.and_then(|m| m.get_str("")).unwrap_or(""));
        let b = self.ledger_minute((origin, model, region.to_owned()), ts)?;
        b.payments += 1;
        b.fees_wei = b.fees_wei.saturating_add(paid.fees_wei);
        b.face_value_wei = b.face_value_wei.saturating_add(paid.face_value_wei);
        Ok(())
    }

    /// The open ledger minute of `ts` under `key`, if the key fits its bound.
    fn ledger_minute(&mut self, key: LedgerKey, ts: u64) -> Result<&mut Ledger, Refusal> {
        let ledger = &mut self.st.inventory.ledger;
        if !ledger.contains_key(&key) && ledger.len() >= self.limits.max_demand_keys {
            count(&mut self.st.counters, "limit_demand_keys", 1);
            return Err("limit_demand_keys");
        }
        Ok(ledger.entry(key).or_default().minute_mut((ts / MINUTE_MS) as u32))
    }

    /// Notes a session's "no orchestrator" signal: its earliest time, and
    /// the smallest (time, model, region) at that time.
    fn unplaced_signal(
        &mut self,
        gateway: Address,
        origin: u8,
        region: &str,
        ev: &EventRef<'_>,
        ts: u64,
    ) {
        let Some(request_id) = ev.request_id.map(str::to_owned) else { return };
        let model = ev.model_id.map_or_else(
            || crate::registry::UNKNOWN_MODEL.to_owned(),
            |m| self.registry.canonical(m),
        );
        let key = (gateway, origin, request_id);
        let unplaced = &mut self.st.inventory.unplaced;
        if !unplaced.contains_key(&key) && unplaced.len() >= self.limits.max_unplaced_sessions {
            count(&mut self.st.counters, "limit_unplaced_sessions", 1);
            return;
        }
        let new = Unplaced { ts, model, region: region.to_owned(), decided: false };
        match unplaced.get_mut(&key) {
            Some(old) if old.decided => {}
            Some(old) => {
                if (new.ts, &new.model, &new.region) < (old.ts, &old.model, &old.region) {
                    *old = new;
                }
            }
            None => {
                unplaced.insert(key, new);
            }
        }
    }

    /// At a seal of minutes `[from, to)` ms (called before sessions are
    /// decided): sessions whose first "no orchestrator" signal falls there
    /// and that hold no attempt are counted unserved in that minute; then
    /// the ledger's minutes seal into hours and old entries go.
    pub(super) fn seal_inventory(&mut self, from: u64, to: u64) {
        let mut unserved: Vec<(LedgerKey, u64)> = Vec::new();
        for ((gateway, origin, request_id), u) in self.st.inventory.unplaced.iter_mut() {
            if u.decided || u.ts >= to {
                continue;
            }
            u.decided = true;
            let key =
                SessionKey { gateway: *gateway, origin: *origin, request_id: request_id.clone() };
            let placed = self.st.sessions.get(&key).is_some_and(|s| !s.attempts.is_empty());
            if !placed {
                unserved.push(((*origin, u.model.clone(), u.region.clone()), u.ts));
            }
        }
        for (key, ts) in unserved {
            if let Ok(b) = self.ledger_minute(key, ts) {
                b.unserved += 1;
            }
        }
        let hold = to.saturating_sub(UNSERVED_HOLD_MS);
        self.st.inventory.unplaced.retain(|_, u| !u.decided || u.ts >= hold);

        let (from_min, to_min) = ((from / MINUTE_MS) as u32, (to / MINUTE_MS) as u32);
        let keep_min = to_min.saturating_sub(self.policy.windows.minute_retention);
        let keep_hour = (to_min / 60).saturating_sub(self.policy.windows.hour_retention);
        let ledger = &mut self.st.inventory.ledger;
        for series in ledger.values_mut() {
            series.seal(from_min, to_min, |_, _| {});
            series.prune(keep_min, keep_hour);
        }
        ledger.retain(|_, s| !s.is_empty());
        let oldest = u64::from(keep_hour) * 60 * MINUTE_MS;
        self.st.inventory.listings.retain(|_, l| l.ts >= oldest);
    }

    /// `GET /v1/orchestrators/{address}/capabilities`: the latest
    /// advertisement of a listed orchestrator (`None`: not listed or none
    /// seen). GPU ids, memory and the URI only when `restricted`.
    pub fn capabilities(&self, orch: &Address, restricted: bool) -> Option<CapabilitiesResponse> {
        if !self.st.orchestrators.contains(orch) {
            return None;
        }
        let listing: &Listing = self.st.inventory.listings.get(orch)?;
        let a = &listing.advert;
        let horizon = listing.ts.saturating_sub(REPORT_HORIZON_MS);
        let reported = listing.gateways.values().filter(|t| **t >= horizon).count() as u64;
        let per_pixel =
            |unit: u64, pixels: u64| (pixels > 0).then(|| round(unit as f64 / pixels as f64, 6));
        let mut models: BTreeMap<(String, String, String), BTreeMap<String, u64>> = BTreeMap::new();
        for h in &a.hardware {
            let key = (self.registry.canonical(&h.model), h.model.clone(), h.pipeline.clone());
            let gpus = models.entry(key).or_default();
            if h.gpu_id.is_some() || h.gpu_name.is_some() {
                let name = h.gpu_name.clone().unwrap_or_else(|| "unknown".to_owned());
                *gpus.entry(name).or_default() += 1;
            }
        }
        let pipelines: BTreeSet<String> = a
            .hardware
            .iter()
            .filter(|h| !h.pipeline.is_empty())
            .map(|h| h.pipeline.clone())
            .collect();
        let restricted = restricted.then(|| RestrictedCapabilities {
            orch_uri: a.orch_uri.clone(),
            gpus: a
                .hardware
                .iter()
                .filter(|h| h.gpu_id.is_some() || h.gpu_name.is_some())
                .map(|h| AdvertisedGpu {
                    model_id: self.registry.canonical(&h.model),
                    pipeline: h.pipeline.clone(),
                    id: h.gpu_id.clone(),
                    name: h.gpu_name.clone(),
                    major: h.major,
                    minor: h.minor,
                    memory_free: h.memory_free,
                    memory_total: h.memory_total,
                })
                .collect(),
        });
        Some(CapabilitiesResponse {
            address: *orch,
            advertised_at_ms: listing.ts,
            advertised_at: super::query::rfc3339(listing.ts),
            reported_by_gateways: reported,
            pipelines: pipelines.into_iter().collect(),
            models: models
                .into_iter()
                .map(|((model_id, advertised_as, pipeline), gpus)| AdvertisedModel {
                    model_id,
                    advertised_as,
                    pipeline,
                    gpu_count: gpus.values().sum(),
                    gpus: gpus.into_iter().map(|(name, count)| GpuCount { name, count }).collect(),
                })
                .collect(),
            price_per_pixel_wei: a.price.and_then(|(u, p)| per_pixel(u, p)),
            capability_prices: a
                .prices
                .iter()
                .map(|p| AdvertisedPrice {
                    capability: p.capability,
                    constraint: p.constraint.clone(),
                    model_id: p
                        .constraint
                        .as_deref()
                        .filter(|c| !c.is_empty())
                        .map(|c| self.registry.canonical(c)),
                    price_per_unit: p.price_per_unit,
                    pixels_per_unit: p.pixels_per_unit,
                    price_per_pixel_wei: per_pixel(p.price_per_unit, p.pixels_per_unit),
                })
                .collect(),
            restricted,
        })
    }

    /// Payments and unserved sessions per (model, region) over minutes
    /// `[start, end)`, under the query's origin, model, pipeline and region.
    pub(super) fn demand_ledger(
        &self,
        q: &Query,
        model: &Option<String>,
        (start, end): (u32, u32),
    ) -> BTreeMap<(String, String), Ledger> {
        let mut out: BTreeMap<(String, String), Ledger> = BTreeMap::new();
        for ((origin, m, region), series) in &self.st.inventory.ledger {
            let keep = *origin == super::origin_code(q.origin)
                && q.region.as_ref().is_none_or(|r| r == region)
                && model.as_ref().is_none_or(|x| x == m)
                && q.pipeline.as_ref().is_none_or(|p| p == self.registry.pipeline(m));
            if !keep {
                continue;
            }
            let row = out.entry((m.clone(), region.clone())).or_default();
            fold(series, (start, end), row);
        }
        out
    }
}

fn fold(series: &Series<Ledger>, (start, end): (u32, u32), into: &mut Ledger) {
    use crate::bucket::Mergeable;
    series.fold_range(start, end, |_, b| into.merge_from(b));
}

/// A ledger total as the demand answer shows it.
pub(super) fn demand_fees(l: &Ledger) -> DemandFees {
    DemandFees {
        fees_eth: eth(l.fees_wei),
        fees_wei: l.fees_wei.to_string(),
        ticket_face_value_eth: eth(l.face_value_wei),
        payments: l.payments,
        unserved_sessions: l.unserved,
    }
}
