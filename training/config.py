"""The job's settings: every field is a ``sentiment-train`` flag and a key of a config file.

Precedence: the defaults below < the config file's ``[train]`` table < flags given.
``--help`` prints each field's help, default and choices, taken from here.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

from sentiment_core.manifest import NAME_PATTERN

CELLS = ("lstm", "gru", "simple_rnn")
POOLINGS = ("last", "last+mean+max")
TRUNCATIONS = ("head", "tail", "head+tail")
HEADS = ("auto", "sigmoid", "softmax")
CLASS_WEIGHTS = ("none", "balanced", "balanced-per-source")
VECTORS = ("none", "glove-6b-50d", "wordllama-l2", "spacy-md")
VECTORS += tuple(f"glove-6b-50d+{other}" for other in VECTORS[2:])  # GloVe first, then the other
PRETRAIN_OTHER = ("predict", "mask")
FINETUNE_HEADS = ("zeros", "random")
PRETRAIN_TRANSFER = ("encoder", "embedding")
CALIBRATIONS = ("none", "temperature")


def _opt(default, help: str, choices: tuple = ()):
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class Config:
    # data
    config: str = _opt(
        "",
        "training config file (TOML): labels, sources, splits; see docs/training.md. Without one: the IMDB model. Its model is named by its [train] name, else after the file (mine.toml: mine)",
    )
    data: str = _opt(
        "",
        "IMDB archive (.tar.gz) or folder for imdb sources without a path; empty: $SENTIMENT_DATA, else ../shared/data/aclImdb_labeled.tar.gz",
    )
    data_dir: str = _opt(
        "",
        "folder that relative source paths start from; empty: the config file's data_dir, else the config file's folder",
    )
    val_fraction: float = _opt(
        0.1,
        "share of each source's training rows held out for validation, by group (IMDB: movie; SemEval: tweet id; Blitzer: product; else: text), where the source has no validation files",
    )
    limit: int = _opt(
        0,
        "smoke runs: at most this many train, validation and test rows per source, label-balanced (0: all)",
    )
    drop_test_overlap: bool = _opt(
        False, "drop training and validation rows whose text is also in a test split (any source)"
    )
    # tokenizer
    vocab_size: int = _opt(20000, "vocabulary size, built from the training rows only")
    max_length: int = _opt(
        800, "tokens per text the model reads; longer texts are cut (97% of IMDB reviews fit 800)"
    )
    truncation: str = _opt(
        "head+tail",
        "how a long text is cut: keep its head, its tail, or a quarter head and three quarters tail",
        TRUNCATIONS,
    )
    # model
    cell: str = _opt(
        "lstm",
        "recurrent cell (only the LSTM exports to one fused ONNX node, several times faster to serve)",
        CELLS,
    )
    bidirectional: bool = _opt(True, "read the text in both directions")
    embedding_dim: int = _opt(128, "size of each token's embedding")
    units: int = _opt(64, "units of the recurrent layer (per direction)")
    embedding_dropout: float = _opt(0.5, "dropout of whole embedding channels (0: none)")
    dropout: float = _opt(0.5, "dropout before the output layer (0: none)")
    pooling: str = _opt(
        "last+mean+max",
        "features for the output layer: the final states, or also the mean and max of the per-token outputs",
        POOLINGS,
    )
    head: str = _opt(
        "auto",
        "output layer: sigmoid (two labels, P(second label)), softmax (one probability per label); auto: sigmoid for two labels, softmax for more",
        HEADS,
    )
    ngram_buckets: int = _opt(
        0,
        "an n-gram branch: logistic regression over the unigrams and this many hashed bigram buckets (Naive-Bayes-weighted for two labels, multinomial for more), fit after the RNN and stacked with it on the validation rows; in the ONNX graph too (e.g. 2097152; 0: off)",
    )
    # optimisation
    epochs: int = _opt(
        6, "most epochs; training stops earlier when the validation loss stops improving"
    )
    batch_size: int = _opt(64, "texts per training step (batches hold texts of similar lengths)")
    learning_rate: float = _opt(2e-3, "AdamW's initial learning rate")
    lr_decay: float = _opt(0.5, "learning rate multiplied by this every epoch (1.0: constant)")
    weight_decay: float = _opt(1e-4, "AdamW's weight decay")
    patience: int = _opt(
        1,
        "epochs without a lower validation loss before stopping (the best epoch's weights are kept)",
    )
    class_weight: str = _opt(
        "none",
        "loss weight per label: balanced: every label weighs the same in all the training rows together; balanced-per-source: the same within each source, over the labels it has (e.g. SemEval's few negative tweets)",
        CLASS_WEIGHTS,
    )
    adversarial: float = _opt(
        0.0,
        "adversarial training: each step also learns from the batch with every text's embedding moved this far (L2 norm over the text) in the direction that raises its loss most; about twice the time per step (0: off)",
    )
    average_weights: float = _opt(
        0.0,
        "keep and validate an exponential moving average of the weights over the training steps, with this decay per step (e.g. 0.995); early stopping and the kept weights are the average's (0: off)",
    )
    calibration: str = _opt(
        "temperature",
        "after training: temperature scaling fit on the validation rows and folded into the output layer (probabilities calibrated, labels unchanged), or none",
        CALIBRATIONS,
    )
    seed: int = _opt(1337, "random seed (splits, subsets, sampling; and what --init-seed seeds)")
    init_seed: int = _opt(0, "seed of weights, dropout, batch order only (0 or --seed: that run)")
    # pretraining and word vectors (docs/training.md "Pretraining"); all off by default
    vectors: str = _opt(
        "none",
        "initialise the embedding rows of the words that have a pretrained vector: GloVe 6B 50d, WordLlama's Llama 2 subword embeddings (every word has one), spaCy en_core_web_md's 300-d vectors (their principal components when narrower), or GloVe in the first 50 dimensions and the other in the rest (needs the `vectors` extra; the bundle does not); none: random init",
        VECTORS,
    )
    pretrain: bool = _opt(
        False,
        "first train the embedding and recurrent layer as a language model (forward: next word, backward: previous word) on the training rows' texts, then fine-tune from them",
    )
    pretrain_epochs: int = _opt(2, "language-model epochs")
    pretrain_tokens: int = _opt(
        0, "tokens read per language-model epoch, a fresh random share each epoch (0: all)"
    )
    pretrain_window: int = _opt(
        200, "texts are cut into windows of at most this many tokens for the language model"
    )
    pretrain_output_vocab: int = _opt(
        4000,
        "the language model predicts the N most frequent words of the vocabulary, every other word as one 'other' class",
    )
    pretrain_target_share: float = _opt(
        0.25,
        "share of the positions of each window whose next/previous word is predicted (the output layer costs more than the LSTM)",
    )
    pretrain_other: str = _opt(
        "predict",
        "rare and unknown words as targets: predict them as the 'other' class, or mask them out of the loss",
        PRETRAIN_OTHER,
    )
    pretrain_learning_rate: float = _opt(2e-3, "the language model's Adam learning rate")
    pretrain_batch_size: int = _opt(128, "windows per language-model step")
    pretrain_heldout: float = _opt(
        0.02,
        "share of the training texts kept out of the language model to measure its perplexity (never validation or test text)",
    )
    pretrain_transfer: str = _opt(
        "encoder",
        "what the classifier takes from the language model: its embedding and LSTM (encoder), or its embedding only (the LSTM starts random)",
        PRETRAIN_TRANSFER,
    )
    pretrain_cache: str = _opt(
        ".cache/pretrain",
        "folder of pretrained encoders, one per hash of their inputs (texts, vocabulary, encoder shape, settings, seed); the default is under the project root; a relative path starts from the working directory (from the config file's folder in its [train] table); empty: no cache",
    )
    finetune_head: str = _opt(
        "zeros",
        "the output layer's initial weights when the encoder is pretrained: zeros (every text starts at the prior; the pretrained features, far larger than a random encoder's, do not start as noise) or random",
        FINETUNE_HEADS,
    )
    finetune_lr_ratio: float = _opt(
        1.0,
        "discriminative learning rates: the recurrent layer learns this times the output layer's rate, the embedding this squared (1.0: one rate)",
    )
    finetune_unfreeze: int = _opt(
        0,
        "gradual unfreezing over N epochs: epoch 1 trains the output layer only, epoch 2 also the recurrent layer, and so on; from epoch N+1 every layer trains (0: all from the start)",
    )
    # export and bundle
    parity_texts: int = _opt(
        2000,
        "texts per source on which ONNX must match Keras (max |diff| <= 1e-5, same labels), or the job fails",
    )
    quantize: bool = _opt(
        True,
        "also write an int8 model, kept when within 0.3 accuracy points of the float model on validation",
    )
    baseline: bool = _opt(
        True,
        "also train the TF-IDF + logistic regression baseline on the same rows and score it on the same test splits",
    )
    models_dir: str = _opt(
        "models",
        "where bundles are written: <models-dir>/<name>/<version>/; the default is the project's models/ (what sentiment-serve reads); a relative path starts from the working directory (from the config file's folder in its [train] table)",
    )
    name: str = _opt("sentiment-lstm", "model name (a folder under --models-dir)")
    version: str = _opt("", "bundle version (a folder name); empty: the UTC time (20261122-032328)")
    promote: bool = _opt(
        False,
        "make the new version the one served (writes <models-dir>/<name>/PROMOTED); "
        "a smoke run (--limit) needs --force too",
    )
    force: bool = _opt(False, "with --promote: promote a smoke run (--limit) as well")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def weights_seed(self) -> int:
        """What seeds the initial weights, dropout and batch order (--init-seed, else --seed)."""
        return self.init_seed or self.seed

    def problems(self) -> list[str]:
        """Values out of range (the types and choices are checked when read)."""
        if not_finite := self._not_finite():
            return not_finite  # NaN passes every comparison below: a NaN loss, exit 0
        out = [
            f"--{name.replace('_', '-')} must be at least {least}"
            for name, least in (
                ("limit", 0),
                ("seed", 0),  # numpy's generators take no negative seed
                ("init_seed", 0),
                ("vocab_size", 3),  # [PAD], [UNK] and at least one word
                ("max_length", 1),
                ("embedding_dim", 1),
                ("units", 1),
                ("epochs", 1),
                ("batch_size", 1),
                ("patience", 0),
                ("parity_texts", 1),
                ("pretrain_epochs", 1),
                ("pretrain_window", 2),
                ("pretrain_output_vocab", 1),
                ("pretrain_batch_size", 1),
                ("pretrain_tokens", 0),
                ("finetune_unfreeze", 0),
                ("adversarial", 0),
            )
            if getattr(self, name) < least
        ]
        for name in ("val_fraction", "embedding_dropout", "dropout", "pretrain_heldout",
                     "average_weights"):  # fmt: skip
            if not 0 <= getattr(self, name) < 1:
                out.append(f"--{name.replace('_', '-')} must be at least 0 and below 1")
        if self.learning_rate <= 0:
            out.append("--learning-rate must be above 0")
        if not 0 < self.lr_decay <= 1:
            out.append("--lr-decay must be in (0, 1]")
        if self.weight_decay < 0:
            out.append("--weight-decay must be at least 0")
        if not 0 < self.pretrain_target_share <= 1:
            out.append("--pretrain-target-share must be in (0, 1]")
        if self.ngram_buckets and self.ngram_buckets < 2 * self.vocab_size:
            out.append("--ngram-buckets must be 0 (off) or at least twice --vocab-size")
        if self.finetune_lr_ratio <= 0:
            out.append("--finetune-lr-ratio must be above 0")
        return out + self._folder_names()

    def _folder_names(self) -> list[str]:
        """--name and --version become folders and manifest fields: checked before the job
        runs, not when its bundle is written."""
        return [
            f"--{flag} {value[:80]!r} must be 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
            for flag, value in (("name", self.name), ("version", self.version))
            if value and not re.fullmatch(NAME_PATTERN, value)
        ] + ([] if self.name else ["--name must not be empty"])

    def _not_finite(self) -> list[str]:
        return [
            f"--{f.name.replace('_', '-')} must be a finite number (found {value})"
            for f in dataclasses.fields(self)
            if isinstance(value := getattr(self, f.name), float) and not math.isfinite(value)
        ]


# --help shows the flags in these groups, in this order (each group's first field).
GROUP_STARTS = {
    "config": "data",
    "vocab_size": "tokenizer",
    "cell": "model",
    "epochs": "optimisation",
    "vectors": "pretraining and word vectors",
    "parity_texts": "export and bundle",
}


def config_fields() -> list[dataclasses.Field]:
    return list(dataclasses.fields(Config))


def field_type(f: dataclasses.Field) -> type:
    """The field's Python type (annotations are strings under ``from __future__``)."""
    return {"int": int, "float": float, "bool": bool}.get(str(f.type), str)
