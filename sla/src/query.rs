//! Query parameters: window, filters and track.

use std::collections::BTreeMap;

use vouch_schema::Origin;

/// A query window: the last N sealed minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Window {
    /// One minute.
    M1,
    /// Five minutes.
    M5,
    /// One hour (the default).
    H1,
    /// 24 hours (hour-aligned start).
    H24,
    /// Seven days (hour-aligned start).
    D7,
}

impl Window {
    /// Parses `1m`, `5m`, `1h`, `24h`, `7d`.
    pub fn parse(s: &str) -> Option<Window> {
        Some(match s {
            "1m" => Window::M1,
            "5m" => Window::M5,
            "1h" => Window::H1,
            "24h" => Window::H24,
            "7d" => Window::D7,
            _ => return None,
        })
    }

    /// The name, as in [`Window::parse`].
    pub fn name(self) -> &'static str {
        match self {
            Window::M1 => "1m",
            Window::M5 => "5m",
            Window::H1 => "1h",
            Window::H24 => "24h",
            Window::D7 => "7d",
        }
    }

    /// Length in minutes.
    pub fn minutes(self) -> u32 {
        match self {
            Window::M1 => 1,
            Window::M5 => 5,
            Window::H1 => 60,
            Window::H24 => 24 * 60,
            Window::D7 => 7 * 24 * 60,
        }
    }

    /// `[start, end)` in minute indices for a window ending at `end`:
    /// windows longer than an hour start on an hour boundary (so that they
    /// merge hour buckets), which may make them up to an hour longer.
    pub(crate) fn range(self, end: u32) -> (u32, u32) {
        let start = end.saturating_sub(self.minutes());
        if self.minutes() > 60 { (start / 60 * 60, end) } else { (start, end) }
    }
}

/// Why query parameters are not acceptable (an HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `window` is not one of the known names.
    #[error("unknown window {given:?}; expected 1m, 5m, 1h, 24h or 7d")]
    Window {
        /// The value given.
        given: String,
    },
    /// `origin` is not production or synthetic.
    #[error("unknown origin {given:?}; expected production or synthetic")]
    Origin {
        /// The value given.
        given: String,
    },
    /// A filter value that is too long or holds control characters.
    #[error("bad value for {0}: at most 128 printable characters")]
    Value(&'static str),
}

/// A query: window, optional filters, and the track (production by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The window.
    pub window: Window,
    /// Gateway region (upper case), if filtered.
    pub region: Option<String>,
    /// Model id (any alias; canonicalized by the engine), if filtered.
    pub model_id: Option<String>,
    /// Pipeline, if filtered.
    pub pipeline: Option<String>,
    /// Production or synthetic; never mixed.
    pub origin: Origin,
}

impl Default for Query {
    fn default() -> Query {
        Query {
            window: Window::H1,
            region: None,
            model_id: None,
            pipeline: None,
            origin: Origin::Production,
        }
    }
}

impl Query {
    /// Reads `window`, `region`, `model_id` (or `model`), `pipeline` and
    /// `origin`; other parameters are ignored, empty values mean "no filter".
    pub fn from_params(params: &BTreeMap<String, String>) -> Result<Query, QueryError> {
        Query::from_params_or(params, Window::H1)
    }

    /// As [`Query::from_params`], with `default` as the window when none is
    /// named (`/api/aggregated_stats` defaults to 24h).
    pub fn from_params_or(
        params: &BTreeMap<String, String>,
        default: Window,
    ) -> Result<Query, QueryError> {
        let get = |name: &'static str| -> Result<Option<String>, QueryError> {
            match params.get(name).map(|v| v.trim()) {
                None | Some("") => Ok(None),
                Some(v) if v.len() > 128 || v.chars().any(char::is_control) => {
                    Err(QueryError::Value(name))
                }
                Some(v) => Ok(Some(v.to_owned())),
            }
        };
        let window = match get("window")? {
            None => default,
            Some(w) => Window::parse(&w).ok_or(QueryError::Window { given: w })?,
        };
        let origin = match get("origin")? {
            None => Origin::Production,
            Some(o) => Origin::from_name(&o).ok_or(QueryError::Origin { given: o })?,
        };
        let model_id = match get("model_id")? {
            Some(m) => Some(m),
            None => get("model")?,
        };
        Ok(Query {
            window,
            region: get("region")?.map(|r| r.to_uppercase()),
            model_id,
            pipeline: get("pipeline")?,
            origin,
        })
    }
}
