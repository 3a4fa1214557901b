"""The bundle's pictures: training curves and the test confusion matrices."""

from __future__ import annotations

import math
from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: dict[str, list[float]], path: Path, title: str) -> None:
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = range(1, len(history["loss"]) + 1)
    ax_loss.plot(epochs, history["loss"], "o-", label="train")
    ax_loss.plot(epochs, history["val_loss"], "o-", label="validation")
    ax_loss.set(title="loss", xlabel="epoch")
    ax_acc.plot(epochs, history["accuracy"], "o-", label="train")
    ax_acc.plot(epochs, history["val_accuracy"], "o-", label="validation")
    ax_acc.set(title="accuracy", xlabel="epoch")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusions(confusions: dict[str, dict], path: Path, title: str) -> None:
    """One panel per test source (and pooled): counts, shaded by share of the true label."""
    import numpy as np

    plt = _pyplot()
    columns = min(3, len(confusions))
    rows = math.ceil(len(confusions) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.6 * rows), squeeze=False)
    for ax, (name, confusion) in zip(axes.flat, confusions.items(), strict=False):
        matrix = np.array(confusion["matrix"], dtype=float)
        labels = confusion["labels"]
        shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1.0)
        ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        for (i, j), count in np.ndenumerate(matrix):
            colour = "white" if shares[i, j] > 0.6 else "black"
            ax.text(j, i, f"{int(count)}", ha="center", va="center", color=colour, fontsize=9)
        ax.set(title=name, xlabel="predicted", ylabel="true")
        ax.set_xticks(range(len(labels)), labels, rotation=30)
        ax.set_yticks(range(len(labels)), labels)
    for ax in list(axes.flat)[len(confusions) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
