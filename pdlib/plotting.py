"""What every figure shares: the width of the book's column, the theme, the provenance footer, and
images shown as a reader sees them.

``PDLIB_FIGURES=<folder>`` saves each finished figure as PNG.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.colors import LogNorm

__all__ = [
    "figure_legend",
    "WIDTH",
    "finish_figure",
    "blank_axes",
    "display_images",
    "show_image",
    "hist2d",
    "hist2d_panels",
]

#: Widest figure, in inches: the book's text column at 100 dpi.
WIDTH = 8.0
sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)


def figure_legend(fig, ax, *, ncol: int, top: bool = True, x: float = 0.5, y: float = 1.0):
    """One legend for the whole figure, from ``ax``'s labelled artists, centred above the panels
    (``top``) or with its lower edge at ``y``."""
    fig.legend(
        *ax.get_legend_handles_labels(),
        loc="upper center" if top else "lower center",
        ncol=ncol,
        fontsize=7,
        bbox_to_anchor=(x, y),
        frameon=False,
    )


def finish_figure(fig, footer: str, name: str):
    """Add the provenance footer below everything and save when ``PDLIB_FIGURES`` is set."""
    # Axis labels can hang below the figure's edge; lay out first and start under the lowest one.
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    boxes = [ax.get_tightbbox(renderer) for ax in fig.axes]
    boxes += [
        artist.get_window_extent(renderer)
        for artist in fig.legends + fig.texts
        if artist.get_visible()
    ]
    bottom = min(
        [box.transformed(fig.transFigure.inverted()).y0 for box in boxes if box is not None]
        or [0.0]
    )
    fig.text(0.5, bottom - 0.01, footer, ha="center", va="top", fontsize=8, color="0.3", wrap=True)
    folder = os.environ.get("PDLIB_FIGURES")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(folder) / f"{name}.png", dpi=150, bbox_inches="tight")
    return fig


def blank_axes(ax) -> None:
    ax.set_xticks([]), ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def display_images(inputs, mean, std) -> np.ndarray:
    """Undo the normalisation: (n, C, H, W) -> (n, H, W) for C = 1 or (n, H, W, 3), values in [0,
    1]."""
    x = (
        np.asarray(inputs, dtype=np.float64) * np.asarray(std)[None, :, None, None]
        + np.asarray(mean)[None, :, None, None]
    )
    x = np.clip(x, 0, 1)
    return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)


def show_image(ax, image) -> None:
    ax.imshow(image, cmap="gray_r" if image.ndim == 2 else None, vmin=0, vmax=1)
    blank_axes(ax)


def hist2d(ax, x, y, *, x_bins, y_bins, xlabel="", ylabel="", title=""):
    """2-D histogram with a logarithmic colour scale; returns the image for a colour bar."""
    keep = np.isfinite(x) & np.isfinite(y)
    counts, xe, ye = np.histogram2d(x[keep], y[keep], bins=[x_bins, y_bins])
    image = ax.pcolormesh(
        xe, ye, counts.T, norm=LogNorm(vmin=1, vmax=max(2, counts.max())), cmap="viridis"
    )
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(f"{title} (n = {int(keep.sum()):,d})" if title else "", fontsize=9)
    return image


def hist2d_panels(x, y, panels, *, x_bins, y_bins, xlabel: str, ylabel: str, height: float):
    """One :func:`hist2d` of ``(x[mask], y[mask])`` per ``(title, mask)`` of ``panels``, side by
    side on a shared y axis (labelled on the first). Returns ``(fig, axes, image)``; ``image``, the
    last panel's, carries the colour scale."""
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH, height), sharey=True)
    for ax, (title, mask) in zip(axes, panels, strict=True):
        image = hist2d(
            ax,
            x[mask],
            y[mask],
            x_bins=x_bins,
            y_bins=y_bins,
            title=title,
            xlabel=xlabel,
            ylabel=ylabel if ax is axes[0] else "",
        )
    return fig, axes, image
