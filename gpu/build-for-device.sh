#!/usr/bin/env bash
# Builds, on a machine with the Rust toolchain (no CUDA needed), what gpu/run-on-device.sh runs
# on a GPU machine that has no Rust: the `banded` binary and the CUDA test binary, with the
# `cuda` feature, into DIR (default devbin/, ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-devbin}
mkdir -p "$dir"
cargo build --release --features cuda --bin banded
test_bin=$(cargo test --release --features cuda --test cuda --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "cuda":
        print(m["executable"])')
cp target/release/banded "$dir/banded"
cp "$test_bin" "$dir/cuda-tests"
echo "built $dir/banded and $dir/cuda-tests"
