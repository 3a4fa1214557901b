"""The shape of the code, checked: who imports whom, and how large modules and functions grow.

The bundle contract (sentiment_core) is imported by both training and the service and
depends on neither; training never imports the service (docs: README "Layout").
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def python_files(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, package
    return files


def imported_packages(path: Path) -> set[str]:
    """Top-level names of everything ``path`` imports (at any depth, lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("training", {"service"}),
        ("sentiment_core", {"service", "training", "tensorflow", "keras", "onnxruntime", "onnx"}),
        ("service", {"training", "tensorflow", "keras", "tf2onnx"}),
    ],
)
def test_layers_import_only_downwards(package, forbidden):
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in python_files(package)
        for name in imported_packages(path) & forbidden
    }
    assert not wrong, sorted(wrong)


def test_both_sides_use_the_contract_package():
    for package in ("training", "service"):
        assert any("sentiment_core" in imported_packages(p) for p in python_files(package))


def test_importing_the_contract_loads_neither_runtime():
    code = (
        "import sys, pkgutil, importlib, sentiment_core\n"
        "for m in pkgutil.iter_modules(sentiment_core.__path__):\n"
        "    importlib.import_module('sentiment_core.' + m.name)\n"
        "print(sorted({'tensorflow', 'onnxruntime', 'service', 'training'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("package", ["service", "sentiment_core", "training"])
def test_modules_and_functions_stay_small(package):
    too_big = []
    for path in python_files(package):
        source = path.read_text()
        if (lines := len(source.splitlines())) > MAX_MODULE_LINES:
            too_big.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_big.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length}")
    assert not too_big, too_big


def test_every_speed_up_has_a_switch_that_defaults_on():
    from service.settings import Settings

    defaults = Settings.model_fields
    switches = (
        "fast_path",
        "python_encoder",
        "vocab_table",
        "encode_on_loop",
        "grouped_runs",
        "shared_arena",
    )
    for switch in switches:
        assert defaults[switch].default is True, switch
    assert defaults["pin_inference_threads"].default == "auto"
