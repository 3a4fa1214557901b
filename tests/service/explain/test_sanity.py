"""Do the /explain weights point at what drives the model? Two checks that can fail.

1. On constructed texts, the largest weights fall on the words that carry the sentiment.
2. A deletion curve over 200 IMDB test reviews: deleting the top-weighted tokens lowers
   the predicted label's probability more than deleting as many random tokens.

Weights come from POST /explain (an in-process app: the real endpoint, batcher and
onnxruntime); the deletions are scored on the bundle directly. `-s` prints the curve
(the README's figures).
"""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest

from tests.support.servers import make_settings, serve
from training.data import default_data_path, load_imdb

# (text, the words that carry its sentiment, whether it holds both polarities)
CONSTRUCTED = [
    ("The food was excellent but the service was terrible.", {"excellent", "terrible"}, True),
    ("I loved the music, but the plot was boring.", {"loved", "boring"}, True),
    ("The acting was awful, yet the photography is beautiful.", {"awful", "beautiful"}, True),
    ("Great performances, terrible ending.", {"Great", "terrible"}, True),
    ("A wonderful cast wasted on a dull and predictable script.",
     {"wonderful", "wasted", "dull", "predictable"}, True),
    ("An excellent, moving and beautifully shot film.", {"excellent", "moving", "beautifully"}, False),
    ("A boring, stupid and pointless movie.", {"boring", "stupid", "pointless"}, False),
]  # fmt: skip

REVIEWS = 200
MAX_TOKENS = 512  # the service's default /explain limit: longer reviews are not sampled
DELETED = (1, 2, 5, 10, 20)
RANDOM_DRAWS = 5
SEED = 19


async def explain_all(texts: list[str]) -> list[dict]:
    async with serve(make_settings(explain_max_tokens=MAX_TOKENS)) as (_, client):
        out: list[dict] = []
        # A few at a time (they share batches), within the queue's 2,048 texts: each
        # request queues one variant per token, up to 513.
        for start in range(0, len(texts), 3):
            chunk = texts[start : start + 3]
            responses = await asyncio.gather(
                *(client.post("/explain", json={"text": t}) for t in chunk)
            )
            for response in responses:
                assert response.status_code == 200, response.text
                out.append(response.json())
        return out


@pytest.mark.parametrize(
    ("text", "carriers", "both"), CONSTRUCTED, ids=[c[0][:30] for c in CONSTRUCTED]
)
def test_largest_weights_fall_on_the_sentiment_words(text, carriers, both):
    (data,) = asyncio.run(explain_all([text]))
    tokens = data["tokens"]
    strongest_for = max(tokens, key=lambda t: t["weight"])
    strongest_against = min(tokens, key=lambda t: t["weight"])
    print(
        f"\n[constructed] {text} | {data['target']} "
        f"{data['prediction']['probabilities'][data['target']]:.3f} | towards: "
        f"{strongest_for['text']} {strongest_for['weight']:+.3f} | against: "
        f"{strongest_against['text']} {strongest_against['weight']:+.3f}"
    )
    assert strongest_for["text"] in carriers, (data["target"], tokens)
    if both:  # the other polarity's word is the one that pulls hardest the other way
        assert strongest_against["weight"] < 0
        assert strongest_against["text"] in carriers - {strongest_for["text"]}, tokens


@pytest.fixture(scope="module")
def sampled_reviews(bundle) -> list[str]:
    if not default_data_path().exists():
        pytest.fail(f"IMDB data not found at {default_data_path()} (see ../shared/data/README.md)")
    test = load_imdb(splits=("test",))["test"]
    rng = random.Random(SEED)
    picked: dict[int, list[str]] = {0: [], 1: []}
    for review in rng.sample(test, len(test)):
        group = picked[review.label]
        if (
            len(group) < REVIEWS // 2
            and len(bundle.encoder.encode_ids([review.text])[0]) <= MAX_TOKENS
        ):
            group.append(review.text)
        if all(len(g) == REVIEWS // 2 for g in picked.values()):
            break
    return picked[0] + picked[1]


def target_probability(
    bundle, sequences: list[list[int]], target: int
) -> tuple[np.ndarray, np.ndarray]:
    """P(target) for each sequence, and whether the model still predicts the target."""
    outputs = bundle.outputs(sequences)
    manifest = bundle.manifest
    return manifest.probabilities(outputs)[:, target], manifest.predicted(outputs) == target


@pytest.mark.slow
def test_deleting_top_weighted_tokens_moves_the_probability_more_than_random(
    bundle, sampled_reviews
):
    explained = asyncio.run(explain_all(sampled_reviews))
    rng = np.random.default_rng(SEED)
    top_drop = {k: [] for k in DELETED}
    random_drop = {k: [] for k in DELETED}
    flipped = {k: [] for k in DELETED}  # by deleting the top-weighted tokens
    for text, data in zip(sampled_reviews, explained, strict=True):
        ids = list(bundle.encoder.encode_ids([text])[0])
        target = bundle.labels.index(data["target"])
        weights = np.array([t["weight"] for t in data["tokens"]])
        assert len(weights) == len(ids)
        full = target_probability(bundle, [ids], target)[0][0]
        ranked = np.argsort(-weights, kind="stable")  # most supporting first
        for k in DELETED:
            k_here = min(k, len(ids) - 1)
            top = set(ranked[:k_here].tolist())
            draws = [
                set(rng.choice(len(ids), k_here, replace=False).tolist())
                for _ in range(RANDOM_DRAWS)
            ]
            variants = [[x for i, x in enumerate(ids) if i not in drop] for drop in [top, *draws]]
            p, kept = target_probability(bundle, variants, target)
            top_drop[k].append(full - p[0])
            flipped[k].append(not kept[0])
            random_drop[k].append(float(np.mean(full - p[1:])))
    print(
        f"\n[deletion curve] {len(sampled_reviews)} IMDB test reviews (<= {MAX_TOKENS} tokens, "
        f"seed {SEED}): mean fall in P(predicted label)"
    )
    print("  tokens deleted | top-weighted | random (mean of 5) | top > random | label flipped")
    for k in DELETED:
        top, rnd = np.array(top_drop[k]), np.array(random_drop[k])
        print(
            f"  {k:>14} | {top.mean():12.4f} | {rnd.mean():18.4f} | {np.mean(top > rnd):12.1%} "
            f"| {np.mean(flipped[k]):13.1%}"
        )
    for k in DELETED:
        top, rnd = np.array(top_drop[k]), np.array(random_drop[k])
        assert top.mean() > 2 * rnd.mean(), (k, top.mean(), rnd.mean())
        assert np.mean(top > rnd) > 0.7, (k, np.mean(top > rnd))
