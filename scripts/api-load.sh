#!/usr/bin/env bash
# Load test of the HTTP API with wrk (Debian's `wrk` 4.1; Debian has no wrk2).
#
#   scripts/api-load.sh URL [DURATION_S] [CONNECTIONS] [RATE]
#   e.g. cargo run --release -p vouch-verifier --example api_double -- 127.0.0.1:8080 &
#        scripts/api-load.sh http://127.0.0.1:8080 30 32 2000
#
# Each of CONNECTIONS connections cycles through the read endpoints
# (leaderboard 1h and 24h, one orchestrator, demand, aggregated_stats). With
# RATE (requests/s, all connections together) every connection waits
# CONNECTIONS/RATE s before each request, so the offered load is about RATE
# while latency is well under that wait; this is wrk's `delay()` hook, not
# wrk2's constant-throughput scheduler, so latency is measured from send, not
# from a request's intended start (coordinated omission is not corrected).
# Without RATE the connections send back to back (closed loop, peak rate).
# Prints one JSON line: requests, achieved rate, non-2xx, socket errors,
# latency p50/p90/p99/p99.9/max in ms. The server's rate limit must be off or
# above RATE (the api_double example turns it off). Targets loopback only.
set -euo pipefail
url="${1:?usage: scripts/api-load.sh URL [DURATION_S] [CONNECTIONS] [RATE]}"
duration="${2:-30}"
connections="${3:-32}"
rate="${4:-0}"
case "$url" in
  http://127.*|http://localhost[:/]*|http://localhost|http://\[::1\]*) ;;
  *) echo "api-load.sh: only loopback targets (http://127.x, localhost, [::1])" >&2; exit 2 ;;
esac
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "api-load.sh: wrk is required (apt-get install wrk)" >&2; exit 1
  fi
fi
threads=$(( connections < 2 ? connections : 2 ))
lua=$(mktemp --suffix .lua)
trap 'rm -f "$lua"' EXIT
cat > "$lua" <<LUA
local paths = {
  "/v1/sla/orchestrators?window=1h",
  "/v1/sla/orchestrators?window=24h",
  "/v1/sla/orchestrators/${VOUCH_LOAD_ADDRESS:-0x1111111111111111111111111111111111111111}",
  "/v1/network/demand",
  "/api/aggregated_stats",
}
local i = 0
local delay_ms = 0
if ${rate} > 0 then delay_ms = ${connections} * 1000 / ${rate} end
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
if delay_ms > 0 then
  delay = function() return delay_ms end
end
done = function(summary, latency, requests)
  local e = summary.errors
  local ms = function(us) return string.format("%.3f", us / 1000) end
  io.write(string.format(
    '{"tool":"wrk","duration_s":%.1f,"connections":${connections},"target_rate":${rate},"requests":%d,"rate":%.1f,'
    .. '"non_2xx":%d,"socket_errors":%d,"latency_ms":{"p50":%s,"p90":%s,"p99":%s,"p99_9":%s,"max":%s}}\n',
    summary.duration / 1e6, summary.requests, summary.requests / (summary.duration / 1e6),
    e.status, e.connect + e.read + e.write + e.timeout,
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
    ms(latency:percentile(99.9)), ms(latency.max)))
end
LUA
wrk -t"$threads" -c"$connections" -d"${duration}s" --timeout 10s -s "$lua" "$url" | tail -n 1
