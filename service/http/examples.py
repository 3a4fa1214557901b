"""OpenAPI response examples: the committed model's real answers to the request examples."""

from __future__ import annotations

# /predict with "sentences": true, on PredictRequest's third example.
SENTENCES_EXAMPLE = {
    "model": {"name": "sentiment-lstm", "version": "20261122-032328"},
    "predictions": [
        {
            "label": "negative",
            "score": 0.1129,
            "probabilities": {"negative": 0.8871, "positive": 0.1129},
            "tokens": 10,
            "truncated": False,
            "unknown_tokens": 0,
            "sentences": [
                {
                    "text": "The food was excellent.",
                    "start": 0,
                    "end": 23,
                    "label": "positive",
                    "probabilities": {"negative": 0.0859, "positive": 0.9141},
                },
                {
                    "text": "The service was terrible.",
                    "start": 24,
                    "end": 49,
                    "label": "negative",
                    "probabilities": {"negative": 0.987, "positive": 0.013},
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
    "model": {"name": "sentiment-lstm", "version": "20261122-032328"},
    "prediction": {
        "label": "negative",
        "score": 0.0869,
        "probabilities": {"negative": 0.9131, "positive": 0.0869},
        "tokens": 10,
        "truncated": False,
        "unknown_tokens": 0,
    },
    "target": "negative",
    "method": "leave-one-out",
    "tokens": [
        _token("The", 0, -0.0084), _token("food", 4, 0.0057), _token("was", 9, 0.0321),
        _token("excellent", 13, -0.0749), _token("but", 23, 0.0204), _token("the", 27, -0.0141),
        _token("service", 31, 0.0094), _token("was", 39, 0.0256), _token("terrible", 43, 0.7376),
        _token(".", 51, 0.0124),
    ],
}  # fmt: skip
