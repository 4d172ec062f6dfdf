"""A real HTTPS listener from ``HttpServer.for_app`` with mutual TLS, called by the shared
client options (``dicomvault.query.client.http_options``): CA, client certificate, token file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import trustme
from fastapi import FastAPI, Request

from dicomvault.bus.broker import free_port
from dicomvault.lifecycle import HttpServer
from dicomvault.query.client import http_options
from dicomvault.settings import ClientSettings, HttpSettings


def app() -> FastAPI:
    api = FastAPI()

    @api.get("/whoami")
    async def whoami(request: Request) -> dict:
        return {"authorization": request.headers.get("authorization", "")}

    return api


async def test_mutual_tls_and_token_file(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    client_cert = ca.issue_cert("hsm-archiver.dicomvault.svc")
    files = {}
    for name, blob in {"ca.crt": ca.cert_pem, "tls.crt": server_cert.cert_chain_pems[0],
                       "tls.key": server_cert.private_key_pem,
                       "client.crt": client_cert.cert_chain_pems[0],
                       "client.key": client_cert.private_key_pem}.items():
        blob.write_to_path(tmp_path / name)
        files[name] = tmp_path / name
    port = free_port()
    server = HttpServer.for_app(app(), HttpSettings(
        port=port, cert_file=files["tls.crt"], key_file=files["tls.key"],
        client_ca_file=files["ca.crt"], require_client_cert=True))
    serving = asyncio.create_task(server.serve())
    url = f"https://127.0.0.1:{port}/whoami"
    token = tmp_path / "token"
    token.write_text("first.token.value\n")
    client = ClientSettings(ca_file=files["ca.crt"], cert_file=files["client.crt"],
                            key_file=files["client.key"], token_file=token)
    try:
        while not server.started:
            assert not serving.done()
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(timeout=5, **http_options(client)) as http:
            assert (await http.get(url)).json() == {"authorization": "Bearer first.token.value"}
            # The token file is read again when it changes.
            token.write_text("second.token.value.longer")
            assert (await http.get(url)).json()["authorization"] == \
                "Bearer second.token.value.longer"
        # Without a client certificate the handshake is refused.
        no_cert = ClientSettings(ca_file=files["ca.crt"])
        async with httpx.AsyncClient(timeout=5, **http_options(no_cert)) as http:
            with pytest.raises(httpx.HTTPError):
                await http.get(url)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
