"""Cut a Keras classifier at a target layer into ``features: image -> A`` and ``head: A -> y``.

Every method needs the activations A of one layer and the class *logits* y (scores before the
softmax). camcore gets both without cloning or mutating the user's model: it builds new
functional models over the model's own layers. The target layer may sit inside a nested model
(``"efficientnet_lite0/top_activation"``), the usual shape of a transfer-learning classifier.

What the classifier may end in:

* ``Dense`` (logits), optionally followed by a ``Softmax`` layer or ``Activation("softmax")``,
  or a ``Dense`` with a softmax activation (any spelling: ``"softmax"``, ``tf.nn.softmax``,
  ``keras.activations.softmax``); the softmax is left out, so y are the logits. The same for
  ``log_softmax``.
* ``Dense(1)`` with a sigmoid (a binary classifier): the logit is the pre-sigmoid z, and camcore
  gives it two class scores y = (-z, +z), so class 1 is explained by +z and class 0 by -z; their
  probabilities are sigmoid(y) = (1 - sigmoid(z), sigmoid(z)).
"""

from __future__ import annotations

import difflib
import weakref
from dataclasses import dataclass, field

import keras
import numpy as np


# --------------------------------------------------------------------------------------------
# Reading the graph
# --------------------------------------------------------------------------------------------
def _producer(tensor):
    """``(operation, call, input_tensors)`` of the call that produced a symbolic ``tensor``.

    The one place camcore reads Keras 3 graph internals: every symbolic tensor carries
    ``_keras_history = (operation, node_index, tensor_index)``, and the operation keeps its
    calls (nodes) in ``_inbound_nodes``. ``call`` identifies the call: ``(id(operation),
    node_index)``. (pyproject.toml bounds keras below 4 for this reason.)
    """
    operation, node_index, _ = tensor._keras_history
    inputs = operation._inbound_nodes[node_index].input_tensors
    return operation, (id(operation), node_index), inputs


def _calls(model: keras.Model) -> dict[int, int]:
    """How many times each layer (by id) is called in ``model``'s graph."""
    calls, seen, stack = {}, set(), list(model.outputs)
    while stack:
        operation, call, inputs = _producer(stack.pop())
        if call not in seen:
            seen.add(call)
            calls[id(operation)] = calls.get(id(operation), 0) + 1
            stack.extend(inputs)
    return calls


def _is_model(layer) -> bool:
    return isinstance(layer, keras.Model)


def _output_rank(layer) -> int | None:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):
        return None


def _check_built(model: keras.Model):
    """An error a user can act on for a model without a graph to cut.

    An unbuilt Sequential model has no graph yet; a subclassed model (layers called from Python
    in its ``call``) has none at all: the fix is a functional model over the same layers.
    """
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs and not isinstance(model, keras.Sequential):
        shape = (getattr(model, "_build_shapes_dict", None) or {}).get("input_shape")
        shape = tuple(shape[1:]) if shape and len(shape) == 4 else "(224, 224, 3)"
        raise ValueError(
            f"model {model.name!r} is a subclassed keras.Model: its call() runs Python code, so "
            "there is no graph of layers to cut at a target layer (building or calling it does "
            "not make one). Wrap it in a functional model over the same layers (the weights are "
            f"shared): inputs = keras.Input({shape}); model = keras.Model(inputs, "
            "model.call(inputs)).")
    if not inputs:
        raise ValueError(
            f"model {model.name!r} is not built, so it has no layers to cut yet. Start it with "
            "an input shape, e.g. keras.Sequential([keras.Input((224, 224, 3)), ...]), or call "
            "model.build((None, 224, 224, 3)) first.")
    if len(inputs) != 1:
        raise ValueError(f"camcore explains single-input models; {model.name!r} has "
                         f"{len(inputs)} inputs")


# --------------------------------------------------------------------------------------------
# Choosing the target layer
# --------------------------------------------------------------------------------------------
def feature_layers(model: keras.Model, prefix: str = "") -> list[str]:
    """Paths (``"outer/inner"``) of the layers with a 4-D output that a map can be taken at.

    Layers inside a nested model that is called more than once are left out: a map there would
    describe only one of its calls. Input layers are left out: they hold pixels, not
    activations.

    Parameters
    ----------
    model : keras.Model
        A built functional or Sequential model.
    prefix : str
        Prepended to every path (used for nested models).

    Returns
    -------
    list of str
        In graph order, so the last is the default target layer.

    Examples
    --------
    >>> feature_layers(model)
    ['conv']
    """
    paths, calls = [], _calls(model)
    for layer in model.layers:
        path = prefix + layer.name
        if _is_model(layer):  # listed by its own layers (its output is its last layer's)
            paths += feature_layers(layer, path + "/") if calls.get(id(layer)) == 1 else []
        elif not isinstance(layer, keras.layers.InputLayer) and _output_rank(layer) == 4:
            paths.append(path)
    return paths


def default_target_layer(model: keras.Model) -> str:
    """The last 4-D activation before pooling: the last 4-D layer, inside nested models too.

    Parameters
    ----------
    model : keras.Model
        A built functional or Sequential classifier.

    Returns
    -------
    str
        The layer's path, e.g. ``"efficientnet_lite0/top_activation"``.

    Examples
    --------
    >>> default_target_layer(model)
    'conv'
    """
    _check_built(model)
    candidates = feature_layers(model)
    if not candidates:
        raise ValueError(f"model {model.name!r} has no layer with a 4-D (batch, h, w, channels) "
                         "output to take a map at")
    return candidates[-1]


def nearest_layers(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """The ``n`` candidate paths closest to a misspelt ``name`` (difflib's ratio >= 0.6).

    A path is compared whole and by its last part, so ``"conv5_block3_ot"`` finds
    ``"resnet50/conv5_block3_out"``.

    Parameters
    ----------
    name : str
        The name or path the user gave.
    candidates : list of str
        Layer paths, e.g. ``feature_layers(model)``.
    n : int
        At most this many suggestions.

    Returns
    -------
    list of str
        Closest first.

    Examples
    --------
    >>> nearest_layers("conv5_block3_ot", ["resnet50/conv5_block3_out", "resnet50/pool1"])
    ['resnet50/conv5_block3_out']
    """
    def ratio(a, b):
        return difflib.SequenceMatcher(None, a, b).ratio()

    tail = name.split("/")[-1]
    score = {p: max(ratio(name, p), ratio(tail, p.split("/")[-1])) for p in candidates}
    close = sorted((p for p in candidates if score[p] >= 0.6), key=lambda p: -score[p])
    return close[:n]


def resolve_layer(model: keras.Model, name: str) -> list[keras.layers.Layer]:
    """The chain of layers from ``model`` down to the layer ``name`` names.

    Parameters
    ----------
    model : keras.Model
        A built functional or Sequential model.
    name : str
        A path (``"resnet50/conv5_block3_out"``) or a bare layer name, searched in nested
        models too when it is unique.

    Returns
    -------
    list of keras.layers.Layer
        The nested models on the way, then the layer itself.

    Raises
    ------
    ValueError
        For an unknown name (with the nearest names), an ambiguous one, the input layer, a
        layer without a 4-D output, or one inside a model called twice; the message lists
        the candidate layers.

    Examples
    --------
    >>> [layer.name for layer in resolve_layer(nested_model, "conv")]
    ['backbone', 'conv']
    """
    def search(m, parts):
        if len(parts) == 1:
            hits = [[l] for l in m.layers if l.name == parts[0]]
            for sub in filter(_is_model, m.layers):
                hits += [[sub] + chain for chain in search(sub, parts)]
            return hits
        sub = next((l for l in m.layers if l.name == parts[0] and _is_model(l)), None)
        return [[sub] + chain for chain in search(sub, parts[1:])] if sub else []

    def repeated(chain):  # (nested model, calls) for a model on the way called more than once
        parents = [model] + chain[:-1]
        counts = [(sub, _calls(parent).get(id(sub), 0)) for parent, sub in zip(parents, chain[:-1])]
        return [(sub, n) for sub, n in counts if n > 1]

    if not isinstance(name, str) or not name:
        raise ValueError(f"layer must be a layer name or path such as 'outer/inner'; got {name!r}")
    hits = search(model, name.split("/"))
    twice = [r for chain in hits for r in repeated(chain)]
    is_input = len(hits) == 1 and isinstance(hits[0][-1], keras.layers.InputLayer)
    if len(hits) == 1 and _output_rank(hits[0][-1]) == 4 and not twice and not is_input:
        return hits[0]
    candidates = feature_layers(model)
    near = nearest_layers(name, candidates) if not hits else []
    if not hits:
        problem = f"no layer {name!r} in model {model.name!r}"
    elif len(hits) > 1:
        problem = f"layer name {name!r} is ambiguous in model {model.name!r}; give its full path"
    elif is_input:
        problem = (f"layer {name!r} is the model's input: a map there would weigh the pixels "
                   "themselves, not what the network computed from them")
    elif twice:
        problem = (f"{twice[0][0].name!r} is called {twice[0][1]} times in {model.name!r}, so "
                   f"a map at {name!r} would describe only one of its calls")
    else:
        problem = (f"layer {name!r} has a {_output_rank(hits[0][-1])}-D output, not 4-D "
                   "(batch, h, w, channels)")
    if not candidates:
        raise ValueError(f"{problem}. {model.name!r} has no other layer to take a map at.")
    guess = f"Did you mean {' or '.join(repr(p) for p in near)}? " if near else ""
    raise ValueError(
        f"{problem}. {guess}Choose a convolutional layer; the last of the {len(candidates)} "
        f"candidates are: {', '.join(candidates[-12:])} (default: {candidates[-1]!r})")


# --------------------------------------------------------------------------------------------
# Finding the logits
# --------------------------------------------------------------------------------------------
_PROBE = np.array([[0.5, -1.0, 2.0]], np.float32)


def _activation_kind(function) -> str | None:
    """``"softmax"``, ``"log_softmax"``, ``"sigmoid"`` or None (linear or anything else).

    Judged by what the function does to a probe vector, so every spelling (``"softmax"``,
    ``tf.nn.softmax``, ``keras.activations.softmax``, ...) is recognised.
    """
    if function is None:
        return None
    try:
        out = keras.ops.convert_to_numpy(function(keras.ops.convert_to_tensor(_PROBE)))
    except Exception:  # noqa: BLE001 - an activation that cannot take the probe is not one of ours
        return None
    e = np.exp(_PROBE - _PROBE.max())
    references = {"softmax": e / e.sum(), "log_softmax": np.log(e / e.sum()),
                  "sigmoid": 1 / (1 + np.exp(-_PROBE))}
    for kind, reference in references.items():
        if out.shape == reference.shape and np.allclose(out, reference, atol=1e-5):
            return kind
    return None


def _final_activation(layer) -> str | None:
    """The kind of output activation a layer applies (a Softmax layer counts as "softmax")."""
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    if isinstance(layer, (keras.layers.Activation, keras.layers.Dense)):
        return _activation_kind(layer.activation)
    return None


def _logits_tensor(model: keras.Model):
    """``(tensor, dense, kind)``: the logits of a single-output classifier and how it ends.

    A final ``Softmax`` / ``Activation`` layer applying softmax, log-softmax or sigmoid (``kind``)
    is skipped; a final ``Dense`` with such an activation is returned (``dense``) to be replayed
    without it.
    """
    if len(model.outputs) != 1:
        raise ValueError(f"camcore explains single-output classifiers; {model.name!r} has "
                         f"{len(model.outputs)} outputs")
    out = model.outputs[0]
    layer, _, inputs = _producer(out)
    kind = _final_activation(layer)
    if kind is None:
        return out, None, None
    return inputs[0], layer if isinstance(layer, keras.layers.Dense) else None, kind


def _head_layers(start, end) -> list:
    """Layers on the path from tensor ``start`` to tensor ``end`` ([None] if not a chain)."""
    layers, tensor = [], end
    while tensor is not start:
        operation, _, inputs = _producer(tensor)
        layers.append(operation)
        if len(inputs) != 1:
            return [None]
        tensor = inputs[0]
    return layers[::-1]


def _graph_tensor(model: keras.Model, layer, *, output: bool):
    """The output (or input) tensor of ``layer``'s call inside ``model``'s own graph."""
    seen, stack = set(), list(model.outputs)
    while stack:
        tensor = stack.pop()
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        operation, _, inputs = _producer(tensor)
        if operation is layer:
            if output:
                return tensor
            if len(inputs) != 1:
                raise ValueError(f"nested model {layer.name!r} must take exactly one input")
            return inputs[0]
        stack.extend(inputs)
    raise ValueError(f"layer {layer.name!r} is not on the path to the outputs of {model.name!r}")


def class_names(model: keras.Model) -> tuple[str, ...] | None:
    """The class names a model records on its output layer (``layer.class_names``), if any.

    camcore's own classifiers record them (see ``camcore.models``); a wrapped classifier is
    looked into.

    Parameters
    ----------
    model : keras.Model
        A built functional or Sequential classifier.

    Returns
    -------
    tuple of str, or None

    Examples
    --------
    >>> class_names(model) is None   # the toy model records none
    True
    """
    layer, _, _ = _producer(model.outputs[0])
    names = getattr(layer, "class_names", None)
    if names:
        return tuple(names)
    return class_names(layer) if _is_model(layer) else None


# --------------------------------------------------------------------------------------------
# The split
# --------------------------------------------------------------------------------------------
@dataclass(eq=False)
class SplitModel:
    """``features(x) -> A`` and ``head(A) -> y`` (class logits) for one model and one layer.

    Everything a method needs from the model, held once. A and y are float32 whatever the
    model's dtype policy (a ``mixed_float16`` model computes in float16 inside, so its A, y and
    gradients have float16 precision).

    Attributes
    ----------
    layer : str
        The target layer's path, e.g. ``"efficientnet_lite0/top_activation"``.
    input_shape : tuple
        The model's input (H, W, C); None for a size the model leaves free.
    activation_shape : tuple
        A's (h, w, K).
    channels : int
        K, the number of channels of A.
    num_classes : int
        C, the number of classes (2 for a binary classifier).
    binary : bool
        A one-logit (sigmoid) classifier: its class scores are y = (-z, +z)
        (``two_class_scores``).
    sigmoid : bool
        Probabilities are sigmoid(y), not softmax(y).
    class_names : tuple of str or None
        The names the model records, if any.
    head_layers : list
        The layers from A to the logits when they form a chain, innermost first ([None] where
        the head branches); CAM's kernel is the last one's.
    layers_above : list
        Every layer computing the head, nested models opened, each once.
    class_kernel : tensor (K, C)
        CAM's weights w_k^c, the final Dense kernel (binary rule applied).
    feature_parts, head_parts : list
        The functional models the split runs (internals: use the attributes above).

    Examples
    --------
    >>> split = split_model(model)
    >>> split.layer, split.channels, split.num_classes, split.activation_shape
    ('conv', 8, 4, (30, 30, 8))
    >>> split.head(split.features(images)).shape
    TensorShape([3, 4])
    """

    layer: str
    feature_parts: list = field(repr=False)  # applied in order: outermost model first
    head_parts: list = field(repr=False)  # applied in order: innermost model first
    final_dense: keras.layers.Dense | None = field(repr=False, default=None)
    head_layers: list = field(repr=False, default_factory=list)
    num_classes: int = 0
    binary: bool = False
    sigmoid: bool = False
    class_names: tuple | None = None
    input_shape: tuple = ()

    @property
    def activation_shape(self) -> tuple:
        return tuple(self.feature_parts[-1].outputs[0].shape[1:])

    @property
    def channels(self) -> int:
        return int(self.activation_shape[-1])

    @property
    def layers_above(self) -> list:
        out, seen = [], set()

        def walk(layers):
            for layer in layers:
                if _is_model(layer):
                    walk(layer.layers)
                elif not isinstance(layer, keras.layers.InputLayer) and id(layer) not in seen:
                    seen.add(id(layer))
                    out.append(layer)

        walk([layer for part in self.head_parts for layer in part.layers]
             + ([self.final_dense] if self.final_dense is not None else []))
        return out

    @property
    def class_kernel(self):
        kinds = [type(l) for l in self.head_layers if not isinstance(l, keras.layers.Dropout)]
        if kinds != [keras.layers.GlobalAveragePooling2D, keras.layers.Dense]:
            names = " -> ".join(getattr(l, "name", "?") for l in self.head_layers) or "nothing"
            raise ValueError(
                f"CAM needs the layer {self.layer!r} to be followed by GlobalAveragePooling2D -> "
                f"(Dropout) -> Dense(classes); here it is followed by {names}. Use grad_cam, "
                "which works on any head (it equals CAM only on a pooling -> Dense head).")
        return self.two_class_scores(keras.ops.convert_to_tensor(self.head_layers[-1].kernel))

    def two_class_scores(self, z):
        """The binary rule: one logit z gives the class scores (-z, +z) (class 0 is explained
        by -z, class 1 by +z); for other classifiers ``z`` is returned as it is. Applies to
        anything linear in z: the logit, the Dense kernel's column."""
        return keras.ops.concatenate([-z, z], axis=-1) if self.binary else z

    def features(self, images, training=False):
        """A (N, h, w, K), float32, from images (N, H, W, C)."""
        x = images
        for part in self.feature_parts:
            x = part(x, training=training)
        return keras.ops.cast(x, "float32")

    def head(self, activations, training=False):
        """The class logits y (N, C), float32, from A (the output activation left out)."""
        x = activations
        for part in self.head_parts:
            x = part(x, training=training)
        x = keras.ops.cast(x, "float32")
        if self.final_dense is not None:  # the Dense layer's own activation is left out
            x = keras.ops.matmul(x, keras.ops.cast(self.final_dense.kernel, "float32"))
            if self.final_dense.bias is not None:
                x = x + keras.ops.cast(self.final_dense.bias, "float32")
        return self.two_class_scores(x)

    def logits(self, images):
        """y = head(features(images))."""
        return self.head(self.features(images))

    def probabilities(self, logits):
        """softmax(y) over the classes, or sigmoid(y) for a sigmoid (e.g. binary) classifier."""
        return keras.ops.sigmoid(logits) if self.sigmoid else keras.ops.softmax(logits, axis=-1)


_SPLITS: weakref.WeakKeyDictionary[keras.Model, dict] = weakref.WeakKeyDictionary()


def split_model(model: keras.Model, layer: str | None = None) -> SplitModel:
    """Split ``model`` at ``layer`` into features and logits, without changing the model.

    Cached per model and layer (the cache lets go of a model nobody else holds).

    Parameters
    ----------
    model : keras.Model
        A built, single-input, single-output functional or Sequential classifier (a subclassed
        model is refused with the two-line functional wrapper that fixes it).
    layer : str, optional
        The target layer's name or path; default ``default_target_layer(model)``.

    Returns
    -------
    SplitModel

    Examples
    --------
    >>> split = split_model(model, "conv")
    >>> logits = split.logits(images)                 # y, the softmax left out
    >>> bool(np.allclose(split.probabilities(logits), model(images), atol=1e-6))
    True
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model; got {type(model).__name__}")
    _check_built(model)
    layer = layer or default_target_layer(model)
    per_model = _SPLITS.setdefault(model, {})
    if layer not in per_model:
        per_model[layer] = _split(model, layer)
    return per_model[layer]


def _logits_level(parents, starts):
    """``(level, logits, final dense, kind)``: where the logits are, along the chain of models.

    The outermost level whose output is not simply its nested model's output passed on holds
    them; there a final softmax (or sigmoid) is left out. ``level`` is None if no level does.
    """
    for level, (parent, start) in enumerate(zip(parents, starts)):
        end, dense, kind = _logits_tensor(parent)
        if start is not end or kind is not None:
            return level, end, dense, kind
    return None, None, None, None


def _head_part(model, path, parent, start, end) -> keras.Model:
    """The functional model ``start -> end`` inside ``parent``, or why the layer cannot be cut."""
    try:
        return keras.Model(start, end)
    except ValueError as e:
        others = [c for c in feature_layers(model) if c != path]
        hint = (f"Choose the output of a whole block, e.g. {others[-1]!r}." if others
                else "No other layer of this model can be explained.")
        raise ValueError(
            f"layer {path!r} does not separate {parent.name!r}: its output alone does not "
            f"determine the prediction (another branch bypasses it). {hint} "
            f"Keras said: {e}") from e


def _split(model: keras.Model, layer: str) -> SplitModel:
    """Build the split by walking down the chain of nested models to the target layer.

    At each level (the outer model, then each nested model on the way down) the features part
    runs from that level's input to the nested model's input (or, at the last level, to the
    target layer's output), and the head part from the nested model's output to that level's
    output, or to the logits at the level that holds them (``_logits_level``).
    """
    chain = resolve_layer(model, layer)
    path = "/".join(l.name for l in chain)
    parents = [model, *chain[:-1]]
    for parent in parents:
        _check_built(parent)
    starts = [_graph_tensor(parent, inner, output=True) for parent, inner in zip(parents, chain)]
    logits_level, logits, final_dense, kind = _logits_level(parents, starts)
    feature_parts, head_parts, head_layers = [], [], []
    for level, (parent, inner, start) in enumerate(zip(parents, chain, starts)):
        last = level == len(chain) - 1
        feature_parts.append(keras.Model(
            parent.inputs[0], start if last else _graph_tensor(parent, inner, output=False)))
        end = logits if level == logits_level else parent.outputs[0]
        if start is not end:
            head_parts.insert(0, _head_part(model, path, parent, start, end))
            head_layers[:0] = _head_layers(start, end)
    units = int(model.outputs[0].shape[-1])  # output activations keep the number of units
    return SplitModel(path, feature_parts, head_parts, final_dense,
                      head_layers + ([final_dense] if final_dense is not None else []),
                      num_classes=2 if units == 1 else units, binary=units == 1,
                      sigmoid=units == 1 or kind == "sigmoid", class_names=class_names(model),
                      input_shape=tuple(model.inputs[0].shape[1:]))
