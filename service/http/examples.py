"""OpenAPI response examples: the committed model's real answers to the request examples."""

from __future__ import annotations

# /predict with "sentences": true, on PredictRequest's third example.
SENTENCES_EXAMPLE = {
    "model": {"name": "sentiment-general", "version": "g7"},
    "predictions": [
        {
            "label": "negative",
            "score": -0.3314,
            "probabilities": {"negative": 0.6194, "neutral": 0.0926, "positive": 0.288},
            "tokens": 10,
            "truncated": False,
            "unknown_tokens": 0,
            "sentences": [
                {
                    "text": "The food was excellent.",
                    "start": 0,
                    "end": 23,
                    "label": "positive",
                    "probabilities": {"negative": 0.0128, "neutral": 0.0128, "positive": 0.9745},
                },
                {
                    "text": "The service was terrible.",
                    "start": 24,
                    "end": 49,
                    "label": "negative",
                    "probabilities": {"negative": 0.928, "neutral": 0.0628, "positive": 0.0092},
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
    "model": {"name": "sentiment-general", "version": "g7"},
    "prediction": {
        "label": "negative",
        "score": -0.6684,
        "probabilities": {"negative": 0.7824, "neutral": 0.1037, "positive": 0.114},
        "tokens": 10,
        "truncated": False,
        "unknown_tokens": 0,
    },
    "target": "negative",
    "method": "leave-one-out",
    "tokens": [
        _token("The", 0, 0.0101), _token("food", 4, -0.0185), _token("was", 9, -0.0035),
        _token("excellent", 13, -0.1331), _token("but", 23, 0.1604), _token("the", 27, 0.002),
        _token("service", 31, 0.0274), _token("was", 39, 0.0329), _token("terrible", 43, 0.7008),
        _token(".", 51, -0.1171),
    ],
}  # fmt: skip
