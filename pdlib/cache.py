"""Load-or-compute cache for expensive runs, keyed by a hash of the config.

An artifact is ``<kind>/<hash>.npz`` (arrays), optionally ``.pt`` (a ``state_dict``) and ``.json``
(config, git SHA, versions, device, timings). Each file is written atomically, the JSON last, and
only artifacts with a JSON are read, so a killed run leaves a complete artifact or none.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = [
    "cache_root",
    "config_hash",
    "provenance",
    "load_or_compute",
    "Artifact",
    "write_atomically",
    "stamp",
    "is_cached",
    "artifact_version",
]

REPO_ROOT = Path(__file__).resolve().parents[1]


def cache_root() -> Path:
    """``$PDLIB_CACHE`` if set, else ``<repo>/data/cache``."""
    return Path(os.environ.get("PDLIB_CACHE") or REPO_ROOT / "data" / "cache")


def _jsonable(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "__type__": type(value).__name__,
            **{
                f.name: _jsonable(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if not _omitted(f, getattr(value, f.name))
            },
        }
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _omitted(field: dataclasses.Field, value) -> bool:
    """A field added after runs were cached, at its default: left out so that their keys hold."""
    return field.metadata.get("hash") == "omit_default" and value == field.default


def config_hash(config) -> str:
    """Stable 16-hex-digit hash of a (nested) dataclass config."""
    canonical = json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _git_sha() -> str | None:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def stamp(meta: dict, seconds: float) -> dict:
    """``meta`` with the computation's wall time (``seconds_total``) and the :func:`provenance` of
    this process, which computed it (on the ``meta["device"]`` it names)."""
    return {**meta, "seconds_total": seconds, "provenance": provenance(meta.get("device"))}


def provenance(device: str | None = None) -> dict:
    """Where and with what an artifact was computed."""
    import sklearn
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device_name = (
        torch.cuda.get_device_name(0)
        if str(device).startswith("cuda")
        else platform.processor() or platform.machine()
    )
    return {
        "git_sha": _git_sha(),
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "numpy": np.__version__,
            "sklearn": sklearn.__version__,
        },
        "device": str(device),
        "device_name": device_name,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "host": platform.node(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_atomically(path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)``, then rename ``tmp`` onto ``path``: a killed process never leaves half a
    file, and a concurrent reader sees the old file or the new one.

    ``tmp`` is a hidden file beside ``path`` (``.<name>.<random>.tmp``), removed if ``write``
    fails; the folder is created. The file gets the usual permissions (the umask's), not
    ``mkstemp``'s private 0600. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp makes the file private (0600); a shared run cache needs the usual umask.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


@dataclasses.dataclass
class Artifact:
    """Arrays plus metadata of one cached run."""

    arrays: dict[str, np.ndarray]
    meta: dict
    path: Path | None = None

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    @property
    def weights_path(self) -> Path | None:
        """The stored ``state_dict`` of the artifact's model, if one was saved."""
        path = self.path.with_suffix(".pt") if self.path is not None else None
        return path if path is not None and self.meta.get("has_weights") and path.exists() else None

    def load_weights(self) -> dict:
        """The stored ``state_dict`` (``torch.load`` with ``weights_only=True``)."""
        import torch

        if self.weights_path is None:
            raise FileNotFoundError(
                f"the artifact {self.path} was cached without its network's weights"
            )
        return torch.load(self.weights_path, map_location="cpu", weights_only=True)


def _paths(kind: str, key: str, root: Path | None) -> tuple[Path, Path]:
    folder = (Path(root) if root else cache_root()) / kind
    _note_old_formats(folder)
    return folder / f"{key}.npz", folder / f"{key}.json"


_noted: set = set()


def _note_old_formats(folder: Path) -> None:
    """Warn once that artifacts of an older cache format (``<name>-v<N>``) are ignored."""
    stem, _, version = folder.name.rpartition("-v")
    if not version.isdigit() or folder.parent in _noted:
        return
    _noted.add(folder.parent)
    old = sorted(
        p.name for p in folder.parent.glob(f"{stem}-v*") if p.name != folder.name and p.is_dir()
    )
    if old:
        import warnings

        warnings.warn(
            f"the run cache {folder.parent} holds artifacts of older formats ({', '.join(old)}); "
            f"they are not read, and results are recomputed into {folder.name}. Delete the old "
            "folders to free space.",
            stacklevel=3,
        )


def is_cached(kind: str, config, root: Path | None = None, *, with_weights: bool = False) -> bool:
    """Whether a complete artifact of ``config`` is cached (and, ``with_weights``, its weights),
    reading only its metadata: an ensemble asks this of every model before it trains any."""
    npz_path, meta_path = _paths(kind, config_hash(config), root)
    if not (meta_path.exists() and npz_path.exists()):
        return False
    if not with_weights:
        return True
    has_weights = json.loads(meta_path.read_text()).get("has_weights", False)
    return bool(has_weights) and npz_path.with_suffix(".pt").exists()


def artifact_version(kind: str, config, root: Path | None = None) -> int | None:
    """When ``config``'s cached arrays were last written (ns), or ``None`` if they are not cached:
    a key for results derived from them."""
    npz_path, _ = _paths(kind, config_hash(config), root)
    try:
        return npz_path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def load_artifact(kind: str, config, root: Path | None = None) -> Artifact | None:
    """The cached artifact for ``config``, or ``None`` when there is no complete one."""
    npz_path, meta_path = _paths(kind, config_hash(config), root)
    if not meta_path.exists() or not npz_path.exists():
        return None
    meta = json.loads(meta_path.read_text())
    with np.load(npz_path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return Artifact(arrays, meta, npz_path)


def save_artifact(
    kind: str,
    config,
    arrays: dict,
    meta: dict,
    root: Path | None = None,
    weights: dict | None = None,
) -> Artifact:
    """Write arrays, then the weights (if any), then metadata, each atomically; the metadata marks
    completion."""
    npz_path, meta_path = _paths(kind, config_hash(config), root)
    arrays = {name: np.asarray(value) for name, value in arrays.items()}

    def write_npz(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    write_atomically(npz_path, write_npz)
    if weights is not None:
        import torch

        write_atomically(
            npz_path.with_suffix(".pt"),
            lambda tmp: torch.save(
                {name: tensor.detach().cpu() for name, tensor in weights.items()}, tmp
            ),
        )
    meta = {
        "kind": kind,
        "hash": config_hash(config),
        "config": _jsonable(config),
        **meta,
        "has_weights": weights is not None,
    }
    write_atomically(meta_path, lambda tmp: tmp.write_text(json.dumps(meta, indent=2, default=str)))
    return Artifact(arrays, meta, npz_path)


def load_or_compute(
    kind: str,
    config,
    compute: Callable[[], tuple[dict, dict]],
    *,
    root: Path | None = None,
    use_cache: bool = True,
) -> Artifact:
    """Return the cached artifact of ``config`` (hashed by :func:`config_hash`), computing and
    saving it if absent.

    ``kind`` is the cache sub-folder; ``compute()`` returns ``(arrays, meta[, state_dict])``
    (provenance is added); ``root`` defaults to :func:`cache_root`; ``use_cache=False`` recomputes
    and overwrites.
    """
    if use_cache:
        cached = load_artifact(kind, config, root)
        if cached is not None:
            return cached
    start = time.perf_counter()
    arrays, meta, *weights = compute()
    meta = stamp(meta, time.perf_counter() - start)
    return save_artifact(kind, config, arrays, meta, root, weights=weights[0] if weights else None)
