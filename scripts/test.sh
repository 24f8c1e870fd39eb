#!/usr/bin/env bash
# Runs Vouch's whole test suite on a fresh machine: installs what the tests
# use when it is missing (Go for the cgo example, cbindgen for the header
# check, the pinned npm packages of the cross-implementation tests and the
# Streamr bridge's sidecar: Streamr's SDK and signer, an ethers wallet,
# ganache, solc), then every Rust test.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "test.sh: '$1' is required ($2)" >&2; exit 1; }; }
need cargo "the Rust toolchain"
need node "Node.js 20+, for the Streamr, ethers and ganache cross-checks"
need npm "npm, to install the pinned packages in interop/"

# Debian packages the tests run for real, installed when missing (as root):
#   golang-go                          the cgo example linking the SDK's C ABI, and
#                                      the go-livepeer-typed /api/aggregated_stats reader
#   chromium                           the dashboard test (driven by playwright-core)
#   mosquitto, mosquitto-clients       the Streamr bridge test: stands in for a Streamr
#                                      node's MQTT plugin (standard MQTT 3.1.1)
#   clickhouse-server, -client (18.16) the ClickHouse sink test (a private server per test)
apt_need() {  # apt_need "check command" package...
  local check=$1; shift
  if ! eval "$check" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      [ -n "${apt_updated:-}" ] || { apt-get update -qq; apt_updated=1; }
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
      echo "test.sh: missing $* (apt-get install $*)" >&2; exit 1
    fi
  fi
}
apt_need "command -v go" golang-go
apt_need "command -v chromium" chromium
apt_need "test -x /usr/sbin/mosquitto && command -v mosquitto_sub" mosquitto mosquitto-clients
apt_need "command -v clickhouse-server && command -v clickhouse-client" clickhouse-server clickhouse-client
apt_need "command -v wrk" wrk   # the API load bench's smoke run (verifier/benches/api_load.rs)
#   g++, make, python3                 node-gyp building sqlite3 (Streamr's SDK) from its
#                                      bundled source: no prebuilt binary is downloaded
apt_need "command -v g++ && command -v make && command -v python3" g++ make python3
# cbindgen, to check that sdk/include/vouch.h matches the code.
command -v cbindgen >/dev/null 2>&1 || cargo install cbindgen --version 0.29.4 --locked

# sqlite3 (loaded by Streamr's SDK) builds against the running Node's own
# headers (Debian's and NodeSource's nodejs ship them in <prefix>/include/node),
# so node-gyp downloads nothing.
nodedir=$(node -p "require('path').resolve(process.execPath, '../..')")
if [ -f "$nodedir/include/node/node.h" ]; then export npm_config_nodedir="$nodedir"; fi
# npm ci only when the lock file changed since the last install.
stamp=interop/node_modules/.vouch-lock-stamp
if ! cmp -s interop/package-lock.json "$stamp" 2>/dev/null; then
  npm ci --prefix interop --no-audit --no-fund --loglevel=error
  cp interop/package-lock.json "$stamp"
fi

# The crates have no doctests (examples live in tests/), so nextest, which
# does not run doctests, covers everything. The convergence tests run one
# verifier that misbehaves on purpose: the test-only `fault-injection`
# feature (never in a release build) gives the `vouch` binary `[faults]`.
features=(--features vouch-verifier/fault-injection)
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets "${features[@]}" --no-fail-fast "$@"
else
  cargo test --workspace --all-targets "${features[@]}" --no-fail-fast "$@"
fi
