"""Shared fixtures over the toy models of toys.py."""

import numpy as np
import pytest
from toys import copy_weights, make_flat, make_nested, make_sequential, smooth_images


@pytest.fixture(scope="session")
def gap_dense_model():
    return make_flat()


@pytest.fixture(scope="session")
def nested_model(gap_dense_model):
    return copy_weights(gap_dense_model, make_nested())


@pytest.fixture(scope="session")
def sequential_model(gap_dense_model):
    return copy_weights(gap_dense_model, make_sequential())


@pytest.fixture(scope="session")
def toy_models(gap_dense_model, nested_model, sequential_model):
    """The three variants, same weights: {name: (model, target layer path)}."""
    return {"flat": (gap_dense_model, "conv"),
            "nested": (nested_model, "backbone/conv"),
            "sequential": (sequential_model, "backbone/conv")}


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def images():
    """Three raw 32x32 RGB images for the toy models (predicted classes 2, 3, 0)."""
    return smooth_images(3, seed=10)  # seed 10: the three images have different argmax classes
