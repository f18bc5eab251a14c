"""Audit a labelled image set: which labels look wrong, which images are hard (python -m pdlib
audit).

A 90:10 ensemble of networks is trained on the images, every layer of every network is probed
with k-NN classifiers (k = 30), and every image is scored (pdlib.labelnoise.example_scores):
prediction depths PD_train and PD_val, consistency Ĉ, consensus class, C*, iteration learned,
output margin, AUM, training loss, difficulty type and suspicion score.

Input (DATA)
  - an image folder in torchvision's ImageFolder layout: one subfolder per class, images found
    recursively, ordered by class name then path; hidden files and folders are skipped;
  - a CSV file with columns path,label; relative paths are relative to the CSV's folder;
  - an .npz file with images (n, H, W) or (n, H, W, C), uint8 or float in [0, 1], labels (n,)
    of integers or strings, and optionally class_names;
  - a dataset name pdlib knows (fashion_mnist, cifar10, ...): its training split.
  Classes are the sorted folder names or labels (integers in numeric order), the npz's
  class_names, or --classes (labels outside it are an error). Every class needs 2 images, and
  each network's 90 % training split k + 1 = 31 (each training image is classified by its 30
  nearest other training images): 35 images in all.

Image policy
  Images of any size and mode are read with Pillow (EXIF orientation applied) and converted to
  --mode: grayscale, rgb, or auto (grayscale if every image is grayscale, else rgb); transparent
  pixels are composited onto white, 16-bit images scaled to 8 bits. Each image is centre-cropped
  to a square and resized bilinearly to --image-size pixels (default: the most common size if
  every image is square, else 32), then normalised with the data's own channel mean and std.

Networks and outputs
  Network i (seed + i) holds out fold i mod 10 of a fixed 10-fold split and trains on the rest:
  with 10 networks or more, every image is held out at least once. DIR receives scores.csv and
  scores.parquet (one row per image in the input's order), report.html (self-contained: PD
  plane, a gallery per difficulty type, top suspects, provenance), config.json (settings and the
  data's fingerprint) and cache/ (the data as read, one artifact per finished network). The same
  command, or --resume (options left out come from config.json), continues an interrupted audit
  without retraining finished networks; changing --models reuses them; any other change needs
  another DIR. Bad input is refused before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pdlib.audit.images import FOLDS, MODES, AuditInputError, Images, K, read_images
from pdlib.cache import provenance, write_atomically
from pdlib.ensembles import EXECUTORS, Ensemble, ensemble_configs, run_ensemble
from pdlib.labelnoise import example_scores
from pdlib.models import ARCHITECTURES
from pdlib.report import write_outputs
from pdlib.runs import RunConfig
from pdlib.training import TrainConfig
from pdlib.userdata import register_arrays

__all__ = ["audit", "AuditInputError", "default_arch", "DEFAULTS", "ARCH_DEFAULTS", "MODES"]

N_CHECKPOINTS = 10  # prediction snapshots per network, for the iteration learned
#: Settings used when neither the caller nor (with resume) config.json gives them; arch:
#: :func:`default_arch`.
DEFAULTS = {
    "arch": None,
    "n_models": 16,
    "epochs": 15,
    "batch_size": 128,
    "seed": 0,
    "mode": "auto",
    "image_size": None,
    "classes": None,
    "n_images": None,
}
#: Defaults that depend on the architecture: width (hidden units or first-stage channels) and peak
#: lr.
ARCH_DEFAULTS = {
    "mlp": {"width": 256, "lr": 0.05},
    "vgg16": {"width": 16, "lr": 0.05},
    "resnet18": {"width": 16, "lr": 0.1},
}
_OUTPUTS = {"config.json", "scores.csv", "scores.parquet", "report.html", "cache"}
_FORMAT = "pdlib-audit-1"


def audit(
    data,
    *,
    out,
    arch=None,
    n_models=None,
    width=None,
    epochs=None,
    batch_size=None,
    lr=None,
    seed=None,
    image_size=None,
    mode=None,
    classes=None,
    n_images=None,
    device=None,
    executor="local",
    resume=False,
    quiet=None,
):
    """Train a 90:10 ensemble on labelled images and score every image for difficulty and label
    errors.

    Parameters
    ----------
    data : path-like or str
        Image folder, ``.csv``, ``.npz`` or dataset name (see the module docstring).
    out : path-like
        Output folder; created if absent.
    arch, n_models, width, epochs, batch_size, lr, seed, image_size, mode, classes, n_images,
    device, executor
        The options of ``python -m pdlib audit``; ``None`` takes :data:`DEFAULTS` and
        :data:`ARCH_DEFAULTS`, or with ``resume`` the settings in ``out/config.json``.
    resume, quiet : bool
        ``quiet=True`` hides progress bars (like ``PDLIB_QUIET=1``); ``None`` leaves the
        environment's choice.

    Returns
    -------
    pandas.DataFrame, shape (n_images, n_columns)
        ``index`` (row in the input), ``path`` (for files) and the columns of
        :func:`pdlib.labelnoise.example_scores`, in the input's order; also written to ``out``.

    Raises
    ------
    AuditInputError
        Bad images, labels, classes or settings, or another audit in ``out``; before anything is
        written.
    """
    start, out = time.perf_counter(), Path(out).expanduser()
    stored = _stored_config(out)
    given = {
        "arch": arch,
        "n_models": n_models,
        "width": width,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "image_size": image_size,
        "mode": mode,
        "n_images": n_images,
        "classes": None if classes is None else [str(c) for c in classes],
    }
    settings = _settings(given, stored["settings"] if resume and stored else None, executor, device)
    with _environment(out, quiet):
        images = read_images(data, settings)
        changed = [
            f"{key} {stored['settings'].get(key)!r} there, {value!r} here"
            for key, value in settings.items()
            if stored and key != "n_models" and stored["settings"].get(key) != value
        ]
        if (
            changed
        ):  # only the number of networks may change: the others would mix two audits in one cache
            raise AuditInputError(
                f"--out {out} holds a different audit ({'; '.join(changed)}); use another --out, "
                "delete it, or pass --resume to continue it with its own settings"
            )
        name = _register(images, out, stored["dataset"] if stored else None)
        config = {
            "format": _FORMAT,
            "dataset": name,
            "settings": settings,
            "input": str(data),
            "n_images": len(images.labels),
            "class_names": list(images.class_names),
        }
        write_atomically(
            out / "config.json", lambda tmp: tmp.write_text(json.dumps(config, indent=2))
        )
        train = TrainConfig(
            epochs=settings["epochs"],
            batch_size=settings["batch_size"],
            lr=settings["lr"],
            n_checkpoints=N_CHECKPOINTS,
        )
        template = RunConfig(
            dataset=name,
            arch=settings["arch"],
            width=settings["width"],
            train=train,
            n_pool=0,
            n_test=0,
            holdout_fraction=1 / FOLDS,
            holdout_folds=FOLDS,
            seed=settings["seed"],
            data_seed=settings["seed"],
            k=K,
        )
        table, facts = _train_and_score(template, settings["n_models"], images, executor, device)
        facts |= {
            "dataset": name,
            "settings": settings,
            "source": str(data),
            "executor": executor,
            "wall_seconds": time.perf_counter() - start,
            "provenance": provenance(device),
        }
        write_outputs(out, table, images.pixels, class_names=images.class_names, **facts)
    table.attrs.update(
        dataset=name, out=str(out), n_models=facts["n_models"], max_depth=facts["max_depth"]
    )
    return table


def _settings(given: dict, stored: dict | None, executor: str, device) -> dict:
    """Given values, else stored ones (resume), else defaults; checked before anything is read."""
    chosen = {**(stored or {}), **{key: value for key, value in given.items() if value is not None}}
    arch = chosen.setdefault("arch", default_arch(device))
    for key, value, allowed in (
        ("arch", arch, ARCHITECTURES),
        ("mode", chosen.get("mode", "auto"), MODES),
        ("executor", executor, EXECUTORS),
    ):
        if value not in allowed:
            raise AuditInputError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")
    chosen = {**DEFAULTS, **ARCH_DEFAULTS[arch], **chosen}
    for key in ("n_models", "width", "image_size", "n_images"):
        if (value := chosen[key]) is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise AuditInputError(f"{key} must be a positive integer; got {value!r}")
    try:
        TrainConfig(epochs=chosen["epochs"], batch_size=chosen["batch_size"], lr=chosen["lr"])
    except ValueError as error:
        raise AuditInputError(str(error)) from None
    return {key: chosen[key] for key in (*DEFAULTS, "width", "lr")}


def default_arch(device=None) -> str:
    """``"resnet18"``, or on a CPU the MLP: 16 ResNet18s on 5,000 images take over an hour on 2
    cores."""
    on_cpu = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")).type == "cpu"
    return "mlp" if on_cpu else "resnet18"


def _stored_config(out: Path) -> dict | None:
    """The config.json of an earlier audit in ``out``; refuses a folder holding anything else."""
    if out.exists() and not out.is_dir():
        raise AuditInputError(f"--out {out} is a file, not a folder")
    names = [entry.name for entry in out.iterdir()] if out.exists() else []
    foreign = sorted(name for name in names if name not in _OUTPUTS and not name.startswith("."))
    if foreign:
        raise AuditInputError(
            f"--out {out} holds files that are not an audit's ({', '.join(foreign[:5])}); choose a "
            "new or empty folder"
        )
    path = out / "config.json"
    try:
        stored = json.loads(path.read_text()) if path.exists() else None
        if stored is None or (
            stored["format"] == _FORMAT and stored["dataset"] and "arch" in stored["settings"]
        ):
            return stored
    except (ValueError, KeyError, TypeError):
        pass
    raise AuditInputError(f"{path} is not a pdlib audit config; choose another --out")


def _register(images: Images, out: Path, expected: str | None) -> str:
    """The data's name in pdlib.data (its fingerprint), registered under ``out/cache/data``."""
    if expected is not None:
        # Fingerprint in a scratch folder first: nothing lands in ``out`` unless it is the same
        # data.
        with tempfile.TemporaryDirectory() as scratch:
            name = register_arrays(images.pixels, images.labels, images.class_names, folder=scratch)
        if name != expected:
            raise AuditInputError(
                f"--out {out} holds an audit of other data ({expected}; these images are {name}); "
                "use another --out or delete it"
            )
    return register_arrays(
        images.pixels, images.labels, images.class_names, folder=out / "cache" / "data"
    )


def _train_and_score(template, n_models: int, images: Images, executor: str, device):
    """Run (or resume) the ensemble; the table in input order and facts for the report."""
    reused = n_models - len(Ensemble(tuple(ensemble_configs(template, n_models))).missing())
    ensemble = run_ensemble(template, n_models, executor=executor, device=device)
    first = next(ensemble.artifacts())
    pool = ~first["is_test"]
    # n_pool=0 keeps every image in order: pool position i must be input row i, with its label.
    if not (
        np.array_equal(first["dataset_index"][pool], np.arange(len(images.labels)))
        and np.array_equal(first["fit_labels"][pool], images.labels)
    ):
        raise RuntimeError(
            "the ensemble's pool is not the input in order; pdlib.runs changed how pools are drawn"
        )
    scores = example_scores(ensemble, class_names=images.class_names)
    columns = {"index": images.index, **({"path": images.paths} if images.paths else {})}
    table = pd.DataFrame({**columns, **{c: scores[c].to_numpy() for c in scores.columns}})
    # An image never held out lies nowhere on the plane; example_scores names it "easy" all the
    # same.
    table.loc[table["held out"] == 0, "difficulty type"] = ""
    return table, {
        "n_models": n_models,
        "reused_models": reused,
        "max_depth": scores.attrs["max_depth"],
        "arch": template.arch,
        "probe_names": list(first.meta["probe_names"]),
    }


@contextlib.contextmanager
def _environment(out: Path, quiet):
    """Point the run cache into ``out`` for the call, then restore the caller's environment."""
    saved = {
        name: os.environ.get(name) for name in ("PDLIB_CACHE", "PDLIB_FILE_DATA", "PDLIB_QUIET")
    }
    os.environ.update(
        {
            "PDLIB_CACHE": str((out / "cache").resolve()),
            **({} if quiet is None else {"PDLIB_QUIET": str(int(quiet))}),
        }
    )
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
