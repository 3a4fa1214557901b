"""The sessions' memory: one onnxruntime arena for the process (``SENTIMENT_SHARED_ARENA``)
or one per session, with the same scores either way. What it saves is measured by
``bench.run`` (peak RSS), not here."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from service.inference.scorer import register_shared_arena, session_options
from service.model.loader import Speedups, load_bundle
from service.settings import Settings
from tests.support.sessions import ENV_ALLOCATORS, sessions_of, uses_shared_arena


@pytest.fixture(scope="module")
def texts(bundle_dir) -> list[str]:
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    refs = [r["text"] for r in manifest["reference"]]
    return refs + [" ".join(refs) * k for k in (1, 4)] + ["ok", "not good at all"]


@pytest.mark.parametrize("variant", ["float", "int8"])
@pytest.mark.parametrize("grouped", [True, False])
def test_the_shared_arena_gives_the_per_session_arenas_scores(bundle_dir, texts, variant, grouped):
    own = load_bundle(
        bundle_dir, variant=variant, speedups=Speedups(grouped_runs=grouped, shared_arena=False)
    )
    shared = load_bundle(
        bundle_dir, variant=variant, speedups=Speedups(grouped_runs=grouped, shared_arena=True)
    )
    assert len(sessions_of(shared.scorer)) == (4 if grouped else 1)
    assert all(uses_shared_arena(s) for s in sessions_of(shared.scorer))
    assert not any(uses_shared_arena(s) for s in sessions_of(own.scorer))
    ids = own.encoder.encode_ids(texts * 3)
    assert np.array_equal(shared.outputs(ids), own.outputs(ids))  # bit for bit


def test_two_models_on_the_one_arena_score_as_alone_from_four_threads(bundle_dir, texts):
    general_dir = Settings(models=["sentiment-general"]).resolved_model_dir()
    alone = Speedups(shared_arena=False)
    pairs = [(load_bundle(d), load_bundle(d, speedups=alone)) for d in (bundle_dir, general_dir)]
    ids = [shared.encoder.encode_ids(texts * 3) for shared, _ in pairs]
    expected = [own.outputs(model_ids) for (_, own), model_ids in zip(pairs, ids, strict=True)]
    with ThreadPoolExecutor(4) as pool:  # both models' runs in flight on the arena at once
        got = list(pool.map(lambda k: pairs[k % 2][0].outputs(ids[k % 2]), range(12)))
    for shared, _ in pairs:
        assert all(uses_shared_arena(s) for s in sessions_of(shared.scorer))
    for k, out in enumerate(got):
        assert np.array_equal(out, expected[k % 2])


def test_the_arena_is_registered_once_however_often_asked():
    register_shared_arena()
    register_shared_arena()  # onnxruntime would refuse a second allocator for the CPU
    options = session_options(1, shared_arena=True)
    assert options.get_session_config_entry(ENV_ALLOCATORS) == "1"
    with pytest.raises(RuntimeError, match=ENV_ALLOCATORS):
        session_options(1).get_session_config_entry(ENV_ALLOCATORS)
