//! The SLA policy: formula weights, targets, windows, lag and grace, the
//! failure classification table and the metric definitions
//! (`schemas/policy/*.toml`).

use std::path::Path;

use keccak_asm::Keccak256;
use serde::Deserialize;

use crate::definitions::{BenchmarkPolicy, MetricsPolicy};
use crate::{PolicyError, SlaError};

/// `sla-policy` v1, compiled in, used by [`Policy::default_v1`].
pub const DEFAULT_POLICY_TOML: &str = include_str!("../../schemas/policy/sla-policy-v1.toml");

/// The policies that ship with Vouch, by name (`{id}-v{version}`): a node
/// names them in `[sla]` without a file, and a query in `?policy=`.
pub const BUILTIN_POLICIES: [(&str, &str); 3] = [
    ("sla-policy-v1", DEFAULT_POLICY_TOML),
    ("sla-policy-v2", include_str!("../../schemas/policy/sla-policy-v2.toml")),
    (
        "naap-quality-benchmark-v1",
        include_str!("../../schemas/policy/naap-quality-benchmark-v1.toml"),
    ),
];

/// A failure class (DESIGN.md §8). `client_caused` failures are excused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The orchestrator did not answer in time (startup or segments).
    Timeout,
    /// The model or runner failed.
    ModelError,
    /// The media transport (trickle, connection) broke.
    TransportDisconnect,
    /// The orchestrator refused the work (capacity, payment).
    OrchestratorRejection,
    /// The gateway itself failed (no orchestrators, too many swaps).
    GatewayError,
    /// The client went away ("whip disconnected", …): excused.
    ClientCaused,
    /// Anything else.
    Other,
}

impl FailureClass {
    /// Every class, in the order of [`FailureClass::index`].
    pub const ALL: [FailureClass; 7] = [
        FailureClass::Timeout,
        FailureClass::ModelError,
        FailureClass::TransportDisconnect,
        FailureClass::OrchestratorRejection,
        FailureClass::GatewayError,
        FailureClass::ClientCaused,
        FailureClass::Other,
    ];

    /// Position in [`FailureClass::ALL`] (and in bucket counter arrays).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The snake_case name used in responses.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Timeout => "timeout",
            FailureClass::ModelError => "model_error",
            FailureClass::TransportDisconnect => "transport_disconnect",
            FailureClass::OrchestratorRejection => "orchestrator_rejection",
            FailureClass::GatewayError => "gateway_error",
            FailureClass::ClientCaused => "client_caused",
            FailureClass::Other => "other",
        }
    }

    /// Whether a failure of this class is excused (never lowers a score).
    pub fn excused(self) -> bool {
        self == FailureClass::ClientCaused
    }

    pub(crate) fn from_index(i: u8) -> FailureClass {
        FailureClass::ALL.get(usize::from(i)).copied().unwrap_or(FailureClass::Other)
    }
}

/// One row of the classification table: every substring must occur in the
/// lower-cased message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FailureRule {
    /// The class a matching message gets.
    pub class: FailureClass,
    /// Lower-case substrings that must all occur.
    pub contains: Vec<String>,
}

/// `[ingest]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestPolicy {
    /// Most an event's time may trail its envelope's, ms.
    pub event_lag_ms: u64,
    /// How long after its end a minute bucket seals, ms.
    pub seal_grace_ms: u64,
    /// Region of events that name none.
    pub default_region: String,
}

/// `[attempt]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptPolicy {
    /// Startup is judged on events within this long of an attempt's first event, ms.
    pub startup_horizon_ms: u64,
    /// A swap back to the same orchestrator within this long is a retry, ms.
    pub swap_horizon_ms: u64,
    /// Largest status gap still counted as inference time, ms.
    pub max_status_gap_ms: u64,
}

/// `[windows]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowPolicy {
    /// Window names a query may use.
    pub names: Vec<String>,
    /// The window of a query that names none.
    pub default: String,
    /// Minute buckets kept.
    pub minute_retention: u32,
    /// Hour buckets kept.
    pub hour_retention: u32,
}

/// `[scoring]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringPolicy {
    /// Attempts a score needs in its window.
    pub min_attempts: u64,
    /// Percentile compared with the model targets.
    pub compliance_percentile: u32,
    /// Window of the cohort benchmarks.
    pub benchmark_window: String,
    /// Cohort samples below which a benchmark is neutral.
    pub min_benchmark_samples: u64,
    /// Relative fps difference that flags a self-report.
    pub self_report_disagree_ratio: f64,
}

/// `[corroboration]`: how many gateways a score needs, and when one
/// gateway's view of an orchestrator is flagged as far from the others'.
/// Every key has a default, so policies recorded before the table existed
/// still load (with the defaults below).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorroborationPolicy {
    /// Distinct gateways a score needs in its window.
    pub min_gateways: u64,
    /// Scored attempts a gateway needs in the window before its view is judged.
    pub min_attempts: u64,
    /// A startup success rate further than this (absolute) from the median
    /// gateway's is flagged.
    pub success_rate_delta: f64,
    /// A mean PTFF more than this factor above or below the median
    /// gateway's is flagged.
    pub ptff_ratio: f64,
}

impl Default for CorroborationPolicy {
    fn default() -> Self {
        CorroborationPolicy {
            min_gateways: 1,
            min_attempts: 10,
            success_rate_delta: 0.3,
            ptff_ratio: 2.0,
        }
    }
}

/// `[sla_score_v1]`: the Cloud SPE formula.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SlaScoreV1 {
    pub reliability_weight: f64,
    pub quality_weight: f64,
    pub startup_success_weight: f64,
    pub no_swap_weight: f64,
    pub output_viability_weight: f64,
    pub latency_weight: f64,
    pub fps_weight: f64,
    pub ptff_weight: f64,
    pub e2e_weight: f64,
    pub latency_good_percentile: u32,
    pub latency_bad_percentile: u32,
    pub fps_good_percentile: u32,
    pub fps_bad_percentile: u32,
    pub latency_shrink_n: u64,
    pub fps_shrink_n: u64,
    pub neutral: f64,
    pub expected_signals: u64,
}

/// `[legacy]`: the leaderboard's AI score.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyPolicy {
    /// Weight of the success rate.
    pub success_weight: f64,
    /// Weight of the round-trip score.
    pub latency_weight: f64,
    /// What the median round trip scores.
    pub median_score: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    id: String,
    version: u32,
    ingest: IngestPolicy,
    attempt: AttemptPolicy,
    windows: WindowPolicy,
    scoring: ScoringPolicy,
    #[serde(default)]
    corroboration: CorroborationPolicy,
    sla_score_v1: SlaScoreV1,
    legacy: LegacyPolicy,
    failure_rules: Vec<FailureRule>,
    #[serde(default)]
    metrics: MetricsPolicy,
    #[serde(default)]
    benchmark: BenchmarkPolicy,
}

/// A loaded policy and the hash of its file bytes.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Policy id (`sla-policy`).
    pub id: String,
    /// Policy version.
    pub version: u32,
    /// `[ingest]`.
    pub ingest: IngestPolicy,
    /// `[attempt]`.
    pub attempt: AttemptPolicy,
    /// `[windows]`.
    pub windows: WindowPolicy,
    /// `[scoring]`.
    pub scoring: ScoringPolicy,
    /// `[corroboration]`.
    pub corroboration: CorroborationPolicy,
    /// `[sla_score_v1]`.
    pub sla: SlaScoreV1,
    /// `[legacy]`.
    pub legacy: LegacyPolicy,
    /// The failure classification table, first match wins.
    pub failure_rules: Vec<FailureRule>,
    /// `[metrics]`: what each metric measures.
    pub metrics: MetricsPolicy,
    /// `[benchmark]`: where cohort benchmarks come from.
    pub benchmark: BenchmarkPolicy,
    /// `0x` + keccak-256 of the file bytes.
    pub hash: String,
}

/// `0x` + hex keccak-256 of `bytes`.
pub(crate) fn file_hash(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(Keccak256::digest(bytes)))
}

impl Policy {
    /// The compiled-in `sla-policy-v1.toml`.
    pub fn default_v1() -> Policy {
        #[allow(clippy::expect_used)]
        Policy::from_toml(DEFAULT_POLICY_TOML).expect("the embedded policy is valid")
    }

    /// Parses a policy file's text.
    pub fn from_toml(text: &str) -> Result<Policy, SlaError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| SlaError::Policy(e.into()))?;
        let policy = Policy {
            id: file.id,
            version: file.version,
            ingest: file.ingest,
            attempt: file.attempt,
            windows: file.windows,
            scoring: file.scoring,
            corroboration: file.corroboration,
            sla: file.sla_score_v1,
            legacy: file.legacy,
            failure_rules: file.failure_rules,
            metrics: file.metrics,
            benchmark: file.benchmark,
            hash: file_hash(text.as_bytes()),
        };
        policy.check()?;
        Ok(policy)
    }

    /// A policy that ships with Vouch, by name ([`BUILTIN_POLICIES`]).
    pub fn builtin(name: &str) -> Option<Policy> {
        let (_, text) = BUILTIN_POLICIES.iter().find(|(n, _)| *n == name)?;
        Policy::from_toml(text).ok()
    }

    /// The text of a policy that ships with Vouch, by name.
    pub fn builtin_text(name: &str) -> Option<&'static str> {
        BUILTIN_POLICIES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    /// The name a query selects this policy by: `{id}-v{version}`.
    pub fn name(&self) -> String {
        format!("{}-v{}", self.id, self.version)
    }

    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Policy, SlaError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SlaError::Io { path: path.display().to_string(), source })?;
        Policy::from_toml(&text)
    }

    fn check(&self) -> Result<(), SlaError> {
        let bad = |m: &'static str| Err(SlaError::Policy(PolicyError::OutOfRange(m)));
        if self.windows.minute_retention < 61 {
            return bad("windows.minute_retention must be at least 61 minutes");
        }
        if self.attempt.startup_horizon_ms == 0 || self.attempt.swap_horizon_ms == 0 {
            return bad("attempt horizons must be positive");
        }
        for w in self.windows.names.iter().chain([&self.windows.default]) {
            if crate::query::Window::parse(w).is_none() {
                return Err(SlaError::Policy(PolicyError::UnknownWindow { window: w.clone() }));
            }
        }
        if crate::query::Window::parse(&self.scoring.benchmark_window).is_none() {
            return bad("unknown scoring.benchmark_window");
        }
        let p = self.scoring.compliance_percentile;
        if p == 0 || p > 100 {
            return bad("scoring.compliance_percentile must be 1..=100");
        }
        let c = &self.corroboration;
        if c.min_gateways == 0 {
            return bad("corroboration.min_gateways must be at least 1");
        }
        if !(c.success_rate_delta > 0.0 && c.ptff_ratio > 1.0) {
            return bad("corroboration.success_rate_delta must be > 0 and ptff_ratio > 1");
        }
        if !(self.legacy.median_score > 0.0 && self.legacy.median_score < 1.0) {
            return bad("legacy.median_score must be strictly between 0 and 1");
        }
        if self.id.is_empty() || !self.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return bad("id must be non-empty ASCII letters, digits and dashes");
        }
        self.metrics.check().or_else(bad)?;
        if self.metrics.signals.len() as u64 != self.sla.expected_signals {
            return bad("sla_score_v1.expected_signals must equal the number of metrics.signals");
        }
        Ok(())
    }

    /// Classifies a go-livepeer error message (case-insensitive substrings:
    /// both sides lower-cased as `str::to_lowercase` does). go-livepeer's
    /// messages and the rules are ASCII, compared without copying.
    pub fn classify(&self, message: &str) -> FailureClass {
        let lower;
        let message = if message.is_ascii() {
            message
        } else {
            lower = message.to_lowercase();
            &lower
        };
        self.failure_rules
            .iter()
            .find(|r| r.contains.iter().all(|s| contains_lowercased(message, s)))
            .map_or(FailureClass::Other, |r| r.class)
    }
}

/// Whether `haystack`, which is ASCII or lower-cased already, contains
/// `needle` lower-cased.
fn contains_lowercased(haystack: &str, needle: &str) -> bool {
    if needle.is_ascii() {
        contains_ignore_ascii_case(haystack, needle)
    } else {
        haystack.to_lowercase().contains(&needle.to_lowercase())
    }
}

/// Whether `haystack` contains `needle`, ASCII letters compared without
/// case (what `haystack.to_ascii_lowercase().contains(needle)` says for a
/// lower-case ASCII `needle`), without copying either.
pub(crate) fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn embedded_policy_loads_and_classifies() {
        let p = Policy::default_v1();
        assert_eq!(p.scoring.min_attempts, 10);
        assert_eq!(p.classify("WHIP disconnected"), FailureClass::ClientCaused);
        assert_eq!(p.classify("no orchestrators available"), FailureClass::GatewayError);
        assert_eq!(p.classify("something odd"), FailureClass::Other);
        assert!(p.hash.starts_with("0x") && p.hash.len() == 66);
        assert_eq!(p.metrics, MetricsPolicy::default(), "v1 predates [metrics]: its defaults");
    }

    use proptest::strategy::Strategy;

    proptest::proptest! {
        /// Classification without copies says what lower-casing both sides
        /// said, for any message: ASCII or not, any case, the rules' own
        /// words among other text, and rule words that are not ASCII.
        #[test]
        fn classifying_matches_lowercasing_both_sides(
            words in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        "WHIP", "disconnected", "No Orchestrators", "available", "OOM", "İ", "ẞ",
                        "timeout", "Error", "K", "\u{212a}", "é", " ",
                    ]).prop_map(str::to_owned),
                    "\\PC{0,6}",
                ],
                0..8,
            ),
            extra in "\\PC{0,4}",
        ) {
            let message = words.concat();
            for name in BUILTIN_POLICIES.iter().map(|(n, _)| n) {
                let mut p = Policy::builtin(name).unwrap();
                let lower = message.to_lowercase();
                let before = |p: &Policy| {
                    p.failure_rules
                        .iter()
                        .find(|r| r.contains.iter().all(|s| lower.contains(&s.to_lowercase())))
                        .map_or(FailureClass::Other, |r| r.class)
                };
                proptest::prop_assert_eq!(p.classify(&message), before(&p));
                // A rule word that is not ASCII takes the copying path.
                if let Some(rule) = p.failure_rules.first_mut() {
                    rule.contains.push(format!("é{extra}"));
                }
                proptest::prop_assert_eq!(p.classify(&message), before(&p));
            }
            let needle = crate::engine::inventory::NO_ORCHESTRATOR_MESSAGE;
            proptest::prop_assert_eq!(
                contains_ignore_ascii_case(&message, needle),
                message.to_ascii_lowercase().contains(needle)
            );
        }
    }

    #[test]
    fn every_builtin_policy_loads_under_its_name() {
        for (name, _) in BUILTIN_POLICIES {
            let p = Policy::builtin(name).unwrap_or_else(|| panic!("{name} loads"));
            assert_eq!(p.name(), name);
        }
        assert!(Policy::builtin("sla-policy-v9").is_none());
    }

    #[test]
    fn bad_definitions_are_refused_with_the_key_named() {
        let v2 = Policy::builtin_text("sla-policy-v2").unwrap();
        let cases = [
            (
                "ptff = { from = \"request\", to = \"few_processed\" }",
                "ptff = { from = \"request\", to = \"request\" }",
                "different edges",
            ),
            ("unit = \"attempt\"", "unit = \"hour\"", "unknown variant"),
        ];
        for (from, to, want) in cases {
            assert!(v2.contains(from), "{from}");
            let err = Policy::from_toml(&v2.replace(from, to)).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }
}
