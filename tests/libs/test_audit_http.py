"""The REST APIs' refused requests as audit facts (``dicomvault.audit.http.AuthFailures``):
a 401 or 403 under /api/v1 is one User Authentication failure with the route, the client's
address and, for a 403, the token's subject; a 200 and the health and metrics routes are not
recorded. And refused C-STOREs make one fact per association (``StoreRefusals``).

The trail here is a recorder of what the middleware hands ``AuditTrail.record`` (the trail
itself, and the path to the audit service, are tested in test_audit_trail.py and
tests/audit/)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from fastapi import FastAPI

from dicomvault.audit import MINOR_FAILURE, SERIOUS_FAILURE, Action
from dicomvault.audit.http import AuthFailures
from dicomvault.audit.refusals import StoreRefusals
from dicomvault.auth import AuthSettings, TokenVerifier
from tests.peers.tokens import ADMIN, READ, Issuer, auth_env


class Recorder:
    """Stands in for AuditTrail: keeps what ``record`` was given."""

    application = "test"

    def __init__(self) -> None:
        self.facts: list[tuple[int, dict]] = []
        self.dropped = 0

    def record(self, action: int, **fields) -> None:
        self.facts.append((action, fields))

    def dropped_one(self, why: str) -> None:
        self.dropped += 1


def service_app(issuer: Issuer, trail: Recorder) -> AuthFailures:
    """A service's app as the services build it: guard_api on /api/v1, health outside."""
    app = FastAPI()
    settings = AuthSettings(**{k.removeprefix("DICOMVAULT_AUTH__").lower(): v
                               for k, v in auth_env(issuer).items()})
    TokenVerifier(settings).guard_api(app)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "alive"}

    @app.get("/api/v1/things")
    async def things() -> list:
        return []

    @app.post("/api/v1/things/{uid}/evict")
    async def evict(uid: str) -> dict:
        return {"evicted": uid}

    return AuthFailures(app, trail)


async def test_401_and_403_are_user_authentication_failures_200_and_health_are_not(
        tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    trail = Recorder()
    transport = httpx.ASGITransport(app=service_app(issuer, trail), client=("10.1.2.3", 40111))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/api/v1/things", headers=issuer.bearer(READ))).status_code \
            == 200
        assert (await client.post("/api/v1/things/1.2.3/evict",
                                  headers=issuer.bearer(ADMIN))).status_code == 200
        assert trail.facts == []  # allowed requests and health are not audited

        # No token: 401; a token without the admin scope: 403 with its subject.
        assert (await client.get("/api/v1/things")).status_code == 401
        assert (await client.post("/api/v1/things/1.2.3/evict",
                                  headers=issuer.bearer(READ, subject="nurse-joy"))
                ).status_code == 403
        # A token from another issuer: 401, its claimed subject only in the description.
        (tmp_path / "other").mkdir()
        stranger = Issuer(tmp_path / "other")
        assert (await client.get("/api/v1/things", headers=stranger.bearer(
            ADMIN, subject="mallory"))).status_code == 401

    [(a1, missing), (a2, scope), (a3, forged)] = trail.facts
    assert a1 == a2 == a3 == Action.AUTHENTICATION
    assert missing["outcome"] == MINOR_FAILURE and missing["user_id"] == ""
    assert missing["service"] == "GET /api/v1/things"
    assert missing["peer_address"] == "10.1.2.3:40111"
    assert "HTTP 401" in missing["description"]
    assert scope["user_id"] == "nurse-joy"
    assert scope["service"] == "POST /api/v1/things/1.2.3/evict"
    assert "HTTP 403" in scope["description"]
    assert forged["user_id"] == "" and "'mallory', not verified" in forged["description"]


async def test_refused_stores_make_one_fact_per_association() -> None:
    trail = Recorder()
    refusals = StoreRefusals(trail, quiet_s=30, max_s=600)
    # A modality sends 1,000 instances into a full disk, another one one bad instance.
    for _ in range(1000):
        refusals.refused("assoc-1", "0xA700", outcome=SERIOUS_FAILURE, calling_ae="CT01",
                         called_ae="DICOMVAULT", peer_address="10.0.0.5:4000")
    refusals.refused("assoc-2", "0xA900", calling_ae="MR01", peer_address="10.0.0.6:4001")
    assert refusals.flush() == 0  # still open: refusals just came
    assert refusals.flush(now=time.monotonic() + 31) == 2  # quiet for quiet_s: recorded
    facts = {f["association_id"]: (a, f) for a, f in trail.facts}
    action, ct = facts["assoc-1"]
    assert action == Action.STORE_REFUSED and ct["instances"] == 1000
    assert ct["outcome"] == SERIOUS_FAILURE and ct["user_id"] == "CT01"
    assert ct["peer_address"] == "10.0.0.5:4000" and "1000 0xA700" in ct["description"]
    assert facts["assoc-2"][1]["instances"] == 1
    assert facts["assoc-2"][1]["outcome"] == MINOR_FAILURE
    await refusals.stop()
    assert len(trail.facts) == 2  # nothing left open, nothing recorded twice
