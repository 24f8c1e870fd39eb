#!/usr/bin/env bash
# Runs Vouch's whole test suite on a fresh machine: installs what the tests
# use when it is missing (Go for the cgo example, cbindgen for the header
# check, the pinned npm packages of the cross-implementation tests:
# Streamr's signer, an ethers wallet, ganache, solc), then every Rust test.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "test.sh: '$1' is required ($2)" >&2; exit 1; }; }
need cargo "the Rust toolchain"
need node "Node.js 20+, for the Streamr, ethers and ganache cross-checks"
need npm "npm, to install the pinned packages in interop/"

# Go (Debian's golang-go) for the cgo example that links the SDK's C ABI.
if ! command -v go >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
  else
    echo "test.sh: Go is required (apt-get install golang-go)" >&2; exit 1
  fi
fi
# Chromium (Debian's chromium) for the dashboard test, driven by playwright-core.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "test.sh: Chromium is required (apt-get install chromium)" >&2; exit 1
  fi
fi
# Mosquitto (Debian's mosquitto + mosquitto-clients) for the Streamr bridge
# test: it stands in for a Streamr node's MQTT plugin (standard MQTT 3.1.1).
if ! command -v mosquitto >/dev/null 2>&1 && ! [ -x /usr/sbin/mosquitto ] || ! command -v mosquitto_sub >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
  else
    echo "test.sh: mosquitto is required (apt-get install mosquitto mosquitto-clients)" >&2; exit 1
  fi
fi
# ClickHouse (Debian's clickhouse-server + clickhouse-client, 18.16) for the
# ClickHouse sink test, which runs a private server per test.
if ! { command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/sbin/clickhouse-server ]; } || ! command -v clickhouse-client >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
  else
    echo "test.sh: ClickHouse is required (apt-get install clickhouse-server clickhouse-client)" >&2; exit 1
  fi
fi
# cbindgen, to check that sdk/include/vouch.h matches the code.
command -v cbindgen >/dev/null 2>&1 || cargo install cbindgen --version 0.29.4 --locked

# npm ci only when the lock file changed since the last install.
stamp=interop/node_modules/.vouch-lock-stamp
if ! cmp -s interop/package-lock.json "$stamp" 2>/dev/null; then
  npm ci --prefix interop --no-audit --no-fund --loglevel=error
  cp interop/package-lock.json "$stamp"
fi

# The crates have no doctests (examples live in tests/), so nextest, which
# does not run doctests, covers everything.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets --no-fail-fast "$@"
else
  cargo test --workspace --all-targets --no-fail-fast "$@"
fi
