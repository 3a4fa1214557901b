"""Several length groups per onnxruntime call: the same numbers as one call per group."""

from __future__ import annotations

import gc
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import service.inference.grouped as grouped_module
from service.inference.grouped import GROUP_COUNTS, GroupedScorer, replicate
from service.inference.packing import pack_by_length
from service.inference.scorer import Scorer
from service.model.loader import Speedups, load_bundle


@pytest.fixture(scope="module", params=["float", "int8"])
def variant_bundle(request, bundle_dir):
    return load_bundle(bundle_dir, variant=request.param)


@pytest.fixture(scope="module")
def reviews(bundle_dir) -> list[str]:
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    texts = [r["text"] for r in manifest["reference"]]
    # Lengths from one word to far past the model's maximum, so the groups differ in width.
    return texts + [" ".join(texts) * k for k in (1, 3, 9)] + ["ok", "bad!", "fine film"]


def length_groups(bundle, texts: list[str]) -> list[list]:
    ids = bundle.encoder.encode_ids(texts)
    return [[ids[i] for i in g] for g in pack_by_length([len(s) for s in ids])]


def reference_scorer(bundle) -> Scorer:
    """The plain scorer (one call per group) on the bundle's own session."""
    return Scorer(bundle.scorer.session, bundle.scorer.input_name)


def test_grouped_calls_give_exactly_the_separate_calls_results(variant_bundle, reviews):
    bundle = variant_bundle
    assert isinstance(bundle.scorer, GroupedScorer)
    groups = length_groups(bundle, reviews * 3)
    assert len(groups) > GROUP_COUNTS[-1]  # more groups than one call carries
    for n in (1, 2, 3, 5, GROUP_COUNTS[-1], GROUP_COUNTS[-1] + 1, len(groups)):
        got = bundle.scorer.run_groups(groups[:n])
        want = reference_scorer(bundle).run_groups(groups[:n])
        assert len(got) == n
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape and np.array_equal(g, w)  # bit for bit, not approximately


def test_score_ids_is_the_same_with_and_without_grouping(variant_bundle, reviews):
    bundle = variant_bundle
    ids = bundle.encoder.encode_ids(reviews * 2)
    assert np.array_equal(bundle.outputs(ids), reference_scorer(bundle).score(ids))


def test_switched_off_the_bundle_scores_one_group_per_call(bundle_dir, bundle, reviews):
    plain = load_bundle(bundle_dir, speedups=Speedups(grouped_runs=False))
    assert type(plain.scorer) is Scorer and plain.scorer.weights == {}
    ids = bundle.encoder.encode_ids(reviews)
    assert np.allclose(plain.outputs(ids), bundle.outputs(ids), atol=1e-6)


def _scores_survive_memory_reuse(bundle, texts: list[str]) -> None:
    """The sessions read weights they do not own: they must still be there later."""
    before = bundle.score_texts(texts)
    gc.collect()
    # Blocks just under the embedding's size (10.2 MB float, 2.6 MB int8) land where a
    # freed one was, and fill it with NaN.
    garbage = [
        np.full(size // 4 + i, np.nan, dtype=np.float32)
        for size in (10_000_000, 2_500_000)
        for i in range(8)
    ]
    after = bundle.score_texts(texts)
    del garbage
    assert np.array_equal(before, after)


def test_a_graph_that_cannot_be_replicated_is_served_one_group_per_call(
    bundle_dir, monkeypatch, reviews, reference
):
    def refuse(*args, **kwargs):
        raise ValueError("graphs with subgraphs (If, Loop, Scan) are not replicated")

    monkeypatch.setattr(grouped_module, "GroupedScorer", refuse)
    fallback = load_bundle(bundle_dir)  # loads, passes its self-check
    assert type(fallback.scorer) is Scorer and fallback.scorer.weights  # borrowed: still held
    _scores_survive_memory_reuse(fallback, [r["text"] for r in reference])
    monkeypatch.undo()
    grouped = load_bundle(bundle_dir)
    ids = grouped.encoder.encode_ids(reviews)
    assert np.allclose(fallback.score_ids(ids), grouped.score_ids(ids), atol=1e-6)


def test_weights_that_cannot_be_shared_are_left_to_onnxruntime(bundle_dir, monkeypatch, reference):
    def refuse(model):
        raise RuntimeError("Creation of OrtValues is currently only supported from non-string")

    monkeypatch.setattr(grouped_module, "shared_weights", refuse)
    plain = load_bundle(bundle_dir)  # no crash, no BundleError: served one group per call
    assert type(plain.scorer) is Scorer and plain.scorer.weights == {}
    _scores_survive_memory_reuse(plain, [r["text"] for r in reference])


def test_grouped_bundle_keeps_its_weights_alive(bundle, reference):
    assert isinstance(bundle.scorer, GroupedScorer) and bundle.scorer.weights
    _scores_survive_memory_reuse(bundle, [r["text"] for r in reference] * 3)


def _tiny_model(nodes, inputs, outputs) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "tiny", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_replicate_refuses_graphs_it_cannot_copy():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n"])
    two_inputs = _tiny_model([helper.make_node("Add", ["x", "y"], ["z"])], [x, y], [z])
    with pytest.raises(ValueError, match="one input"):
        replicate(two_inputs, 2)
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["b"])], "b", [], [y])
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    with_if = _tiny_model(
        [helper.make_node("If", ["c"], ["z"], then_branch=branch, else_branch=branch)], [cond], [z]
    )
    with pytest.raises(ValueError, match="subgraphs"):
        replicate(with_if, 2)


def test_replicated_graph_has_independent_inputs_and_shared_weights(bundle_dir):
    model = onnx.load(str(bundle_dir / "model.onnx"))
    weights = {init.name for init in model.graph.initializer}
    copied = replicate(model, 3)
    onnx.checker.check_model(copied)
    source, target = model.graph.input[0].name, model.graph.output[0].name
    assert [i.name for i in copied.graph.input] == [f"{source}_{k}" for k in range(3)]
    assert [o.name for o in copied.graph.output] == [f"{target}_{k}" for k in range(3)]
    assert {init.name for init in copied.graph.initializer} == weights  # once, not three times
    assert len(copied.graph.node) == 3 * len(model.graph.node)
    # Each copy's symbolic sizes are its own (a shared one would force equal shapes).
    dims = [d.dim_param for i in copied.graph.input for d in i.type.tensor_type.shape.dim]
    assert len(set(dims)) == len(dims)
