"""Study commands of an administrator: `dicomvault study evict UID` asks the hsm-archiver
(the service that evicts) to remove a study from the cache tier now."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from dicomvault_cli.web import WebSettings


def evict(uid: str, url: str, token_file: Path | None) -> tuple[int, str]:
    """POST /api/v1/studies/{uid}/evict; (exit code, what to print). The token comes from
    ``token_file`` or DICOMVAULT_CLIENT__TOKEN_FILE, HTTPS is verified with
    DICOMVAULT_CLIENT__CA_FILE; the token is never printed."""
    web = WebSettings()
    token_file = token_file or web.client.token_file
    headers = {}
    if token_file is not None:
        headers["Authorization"] = f"Bearer {token_file.read_text().strip()}"
    try:
        r = httpx.post(f"{url.rstrip('/')}/api/v1/studies/{uid}/evict", headers=headers,
                       timeout=120, **web.httpx_options())
    except httpx.HTTPError as exc:
        return 2, f"cannot reach the hsm-archiver at {url}: {exc}"
    try:
        body = r.json()
    except ValueError:
        body = {"detail": r.text[:500]}
    if r.status_code == 200:
        return 0, (f"evicted {uid}: {body.get('instances')} instance(s), "
                   f"{body.get('freed_bytes')} bytes freed; copies on "
                   f"{', '.join(body.get('copies') or [])}")
    return 1, f"not evicted ({r.status_code}): {body.get('detail') or json.dumps(body)}"
