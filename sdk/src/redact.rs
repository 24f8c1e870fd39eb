//! Privacy before signing (DESIGN.md §3.2): what must never be published is
//! removed, and restricted identifiers are pseudonymized, before an event is
//! signed. Gossip is public and archived by whoever listens, so nothing that
//! leaves this stage can be taken back.
//!
//! The adapter stays lossless; the [`Redactor`] is a separate step that the
//! publisher's worker applies to **every** event it signs, however the event
//! entered (`publish` or `publish_go_livepeer`). It walks `data` and the
//! kept Kafka envelope members at every depth, matching member names by
//! their words: `clientIP`, `client_ip` and `Client-IP` are all the words
//! `client ip`.
//!
//! # What the strict default does
//!
//! | switch (default) | member names matched (any depth, any case) | action | examples in go-livepeer events |
//! |---|---|---|---|
//! | `drop_client_ips` (on) | a word `ip`, `ips`, `ipv4`, `ipv6`, `ipaddr`, `ipaddress`; `remote`/`client`/`user`/`viewer` with `addr`/`address`/`host`; a word `forwarded` | member removed | `create_new_payment.clientIP`, `remote_addr`, `X-Forwarded-For` |
//! | `mask_ip_literals` (on) | every text value except under URL members (last word `url`, `uri`, `urls`, `uris`, or the member `orchestrator`) | each IPv4/IPv6 literal inside the text replaced by `[ip]` | an error `message` quoting `dial tcp 203.0.113.7:443` |
//! | `drop_params` (on) | a word `params`, `parameters`, `prompt` or `prompts`, unless the last word is a measure (`time`, `timestamp`, `ms`, `latency`, `count`, …) or `hash` | member removed | `ai_stream_events` `params_update`'s `params`; `ai_stream_status.inference_status.last_params`; `prompt`, `negative_prompt`, `pipeline_parameters` |
//! | `drop_params` + `pseudonymize` (on) | as above with last word `hash` | keyed pseudonym (removed if `pseudonymize` is off) | `inference_status.last_params_hash` (an unkeyed MD5 of the params, so a dictionary could recover a prompt) |
//! | `drop_access_urls` (on) | last word `url`/`uri` with a first word `publish`, `subscribe`, `control`, `events`, `whip`, `whep`, `rtmp`, `ingest`, `playback`; `stream key`, `api key`; a word `token`, `secret`, `password`, `passwd`, `auth`, `authorization`, `jwt`, `cookie`, `credential(s)` | member removed | trickle channel URLs (bearer capabilities), stream keys |
//! | `drop_logs` (on) | last word `log` or `logs` | member removed | `inference_status.last_restart_logs`, runner `restart_logs` (free text that may quote prompts or addresses) |
//! | `pseudonymize` (on) | `gpu_id`, `gpu_uuid`, `runner_id`, `runner_uuid`; `id`, `uuid`, `serial` inside a member with a word `gpu`/`gpus`; any text value that is a GPU or MIG UUID (`GPU-…`, `MIG-…`) | value replaced by `p:` + the first 32 hex digits of `blake3::keyed_hash(key, value)` | `network_capabilities[].hardware[].gpu_info.id`, `gpu_stats` UUIDs |
//! | `drop_keys` (`[]`) | extra member names (compared by words) | member removed | |
//! | `pseudonymize_keys` (`[]`) | extra member names (compared by words) | keyed pseudonym | |
//! | `drop_pointers` (`[]`) | RFC 6901 pointers into `data`; a `*` segment matches every member or element | member or element removed | `/*/capabilities_prices` |
//!
//! Kept on purpose: orchestrator addresses and URLs (operators are public),
//! stream, request, manifest and pipeline ids, model ids, timings, fps,
//! states and error messages (with addresses masked). A pseudonym is stable
//! for one key, so a verifier holding the same key can join samples of one
//! GPU without learning its UUID; values already in pseudonym form (`p:…`)
//! are left alone. Null, boolean and empty values carry nothing and are left
//! as they are.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use vouch_schema::Event;

/// The text that replaces an IP literal inside a value.
pub const IP_MASK: &str = "[ip]";

/// The prefix of a pseudonym.
pub const PSEUDONYM_PREFIX: &str = "p:";

/// Hex digits of the keyed hash kept in a pseudonym (128 bits).
pub const PSEUDONYM_HEX_DIGITS: usize = 32;

/// The context string of [`derive_pseudonym_key`].
pub const PSEUDONYM_KEY_CONTEXT: &str = "vouch pseudonym key v1";

/// The default pseudonym key: `blake3::derive_key(PSEUDONYM_KEY_CONTEXT,
/// signing key bytes)`. Secret (it unmasks pseudonyms by dictionary), stable
/// for one delegate key; the publisher uses it unless
/// `pseudonym_key_file` is set. Give the same key to `crate::gpu`'s sampler.
pub fn derive_pseudonym_key(signing_key: &k256::ecdsa::SigningKey) -> [u8; 32] {
    blake3::derive_key(PSEUDONYM_KEY_CONTEXT, signing_key.to_bytes().as_slice())
}

/// Most `drop_pointers`, `drop_keys` and `pseudonymize_keys` entries, each.
pub const MAX_EXTRA_RULES: usize = 256;

/// Deepest recursion of the walk; deeper values are removed. Events never
/// nest deeper than `vouch_schema::event::MAX_JSON_DEPTH` (32).
const MAX_WALK_DEPTH: usize = 64;

/// Most words of a member name looked at.
const MAX_WORDS: usize = 8;

/// `[redaction]`: what is removed or pseudonymized before signing. Every
/// switch defaults to on: the default is strict (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    /// Remove members that hold client addresses (`clientIP`, `remote_addr`, …).
    pub drop_client_ips: bool,
    /// Replace IPv4/IPv6 literals inside text values (except URLs) with `[ip]`.
    pub mask_ip_literals: bool,
    /// Remove prompts and pipeline parameters (`params`, `last_params`, `prompt`, …).
    pub drop_params: bool,
    /// Remove stream access URLs, stream keys and credentials.
    pub drop_access_urls: bool,
    /// Remove free-text runner logs (`last_restart_logs`, …).
    pub drop_logs: bool,
    /// Replace GPU UUIDs, runner ids and parameter hashes with keyed pseudonyms.
    pub pseudonymize: bool,
    /// Extra member names to remove at any depth.
    pub drop_keys: Vec<String>,
    /// Extra member names whose values are pseudonymized.
    pub pseudonymize_keys: Vec<String>,
    /// Extra RFC 6901 pointers into `data` to remove; `*` matches any member or element.
    pub drop_pointers: Vec<String>,
    /// A file holding the 32-byte pseudonym key as hex. Default: a key
    /// derived from the delegate signing key ([`derive_pseudonym_key`]),
    /// which changes when the key is rotated; set
    /// one shared key on every box of an operator for pseudonyms that are
    /// stable across boxes and rotations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pseudonym_key_file: Option<PathBuf>,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        RedactionConfig {
            drop_client_ips: true,
            mask_ip_literals: true,
            drop_params: true,
            drop_access_urls: true,
            drop_logs: true,
            pseudonymize: true,
            drop_keys: Vec::new(),
            pseudonymize_keys: Vec::new(),
            drop_pointers: Vec::new(),
            pseudonym_key_file: None,
        }
    }
}

/// Why extra redaction rules are refused ([`RedactionConfig::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedactionRuleError {
    /// A rule list over [`MAX_EXTRA_RULES`].
    #[error("{list} has {entries} entries, over {MAX_EXTRA_RULES}")]
    TooMany {
        /// `drop_keys`, `pseudonymize_keys` or `drop_pointers`.
        list: &'static str,
        /// How many it holds.
        entries: usize,
    },
    /// A member name with no word in it (it would match nothing).
    #[error("member name {name:?} has no letters or digits")]
    NoWord {
        /// The name as configured.
        name: String,
    },
    /// A JSON pointer that does not start with `/`.
    #[error("pointer {pointer:?} must start with '/'")]
    PointerStart {
        /// The pointer as configured.
        pointer: String,
    },
    /// A JSON pointer of more than 32 segments.
    #[error("pointer {pointer:?} has more than 32 segments")]
    PointerDepth {
        /// The pointer as configured.
        pointer: String,
    },
}

impl RedactionConfig {
    /// Checks the extra rules: at most [`MAX_EXTRA_RULES`] of each, names
    /// with at least one word, pointers that start with `/`.
    pub fn validate(&self) -> Result<(), RedactionRuleError> {
        for (name, list) in [
            ("drop_keys", &self.drop_keys),
            ("pseudonymize_keys", &self.pseudonymize_keys),
            ("drop_pointers", &self.drop_pointers),
        ] {
            if list.len() > MAX_EXTRA_RULES {
                return Err(RedactionRuleError::TooMany { list: name, entries: list.len() });
            }
        }
        for key in self.drop_keys.iter().chain(&self.pseudonymize_keys) {
            if Words::of(key).is_empty() {
                return Err(RedactionRuleError::NoWord { name: key.clone() });
            }
        }
        for p in &self.drop_pointers {
            parse_pointer(p)?;
        }
        Ok(())
    }
}

/// What happens to one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Keep,
    Drop,
    Pseudonymize,
}

/// Remembered member names. Looked up for every member of every event, so
/// hashed with foldhash rather than SipHash (~3 % of the worker's time
/// in a profile); the names come from the operator's own node and the map is
/// bounded, so SipHash's flood resistance buys nothing here.
type Cache = HashMap<String, KeyInfo, foldhash::fast::RandomState>;

/// Where in the value the walk is.
#[derive(Debug, Clone, Copy, Default)]
struct Context {
    /// Inside a member named with a word `gpu`.
    gpu: bool,
    /// Inside a URL member: IP literals are public there.
    url: bool,
    /// Inside a member whose values are all pseudonymized.
    pseudonymize: bool,
}

/// What a member name means, whatever its context.
#[derive(Debug, Clone, Copy)]
struct KeyInfo {
    /// The action outside any special context.
    action: Action,
    /// Pseudonymized inside a GPU member (`id`, `uuid`, `serial`).
    gpu_id: bool,
    /// Opens a GPU context (a word `gpu`/`gpus`).
    gpu_scope: bool,
    /// Opens a URL context.
    url_scope: bool,
}

/// Most member names remembered by one [`Redactor`]; names beyond it are
/// classified every time (hostile input cannot grow memory).
const MAX_CACHED_NAMES: usize = 4096;

/// Applies a [`RedactionConfig`] to events. Safe to share across threads.
/// Member names are classified once and remembered (up to 4,096 names).
pub struct Redactor {
    config: RedactionConfig,
    drop_keys: Vec<Vec<String>>,
    pseudonymize_keys: Vec<Vec<String>>,
    pointers: Vec<Vec<String>>,
    key: [u8; 32],
    cache: std::sync::Mutex<Cache>,
}

impl Clone for Redactor {
    fn clone(&self) -> Self {
        Redactor {
            config: self.config.clone(),
            drop_keys: self.drop_keys.clone(),
            pseudonymize_keys: self.pseudonymize_keys.clone(),
            pointers: self.pointers.clone(),
            key: self.key,
            cache: std::sync::Mutex::new(Cache::default()),
        }
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pseudonym key is a secret: never printed.
        f.debug_struct("Redactor").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor for `config`, pseudonymizing with `pseudonym_key`. Invalid
    /// extra rules (see [`RedactionConfig::validate`]) are ignored here;
    /// configurations read through `PublisherConfig` are validated already.
    pub fn new(config: &RedactionConfig, pseudonym_key: [u8; 32]) -> Redactor {
        let names = |list: &[String]| {
            list.iter()
                .take(MAX_EXTRA_RULES)
                .map(|k| Words::of(k).iter().map(|w| w.to_ascii_lowercase()).collect::<Vec<_>>())
                .filter(|w| !w.is_empty())
                .collect()
        };
        Redactor {
            drop_keys: names(&config.drop_keys),
            pseudonymize_keys: names(&config.pseudonymize_keys),
            pointers: config
                .drop_pointers
                .iter()
                .take(MAX_EXTRA_RULES)
                .filter_map(|p| parse_pointer(p).ok())
                .collect(),
            config: config.clone(),
            key: pseudonym_key,
            cache: std::sync::Mutex::new(Cache::default()),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RedactionConfig {
        &self.config
    }

    /// The keyed pseudonym of `value`: `p:` and the first
    /// [`PSEUDONYM_HEX_DIGITS`] hex digits of `blake3::keyed_hash(key, value)`
    /// (the same form as `crate::gpu`'s GPU pseudonyms, so one GPU gets one
    /// pseudonym under one key whichever way it is reported).
    pub fn pseudonym(&self, value: &str) -> String {
        let hash = blake3::keyed_hash(&self.key, value.as_bytes());
        let mut out = String::with_capacity(PSEUDONYM_PREFIX.len() + PSEUDONYM_HEX_DIGITS);
        out.push_str(PSEUDONYM_PREFIX);
        out.push_str(hash.to_hex().get(..PSEUDONYM_HEX_DIGITS).unwrap_or_default());
        out
    }

    /// Removes and pseudonymizes in place what the configuration says, in
    /// `data`, in the kept Kafka envelope members and in the header's text
    /// fields (IP literals only).
    pub fn apply(&self, event: &mut Event) {
        for pointer in &self.pointers {
            remove_pointer(&mut event.data, pointer);
        }
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.walk(&mut cache, &mut event.data, Context::default(), 0);
        if let Some(envelope) = &mut event.kafka_envelope {
            self.walk_map(&mut cache, envelope, Context::default(), 0);
        }
        drop(cache);
        if self.config.mask_ip_literals {
            for text in [
                &mut event.subtype,
                &mut event.stream_id,
                &mut event.request_id,
                &mut event.manifest_id,
                &mut event.pipeline_id,
                &mut event.model_id,
                &mut event.gateway_region,
            ]
            .into_iter()
            .flatten()
            {
                if let Some(masked) = mask_ips(text) {
                    *text = masked;
                }
            }
        }
    }

    fn walk(&self, cache: &mut Cache, v: &mut Json, ctx: Context, depth: usize) {
        match v {
            Json::Object(map) => self.walk_map(cache, map, ctx, depth),
            Json::Array(items) => {
                if depth >= MAX_WALK_DEPTH {
                    items.clear();
                    return;
                }
                for item in items {
                    self.walk(cache, item, ctx, depth + 1);
                }
            }
            Json::String(s) => {
                if s.is_empty() || s.starts_with(PSEUDONYM_PREFIX) {
                    return;
                }
                if self.config.pseudonymize && (ctx.pseudonymize || is_gpu_uuid(s)) {
                    *s = self.pseudonym(s);
                } else if self.config.mask_ip_literals
                    && !ctx.url
                    && let Some(masked) = mask_ips(s)
                {
                    *s = masked;
                }
            }
            Json::Number(n) => {
                if self.config.pseudonymize && ctx.pseudonymize {
                    *v = Json::String(self.pseudonym(&n.to_string()));
                }
            }
            Json::Null | Json::Bool(_) => {}
        }
    }

    fn walk_map(&self, cache: &mut Cache, map: &mut Map<String, Json>, ctx: Context, depth: usize) {
        if depth >= MAX_WALK_DEPTH {
            map.clear();
            return;
        }
        map.retain(|name, value| {
            let info = self.key_info(cache, name);
            let action = match info.action {
                Action::Keep if ctx.gpu && info.gpu_id && self.config.pseudonymize => {
                    Action::Pseudonymize
                }
                action => action,
            };
            match action {
                Action::Drop => return false,
                Action::Pseudonymize if self.config.pseudonymize => {
                    let inner = Context { pseudonymize: true, ..ctx };
                    self.walk(cache, value, inner, depth + 1);
                }
                Action::Pseudonymize => return false,
                Action::Keep => {
                    let inner = Context {
                        gpu: ctx.gpu || info.gpu_scope,
                        url: ctx.url || info.url_scope,
                        pseudonymize: ctx.pseudonymize,
                    };
                    self.walk(cache, value, inner, depth + 1);
                }
            }
            true
        });
    }

    /// What `name` means, from the cache or worked out (and remembered).
    fn key_info(&self, cache: &mut Cache, name: &str) -> KeyInfo {
        if let Some(info) = cache.get(name) {
            return *info;
        }
        let w = Words::of(name);
        let info = KeyInfo {
            action: self.classify(&w),
            gpu_id: w.len() == 1 && w.last_is(&["id", "uuid", "serial"]),
            gpu_scope: w.any(&["gpu", "gpus"]),
            url_scope: is_url_member(&w),
        };
        if cache.len() < MAX_CACHED_NAMES {
            cache.insert(name.to_owned(), info);
        }
        info
    }

    /// The action for a member named `w` outside any special context.
    fn classify(&self, w: &Words<'_>) -> Action {
        let c = &self.config;
        if c.drop_client_ips && names_client_address(w) {
            return Action::Drop;
        }
        if c.drop_access_urls && names_access_secret(w) {
            return Action::Drop;
        }
        if c.drop_logs && w.last_is(&["log", "logs"]) {
            return Action::Drop;
        }
        if c.drop_params && w.any(&["params", "parameters", "prompt", "prompts"]) {
            if w.last_is(&["hash"]) {
                return Action::Pseudonymize;
            }
            if !w.last_is(MEASURES) {
                return Action::Drop;
            }
        }
        if self.drop_keys.iter().any(|k| w.equals(k)) {
            return Action::Drop;
        }
        if c.pseudonymize
            && (names_restricted_id(w) || self.pseudonymize_keys.iter().any(|k| w.equals(k)))
        {
            return Action::Pseudonymize;
        }
        Action::Keep
    }
}

/// Last words that make a params/prompt member a measurement, which is kept.
const MEASURES: &[&str] = &[
    "time",
    "timestamp",
    "ts",
    "ms",
    "us",
    "ns",
    "secs",
    "seconds",
    "latency",
    "count",
    "total",
    "rate",
    "pct",
    "ratio",
    "size",
    "len",
    "length",
    "fps",
    "delay",
    "duration",
    "at",
];

fn names_client_address(w: &Words<'_>) -> bool {
    w.any(&["ip", "ips", "ipv4", "ipv6", "ipaddr", "ipaddress", "forwarded"])
        || (w.any(&["remote", "client", "user", "viewer"])
            && w.any(&["addr", "address", "host", "hostname"]))
}

fn names_access_secret(w: &Words<'_>) -> bool {
    (w.last_is(&["url", "uri", "urls", "uris"])
        && w.first_is(&[
            "publish",
            "subscribe",
            "control",
            "events",
            "whip",
            "whep",
            "rtmp",
            "ingest",
            "playback",
        ]))
        || ((w.any(&["stream", "api"])) && w.last_is(&["key"]))
        || w.any(&[
            "streamkey",
            "apikey",
            "token",
            "secret",
            "password",
            "passwd",
            "auth",
            "authorization",
            "jwt",
            "cookie",
            "credential",
            "credentials",
        ])
}

fn names_restricted_id(w: &Words<'_>) -> bool {
    (w.last_is(&["id", "uuid", "serial"]) && w.any(&["gpu", "runner"]))
        || w.equals_joined("gpuid")
        || w.equals_joined("gpuuuid")
}

fn is_url_member(w: &Words<'_>) -> bool {
    w.last_is(&["url", "uri", "urls", "uris"]) || w.equals_joined("orchestrator")
}

/// A GPU or MIG UUID as NVML prints it: `GPU-` or `MIG-` and a UUID.
fn is_gpu_uuid(s: &str) -> bool {
    let rest = s.strip_prefix("GPU-").or_else(|| s.strip_prefix("MIG-"));
    rest.is_some_and(|r| {
        r.len() >= 32 && r.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'/')
    })
}

/// The words of a member name, split at `_`, `-`, `.`, spaces and the other
/// non-alphanumerics, and at camelCase boundaries (`clientIP` → `client`,
/// `IP`; `IPAddress` → `IP`, `Address`). At most [`MAX_WORDS`] are kept.
struct Words<'a> {
    words: [&'a str; MAX_WORDS],
    len: usize,
}

impl<'a> Words<'a> {
    fn of(name: &'a str) -> Words<'a> {
        let mut out = Words { words: [""; MAX_WORDS], len: 0 };
        let b = name.as_bytes();
        let mut start: Option<usize> = None;
        let push = |out: &mut Words<'a>, from: usize, to: usize| {
            if out.len < MAX_WORDS && from < to {
                // Boundaries are at ASCII bytes, so this slice is valid UTF-8.
                if let Some(word) = name.get(from..to) {
                    out.words[out.len] = word;
                    out.len += 1;
                }
            }
        };
        for i in 0..b.len() {
            let c = b[i];
            if !c.is_ascii_alphanumeric() {
                if let Some(s) = start.take() {
                    push(&mut out, s, i);
                }
                continue;
            }
            match start {
                None => start = Some(i),
                Some(s) => {
                    let prev = b[i - 1];
                    let next_lower = b.get(i + 1).is_some_and(u8::is_ascii_lowercase);
                    let boundary = (prev.is_ascii_lowercase() && c.is_ascii_uppercase())
                        || (prev.is_ascii_uppercase() && c.is_ascii_uppercase() && next_lower);
                    if boundary {
                        push(&mut out, s, i);
                        start = Some(i);
                    }
                }
            }
        }
        if let Some(s) = start {
            push(&mut out, s, b.len());
        }
        out
    }

    fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.words[..self.len].iter().copied()
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn any(&self, set: &[&str]) -> bool {
        self.iter().any(|w| set.iter().any(|s| w.eq_ignore_ascii_case(s)))
    }

    fn first_is(&self, set: &[&str]) -> bool {
        self.words[..self.len]
            .first()
            .is_some_and(|w| set.iter().any(|s| w.eq_ignore_ascii_case(s)))
    }

    fn last_is(&self, set: &[&str]) -> bool {
        self.words[..self.len].last().is_some_and(|w| set.iter().any(|s| w.eq_ignore_ascii_case(s)))
    }

    /// Whether these are exactly `words` (lowercase), ignoring case.
    fn equals(&self, words: &[String]) -> bool {
        self.len == words.len() && self.iter().zip(words).all(|(a, b)| a.eq_ignore_ascii_case(b))
    }

    /// Whether the words joined without separators equal `joined`
    /// (lowercase), so `gpu_id`, `gpuId` and `GPUID` all equal `gpuid`.
    fn equals_joined(&self, joined: &str) -> bool {
        let mut rest = joined;
        for w in self.iter() {
            match rest.get(..w.len()) {
                Some(head) if head.eq_ignore_ascii_case(w) => {
                    rest = rest.get(w.len()..).unwrap_or("")
                }
                _ => return false,
            }
        }
        rest.is_empty() && !self.is_empty()
    }
}

/// Parses an RFC 6901 pointer into its unescaped segments.
fn parse_pointer(p: &str) -> Result<Vec<String>, RedactionRuleError> {
    let Some(rest) = p.strip_prefix('/') else {
        return Err(RedactionRuleError::PointerStart { pointer: p.to_owned() });
    };
    let segments: Vec<String> =
        rest.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
    if segments.len() > 32 {
        return Err(RedactionRuleError::PointerDepth { pointer: p.to_owned() });
    }
    Ok(segments)
}

/// Removes what `pointer` names from `v`; `*` matches every member or element.
fn remove_pointer(v: &mut Json, pointer: &[String]) {
    let Some((head, rest)) = pointer.split_first() else {
        return;
    };
    let last = rest.is_empty();
    match v {
        Json::Object(map) => {
            if head == "*" {
                if last {
                    map.clear();
                } else {
                    for item in map.values_mut() {
                        remove_pointer(item, rest);
                    }
                }
            } else if last {
                map.shift_remove(head.as_str());
            } else if let Some(item) = map.get_mut(head.as_str()) {
                remove_pointer(item, rest);
            }
        }
        Json::Array(items) => {
            if head == "*" {
                if last {
                    items.clear();
                } else {
                    for item in items {
                        remove_pointer(item, rest);
                    }
                }
            } else if let Ok(i) = head.parse::<usize>()
                && i < items.len()
            {
                if last {
                    items.remove(i);
                } else {
                    remove_pointer(&mut items[i], rest);
                }
            }
        }
        _ => {}
    }
}

/// `s` with every IPv4 or IPv6 literal replaced by [`IP_MASK`], or `None`
/// when it holds none.
pub fn mask_ips(s: &str) -> Option<String> {
    // Candidate tokens are maximal runs of hex digits, '.', ':' (and '%'
    // zone ids for IPv6); cheap to find, then parsed exactly.
    let b = s.as_bytes();
    // An IPv4 literal has three dots, an IPv6 one at least two colons.
    let (mut dots, mut colons) = (0usize, 0usize);
    for &c in b {
        dots += usize::from(c == b'.');
        colons += usize::from(c == b':');
    }
    if dots < 3 && colons < 2 {
        return None;
    }
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        let is_tok = |c: u8| c.is_ascii_hexdigit() || c == b'.' || c == b':';
        if !is_tok(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_tok(b[i]) {
            i += 1;
        }
        // A run that starts or ends with a letter or digit glued to other
        // identifier characters is part of a word (`node1.2.3.4x`, `v1.2.3`).
        let glued = |edge: u8, neighbour: Option<&u8>| {
            edge.is_ascii_alphanumeric()
                && neighbour.is_some_and(|n| n.is_ascii_alphanumeric() || *n == b'_')
        };
        if glued(b[start], start.checked_sub(1).and_then(|j| b.get(j))) || glued(b[i - 1], b.get(i))
        {
            continue;
        }
        let Some(token) = s.get(start..i) else { continue };
        if let Some((from, to)) = find_ip(token) {
            let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
            o.push_str(s.get(copied..start + from).unwrap_or_default());
            o.push_str(IP_MASK);
            copied = start + to;
        }
    }
    let mut o = out?;
    o.push_str(s.get(copied..).unwrap_or_default());
    Some(o)
}

/// The byte range of an IP literal within a candidate token (a run of hex
/// digits, `.` and `:`): an IPv6 address, or an IPv4 address possibly
/// followed by `:port`, with surrounding `.`/`:` punctuation left outside.
fn find_ip(token: &str) -> Option<(usize, usize)> {
    let t = token.trim_end_matches('.');
    let v6 = |c: &str| c.matches(':').count() >= 2 && c.parse::<Ipv6Addr>().is_ok();
    if v6(t) {
        return Some((0, t.len()));
    }
    if let Some(c) = t.strip_suffix(':')
        && v6(c)
    {
        return Some((0, c.len()));
    }
    let lead = t.len() - t.trim_start_matches([':', '.']).len();
    let v4 = t.get(lead..)?.split(':').next()?;
    if v4.parse::<Ipv4Addr>().is_ok() {
        return Some((lead, lead + v4.len()));
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn words(s: &str) -> Vec<String> {
        Words::of(s).iter().map(str::to_owned).collect()
    }

    #[test]
    fn member_names_split_into_words() {
        assert_eq!(words("clientIP"), ["client", "IP"]);
        assert_eq!(words("IPAddress"), ["IP", "Address"]);
        assert_eq!(words("last_params_hash"), ["last", "params", "hash"]);
        assert_eq!(words("X-Forwarded-For"), ["X", "Forwarded", "For"]);
        assert_eq!(words("gpuID"), ["gpu", "ID"]);
        assert_eq!(words("relationship"), ["relationship"]);
        assert!(Words::of("__").is_empty());
    }

    #[test]
    fn ip_literals_are_masked_in_text() {
        let cases = [
            ("dial tcp 203.0.113.7:443: refused", "dial tcp [ip]:443: refused"),
            ("from [2001:db8::1]:80 and 10.0.0.1.", "from [[ip]]:80 and [ip]."),
            ("peer ::ffff:192.0.2.1 gone", "peer [ip] gone"),
            ("host:198.51.100.1, fe80::1: down", "host:[ip], [ip]: down"),
        ];
        for (input, want) in cases {
            assert_eq!(mask_ips(input).as_deref(), Some(want), "{input}");
        }
        for clean in ["v1.2.3", "12:30:45", "abc.def", "deadbeef", "fps 15.08", "node1.2.3.4x"] {
            assert_eq!(mask_ips(clean), None, "{clean}");
        }
    }

    #[test]
    fn strict_default_redacts() {
        let r = Redactor::new(&RedactionConfig::default(), [7; 32]);
        let data = json!({
            "clientIP": "198.51.100.23",
            "remote_addr": "198.51.100.24:5555",
            "params": {"prompt": "a portrait of alice"},
            "inference_status": {
                "last_params": {"prompt": "secret"},
                "last_params_hash": "f2f41bce75e30de92f8c308a6722859b",
                "last_params_update_time": 17,
                "last_restart_logs": ["runner at 10.1.2.3 crashed"],
                "last_error": "dial 192.0.2.9 failed"
            },
            "orchestrator_info": {"address": "0xabc", "url": "https://192.0.2.50:8935"},
            "hardware": [{"gpu_info": {"0": {"id": "GPU-0a1b2c3d-1111-2222-3333-444455556666", "name": "RTX 4090"}}}],
            "runner_id": "runner-7",
            "publish_url": "https://o/ai/trickle/abc",
            "stream_id": "stream-1"
        });
        let mut e = Event::from_type_and_data("ai_stream_status", data, 1).unwrap();
        r.apply(&mut e);
        let d = &e.data;
        for gone in ["/clientIP", "/remote_addr", "/params", "/inference_status/last_params"] {
            assert!(d.pointer(gone).is_none(), "{gone}");
        }
        assert!(d.pointer("/inference_status/last_restart_logs").is_none());
        assert!(d.pointer("/publish_url").is_none());
        assert_eq!(d.pointer("/inference_status/last_params_update_time"), Some(&json!(17)));
        assert_eq!(d.pointer("/inference_status/last_error"), Some(&json!("dial [ip] failed")));
        assert_eq!(d.pointer("/orchestrator_info/url"), Some(&json!("https://192.0.2.50:8935")));
        let hash = d.pointer("/inference_status/last_params_hash").unwrap().as_str().unwrap();
        assert_eq!(hash, r.pseudonym("f2f41bce75e30de92f8c308a6722859b"));
        let gpu = d.pointer("/hardware/0/gpu_info/0/id").unwrap().as_str().unwrap();
        assert_eq!(gpu, r.pseudonym("GPU-0a1b2c3d-1111-2222-3333-444455556666"));
        assert_eq!(d.pointer("/hardware/0/gpu_info/0/name"), Some(&json!("RTX 4090")));
        assert_eq!(d.pointer("/runner_id").unwrap().as_str().unwrap(), r.pseudonym("runner-7"));
        assert_eq!(d.pointer("/stream_id"), Some(&json!("stream-1")));
        // Idempotent: a second pass changes nothing.
        let once = e.clone();
        r.apply(&mut e);
        assert_eq!(e, once);
    }

    #[test]
    fn switches_and_extra_rules() {
        let config = RedactionConfig {
            drop_params: false,
            pseudonymize: false,
            drop_keys: vec!["sessionID".into()],
            drop_pointers: vec!["/*/latency_ms".into()],
            ..RedactionConfig::default()
        };
        config.validate().unwrap();
        let r = Redactor::new(&config, [0; 32]);
        let mut e = Event::from_type_and_data(
            "discovery_results",
            json!([{"address": "0x1", "latency_ms": "79", "session_id": "s", "params": 1,
                    "gpu_id": "GPU-0a1b2c3d-1111-2222-3333-444455556666"}]),
            1,
        )
        .unwrap();
        r.apply(&mut e);
        assert_eq!(
            e.data,
            json!([{"address": "0x1", "params": 1,
                    "gpu_id": "GPU-0a1b2c3d-1111-2222-3333-444455556666"}])
        );
        let bad = RedactionConfig { drop_pointers: vec!["x".into()], ..RedactionConfig::default() };
        assert!(bad.validate().is_err());
    }
}
