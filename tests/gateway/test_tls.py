"""DICOM TLS on the second DIMSE port: dcmtk echoscu and storescu with certificates from a
test CA (trustme) are served by the same handlers; a client without a certificate, or
without TLS, is not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import trustme

from dicom_gateway import statuses as st
from dicomvault.bus.broker import free_port
from tests.conftest import dcmtk, peer_env
from tests.gateway import retrieve_peers
from tests.gateway.conftest import AE_TITLE, MODALITY
from tests.gateway.retrieve_peers import (
    DESTINATION,
    RETRIEVER,
    final_status,
    movescu,
    run_storescp,
    stored_study,
)
from tests.peers.datasets import write_study

catalogue = retrieve_peers.catalogue  # fixture


def pki(folder: Path) -> dict[str, Path]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("modality1.example")
    files = {name: folder / f"{name}.pem" for name in (
        "ca", "server_cert", "server_key", "client_cert", "client_key")}
    ca.cert_pem.write_to_path(files["ca"])
    server.cert_chain_pems[0].write_to_path(files["server_cert"])
    server.private_key_pem.write_to_path(files["server_key"])
    client.cert_chain_pems[0].write_to_path(files["client_cert"])
    client.private_key_pem.write_to_path(files["client_key"])
    return files


def dcmtk_run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([dcmtk(tool), "-aet", MODALITY, "-aec", AE_TITLE, *args],
                          env=peer_env(), capture_output=True, text=True, timeout=60)


def test_tls_echo_and_store_with_client_certificates(start_gateway, tmp_path: Path) -> None:
    files = pki(tmp_path)
    tls_port = free_port()
    gw = start_gateway(tls_port=tls_port, tls_cert_file=files["server_cert"],
                       tls_key_file=files["server_key"], tls_ca_file=files["ca"])
    client = ("+tls", str(files["client_key"]), str(files["client_cert"]),
              "+cf", str(files["ca"]))

    # C-ECHO over TLS with a client certificate the CA signed.
    done = dcmtk_run("echoscu", *client, "127.0.0.1", str(tls_port))
    assert done.returncode == 0, done.stdout + done.stderr

    # C-STORE over TLS: the instance is in the cache like any other.
    study = write_study(tmp_path / "sent", series=1, per_series=2)
    done = dcmtk_run("storescu", *client, "127.0.0.1", str(tls_port), *map(str, study.files))
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.stem for p in gw.files()) == sorted(study.sop_uids)

    # Without a client certificate (anonymous TLS) the handshake is refused.
    done = dcmtk_run("echoscu", "+tla", "+cf", str(files["ca"]), "127.0.0.1", str(tls_port))
    assert done.returncode != 0
    # Plain DIMSE on the TLS port gets nowhere; the plain port still answers.
    done = dcmtk_run("echoscu", "-to", "5", "-ta", "5", "127.0.0.1", str(tls_port))
    assert done.returncode != 0
    done = dcmtk_run("echoscu", "127.0.0.1", str(gw.port))
    assert done.returncode == 0, done.stdout + done.stderr


def test_tls_without_client_certificates_when_not_required(start_gateway,
                                                           tmp_path: Path) -> None:
    files = pki(tmp_path)
    tls_port = free_port()
    start_gateway(tls_port=tls_port, tls_cert_file=files["server_cert"],
                  tls_key_file=files["server_key"], tls_ca_file=files["ca"],
                  tls_require_client_cert=False)
    done = dcmtk_run("echoscu", "+tla", "+cf", str(files["ca"]), "127.0.0.1", str(tls_port))
    assert done.returncode == 0, done.stdout + done.stderr


def test_move_to_a_tls_destination(start_gateway, catalogue, tmp_path: Path) -> None:
    files = pki(tmp_path)
    server = ("+tls", str(files["server_key"]), str(files["server_cert"]),
              "+cf", str(files["ca"]))
    with run_storescp(tmp_path, *server) as scp:
        gw = start_gateway(catalogue_url=catalogue, tls_cert_file=files["client_cert"],
                           tls_key_file=files["client_key"], tls_ca_file=files["ca"],
                           modalities={DESTINATION: {"host": "127.0.0.1", "port": scp.port,
                                                     "tls": True}, RETRIEVER: {}})
        study = stored_study(gw, catalogue, tmp_path / "sent", series=1, per_series=2)
        # The sub-association to the destination speaks TLS with our client certificate.
        rc, out = movescu(gw.port, "QueryRetrieveLevel=STUDY",
                          f"StudyInstanceUID={study.study_uid}")
        assert final_status(out) == st.SUCCESS, out
        assert set(scp.received()) == set(study.sop_uids)
