"""HTTP: the app factory (``app``), middleware, error handling, request and response
schemas, thin routes, and the ``/predict`` fast path (a switchable speed-up)."""
