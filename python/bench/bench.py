"""Benchmarks of the `banded` Python package against SciPy and the Rust CLI, in one run.

a. ``banded.solveh_banded`` on a batch of 256 random diagonally dominant SPD systems (n = 1000,
   kd = 1, 4, 17, float64, one right-hand side) against a Python loop over
   ``scipy.linalg.solveh_banded(ab[s], b[s], lower=True)``. Target: >= 10x.
b. ``banded.torch.ode_forward`` forward + backward (``loss = (u * grad_u).sum();
   loss.backward()``), batch 128, T = 1000, D = O = E = 3, CPU float64, inputs drawn as
   ``banded bench smnn`` draws them, against ``banded bench smnn --batch 128 --steps 1000
   --dims 3 --orders 3 --backward --threads N`` when ``--rust-bin PATH`` names the built CLI
   (``cargo build --release`` gives ``target/release/banded``). Target: within 1.3x. For
   information: the same with torch on one thread (rayon still on all), against the CLI with
   ``--fresh`` (storage allocated in every run, as every Python call does), and the forward alone
   (under ``torch.no_grad``) against ``banded bench smnn`` without ``--backward``.
   With ``--rust-bin``, for information: ``banded bench solve`` on the same shapes (the crate
   alone, inputs copied before the clock starts).
c. Per-call overhead: ``banded.solveh_banded`` on one system (batch 1, n = 10, kd = 1), median
   of many calls. Target: <= 20 us. For information: the same through
   ``banded.torch.solveh_banded``, SciPy's call, and a tiny ``ode_forward``.

Medians of ``time.perf_counter`` over repetitions, after one untimed warm-up. Both sides use the
same number of threads (``--threads``, default: every core this process may use): torch through
``torch.set_num_threads``, the package and the Rust CLI through ``RAYON_NUM_THREADS`` (set
before ``banded`` is imported, since the package runs on rayon's global pool) and ``--threads``.
NumPy's OpenBLAS runs on one thread (``OPENBLAS_NUM_THREADS=1`` unless set): SciPy's loop is
one system at a time either way, and the pool's spinning threads would slow whatever runs next.

    python python/bench/bench.py --rust-bin target/release/banded
    python python/bench/bench.py --quick            # smoke run: fewer repetitions
    python python/bench/bench.py --json figures.json
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time


def package_version(name):
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def median_time(fn, reps, warmup=1):
    """Median wall-clock seconds of `fn()` over `reps` runs, after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def random_spd_bands(rng, batch, n, kd):
    """Lower band storage (batch, kd + 1, n) of SPD matrices, as `banded bench solve` draws them:
    off-diagonal entries uniform in [-1, 1], each diagonal entry 1 + the sum of the absolute
    off-diagonal entries of its row (strictly diagonally dominant)."""
    import numpy as np

    ab = np.zeros((batch, kd + 1, n))
    for d in range(1, kd + 1):
        ab[:, d, : n - d] = rng.uniform(-1.0, 1.0, (batch, n - d))   # A[j + d, j]
    off = np.zeros((batch, n))
    for d in range(1, kd + 1):
        a = np.abs(ab[:, d, : n - d])
        off[:, d:] += a      # row j + d holds A[j + d, j]
        off[:, : n - d] += a  # row j holds A[j, j + d] = A[j + d, j]
    ab[:, 0] = 1.0 + off
    return ab


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    p.add_argument("--json", metavar="OUT", help="also write the figures to OUT (JSON)")
    p.add_argument("--rust-bin", metavar="PATH", help="the built `banded` CLI, to run `banded bench smnn`")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads on both sides")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    # Before `banded` (and its rayon pool) starts.
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    # NumPy's OpenBLAS: SciPy's band solver is one system at a time on one thread either way,
    # and the pool's idle threads spin after each call, taking cores from whatever runs next.
    # Before NumPy loads it.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import numpy as np
    import scipy
    import scipy.linalg
    import torch

    import banded
    import banded.torch

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    reps_a, reps_b, calls_c = (3, 3, 200) if args.quick else (20, 10, 5000)
    rng = np.random.default_rng(args.seed)
    rows = []

    def row(section, case, ours, ref, ref_name, unit, ratio=None, target=None, met=None):
        rows.append(dict(section=section, case=case, banded=ours, reference=ref, reference_name=ref_name,
                         unit=unit, ratio=ratio, target=target, met=met))

    rust_cmds = []

    def rust_median(cmd):
        """Runs a `banded bench ...` command; the median seconds it prints."""
        rust_cmds.append(" ".join(cmd))
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        m = re.search(r"median_s=([0-9.eE+-]+)", out)
        if not m:
            sys.exit(f"no median_s= in the output of {' '.join(cmd)}:\n{out}")
        return float(m.group(1))

    # ---- a. Batched solve against a loop over SciPy.
    batch, n = 256, 1000
    for kd in (1, 4, 17):
        ab = random_spd_bands(rng, batch, n, kd)
        b = rng.uniform(-1.0, 1.0, (batch, n))
        x = banded.solveh_banded(ab, b)
        x_ref = np.stack([scipy.linalg.solveh_banded(ab[s], b[s], lower=True) for s in range(batch)])
        err = float(np.max(np.abs(x - x_ref)) / np.max(np.abs(x_ref)))
        if err > 1e-10:
            sys.exit(f"a: banded and SciPy disagree for kd = {kd}: relative difference {err:.2e}")
        t_ours = median_time(lambda: banded.solveh_banded(ab, b), reps_a)
        t_ref = median_time(
            lambda: [scipy.linalg.solveh_banded(ab[s], b[s], lower=True) for s in range(batch)], reps_a
        )
        speedup = t_ref / t_ours
        row("a", f"solveh_banded batch={batch} n={n} kd={kd}", t_ours * 1e3, t_ref * 1e3,
            "loop over scipy.linalg.solveh_banded", "ms", speedup, ">= 10x", speedup >= 10)
        if args.rust_bin:  # for information: the crate alone, its inputs copied before the clock
            cmd = [args.rust_bin, "bench", "solve", "--n", str(n), "--kd", str(kd), "--batch", str(batch),
                   "--threads", str(args.threads), "--reps", str(reps_a), "--seed", str(args.seed)]
            t_cli = rust_median(cmd)
            row("a", "  same, Rust CLI (banded bench solve)", t_cli * 1e3, t_ref * 1e3, "", "ms", t_ref / t_cli)

    # ---- b. S-MNN forward + backward against the Rust CLI.
    B, T, D, O, E = 128, 1000, 3, 3, 3
    g = torch.Generator().manual_seed(args.seed)
    f64 = dict(dtype=torch.float64)

    def uniform(shape, lo=-1.0, hi=1.0):
        return torch.rand(shape, generator=g, **f64) * (hi - lo) + lo

    coefficients = uniform((B, T, E, D, O))
    for e in range(min(E, D)):
        coefficients[:, :, e, e, 0] += 1.5
    inputs = [coefficients, uniform((B, T, E)), uniform((B, 1, D, O)), uniform((B, T - 1), 0.05, 0.15)]
    inputs = [t.requires_grad_() for t in inputs]
    grad_u = uniform((B, T, D, O))

    def smnn_step():
        for t in inputs:
            t.grad = None
        u = banded.torch.ode_forward(*inputs)
        (u * grad_u).sum().backward()

    def smnn_forward():
        with torch.no_grad():
            banded.torch.ode_forward(*inputs)

    def smnn_cmd(*flags):
        """`banded bench smnn` on the same problem."""
        return [args.rust_bin, "bench", "smnn", "--batch", str(B), "--steps", str(T), "--dims", str(D),
                "--orders", str(O), "--equations", str(E), "--dtype", "f64", "--threads", str(args.threads),
                "--reps", str(reps_b), "--seed", str(args.seed), *flags]

    t_py = median_time(smnn_step, reps_b)
    t_fwd = median_time(smnn_forward, reps_b)
    torch.set_num_threads(1)          # for information: torch's own ops on one thread, rayon on all
    t_py1 = median_time(smnn_step, reps_b)
    torch.set_num_threads(args.threads)
    t_rust, t_rust_fwd, t_rust_fresh = None, None, None
    if args.rust_bin:
        t_rust = rust_median(smnn_cmd("--backward"))
        t_rust_fwd = rust_median(smnn_cmd())
        t_rust_fresh = rust_median(smnn_cmd("--backward", "--fresh"))
    case = f"ode_forward fwd+bwd batch={B} T={T} D=O=E=3 f64"
    ratio = t_py / t_rust if t_rust else None
    row("b", case, t_py * 1e3, t_rust and t_rust * 1e3, "banded bench smnn --backward (Rust)", "ms", ratio,
        "<= 1.3x", (ratio <= 1.3) if ratio else None)
    row("b", "  same, torch.set_num_threads(1)", t_py1 * 1e3, t_rust and t_rust * 1e3, "",
        "ms", t_py1 / t_rust if t_rust else None)
    row("b", "  same, Rust with --fresh storage", t_py * 1e3, t_rust_fresh and t_rust_fresh * 1e3,
        "banded bench smnn --backward --fresh (Rust)", "ms", t_py / t_rust_fresh if t_rust_fresh else None)
    row("b", "  forward only (torch.no_grad)", t_fwd * 1e3, t_rust_fwd and t_rust_fwd * 1e3,
        "banded bench smnn (Rust, no --backward)", "ms", t_fwd / t_rust_fwd if t_rust_fwd else None)

    # ---- c. Per-call overhead.
    def per_call_us(fn):
        return median_time(fn, calls_c, warmup=10) * 1e6

    ab1 = random_spd_bands(rng, 1, 10, 1)
    b1 = rng.uniform(-1.0, 1.0, (1, 10))
    t_np = per_call_us(lambda: banded.solveh_banded(ab1, b1))
    t_sp = per_call_us(lambda: scipy.linalg.solveh_banded(ab1[0], b1[0], lower=True))
    row("c", "solveh_banded batch=1 n=10 kd=1", t_np, t_sp, "scipy.linalg.solveh_banded (one system)",
        "us", t_np / t_sp, "<= 20 us", t_np <= 20)
    t_nc = per_call_us(lambda: banded.solveh_banded(ab1, b1, check_finite=False))
    row("c", "  same, check_finite=False", t_nc, None, "", "us")
    ab1_t, b1_t = torch.from_numpy(ab1), torch.from_numpy(b1)
    with torch.no_grad():
        t_th = per_call_us(lambda: banded.torch.solveh_banded(ab1_t, b1_t))
    row("c", "banded.torch.solveh_banded (no grad)", t_th, None, "", "us")
    tiny = [torch.tensor([[[[1.0, 1.0]]]], **f64).expand(1, 10, 1, 1, 2), torch.ones(1, 10, 1, **f64),
            torch.zeros(1, 1, 1, 1, **f64), torch.full((1, 9), 0.1, **f64)]
    with torch.no_grad():
        t_tiny = per_call_us(lambda: banded.torch.ode_forward(*tiny))
    row("c", "ode_forward batch=1 T=10 D=E=1 O=2 (no grad)", t_tiny, None, "", "us")

    # ---- Report.
    versions = dict(python=platform.python_version(), torch=torch.__version__, numpy=np.__version__,
                    scipy=scipy.__version__, banded=package_version("banded"))
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs, {args.threads} threads on both sides)")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"repetitions: a {reps_a}, b {reps_b}, c {calls_c} calls" + (" (--quick)" if args.quick else ""))
    for cmd in rust_cmds:
        print("rust: " + cmd)
    print(f"load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}"
          " (the figures are only worth much on an otherwise idle machine)")
    print()

    def fmt(v, unit):
        return "-" if v is None else f"{v:.3f} ms" if unit == "ms" else f"{v:.1f} us"

    w = max(len(r["case"]) for r in rows)
    head = f"{'':2} {'case':{w}} {'banded':>11} {'reference':>11} {'ratio':>7}  {'target':8} {'met':4} reference"
    print(head)
    print("-" * len(head))
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        print(f"{r['section']:2} {r['case']:{w}} {fmt(r['banded'], r['unit']):>11} "
              f"{fmt(r['reference'], r['unit']):>11} {ratio:>7}  {r['target'] or '':8} {met:4} {r['reference_name']}")
    print("\nratio: a = reference / banded (speed-up); b, c = banded / reference")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(cpu=cpu_model(), threads=args.threads, quick=args.quick, versions=versions,
                           rust_commands=rust_cmds, rows=rows), f, indent=2)
        print(f"figures: {args.json}")


if __name__ == "__main__":
    main()
