"""One health JSON for every service (issue 16): /healthz says the process answers, /readyz
is ready with no reasons or 503 with every reason, whichever service asks."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from dicomvault.health import health_router, readiness


async def _get(app: FastAPI, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://svc") as client:
        return await client.get(path)


async def test_the_routes_answer_the_one_shape() -> None:
    why: list[str | None] = ["broker unreachable"]
    app = FastAPI()
    app.include_router(health_router(CollectorRegistry(), lambda: why[0]))

    r = await _get(app, "/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    r = await _get(app, "/readyz")
    assert (r.status_code, r.json()) == (503, {"status": "not ready",
                                               "reasons": ["broker unreachable"]})
    why[0] = None
    r = await _get(app, "/readyz")
    assert (r.status_code, r.json()) == (200, {"status": "ready", "reasons": []})


async def test_a_service_with_its_own_checks_gives_every_reason_and_its_extras() -> None:
    reasons: list[str] = ["database: OperationalError", "", "consumer not assigned yet"]
    app = FastAPI()

    @app.get("/readyz")
    async def readyz():
        return readiness(reasons, dimse_port=11112)

    r = await _get(app, "/readyz")
    assert r.status_code == 503
    assert r.json() == {"status": "not ready", "dimse_port": 11112,
                        "reasons": ["database: OperationalError", "consumer not assigned yet"]}
    reasons.clear()
    r = await _get(app, "/readyz")
    assert (r.status_code, r.json()) == (200, {"status": "ready", "reasons": [],
                                               "dimse_port": 11112})
