"""tqdm progress bars that stay quiet in CI unless asked for."""

from __future__ import annotations

import functools
import os

# Plain tqdm: tqdm.auto wants ipywidgets inside notebooks and warns without them.
from tqdm import tqdm


def progress_enabled(enabled: bool | None = None) -> bool:
    """``enabled`` if given, else on unless ``PDLIB_QUIET`` is set (CI sets it)."""
    if enabled is not None:
        return bool(enabled)
    return os.environ.get("PDLIB_QUIET", "") in ("", "0")


@functools.cache
def _progress_file(path: str):
    return open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - kept open for the process


def progress_bar(iterable=None, *, desc: str, enabled: bool | None = None, **kwargs):
    """A tqdm bar; with ``PDLIB_PROGRESS=<file>`` (set by ``make book``) it writes to that file."""
    target = os.environ.get("PDLIB_PROGRESS")
    if target:
        kwargs.setdefault("file", _progress_file(target))
    return tqdm(iterable, desc=desc, disable=not progress_enabled(enabled), leave=False, **kwargs)
