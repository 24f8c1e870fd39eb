#!/usr/bin/env bash
# Builds libvouch_sdk.a and the Go example (examples/go-livepeer) against it,
# then replays go-livepeer events through the C ABI: the Go program
# publishes each event the way go-livepeer's monitor.SendQueueEventAsync
# would, flushes, and prints the SDK's statistics (JSON) on stdout.
#
#   scripts/go-example.sh [--config FILE.toml] [--events FILE.ndjson] [--work DIR] [--release]
#
# Without --config it makes a throwaway identity (principal key, delegate key,
# certificate, with the vouch CLI) and a config whose file transport writes
# envelopes to WORK/envelopes.vouch. Pass a config with [transport] kind =
# "gossip" to publish over libp2p instead. Paths in a config must be absolute.
# Installs Debian's golang-go with apt-get when `go` is missing (as root).
# Env: CARGO_TARGET_DIR (where the library is), CARGO (cargo binary).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

config="" events="$root/examples/go-livepeer/testdata/events.ndjson" work="" profile=debug
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --events) events=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --release) profile=release; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "go-example.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cargo=${CARGO:-cargo}
log() { echo "go-example.sh: $*" >&2; }

if ! command -v go >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing golang-go (Debian)"
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y golang-go >&2
  else
    log "Go is missing: install Debian's golang-go (apt-get install -y golang-go), or Go >= 1.19"
    exit 1
  fi
fi

if [ -z "$work" ]; then work=$(mktemp -d); fi
mkdir -p "$work"
work=$(cd "$work" && pwd)

log "building libvouch_sdk.a ($profile)"
if [ $profile = release ]; then "$cargo" build -p vouch-sdk --release >&2; else "$cargo" build -p vouch-sdk >&2; fi
libdir="${CARGO_TARGET_DIR:-$root/target}/$profile"
[ -f "$libdir/libvouch_sdk.a" ] || { log "no $libdir/libvouch_sdk.a"; exit 1; }

log "building the Go program ($(go version))"
export CGO_ENABLED=1 GOPROXY=off GOFLAGS=-mod=mod
# Directories given here are searched before the package's default (target/debug).
export CGO_LDFLAGS="-L$libdir ${CGO_LDFLAGS:-}"
rm -f "$work/replay" # the Go build cache does not track the static library
(cd examples/go-livepeer && go vet ./... >&2 && go build -o "$work/replay" ./cmd/replay >&2)

if [ -z "$config" ]; then
  log "making a throwaway identity in $work"
  vouch() { "$cargo" run -q -p vouch-verifier -- "$@"; }
  rm -f "$work/principal.key" "$work/delegate.key" "$work/cert.cbor" "$work/envelopes.vouch"
  vouch keygen --out "$work/principal.key" >/dev/null
  delegate=$(vouch keygen --out "$work/delegate.key")
  vouch delegate issue --principal-key "$work/principal.key" --delegate "$delegate" \
    --role gateway --region FRA --valid-for 1d --out "$work/cert.cbor" >/dev/null
  config="$work/publisher.toml"
  cat >"$config" <<TOML
key_file = "$work/delegate.key"
certificate = "$work/cert.cbor"

[batch]
max_events = 4
linger_ms = 50

[transport]
kind = "file"
path = "$work/envelopes.vouch"
TOML
fi

log "replaying $events through the C ABI"
"$work/replay" -config "$config" -events "$events"
log "done; work directory: $work"
