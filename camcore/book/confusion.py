"""Which classes a classifier mixes up: the confusion matrix, errors per pair of classes, a plot."""

from __future__ import annotations

import numpy as np

from camcore.data import CLASS_NAMES


def confusion_matrix(labels, predicted, num_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """Counts C[t, p] of images of true class t predicted as p (rows: true, columns: predicted)."""
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (np.asarray(labels), np.asarray(predicted)), 1)
    return confusion


def pair_errors(confusion: np.ndarray) -> np.ndarray:
    """Errors per unordered pair {a, b}, both directions: E[a, b] = C[a, b] + C[b, a] for a < b."""
    return np.triu(confusion + confusion.T, k=1)


def top_pair(confusion: np.ndarray, names=CLASS_NAMES):
    """The most confused unordered pair: ``(name_a, name_b, errors, share of all errors)``."""
    errors = pair_errors(confusion)
    a, b = np.unravel_index(errors.argmax(), errors.shape)
    return names[a], names[b], int(errors[a, b]), float(errors[a, b] / max(errors.sum(), 1))


def plot_confusion(confusion: np.ndarray, title: str, names=CLASS_NAMES):
    """The matrix as counts, coloured by the share of each true class; returns the Figure."""
    import matplotlib.pyplot as plt

    shares = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(confusion):
        ax.text(j, i, n, ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    fig.tight_layout()
    return fig


def describe_pair(confusion: np.ndarray, a: str, b: str, names=CLASS_NAMES) -> str:
    """A computed sentence: is {a, b} the most confused pair, and which pair comes next?

    Two error counts n1 and n2 are called different only when |n1 - n2| > 2 sqrt(n1 + n2),
    about two standard deviations of their difference if each count is Poisson (variance =
    count); otherwise the answer starts with "Not clearly".
    """
    errors = pair_errors(confusion)
    i, j = sorted((names.index(a), names.index(b)))
    others = errors.copy()
    others[i, j] = 0
    k, m = np.unravel_index(others.argmax(), others.shape)
    runner_up = (f"{names[k]} ↔ {names[m]} ({others[k, m] / max(errors.sum(), 1):.0%} of the "
                 "errors)")
    pair, runner = int(errors[i, j]), int(others.max())
    clear = abs(pair - runner) > 2 * np.sqrt(pair + runner)
    if pair > runner:
        return (f"Yes: it is the most frequent confusion, ahead of {runner_up}" if clear else
                f"Not clearly: it has the most errors here, but not measurably more than "
                f"{runner_up}")
    if pair < runner:
        return (f"No: {runner_up} is more frequent" if clear else
                f"Not clearly: {runner_up} has more errors here, but not measurably more")
    return f"No: {runner_up} is as frequent"
