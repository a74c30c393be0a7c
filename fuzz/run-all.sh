#!/usr/bin/env bash
# Run every fuzz target for N seconds (default 180), then replay the saved
# regression inputs. Needs cargo-fuzz (`cargo install cargo-fuzz`); works on
# stable Rust because it builds without a sanitizer (see README.md).
#
#   fuzz/run-all.sh            # 3 minutes per target
#   fuzz/run-all.sh 30         # 30 seconds per target
set -euo pipefail

seconds="${1:-180}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

targets=(policy_parse request_router unseal_share raft_codec)
# -a: debug assertions and overflow checks on; -s none: no sanitizer, so no
# nightly-only -Z flag is needed (all Cairn code forbids `unsafe`).
flags=(-a -s none)

cargo fuzz build "${flags[@]}"

status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "==> fuzzing $t for ${seconds}s"
    # corpus/$t collects what the fuzzer finds (not committed); seeds/$t and
    # regressions/$t are read-only extra corpora.
    if ! cargo fuzz run "${flags[@]}" "$t" "corpus/$t" "seeds/$t" "regressions/$t" -- \
        -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1; then
        echo "!!> $t failed; the input is in fuzz/artifacts/$t/"
        status=1
    fi
done

echo "==> replaying regressions and seeds"
# `cargo fuzz run` would add the corpus directory to the file list, which
# libFuzzer refuses; the built binaries take the files alone and run each once.
host="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="${CARGO_TARGET_DIR:-$here/target}/$host/release"
for t in "${targets[@]}"; do
    inputs=()
    for f in "regressions/$t"/* "seeds/$t"/*; do
        [[ -f "$f" && "$(basename "$f")" != .gitkeep ]] && inputs+=("$f")
    done
    if ((${#inputs[@]})); then
        "$bin_dir/$t" -runs=1 "${inputs[@]}" >"artifacts/$t.replay.log" 2>&1 ||
            { echo "!!> replay of $t failed, see fuzz/artifacts/$t.replay.log"; status=1; }
        echo "    $t: ${#inputs[@]} inputs replayed"
    fi
done

exit "$status"
