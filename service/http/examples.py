"""OpenAPI response examples: the committed model's real answers to the request examples."""

from __future__ import annotations

# /predict on PredictRequest's first example.
PREDICT_EXAMPLE = {
    "model": {"name": "sentiment-general", "version": "g10"},
    "predictions": [
        {
            "label": "positive",
            "score": 0.9969,
            "probabilities": {"negative": 0.001, "neutral": 0.0012, "positive": 0.9978},
            "tokens": 16,
            "truncated": False,
            "unknown_tokens": 0,
        }
    ],
}

# /predict with "sentences": true, on PredictRequest's third example.
SENTENCES_EXAMPLE = {
    "model": {"name": "sentiment-general", "version": "g10"},
    "predictions": [
        {
            "label": "negative",
            "score": -0.0036,
            "probabilities": {"negative": 0.4871, "neutral": 0.0295, "positive": 0.4835},
            "tokens": 10,
            "truncated": False,
            "unknown_tokens": 0,
            "sentences": [
                {
                    "text": "The food was excellent.",
                    "start": 0,
                    "end": 23,
                    "label": "positive",
                    "probabilities": {"negative": 0.0073, "neutral": 0.0055, "positive": 0.9871},
                },
                {
                    "text": "The service was terrible.",
                    "start": 24,
                    "end": 49,
                    "label": "negative",
                    "probabilities": {"negative": 0.9682, "neutral": 0.0233, "positive": 0.0084},
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
    "model": {"name": "sentiment-general", "version": "g10"},
    "prediction": {
        "label": "negative",
        "score": -0.5203,
        "probabilities": {"negative": 0.735, "neutral": 0.0502, "positive": 0.2147},
        "tokens": 10,
        "truncated": False,
        "unknown_tokens": 0,
    },
    "target": "negative",
    "method": "leave-one-out",
    "tokens": [
        _token("The", 0, -0.0168), _token("food", 4, -0.0285), _token("was", 9, -0.0405),
        _token("excellent", 13, -0.1959), _token("but", 23, 0.2161), _token("the", 27, 0.0091),
        _token("service", 31, -0.0135), _token("was", 39, 0.0191), _token("terrible", 43, 0.6897),
        _token(".", 51, -0.0379),
    ],
}  # fmt: skip
