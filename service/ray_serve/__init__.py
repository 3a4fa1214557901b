"""The service on a Ray cluster with Ray Serve (the optional ``ray`` extra).

``app`` (the deployment: each replica builds the service's own FastAPI app, so every
route, error and metric is the one ``sentiment-serve`` has), ``proxy`` (the Serve HTTP
proxy's middleware: a request whose replica died answers 503 + Retry-After, not 500),
``deploy`` (``sentiment-serve --ray ADDRESS``: start Serve on an existing cluster and run
the app with the options of ``service/ray_serve/serve.yaml``, the file ``serve run`` takes too).
Nothing here is imported by the service itself.
"""
