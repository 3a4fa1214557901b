"""Keras → ONNX export (tf2onnx), graph check, parity verification, int8 variant."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import tensorflow as tf
import tf2onnx
from onnx import TensorProto, helper

from sentiment_core.batching import score_in_length_order
from sentiment_core.encoder import pad_batch
from training.model import ModelConfig, build_model

OPSET = 17
INPUT_NAME = "input_ids"
OUTPUT_NAME = "score"  # sigmoid: P(labels[1])
SOFTMAX_OUTPUT_NAME = "probabilities"  # softmax: one column per label
FUSED_OPS = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "RNN"}


class ExportError(RuntimeError):
    """The exported graph is not what we expect, or does not match Keras."""


def export_onnx(model, cfg: ModelConfig, path: Path) -> dict[str, int]:
    """Export ``model`` to ``path``; return the graph's op counts.

    LSTM goes through the mask-free export twin so tf2onnx emits one fused ``LSTM`` node;
    we then feed it the true lengths (``sequence_lens``), which reproduces Keras masking
    exactly. tf2onnx 1.17 does not fuse Keras 3 GRU/SimpleRNN, so those export the masked
    model as is (an ONNX ``Loop`` that masks step by step: exact, slower).
    """
    if cfg.cell == "lstm":
        twin = build_model(cfg, export_twin=True)
        twin.set_weights(model.get_weights())
        proto = _convert(twin, output_name(cfg))
        _wire_sequence_lens(proto, reads_sequence=cfg.pooling != "last")
    else:
        proto = _convert(model, output_name(cfg))
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return op_counts(proto)


def output_name(cfg: ModelConfig) -> str:
    return OUTPUT_NAME if cfg.outputs == 1 else SOFTMAX_OUTPUT_NAME


def _convert(model, output: str) -> onnx.ModelProto:
    spec = (tf.TensorSpec([None, None], tf.int32, name=INPUT_NAME),)

    @tf.function(input_signature=spec)
    def serve(input_ids):
        return {output: model(input_ids, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=OPSET)
    return proto


def _wire_sequence_lens(proto: onnx.ModelProto, reads_sequence: bool) -> None:
    """Give every fused LSTM node ``sequence_lens = count(input_ids != 0)``.

    The graph must read the final states (``Y_h``); it may read the per-step output
    ``Y`` only through ``MaskedPooling`` (``reads_sequence``), which ignores padded steps.
    Anything else is refused; the parity check then proves the result.
    """
    graph = proto.graph
    lstms = [n for n in graph.node if n.op_type == "LSTM"]
    if not lstms:
        raise ExportError("tf2onnx produced no fused LSTM node; cannot wire sequence_lens")
    consumed = {name for n in graph.node for name in n.input}
    graph_outputs = {o.name for o in graph.output}
    for node in lstms:
        if node.output[0] in graph_outputs or (node.output[0] in consumed and not reads_sequence):
            raise ExportError(f"{node.name}: graph reads the LSTM's Y output; expected Y_h only")

    mask, lengths = "input_ids_not_pad", "sequence_lengths"
    new_nodes = [
        helper.make_node("Greater", [INPUT_NAME, "pad_id"], ["input_ids_is_token"]),
        helper.make_node("Cast", ["input_ids_is_token"], [mask], to=TensorProto.INT64),
        helper.make_node("ReduceSum", [mask, "sequence_lengths_axis"], ["lengths_i64"], keepdims=0),
        helper.make_node("Cast", ["lengths_i64"], [lengths], to=TensorProto.INT32),
    ]
    graph.initializer.append(helper.make_tensor("pad_id", TensorProto.INT32, [], [0]))
    graph.initializer.append(
        helper.make_tensor("sequence_lengths_axis", TensorProto.INT64, [1], [1])
    )
    for node in lstms:
        while len(node.input) < 5:
            node.input.append("")
        node.input[4] = lengths
    # Prepend: the lengths depend only on the graph input, so topological order holds.
    for i, node in enumerate(new_nodes):
        graph.node.insert(i, node)


def op_counts(proto: onnx.ModelProto) -> dict[str, int]:
    return dict(collections.Counter(n.op_type for n in proto.graph.node))


def keras_scores(model, sequences: Sequence[Sequence[int]], batch_size: int = 256) -> np.ndarray:
    """The Keras model's output rows, scored in length-sorted batches."""
    run = lambda batch: model(pad_batch(batch), training=False).numpy()  # noqa: E731
    return score_in_length_order(run, sequences, batch_size)


def onnx_scores(
    path: Path, sequences: Sequence[Sequence[int]], batch_size: int = 256
) -> np.ndarray:
    """The ONNX model's output rows through onnxruntime, in length-sorted batches."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    run = lambda batch: session.run(None, {INPUT_NAME: pad_batch(batch)})[0]  # noqa: E731
    return score_in_length_order(run, sequences, batch_size)


def verify_parity(
    model, onnx_path: Path, sequences: Sequence[Sequence[int]], tolerance: float = 1e-5
) -> dict[str, float | int]:
    """ORT vs Keras on the same padded batches: max |diff| ≤ tolerance and same labels
    (threshold 0.5 for one sigmoid column, argmax for softmax columns)."""
    k = keras_scores(model, sequences)
    o = onnx_scores(onnx_path, sequences)
    diff = float(np.max(np.abs(k - o)))
    label_mismatches = int(np.sum(decide(k) != decide(o)))
    report = {"texts": len(sequences), "max_abs_diff": diff, "label_mismatches": label_mismatches}
    if not diff <= tolerance or label_mismatches:  # NaN fails too
        raise ExportError(f"ONNX does not match Keras: {report} (tolerance {tolerance})")
    return report


def decide(outputs: np.ndarray) -> np.ndarray:
    """Each row's label index: threshold 0.5 (one column) or argmax."""
    if outputs.shape[1] == 1:
        return (outputs[:, 0] >= 0.5).astype(int)
    return np.argmax(outputs, axis=1)


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of the weights (MatMul/Gather/LSTM) with onnxruntime."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
