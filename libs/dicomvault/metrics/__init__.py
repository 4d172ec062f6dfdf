"""Prometheus helpers: each service declares its metrics once in its own metrics.py,
then serves ``/metrics`` from its HTTP app (``metrics_app``) or a bare listener."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, make_asgi_app, start_http_server

__all__ = ["CollectorRegistry", "metrics_app", "serve"]


def metrics_app(registry: CollectorRegistry):
    """An ASGI app that serves the registry; mount it at /metrics."""
    return make_asgi_app(registry=registry)


def serve(registry: CollectorRegistry, host: str, port: int):
    """A standalone /metrics listener for services without an HTTP API."""
    return start_http_server(port, addr=host, registry=registry)
