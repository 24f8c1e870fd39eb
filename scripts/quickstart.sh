#!/usr/bin/env bash
# The README's run command: build `vouch`, delegate a fresh gateway key,
# sign the embedded real go-livepeer sample events, and verify them.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p vouch-verifier --quiet
vouch=target/release/vouch
work=$(mktemp -d "${TMPDIR:-/tmp}/vouch-quickstart.XXXXXX")
echo "working in $work"

principal=$($vouch keygen --out "$work/principal.key")
delegate=$($vouch keygen --out "$work/delegate.key")
echo "principal $principal (the on-chain account; keep its key offline)"
echo "delegate  $delegate (the hot key on the gateway box)"

$vouch delegate issue --principal-key "$work/principal.key" --delegate "$delegate" \
  --role gateway --region FRA --valid-for 30d --out "$work/gateway.cert" >/dev/null
printf '{"principals":[{"address":"%s","roles":["gateway"]}]}\n' "$principal" > "$work/authority.json"

$vouch envelope sign --key "$work/delegate.key" --cert "$work/gateway.cert" \
  --events schemas/tests/data/go-livepeer-kafka-samples.json \
  --out "$work/envelope.hex" --format streamr-hex
$vouch envelope inspect "$work/envelope.hex"
$vouch envelope verify "$work/envelope.hex" --authority-snapshot "$work/authority.json"
