"""The paper's claims, their negative controls, and the records the discussion reads.

Each chapter judges the claims it tests with a function of :mod:`pdlib.verdicts`, which returns a
:class:`~pdlib.verdicts.Judgement`, and stores it with :func:`record`; it runs the same function on
the claim's negative control (:data:`CONTROLS`, data on which the claim is false) and stores that
with :func:`record_control`. The discussion reads both back with :func:`claims_table` and
:func:`controls_table` (shown with :func:`pdlib.analysis.show`, ``text=True``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from pdlib.cache import cache_root, write_atomically
from pdlib.verdicts import VERDICTS, Judgement

__all__ = [
    "Claim",
    "CLAIMS",
    "CONTROLS",
    "CONTROL_PASSES",
    "VERDICTS",
    "record",
    "record_control",
    "load",
    "load_controls",
    "claims_table",
    "verdict_counts",
    "controls_table",
]

#: A control on which the claim reads one of these has failed: the criterion cannot tell the
#: paper's effect from its absence.
CONTROL_PASSES = ("reproduced", "partly reproduced")


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, its criterion and the chapter that measures it."""

    key: str
    statement: str  # the paper's claim, in one sentence
    paper: str  # the paper's number(s)
    criterion: str  # how the verdict is decided, fixed before the data
    chapter: str  # the chapter (file name) that measures it


CLAIMS = (
    Claim(
        "depth_ordering",
        "Mean PD orders the datasets: Fashion-MNIST < SVHN < CIFAR10 < CIFAR100",
        "ResNet18, training split (Fig. 1 right)",
        "each adjacent pair in the paper's order, separated by 95 % bootstrap intervals; not "
        "tested unless all four datasets ran",
        "section2_prediction_depth",
    ),
    Claim(
        "seed_consistency",
        "PD agrees across seeds, and more between ResNet18 and VGG16 than with the MLP",
        "qualitative (Fig. 2 left)",
        "every architecture's seed-to-seed r >= 0.5, and r(ResNet18, VGG16) above both r with the "
        "MLP (95 % intervals)",
        "section2_prediction_depth",
    ),
    Claim(
        "consensus_bound",
        "PD gives a falling linear lower bound on consensus-consistency",
        "qualitative (Fig. 4 left, middle)",
        "the line through the mean C* per PD (PD from one network, C* from the others, rotated; "
        "Fig. 4 middle) falls by at least 0.1 over the rescaled PD, and so does the 2 % lower "
        "envelope over the ensemble, judged only with a median of >= 10 appearances per point "
        "(95 % intervals resampling networks and points)",
        "section3_consistency",
    ),
    Claim(
        "accuracy_vs_depth",
        "Predictions made at low PD are more accurate",
        "qualitative (Fig. 4 right)",
        "held-out accuracy in the first third of the PD range exceeds the last third by >= 10 "
        "points (95 % interval resampling networks and points)",
        "section3_consistency",
    ),
    Claim(
        "iteration_learned",
        "PD correlates with the iteration a point is learned",
        "Pearson r (VGG16): FMNIST 0.79, CIFAR10 0.70, CIFAR100 0.83, SVHN 0.77",
        "r over validation appearances has the paper's sign and lies within ± 0.1 of the paper's "
        "value for the dataset (95 % interval resampling networks and points)",
        "section3_learning_margins",
    ),
    Claim(
        "inference_curve",
        "The inference learning curve repeats the training curve under label noise",
        "qualitative (Fig. 5 middle, right)",
        "three features (original label first, a crossing, a test-accuracy maximum before the end) "
        "in both curves for every seed",
        "section3_learning_margins",
    ),
    Claim(
        "margins",
        "PD correlates negatively with output and input margins",
        "r = -0.70 (output), -0.69 (input); CIFAR10, VGG16",
        "each r has the paper's sign and lies within ± 0.1 of it (95 % interval resampling "
        "networks and points)",
        "section3_learning_margins",
    ),
    Claim(
        "zero_hinge",
        "Without a reward for margin (0-Hinge) margins vanish and data separate only late",
        "output margin 2.0e-4 ± 2.0e-4 vs 16 ± 5 (CE)",
        "CE margin >= 1000x the 0-Hinge margin; 0-Hinge mean PD above CE's over points with a "
        "depth in both; 0-Hinge's hidden-probe gain over the untrained network below a quarter "
        "of CE's (95 % bootstrap intervals over points)",
        "section3_learning_margins",
    ),
    Claim(
        "difficulty_types",
        "PD_val and PD_train together separate four types of difficulty",
        "qualitative (Fig. 7, 8)",
        "easy has the highest C*; most of 'looks like a different class' have consensus != label; "
        "'ambiguous unless the label is given' is more accurate at the middle probe than at the "
        "softmax (paired); 'ambiguous' has a lower C* than the two low-PD_val corners (95 % "
        "intervals over points)",
        "section4_difficulty_types",
    ),
    Claim(
        "knn_fix",
        "A mid-layer k-NN probe fixes 'ambiguous unless the label is given' points",
        "25 % (network) vs 98 % (layer-4 probe); CIFAR10, ResNet18",
        "the middle probe, fixed before the data, removes more of the network's errors on the "
        "group than on every held-out point, and at least half the paper's share (97 % of the "
        "errors, so 48.6 %), on models that did not choose the group; paired on the same "
        "appearances, 95 % intervals over points",
        "section4_difficulty_types",
    ),
)
_KEYS = {claim.key: claim for claim in CLAIMS}

#: Each claim's negative control: the same verdict function on data where the claim is false.
CONTROLS = {
    "seed_consistency": "each network's PD permuted across points",
    "consensus_bound": "PD permuted across points",
    "accuracy_vs_depth": "PD permuted across points",
    "iteration_learned": "PD permuted across points",
    "margins": "PD permuted across points",
    "inference_curve": "an untrained network on the same noisy labels",
    "zero_hinge": "cross-entropy in the place of 0-Hinge (no intervention)",
    "difficulty_types": "PD_val and PD_train permuted across points (random corners)",
    "knn_fix": "a random group of the pool, of the same size, in the place of the corner",
}


# --- records ------------------------------------------------------------------------------------


def _folder(profile: str, kind: str = "claims") -> Path:
    return cache_root() / kind / profile


def _store(kind: str, key: str, profile: str, entry: dict) -> dict:
    if key not in _KEYS:
        raise ValueError(f"unknown claim {key!r}; known: {', '.join(_KEYS)}")
    text = json.dumps(entry, indent=2, default=float)
    write_atomically(_folder(profile, kind) / f"{key}.json", lambda tmp: tmp.write_text(text))
    return entry


def _fields(judgement: Judgement) -> dict:
    """What a record keeps of a judgement: its verdict, reason, measured text and values."""
    return {k: v for k, v in asdict(judgement).items() if k != "statuses"}


def record(key: str, judgement: Judgement, *, profile: str, setting: str) -> dict:
    """Store a chapter's judgement of claim ``key`` for the discussion table (atomically)."""
    return _store(
        "claims",
        key,
        profile,
        {"key": key, "profile": profile, "setting": setting, **_fields(judgement)},
    )


def record_control(key: str, judgement: Judgement, *, profile: str) -> dict:
    """Store the verdict of claim ``key``'s negative control (:data:`CONTROLS`)."""
    if key not in CONTROLS:
        raise ValueError(f"claim {key!r} has no control; controlled: {', '.join(CONTROLS)}")
    entry = {"key": key, "profile": profile, "control": CONTROLS[key], **_fields(judgement)}
    return _store("controls", key, profile, entry)


def _load(profile: str, kind: str) -> dict:
    folder = _folder(profile, kind)
    return (
        {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}
        if folder.exists()
        else {}
    )


def load(profile: str) -> dict:
    """Every recorded claim of ``profile``: key to the stored entry (the judgement's fields, the
    setting)."""
    return _load(profile, "claims")


def load_controls(profile: str) -> dict:
    """Every recorded control of ``profile``: key to the stored entry."""
    return _load(profile, "controls")


def _not_run(claim: Claim, profile: str) -> dict:
    return {
        "measured": "—",
        "verdict": "not tested",
        "setting": "—",
        "reason": f"chapter {claim.chapter} has not run in the {profile} profile; run: "
        f"python book/build.py --profile {profile} --only {claim.chapter}",
    }


def claims_table(profile: str):
    """The discussion table (a DataFrame, one row per claim): criterion, measurement, verdict,
    reason and the verdict of the claim's control; an unrecorded claim is "not tested"."""
    import pandas as pd

    recorded, controls = load(profile), load_controls(profile)
    rows = []
    for claim in CLAIMS:
        entry = recorded.get(claim.key) or _not_run(claim, profile)
        control = controls.get(claim.key, {}).get(
            "verdict", "—" if claim.key not in CONTROLS else "not tested"
        )
        rows.append(
            {
                "claim": claim.statement,
                "paper": claim.paper,
                "criterion": claim.criterion,
                "ours": entry["measured"],
                "setting": entry["setting"],
                "verdict": entry["verdict"],
                "per dataset": _per_dataset_text(entry),
                "why": entry["reason"],
                "control's verdict": control,
            }
        )
    return pd.DataFrame(rows)


def _per_dataset_text(entry: dict) -> str:
    """``fashion_mnist: reproduced; digits: partly reproduced`` for a claim judged per dataset
    (:func:`pdlib.verdicts.across_datasets`), "—" for one judged on one dataset."""
    per_dataset = entry.get("values", {}).get("per_dataset", {})
    if len(per_dataset) < 2:
        return "—"
    return "; ".join(f"{task}: {j['verdict']}" for task, j in per_dataset.items())


def verdict_counts(table) -> dict:
    """``n_<verdict>`` (spaces as underscores) -> number of rows of ``table`` with that verdict,
    for every verdict, and ``n_claims``: the numbers the discussion quotes."""
    counts = table["verdict"].value_counts()
    numbers = {f"n_{v.replace(' ', '_')}": int(counts.get(v, 0)) for v in VERDICTS}
    return numbers | {"n_claims": len(table)}


def controls_table(profile: str):
    """The Controls table: per controlled claim, the control, what the verdict function measured
    on it, its verdict and why; a control not run is "not tested"."""
    import pandas as pd

    recorded = load_controls(profile)
    rows = []
    for claim in CLAIMS:
        if claim.key not in CONTROLS:
            continue
        entry = recorded.get(claim.key) or _not_run(claim, profile)
        rows.append(
            {
                "claim": claim.statement,
                "control (the claim is false on it)": CONTROLS[claim.key],
                "measured": entry["measured"],
                "verdict": entry["verdict"],
                "why": entry["reason"],
            }
        )
    return pd.DataFrame(rows)
