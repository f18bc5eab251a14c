"""The figures of the paper's Section 4 (difficulty types) and of the audit report: the
(PD_val, PD_train) plane, its corner galleries and the groups' probe-accuracy curves.

:mod:`pdlib.figures` re-exports them, so that chapters reach every figure there.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from pdlib.plotting import (
    WIDTH,
    blank_axes,
    figure_legend,
    finish_figure,
    hist2d_panels,
    show_image,
)

__all__ = ["fig7_difficulty_plane", "fig7_corner_gallery", "fig8_group_curves"]


def fig7_difficulty_plane(
    depth_val, depth_train, consensus_matches, *, max_depth: int, footer: str, groups: dict
):
    """PD_val against PD_train (rescaled, log colour) with each corner group's region outlined.

    A corner group is the ``n`` points nearest its corner, so it is exactly the points inside the
    quarter circle around the corner through its farthest member, which is what is drawn.
    """
    from pdlib.difficulty import CORNERS, corner_distances

    x, y = depth_val / max_depth, depth_train / max_depth
    edges = np.linspace(-0.5 / max_depth, 1 + 0.5 / max_depth, 2 * max_depth + 2)
    panels = [
        ("all points", np.ones_like(consensus_matches, dtype=bool)),
        ("consensus ≠ label", ~consensus_matches),
        ("consensus = label", consensus_matches),
    ]
    fig, axes, image = hist2d_panels(
        x,
        y,
        panels,
        x_bins=edges,
        y_bins=edges,
        height=3.3,
        xlabel="PD_val / max",
        ylabel="PD_train / max",
    )
    angle = np.linspace(0, 2 * np.pi, 200)
    distances = dict(zip(CORNERS, corner_distances(x, y, 1), strict=True))  # x, y are rescaled
    for colour, (name, index) in zip(sns.color_palette("bright", 4), groups.items(), strict=False):
        cx, cy = CORNERS[name]
        radius = distances[name][index].max() if len(index) else 0
        arc_x, arc_y = cx + radius * np.cos(angle), cy + radius * np.sin(angle)
        inside = (arc_x >= -0.02) & (arc_x <= 1.02) & (arc_y >= -0.02) & (arc_y <= 1.02)
        axes[0].plot(
            np.where(inside, arc_x, np.nan),
            np.where(inside, arc_y, np.nan),
            color=colour,
            lw=1.6,
            label=name,
        )
    for ax in axes:
        ax.set(xlim=(edges[0], edges[-1]), ylim=(edges[0], edges[-1]), aspect="equal")
    figure_legend(fig, axes[0], ncol=4, top=False, x=0.45, y=0.93)
    fig.colorbar(image, ax=axes, label="points (log)", fraction=0.02)
    return finish_figure(fig, footer + " · outlines: the corner groups", "fig7_difficulty_plane")


def fig7_corner_gallery(
    images, groups: dict, labels, consensus, class_names, *, footer: str, n_images: int = 6
):
    """Per corner group (row), its nearest points, captioned with label and consensus class."""
    shown = [point for index in groups.values() for point in index[:n_images]]
    # A gallery of one class titles each image with its consensus only: two class names overflow.
    one_label = len({int(labels[point]) for point in shown}) == 1
    # Rows as tall as an image plus its title (inches), so that the images fill the width.
    width, left, right = WIDTH * 0.85, 0.25, 0.98
    cell, title = width * (right - left) / n_images * 0.9, 0.2 if one_label else 0.36
    height = len(groups) * (cell + title) + 0.1
    fig, axes = plt.subplots(len(groups), n_images, figsize=(width, height), squeeze=False)
    for row, (name, index) in enumerate(groups.items()):
        for col, ax in enumerate(axes[row]):
            blank_axes(ax)
            if col < len(index):
                point = index[col]
                show_image(ax, images[point])
                agreed = class_names[consensus[point]] if consensus[point] >= 0 else "none"
                ax.set_title(
                    agreed if one_label else f"{class_names[labels[point]]}\n→ {agreed}",
                    fontsize=6.5,
                    color="crimson" if consensus[point] != labels[point] else "black",
                )
        axes[row, 0].set_ylabel(
            name.replace(" the label", "\nthe label").replace(" a different", "\na different"),
            fontsize=7,
            rotation=0,
            ha="right",
            va="center",
        )
    fig.subplots_adjust(
        left=left,
        right=right,
        top=1 - title / height,
        bottom=0.05 / height,
        hspace=title / cell,
        wspace=0.1,
    )
    key = (
        f"titles: consensus class (every image is labelled {class_names[labels[shown[0]]]})"
        if one_label and shown
        else "titles: label → consensus class"
    )
    return finish_figure(
        fig, f"{footer} · {key}; red: consensus differs from the label", "fig7_corner_gallery"
    )


def fig8_group_curves(curves: dict, probe_labels, *, footer: str):
    """Fig. 8: k-NN confidence (solid), accuracy (dotted) per group and probe;
    ``curves[group][target]``."""
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.6), sharey=True)
    x = np.arange(len(probe_labels))
    for ax, target in zip(axes, ("ground truth", "consensus"), strict=False):
        for colour, group in zip(sns.color_palette("bright", len(curves)), curves, strict=False):
            ax.plot(
                x, curves[group][target]["confidence"], "-", color=colour, marker=".", label=group
            )
            ax.plot(x, curves[group][target]["accuracy"], ":", color=colour)
        ax.set_title(f"{target} class", fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(probe_labels, rotation=70, fontsize=6.5)
    axes[0].set(ylabel="confidence (solid), accuracy (dotted)", ylim=(-0.02, 1.02))
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    figure_legend(fig, axes[0], ncol=2)
    return finish_figure(fig, footer + " · validation-split appearances", "fig8_group_curves")
