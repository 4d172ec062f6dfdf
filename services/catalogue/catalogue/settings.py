"""Settings of the catalogue: shared sections plus ``catalogue`` (consumer, StudyStable)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from dicomvault.service import ServiceSettings
from dicomvault.settings import DatabaseSettings, HttpSettings


class CatalogueHttp(HttpSettings):
    """The catalogue's HTTP listener: REST API, /metrics, health."""

    port: int = Field(8081, ge=0, le=65535, description="TCP port; 0 picks a free one.")


class CatalogueSection(BaseModel):
    """The catalogue's own behaviour."""

    group_id: str = Field("catalogue", description="Consumer group of the instances, studies, jobs and job-commands topics.")
    client_id: str = Field("catalogue", description="Kafka client id of the consumer and publisher.")
    stable_after_s: float = Field(
        30.0, gt=0, description="Quiet period: a study that received nothing for this long is stable."
    )
    stable_check_interval_s: float = Field(
        2.0, gt=0, description="How often the StudyStable emitter looks for quiet studies."
    )
    stable_republish_after_s: float = Field(
        120.0, gt=0,
        description="Publish StudyStable again if the catalogue has not consumed it after this long "
        "(e.g. the embedded broker lost it).",
    )
    stable_batch: int = Field(500, ge=1, description="Most studies announced stable per check.")
    migrate_on_start: bool = Field(True, description="Run Alembic `upgrade head` at start-up.")
    db_retry_s: float = Field(2.0, gt=0, description="Delay between start-up database attempts.")
    find_max_limit: int = Field(10_000, ge=1, description="Ceiling of a find request's page size.")
    batch_max_records: int = Field(
        1000, ge=1,
        description="Most records the consumer applies in one transaction (one `getmany`); "
        "1 applies record by record.",
    )
    batch_linger_ms: int = Field(
        0, ge=0, le=1000,
        description="After a fetch smaller than `batch_max_records` / 16, keep fetching this "
        "long before applying (client-side gathering). Off by default: the broker gathers "
        "(`fetch_min_bytes`), which costs it and the catalogue less. Measured here at 300 "
        "facts/s with fetch_min_bytes 1 (benchmarks.catalogue_live, SQLite): 2.35 ms CPU/fact "
        "with 0, 1.02 with 50, 0.79 with 100.",
    )
    fetch_min_bytes: int = Field(
        16384, ge=1,
        description="Bytes the broker gathers before it answers a fetch, unless "
        "`fetch_max_wait_ms` passes first: under live ingest each fetch then brings a batch "
        "(~16 facts) instead of one or two. Measured at 1,000 facts/s on the embedded broker: "
        "broker CPU 0.62 -> 0.32 ms/fact, publish -> journal p95 79 -> 33 ms against 1 with a "
        "50 ms client linger. 1: answer as soon as anything is there.",
    )
    fetch_max_wait_ms: int = Field(
        200, ge=0, le=500,
        description="Longest the broker may hold a fetch that has less than `fetch_min_bytes`: "
        "the catalogue's added latency under a trickle. The embedded broker (Tansu) checks a "
        "waiting fetch at growing intervals and lists the partitions' records each time, so "
        "fewer, larger fetches cost it much less. Measured here (benchmarks.catalogue_live, "
        "SQLite): at 300 facts/s broker + catalogue CPU 1.07 -> 0.52 ms/fact against 50, "
        "publish -> journal p95 44 -> 104 ms; at 20 facts/s p95 92 -> 306 ms. Lower it where "
        "every millisecond to findable counts and CPU is not scarce.",
    )


class CatalogueSettings(ServiceSettings):
    """Everything the catalogue reads from ``DICOMVAULT_*``: the shared sections, ``database``
    and ``catalogue``. Bearer tokens (``auth``) on /api/v1: every read needs the read scope
    (the archive's own services send theirs from client.token_file), the administrators'
    commands (queue pause/resume, job retry/cancel/…) the admin scope."""

    http: CatalogueHttp = Field(
        default_factory=CatalogueHttp,
        description="REST API, /metrics and health listener (default port 8081).",
    )
    database: DatabaseSettings = Field(
        default_factory=DatabaseSettings, description="The catalogue database (SQLite or PostgreSQL)."
    )
    catalogue: CatalogueSection = Field(
        default_factory=CatalogueSection, description="Consumer group and StudyStable emitter."
    )
