"""The example scripts run and reach what they claim (each exits non-zero otherwise)."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_lorenz_discovers_the_true_coefficients():
    # Full size (8-11 s on 2 cores): the script checks the recovered terms against the truth
    # (within 3 %, nothing spurious) and exits 1 otherwise.
    run = subprocess.run([sys.executable, str(EXAMPLES / "lorenz.py")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "x' = -9.9899 x + 9.9898 y" in run.stdout, run.stdout
