import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from camcore.confusion import confusion_matrix, pair_errors, plot_confusion, top_pair  # noqa: E402


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


def test_describe_pair_answers_from_the_counts():
    from camcore.confusion import describe_pair

    names = ("a", "b", "c", "d")
    c = confusion_matrix([0, 0, 1, 2, 2, 2, 3, 3], [0, 1, 1, 3, 3, 2, 2, 3], num_classes=4)
    assert describe_pair(c, "d", "c", names) == (
        "Yes: it is the most frequent confusion, ahead of a ↔ b (25% of the errors)")
    assert describe_pair(c, "a", "b", names) == "No: c ↔ d (75% of the errors) is more frequent"
