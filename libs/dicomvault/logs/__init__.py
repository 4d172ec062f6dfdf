"""Structured logging: JSON lines through structlog, stdlib loggers included.

A line carries the fields that explain it, bounded: the message is cut at ``MAX_MESSAGE``
characters and every extra value at ``MAX_VALUE``; objects that are context, not
explanation, are dropped (kopf puts its whole ``OperatorSettings`` into every object log
line as ``settings``; its ``k8s_ref`` becomes ``object: kind namespace/name``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from dicomvault.settings import LogSettings

MAX_MESSAGE = 2000
MAX_VALUE = 300
_DROPPED = {"settings", "k8s_skip", "taskName"}
_KEPT_WHOLE = {"exception", "exc_info", "stack", "_record", "_from_structlog"}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"… (+{len(text) - limit} chars)"


def bounded(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Drop context objects and cut every value to a readable size (a structlog processor)."""
    for key in _DROPPED & event.keys():
        del event[key]
    ref = event.pop("k8s_ref", None)
    if isinstance(ref, dict):
        where = "/".join(str(ref[k]) for k in ("namespace", "name") if ref.get(k))
        event["object"] = f"{ref.get('kind') or ''} {where}".strip()
    for key, value in event.items():
        if key in _KEPT_WHOLE or value is None or isinstance(value, bool | int | float):
            continue
        text = value if isinstance(value, str) else repr(value)
        limit = MAX_MESSAGE if key == "event" else MAX_VALUE
        if len(text) > limit or not isinstance(value, str):
            event[key] = _cut(text, limit)
    return event


def configure(settings: LogSettings, service: str) -> None:
    """Route stdlib and structlog records through one JSON (or console) renderer."""
    renderer = (
        structlog.processors.JSONRenderer()
        if settings.json_format
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        lambda _l, _m, ev: {**ev, "service": service},
        bounded,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    for noisy in ("aiokafka", "pynetdicom", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
