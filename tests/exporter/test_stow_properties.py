"""Every web-application property against a recording STOW-RS server on loopback."""

from __future__ import annotations

import base64
from collections import deque

import pytest

from stow_exporter.metrics import REGISTRY
from tests.exporter.conftest import drain, exporter
from tests.exporter.servers import StowServer, serve
from tests.peers.datasets import write_study

TOKEN = {"bearer-token": {"secretKeyRef": {"name": "pacs-token", "key": "token"}}}
BASIC = {"basic-auth": {"secretRef": {"name": "pacs-basic"},
                        "usernameKey": "username", "passwordKey": "password"}}


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def study(tmp_path, catalogue):
    s = write_study(tmp_path / "study", series=2, per_series=3)
    catalogue[0].add(s)
    return s


async def test_bearer_token_required(study, hosting):
    server = StowServer(bearer="s3cr3t-token")
    async with serve(server) as port:
        url = f"http://127.0.0.1:{port}/dicom-web"
        # Without a token the server answers 401: the study fails, with the reason.
        h = hosting(exporter("NOAUTH", url=url))
        refused = await h.queue.submit(study.study_uid)
        await drain(h)
        assert refused.state == "failed" and "401" in refused.reason
        assert not server.requests and len(server.refused) == 1
        # With the token from the Secret file (newline stripped) it goes through.
        h = hosting(exporter("TOKEN", url=url, properties=TOKEN))
        ok = await h.queue.submit(study.study_uid)
        await drain(h)
        assert ok.state == "exported", ok.reason
        assert server.requests[0].headers["authorization"] == "Bearer s3cr3t-token"
        assert sorted(server.stored_uids()) == sorted(study.sop_uids)


async def test_basic_auth_from_secret(study, hosting):
    expected = base64.b64encode(b"vault:pa:ss word").decode()
    server = StowServer(basic=expected)
    async with serve(server) as port:
        h = hosting(exporter(url=f"http://127.0.0.1:{port}/dicom-web", properties=BASIC))
        export = await h.queue.submit(study.study_uid)
        await drain(h)
    assert export.state == "exported", export.reason
    assert server.requests[0].headers["authorization"] == f"Basic {expected}"


@pytest.mark.parametrize("chunked", [True, False])
async def test_chunked_or_content_length(study, hosting, chunked):
    server = StowServer()
    async with serve(server) as port:
        h = hosting(exporter(url=f"http://127.0.0.1:{port}/dicom-web",
                             properties={"chunked": str(chunked).lower()}))
        export = await h.queue.submit(study.study_uid)
        await drain(h)
    assert export.state == "exported", export.reason
    (request,) = server.requests  # concurrency 1: the whole study in one request
    assert len(request.parts) == 6
    assert request.headers["content-type"].startswith('multipart/related; type="application/dicom"')
    if chunked:
        assert request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in request.headers
    else:
        assert "transfer-encoding" not in request.headers
        assert int(request.headers["content-length"]) > sum(len(p) for p in request.parts)


async def test_concurrency_limit_never_exceeded(study, hosting):
    # The server holds every request until three are in flight (or five seconds pass):
    # with concurrency 3 it sees exactly three at once, never four.
    server = StowServer(hold_until_in_flight=4)
    async with serve(server) as port:
        h = hosting(exporter("CONC", url=f"http://127.0.0.1:{port}/dicom-web",
                             properties={"concurrency": 3}))
        export = await h.queue.submit(study.study_uid)
        await drain(h)
    assert export.state == "exported", export.reason
    assert len(server.requests) == 6  # one instance per request when concurrency > 1
    assert server.max_in_flight == 3
    assert metric("dicomvault_exporter_requests_in_flight", exporter="CONC") == 0


async def test_5xx_retried_then_succeeds(study, hosting):
    server = StowServer(statuses=deque([503, 500]))
    async with serve(server) as port:
        h = hosting(exporter("RETRY", url=f"http://127.0.0.1:{port}/dicom-web",
                             retry={"maxRetries": 3, "initialDelaySeconds": 0}))
        export = await h.queue.submit(study.study_uid)
        await drain(h)
    assert export.state == "exported", export.reason
    assert export.attempts == 3
    assert sorted(server.stored_uids()) == sorted(study.sop_uids)
    assert metric("dicomvault_exporter_failures_total", exporter="RETRY", reason="http_5xx") == 2
    assert metric("dicomvault_exporter_retries_total", exporter="RETRY") == 2


async def test_5xx_retried_then_failed_with_reason(study, hosting):
    server = StowServer(statuses=deque([502] * 10))
    async with serve(server) as port:
        h = hosting(exporter("GIVEUP", url=f"http://127.0.0.1:{port}/dicom-web",
                             retry={"maxRetries": 2, "initialDelaySeconds": 0}))
        export = await h.queue.submit(study.study_uid)
        await drain(h)
    assert export.state == "failed"
    assert export.attempts == 3 and len(server.refused) == 3
    assert "gave up after 3 attempt(s)" in export.reason and "HTTP 502" in export.reason
    # Not refused: unconfirmed, so a retry of the FAILED export sends them again.
    assert set(export.unsent) == set(study.sop_uids) and not export.failed
    assert metric("dicomvault_exporter_studies_total", exporter="GIVEUP", outcome="failed") == 1


async def test_timeout_retried_then_failed(study, hosting):
    server = StowServer(hang_s=3.0)
    async with serve(server) as port:
        h = hosting(exporter("SLOW", url=f"http://127.0.0.1:{port}/dicom-web",
                             retry={"maxRetries": 1, "initialDelaySeconds": 0}),
                    request_timeout_s=0.3)
        export = await h.queue.submit(study.study_uid)
        await drain(h)
    assert export.state == "failed"
    assert export.attempts == 2 and "timeout" in export.reason
    assert metric("dicomvault_exporter_failures_total", exporter="SLOW", reason="timeout") == 2


async def test_failed_sop_sequence_and_warnings_per_instance(study, hosting):
    refused, warned = study.sop_uids[0], study.sop_uids[1]
    server = StowServer(fail={refused: 0xA900}, warn={warned: 0xB000})
    async with serve(server) as port:
        h = hosting(exporter("PARTIAL", url=f"http://127.0.0.1:{port}/dicom-web",
                             retry={"maxRetries": 3, "initialDelaySeconds": 0}))
        export = await h.queue.submit(study.study_uid)
        await drain(h)
    # 202 Accepted: five stored (one with a warning), one refused — not retried.
    assert export.state == "exported" and export.attempts == 1
    assert export.failed == {refused: "0xA900 Error: data set does not match SOP class"}
    assert export.warnings == {warned: "0xB000 Coercion of data elements"}
    assert len(export.stored) == 5
    view = export.view()
    assert view["failed"] == [{"sop_instance_uid": refused,
                               "reason": "0xA900 Error: data set does not match SOP class"}]


async def test_409_conflict_reported_per_instance(tmp_path, catalogue, hosting):
    study = write_study(tmp_path / "one", series=1, per_series=1)
    catalogue[0].add(study)
    server = StowServer(fail={study.sop_uids[0]: 0x0110})
    async with serve(server) as port:
        h = hosting(exporter("CONFLICT", url=f"http://127.0.0.1:{port}/dicom-web"))
        export = await h.queue.submit(study.study_uid)
        await drain(h)
    assert export.state == "failed"
    assert "every instance refused: 0x0110 Processing failure" in export.reason


async def test_untrusted_certificate_refused_unless_trust_manager_disabled(study, hosting, tls):
    server = StowServer()
    async with serve(server, certfile=tls.untrusted) as port:
        url = f"https://127.0.0.1:{port}/dicom-web"
        h = hosting(exporter("TLS1", url=url, retry={"maxRetries": 3}))
        refused = await h.queue.submit(study.study_uid)
        await drain(h)
        assert refused.state == "failed" and "certificate verify failed" in refused.reason
        assert refused.attempts == 1  # a TLS refusal is not retried
        assert not server.requests
        h = hosting(exporter("TLS2", url=url, properties={"disable-trust-manager": True}))
        ok = await h.queue.submit(study.study_uid)
        await drain(h)
        assert ok.state == "exported", ok.reason


async def test_wrong_hostname_refused_unless_any_hostname_allowed(study, hosting, tls):
    server = StowServer()
    async with serve(server, certfile=tls.wrong_name) as port:
        url = f"https://127.0.0.1:{port}/dicom-web"
        h = hosting(exporter("HOST1", url=url))
        refused = await h.queue.submit(study.study_uid)
        await drain(h)
        assert refused.state == "failed" and "mismatch" in refused.reason.lower(), refused.reason
        h = hosting(exporter("HOST2", url=url, properties={"allow-any-hostname": "true"}))
        ok = await h.queue.submit(study.study_uid)
        await drain(h)
        assert ok.state == "exported", ok.reason
        # allow-any-hostname still verifies the chain: an unknown CA stays refused.
    async with serve(StowServer(), certfile=tls.untrusted) as port:
        h = hosting(exporter("HOST3", url=f"https://127.0.0.1:{port}/dicom-web",
                             properties={"allow-any-hostname": True}))
        still = await h.queue.submit(study.study_uid)
        await drain(h)
        assert still.state == "failed" and "certificate verify failed" in still.reason


async def test_trusted_certificate_accepted(study, hosting, tls):
    server = StowServer()
    async with serve(server, certfile=tls.good) as port:
        h = hosting(exporter("TLSOK", url=f"https://127.0.0.1:{port}/dicom-web"))
        export = await h.queue.submit(study.study_uid)
        await drain(h)
    assert export.state == "exported", export.reason
