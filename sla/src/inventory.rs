//! Inventory and attribution that NaaP users rely on (issue 15, part 3):
//! what orchestrators advertise (`network_capabilities`), what gateways pay
//! (`create_new_payment`) and the sessions no orchestrator could take.
//!
//! Everything here is part of the engine's serializable state and is
//! order-independent: an advertisement is kept only if it is the greatest by
//! (event time, content), payments are sums of integers, and an unserved
//! session is decided when the minute of its first signal seals.
//!
//! Fees are integers in wei: a payment is worth the expected value of its
//! tickets, `faceValue × numTickets × winProb`, with `winProb` read as an
//! exact decimal (at most 18 fractional digits) and the product rounded down
//! once per payment, so a replay sums the same integers in any order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use vouch_schema::event::lenient;
use vouch_schema::{Address, BodyRef};

use crate::bucket::{Mergeable, Series};
use crate::compact::{Pack, get, get64, put};

/// Longest text kept from an advertisement (a longer value is dropped).
pub(crate) const MAX_TEXT: usize = 256;

/// 10^18: wei per ETH, and the scale `winProb` is read at.
pub(crate) const WEI_PER_ETH: u128 = 1_000_000_000_000_000_000;

/// Gateways count towards `reported_by_gateways` when their latest report of
/// an orchestrator is at most this much older than the advertisement served.
pub(crate) const REPORT_HORIZON_MS: u64 = 3_600_000;

/// A decided unserved session is remembered this long after its first
/// signal, so later signals of the same session are not counted again.
pub(crate) const UNSERVED_HOLD_MS: u64 = 3_600_000;

/// One GPU of one advertised (pipeline, model), as go-livepeer reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct HardwareRow {
    pub(crate) pipeline: String,
    /// The model id as advertised (not canonical).
    pub(crate) model: String,
    /// GPU UUID (restricted).
    pub(crate) gpu_id: Option<String>,
    pub(crate) gpu_name: Option<String>,
    pub(crate) major: Option<u64>,
    pub(crate) minor: Option<u64>,
    /// As advertised (go-livepeer: bytes); restricted.
    pub(crate) memory_free: Option<u64>,
    /// As advertised (go-livepeer: bytes); restricted.
    pub(crate) memory_total: Option<u64>,
}

/// One `capabilities_prices` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct CapabilityPrice {
    pub(crate) capability: Option<u64>,
    /// The constraint (a model id for live AI), as advertised.
    pub(crate) constraint: Option<String>,
    pub(crate) price_per_unit: u64,
    pub(crate) pixels_per_unit: u64,
}

/// What one orchestrator advertised in one `network_capabilities` entry.
/// Its derived order is the content tiebreak between equal event times.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Advert {
    /// Restricted.
    pub(crate) orch_uri: Option<String>,
    /// `price_info`: (pricePerUnit, pixelsPerUnit).
    pub(crate) price: Option<(u64, u64)>,
    /// Sorted, at most the per-orchestrator bound.
    pub(crate) prices: Vec<CapabilityPrice>,
    /// One row per GPU, sorted, at most the per-orchestrator bound.
    pub(crate) hardware: Vec<HardwareRow>,
}

/// The advertisement served for one orchestrator and who reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Listing {
    /// Event time of the advertisement kept, ms.
    pub(crate) ts: u64,
    pub(crate) advert: Advert,
    /// Latest report time per gateway (the greatest by (time, address) kept
    /// when over the bound).
    pub(crate) gateways: BTreeMap<Address, u64>,
}

/// Payments and unserved sessions of one (origin, model, region) minute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ledger {
    /// Payment events.
    pub(crate) payments: u64,
    /// Σ faceValue × numTickets × winProb, wei (rounded down per payment).
    pub(crate) fees_wei: u128,
    /// Σ faceValue, wei: NaaP's `ticket_face_value_eth` (×10^18).
    pub(crate) face_value_wei: u128,
    /// Sessions no orchestrator could take.
    pub(crate) unserved: u64,
}

impl Pack for Ledger {
    fn pack(&self, out: &mut Vec<u8>) {
        put(out, u128::from(self.payments));
        put(out, self.fees_wei);
        put(out, self.face_value_wei);
        put(out, u128::from(self.unserved));
    }

    fn unpack(&mut self, mut bytes: &[u8]) -> Option<()> {
        self.payments = get64(&mut bytes)?;
        self.fees_wei = get(&mut bytes)?;
        self.face_value_wei = get(&mut bytes)?;
        self.unserved = get64(&mut bytes)?;
        bytes.is_empty().then_some(())
    }
}

impl Mergeable for Ledger {
    fn merge_from(&mut self, o: &Self) {
        self.payments = self.payments.saturating_add(o.payments);
        self.fees_wei = self.fees_wei.saturating_add(o.fees_wei);
        self.face_value_wei = self.face_value_wei.saturating_add(o.face_value_wei);
        self.unserved = self.unserved.saturating_add(o.unserved);
    }
}

/// A session that signalled "no orchestrator", until its minute seals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Unplaced {
    /// Earliest signal, ms.
    pub(crate) ts: u64,
    /// Canonical model of the earliest signal (smallest on a tie).
    pub(crate) model: String,
    pub(crate) region: String,
    /// Counted (or found placed) at the seal of its minute.
    pub(crate) decided: bool,
}

/// (origin code, canonical model, gateway region).
pub(crate) type LedgerKey = (u8, String, String);

/// (gateway, origin code, request id): the engine's session identity.
pub(crate) type UnplacedKey = (Address, u8, String);

/// The inventory part of the engine's state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Inventory {
    /// Latest advertisement per listed orchestrator.
    #[serde(default)]
    pub(crate) listings: BTreeMap<Address, Listing>,
    /// Payments and unserved sessions per minute.
    #[serde(default)]
    pub(crate) ledger: BTreeMap<LedgerKey, Series<Ledger>>,
    /// Sessions with a "no orchestrator" signal, until held long enough.
    #[serde(default)]
    pub(crate) unplaced: BTreeMap<UnplacedKey, Unplaced>,
}

impl Inventory {
    /// Whether nothing is held: the state then serializes without this part,
    /// so snapshots of engines that never saw these families are unchanged.
    pub(crate) fn is_empty(&self) -> bool {
        self.listings.is_empty() && self.ledger.is_empty() && self.unplaced.is_empty()
    }
}

/// Why a payment or an advertisement could not be read (a counter suffix).
pub(crate) type Unreadable = &'static str;

/// A `create_new_payment` event's amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Payment {
    pub(crate) face_value_wei: u128,
    pub(crate) fees_wei: u128,
}

/// Reads go-livepeer's payment amounts (all strings): `faceValue` as
/// `"<n> WEI"` (also `GWEI`/`ETH` with decimals, or a bare integer of wei),
/// `numTickets` as an integer, `winProb` as a decimal in [0, 1]: the
/// values of those three members, in that order.
pub(crate) fn payment(
    [face, tickets, win]: [Option<BodyRef<'_>>; 3],
) -> Result<Payment, Unreadable> {
    let face = face.and_then(|f| f.get_str("")).and_then(parse_wei).ok_or("payment_face_value")?;
    let tickets = tickets.and_then(|t| t.get_u64("")).ok_or("payment_tickets")?;
    let win = win
        .and_then(|w| w.get_str(""))
        .and_then(|w| parse_fixed(w, 18))
        .ok_or("payment_win_prob")?;
    if win > WEI_PER_ETH {
        return Err("payment_win_prob");
    }
    let fees = face
        .checked_mul(u128::from(tickets))
        .and_then(|v| v.checked_mul(win))
        .map(|v| v / WEI_PER_ETH)
        .ok_or("payment_overflow")?;
    Ok(Payment { face_value_wei: face, fees_wei: fees })
}

/// An amount of wei from go-livepeer's formatted text.
pub(crate) fn parse_wei(text: &str) -> Option<u128> {
    let t = text.trim();
    let (number, decimals) = match t.rsplit_once(' ') {
        None => (t, 0),
        Some((n, unit)) => match unit.to_ascii_uppercase().as_str() {
            "WEI" => (n.trim(), 0),
            "GWEI" => (n.trim(), 9),
            "ETH" => (n.trim(), 18),
            _ => return None,
        },
    };
    parse_fixed(number, decimals)
}

/// A non-negative decimal as an integer at `decimals` fractional digits,
/// digits beyond them dropped (rounded down). `None` for anything else.
pub(crate) fn parse_fixed(text: &str, decimals: u32) -> Option<u128> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return None;
    }
    let mut value: u128 = 0;
    for b in whole.bytes() {
        value = value.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    let mut frac = frac.bytes();
    for _ in 0..decimals {
        let d = frac.next().map_or(0, |b| b - b'0');
        value = value.checked_mul(10)?.checked_add(u128::from(d))?;
    }
    Some(value)
}

fn short_text(v: Option<&Json>) -> Option<String> {
    v.and_then(lenient::as_text).filter(|s| s.len() <= MAX_TEXT).map(str::to_owned)
}

/// One orchestrator entry of `network_capabilities` read into an
/// [`Advert`] (unbounded; the engine applies its bounds). `None` when the
/// entry names no usable address.
pub(crate) fn advert(entry: &Json) -> Option<(Address, Advert)> {
    let address: Address = entry.get("address").and_then(lenient::as_text)?.parse().ok()?;
    let price_of = |p: &Json| {
        Some((
            p.get("pricePerUnit").and_then(lenient::as_u64)?,
            p.get("pixelsPerUnit").and_then(lenient::as_u64)?,
        ))
    };
    let prices = entry
        .get("capabilities_prices")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let (price_per_unit, pixels_per_unit) = price_of(p)?;
            Some(CapabilityPrice {
                capability: p.get("capability").and_then(lenient::as_u64),
                constraint: short_text(p.get("constraint")),
                price_per_unit,
                pixels_per_unit,
            })
        })
        .collect();
    let mut hardware = Vec::new();
    for h in entry.get("hardware").and_then(Json::as_array).into_iter().flatten() {
        let pipeline = short_text(h.get("pipeline")).unwrap_or_default();
        let model = short_text(h.get("model_id")).unwrap_or_default();
        // go-livepeer writes a map keyed by GPU index; some producers an array.
        let gpus: Vec<&Json> = match h.get("gpu_info") {
            Some(Json::Object(m)) => m.values().collect(),
            Some(Json::Array(a)) => a.iter().collect(),
            _ => Vec::new(),
        };
        if gpus.is_empty() {
            hardware.push(HardwareRow { pipeline, model, ..HardwareRow::default() });
            continue;
        }
        for g in gpus {
            let num = |k: &str| g.get(k).and_then(lenient::as_u64);
            hardware.push(HardwareRow {
                pipeline: pipeline.clone(),
                model: model.clone(),
                gpu_id: short_text(g.get("id")),
                gpu_name: short_text(g.get("name")),
                major: num("major"),
                minor: num("minor"),
                memory_free: num("memory_free"),
                memory_total: num("memory_total"),
            });
        }
    }
    let advert = Advert {
        orch_uri: short_text(entry.get("orch_uri")).or_else(|| short_text(entry.get("uri"))),
        price: entry.get("price_info").and_then(price_of),
        prices,
        hardware,
    };
    Some((address, advert))
}

/// Sorts `rows`, drops duplicates and keeps the first `max`: a bound that
/// depends on content only. Returns how many were cut.
pub(crate) fn bound_sorted<T: Ord>(rows: &mut Vec<T>, max: usize) -> u64 {
    rows.sort();
    rows.dedup();
    let cut = rows.len().saturating_sub(max);
    rows.truncate(max);
    cut as u64
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wei_amounts_in_go_livepeer_units() {
        assert_eq!(parse_wei("2416800000000000 WEI"), Some(2_416_800_000_000_000));
        assert_eq!(parse_wei("12 wei"), Some(12));
        assert_eq!(parse_wei("1.5 GWEI"), Some(1_500_000_000));
        assert_eq!(parse_wei("0.000000100000000000"), Some(0));
        assert_eq!(parse_wei("0.01 ETH"), Some(10_000_000_000_000_000));
        assert_eq!(parse_wei("100"), Some(100));
        for bad in ["", "WEI", "1 BTC", "-1 WEI", "1e3 WEI", "."] {
            assert_eq!(parse_wei(bad), None, "{bad}");
        }
    }

    /// The members [`payment`] reads, as the engine finds them.
    fn amounts(data: &serde_json::Value) -> [Option<BodyRef<'_>>; 3] {
        BodyRef::from(data).members(["faceValue", "numTickets", "winProb"])
    }

    #[test]
    fn fees_are_the_expected_value_rounded_down_once() {
        // The real sample: 2 tickets of 2416800000000000 wei at 0.0009930487.
        let data = json!({"faceValue": "2416800000000000 WEI", "numTickets": "2",
                          "winProb": "0.0009930487"});
        let p = payment(amounts(&data)).unwrap();
        // 2416800000000000 × 2 × 9930487 / 10^10 = 4800000196320 wei exactly.
        assert_eq!(p.fees_wei, 4_800_000_196_320);
        assert_eq!(p.face_value_wei, 2_416_800_000_000_000);
        let third = json!({"faceValue": "10 WEI", "numTickets": "1", "winProb": "0.333"});
        assert_eq!(payment(amounts(&third)).unwrap().fees_wei, 3);
        let over = json!({"faceValue": "1 WEI", "numTickets": "1", "winProb": "1.5"});
        assert_eq!(payment(amounts(&over)), Err("payment_win_prob"));
        let missing = json!({"faceValue": "1 WEI", "winProb": "0.5"});
        assert_eq!(payment(amounts(&missing)), Err("payment_tickets"));
    }
}
