import matplotlib
import pytest

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from camcore.book.confusion import confusion_matrix, pair_errors, plot_confusion, top_pair  # noqa: E402


def test_confusion_pairs_and_top_pair_by_hand():
    labels = [0, 0, 1, 2, 2, 2, 3, 3]
    predicted = [0, 1, 1, 3, 3, 2, 2, 3]  # errors: 0->1 once, 2->3 twice, 3->2 once
    c = confusion_matrix(labels, predicted, num_classes=4)
    np.testing.assert_array_equal(c, [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 2], [0, 0, 1, 1]])
    e = pair_errors(c)
    assert e[2, 3] == 3 and e[0, 1] == 1 and e.sum() == 4 and np.all(np.tril(e) == 0)
    assert top_pair(c, names=("a", "b", "c", "d")) == ("c", "d", 3, 0.75)


def test_plot_confusion_has_one_label_per_cell():
    c = confusion_matrix([0, 1, 1], [0, 1, 0], num_classes=2)
    fig = plot_confusion(c, "t", names=("x", "y"))
    assert [t.get_text() for t in fig.axes[0].texts] == ["1", "0", "1", "1"]


def counts(pairs, names):
    """A confusion matrix with the given error count for each pair of classes."""
    c = np.zeros((len(names), len(names)), int)
    np.fill_diagonal(c, 100)
    for (a, b), n in pairs.items():
        c[names.index(a), names.index(b)] = n
    return c


@pytest.mark.parametrize("pair, runner, answer", [
    (60, 30, "Yes: it is the most frequent confusion, ahead of a ↔ b (33% of the errors)"),
    # 29 vs 17: 12 < 2 sqrt(46) = 13.6, within the counts' noise
    (29, 17, "Not clearly: it has the most errors here, but not measurably more than a ↔ b "
             "(37% of the errors)"),
    (30, 60, "No: a ↔ b (67% of the errors) is more frequent"),
    (17, 29, "Not clearly: a ↔ b (63% of the errors) has more errors here, but not "
             "measurably more"),
    (20, 20, "No: a ↔ b (50% of the errors) is as frequent"),
])
def test_describe_pair_answers_from_the_counts_and_their_noise(pair, runner, answer):
    from camcore.book.confusion import describe_pair

    names = ("a", "b", "c", "d")
    c = counts({("d", "c"): pair, ("a", "b"): runner}, names)
    assert describe_pair(c, "c", "d", names) == answer
