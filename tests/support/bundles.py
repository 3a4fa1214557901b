"""Small real bundles made by the tests: any labels, built in milliseconds without TensorFlow.

A bag-of-words model (embedding lookup, mean over the real tokens, a dense layer,
softmax) written directly as an ONNX graph, with a tokenizer trained on a few sentences.
It goes through the same manifest, hashes and self-check as a trained bundle, so the
service treats it as it treats any other.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from sentiment_core.bundle import PROMOTED_FILE, file_entries
from sentiment_core.encoder import TextEncoder, pad_batch
from sentiment_core.manifest import FORMAT_VERSION, parse_manifest
from sentiment_core.tokenizer import train_tokenizer

WORDS = {
    "negative": ["awful", "terrible", "boring", "hate", "worst"],
    "neutral": ["okay", "average", "fine", "ordinary", "mixed"],
    "positive": ["great", "wonderful", "love", "superb", "best"],
}
REFERENCE_TEXTS = ["A great film, I love it.", "Awful and boring.", "It was okay.", "Café ﬁlm"]


def _graph(embedding: np.ndarray, dense: np.ndarray) -> onnx.ModelProto:
    """probabilities = softmax(mean of the real tokens' embeddings · dense)."""
    nodes = [
        helper.make_node("Gather", ["embedding", "input_ids"], ["vectors"]),
        helper.make_node("Greater", ["input_ids", "zero"], ["is_token"]),
        helper.make_node("Cast", ["is_token"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask", "last"], ["mask3"]),
        helper.make_node("Mul", ["vectors", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "time"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "time"], ["count"], keepdims=0),
        helper.make_node("Max", ["count", "one"], ["count1"]),
        helper.make_node("Div", ["summed", "count1"], ["mean"]),
        helper.make_node("MatMul", ["mean", "dense"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    inits = [
        numpy_helper.from_array(embedding, "embedding"),
        numpy_helper.from_array(dense, "dense"),
        numpy_helper.from_array(np.array(0, dtype=np.int32), "zero"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "last"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "time"),
    ]
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["batch", "time"])
    out = helper.make_tensor_value_info(
        "probabilities", TensorProto.FLOAT, ["batch", dense.shape[1]]
    )
    graph = helper.make_graph(nodes, "bag_of_words", [ids], [out], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def write_softmax_bundle(
    bundle_dir: Path, name: str, version: str, labels: list[str] | None = None
) -> Path:
    """A complete bundle whose label is the class of the text's cue words (``WORDS``)."""
    labels = labels or list(WORDS)
    bundle_dir.mkdir(parents=True)
    corpus = [" ".join(words) for words in WORDS.values()] * 3 + REFERENCE_TEXTS
    tokenizer = train_tokenizer(corpus, vocab_size=200, min_frequency=1)
    tokenizer.save(str(bundle_dir / "tokenizer.json"))
    vocab = tokenizer.get_vocab()
    embedding = np.zeros((len(vocab), len(labels)), dtype=np.float32)
    for k, words in enumerate(WORDS.values()):
        for word in words:
            embedding[vocab[word], k % len(labels)] = 4.0
    model = _graph(embedding, np.eye(len(labels), dtype=np.float32))
    onnx.save(model, str(bundle_dir / "model.onnx"))
    encoder = TextEncoder(tokenizer, max_length=64, truncation="head+tail")
    session = ort.InferenceSession(str(bundle_dir / "model.onnx"))
    reference = [
        {
            "text": t,
            "probabilities": session.run(None, {"input_ids": pad_batch([ids])})[0][0].tolist(),
        }
        for t, ids in zip(REFERENCE_TEXTS, encoder.encode_ids(REFERENCE_TEXTS), strict=True)
    ]
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "labels": labels,
        "decision": {"rule": "argmax"},
        "output": {"name": "probabilities", "kind": "softmax"},
        "input": {"max_length": 64, "truncation": "head+tail", "vocab_size": len(vocab)},
        "metrics": {"test": {"made_by": "tests"}},
        "reference": reference,
        "files": file_entries(bundle_dir),
    }
    (bundle_dir / "manifest.json").write_text(parse_manifest(manifest).to_json())
    return bundle_dir


def copy_as(src: Path, models_root: Path, name: str, version: str | None = None) -> Path:
    """A copy of bundle ``src`` serving as model ``name`` (its manifest renamed), promoted."""
    import json

    version = version or src.name
    dst = models_root / name / version
    dst.mkdir(parents=True)
    manifest = json.loads((src / "manifest.json").read_text())
    for file in manifest["files"]:
        shutil.copyfile(src / file, dst / file)
    manifest["name"] = name
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2))
    promote_by_hand(models_root, name, version)
    return dst


def promote_by_hand(models_root: Path, name: str, version: str) -> None:
    (models_root / name / PROMOTED_FILE).write_text(version + "\n")
