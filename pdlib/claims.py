"""The paper's claims, and where each chapter records its measurement of them.

Each chapter calls :func:`record` with the numbers it measured; the discussion chapter
reads them back with :func:`load` and tabulates them beside the paper's, so no number is
typed twice. Records live in ``<cache>/claims/<profile>/<claim>.json``, written atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pdlib.cache import cache_root

__all__ = ["Claim", "CLAIMS", "VERDICTS", "record", "load", "claims_table"]

#: How a measurement compares with the paper.
VERDICTS = ("reproduced", "partly reproduced", "not reproduced", "not tested")


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and where the book tests it."""

    key: str
    statement: str  # the paper's claim, in one sentence
    paper: str  # the paper's number(s)
    chapter: str  # the chapter (file name) that measures it


CLAIMS = (
    Claim("depth_ordering", "Mean PD orders datasets by difficulty", "qualitative (Fig. 1)",
          "section2_prediction_depth"),
    Claim("seed_consistency", "PD agrees across seeds and architectures", "qualitative (Fig. 2)",
          "section2_prediction_depth"),
    Claim("consensus_bound", "PD gives a linear lower bound on consensus-consistency", "qualitative (Fig. 4 left, middle)",
          "section3_consistency"),
    Claim("accuracy_vs_depth", "Predictions made at low PD are more accurate", "qualitative (Fig. 4 right)",
          "section3_consistency"),
    Claim("iteration_learned", "PD correlates with the iteration a point is learned",
          "Pearson r (VGG16): FMNIST 0.79, CIFAR10 0.70, CIFAR100 0.83, SVHN 0.77", "section3_learning_margins"),
    Claim("inference_curve", "The inference learning curve mirrors the training learning curve under label noise",
          "qualitative (Fig. 5)", "section3_learning_margins"),
    Claim("margins", "PD correlates negatively with output and input margins",
          "r = −0.70 (output), −0.69 (input); CIFAR10, VGG16", "section3_learning_margins"),
    Claim("zero_hinge", "Without a reward for margin (0-Hinge), PD rises and early probes lose accuracy",
          "output margin 2.0e-4 ± 2.0e-4 vs 16 ± 5", "section3_learning_margins"),
    Claim("difficulty_types", "PD_val and PD_train together separate four types of difficulty",
          "qualitative (Fig. 7, 8)", "section4_difficulty_types"),
    Claim("knn_fix", "A mid-layer k-NN probe fixes 'ambiguous unless the label is given' points",
          "25 % (network) vs 98 % (layer-4 probe); CIFAR10, ResNet18", "section4_difficulty_types"),
)


def _folder(profile: str) -> Path:
    return cache_root() / "claims" / profile


def record(key: str, *, profile: str, measured: str, verdict: str, reason: str, setting: str,
           values: dict | None = None) -> dict:
    """Store a chapter's measurement of claim ``key`` for the discussion table.

    Parameters
    ----------
    key : str
        A :data:`CLAIMS` key.
    profile : str
        The profile the chapter ran in.
    measured : str
        The measurement as it should appear in the table, formatted from the computed numbers.
    verdict : str
        One of :data:`VERDICTS`.
    reason : str
        Why this verdict (the criterion, or the likely reason for a difference).
    setting : str
        Dataset, architecture and number of models behind the measurement.
    values : dict, optional
        The raw numbers (JSON-able).
    """
    if key not in {claim.key for claim in CLAIMS}:
        raise ValueError(f"unknown claim {key!r}; known: {', '.join(c.key for c in CLAIMS)}")
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}; got {verdict!r}")
    entry = {"key": key, "profile": profile, "measured": measured, "verdict": verdict, "reason": reason,
             "setting": setting, "values": values or {}}
    folder = _folder(profile)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(entry, handle, indent=2, default=float)
    os.replace(tmp, folder / f"{key}.json")
    return entry


def load(profile: str) -> dict:
    """Every recorded claim of ``profile``: key to the dict given to :func:`record`."""
    folder = _folder(profile)
    if not folder.exists():
        return {}
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def claims_table(profile: str):
    """The discussion table: every claim, the paper's number, ours, the verdict and why.

    A claim whose chapter has not run in this profile says so (and which chapter to run),
    so no cell is ever empty.

    Returns
    -------
    pandas.DataFrame, one row per :data:`CLAIMS` entry
    """
    import pandas as pd

    recorded = load(profile)
    rows = []
    for claim in CLAIMS:
        entry = recorded.get(claim.key)
        if entry is None:
            entry = {"measured": "—", "verdict": "not tested", "setting": "—",
                     "reason": f"chapter {claim.chapter} has not run in the {profile} profile; "
                               f"run: python -m pdlib.book --profile {profile} --only {claim.chapter}"}
        rows.append({"claim": claim.statement, "paper": claim.paper, "ours": entry["measured"],
                     "setting": entry["setting"], "verdict": entry["verdict"], "why": entry["reason"]})
    return pd.DataFrame(rows)
