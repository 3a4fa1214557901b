"""MODEL_CARD.md: what the model is, what it learned from, and its figures per source,
the classical baseline's beside them, with the training curves and confusion matrices."""

from __future__ import annotations

from training.progress import plural


def model_card(manifest: dict, metrics: dict) -> str:
    hp = manifest["hyperparameters"]
    return "\n".join(
        [
            f"# Model card: {manifest['name']} {manifest['version']}",
            "",
            _what_it_answers(manifest),
            "",
            "## Model",
            _architecture(hp, manifest),
            "",
            "## Data",
            _data_table(hp, metrics),
            "",
            "## Figures",
            "Test splits scored once, at the end, through onnxruntime and the shared tokenizer "
            "(the service's path). Baseline: TF-IDF (word 1-2 grams) + logistic regression on "
            "the same training rows. Macro-F1 and average recall are over the labels a source "
            "has; polar accuracy: a polar-only set scored by a model that can say neutral "
            "(neutral counts as wrong).",
            "",
            _figures_table(metrics),
            "",
            *(f"**Warning:** {warning}\n" for warning in metrics.get("warnings", ())),
            *_other_figures(metrics),
            *_training_options(hp),
            "",
            "Validation rows, per source: they chose the best epoch, the temperature and any "
            "stacking, so these figures are optimistic; a source without a test split has only "
            "these.",
            "",
            _validation_table(metrics),
            "",
            "![training curves](curves.png)",
            "",
            f"![{confusion_splits(metrics)} confusion matrices](confusion.png)",
            "",
            "## Intended use and limits",
            _limits(hp, manifest),
            "",
        ]
    )


def _what_it_answers(manifest: dict) -> str:
    labels = manifest["labels"]
    if manifest["decision"]["rule"] == "threshold":
        return (
            f"Binary sentiment classifier: `score` = P({labels[1]}); label `{labels[1]}` when "
            f"score ≥ {manifest['decision']['threshold']}, else `{labels[0]}`."
        )
    return (
        f"{len(labels)}-class sentiment classifier ({', '.join(labels)}): one probability per "
        "label; the label is the most probable one. The API's `score` is "
        "P(positive) − P(negative), in [−1, 1]."
    )


def _architecture(hp: dict, manifest: dict) -> str:
    arch = f"{'Bidirectional ' if hp['bidirectional'] else ''}{hp['cell'].upper()}({hp['units']})"
    if hp.get("pooling", "last") != "last":
        arch += " → [final states, mean and max over real tokens]"
    n = len(manifest["labels"])
    head = (
        "Dense(1, sigmoid)" if manifest["output"]["kind"] == "sigmoid" else f"Dense({n}, softmax)"
    )
    if hp.get("ngram_buckets"):
        arch += f" + n-gram logit ({hp['ngram_buckets']:,} buckets)"
    return (
        f"Embedding({manifest['input']['vocab_size']}, {hp['embedding_dim']}) → {arch} → {head}, "
        "trained with Keras 3 and exported with tf2onnx (opset 17). Inputs: token ids from "
        f"`tokenizer.json`, at most {hp['max_length']} tokens ({hp['truncation']} truncation), "
        "post-padded with 0 and masked."
    )


def _data_table(hp: dict, metrics: dict) -> str:
    rows = [
        "| source | reader | train | validation | test | weight | left out (reason: rows) |",
        "|---|---|--:|--:|--:|--:|---|",
    ]
    specs = {s["name"]: s for s in hp.get("sources", [])}
    for name, report in metrics.get("data", {}).items():
        spec = specs.get(name, {})
        kept = report["kept"]
        left = {**report["dropped"], **report["skipped_labels"]}
        rows.append(
            f"| {name} | {spec.get('reader', '')} | {kept.get('train', 0):,} | "
            f"{kept.get('validation', 0):,} | {kept.get('test', 0):,} | "
            f"{spec.get('weight', 1.0):g} | {_reasons(left)} |"
        )
    split = (
        f"Validation: {hp['val_fraction']:.0%} of each source's training rows, by group "
        "(IMDB: movie, SemEval: tweet id, Blitzer: product, others: the text), where a source "
        "has no validation files; early stopping on the pooled validation loss."
    )
    return "\n".join(rows) + "\n\n" + split


def _reasons(counts: dict) -> str:
    return "; ".join(f"{reason}: {n:,}" for reason, n in counts.items()) or "none"


def confusion_splits(metrics: dict) -> str:
    """Which split confusion.png shows: the test splits, or validation when there is none."""
    return "test" if "test" in metrics else "validation"


def _figures_table(metrics: dict) -> str:
    if "test" not in metrics:
        return "No test split in this run's config: see the validation figures below."
    rows = [
        "| test split | n | accuracy | macro-F1 | avg recall | recall by label | polar acc | ECE "
        "| baseline acc | baseline macro-F1 | baseline avg recall |",
        "|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|",
    ]
    sources = {name: s for name, s in metrics.get("sources", {}).items() if "test" in s}
    if len(sources) > 1 and "test" in metrics:
        sources["**pooled**"] = {"test": metrics["test"], **_pooled_baseline(metrics)}
    for name, figures in sources.items():
        lstm, base = figures["test"], figures.get("baseline", {})
        rows.append(
            f"| {name} | {lstm['n']:,} | **{lstm['accuracy']:.4f}** | {lstm['macro_f1']:.4f} | "
            f"{lstm['average_recall']:.4f} | {_recalls(lstm.get('recall'))} | "
            f"{_maybe(lstm.get('polar_accuracy'))} | "
            f"{lstm['ece']:.4f} | {_maybe(base.get('accuracy'))} | "
            f"{_maybe(base.get('macro_f1'))} | {_maybe(base.get('average_recall'))} |"
        )
    return "\n".join(rows)


def _validation_table(metrics: dict) -> str:
    sources = {n: s for n, s in metrics.get("sources", {}).items() if "validation" in s}
    # Bundles trained before the baseline was scored per validation source have no columns.
    baseline = any("baseline_validation" in s for s in sources.values())
    rows = [
        "| validation split | n | accuracy | macro-F1 | avg recall | recall by label | polar acc "
        "| ECE |"
        + (" baseline acc | baseline macro-F1 | baseline avg recall |" if baseline else ""),
        "|---|--:|--:|--:|--:|---|--:|--:|" + ("--:|--:|--:|" if baseline else ""),
    ]
    if len(sources) > 1:
        pooled = metrics.get("baseline", {}).get("validation")
        sources["**pooled**"] = {"validation": metrics["validation"], "baseline_validation": pooled}
    for name, figures in sources.items():
        lstm, base = figures["validation"], figures.get("baseline_validation") or {}
        rows.append(
            f"| {name} | {lstm['n']:,} | {lstm['accuracy']:.4f} | {lstm['macro_f1']:.4f} | "
            f"{lstm['average_recall']:.4f} | {_recalls(lstm.get('recall'))} | "
            f"{_maybe(lstm.get('polar_accuracy'))} | {lstm['ece']:.4f} |"
            + (
                f" {_maybe(base.get('accuracy'))} | {_maybe(base.get('macro_f1'))} | "
                f"{_maybe(base.get('average_recall'))} |"
                if baseline
                else ""
            )
        )
    return "\n".join(rows)


def _pooled_baseline(metrics: dict) -> dict:
    pooled = metrics.get("baseline", {}).get("test")
    return {"baseline": pooled} if pooled else {}


def _recalls(recall: dict | None) -> str:
    """Each label's recall, as in metrics.json (only the labels the split holds)."""
    return ", ".join(f"{label} {value:.3f}" for label, value in (recall or {}).items())


def _maybe(value) -> str:
    return "" if value is None else f"{value:.4f}"


def _other_figures(metrics: dict) -> list[str]:
    lines = []
    test = metrics.get("test", {})
    if test.get("roc_auc") is not None:  # binary models: the figures they always reported
        cm = test["confusion_matrix"]
        lines.append(
            f"- Test (pooled): ROC-AUC {test['roc_auc']:.4f}, F1 {test['f1']:.4f}; confusion "
            f"tn={cm['tn']} fp={cm['fp']} fn={cm['fn']} tp={cm['tp']}"
        )
    if validation := metrics.get("validation"):
        lines.append(f"- Validation (pooled): accuracy {validation['accuracy']:.4f}")
    if ood := metrics.get("out_of_domain"):
        lines.append(
            f"- Hand-written non-IMDB texts ({ood['n']}: products, restaurants, travel, short "
            f"sentences, negation; negative/positive): accuracy {ood['accuracy']:.4f}"
        )
    if int8 := metrics.get("int8"):
        verdict = "kept" if int8["kept"] else "discarded"
        tested = f", test {int8['accuracy']:.4f}" if "accuracy" in int8 else ""
        lines.append(
            f"- int8 variant: validation accuracy {int8['validation_accuracy']:.4f} ({verdict}; "
            f"gate: within 0.3 points of the float model on validation){tested}"
        )
    parity = metrics["parity"]
    lines.append(
        f"- ONNX vs Keras on {parity['texts']:,} texts from every source: "
        f"max |diff| {parity['max_abs_diff']:.2e}, {parity['label_mismatches']} label mismatches"
    )
    training = metrics["training"]
    lines.append(
        f"- Training: {plural(training['epochs_run'], 'epoch')} (best: epoch "
        f"{training['best_epoch']}), {training['fit_seconds']:.0f} s fit on CPU"
    )
    return lines + _initial_weights(training) + _ngram(training) + _calibration(training)


# Training options that are off by default: the card's line for each one a run turned on
# (a bundle from before an option lacks its key: off).
_OPTION_LINES = {
    "adversarial": "- Trained adversarially (Miyato et al. 2017): every step also on its batch "
    "with each text's embeddings moved by ε = {} (L2 norm over the text) towards a higher loss",
    "average_weights": "- Weights: the exponential moving average of the training steps' "
    "weights (decay {} per step), validated and kept in place of the raw weights",
}


def _training_options(hp: dict) -> list[str]:
    return [line.format(hp[key]) for key, line in _OPTION_LINES.items() if hp.get(key)]


def _ngram(training: dict) -> list[str]:
    if not (ngram := training.get("ngram")):
        return []
    stack = ngram["stacking"]
    if not isinstance(stack["bias"], list):  # bundles before N-class stacking: scalars
        stack = {"rnn": [[stack["rnn"]]], "ngram": [[stack["ngram"]]], "bias": [stack["bias"]]}
    if len(stack["bias"]) == 1:  # one sigmoid logit: the two weights say how it is mixed
        (rnn,), (gram,), (bias,) = stack["rnn"][0], stack["ngram"][0], stack["bias"]
        how = f"logit = {rnn:.3f} × RNN + {gram:.3f} × n-gram {bias:+.3f}"
        model = "NBSVM-style logistic regression"
    else:
        how = f"each label's logit a weighted sum of the {2 * len(stack['bias'])} logits"
        model = "multinomial logistic regression"
    return [
        f"- N-gram branch ({model} over unigrams and {ngram['buckets']:,} hashed bigram "
        f"buckets, C = {ngram['C']:g}), stacked with the RNN on validation: {how}; validation "
        f"accuracy RNN {ngram['rnn_val_accuracy']:.4f}, stacked {ngram['stacked_val_accuracy']:.4f}"
    ]


def _calibration(training: dict) -> list[str]:
    cal = training.get("calibration") or {}
    if cal.get("method") != "temperature":
        return []
    return [
        f"- Probabilities temperature-scaled on validation (T = {cal['temperature']:.3f}, folded "
        f"into the output layer; labels unchanged): validation NLL {cal['val_nll'][0]:.4f} → "
        f"{cal['val_nll'][1]:.4f}, ECE {cal['val_ece'][0]:.4f} → {cal['val_ece'][1]:.4f}"
    ]


def _initial_weights(training: dict) -> list[str]:
    """Where the initial weights came from (issue 16 options), when not from random init."""
    lines = []
    if vectors := training.get("vectors"):
        from training.vectors import describe

        lines += [f"- {line}" for line in describe(vectors)]
    if pre := training.get("pretraining"):
        last = pre["perplexity"][-1] if pre.get("perplexity") else {}
        shown = ", ".join(f"{k} {v:.1f}" for k, v in last.items() if k != "other_share")
        lines.append(
            f"- Encoder pretrained as a language model on {pre['texts']:,} training texts "
            f"({plural(len(pre['seconds_per_epoch']), 'epoch')}, {pre['seconds']:.0f} s"
            f"{', reused from the cache' if pre.get('cache') == 'hit' else ''}); held-out "
            f"perplexity {shown or 'not measured'}"
        )
    return lines


def _limits(hp: dict, manifest: dict) -> str:
    labels = set(manifest["labels"])
    # Only a polarity model without a neutral class lacks one; "sad/calm/glad" is its own set.
    no_neutral = {"negative", "positive"} <= labels and "neutral" not in labels
    return (
        "English opinion text like the training sources (reviews, short sentences, tweets). "
        "Domain shift (other domains, sarcasm, other languages) lowers accuracy; labels of "
        "different corpora mean slightly different things, so read the figures per source. "
        + ("There is no neutral class. " if no_neutral else "")
        + "Probabilities are calibrated only as far as the ECE above shows, on those sources. "
        f"Texts longer than {hp['max_length']} tokens are cut ({hp['truncation']}). "
        "Not for decisions about people."
    )
