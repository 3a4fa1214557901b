"""Export of small untrained models: fused graph, sequence_lens masking, parity with Keras."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

pytest.importorskip("tensorflow")

from training.export import ExportError, export_onnx, onnx_scores, verify_parity
from training.model import ModelConfig, build_model


def random_sequences(n: int, vocab: int, max_len: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, vocab, int(k)).tolist() for k in rng.integers(1, max_len, n)]


@pytest.mark.parametrize("pooling", ["last", "last+mean+max"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_exports_to_one_fused_node_that_masks_exactly(tmp_path, pooling, bidirectional):
    cfg = ModelConfig(500, 8, 6, "lstm", bidirectional, pooling=pooling)
    model = build_model(cfg)
    path = tmp_path / "model.onnx"
    ops = export_onnx(model, cfg, path)
    assert ops.get("LSTM") == 1 and "Loop" not in ops
    lstm = next(n for n in onnx.load(str(path)).graph.node if n.op_type == "LSTM")
    assert lstm.input[4] == "sequence_lengths"  # masking through sequence_lens
    report = verify_parity(model, path, random_sequences(300, 500, 50))
    assert report["max_abs_diff"] <= 1e-5 and report["label_mismatches"] == 0


@pytest.mark.parametrize("cell", ["gru", "simple_rnn"])
def test_other_cells_export_with_exact_masking(tmp_path, cell):
    cfg = ModelConfig(500, 8, 6, cell, bidirectional=True)
    model = build_model(cfg)
    path = tmp_path / "model.onnx"
    export_onnx(model, cfg, path)
    report = verify_parity(model, path, random_sequences(200, 500, 40))
    assert report["max_abs_diff"] <= 1e-5


def test_score_does_not_depend_on_padding_or_batch(tmp_path):
    cfg = ModelConfig(500, 8, 6, "lstm", True, pooling="last+mean+max")
    path = tmp_path / "model.onnx"
    export_onnx(build_model(cfg), cfg, path)
    seqs = random_sequences(50, 500, 60, seed=3)
    together = onnx_scores(path, seqs, batch_size=50)
    alone = np.array([onnx_scores(path, [s], batch_size=1)[0] for s in seqs])
    assert np.max(np.abs(together - alone)) <= 1e-6


@pytest.mark.parametrize("outputs", [2, 3])
def test_a_softmax_head_keeps_the_fused_node_and_matches_keras(tmp_path, outputs):
    cfg = ModelConfig(500, 8, 6, "lstm", True, pooling="last+mean+max", outputs=outputs)
    model = build_model(cfg)
    path = tmp_path / "model.onnx"
    ops = export_onnx(model, cfg, path)
    assert ops.get("LSTM") == 1 and "Loop" not in ops
    graph = onnx.load(str(path)).graph
    assert [o.name for o in graph.output] == ["probabilities"]
    sequences = random_sequences(300, 500, 50)
    rows = onnx_scores(path, sequences)
    assert rows.shape == (300, outputs)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-5)
    report = verify_parity(model, path, sequences)  # argmax labels must agree too
    assert report["max_abs_diff"] <= 1e-5 and report["label_mismatches"] == 0


def test_int8_variant_is_written_and_stays_close(tmp_path):
    from training.export import quantize_int8

    cfg = ModelConfig(500, 16, 8, "lstm", True, pooling="last+mean+max", outputs=3)
    path, int8 = tmp_path / "model.onnx", tmp_path / "model.int8.onnx"
    export_onnx(build_model(cfg), cfg, path)
    quantize_int8(path, int8)
    sequences = random_sequences(100, 500, 40)
    assert int8.stat().st_size < path.stat().st_size
    assert np.max(np.abs(onnx_scores(int8, sequences) - onnx_scores(path, sequences))) < 0.05


def test_a_graph_that_no_longer_matches_keras_fails_the_check(tmp_path):
    """The parity check is what stops a bad export: here the Keras output layer moves after
    the export, as a wrong conversion would show."""
    cfg = ModelConfig(500, 8, 6, "lstm", True, pooling="last+mean+max", outputs=3)
    model = build_model(cfg)
    path = tmp_path / "model.onnx"
    export_onnx(model, cfg, path)
    output = model.get_layer("probabilities")
    kernel, bias = output.get_weights()
    output.set_weights([kernel, bias + np.array([0.0, 0.0, 1e-3], dtype=np.float32)])
    with pytest.raises(ExportError, match="ONNX does not match Keras") as failure:
        verify_parity(model, path, random_sequences(100, 500, 30))
    assert "'texts': 100" in str(failure.value) and "tolerance 1e-05" in str(failure.value)
