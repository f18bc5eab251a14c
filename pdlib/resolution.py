"""Section 3.2's resolution table: r(PD, iteration learned) read from coarser and finer checkpoint
schedules of the same networks, to tell whether the checkpoints' resolution explains the gap to
the paper's r.

Pure functions of an ensemble's :class:`~pdlib.cache.Artifact` list and its
:func:`pdlib.ensembles.ensemble_statistics`; intervals resample networks and points together.
"""

from __future__ import annotations

import numpy as np

from pdlib.intervals import two_level_interval
from pdlib.metrics import (
    binned_correlation,
    checkpoint_schedule,
    even_checkpoints,
    iteration_learned,
    pearson,
    rescale_iteration,
)

__all__ = ["RESOLUTIONS", "iteration_resolution", "resolution_display", "resolution_numbers"]

#: Even checkpoint counts of the resolution table (each divides the paper's 40).
RESOLUTIONS = (5, 10, 20, 40)


def _schedule_rows(steps: np.ndarray, n_even: int) -> dict:
    """Rows of one network's checkpoint history per schedule of :func:`iteration_resolution`: for
    k of :data:`RESOLUTIONS` below ``n_even``, and ``n_even`` itself, the even snapshot nearest each
    of k even steps (fewer where short training makes steps coincide); every row where there are
    extras."""
    even = np.flatnonzero(even_checkpoints(steps, n_even))
    rows = {}
    for k in sorted({k for k in RESOLUTIONS if k < n_even} | {n_even}):
        targets = checkpoint_schedule(int(steps[-1]), k)
        nearest = np.abs(steps[even][None, :] - targets[:, None]).argmin(axis=1)
        rows[f"{k} even"] = np.unique(even[nearest])
    if len(steps) > len(even):
        rows[f"{n_even} even + {len(steps) - len(even)} in epoch 1"] = np.arange(len(steps))
    return rows


def iteration_resolution(artifacts, stats, *, n_boot: int = 200, seed: int = 0):
    """r(PD, iteration learned) against the checkpoints it is read from, on one ensemble.

    The networks' recorded snapshots are subsampled to the even schedules of
    :data:`RESOLUTIONS` below the ensemble's ``n_checkpoints`` and to that schedule itself, and
    read whole with their first-epoch extras.
    The iteration learned is counted in steps (the snapshots are not evenly spaced) and rescaled per
    network as in :func:`pdlib.ensembles.ensemble_statistics`.

    Parameters
    ----------
    artifacts : iterable of Artifact
        The ensemble's runs, in the order of ``stats``' rows.
    stats : EnsembleStatistics
        The same ensemble's statistics (``depth``, ``held_out``, ``n_probes``).

    Returns
    -------
    pandas.DataFrame, one row per schedule: ``checkpoints``, ``in epoch 1`` (snapshots inside the
    first epoch), ``placed in epoch 1 (%)`` (held-out appearances whose iteration learned, as this
    schedule reads it, falls no later than the end of the first epoch: a coarse schedule places a
    point learned early at its first checkpoint after) and two readings of
    :func:`pdlib.learning.iteration_readings`' validation r (per appearance, over PD bins) with
    95 % intervals over networks and points.
    """
    import pandas as pd

    by_schedule, epoch_one, layout = {}, {}, {}
    for row, artifact in enumerate(artifacts):
        history, steps = artifact["checkpoint_predictions"], artifact["checkpoint_steps"]
        train = artifact.meta["config"]["train"]
        steps_per_epoch = steps[-1] / max(train["epochs"], 1)
        pool, held = ~artifact["is_test"], stats["held_out"][row]
        for name, rows in _schedule_rows(steps, train["n_checkpoints"]).items():
            learned = steps[rows][iteration_learned(history[rows][:, pool])]
            by_schedule.setdefault(name, []).append(rescale_iteration(learned))
            epoch_one.setdefault(name, []).append(learned[held] <= steps_per_epoch)
            inside = int(((steps[rows] > 0) & (steps[rows] <= steps_per_epoch)).sum())
            layout.setdefault(name, (len(rows) - 1, inside))
    depth, held = stats["depth"].astype(np.float64), stats["held_out"]
    out = []
    for name, iterations in by_schedule.items():
        iteration = np.stack(iterations)
        row = {"schedule": name, "checkpoints": layout[name][0], "in epoch 1": layout[name][1]}
        row["placed in epoch 1 (%)"] = 100 * np.concatenate(epoch_one[name]).mean()
        for reading, statistic in (
            ("per appearance", lambda d, it, h: pearson(d[h], it[h])),
            ("over PD bins", lambda d, it, h: binned_correlation(d[h], it[h], stats["n_probes"])),
        ):
            low, high = two_level_interval(
                statistic, depth, iteration, held, n_boot=n_boot, seed=seed
            )
            row |= {
                f"r {reading}": statistic(depth, iteration, held),
                f"{reading} low": low,
                f"{reading} high": high,
            }
        out.append(row)
    return pd.DataFrame(out)


def resolution_display(table):
    """:func:`iteration_resolution`'s ``table`` for the page: each r with its interval in one
    column, "0.58 [0.56, 0.60]"."""
    shown = table[["schedule", "checkpoints", "in epoch 1", "placed in epoch 1 (%)"]].copy()
    shown["placed in epoch 1 (%)"] = shown["placed in epoch 1 (%)"].round(1)
    for reading in ("per appearance", "over PD bins"):
        shown[f"r {reading} [95 % CI]"] = [
            f"{r:.2f} [{low:.2f}, {high:.2f}]"
            for r, low, high in table[
                [f"r {reading}", f"{reading} low", f"{reading} high"]
            ].itertuples(index=False)
        ]
    return shown


def resolution_numbers(table, paper_r: float) -> dict:
    """What the text quotes from :func:`iteration_resolution`'s ``table``: the coarsest and the
    finest schedule's per-appearance r (``res_coarse_*``, ``res_fine_*``) and ``res_reading``, a
    sentence saying, from the numbers, whether resolution explains the gap to ``paper_r``: the
    finest interval holds the paper's r (it does), r moves less than its interval's half-width
    (it does not), or the share of the gap that the finer schedule closes."""
    if table.empty:
        raise ValueError("the resolution table is empty: the ensemble recorded no checkpoints")
    coarse, fine = table.iloc[0], table.iloc[-1]
    change, gap = (
        fine["r per appearance"] - coarse["r per appearance"],
        paper_r - fine["r per appearance"],
    )
    half_width = (fine["per appearance high"] - fine["per appearance low"]) / 2
    if fine["per appearance low"] <= paper_r <= fine["per appearance high"]:
        reading = (
            f"At the finest resolution r's interval [{fine['per appearance low']:.2f}, "
            f"{fine['per appearance high']:.2f}] holds the paper's {paper_r:.2f}: the checkpoint "
            "resolution accounts for the gap."
        )
    elif abs(change) < half_width:
        reading = (
            f"r moves by {change:+.2f} from the coarsest to the finest schedule, less than its own "
            f"uncertainty (± {half_width:.2f}): the checkpoint resolution does not explain the gap "
            f"of {gap:.2f} to the paper."
        )
    else:
        closed = change / (paper_r - coarse["r per appearance"])
        reading = (
            f"r moves by {change:+.2f} from the coarsest to the finest schedule, "
            f"{100 * closed:.0f} % of the gap to the paper; {gap:.2f} remains."
        )
    return {
        "res_coarse_n": int(coarse["checkpoints"]),
        "res_coarse_r": float(coarse["r per appearance"]),
        "res_fine_n": int(fine["checkpoints"]),
        "res_fine_r": float(fine["r per appearance"]),
        "res_fine_schedule": str(fine["schedule"]),
        "res_coarse_placed": float(coarse["placed in epoch 1 (%)"]),
        "res_fine_placed": float(fine["placed in epoch 1 (%)"]),
        "res_reading": reading,
    }
