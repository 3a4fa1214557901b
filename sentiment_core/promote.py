"""``sentiment-promote``: choose which version of a model is served."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sentiment_core.bundle import PROMOTED_FILE, bundle_versions, promote, promoted_bundle
from sentiment_core.manifest import BundleError

# The service's own setting if set (containers), else the project's models/, as
# sentiment-serve and sentiment-train use (not ./models: that depends on the directory);
# ./models only for an installed package, which has no project folder.
PROJECT_MODELS = Path(__file__).resolve().parents[1] / "models"
DEFAULT_ROOT = Path(
    os.environ.get("SENTIMENT_MODELS_ROOT")
    or (PROJECT_MODELS if PROJECT_MODELS.is_dir() else "models")
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sentiment-promote",
        description=f"Write <models root>/<model>/{PROMOTED_FILE}: the version the service "
        "serves (a running service picks it up on restart, or through POST /admin/model).",
    )
    parser.add_argument("model", help="model name, e.g. sentiment-general")
    parser.add_argument("version", nargs="?", help="version directory; omit to list versions")
    parser.add_argument(
        "--models-root",
        type=Path,
        default=DEFAULT_ROOT,
        help=f"default: $SENTIMENT_MODELS_ROOT, else the project's models/ ({PROJECT_MODELS})",
    )
    parser.add_argument("--force", action="store_true", help="promote a smoke run (--limit) too")
    args = parser.parse_args(argv)
    try:
        if args.version is None:
            return _list(args.models_root, args.model)
        bundle = promote(args.models_root, args.model, args.version, force=args.force)
    except (BundleError, OSError) as exc:  # OSError: a read-only models folder, say
        print(f"sentiment-promote: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.model}: serving {bundle.name} from the next start ({bundle})")
    return 0


def _list(models_root: Path, name: str) -> int:
    try:
        current = promoted_bundle(models_root, name).name
    except BundleError as exc:
        if isinstance(exc.__cause__, OSError | UnicodeError):
            raise  # PROMOTED unreadable: listing without its mark would mislead
        current = None  # none promoted, or a version that is gone: the list helps
    versions = bundle_versions(models_root, name)
    if not versions:
        print(
            f"sentiment-promote: error: no versions of {name!r} under {models_root}",
            file=sys.stderr,
        )
        return 2
    for version in versions:
        print(f"{'*' if version.name == current else ' '} {version.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
