//! Wall-clock time for the verifier's "now": Unix milliseconds and seconds
//! by the system clock (0 if it reads before 1970). Everything that decides
//! takes its time as an argument (the pipeline, the engine); this is where
//! the callers that run in real time read it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    now_ms() / 1000
}
