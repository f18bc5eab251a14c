"""Helpers for the chapter notebooks."""

from __future__ import annotations

import numpy as np

__all__ = ["glue", "glue_all", "glue_judgement"]


def glue(name: str, value, display: bool = False) -> None:
    """:func:`myst_nb.glue`, hidden by default; NumPy scalars become Python numbers (MyST-NB parses
    the repr)."""
    from myst_nb import glue as myst_glue

    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and abs(value) < 1e-12:  # round-off (-4.9e-17) would print as -0.00
        value = 0.0
    myst_glue(name, value, display=display)


def glue_all(values: dict) -> None:
    """:func:`glue` every ``name: value`` of ``values``."""
    for name, value in values.items():
        glue(name, value)


def glue_judgement(prefix: str, judgement) -> None:
    """Glue a :class:`~pdlib.verdicts.Judgement`'s verdict and reason as ``{prefix}_verdict`` and
    ``{prefix}_reason``."""
    glue(f"{prefix}_verdict", judgement.verdict)
    glue(f"{prefix}_reason", judgement.reason)
