"""Every served model by name, each with its own runtime and batcher.

Which models: ``SENTIMENT_MODEL_DIR`` (one bundle directory), else the names in
``SENTIMENT_MODELS`` (or every model with a PROMOTED file under the models root), each at
its promoted version. Requests that name no model go to the default model.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from pathlib import Path

from sentiment_core.bundle import promoted_bundle, unpromoted_models, version_name
from sentiment_core.manifest import read_manifest
from service.errors import BundleError, NotFound, NotReady, ShuttingDown
from service.metrics import Metrics
from service.model.runtime import ModelManager, ModelRuntime
from service.settings import NO_MODELS_HINT, Settings

log = logging.getLogger("service.model")


class ModelRegistry:
    def __init__(self, settings: Settings, metrics: Metrics):
        self.settings = settings
        self.metrics = metrics
        self.shutting_down = False
        self.managers: dict[str, ModelManager] = {
            name: ModelManager(name, locate, settings, metrics)
            for name, locate in _locations(settings).items()
        }
        names = list(self.managers)
        self.default_name = settings.default_of(names) if names else None
        self._first_by_swap: str | None = None

    def manager(self, name: str | None = None) -> ModelManager:
        """The named model's manager (the default model's for None)."""
        if self.shutting_down:
            raise ShuttingDown()
        if name is None:
            if self.default_name is None:
                raise NotReady(f"no model to serve: {self.no_models_reason()}")
            name = self.default_name
        manager = self.managers.get(name)
        if manager is None:
            served = ", ".join(repr(n) for n in self.managers) or "none"
            raise NotFound(
                # a name is echoed only in part: a 100 kB one would fill the answer and the log
                f"no model named {name[:100]!r}; the served models are {served}",
                field="model",
            )
        return manager

    def manager_to_activate(self, name: str | None, path: Path | None) -> ModelManager:
        """The manager a swap goes to; a service with no model at all takes the bundle
        at ``path`` as its first model, under the name its manifest gives."""
        if name is None and self.default_name is None and path is not None:
            name = _name_of(path)
            self.managers[name] = ModelManager(name, lambda: path, self.settings, self.metrics)
            self.default_name = name
            self._first_by_swap = name
        return self.manager(name)

    def swap_failed(self, name: str) -> None:
        """Forget a first model whose activation failed: nothing is served yet, as before."""
        if name == self._first_by_swap and self.managers[name].active is None:
            del self.managers[name]
            self.default_name = self._first_by_swap = None

    def current(self, name: str | None = None) -> ModelRuntime:
        """The named (or default) model's active runtime; raises if it is not serving."""
        return self.manager(name).current()

    @property
    def ready(self) -> bool:
        return bool(self.managers) and all(m.active is not None for m in self.managers.values())

    def not_ready_reason(self) -> str | None:
        if self.shutting_down:
            return "shutting down"
        if not self.managers:
            return self.no_models_reason()
        problems = [
            f"{name}: {m.not_ready_reason}" if len(self.managers) > 1 else m.not_ready_reason
            for name, m in self.managers.items()
            if m.active is None
        ]
        return "; ".join(problems) if problems else None

    def no_models_reason(self) -> str:
        return f"no model bundle under {self.settings.models_root}: {NO_MODELS_HINT}"

    async def load_all(self) -> None:
        await asyncio.gather(*(m.load_initial() for m in self.managers.values()))
        self.metrics.ready.set(1 if self.ready else 0)

    def refuse_queued(self) -> int:
        """Every model's queued texts answered with 503; see ``Batcher.refuse_queued``."""
        return sum(m.active.batcher.refuse_queued() for m in self.managers.values() if m.active)

    async def shutdown(self) -> None:
        self.shutting_down = True
        self.metrics.ready.set(0)
        await asyncio.gather(*(m.shutdown() for m in self.managers.values()))


def _locations(settings: Settings) -> dict[str, Callable[[], Path]]:
    """Each served name and how to find its bundle (called at load time: errors there
    become that model's not-ready reason)."""
    if settings.model_dir is not None:
        path = settings.model_dir
        return {_name_of(path): lambda: path}
    root = settings.models_root
    if not settings.models and not settings.model_name:  # else those not listed are meant
        _warn_unpromoted(root)
    pins = settings.pinned_versions
    return {
        name: functools.partial(_bundle_dir, root, name, pins.get(name))
        for name in settings.served_models()
    }


def _bundle_dir(models_root: Path, name: str, pinned: str | None) -> Path:
    """The version pinned for this process (a worker: see ``Settings.pinned_versions``),
    or the one ``PROMOTED`` names now."""
    if pinned is None:
        return promoted_bundle(models_root, name)
    return models_root / name / version_name(models_root, name, pinned)


def _warn_unpromoted(models_root: Path) -> None:
    """A model folder without PROMOTED is not served: say so, or it vanishes unnoticed."""
    for name in unpromoted_models(models_root):
        log.warning(
            "model folder has versions but no PROMOTED file naming one: not served; "
            f"promote one with `sentiment-promote {name} VERSION`",
            extra={"model": name, "folder": str(models_root / name)},
        )


def _name_of(bundle_dir: Path) -> str:
    """The model name a bundle directory serves under (its manifest's, when readable)."""
    try:
        return read_manifest(bundle_dir).name
    except (BundleError, OSError):  # unreadable: its load will say why, under this name
        return bundle_dir.parent.name or "model"
