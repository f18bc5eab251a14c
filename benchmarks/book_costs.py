"""Where a book build's time went: training and k-NN probe seconds per chapter, from the run cache.

``make book`` records each chapter's wall time in ``_build/timings.json`` (its end time and
duration). Every network it trains is cached with its own timings (``meta.json``: ``seconds.train``,
``seconds.probe``, ...). This script gives each cached run to the chapter whose execution window
holds the run's file time, and sums per chapter. Run it after a build from an empty cache; runs
loaded from an earlier cache are not in any window and are not counted.

Usage: python benchmarks/book_costs.py [--cache data/cache] [--timings _build/timings.json]
[--profile laptop]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def chapter_windows(timings: list[dict], profile: str) -> list[tuple[str, float, float]]:
    """(chapter, start, end) as POSIX seconds for the executed chapters of ``profile``."""
    windows = []
    for record in timings:
        if record.get("profile") != profile or record.get("stage") != "execute":
            continue
        end = datetime.datetime.fromisoformat(record["date"]).timestamp()
        # "date" is written to the second after the chapter ends: widen by a second on each side.
        windows.append((record["chapter"], end - record["seconds"] - 1, end + 1))
    return windows


def run_costs(cache: Path, windows) -> dict[str, dict[str, float]]:
    """Per chapter: ``runs``, ``train`` and ``probe`` seconds (capture + k-NN) summed over its
    runs."""
    totals: dict[str, dict[str, float]] = defaultdict(
        lambda: {"runs": 0, "train": 0.0, "probe": 0.0}
    )
    for meta_path in cache.rglob("*.json"):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        seconds = meta.get("seconds") if isinstance(meta, dict) else None
        if not isinstance(seconds, dict) or "train" not in seconds:
            continue
        written = meta_path.stat().st_mtime
        chapter = next((name for name, start, end in windows if start <= written <= end), None)
        if chapter is None:
            continue
        totals[chapter]["runs"] += 1
        totals[chapter]["train"] += float(seconds.get("train", 0.0))
        totals[chapter]["probe"] += float(seconds.get("probe", 0.0))
    return dict(totals)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(os.environ.get("PDLIB_CACHE") or ROOT / "data" / "cache")
    )
    parser.add_argument("--timings", type=Path, default=ROOT / "_build" / "timings.json")
    parser.add_argument("--profile", default="laptop")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    windows = chapter_windows(json.loads(args.timings.read_text()), args.profile)
    costs = run_costs(args.cache, windows)
    print("| chapter | wall s | runs trained | training s | probe s |\n|---|---:|---:|---:|---:|")
    total = {"wall": 0.0, "runs": 0, "train": 0.0, "probe": 0.0}
    for name, start, end in windows:
        cost = costs.get(name, {"runs": 0, "train": 0.0, "probe": 0.0})
        wall = end - start - 2
        print(
            f"| {name} | {wall:,.0f} | {cost['runs']} | {cost['train']:,.0f} | "
            f"{cost['probe']:,.0f} |"
        )
        total["wall"] += wall
        for key in ("runs", "train", "probe"):
            total[key] += cost[key]
    print(
        f"| **all chapters** | **{total['wall']:,.0f}** | **{total['runs']}** | "
        f"**{total['train']:,.0f}** | **{total['probe']:,.0f}** |"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"windows": windows, "costs": costs, "total": total}, indent=2)
        )


if __name__ == "__main__":
    main()
