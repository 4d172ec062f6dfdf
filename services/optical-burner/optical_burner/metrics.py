"""Every metric of the optical-burner, declared once (labels: archive, state, outcome; never a
UID or a volume label)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

VOLUMES = Gauge("dicomvault_optical_volumes", "Logical volumes by state (Open, Closed, Burned, "
                "Verified).", ["archive", "state"], registry=REGISTRY)
OPEN_FILL = Gauge("dicomvault_optical_open_volume_fill_ratio",
                  "Fill level of the open volume (0–1).", ["archive"], registry=REGISTRY)
STUDIES_WRITTEN = Counter("dicomvault_optical_studies_written_total",
                          "Studies (or study parts) written to logical volumes.", ["archive"],
                          registry=REGISTRY)
BYTES_WRITTEN = Counter("dicomvault_optical_written_bytes_total",
                        "Instance bytes written (and read back) to logical volumes.",
                        ["archive"], registry=REGISTRY)
BYTES_BURNED = Counter("dicomvault_optical_burned_bytes_total",
                       "Image bytes burned (every copy counts).", ["archive", "backend"],
                       registry=REGISTRY)
BURN_FAILURES = Counter("dicomvault_optical_burn_failures_total",
                        "Failed burn attempts of one copy.", ["archive", "backend"],
                        registry=REGISTRY)
VERIFY_FAILURES = Counter("dicomvault_optical_verify_failures_total",
                          "Copies whose read-back did not match the manifest.", ["archive"],
                          registry=REGISTRY)
MEDIA_REQUESTS = Gauge("dicomvault_optical_media_requests_open",
                       "Offline volumes a retrieve is waiting for.", ["archive"],
                       registry=REGISTRY)
RETRIEVES = Counter("dicomvault_optical_retrieves_total",
                    "Study retrieves by outcome (done, offline, not_found, failed).",
                    ["archive", "outcome"], registry=REGISTRY)
EVENTS = Counter("dicomvault_optical_events_total", "Consumed events by type and outcome.",
                 ["type", "outcome"], registry=REGISTRY)
