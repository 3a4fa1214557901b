"""Several length groups of a batch in one onnxruntime call (``SENTIMENT_GROUPED_RUNS``).

Why: this LSTM runs fastest per text in small length groups, so a batch of reviews is
many ``session.run`` calls. Each call gives up the GIL and must take it back to return;
while the event loop holds it, the inference thread waits with its core idle. One call
for several groups takes the GIL back once (docs/performance.md, "The GIL").

How: the model's graph is copied K times into one graph (inputs ``<input>_0`` ...
``<input>_{K-1}``, one output per copy), every copy reading the same weights, with one
session for each K in ``GROUP_COUNTS``. A call for n groups uses the smallest K >= n; the
K - n unused inputs get a one-token dummy text. Each copy computes exactly what the model
computes for that group alone (tested equal to ``Scorer``). A graph that cannot be copied
(subgraphs, several inputs) is scored one group per call.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Collection
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from sentiment_core.encoder import pad_batch
from service.inference.scorer import Group, Scorer, open_session, session_options

log = logging.getLogger("service.inference")

GROUP_COUNTS = (2, 4, 8)  # the sessions built; a call carries at most the largest
# Initializers this large (the embedding) are held once, outside onnxruntime: the plain
# session borrows them (``SessionOptions.add_initializer``) and the replicated graphs take
# them as an input fed to every call, instead of each session keeping a copy.
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
    (``GroupedScorer.weights``). The tensors' bytes are then moved out of ``model`` (it keeps
    their names, types and shapes); if any tensor cannot be wrapped, ``model`` is unchanged.
    """
    large = [init for init in model.graph.initializer if _nbytes(init) >= FED_BYTES]
    weights = {
        init.name: ort.OrtValue.ortvalue_from_numpy(numpy_helper.to_array(init)) for init in large
    }
    for init in large:
        init.ClearField("raw_data")
    return weights


class GroupedScorer(Scorer):
    """``Scorer`` that runs up to ``GROUP_COUNTS[-1]`` groups per ``session.run``."""

    def __init__(
        self,
        model: onnx.ModelProto,
        plain: ort.InferenceSession,
        weights: dict[str, ort.OrtValue],
        intra_op_threads: int,
        shared_arena: bool = False,
    ):
        """``weights``: from ``shared_weights(model)``; ``plain`` borrows them too."""
        super().__init__(plain, model.graph.input[0].name, weights)
        # What unused inputs get: one unknown word (id 1), the cheapest text to score.
        dtype = helper.tensor_dtype_to_np_dtype(model.graph.input[0].type.tensor_type.elem_type)
        self._dummy = np.ones((1, 1), dtype=dtype)
        self._sessions: dict[int, tuple[ort.InferenceSession, list[str]]] = {}
        for count in GROUP_COUNTS:
            options = session_options(intra_op_threads, shared_arena)
            # Every call brings a new combination of shapes: memory plans cached per
            # combination would never be reused, only accumulate.
            options.enable_mem_pattern = False
            data = replicate(model, count, weights).SerializeToString()
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            self._sessions[count] = (session, [f"{self.input_name}_{k}" for k in range(count)])

    def run_groups(self, groups: list[Group]) -> list[np.ndarray]:
        return self.run_padded([pad_batch(g) for g in groups])

    def run_padded(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """``run_groups`` on groups already padded."""
        outputs: list[np.ndarray] = []
        largest = GROUP_COUNTS[-1]
        for start in range(0, len(batches), largest):
            part = batches[start : start + largest]
            if len(part) == 1:
                outputs.append(self.session.run(None, {self.input_name: part[0]})[0])
                continue
            count = next(c for c in GROUP_COUNTS if c >= len(part))
            session, names = self._sessions[count]
            feed: dict = {
                name: part[k] if k < len(part) else self._dummy for k, name in enumerate(names)
            }
            feed.update(self.weights)
            outputs.extend(session.run(None, feed)[: len(part)])
        return outputs


def grouped_scorer(path: Path, intra_op_threads: int, shared_arena: bool = False) -> Scorer:
    """A ``GroupedScorer`` for the model at ``path``, or a plain ``Scorer`` if its graph
    cannot be replicated (scores are the same either way, only speed differs)."""
    try:
        model = onnx.load(str(path))
        weights = shared_weights(model)
    except Exception as exc:  # onnxruntime will say what is wrong with the file, if anything
        log.warning("one onnxruntime call per group for %s (%s)", path.name, exc)
        session = open_session(path, intra_op_threads, shared_arena=shared_arena)
        return Scorer(session, session.get_inputs()[0].name)
    plain = open_session(path, intra_op_threads, weights, shared_arena)
    try:
        return GroupedScorer(model, plain, weights, intra_op_threads, shared_arena)
    except Exception as exc:  # an unusual graph (subgraphs, several inputs): run it plainly
        log.warning("one onnxruntime call per group for %s (%s)", path.name, exc)
        return Scorer(plain, model.graph.input[0].name, weights)  # (``plain`` borrows them)


def _nbytes(init: onnx.TensorProto) -> int:
    size = int(np.prod(init.dims, dtype=np.int64))
    return size * helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
