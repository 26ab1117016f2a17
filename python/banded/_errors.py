"""The exceptions of ``banded``, and the conversion of the Rust crate's errors into them."""

import numpy as np

__all__ = ["NotPositiveDefiniteError"]


class NotPositiveDefiniteError(np.linalg.LinAlgError):
    """A matrix of the batch is not (numerically) positive definite.

    Attributes
    ----------
    system : int
        The first failing system: its flat index over the batch axes (C order).
    batch_index : tuple of int
        The same system as an index into the batch axes (``()`` without batch axes).
    column : int
        The 0-based column at which its Cholesky pivot was not positive.
    failures : list of (int, int)
        Every failing ``(system, column)``, in increasing system order.
    """

    def __init__(self, message, system, column, failures, batch_shape=None):
        super().__init__(message)
        self.system = system
        self.column = column
        self.failures = failures
        self.batch_index = _unravel(system, batch_shape)


def _unravel(flat, batch_shape):
    if batch_shape is None:
        return (flat,)
    if len(batch_shape) == 0:
        return ()
    return tuple(int(i) for i in np.unravel_index(flat, batch_shape))


def from_native(kind, message, details):
    """The exception for an error of the Rust crate (called by ``banded._native``).

    ``kind`` is the error's variant (``not_positive_definite``, ``shape``, ``non_finite``,
    ``invalid_argument``, ``overflow``, …), ``details`` its fields.
    """
    if kind == "not_positive_definite":
        return NotPositiveDefiniteError(message, details["system"], details["column"], details["failures"])
    if kind in ("shape", "non_finite", "invalid_argument", "overflow"):
        err = ValueError(message)
    else:
        err = RuntimeError(message)
    for key, value in details.items():
        setattr(err, key, value)
    return err


def with_batch_shape(err, batch_shape):
    """``err`` with ``batch_index`` set for the caller's batch axes (a ``NotPositiveDefiniteError``)."""
    if isinstance(err, NotPositiveDefiniteError):
        err.batch_index = _unravel(err.system, tuple(batch_shape))
    return err
