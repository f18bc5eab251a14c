"""One function per paper figure. They plot arrays; they never train.

Each figure has a provenance footer and is at most :data:`WIDTH` inches wide;
``PDLIB_FIGURES=<folder>`` also saves each as PNG.
"""

from __future__ import annotations

from itertools import combinations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from pdlib.figures_difficulty import fig7_corner_gallery, fig7_difficulty_plane, fig8_group_curves
from pdlib.plotting import (
    WIDTH,
    blank_axes,
    display_images,
    figure_legend,
    finish_figure,
    hist2d,
    hist2d_panels,
    show_image,
)

__all__ = [
    "display_images",  # re-exported from pdlib.plotting
    "fig1_depth_gallery",
    "fig1_depth_distributions",
    "probe_accuracy_panels",
    "fig2_depth_correlations",
    "fig2_mean_depth_pairs",
    "fig3_consistency_vs_depth",
    "fig4_consensus_consistency",
    "fig4_accuracy_vs_depth",
    "fig5_iteration_vs_depth",
    "fig5_noise_curves",
    "fig6_margins",
    "fig7_difficulty_plane",
    "fig7_corner_gallery",
    "fig8_group_curves",
    "sensitivity_depth_shift",
]


def fig1_depth_gallery(
    images,
    labels,
    predictions,
    depth,
    class_names,
    *,
    footer: str,
    n_per_side: int = 3,
    classes=None,
    seed: int = 0,
):
    """Per class (row), the training images of lowest and highest mean PD (ties broken at random,
    seeded)."""
    classes = list(range(len(class_names)) if classes is None else classes)
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(
        len(classes),
        2 * n_per_side + 1,
        figsize=(WIDTH * 0.8, 1.15 * len(classes) + 0.6),
        squeeze=False,
        gridspec_kw={"width_ratios": [1] * n_per_side + [0.3] + [1] * n_per_side},
    )
    for row, c in enumerate(classes):
        members = np.flatnonzero(labels == c)
        order = members[np.lexsort((rng.random(len(members)), depth[members]))]
        chosen = list(order[:n_per_side]) + [None] + list(order[::-1][:n_per_side][::-1])
        for ax, index in zip(axes[row], chosen, strict=False):
            blank_axes(ax)
            if index is None:
                continue
            show_image(ax, images[index])
            ax.set_title(
                f"PD {depth[index]:.2g}, pred.\n{class_names[predictions[index]]}",
                fontsize=6.5,
                color="crimson" if predictions[index] != labels[index] else "black",
            )
        axes[row, 0].set_ylabel(class_names[c], fontsize=8, rotation=0, ha="right", va="center")
    axes[0, 0].annotate("lowest PD", (0, 1.9), xycoords="axes fraction", fontsize=9, weight="bold")
    axes[0, n_per_side + 1].annotate(
        "highest PD", (0, 1.9), xycoords="axes fraction", fontsize=9, weight="bold"
    )
    fig.subplots_adjust(hspace=0.95, wspace=0.1, left=0.16, top=0.93, bottom=0.03)
    return finish_figure(
        fig, footer + " · red title: the prediction differs from the label", "fig1_gallery"
    )


def fig1_depth_distributions(depths: dict, n_probes: int, *, footer: str):
    """Distribution of PD per dataset (``depths``: name -> (n,) ints), in order of mean PD."""
    order = sorted(depths, key=lambda name: np.mean(depths[name]))
    fig, ax = plt.subplots(figsize=(WIDTH * 0.75, 3.4))
    for colour, name in zip(sns.color_palette("viridis", len(order)), order, strict=False):
        frequency = np.bincount(np.asarray(depths[name], dtype=np.int64), minlength=n_probes) / len(
            depths[name]
        )
        ax.plot(
            np.arange(n_probes),
            frequency,
            marker="o",
            color=colour,
            label=f"{name} (mean {np.mean(depths[name]):.2f})",
        )
    ax.set(xlabel="prediction depth", ylabel="fraction of points", xticks=np.arange(n_probes))
    ax.legend(title="ordered by mean PD", fontsize=8, title_fontsize=8)
    fig.tight_layout()
    return finish_figure(fig, footer, "fig1_distributions")


def probe_accuracy_panels(
    panels: dict, probe_labels: dict, *, footer: str, name: str, ylabel="k-NN probe accuracy"
):
    """One panel per key of ``panels`` ({title: {curve: (n_probes,)}}), probe names on the x
    axis."""
    n = len(panels)
    fig, axes = plt.subplots(
        1, n, figsize=(min(WIDTH, 3.6 * n + 0.6), 3.5), squeeze=False, sharey=True
    )
    for ax, (title, lines) in zip(axes[0], panels.items(), strict=False):
        for label, accuracy in lines.items():
            ax.plot(np.arange(len(accuracy)), accuracy, marker="o", markersize=3, label=label)
        ax.set_xticks(np.arange(len(probe_labels[title])))
        ax.set_xticklabels(probe_labels[title], rotation=70, fontsize=6.5)
        ax.set_title(title, fontsize=9)
    axes[0, 0].set_ylabel(ylabel)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return finish_figure(fig, footer, name)


def fig2_depth_correlations(names, matrices: dict, *, footer: str):
    """Pearson r of per-point PD between architectures (diagonal: between seeds), one heatmap per
    split."""
    fig, axes = plt.subplots(
        1, len(matrices), figsize=(min(WIDTH, 3.6 * len(matrices) + 0.4), 3.2), squeeze=False
    )
    for ax, (split, matrix) in zip(axes[0], matrices.items(), strict=False):
        sns.heatmap(
            matrix,
            annot=True,
            fmt=".2f",
            vmin=0,
            vmax=1,
            cmap="mako",
            xticklabels=names,
            yticklabels=names,
            cbar=ax is axes[0, -1],
            ax=ax,
            square=True,
            annot_kws={"fontsize": 8},
        )
        ax.set_title(f"{split} points", fontsize=9)
    fig.tight_layout()
    return finish_figure(
        fig, footer + " · diagonal: between random seeds of one architecture", "fig2_correlations"
    )


def fig2_mean_depth_pairs(mean_rescaled: dict, *, footer: str):
    """Fig. 2 right: per-point mean PD (rescaled to [0, 1]) of one architecture against another."""
    pairs = list(combinations(mean_rescaled, 2))
    fig, axes = plt.subplots(
        1, len(pairs), figsize=(min(WIDTH, 2.9 * len(pairs) + 0.6), 3.0), squeeze=False
    )
    bins = np.linspace(0, 1, 21)
    for ax, (a, b) in zip(axes[0], pairs, strict=False):
        image = hist2d(
            ax,
            mean_rescaled[a],
            mean_rescaled[b],
            x_bins=bins,
            y_bins=bins,
            xlabel=f"{a} mean PD",
            ylabel=f"{b} mean PD",
        )
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8)
        ax.set_aspect("equal")
    fig.colorbar(image, ax=axes, fraction=0.025, label="points (log)")
    return finish_figure(fig, footer + " · PD / max PD per architecture", "fig2_mean_depth_pairs")


def fig3_consistency_vs_depth(
    mean_depth_val, consistency, consensus_matches, *, max_depth: int, footer: str
):
    """Consistency against PD_val: all points, consensus = label, consensus ≠ label (log colour)."""
    x_bins, y_bins = (
        np.linspace(-0.5, max_depth + 0.5, 2 * max_depth + 2),
        np.linspace(-0.025, 1.025, 22),
    )
    panels = [
        ("all", np.ones_like(consensus_matches, dtype=bool)),
        ("consensus = label", consensus_matches),
        ("consensus ≠ label", ~consensus_matches),
    ]
    fig, axes, image = hist2d_panels(
        mean_depth_val,
        consistency,
        panels,
        x_bins=x_bins,
        y_bins=y_bins,
        height=3.0,
        xlabel="PD_val",
        ylabel="consistency Ĉ",
    )
    fig.colorbar(image, ax=axes, label="points (log)", fraction=0.02)
    return finish_figure(fig, footer, "fig3_consistency_vs_depth")


def fig4_consensus_consistency(
    panels: dict, *, max_depth: int, footer: str, bounds: dict | None = None
):
    """C* against PD per panel ({title: (depth, C*)}); with ``bounds``
    (:func:`pdlib.analysis.consensus_bounds`), the ensemble's lower envelope on the first panel and
    the mean C* per PD with its line on the second."""
    x_bins, y_bins = (
        np.linspace(-0.5, max_depth + 0.5, 2 * max_depth + 2),
        np.linspace(-0.025, 1.025, 22),
    )
    columns, rows = min(3, len(panels)), -(-len(panels) // 3)
    fig, axes = plt.subplots(
        rows, columns, figsize=(min(WIDTH, 3.2 * columns + 0.8), 3.0 * rows), squeeze=False
    )
    for ax, (title, (depth, cstar)) in zip(axes.flat, panels.items(), strict=False):
        image = hist2d(
            ax,
            np.asarray(depth, float),
            np.asarray(cstar, float),
            x_bins=x_bins,
            y_bins=y_bins,
            xlabel="prediction depth",
            ylabel="C*",
            title=title,
        )
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    fig.colorbar(image, ax=axes, fraction=0.025, label="points (log)")
    xs = np.array([0.0, 1.0])
    envelope = (bounds or {}).get("envelope")
    if envelope is not None and np.isfinite(envelope["slope"]):
        axes[0, 0].plot(
            xs * max_depth,
            envelope["intercept"] + envelope["slope"] * xs,
            color="crimson",
            lw=1.5,
            label=f"2 % envelope {envelope['intercept']:.2f} {envelope['slope']:+.2f}·PD/max",
        )
        axes[0, 0].legend(fontsize=7, loc="lower left")
    curve = (bounds or {}).get("mean_curve")
    if curve is not None and len(panels) > 1:
        ax = axes.flat[1]
        used = curve["count"] >= 20
        ax.plot(
            np.flatnonzero(used),
            curve["mean"][used],
            "o",
            color="black",
            ms=4,
            label="mean C* per PD",
        )
        if np.isfinite(curve["slope"]):
            ax.plot(
                xs * max_depth,
                curve["intercept"] + curve["slope"] * xs,
                color="crimson",
                lw=1.5,
                label=f"{curve['intercept']:.2f} {curve['slope']:+.2f}·PD/max",
            )
        ax.legend(fontsize=7, loc="lower left")
    return finish_figure(fig, footer, "fig4_consensus_consistency")


def fig4_accuracy_vs_depth(accuracy: dict, counts: dict, *, footer: str):
    """Accuracy of held-out predictions at each PD, one curve per key; marker area ∝ share of
    predictions."""
    fig, ax = plt.subplots(figsize=(WIDTH * 0.7, 3.3))
    for name, values in accuracy.items():
        depth = np.arange(len(values))
        (line,) = ax.plot(depth, values, lw=1, alpha=0.6)
        ax.scatter(
            depth,
            values,
            s=10 + 200 * counts[name] / counts[name].sum(),
            color=line.get_color(),
            label=name,
        )
    ax.set(xlabel="prediction depth", ylabel="held-out accuracy", ylim=(0, 1.02))
    ax.legend(fontsize=8, title="marker area ∝ share of predictions", title_fontsize=7)
    fig.tight_layout()
    return finish_figure(fig, footer, "fig4_accuracy_vs_depth")


def hinge_learning_curves(curves: dict, *, footer: str):
    """Training accuracy against full-batch step for each network ({name: (steps, accuracy)}): the
    0-Hinge network and its controls (the paper's Appendix A.7)."""
    fig, ax = plt.subplots(figsize=(WIDTH * 0.7, 3.2))
    for name, (steps, accuracy) in curves.items():
        ax.plot(steps, accuracy, lw=1.2, label=name)
    ax.set(xlabel="full-batch step", ylabel="training accuracy", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return finish_figure(fig, footer, "fig6_hinge_learning_curves")


def fig5_iteration_vs_depth(panels: dict, *, footer: str):
    """Mean rescaled iteration learned at each PD ({title: {curve: (mean (n_probes,), share
    (n_probes,), r)}})."""
    fig, axes = plt.subplots(
        1, len(panels), figsize=(min(WIDTH, 4.0 * len(panels)), 3.4), squeeze=False, sharey=True
    )
    for ax, (title, curves) in zip(axes[0], panels.items(), strict=False):
        for name, (mean, share, r) in curves.items():
            depth, keep = np.arange(len(mean)), share > 0
            (line,) = ax.plot(depth[keep], mean[keep], lw=1, alpha=0.6)
            ax.scatter(
                depth[keep],
                mean[keep],
                s=8 + 250 * share[keep],
                color=line.get_color(),
                label=f"{name}, r = {r:.2f}",
            )
        ax.set(xlabel="prediction depth")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, title="marker area ∝ share", title_fontsize=7)
    axes[0, 0].set_ylabel("mean iteration learned (rescaled)")
    fig.tight_layout()
    return finish_figure(fig, footer, "fig5_iteration_vs_depth")


def fig5_noise_curves(training: list, inference: list, probe_labels, *, footer: str):
    """Fig. 5 middle and right: training curve (per checkpoint) and inference curve (per probe), one
    line per seed."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDTH, 3.6), sharey=True)
    names = [name for name in training[0] if name != "steps"]
    colours = dict(zip(names, sns.color_palette("deep", len(names)), strict=False))
    for seed, (curves, probes) in enumerate(zip(training, inference, strict=False)):
        for name in names:
            left.plot(
                curves["steps"],
                curves[name],
                color=colours[name],
                alpha=0.8,
                lw=1.2,
                label=name if seed == 0 else None,
            )
            right.plot(
                np.arange(len(probes[name])),
                probes[name],
                color=colours[name],
                alpha=0.8,
                lw=1.2,
                marker=".",
            )
    left.set(xlabel="SGD step", ylabel="accuracy", ylim=(-0.02, 1.02))
    left.set_title("training learning curve", fontsize=9)
    right.set_xticks(np.arange(len(probe_labels)))
    right.set_xticklabels(probe_labels, rotation=70, fontsize=6.5)
    right.set_title("inference learning curve (k-NN probes)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.86))
    figure_legend(fig, left, ncol=2)
    return finish_figure(
        fig, footer + f" · {len(training)} seeds, one line each", "fig5_noise_curves"
    )


def fig6_margins(mean_depth, margins: dict, correlations: dict, *, max_depth: int, footer: str):
    """Fig. 6 left and middle: log10 margins against mean PD ({name: (n,)}; ``correlations``: {name:
    r})."""
    fig, axes = plt.subplots(1, len(margins), figsize=(WIDTH, 3.2), squeeze=False)
    for ax, (name, values) in zip(axes[0], margins.items(), strict=False):
        keep = np.isfinite(values) & (values > 0)
        image = hist2d(
            ax,
            mean_depth[keep],
            np.log10(values[keep]),
            x_bins=np.linspace(-0.5, max_depth + 0.5, 2 * max_depth + 2),
            y_bins=30,
            xlabel="mean prediction depth",
            ylabel=f"log10 {name}",
        )
        ax.set_title(f"{name}: r = {correlations[name]:.2f}", fontsize=9)
    fig.colorbar(image, ax=axes, fraction=0.025, label="points (log)")
    return finish_figure(fig, footer, "fig6_margins")


def sensitivity_depth_shift(
    mean_depth: dict, rank_correlation: dict, *, footer: str, name: str = "sensitivity"
):
    """Per variant (row): mean PD and the Spearman rank correlation of PD with the default."""
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(WIDTH, 0.4 * len(mean_depth) + 1.3), sharey=True
    )
    names = list(mean_depth)
    y = np.arange(len(names))
    left.barh(y, [mean_depth[n] for n in names], color="0.5")
    right.barh(y, [rank_correlation[n] for n in names], color="steelblue")
    left.set_yticks(y)
    left.set_yticklabels(names, fontsize=7)
    left.invert_yaxis()
    left.set(xlabel="mean PD")
    right.set(xlabel="rank correlation with the default", xlim=(0, 1.02))
    fig.tight_layout()
    return finish_figure(fig, footer, name)
