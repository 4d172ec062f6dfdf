"""The REST API through httpx's ASGITransport."""

from __future__ import annotations

import httpx

from optical_burner.api import build_app
from optical_burner.retrieve import retrieve_study


async def test_volumes_rest_api(tmp_path, optical_config, make_archive, new_study, catalogue,
                                cache):
    arc, emitted = make_archive(optical_config())
    study = new_study()
    await arc.archive_study(study.study_uid)
    for archived in emitted.of("StudyArchived"):
        catalogue.record(archived)
    app = build_app(arc, lambda: None, cache)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://optical") as http:
        listed = (await http.get("/api/v1/volumes")).json()
        assert [(v["label"], v["state"]) for v in listed] == [("DVD-000001", "Open")]
        assert 0 < listed[0]["fill_ratio"] < 1
        assert listed[0]["studies"][0]["study_instance_uid"] == study.study_uid
        assert (await http.get("/api/v1/volumes/DVD-999999")).status_code == 404

        # Burning an open volume is refused; closing it builds the image.
        assert (await http.post("/api/v1/volumes/DVD-000001/burn")).status_code == 409
        closed = await http.post("/api/v1/volumes/DVD-000001/close")
        assert closed.status_code == 200 and closed.json()["state"] == "Closed"
        assert (await http.post("/api/v1/volumes/DVD-000001/close")).status_code == 409

        burned = await http.post("/api/v1/volumes/DVD-000001/burn")
        assert burned.json()["state"] == "Verified"
        again = await http.post("/api/v1/volumes/DVD-000001/burn", json={"copy": 2})
        assert [c["number"] for c in again.json()["copies"]] == [1, 2]

        # Delete is refused with the reason while the volume holds the only copy.
        refused = await http.delete("/api/v1/volumes/DVD-000001")
        assert refused.status_code == 409
        assert "only verified copy" in refused.json()["error"]
        assert refused.json()["studies"] == [study.study_uid]

        # Without the jobs engine's queues (the service sets them) a retrieve cannot be
        # submitted; a study no volume holds is unknown.
        assert (await http.post(f"/api/v1/studies/{study.study_uid}/retrieve")
                ).status_code == 503
        assert (await http.get("/api/v1/queues")).json() == []

        # Offline: a retrieve asks for the disc, listed by the API.
        assert (await http.post("/api/v1/volumes/DVD-000001/release")).status_code == 200
        got = await retrieve_study(arc, study.study_uid, cache)
        assert got.status == "offline"
        requests = (await http.get("/api/v1/media-requests")).json()
        assert [(m["label"], m["message"]) for m in requests] == [
            ("DVD-000001", "insert volume DVD-000001")]

        text = (await http.get("/metrics")).text
        assert 'dicomvault_optical_volumes{archive="OPTICAL1",state="Verified"} 1.0' in text
        assert "dicomvault_optical_burned_bytes_total" in text
        assert 'dicomvault_optical_media_requests_open{archive="OPTICAL1"} 1.0' in text
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).status_code == 200
