"""Batched banded Cholesky for NumPy, and the S-MNN layer for PyTorch (``banded.torch``).

Built from the Rust crate ``banded`` (PyO3 and maturin); see ``python/README.md``.
"""

from ._errors import NotPositiveDefiniteError
from ._linalg import BandCholesky, cholesky_banded, empty_cache, inverse_banded, logdet_banded, solveh_banded

__all__ = ["BandCholesky", "NotPositiveDefiniteError", "cholesky_banded", "empty_cache", "inverse_banded", "logdet_banded", "solveh_banded"]
