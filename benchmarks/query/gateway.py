"""End to end through the real gateway: QIDO-RS over HTTP and C-FIND over DIMSE.

The gateway runs as its own process in front of the benchmark's catalogue, with bearer tokens
on both hops (its service token to the catalogue, the viewer's token to QIDO-RS). C-FIND is
sent by a pynetdicom SCU over one association; each request is timed from the C-FIND-RQ to
the final response. Both figures are client-side round trips on loopback.
"""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

import httpx
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from benchmarks.query.kinds import CFIND_STUDY, Sample
from dicomvault.bus.broker import free_port
from tests.peers.services import ServiceProcess
from tests.peers.tokens import READ, Issuer, auth_env

CALLED_AE = "DICOMVAULT"


class Gateway:
    def __init__(self, work: Path, issuer: Issuer, bootstrap: str, catalogue_url: str) -> None:
        self.http, self.dimse = free_port(), free_port()
        token = work / "gateway-token"
        token.write_text(issuer.token(READ, subject="dicom-gateway", expires_in=7200))
        self.process = ServiceProcess("gateway", {
            **auth_env(issuer), "DICOMVAULT_BUS__BOOTSTRAP_SERVERS": bootstrap,
            "DICOMVAULT_HTTP__PORT": str(self.http),
            "DICOMVAULT_GATEWAY__DIMSE_PORT": str(self.dimse),
            "DICOMVAULT_GATEWAY__ACCEPT_ANY_CALLING_AE": "true",
            "DICOMVAULT_GATEWAY__CATALOGUE_URL": catalogue_url,
            "DICOMVAULT_GATEWAY__RECONCILE_INTERVAL_S": "3600",
            "DICOMVAULT_CACHE__ROOT": str(work / "cache"),
            "DICOMVAULT_CLIENT__TOKEN_FILE": str(token), "DICOMVAULT_LOG__LEVEL": "WARNING",
        }, work, ready_url=f"http://127.0.0.1:{self.http}/readyz")

    def __enter__(self) -> Gateway:
        self.process.start(timeout_s=120)
        return self

    def __exit__(self, *_exc) -> None:
        self.process.stop()

    def qido(self, bearer: dict, smp: Sample, rnd: random.Random, repeat: int) -> list[float]:
        out = []
        with httpx.Client(base_url=f"http://127.0.0.1:{self.http}/dicomweb", headers={
                **bearer, "Accept": "application/dicom+json"}, timeout=60) as client:
            for i in range(repeat + 3):
                start = time.perf_counter()
                r = client.get("/studies", params={"PatientID": rnd.choice(smp.patient_ids)})
                ms = (time.perf_counter() - start) * 1000
                r.raise_for_status()
                if i >= 3:  # after a warm-up
                    out.append(ms)
        return out

    def cfind(self, smp: Sample, rnd: random.Random, repeat: int) -> list[float]:
        ae = AE(ae_title="BENCH")
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        assoc = ae.associate("127.0.0.1", self.dimse, ae_title=CALLED_AE)
        if not assoc.is_established:
            raise RuntimeError("the gateway refused the C-FIND association")
        # Like dcmtk with TCP_NODELAY=1 (docs: Nagle's algorithm stalls small PDUs ~40 ms).
        assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        out = []
        try:
            for i in range(repeat + 3):
                ds = Dataset()
                ds.QueryRetrieveLevel = "STUDY"
                for keyword in CFIND_STUDY:
                    setattr(ds, keyword, "")
                ds.PatientID = rnd.choice(smp.patient_ids)
                start = time.perf_counter()
                statuses = [s.Status for s, _ in assoc.send_c_find(
                    ds, StudyRootQueryRetrieveInformationModelFind) if s]
                ms = (time.perf_counter() - start) * 1000
                if not statuses or statuses[-1] != 0x0000:
                    raise RuntimeError(f"C-FIND ended with {statuses[-1:]}")
                if i >= 3:
                    out.append(ms)
        finally:
            assoc.release()
        return out
