"""Helpers for the chapter notebooks."""

from __future__ import annotations

import numpy as np

__all__ = ["glue"]


def glue(name: str, value, display: bool = False) -> None:
    """:func:`myst_nb.glue` for numbers the chapters compute, hidden by default.

    NumPy scalars are turned into Python numbers first: MyST-NB formats a glued number
    (``{glue:text}`name:.2f```) by parsing its ``repr``, which NumPy 2 writes as
    ``np.float64(0.5)``.
    """
    from myst_nb import glue as myst_glue

    if isinstance(value, np.generic):
        value = value.item()
    myst_glue(name, value, display=display)
