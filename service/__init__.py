"""The inference service, in layers along the request path.

``http`` (routes, middleware, the fast path) → ``pipeline`` (validate, encode, batch,
score, render) → ``encoding`` (text to token ids) → ``inference`` (batcher, length
groups, onnxruntime) ; ``model`` loads, verifies and swaps bundles. The bundle contract
itself is ``sentiment_core``. See README "Layout".
"""
