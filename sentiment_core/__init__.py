"""The model-bundle contract shared by training and the service.

Everything both sides must agree on lives here, and nothing else: the tokenizer
definition and the reference encoder (``tokenizer``, ``encoder``), the typed manifest
(``manifest``), file hashing and bundle discovery (``bundle``), and the length-sorted
batching helper (``batching``). It depends on neither TensorFlow nor onnxruntime, so the
service never pulls in training and training never imports the service.
"""
