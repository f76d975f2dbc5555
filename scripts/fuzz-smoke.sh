#!/usr/bin/env bash
# Bounded fuzz smoke run: every cargo-fuzz target for ~20 s (FUZZ_SECONDS),
# on the stable toolchain (`-s none`: no sanitizer; ASan needs nightly).
# Not part of CI unless the lead decides so. See docs/fuzzing.md.
#
# Needs: cargo install cargo-fuzz --locked   (0.13.2, ~25 s)
# New corpus entries go to a scratch dir, so the checked-in seeds stay small.
# Exit status: non-zero if any target found a crash (listed at the end).
set -u
cd "$(dirname "$0")/.."
root=$PWD
seconds=${FUZZ_SECONDS:-20}
# Own target dir: fuzz builds are instrumented and would evict the normal ones.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/fuzz}
work=$(mktemp -d)
failed=()

run() { # crate target [dict]
    local crate=$1 target=$2 dict=${3:-}
    local args=(-max_total_time="$seconds")
    [ -n "$dict" ] && args+=(-dict="$root/$dict")
    mkdir -p "$work/$target"
    echo "== $crate/$target (${seconds}s)"
    if (cd "crates/$crate" && cargo fuzz run "$target" -s none \
            "$work/$target" "fuzz/corpus/$target" -- "${args[@]}") \
            >"$work/$target.log" 2>&1; then
        grep -E '^#[0-9]+ +DONE' "$work/$target.log" | tail -1
    else
        echo "   FAILED; log: $work/$target.log"
        grep -E 'panicked at|Test unit written' "$work/$target.log" | head -3
        failed+=("$crate/$target")
    fi
}

run imap-protocol imap_command crates/imap-protocol/fuzz/imap.dict
run imap-protocol imap_framing_chunks crates/imap-protocol/fuzz/imap.dict
run imap-protocol receiver crates/imap-protocol/fuzz/imap.dict
run pop3-protocol pop3_command crates/pop3-protocol/fuzz/pop3.dict
run pop3-protocol pop3_body
run imap-session imap_session_bytes crates/imap-protocol/fuzz/imap.dict
run imap-session mime_bodystructure

if [ ${#failed[@]} -gt 0 ]; then
    echo "crashes in: ${failed[*]} (artifacts under crates/*/fuzz/artifacts/)"
    exit 1
fi
echo "all targets ran ${seconds}s without findings"
