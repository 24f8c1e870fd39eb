#!/usr/bin/env bash
# Runs Vouch's whole test suite on a fresh machine: installs the pinned npm
# packages the cross-implementation tests use (Streamr's signer, an ethers
# wallet, ganache, solc), then every Rust test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "test.sh: '$1' is required ($2)" >&2; exit 1; }; }
need cargo "the Rust toolchain"
need node "Node.js 20+, for the Streamr, ethers and ganache cross-checks"
need npm "npm, to install the pinned packages in interop/"

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
