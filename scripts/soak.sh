#!/usr/bin/env bash
# The long reliability soak: 3 `vouch node` processes on loopback, 20 honest
# gateway publishers, then one flooding gateway and 2,000 idle HTTP
# connections (verifier/benches/soak.rs describes the phases and figures).
#
#   scripts/soak.sh [SECONDS]   baseline + flood, default 900 (a third baseline)
#
# Builds the release bench, runs it with --bench and VOUCH_SOAK_SECS, and
# writes its output to target/bench/long/soak.log with run.json beside it
# (a folder scripts/bench.sh does not clear). `scripts/bench.sh --report`
# reports this soak, when present, in place of bench.sh's own two-minute one.
# Node data goes to a /tmp/vouch-soak-* folder removed at the end; the
# flooded log grows by about 1 MB/s per node at the default flood rate
# (VOUCH_SOAK_MAX_DISK_MB stops the flood early if the nodes' data outgrows it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
secs="${1:-900}"
case "$secs" in ''|*[!0-9]*) echo "soak.sh: SECONDS must be a number" >&2; exit 2 ;; esac
target="${CARGO_TARGET_DIR:-$root/target}"
out="$target/bench/long"
mkdir -p "$out"

# The bench itself holds the idle connections: give it the hard limit. The
# nodes still start at a soft 1,024 (VOUCH_SOAK_NODE_NOFILE).
ulimit -S -n "$(ulimit -H -n)" 2>/dev/null || true

bin=$(CARGO_TARGET_DIR="$target" cargo bench -p vouch-verifier --bench soak --no-run \
  --message-format=json-render-diagnostics | python3 -c '
import json, sys
path = ""
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target") or {}
    if m.get("reason") == "compiler-artifact" and t.get("name") == "soak" and m.get("executable"):
        path = m["executable"]
print(path)')
[ -x "$bin" ] || { echo "soak.sh: the soak bench did not build" >&2; exit 1; }

data=$(mktemp -d /tmp/vouch-soak-XXXXXX)
trap 'rm -rf "$data"' EXIT
started=$(date +%s)
rc=0
echo "soak.sh: ${secs} s soak, log in $out/soak.log" >&2
(cd verifier && TMPDIR="$data" VOUCH_SOAK_SECS="$secs" \
  timeout --kill-after=10 $((secs + 240)) "$bin" --bench) > "$out/soak.log" 2>&1 || rc=$?
python3 -c 'import json, sys, time
print(json.dumps({"name": "soak", "command": "scripts/soak.sh " + sys.argv[1], "run_started": int(sys.argv[2]),
                  "seconds": round(time.time() - int(sys.argv[2]), 1), "rc": int(sys.argv[3]),
                  "load_1m": float(open("/proc/loadavg").read().split()[0])}))' \
  "$secs" "$started" "$rc" > "$out/run.json"
grep -v '^vouch-bench-json: ' "$out/soak.log" | tail -n 20 >&2 || true
echo "soak.sh: exit $rc after $(( $(date +%s) - started )) s; scripts/bench.sh --report writes it into BENCHMARKS.md" >&2
exit "$rc"
