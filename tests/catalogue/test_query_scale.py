"""Find at scale, on both databases: pages with their computed keys and totals, PN wildcards
through the PostgreSQL name index, and migration 0004 upgrading a filled 0003 catalogue."""

from __future__ import annotations

import httpx
from alembic import command
from sqlalchemy import inspect

from catalogue.api import build_app
from catalogue.db import alembic_config, make_engine, migrate, sessions
from catalogue.policies import Policy
from tests.catalogue.conftest import Catalogue
from tests.catalogue.helpers import MR, instance_stored, uid

STUDY_KEYS = ["ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
              "PatientID"]


async def find_page(cat: Catalogue, **body) -> dict:
    r = await cat.client.post("/api/v1/find", json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def test_pages_carry_their_own_counts_and_the_total(cat: Catalogue) -> None:
    # Seven studies on seven days, study i with i+1 CT images and, for odd i, one MR series.
    studies = [uid() for _ in range(7)]
    events = []
    for i, study in enumerate(studies):
        ct, mr = uid(), uid()
        common = {"patient_id": f"PAT-{i % 3}", "study_date": f"202401{i + 10:02d}"}
        events += [instance_stored(study, ct, instance_number=str(n), **common)
                   for n in range(i + 1)]
        if i % 2:
            events.append(instance_stored(study, mr, modality="MR", sop_class_uid=MR, **common))
    await cat.feed(*events)

    # Pages of three, in study date order; each row's counts are its own study's.
    seen = []
    for offset in (0, 3, 6):
        page = await find_page(cat, level="STUDY", return_keys=STUDY_KEYS, limit=3,
                               offset=offset)
        assert page["total"] == 7
        seen += page["matches"]
    assert [m["StudyInstanceUID"] for m in seen] == studies
    for i, match in enumerate(seen):
        assert match["NumberOfStudyRelatedInstances"] == i + 1 + i % 2
        assert match["NumberOfStudyRelatedSeries"] == 1 + i % 2
        assert match["ModalitiesInStudy"] == (["CT", "MR"] if i % 2 else ["CT"])
        assert match["PatientID"] == f"PAT-{i % 3}"

    # A page past the end is empty and still says how many there are; no limit: the rest.
    past = await find_page(cat, level="STUDY", limit=3, offset=20)
    assert past == {"matches": [], "total": 7}
    rest = await find_page(cat, level="STUDY", offset=5, return_keys=STUDY_KEYS)
    assert rest["total"] == 7 and [m["StudyInstanceUID"] for m in rest["matches"]] == studies[5:]
    assert (await find_page(cat, level="STUDY", offset=9)) == {"matches": [], "total": 7}

    # A filter narrows the total and the counts stay per study (PAT-1: studies 1 and 4).
    page = await find_page(cat, level="STUDY", filters={"PatientID": "PAT-1"},
                           return_keys=STUDY_KEYS, limit=1)
    assert page["total"] == 2 and page["matches"][0]["NumberOfStudyRelatedInstances"] == 3

    # Patient level: the counts of each patient of the page.
    patients = await find_page(cat, level="PATIENT", root="PATIENT", limit=2, offset=1,
                               return_keys=["NumberOfPatientRelatedStudies",
                                            "NumberOfPatientRelatedSeries",
                                            "NumberOfPatientRelatedInstances"])
    assert patients["total"] == 3
    assert [(p["PatientID"], p["NumberOfPatientRelatedStudies"],
             p["NumberOfPatientRelatedSeries"], p["NumberOfPatientRelatedInstances"])
            for p in patients["matches"]] == [("PAT-1", 2, 3, (2 + 1) + 5),  # studies 1, 4
                                              ("PAT-2", 2, 3, 3 + (6 + 1))]  # studies 2, 5

    # Series of a study with their instance counts; a study without any: no series.
    series = await find_page(cat, level="SERIES", filters={"StudyInstanceUID": studies[3]},
                             return_keys=["Modality", "NumberOfSeriesRelatedInstances"])
    assert sorted((s["Modality"], s["NumberOfSeriesRelatedInstances"])
                  for s in series["matches"]) == [("CT", 4), ("MR", 1)]
    assert (await find_page(cat, level="SERIES", filters={"StudyInstanceUID": uid()})) == {
        "matches": [], "total": 0}


async def test_a_study_without_modality_lists_none(cat: Catalogue) -> None:
    study, series = uid(), uid()
    await cat.feed(instance_stored(study, series, modality=""),
                   instance_stored(study, series, modality="", instance_number="2"))
    (match,) = (await find_page(cat, level="STUDY", return_keys=[
        *STUDY_KEYS, "SOPClassesInStudy"]))["matches"]
    assert match["ModalitiesInStudy"] == [] and match["NumberOfStudyRelatedSeries"] == 1
    assert match["NumberOfStudyRelatedInstances"] == 2 and len(match["SOPClassesInStudy"]) == 1


async def test_person_name_wildcards(cat: Catalogue) -> None:
    names = {"Doe^John": uid(), "DOERING^Anna": uid(), "doe^jane": uid(), "O_Brien^Pat": uid(),
             "OXBrien^Max": uid(), "100%^Sure": uid(), "Müller^Jürgen": uid()}
    await cat.feed(*[instance_stored(study, uid(), patient_id=f"P{i}", patient_name=name)
                     for i, (name, study) in enumerate(names.items())])

    async def studies(value: str, **kw) -> set[str]:
        page = await find_page(cat, level="STUDY", filters={"PatientName": value}, **kw)
        return {m["StudyInstanceUID"] for m in page["matches"]}

    # A prefix matches regardless of case; "DOE^*" is the family name DOE only.
    assert await studies("DOE*") == {names["Doe^John"], names["DOERING^Anna"], names["doe^jane"]}
    assert await studies("DOE^*") == {names["Doe^John"], names["doe^jane"]}
    assert await studies("doe^j?hn") == {names["Doe^John"]}
    assert await studies("DOE^JANE") == {names["doe^jane"]}
    # SQL's own wildcards are plain characters in DICOM matching.
    assert await studies("O_BRIEN*") == {names["O_Brien^Pat"]}
    assert await studies("100%*") == {names["100%^Sure"]}
    assert await studies("1_0*") == set()
    # Non-ASCII letters fold too; a suffix and an inner wildcard work.
    assert await studies("MÜLLER*") == {names["Müller^Jürgen"]}
    assert await studies("*^ANNA") == {names["DOERING^Anna"]}
    # Case-sensitive matching when the request asks for it.
    assert await studies("DOE*", case_insensitive_pn=False) == {names["DOERING^Anna"]}


async def test_migration_0004_upgrades_a_filled_0003_catalogue(db_url: str) -> None:
    engine = make_engine(db_url)

    def upgrade_to(conn, revision: str) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    def index_names(conn) -> set[str]:
        insp = inspect(conn)
        return {ix["name"] for table in ("studies", "series", "patients")
                for ix in insp.get_indexes(table)}

    try:
        # A catalogue at 0003 with studies in it, written by the real projection.
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_to, "0003")
        maker = sessions(engine)
        policy = Policy(maker)
        study, other = uid(), uid()
        for event in (instance_stored(study, uid(), accession_number="ACC-9", study_date="20200101"),
                      instance_stored(other, uid(), patient_id="PAT-2", patient_name="Roe^R",
                                      accession_number="ACC-8", study_date="20210101")):
            await policy(event)
        async with engine.connect() as conn:
            assert "ix_studies_date" not in await conn.run_sync(index_names)

        # The service's start-up migration brings it to 0004: the rows stay, queries answer.
        await migrate(engine)
        async with engine.connect() as conn:
            found = await conn.run_sync(index_names)
        assert {"ix_studies_date", "ix_studies_accession_number", "ix_series_modality"} <= found
        assert ("ix_patients_name_lower" in found) == db_url.startswith("postgresql")
        app = build_app(maker, lambda: True)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://catalogue") as client:
            async def find(**filters) -> list[str]:
                r = await client.post("/api/v1/find", json={
                    "level": "STUDY", "filters": filters,
                    "return_keys": ["NumberOfStudyRelatedInstances"]})
                assert r.status_code == 200, r.text
                return [m["StudyInstanceUID"] for m in r.json()["matches"]]

            assert await find(AccessionNumber="ACC-9") == [study]
            assert await find(StudyDate="20201231-") == [other]
            assert await find(PatientName="roe*") == [other]
            assert await find() == [study, other]
    finally:
        await engine.dispose()
