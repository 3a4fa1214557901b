"""OpenAPI response examples: the committed model's real answers to the request examples."""

from __future__ import annotations

# /predict on PredictRequest's first example.
PREDICT_EXAMPLE = {
    "model": {"name": "sentiment-general", "version": "g16"},
    "predictions": [
        {
            "label": "positive",
            "score": 0.9975,
            "probabilities": {"negative": 0.0008, "neutral": 0.0009, "positive": 0.9983},
            "tokens": 16,
            "truncated": False,
            "unknown_tokens": 0,
        }
    ],
}

# /predict with "sentences": true, on PredictRequest's third example.
SENTENCES_EXAMPLE = {
    "model": {"name": "sentiment-general", "version": "g16"},
    "predictions": [
        {
            "label": "negative",
            "score": -0.1361,
            "probabilities": {"negative": 0.561, "neutral": 0.0141, "positive": 0.4249},
            "tokens": 10,
            "truncated": False,
            "unknown_tokens": 0,
            "sentences": [
                {
                    "text": "The food was excellent.",
                    "start": 0,
                    "end": 23,
                    "label": "positive",
                    "probabilities": {"negative": 0.0069, "neutral": 0.006, "positive": 0.9872},
                },
                {
                    "text": "The service was terrible.",
                    "start": 24,
                    "end": 49,
                    "label": "negative",
                    "probabilities": {"negative": 0.9869, "neutral": 0.0072, "positive": 0.0059},
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
    "model": {"name": "sentiment-general", "version": "g16"},
    "prediction": {
        "label": "negative",
        "score": -0.5842,
        "probabilities": {"negative": 0.7837, "neutral": 0.0168, "positive": 0.1995},
        "tokens": 10,
        "truncated": False,
        "unknown_tokens": 0,
    },
    "target": "negative",
    "method": "leave-one-out",
    "tokens": [
        _token("The", 0, -0.0092), _token("food", 4, -0.0456), _token("was", 9, -0.023),
        _token("excellent", 13, -0.192), _token("but", 23, 0.1739), _token("the", 27, 0.0047),
        _token("service", 31, -0.0288), _token("was", 39, 0.0497), _token("terrible", 43, 0.7405),
        _token(".", 51, -0.098),
    ],
}  # fmt: skip
