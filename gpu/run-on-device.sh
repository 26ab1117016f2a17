#!/usr/bin/env bash
# Runs the GPU tests and benchmarks on a machine with an NVIDIA GPU, from prebuilt binaries
# (gpu/build-for-device.sh on a machine with Rust), and prints the figures:
#
#   gpu/run-on-device.sh [BIN_DIR (default devbin)] [OUT_DIR (default $OUT or gpu-results)]
#
# 1. the CUDA tests (tests/cuda.rs: every CPU test case through the device against the CPU
#    results, the error paths, the NVRTC compile of every kernel);
# 2. the device's copy bandwidth (PyTorch), the floor the band solver is measured against;
# 3. `banded bench solve` n = 1000, batch 4096, kd ∈ {1, 4, 17, 64}, f64;
# 4. `banded bench smnn` batch 512, T = 1000, D = O = E = 3, forward+backward, f32 and f64,
#    and the PyTorch layer of the paper's kind (gpu/bench/smnn_torch.py, CUDA graphs) beside it;
#    the dense PyTorch peer where it fits (T = 100).
# Needs: the NVIDIA driver, libnvrtc (CUDA toolkit) on LD_LIBRARY_PATH, python3 with torch.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${1:-devbin}
out=${2:-${OUT:-gpu-results}}
mkdir -p "$out"
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
log() { echo "== $*" | tee -a "$out/figures.txt"; }
run() { echo "\$ $*" >>"$out/figures.txt"; "$@" 2>&1 | tee -a "$out/figures.txt"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"

log "tests"
"$bin/cuda-tests" --test-threads 1 2>&1 | tee "$out/tests.txt" | tail -20

log "copy bandwidth (device to device, 2 GiB, median of 20)"
run python3 -c '
import torch
x = torch.empty(2**28, dtype=torch.float64, device="cuda"); y = torch.empty_like(x)
for _ in range(3): y.copy_(x)
ts = []
for _ in range(20):
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record(); y.copy_(x); b.record(); b.synchronize(); ts.append(a.elapsed_time(b) / 1e3)
ts.sort(); t = ts[len(ts) // 2]
print(f"bench=copy bytes={2 * x.numel() * 8} median_s={t:.6f} gbps={2 * x.numel() * 8 / t / 1e9:.1f}")'

log "band factor+solve, n = 1000, batch 4096, f64"
for kd in 1 4 17 64; do
    run "$bin/banded" bench solve --device cuda --n 1000 --kd "$kd" --batch 4096 --dtype f64 --reps 20
done

log "S-MNN forward+backward, batch 512, T = 1000, D = O = E = 3"
for dt in f32 f64; do
    run "$bin/banded" bench smnn --device cuda --batch 512 --steps 1000 --dims 3 --orders 3 --backward --dtype "$dt" --reps 20
    run python3 gpu/bench/smnn_torch.py --device cuda --batch 512 --steps 1000 --dtype "$dt" --peer paper --reps 10
done
log "S-MNN forward+backward, batch 512, T = 100 (the dense peer fits)"
for dt in f32 f64; do
    run "$bin/banded" bench smnn --device cuda --batch 512 --steps 100 --dims 3 --orders 3 --backward --dtype "$dt" --reps 20
    run python3 gpu/bench/smnn_torch.py --device cuda --batch 512 --steps 100 --dtype "$dt" --peer both --reps 10
done
echo "figures in $out/figures.txt"
