"""Inference: encoded texts to model outputs.

``batcher`` queues texts from concurrent requests and forms batches; ``batch`` packs a
batch into length groups (``packing``) once and shares them among the inference threads;
``scorer`` runs the groups through onnxruntime (one call per group: the reference).
Speed-ups, each switchable: ``grouped`` (several groups per call,
``SENTIMENT_GROUPED_RUNS``) and ``affinity`` (threads pinned to CPUs,
``SENTIMENT_PIN_INFERENCE_THREADS``).
"""
