"""Cut a Keras classifier at a target layer into ``features: image -> A`` and ``head: A -> logits``.

Every method needs the activations A of one layer and the class *logits* (scores before the
softmax). camcore gets both without cloning or mutating the user's model: it builds two new
functional models over the model's own layers. The target layer may sit inside a nested model
(``"efficientnet_lite0/top_activation"``), the usual shape of a transfer-learning classifier.

The graph is read through the records Keras 3 keeps on every symbolic tensor
(``tensor._keras_history`` and ``layer._inbound_nodes``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import keras



def _is_model(layer) -> bool:
    return isinstance(layer, keras.Model)


def _output_rank(layer) -> int | None:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):
        return None


def feature_layers(model: keras.Model, prefix: str = "") -> list[str]:
    """Paths (``"outer/inner"``) of every layer with a 4-D output, nested models included."""
    paths = []
    for layer in model.layers:
        path = prefix + layer.name
        if _is_model(layer):
            paths += feature_layers(layer, path + "/")
        if not isinstance(layer, keras.layers.InputLayer) and _output_rank(layer) == 4:
            paths.append(path)
    return paths


def last_feature_layer(model: keras.Model) -> str:
    """The last 4-D activation before pooling: the last 4-D layer, descending into nested models."""
    for layer in reversed(model.layers):
        if _is_model(layer):  # a nested backbone, or a whole classifier wrapped in a model
            if any(_output_rank(l) == 4 for l in layer.layers):
                return f"{layer.name}/{last_feature_layer(layer)}"
        elif _output_rank(layer) == 4 and not isinstance(layer, keras.layers.InputLayer):
            return layer.name
    raise ValueError(f"model {model.name!r} has no layer with a 4-D (batch, h, w, channels) output")


def resolve_layer(model: keras.Model, name: str) -> list[keras.layers.Layer]:
    """The chain of layers from ``model`` down to the layer ``name`` names.

    ``name`` is a path (``"resnet50/conv5_block3_out"``) or a bare layer name, searched in nested
    models too when it is unique. Raises ``ValueError`` listing the candidate layers otherwise.
    """
    def search(m, parts):
        if len(parts) == 1:
            hits = [[l] for l in m.layers if l.name == parts[0]]
            for sub in filter(_is_model, m.layers):
                hits += [[sub] + chain for chain in search(sub, parts)]
            return hits
        sub = next((l for l in m.layers if l.name == parts[0] and _is_model(l)), None)
        return [[sub] + chain for chain in search(sub, parts[1:])] if sub else []

    hits = search(model, name.split("/"))
    if len(hits) == 1 and _output_rank(hits[0][-1]) == 4:
        return hits[0]
    candidates = feature_layers(model)
    shown = ", ".join(candidates[-12:])
    if not hits:
        problem = f"no layer {name!r} in model {model.name!r}"
    elif len(hits) > 1:
        problem = f"layer name {name!r} is ambiguous in model {model.name!r}; give its full path"
    else:
        problem = f"layer {name!r} has a {_output_rank(hits[0][-1])}-D output, not 4-D (batch, h, w, channels)"
    raise ValueError(
        f"{problem}. Choose a convolutional layer; the last of the {len(candidates)} candidates "
        f"are: {shown} (default: {last_feature_layer(model)!r})"
    )


def _graph_tensor(model: keras.Model, layer, *, output: bool):
    """The output (or input) tensor of ``layer``'s call inside ``model``'s own graph."""
    seen, stack = set(), list(model.outputs)
    while stack:
        tensor = stack.pop()
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        operation, node_index, _ = tensor._keras_history
        node = operation._inbound_nodes[node_index]
        if operation is layer:
            if output:
                return tensor
            if len(node.input_tensors) != 1:
                raise ValueError(f"nested model {layer.name!r} must take exactly one input")
            return node.input_tensors[0]
        stack.extend(node.input_tensors)
    raise ValueError(f"layer {layer.name!r} is not on the path to the outputs of {model.name!r}")


def _logits_tensor(model: keras.Model):
    """The pre-softmax tensor of a single-output classifier, and the Dense layer to finish it.

    A final ``Softmax``/``Activation("softmax")`` layer is skipped; a final ``Dense`` with a
    softmax activation is replayed without it (``dense`` is returned for that).
    """
    if len(model.outputs) != 1:
        raise ValueError(f"camcore explains single-output classifiers; {model.name!r} has "
                         f"{len(model.outputs)} outputs")
    out = model.outputs[0]
    layer, node_index, _ = out._keras_history
    node = layer._inbound_nodes[node_index]
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    if isinstance(layer, keras.layers.Softmax) or (
        isinstance(layer, keras.layers.Activation) and activation == "softmax"
    ):
        return node.input_tensors[0], None
    if isinstance(layer, keras.layers.Dense) and activation == "softmax":
        return node.input_tensors[0], layer
    return out, None


def _head_layers(start, end) -> list:
    """Layers on the path from tensor ``start`` back-to-front to tensor ``end`` (a chain only)."""
    layers, tensor = [], end
    while tensor is not start:
        operation, node_index, _ = tensor._keras_history
        node = operation._inbound_nodes[node_index]
        layers.append(operation)
        if len(node.input_tensors) != 1:
            return [None]  # not a simple chain
        tensor = node.input_tensors[0]
    return layers[::-1]


@dataclass(eq=False)
class SplitModel:
    """``features(x) -> A`` and ``head(A) -> logits`` for one model and one target layer.

    ``head_layers`` lists the layers between A and the logits (innermost first); CAM reads its
    weights from them.
    """

    layer: str
    feature_parts: list = field(repr=False)  # applied in order: outermost model first
    head_parts: list = field(repr=False)  # applied in order: innermost model first
    final_dense: keras.layers.Dense | None = field(repr=False, default=None)
    head_layers: list = field(repr=False, default_factory=list)
    compiled: dict = field(repr=False, default_factory=dict)  # tf.functions built by the methods

    def features(self, images, training=False):
        x = images
        for part in self.feature_parts:
            x = part(x, training=training)
        return x

    def head(self, activations, training=False):
        x = activations
        for part in self.head_parts:
            x = part(x, training=training)
        if self.final_dense is not None:  # the Dense layer's own softmax is left out
            x = keras.ops.matmul(x, self.final_dense.kernel) + self.final_dense.bias
        return x

    def logits(self, images):
        return self.head(self.features(images))


_SPLITS: "weakref.WeakKeyDictionary[keras.Model, dict]" = weakref.WeakKeyDictionary()


def split_model(model: keras.Model, layer: str | None = None) -> SplitModel:
    """Split ``model`` at ``layer`` (default: the last 4-D activation before pooling). Cached."""
    from camcore.models import default_target_layer

    layer = layer or default_target_layer(model)
    per_model = _SPLITS.setdefault(model, {})
    if layer not in per_model:
        per_model[layer] = _split(model, layer)
    return per_model[layer]


def _split(model, layer):
    chain = resolve_layer(model, layer)
    path = "/".join(l.name for l in chain)
    feature_parts, head_parts, head_layers = [], [], []
    final_dense = None
    logits_pending = True  # the logits are in the outermost model whose output is not passed on
    parent = model
    for level, inner in enumerate(chain):
        if len(parent.inputs) != 1:
            raise ValueError(f"camcore explains single-input models; {parent.name!r} has "
                             f"{len(parent.inputs)} inputs")
        if level == len(chain) - 1:  # the target layer itself
            start = _graph_tensor(parent, inner, output=True)
            feature_parts.append(keras.Model(parent.inputs[0], start))
        else:  # a nested model on the way down: features run up to its input
            feature_parts.append(keras.Model(parent.inputs[0],
                                             _graph_tensor(parent, inner, output=False)))
            start = _graph_tensor(parent, inner, output=True)
        if logits_pending:
            end, final_dense = _logits_tensor(parent)
            logits_pending = start is end and final_dense is None
        else:
            end = parent.outputs[0]
        if start is not end:
            try:
                head_parts.insert(0, keras.Model(start, end))
            except ValueError as e:
                raise ValueError(
                    f"layer {path!r} does not separate {parent.name!r}: its output alone does not "
                    "determine the prediction (another branch bypasses it). Choose the output of "
                    f"a whole block, e.g. {last_feature_layer(model)!r}. Keras said: {e}"
                ) from e
            head_layers[:0] = _head_layers(start, end)
        parent = inner
    return SplitModel(path, feature_parts, head_parts, final_dense,
                      head_layers + ([final_dense] if final_dense is not None else []))
