"""OpenAPI response examples: the committed model's real answers to the request examples."""

from __future__ import annotations

# /predict with "sentences": true, on PredictRequest's third example.
SENTENCES_EXAMPLE = {
    "model": {"name": "sentiment-general", "version": "g9n"},
    "predictions": [
        {
            "label": "negative",
            "score": -0.0424,
            "probabilities": {"negative": 0.5103, "neutral": 0.0219, "positive": 0.4679},
            "tokens": 10,
            "truncated": False,
            "unknown_tokens": 0,
            "sentences": [
                {
                    "text": "The food was excellent.",
                    "start": 0,
                    "end": 23,
                    "label": "positive",
                    "probabilities": {"negative": 0.0069, "neutral": 0.0046, "positive": 0.9885},
                },
                {
                    "text": "The service was terrible.",
                    "start": 24,
                    "end": 49,
                    "label": "negative",
                    "probabilities": {"negative": 0.9708, "neutral": 0.0211, "positive": 0.0082},
                },
            ],
            "mixed": True,
        }
    ],
}


def _token(text: str, start: int, weight: float) -> dict:
    return {"text": text, "start": start, "end": start + len(text), "token": text.lower(),
            "weight": weight}  # fmt: skip


# /explain on ExplainRequest's example.
EXPLAIN_EXAMPLE = {
    "model": {"name": "sentiment-general", "version": "g9n"},
    "prediction": {
        "label": "negative",
        "score": -0.4801,
        "probabilities": {"negative": 0.7163, "neutral": 0.0475, "positive": 0.2362},
        "tokens": 10,
        "truncated": False,
        "unknown_tokens": 0,
    },
    "target": "negative",
    "method": "leave-one-out",
    "tokens": [
        _token("The", 0, -0.0023), _token("food", 4, -0.033), _token("was", 9, -0.0422),
        _token("excellent", 13, -0.2252), _token("but", 23, 0.1738), _token("the", 27, 0.0095),
        _token("service", 31, -0.0118), _token("was", 39, 0.0313), _token("terrible", 43, 0.6771),
        _token(".", 51, -0.0577),
    ],
}  # fmt: skip
