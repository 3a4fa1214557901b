"""Explanations: which sentences and which words drove a prediction.

``sentences`` splits a text into sentences with code-point offsets; ``by_sentence``
scores them beside their documents (``/predict`` with ``"sentences": true``);
``tokens`` and ``occlusion`` give each token a weight by leaving it out (``/explain``).
Every text and variant goes through the model's one batcher, like any other request.
"""
