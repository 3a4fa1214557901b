"""Steps 5-7 of the job: export and parity, the figures (test splits scored once, through
onnxruntime), the baseline beside them, and the int8 variant."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from training.config import Config
from training.evaluate import classification_metrics, label_metrics
from training.export import FUSED_OPS, export_onnx, onnx_scores, quantize_int8, verify_parity
from training.fit import Rows
from training.progress import quiet_quantizer
from training.scoring import figures, parity_sample, per_source, probabilities
from training.sources import Corpus

INT8_MAX_DROP = 0.003  # accuracy points on validation


def evaluate_bundle(
    cfg: Config,
    labels: list[str],
    model,
    model_cfg,
    encoder,
    corpus: Corpus,
    splits: tuple[Rows, Rows, Rows],
    work_dir: Path,
    log: Callable[[str], None],
) -> dict:
    """Export, check parity, score validation and test, the baseline, int8; the figures."""
    train, validation, test = splits
    onnx_path = work_dir / "model.onnx"
    ops = export_onnx(model, model_cfg, onnx_path)
    fused = FUSED_OPS[cfg.cell] in ops and "Loop" not in ops
    sample = parity_sample(splits, list(corpus.reports), cfg.parity_texts)
    parity = verify_parity(model, onnx_path, sample)
    log(f"export: ops {ops}; fused recurrent node: {fused}; parity {parity}")

    val_outputs = onnx_scores(onnx_path, validation.ids)
    metrics = {
        "labels": labels,
        "data": {name: report.as_dict() for name, report in corpus.reports.items()},
        "parity": parity,
        "onnx_ops": ops,
        "fused_recurrent_node": fused,
    }
    metrics.update(score_splits(validation, val_outputs, test, onnx_path, corpus, labels))
    if {"negative", "positive"} <= set(labels):  # the hand-written texts are negative/positive
        metrics["out_of_domain"] = out_of_domain(onnx_path, encoder, labels)
    for name, per in metrics["sources"].items():
        if "test" in per:
            log(f"test {name}: {_fmt(per['test'])}")
    if cfg.baseline:
        metrics["baseline"] = run_baseline(train, validation, test, corpus, labels, metrics, log)
    metrics["variants"] = {}
    if cfg.quantize:
        int8 = int8_variant(onnx_path, validation, test, val_outputs, metrics, log)
        metrics["int8"] = int8
        if int8["kept"]:
            metrics["variants"]["int8"] = "model.int8.onnx"
    return metrics


def score_splits(validation: Rows, val_outputs, test: Rows, onnx_path, corpus, labels) -> dict:
    """Pooled and per-source figures; each test split is scored here, once."""
    val_pooled, val_sources = per_source(
        validation, val_outputs, labels, corpus.sources("validation")
    )
    out = {
        "validation": val_pooled,
        "sources": {k: {"validation": v} for k, v in val_sources.items()},
    }
    if test.ids:
        test_outputs = onnx_scores(onnx_path, test.ids)
        out["test"], test_sources = per_source(test, test_outputs, labels, corpus.sources("test"))
        for name, result in test_sources.items():
            out["sources"].setdefault(name, {})["test"] = result
    return out


def run_baseline(train, validation, test, corpus, labels, metrics: dict, log) -> dict:
    """TF-IDF + logistic regression on the same rows; its figures go beside the LSTM's."""
    from training.baseline import train_baseline

    texts = lambda rows: [e.text for e in rows.examples]  # noqa: E731
    baseline = train_baseline(
        texts(train), train.y, train.weights, texts(validation), validation.y, len(labels)
    )
    out = {**baseline.describe()}
    val_outputs = _as_outputs(baseline.probabilities(texts(validation)), labels)
    out["validation"], val_by_source = per_source(
        validation, val_outputs, labels, corpus.sources("validation")
    )
    for name, result in val_by_source.items():  # a source without a test split has only these
        metrics["sources"][name]["baseline_validation"] = result
    if warning := behind_the_baseline(metrics["validation"], out["validation"]):
        log(f"warning: {warning}")
        metrics.setdefault("warnings", []).append(warning)  # the model card shows it too
    if test.ids:
        test_outputs = _as_outputs(baseline.probabilities(texts(test)), labels)
        out["test"], by_source = per_source(test, test_outputs, labels, corpus.sources("test"))
        for name, result in by_source.items():
            metrics["sources"][name]["baseline"] = result
            log(f"baseline {name}: {_fmt(result)}")
    return out


BEHIND_BY = 0.05  # validation accuracy; more than noise on a few hundred rows


def behind_the_baseline(lstm: dict, baseline: dict) -> str | None:
    """A warning when the LSTM's validation accuracy trails the baseline's by more than
    ``BEHIND_BY``: on a small dataset the default schedule stops it before it has learnt."""
    gap = baseline["accuracy"] - lstm["accuracy"]
    if gap <= BEHIND_BY:
        return None
    return (
        f"the LSTM's validation accuracy {lstm['accuracy']:.3f} is {gap:.3f} below "
        f"the baseline's {baseline['accuracy']:.3f} on the same rows. On a small dataset it "
        "is likely undertrained: try --epochs 20 --lr-decay 1.0 --patience 3 "
        "(docs/training.md, 'Small datasets')"
    )


def _as_outputs(probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """The baseline's probabilities in the model's output form (one column when binary)."""
    return probs[:, 1:] if len(labels) == 2 and probs.shape[1] == 2 else probs


def out_of_domain(onnx_path: Path, encoder, labels: list[str]) -> dict:
    """The hand-written non-IMDB texts (negative / positive): a check, too small to rank."""
    from training.export import decide

    texts = ood_texts()
    outputs = onnx_scores(onnx_path, encoder.encode_ids([t["text"] for t in texts]))
    polar = [labels.index("negative"), labels.index("positive")]
    truth = np.array([polar[t["label"]] for t in texts])
    if outputs.shape[1] == 1:
        return classification_metrics(truth, outputs[:, 0])
    return label_metrics(truth, probabilities(outputs), decide(outputs), labels)


def ood_texts() -> list[dict]:
    path = Path(__file__).with_name("out_of_domain.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def int8_variant(onnx_path, validation: Rows, test: Rows, val_outputs, metrics, log) -> dict:
    """Dynamic int8 weights, kept when validation accuracy drops at most 0.3 points; its
    test accuracy is reported, never used to decide."""
    int8_path = onnx_path.with_name("model.int8.onnx")
    with quiet_quantizer():
        quantize_int8(onnx_path, int8_path)
    val_int8 = figures(validation, onnx_scores(int8_path, validation.ids), metrics["labels"])
    drop = figures(validation, val_outputs, metrics["labels"])["accuracy"] - val_int8["accuracy"]
    kept = drop <= INT8_MAX_DROP
    result = {"validation_accuracy": val_int8["accuracy"], "accuracy_drop": drop, "kept": kept}
    if test.ids:
        result["accuracy"] = figures(test, onnx_scores(int8_path, test.ids), metrics["labels"])[
            "accuracy"
        ]
    log(f"int8: validation accuracy {val_int8['accuracy']:.4f} (drop {drop:+.4f}); kept: {kept}")
    if not kept:
        int8_path.unlink()
    return result


def reference_texts(corpus: Corpus) -> list[str]:
    """Texts the service re-scores at load time: short, long, truncated, odd characters."""
    picks = [t["text"] for t in ood_texts()[:6]]
    rows = corpus.test or corpus.validation
    by_length = sorted(rows, key=lambda e: len(e.text))
    picks += [by_length[0].text, by_length[len(by_length) // 2].text, by_length[-1].text]
    picks += ["Café\u00a0crème — “naïve” ﬁlm!!<br /><br />Didn’t love it.", "\u0301"]
    return picks


def _fmt(d: dict) -> str:
    return ", ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in d.items()
        if not isinstance(v, dict | list)
    )
