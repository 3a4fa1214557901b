"""Run several length groups of a batch in one onnxruntime call.

Why: the LSTM runs fastest per text in sorted batches of about 4 rows (service/packing.py),
so a request of 64 reviews is about 16 ``session.run`` calls. Each call gives up the GIL
and must take it back to return; when the event loop or the tokenizer holds it, the
inference thread waits (up to the interpreter's 5 ms switch interval) with its core idle.
In process, two inference threads beside one tokenizing thread scored 3,000-3,270 texts/s
with one call per group and 3,400-3,750 with one call per 8-16 groups; without the
tokenizing thread the two ways differ by 4% (docs/performance.md, "Step 5").

How: the model's graph is copied K times into one graph (inputs ``<input>_0`` ...
``<input>_{K-1}``, one output per copy), every copy reading the same weights, with one
session for each K in ``GROUP_COUNTS``. A call for n groups uses the smallest K >= n; the
K - n unused inputs get a one-token dummy text (about 27 µs each). Each copy computes
exactly what the model computes for that group alone (tested equal to separate runs, both
variants). Cost: about 25 MB of peak memory (docs/performance.md); a graph that cannot
be copied (subgraphs, several inputs) is run one group per call, as before.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

GROUP_COUNTS = (2, 4, 8)  # the sessions built; a call carries at most the largest
# Initializers this large (the embedding) are held once, outside onnxruntime: the plain
# session borrows them (``SessionOptions.add_initializer``) and the replicated graphs take
# them as an input fed to every call, instead of each session keeping a copy (10 MB each).
FED_BYTES = 1 << 20


def replicate(model: onnx.ModelProto, copies: int, fed: Collection[str] = ()) -> onnx.ModelProto:
    """One graph holding ``copies`` independent copies of ``model``'s single-input graph.

    The copies share the initializers; those named in ``fed`` become a graph input instead.
    """
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ValueError("only a graph with one input and one output can be replicated")
    subgraph_types = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    if any(a.type in subgraph_types for node in graph.node for a in node.attribute):
        raise ValueError("graphs with subgraphs (If, Loop, Scan) are not replicated")
    shared = {init.name for init in graph.initializer}
    ends = {graph.input[0].name, graph.output[0].name}
    nodes, inputs, outputs = [], [], []
    for k in range(copies):

        def rename(name: str, k: int = k) -> str:
            if not name or name in shared:  # ("" is an omitted optional input)
                return name
            return f"{name}_{k}" if name in ends else f"copy{k}/{name}"

        for i, node in enumerate(graph.node):
            clone = copy.deepcopy(node)
            clone.name = f"copy{k}/{i}"
            clone.input[:] = [rename(x) for x in node.input]
            clone.output[:] = [rename(x) for x in node.output]
            nodes.append(clone)
        for value, into in ((graph.input[0], inputs), (graph.output[0], outputs)):
            clone = copy.deepcopy(value)
            clone.name = rename(value.name)
            for dim in clone.type.tensor_type.shape.dim:
                if dim.dim_param:  # one shared symbolic size would tell onnxruntime all are equal
                    dim.dim_param = f"{dim.dim_param}_{k}"
            into.append(clone)
    for init in graph.initializer:
        if init.name in fed:
            inputs.append(helper.make_tensor_value_info(init.name, init.data_type, init.dims))
    kept = [init for init in graph.initializer if init.name not in fed]
    replicated = helper.make_graph(nodes, f"{graph.name}_x{copies}", inputs, outputs, kept)
    return helper.make_model(
        replicated, opset_imports=model.opset_import, ir_version=model.ir_version
    )


def shared_weights(model: onnx.ModelProto) -> dict[str, ort.OrtValue]:
    """The model's large initializers as arrays that sessions borrow instead of copying.

    Sessions given these (``add_initializer``, or fed as inputs) read this memory without
    holding a reference: whoever holds the sessions must hold this dict too
    (``Bundle.weights``). The tensors' bytes are then moved out of ``model`` (it keeps
    their names, types and shapes); if any tensor cannot be wrapped, ``model`` is unchanged.
    """
    large = [init for init in model.graph.initializer if _nbytes(init) >= FED_BYTES]
    weights = {
        init.name: ort.OrtValue.ortvalue_from_numpy(numpy_helper.to_array(init)) for init in large
    }
    for init in large:
        init.ClearField("raw_data")
    return weights


class GroupedRunner:
    """Score a list of padded groups with as few ``session.run`` calls as possible."""

    def __init__(
        self,
        model: onnx.ModelProto,
        plain: ort.InferenceSession,
        weights: dict[str, ort.OrtValue],
        new_options: Callable[[], ort.SessionOptions],
    ):
        """``weights``: from ``shared_weights(model)``, fed to every call."""
        self._plain = plain
        self._input = model.graph.input[0].name
        self._fed = weights
        # What unused inputs get: one unknown word (id 1), the cheapest text to score.
        dtype = helper.tensor_dtype_to_np_dtype(model.graph.input[0].type.tensor_type.elem_type)
        self._dummy = np.ones((1, 1), dtype=dtype)
        self._sessions: dict[int, tuple[ort.InferenceSession, list[str]]] = {}
        for count in GROUP_COUNTS:
            options = new_options()
            # Every call brings a new combination of shapes: memory plans cached per
            # combination would never be reused, only accumulate. (The arena stays on:
            # without it the int8 model ran 40% slower.)
            options.enable_mem_pattern = False
            data = replicate(model, count, self._fed).SerializeToString()
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            self._sessions[count] = (session, [f"{self._input}_{k}" for k in range(count)])

    def run(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """The model's output for each padded batch, in order."""
        outputs: list[np.ndarray] = []
        largest = GROUP_COUNTS[-1]
        for start in range(0, len(batches), largest):
            part = batches[start : start + largest]
            if len(part) == 1:
                outputs.append(self._plain.run(None, {self._input: part[0]})[0])
                continue
            count = next(c for c in GROUP_COUNTS if c >= len(part))
            session, names = self._sessions[count]
            feed: dict = {
                name: part[k] if k < len(part) else self._dummy for k, name in enumerate(names)
            }
            feed.update(self._fed)
            outputs.extend(session.run(None, feed)[: len(part)])
        return outputs


def _nbytes(init: onnx.TensorProto) -> int:
    size = int(np.prod(init.dims, dtype=np.int64))
    return size * helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
