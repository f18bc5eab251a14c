"""One function per paper figure. They plot arrays; they never train.

Every figure carries a footer naming the profile, dataset, architecture and number of
models behind it. Set ``PDLIB_FIGURES=<folder>`` to also save each figure there as PNG
(the single switch for saving).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

__all__ = [
    "display_images",
    "fig1_depth_gallery",
    "fig1_depth_distributions",
    "fig1_probe_accuracy",
    "fig2_depth_correlations",
    "fig2_mean_depth_histogram",
    "fig3_consistency_vs_depth",
    "fig4_consensus_consistency",
    "fig4_accuracy_vs_depth",
    "fig5_iteration_vs_depth",
    "fig5_noise_curves",
    "fig6_margins",
    "fig6_zero_hinge",
    "training_curves",
    "fig7_difficulty_plane",
    "fig7_corner_gallery",
    "fig8_group_curves",
    "sensitivity_depth_shift",
]

sns.set_theme(context="notebook", style="whitegrid")


def _finish(fig, footer: str, name: str):
    """Add the provenance footer and save when ``PDLIB_FIGURES`` is set."""
    fig.text(0.5, 0.0, footer, ha="center", va="top", fontsize=8, color="0.35")
    folder = os.environ.get("PDLIB_FIGURES")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(folder) / f"{name}.png", dpi=150, bbox_inches="tight")
    return fig


def display_images(inputs, mean, std) -> np.ndarray:
    """Undo the normalisation for display.

    Parameters
    ----------
    inputs : Tensor or ndarray, shape (n, C, H, W)
    mean, std : sequence of float, length C

    Returns
    -------
    ndarray of float, shape (n, H, W) for C == 1 or (n, H, W, 3), values in [0, 1]
    """
    x = np.asarray(inputs, dtype=np.float64)
    x = x * np.asarray(std)[None, :, None, None] + np.asarray(mean)[None, :, None, None]
    x = np.clip(x, 0, 1)
    return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)


def fig1_depth_gallery(images, labels, predictions, depth, class_names, *, footer: str,
                       n_per_side: int = 4, classes=None, seed: int = 0):
    """Per class, the examples with the lowest and with the highest prediction depth.

    Parameters
    ----------
    images : ndarray, shape (n, H, W) or (n, H, W, 3), values in [0, 1]
    labels, predictions, depth : ndarray of int, shape (n,)
        Ground truth, network prediction and prediction depth (or mean depth).
    class_names : sequence of str
    footer : str
        Profile, dataset, architecture and number of models.
    n_per_side : int
        Images in each of the two groups per class.
    classes : sequence of int, optional
        Classes to show (rows); all by default.
    seed : int
        Breaks ties in depth at random but reproducibly.
    """
    classes = range(len(class_names)) if classes is None else classes
    rng = np.random.default_rng(seed)
    classes = list(classes)
    fig, axes = plt.subplots(len(classes), 2 * n_per_side + 1, figsize=(1.25 * (2 * n_per_side + 1), 1.45 * len(classes)),
                             squeeze=False, gridspec_kw={"width_ratios": [1] * n_per_side + [0.25] + [1] * n_per_side})
    for row, c in enumerate(classes):
        members = np.flatnonzero(labels == c)
        # Random tie-break so that equal depths do not simply show dataset order.
        order = members[np.lexsort((rng.random(len(members)), depth[members]))]
        chosen = list(order[:n_per_side]) + [None] + list(order[::-1][:n_per_side][::-1])
        for col, index in enumerate(chosen):
            ax = axes[row, col]
            ax.set_xticks([]), ax.set_yticks([])
            ax.grid(False)
            if index is None:
                ax.axis("off")
                continue
            ax.imshow(images[index], cmap="gray_r" if images.ndim == 3 else None, vmin=0, vmax=1)
            wrong = predictions[index] != labels[index]
            ax.set_title(f"PD {depth[index]:.3g}\npred {class_names[predictions[index]]}", fontsize=6.5,
                         color="crimson" if wrong else "black")
            for spine in ax.spines.values():
                spine.set_visible(False)
        axes[row, 0].set_ylabel(class_names[c], fontsize=8, rotation=0, ha="right", va="center")
    axes[0, 0].annotate("lowest prediction depth", (0, 1.9), xycoords="axes fraction", fontsize=9, weight="bold")
    axes[0, n_per_side + 1].annotate("highest prediction depth", (0, 1.9), xycoords="axes fraction", fontsize=9, weight="bold")
    fig.subplots_adjust(hspace=0.9, wspace=0.08, bottom=0.02, top=0.94)
    return _finish(fig, footer + "   (red title: the network's prediction differs from the label)", "fig1_gallery")


def fig1_depth_distributions(depths: dict, n_probes: int, *, footer: str):
    """Distribution of prediction depth per dataset, in order of mean depth.

    Parameters
    ----------
    depths : dict of str to ndarray of int, shape (n,)
        Prediction depth of each point, per dataset (same architecture).
    n_probes : int
        Probes of the architecture; PD takes values 0 .. n_probes - 1.
    footer : str
    """
    order = sorted(depths, key=lambda name: np.mean(depths[name]))
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    bins = np.arange(n_probes)
    palette = sns.color_palette("viridis", len(order))
    for colour, name in zip(palette, order):
        frequency = np.bincount(np.asarray(depths[name], dtype=np.int64), minlength=n_probes) / len(depths[name])
        ax.plot(bins, frequency, marker="o", color=colour, label=f"{name} (mean {np.mean(depths[name]):.2f})")
    ax.set_xlabel("prediction depth")
    ax.set_ylabel("fraction of points")
    ax.set_xticks(bins)
    ax.legend(title="dataset, ordered by mean PD", fontsize=8, title_fontsize=9)
    fig.tight_layout()
    return _finish(fig, footer, "fig1_distributions")


def _probe_accuracy_panels(panels: dict, probe_labels, *, footer: str, name: str, width: float):
    """One panel per key of ``panels``, one line per curve: accuracy at each probe."""
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 3.5), squeeze=False, sharey=True)
    for ax, (title, lines) in zip(axes[0], panels.items()):
        for label, accuracy in lines.items():
            ax.plot(np.arange(len(accuracy)), accuracy, marker="o", label=label)
        ax.set_xticks(np.arange(len(probe_labels[title])))
        ax.set_xticklabels(probe_labels[title], rotation=65, fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("probe")
    axes[0, 0].set_ylabel("k-NN probe accuracy")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return _finish(fig, footer, name)


def fig1_probe_accuracy(curves: dict, probe_labels, *, footer: str):
    """k-NN probe accuracy layer by layer.

    Parameters
    ----------
    curves : dict of str to dict of str to ndarray, shape (n_probes,)
        ``curves[model][split]`` accuracy per probe, e.g. splits "train (leave-one-out)"
        and "validation".
    probe_labels : dict of str to sequence of str
        Probe names per model, for the x axis (models may have different depths).
    footer : str
    """
    return _probe_accuracy_panels(curves, probe_labels, footer=footer, name="fig1_probe_accuracy", width=4.2)


def fig2_depth_correlations(names, matrices: dict, *, footer: str):
    """Pearson correlation of per-example PD between architectures and seeds.

    Parameters
    ----------
    names : sequence of str
        Group (architecture) names, the matrix rows and columns.
    matrices : dict of str to ndarray, shape (n_groups, n_groups)
        One matrix per split (e.g. "train", "validation"); diagonal = across seeds.
    footer : str
    """
    fig, axes = plt.subplots(1, len(matrices), figsize=(3.9 * len(matrices), 3.4), squeeze=False)
    for ax, (split, matrix) in zip(axes[0], matrices.items()):
        sns.heatmap(matrix, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="mako", xticklabels=names,
                    yticklabels=names, cbar=ax is axes[0, -1], ax=ax, square=True)
        ax.set_title(f"{split} split")
    fig.tight_layout()
    return _finish(fig, footer + "   (diagonal: between random seeds of one architecture)", "fig2_correlations")


def fig2_mean_depth_histogram(mean_rescaled: dict, *, footer: str):
    """Histogram of ensemble-mean prediction depth, rescaled to [0, 1] per architecture.

    Parameters
    ----------
    mean_rescaled : dict of str to ndarray of float, shape (n,)
        Per architecture, each point's mean PD over its runs divided by the maximum PD.
    footer : str
    """
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    bins = np.linspace(0, 1, 21)
    for name, values in mean_rescaled.items():
        ax.hist(values, bins=bins, histtype="step", linewidth=2, label=f"{name} (mean {np.mean(values):.2f})")
    ax.set_yscale("log")
    ax.set_xlabel("mean prediction depth / maximum depth")
    ax.set_ylabel("number of points")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _finish(fig, footer, "fig2_mean_depth_histogram")


def _hist2d(ax, x, y, *, x_label, y_label, title, x_bins, y_bins=None):
    """2-D histogram with a logarithmic colour scale; returns the image for a colour bar."""
    from matplotlib.colors import LogNorm

    keep = np.isfinite(x) & np.isfinite(y)
    y_bins = np.linspace(-0.025, 1.025, 22) if y_bins is None else y_bins
    counts, xe, ye = np.histogram2d(x[keep], y[keep], bins=[x_bins, y_bins])
    image = ax.pcolormesh(xe, ye, counts.T, norm=LogNorm(vmin=1, vmax=max(2, counts.max())), cmap="viridis")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(f"{title} (n = {int(keep.sum())})", fontsize=10)
    return image


def fig3_consistency_vs_depth(mean_depth_val, consistency, consensus_matches, *, max_depth: int, footer: str):
    """Consistency score against mean validation PD: all points, consensus = label, consensus != label.

    Parameters
    ----------
    mean_depth_val : ndarray of float, shape (n,)
        Each point's mean PD over the models that held it out (PD_val).
    consistency : ndarray of float, shape (n,)
        Consistency score (Eq. 1).
    consensus_matches : ndarray of bool, shape (n,)
        Whether the consensus class equals the ground truth.
    max_depth : int
        Largest possible PD (number of probes - 1).
    footer : str
    """
    x_bins = np.linspace(-0.5, max_depth + 0.5, 2 * max_depth + 2)
    panels = [("all points", np.ones_like(consensus_matches, dtype=bool)),
              ("consensus = ground truth", consensus_matches), ("consensus ≠ ground truth", ~consensus_matches)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for ax, (title, mask) in zip(axes, panels):
        image = _hist2d(ax, mean_depth_val[mask], consistency[mask], x_label="mean prediction depth (validation)",
                        y_label="consistency score" if ax is axes[0] else "", title=title, x_bins=x_bins)
    fig.subplots_adjust(bottom=0.2)  # room for the footer below the axis labels
    fig.colorbar(image, ax=axes, label="points (log scale)", fraction=0.02)
    return _finish(fig, footer, "fig3_consistency_vs_depth")


def fig4_consensus_consistency(panels: dict, *, max_depth: int, footer: str, bound: dict | None = None):
    """Consensus-consistency against prediction depth, one 2-D histogram per panel.

    Parameters
    ----------
    panels : dict of str to (ndarray, ndarray)
        Title to (prediction depth, consensus-consistency), each of shape (n,).
    max_depth : int
    footer : str
    bound : dict, optional
        :func:`pdlib.metrics.lower_envelope` of the first panel, drawn as a line.
    """
    x_bins = np.linspace(-0.5, max_depth + 0.5, 2 * max_depth + 2)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (title, (depth, consistency)) in zip(axes[0], panels.items()):
        image = _hist2d(ax, np.asarray(depth, float), np.asarray(consistency, float), x_bins=x_bins,
                        x_label="prediction depth", y_label="consensus-consistency", title=title)
        fig.colorbar(image, ax=ax, fraction=0.05)
    if bound is not None and np.isfinite(bound["slope"]):
        ax = axes[0, 0]
        xs = np.array([0, max_depth])
        ax.plot(xs, bound["intercept"] + bound["slope"] * xs, color="crimson", lw=1.5,
                label=f"lower bound {bound['intercept']:.2f} {bound['slope']:+.3f}·PD")
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return _finish(fig, footer, "fig4_consensus_consistency")


def fig4_accuracy_vs_depth(accuracy: dict, counts: dict, *, footer: str):
    """Accuracy of held-out predictions at each prediction depth.

    Parameters
    ----------
    accuracy, counts : dict of str to ndarray, shape (n_probes,)
        Per curve (e.g. architecture): accuracy and number of predictions at each PD.
    footer : str
    """
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for name, values in accuracy.items():
        depth = np.arange(len(values))
        sizes = 10 + 200 * counts[name] / counts[name].sum()
        ax.plot(depth, values, lw=1, alpha=0.6)
        ax.scatter(depth, values, s=sizes, label=name)
    ax.set_xlabel("prediction depth")
    ax.set_ylabel("accuracy (held-out predictions)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, title="marker area ∝ fraction of predictions", title_fontsize=8)
    fig.tight_layout()
    return _finish(fig, footer, "fig4_accuracy_vs_depth")


# --- Section 3.2 -------------------------------------------------------------------------------

def fig5_iteration_vs_depth(panels: dict, *, footer: str):
    """Mean iteration learned (rescaled) at each prediction depth; marker area ∝ fraction of points.

    Parameters
    ----------
    panels : dict of str to dict of str to (ndarray, ndarray, float)
        ``panels[title][curve] = (mean iteration per PD value (n_probes,), fraction of
        appearances per PD value (n_probes,), Pearson r)``, e.g. titles "validation
        split" / "training split" and curves per architecture and dataset.
    footer : str
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.7), squeeze=False, sharey=True)
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for name, (mean_iteration, fraction, r) in curves.items():
            depth = np.arange(len(mean_iteration))
            keep = fraction > 0
            line, = ax.plot(depth[keep], mean_iteration[keep], lw=1, alpha=0.6)
            ax.scatter(depth[keep], mean_iteration[keep], s=10 + 300 * fraction[keep], color=line.get_color(),
                       label=f"{name} (r = {r:.2f})")
        ax.set_xlabel("prediction depth")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, title="marker area ∝ fraction of appearances", title_fontsize=7)
    axes[0, 0].set_ylabel("mean iteration learned (rescaled)")
    fig.tight_layout()
    return _finish(fig, footer, "fig5_iteration_vs_depth")


def fig5_noise_curves(training: list, inference: list, probe_labels, *, footer: str):
    """Fig. 5 middle and right: the training and the inference learning curves under label noise.

    Parameters
    ----------
    training : list of dict
        Per seed, :func:`pdlib.experiments.noise_learning_curves` (``steps`` and a curve per set).
    inference : list of dict
        Per seed, :func:`pdlib.experiments.noise_inference_curves` (a curve per set, per probe).
    probe_labels : sequence of str
    footer : str
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 4.0), sharey=True)
    names = [name for name in training[0] if name != "steps"]
    colours = dict(zip(names, sns.color_palette("deep", len(names))))
    for seed, (curves, probes) in enumerate(zip(training, inference)):
        for name in names:
            label = name if seed == 0 else None
            left.plot(curves["steps"], curves[name], color=colours[name], alpha=0.8, lw=1.3, label=label)
            right.plot(np.arange(len(probes[name])), probes[name], color=colours[name], alpha=0.8, lw=1.3, marker=".")
    left.set_xlabel("SGD step")
    left.set_ylabel("accuracy")
    left.set_title("training learning curve (the network over training)", fontsize=10)
    right.set_xticks(np.arange(len(probe_labels)))
    right.set_xticklabels(probe_labels, rotation=60, fontsize=8)
    right.set_xlabel("probe")
    right.set_title("inference learning curve (k-NN probes over depth)", fontsize=10)
    left.set_ylim(-0.02, 1.02)
    left.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    return _finish(fig, footer + f"   ({len(training)} seeds, one line each)", "fig5_noise_curves")


# --- Section 3.3 -------------------------------------------------------------------------------

def fig6_margins(mean_depth, margins: dict, correlations: dict, *, max_depth: int, footer: str):
    """Fig. 6 left and middle: margins (log scale) against mean prediction depth.

    Parameters
    ----------
    mean_depth : ndarray of float, shape (n,)
        Mean PD of each test point over the networks.
    margins : dict of str to ndarray, shape (n,)
        Per margin kind, the geometric mean over the networks.
    correlations : dict of str to float
        Pearson r of mean PD with log10 of each margin, for the titles.
    max_depth : int
    footer : str
    """
    from matplotlib.colors import LogNorm

    fig, axes = plt.subplots(1, len(margins), figsize=(5.2 * len(margins), 3.8), squeeze=False)
    for ax, (name, values) in zip(axes[0], margins.items()):
        keep = np.isfinite(values) & (values > 0)
        y = np.log10(values[keep])
        x_bins = np.linspace(-0.5, max_depth + 0.5, 2 * max_depth + 2)
        counts, xe, ye = np.histogram2d(mean_depth[keep], y, bins=[x_bins, 30])
        image = ax.pcolormesh(xe, ye, counts.T, norm=LogNorm(vmin=1, vmax=max(2, counts.max())), cmap="viridis")
        ax.set_xlabel("mean prediction depth")
        ax.set_ylabel(f"log10 {name}")
        ax.set_title(f"{name}: r = {correlations[name]:.2f}", fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.05, label="points (log scale)")
    fig.tight_layout()
    return _finish(fig, footer, "fig6_margins")


def fig6_zero_hinge(curves: dict, probe_labels, *, footer: str):
    """Fig. 6 right: k-NN probe accuracy layer by layer for untrained, 0-Hinge and cross-entropy networks.

    Parameters
    ----------
    curves : dict of str to dict of str to ndarray, shape (n_probes,)
        ``curves[network][split]``, splits e.g. "train (leave-one-out)" and "test".
    probe_labels : sequence of str
    footer : str
    """
    by_split = {split: {network: values[split] for network, values in curves.items()}
                for split in next(iter(curves.values()))}
    return _probe_accuracy_panels(by_split, {split: probe_labels for split in by_split}, footer=footer,
                                  name="fig6_zero_hinge", width=5.4)


def training_curves(curves: dict, *, footer: str, name: str = "training_curves"):
    """Loss and training accuracy over optimisation steps, one line per network.

    Parameters
    ----------
    curves : dict of str to dict
        Per network: ``loss_steps`` and ``loss`` (mean loss per epoch, at the step ending
        it), ``accuracy_steps`` and ``accuracy`` (training accuracy at checkpoints).
    footer : str
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.4))
    for network, curve in curves.items():
        left.plot(curve["loss_steps"], curve["loss"], label=network)
        right.plot(curve["accuracy_steps"], curve["accuracy"], marker=".", label=network)
    left.set_yscale("log")  # a loss of exactly 0 (0-Hinge at the end) is not drawn
    left.set_xlim(left=0)
    right.set_xlim(left=0)
    left.set_xlabel("optimisation step")
    right.set_xlabel("optimisation step")
    left.set_ylabel("training loss (own loss)")
    right.set_ylabel("training accuracy")
    right.set_ylim(-0.02, 1.02)
    left.legend(fontsize=8)
    fig.tight_layout()
    return _finish(fig, footer, name)


# --- Section 4 ---------------------------------------------------------------------------------

def fig7_difficulty_plane(depth_val, depth_train, consensus_matches, *, max_depth: int, footer: str,
                          groups: dict | None = None):
    """PD_val against PD_train (rescaled), log colour: all points, consensus ≠ and = ground truth.

    Parameters
    ----------
    depth_val, depth_train : ndarray of float, shape (n,)
    consensus_matches : ndarray of bool, shape (n,)
    max_depth : int
    footer : str
    groups : dict of str to ndarray of int, optional
        Corner groups (:func:`pdlib.difficulty.corner_groups`), outlined on the first panel.
    """
    x, y = depth_val / max_depth, depth_train / max_depth
    edges = np.linspace(-0.5 / max_depth, 1 + 0.5 / max_depth, 2 * max_depth + 2)
    panels = [("all points", np.ones_like(consensus_matches, dtype=bool)),
              ("consensus ≠ ground truth", ~consensus_matches), ("consensus = ground truth", consensus_matches)]
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.0), sharey=True)
    for ax, (title, mask) in zip(axes, panels):
        image = _hist2d(ax, x[mask], y[mask], x_label="PD_val / max PD", y_label="PD_train / max PD" if ax is axes[0] else "",
                        title=title, x_bins=edges, y_bins=edges)
    if groups:
        markers = dict(zip(groups, ("o", "s", "^", "D")))
        for name, index in groups.items():
            axes[0].scatter(x[index], y[index], s=6, marker=markers[name], facecolors="none", edgecolors="crimson",
                            linewidths=0.5, label=name)
        axes[0].legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    fig.subplots_adjust(bottom=0.2)  # room for the footer below the axis labels
    fig.colorbar(image, ax=axes, label="points (log scale)", fraction=0.02)
    return _finish(fig, footer, "fig7_difficulty_plane")


def fig7_corner_gallery(images, groups: dict, labels, consensus, class_names, *, footer: str, n_images: int = 8):
    """For each corner group, its ``n_images`` closest points, captioned with label and consensus class.

    Parameters
    ----------
    images : ndarray, shape (n, H, W) or (n, H, W, 3), values in [0, 1]
    groups : dict of str to ndarray of int
        Corner name to point indices, closest first (one class's points, typically).
    labels, consensus : ndarray of int, shape (n,)
    class_names : sequence of str
    footer : str
    n_images : int
    """
    fig, axes = plt.subplots(len(groups), n_images, figsize=(1.3 * n_images, 1.75 * len(groups)), squeeze=False)
    for row, (name, index) in enumerate(groups.items()):
        for col in range(n_images):
            ax = axes[row, col]
            ax.set_xticks([]), ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col >= len(index):
                ax.axis("off")
                continue
            point = index[col]
            ax.imshow(images[point], cmap="gray_r" if images.ndim == 3 else None, vmin=0, vmax=1)
            differs = consensus[point] != labels[point]
            ax.set_title(f"label {class_names[labels[point]]}\nconsensus {class_names[consensus[point]]}",
                         fontsize=6, color="crimson" if differs else "black")
        axes[row, 0].set_ylabel(name.replace(" the label", "\nthe label"), fontsize=7, rotation=0, ha="right",
                                va="center")
    fig.subplots_adjust(hspace=0.75, wspace=0.08, left=0.2)
    return _finish(fig, footer + "   (red: consensus differs from the label)", "fig7_corner_gallery")


def fig8_group_curves(curves: dict, probe_labels, *, footer: str):
    """Fig. 8: per corner group, k-NN probe confidence and accuracy layer by layer.

    Parameters
    ----------
    curves : dict of str to dict of str to dict
        ``curves[group][target]`` is :func:`pdlib.difficulty.group_probe_curves` output, for
        targets "ground truth" and "consensus".
    probe_labels : sequence of str
    footer : str
    """
    groups = list(curves)
    fig, axes = plt.subplots(2, len(groups), figsize=(3.6 * len(groups), 5.8), squeeze=False, sharex=True, sharey=True)
    x = np.arange(len(probe_labels))
    for col, group in enumerate(groups):
        for target, style in (("ground truth", "-"), ("consensus", "--")):
            values = curves[group][target]
            axes[0, col].plot(x, values["confidence"], style, marker=".", label=f"{target} class")
            axes[1, col].plot(x, values["accuracy"], style, marker=".", label=f"{target} class")
        axes[0, col].set_title(group.replace(" the label", "\nthe label"), fontsize=9)
        axes[1, col].set_xticks(x)
        axes[1, col].set_xticklabels(probe_labels, rotation=70, fontsize=7)
    axes[0, 0].set_ylabel("mean k-NN confidence")
    axes[1, 0].set_ylabel("k-NN accuracy")
    axes[0, 0].set_ylim(-0.02, 1.02)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return _finish(fig, footer + "   (validation-split appearances)", "fig8_group_curves")


# --- Appendix ----------------------------------------------------------------------------------

def sensitivity_depth_shift(mean_depth: dict, rank_correlation: dict, *, footer: str, name: str = "sensitivity"):
    """Mean PD and rank correlation with the default, per variant (two bar charts).

    Parameters
    ----------
    mean_depth, rank_correlation : dict of str to float
        Per variant, in display order.
    footer : str
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(mean_depth) + 1.4), sharey=True)
    names = list(mean_depth)
    y = np.arange(len(names))
    left.barh(y, [mean_depth[n] for n in names], color="0.5")
    right.barh(y, [rank_correlation[n] for n in names], color="steelblue")
    left.set_yticks(y)
    left.set_yticklabels(names, fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("mean PD")
    right.set_xlabel("Spearman rank correlation of PD with the default")
    right.set_xlim(0, 1.02)
    fig.tight_layout()
    return _finish(fig, footer, name)
