"""tqdm progress bars that stay quiet in CI unless asked for."""

from __future__ import annotations

import os

# Plain tqdm: tqdm.auto wants ipywidgets inside notebooks and warns without them.
from tqdm import tqdm


def progress_enabled(enabled: bool | None = None) -> bool:
    """``enabled`` if given, else on unless ``PDLIB_QUIET`` is set (CI sets it)."""
    if enabled is not None:
        return bool(enabled)
    return os.environ.get("PDLIB_QUIET", "") in ("", "0")


def progress_bar(iterable=None, *, desc: str, enabled: bool | None = None, **kwargs):
    return tqdm(iterable, desc=desc, disable=not progress_enabled(enabled), leave=False, **kwargs)
