#!/usr/bin/env bash
# Runs every Vouch benchmark once and writes BENCHMARKS.md.
#
#   scripts/bench.sh                install what is missing, build, run all, write BENCHMARKS.md
#   scripts/bench.sh --no-bridges   skip the ClickHouse sink and Streamr bridge benchmarks
#   scripts/bench.sh --report       only regenerate BENCHMARKS.md from the last run's logs
#   scripts/bench.sh --only a,b     rerun only the named steps (e.g. publish,soak), keep the
#                                   other steps' logs, and regenerate BENCHMARKS.md
#
# The reliability section reports scripts/soak.sh's 15-minute soak when its
# log exists (target/bench/long/), else this script's two-minute soak.
#
# Installs when missing (as root): Debian's wrk (API load); interop/'s pinned
# npm packages (the @streamr/utils peer comparison, the private Streamr
# network). The ClickHouse and MQTT-feed benchmarks need clickhouse-server
# and mosquitto (scripts/test.sh installs them); without them their rows say
# "not run".
#
# Builds once (`cargo bench --workspace --no-run`, plus the two bridge test
# binaries), then runs the built binaries one after another, each with a
# time limit, exactly as `cargo bench -p CRATE --bench NAME` would (same
# binary, `--bench`, the crate's directory), so an edit elsewhere in the tree
# cannot trigger a rebuild mid-run. Output goes to target/bench/<name>.log;
# scripts/bench_report.py reads the logs and criterion's estimates into
# target/bench/results.json and writes BENCHMARKS.md. Sizes are chosen so the
# runs take about 15 minutes after the build on a 2-core machine; the
# environment variables in the benches' doc comments change them. Nothing
# else should run meanwhile: figures sit beside references from the same
# run, but a busy machine skews both.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
out="$target/bench"
mkdir -p "$out"

bridges=1
report_only=0
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-bridges) bridges=0; shift ;;
    --report) report_only=1; shift ;;
    --only) only=${2:?--only needs a comma-separated list of step names}; shift 2 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
# selected NAME: whether this run runs step NAME.
selected() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }

if [ "$report_only" = 1 ]; then
  CARGO_TARGET_DIR="$target" exec python3 scripts/bench_report.py "$out" BENCHMARKS.md
fi

need() { command -v "$1" >/dev/null 2>&1 || { echo "bench.sh: '$1' is required ($2)" >&2; exit 1; }; }
need cargo "the Rust toolchain"
need python3 "Python 3, for the report"
need node "Node.js 20+, for the @streamr/utils peer comparison"
need npm "npm, to install the pinned packages in interop/"

if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "bench.sh: wrk is required for the API load benchmark (apt-get install wrk)" >&2; exit 1
  fi
fi
# sqlite3 (loaded by Streamr's SDK) builds against the running Node's own
# headers (Debian's and NodeSource's nodejs ship them in <prefix>/include/node),
# so node-gyp downloads nothing.
nodedir=$(node -p "require('path').resolve(process.execPath, '../..')")
if [ -f "$nodedir/include/node/node.h" ]; then export npm_config_nodedir="$nodedir"; fi
# npm ci only when the lock file changed since the last install (as scripts/test.sh).
stamp=interop/node_modules/.vouch-lock-stamp
if ! cmp -s interop/package-lock.json "$stamp" 2>/dev/null; then
  npm ci --prefix interop --no-audit --no-fund --loglevel=error
  cp interop/package-lock.json "$stamp"
fi

# Build once; remember each bench and test binary cargo reports.
build_started=$(date +%s)
artifacts="$out/artifacts.jsonl"
cargo bench --workspace --no-run --message-format=json-render-diagnostics > "$artifacts"
if [ "$bridges" = 1 ]; then
  cargo test -p vouch-verifier --test clickhouse_sink --test streamr_bridge --test streamr_network --no-run \
    --message-format=json-render-diagnostics >> "$artifacts"
fi
build_secs=$(( $(date +%s) - build_started ))
# binary KIND NAME: the executable cargo built for that bench or test target.
binary() {
  python3 - "$artifacts" "$1" "$2" <<'PY'
import json, sys
path = ""
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target") or {}
    if m.get("reason") == "compiler-artifact" and sys.argv[2] in t.get("kind", []) \
            and t.get("name") == sys.argv[3] and m.get("executable"):
        path = m["executable"]
print(path)
PY
}

steps="$out/steps.jsonl"
if [ -z "$only" ]; then
  : > "$steps"
  rm -f "$out"/*.log
else
  # Keep the other steps' records; the rerun ones are recorded afresh.
  touch "$steps"
  python3 - "$steps" "$only" <<'PY'
import json, sys
names = set(sys.argv[2].split(","))
lines = [l for l in open(sys.argv[1]) if l.strip() and json.loads(l)["name"] not in names]
open(sys.argv[1], "w").writelines(lines)
PY
fi
# step NAME LIMIT_S SHOWN_COMMAND DIR BINARY ARGS...: runs BINARY ARGS in DIR with
# a time limit, logs its output, records time and exit status under SHOWN_COMMAND.
step() {
  local name=$1 limit=$2 shown=$3 dir=$4; shift 4
  local started rc=0
  selected "$name" || return 0
  if [ -z "$1" ] || [ ! -x "$1" ]; then
    echo "   $name: no binary built, skipped" >&2
    return 0
  fi
  started=$(date +%s.%N)
  echo "== $name: $shown" >&2
  (cd "$dir" && CARGO_TARGET_DIR="$target" timeout --kill-after=10 "$limit" "$@") \
    > "$out/$name.log" 2>&1 || rc=$?
  # The 1-minute load average at the end: above the core count, something else
  # was running. "alone": run by `--only`, apart from the run the others are from.
  python3 -c 'import json,sys,time; print(json.dumps({"name":sys.argv[1],"seconds":round(time.time()-float(sys.argv[2]),1),"rc":int(sys.argv[3]),"limit_s":int(sys.argv[4]),"command":sys.argv[5],"load_1m":float(open("/proc/loadavg").read().split()[0]),"ended":int(time.time()),"alone":sys.argv[6]!=""}))' \
    "$name" "$started" "$rc" "$limit" "$shown" "$only" >> "$steps"
  echo "   $name: exit $rc, $(tail -n 1 "$steps")" >&2
}
# bench CRATE_DIR PACKAGE NAME LIMIT_S: one `cargo bench -p PACKAGE --bench NAME`.
bench() {
  step "$3" "$4" "cargo bench -p $2 --bench $3" "$root/$1" "$(binary bench "$3")" --bench
}

run_started=$(date +%s)
if [ -z "$only" ]; then
  echo "{\"run_started\": $run_started, \"build_seconds\": $build_secs}" > "$out/run.json"
fi

bench schemas vouch-schema envelope 180
bench delegation vouch-delegation certificate 120
bench sdk vouch-sdk publish 240
bench verifier vouch-verifier pipeline 180
bench verifier vouch-verifier saturate 240
if [ -f verifier/benches/replay.rs ]; then
  # 10 M events needs ~5 GB of log and minutes; 1 M shows the steady rate.
  export VOUCH_REPLAY_BENCH_MAX_EVENTS="${VOUCH_REPLAY_BENCH_MAX_EVENTS:-1000000}"
  bench verifier vouch-verifier replay 240
fi
bench schemas vouch-schema streamr_peer 120
bench sla vouch-sla aggregate 480
bench verifier vouch-verifier gossip 120
# Catch-up by sync after a restart, beside gossip ingest, and sync's steady
# cost (~3 minutes; VOUCH_CONVERGE_SIZE=full runs the ~10-minute size).
if [ "${VOUCH_CONVERGE_SIZE:-}" = full ]; then converge_limit=720; else converge_limit=300; fi
bench verifier vouch-verifier converge "$converge_limit"
# Two minutes of the reliability soak (scripts/soak.sh runs the 15-minute one);
# the bench holds 2,000 idle connections itself, the nodes start at a soft 1,024.
export VOUCH_SOAK_SECS="${VOUCH_SOAK_SECS:-120}"
(ulimit -S -n "$(ulimit -H -n)" 2>/dev/null || true; bench verifier vouch-verifier soak 300)
bench verifier vouch-verifier api_load 240
if [ "$bridges" = 1 ]; then
  if command -v clickhouse-server >/dev/null 2>&1; then
    VOUCH_BENCH_BIN="$target/release/vouch" step clickhouse_sink 240 \
      "VOUCH_BENCH_BIN=target/release/vouch cargo nextest run -p vouch-verifier --test clickhouse_sink --run-ignored only --no-capture" \
      "$root/verifier" "$(binary test clickhouse_sink)" --ignored --nocapture --exact bench_rows_per_second
  fi
  if [ -x /usr/sbin/mosquitto ]; then
    step streamr_bridge 180 "cargo test -p vouch-verifier --test streamr_bridge -- --ignored --nocapture" \
      "$root/verifier" "$(binary test streamr_bridge)" --ignored --nocapture --exact bridge_latency
  fi
  if [ -d interop/node_modules/@streamr/sdk ]; then
    step streamr_network 300 "cargo test -p vouch-verifier --test streamr_network -- --ignored --nocapture" \
      "$root/verifier" "$(binary test streamr_network)" --ignored --nocapture --exact bench_streamr_network
  fi
fi
run_secs=$(( $(date +%s) - run_started ))
if [ -z "$only" ]; then
  echo "{\"run_started\": $run_started, \"build_seconds\": $build_secs, \"run_seconds\": $run_secs}" > "$out/run.json"
fi
echo "bench.sh: benchmarks took ${run_secs} s after a ${build_secs} s build" >&2

CARGO_TARGET_DIR="$target" python3 scripts/bench_report.py "$out" BENCHMARKS.md
