#!/usr/bin/env bash
# Fuzzes every decoder that reads outside bytes, then replays the saved
# regressions. See fuzz/README.md.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 20; no TARGET means all of them. Exits
# non-zero if any target crashes (a panic or a failed assertion) while
# fuzzing or on any file under fuzz/regressions/<target>/. Crashing inputs
# are written to fuzz/artifacts/<target>/.
#
# Environment:
#   FUZZ_SANITIZER  none (default, works on stable) or address (AddressSanitizer;
#                   sets RUSTC_BOOTSTRAP=1 for -Zsanitizer). After switching,
#                   rm -rf fuzz/target (see fuzz/README.md).
#   FUZZ_ARGS       extra libFuzzer flags, e.g. "-jobs=2 -workers=2".
#   CARGO_TARGET_DIR  defaults to fuzz/target, apart from the main build.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

secs="${1:-20}"
if ! [[ "$secs" =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
shift $(($# > 0 ? 1 : 0))

sanitizer="${FUZZ_SANITIZER:-none}"
if [[ "$sanitizer" != none ]]; then
    export RUSTC_BOOTSTRAP=1
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/fuzz/target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked || exit 1
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# One build for all targets, so a compile error fails fast and once.
cargo fuzz build -s "$sanitizer" || exit 1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

failed=()
for t in "${targets[@]}"; do
    if [[ ! -f "fuzz/fuzz_targets/$t.rs" ]]; then
        echo "==> unknown target $t" >&2
        failed+=("$t (unknown)")
        continue
    fi
    corpus="$root/fuzz/corpus/$t"
    seeds="$root/fuzz/seeds/$t"
    mkdir -p "$corpus" "$seeds"
    cp -r "$seeds"/. "$corpus"/

    echo "==> fuzzing $t for ${secs}s" >&2
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags.
    if ! cargo fuzz run -s "$sanitizer" "$t" "$corpus" "$seeds" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 ${FUZZ_ARGS:-}; then
        failed+=("$t (fuzzing; input saved under fuzz/artifacts/$t/)")
    fi

    regressions="$root/fuzz/regressions/$t"
    if [[ -d "$regressions" ]]; then
        mapfile -t files < <(find "$regressions" -type f ! -name '*.md' | sort)
        if [[ ${#files[@]} -gt 0 ]]; then
            echo "==> replaying ${#files[@]} regression(s) for $t" >&2
            for f in "${files[@]}"; do
                if ! cargo fuzz run -s "$sanitizer" "$t" "$f" >"$log" 2>&1; then
                    tail -n 40 "$log" >&2
                    echo "==> $t crashes on regression $f" >&2
                    failed+=("$t (regression ${f#"$root"/})")
                fi
            done
        fi
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "==> FAILED:" >&2
    printf '    %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "==> all ${#targets[@]} target(s) clean" >&2
