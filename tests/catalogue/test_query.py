"""C-FIND semantics of POST /api/v1/find, on both databases (events fed to the policy)."""

from __future__ import annotations

import pytest

from tests.catalogue.conftest import Catalogue
from tests.catalogue.helpers import MR, instance_stored, uid


@pytest.fixture
async def world(cat: Catalogue) -> dict[str, str]:
    """Three patients, three studies, four series, six instances."""
    s1, s2, s3 = uid(), uid(), uid()
    ct, mr, us, ct3 = uid(), uid(), uid(), uid()
    await cat.feed(
        # John Doe: a CT series of two images and an MR series, 15 Jan 2024 10:15.
        instance_stored(s1, ct, instance_number="2", series_number="1"),
        instance_stored(s1, ct, instance_number="10", series_number="1"),
        instance_stored(s1, mr, modality="MR", sop_class_uid=MR, series_number="2",
                        number_of_frames=3),
        # Anna Müller: ultrasound of the knee, 20 Feb 2024 23:00.
        instance_stored(s2, us, patient_id="PAT-2", patient_name="Müller^Anna", modality="US",
                        study_date="20240220", study_time="230000",
                        study_description="Knee_100%", accession_number="ACC2"),
        instance_stored(s2, us, patient_id="PAT-2", patient_name="Müller^Anna", modality="US",
                        study_date="20240220", study_time="230000",
                        study_description="Knee_100%", accession_number="ACC2",
                        instance_number="2"),
        # jane smith: CT on New Year's Eve 2023 at 08:00.
        instance_stored(s3, ct3, patient_id="PAT-3", patient_name="smith^jane",
                        study_date="20231231", study_time="080000",
                        study_description="Kneeless", accession_number="ACC3"),
    )
    return {"s1": s1, "s2": s2, "s3": s3, "ct": ct, "mr": mr, "us": us, "ct3": ct3}


def uids(matches: list[dict], key: str = "StudyInstanceUID") -> set[str]:
    return {m[key] for m in matches}


async def test_every_level_of_both_roots(cat: Catalogue, world: dict) -> None:
    # Patient Root, PATIENT level: three patients with their computed counts.
    patients = await cat.find("PATIENT", root="PATIENT")
    assert [p["PatientID"] for p in patients] == ["PAT-1", "PAT-2", "PAT-3"]
    assert patients[0]["NumberOfPatientRelatedStudies"] == 1
    assert patients[0]["NumberOfPatientRelatedSeries"] == 2
    assert patients[0]["NumberOfPatientRelatedInstances"] == 3
    # Patient Root, STUDY level under one patient.
    studies = await cat.find("STUDY", root="PATIENT", filters={"PatientID": "PAT-2"})
    assert uids(studies) == {world["s2"]}
    # Study Root: studies, series of one study, images of one series.
    assert uids(await cat.find("STUDY")) == {world["s1"], world["s2"], world["s3"]}
    series = await cat.find("SERIES", filters={"StudyInstanceUID": world["s1"]})
    assert uids(series, "SeriesInstanceUID") == {world["ct"], world["mr"]}
    images = await cat.find("IMAGE", filters={"StudyInstanceUID": world["s1"],
                                              "SeriesInstanceUID": world["ct"]})
    assert [i["InstanceNumber"] for i in images] == ["2", "10"]  # numeric order
    mr = await cat.find("IMAGE", filters={"SeriesInstanceUID": world["mr"]},
                        return_keys=["NumberOfFrames", "SOPClassUID"])
    assert mr[0]["NumberOfFrames"] == 3 and mr[0]["SOPClassUID"] == MR


async def test_universal_and_single_value_matching(cat: Catalogue, world: dict) -> None:
    # An empty value matches everything and asks for the attribute back.
    found = await cat.find("STUDY", filters={"AccessionNumber": ""})
    assert {m["AccessionNumber"] for m in found} == {"ACC1", "ACC2", "ACC3"}
    assert set(found[0]) >= {"StudyInstanceUID", "AccessionNumber"}
    # A single value matches exactly (and case-sensitively outside PN).
    assert uids(await cat.find("STUDY", filters={"AccessionNumber": "ACC2"})) == {world["s2"]}
    assert await cat.find("STUDY", filters={"AccessionNumber": "acc2"}) == []
    assert await cat.find("STUDY", filters={"StudyDescription": "knee*"}) == []


async def test_wildcards_and_person_names(cat: Catalogue, world: dict) -> None:
    # PN: case-insensitive, including non-ASCII letters.
    assert uids(await cat.find("STUDY", filters={"PatientName": "DOE*"})) == {world["s1"]}
    assert uids(await cat.find("STUDY", filters={"PatientName": "m?ller^*"})) == {world["s2"]}
    assert uids(await cat.find("STUDY", filters={"PatientName": "MÜLLER*"})) == {world["s2"]}
    assert uids(await cat.find("STUDY", filters={"PatientName": "Smith^Jane"})) == {world["s3"]}
    # SQL LIKE specials are literals: "_" and "%" are not wildcards in DICOM.
    assert uids(await cat.find("STUDY", filters={"StudyDescription": "Knee_*"})) == {world["s2"]}
    assert uids(await cat.find("STUDY", filters={"StudyDescription": "*100%"})) == {world["s2"]}
    assert await cat.find("STUDY", filters={"StudyDescription": "Knee%"}) == []
    assert uids(await cat.find("STUDY", filters={"StudyDescription": "Knee?100*"})) == {world["s2"]}
    # "*" alone is universal.
    assert len(await cat.find("STUDY", filters={"StudyDescription": "*"})) == 3


async def test_date_and_time_ranges(cat: Catalogue, world: dict) -> None:
    async def dates(**filters) -> set[str]:
        return uids(await cat.find("STUDY", filters=filters))

    assert await dates(StudyDate="20240115") == {world["s1"]}
    assert await dates(StudyDate="20240101-20240131") == {world["s1"]}
    assert await dates(StudyDate="20240201-") == {world["s2"]}
    assert await dates(StudyDate="-20231231") == {world["s3"]}
    assert await dates(StudyTime="0800-1100") == {world["s1"], world["s3"]}
    assert await dates(StudyTime="-0800") == {world["s3"]}  # 08:00:00 is within "-0800"
    # A DA range with a TM range is one date-time range: from 31 Dec 22:00 to 20 Feb 09:00.
    assert await dates(StudyDate="20231231-20240220", StudyTime="2200-0900") == {world["s1"]}
    assert await dates(StudyDate="20240115-", StudyTime="1100-") == {world["s2"]}
    # A single date with a time range: both must match.
    assert await dates(StudyDate="20240115", StudyTime="1000-1030") == {world["s1"]}
    assert await dates(StudyDate="20240115", StudyTime="1100-1200") == set()


async def test_uid_lists_and_upper_level_keys(cat: Catalogue, world: dict) -> None:
    both = f"{world['s1']}\\{world['s3']}"
    assert uids(await cat.find("STUDY", filters={"StudyInstanceUID": both})) == {
        world["s1"], world["s3"]}
    # Keys of upper levels filter lower levels.
    series = await cat.find("SERIES", filters={"PatientName": "doe^john", "Modality": "MR"})
    assert uids(series, "SeriesInstanceUID") == {world["mr"]}
    images = await cat.find("IMAGE", filters={"StudyDate": "20231231-", "Modality": "CT"})
    assert uids(images, "SeriesInstanceUID") == {world["ct"], world["ct3"]}
    assert {i["StudyInstanceUID"] for i in images} == {world["s1"], world["s3"]}


async def test_computed_keys_and_modalities_in_study(cat: Catalogue, world: dict) -> None:
    keys = ["ModalitiesInStudy", "SOPClassesInStudy", "NumberOfStudyRelatedSeries",
            "NumberOfStudyRelatedInstances"]
    found = await cat.find("STUDY", filters={"StudyInstanceUID": world["s1"]}, return_keys=keys)
    assert found == [{
        "StudyInstanceUID": world["s1"], "ModalitiesInStudy": ["CT", "MR"],
        "SOPClassesInStudy": sorted(["1.2.840.10008.5.1.4.1.1.2", MR]),
        "NumberOfStudyRelatedSeries": 2, "NumberOfStudyRelatedInstances": 3}]
    # ModalitiesInStudy matches a study when any of its series has one of the modalities.
    assert uids(await cat.find("STUDY", filters={"ModalitiesInStudy": "MR"})) == {world["s1"]}
    assert uids(await cat.find("STUDY", filters={"ModalitiesInStudy": "US\\MR"})) == {
        world["s1"], world["s2"]}
    assert uids(await cat.find("STUDY", filters={"ModalitiesInStudy": "CT"})) == {
        world["s1"], world["s3"]}
    series = await cat.find("SERIES", filters={"SeriesInstanceUID": world["us"]},
                            return_keys=["NumberOfSeriesRelatedInstances"])
    assert series[0]["NumberOfSeriesRelatedInstances"] == 2


async def test_paging_is_stable(cat: Catalogue, world: dict) -> None:
    r = await cat.client.post("/api/v1/find", json={"level": "STUDY", "limit": 2})
    first = r.json()
    assert first["total"] == 3 and len(first["matches"]) == 2
    rest = await cat.find("STUDY", limit=2, offset=2)
    ordered = [m["StudyInstanceUID"] for m in first["matches"] + rest]
    assert ordered == [world["s3"], world["s1"], world["s2"]]  # by study date and time
    assert [m["StudyInstanceUID"] for m in await cat.find("STUDY")] == ordered


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"level": "BOGUS"}, 422, "level"),
    ({"level": "PATIENT", "root": "STUDY"}, 400, "Study Root"),
    ({"level": "STUDY", "filters": {"NoSuchKey": "x"}}, 400, "NoSuchKey"),
    ({"level": "STUDY", "filters": {"Modality": "CT"}}, 400, "Modality"),
    ({"level": "STUDY", "filters": {"StudyInstanceUID": "../../x"}}, 400, "valid UID"),
    ({"level": "STUDY", "filters": {"StudyDate": "2024-01-01-x"}}, 400, "StudyDate"),
    ({"level": "STUDY", "filters": {"StudyTime": "25:61"}}, 400, "StudyTime"),
    ({"level": "STUDY", "filters": {"NumberOfStudyRelatedInstances": "3"}}, 400, "matching"),
    ({"level": "STUDY", "limit": 0}, 422, "limit"),
])
async def test_bad_requests_say_why(cat: Catalogue, body: dict, status: int,
                                    message: str) -> None:
    r = await cat.client.post("/api/v1/find", json=body)
    assert r.status_code == status, r.text
    assert message in r.text


async def test_locations_unknown_and_lookup(cat: Catalogue, world: dict) -> None:
    r = await cat.client.get(f"/api/v1/studies/{world['s1']}/instances")
    assert r.status_code == 200
    rows = r.json()
    assert len(rows) == 3 and {x["tier"] for x in rows} == {"cache"}
    assert all(x["storage_key"].startswith(world["s1"]) and len(x["sha256"]) == 64
               for x in rows)
    assert (await cat.client.get(f"/api/v1/studies/{uid()}/instances")).status_code == 404
    assert (await cat.client.get("/api/v1/studies/1.2.x/instances")).status_code == 400
    # The reconciliation sweep asks which instances the catalogue never recorded.
    known, stranger = rows[0]["sop_instance_uid"], uid()
    r = await cat.client.post("/api/v1/instances/unknown",
                              json={"sop_instance_uids": [known, stranger]})
    assert r.json() == {"unknown": [stranger]}
    bad = await cat.client.post("/api/v1/instances/unknown",
                                json={"sop_instance_uids": ["../../x"]})
    assert bad.status_code == 400
    r = await cat.client.post("/api/v1/instances/lookup", json={"sop_instance_uids": [known]})
    assert [x["sop_instance_uid"] for x in r.json()["instances"]] == [known]
