"""A small Kubernetes API client for the operator's children and status (httpx, JSON only).

kopf watches and patches the Exporters itself; this client applies the ConfigMap and
Deployment (server-side apply, field manager ``dicomvault-operator``), reads Exporters and
Deployments, and patches Exporter status outside kopf's handlers (Deployment events, queue
counts). It logs in like kopf: an explicit server (tests), the pod's service account, or
kubeconfig.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx
import kopf

FIELD_MANAGER = "dicomvault-operator"

# apiVersion + kind → (URL prefix, plural)
_RESOURCES = {
    ("v1", "ConfigMap"): ("api/v1", "configmaps"),
    ("apps/v1", "Deployment"): ("apis/apps/v1", "deployments"),
    ("dicomvault.io/v1", "Exporter"): ("apis/dicomvault.io/v1", "exporters"),
}


class KubeError(RuntimeError):
    """The API server refused a request (status and Kubernetes' message)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"HTTP {status}: {message}")


def connection_info(api_server: str, settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    """Credentials the same way for kopf and this client."""
    if api_server:
        return kopf.ConnectionInfo(server=api_server)
    info = kopf.login_with_service_account(settings=settings)
    if info is None:
        info = kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise kopf.LoginError("no service account and no kubeconfig to reach the Kubernetes API")
    return info


def _ssl(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if not info.server.startswith("https"):
        return True
    if info.insecure:
        return False
    ctx = ssl.create_default_context(
        cafile=str(info.ca_path) if info.ca_path else None,
        cadata=info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data)
    if info.certificate_path and info.private_key_path:
        ctx.load_cert_chain(str(info.certificate_path), str(info.private_key_path))
    return ctx


class Kube:
    def __init__(self, info: kopf.ConnectionInfo, timeout_s: float) -> None:
        headers = {"Accept": "application/json"}
        if info.token:
            headers["Authorization"] = f"Bearer {info.token}"
        auth = (info.username, info.password) if info.username and info.password else None
        self.client = httpx.AsyncClient(base_url=info.server.rstrip("/"), headers=headers,
                                        auth=auth, verify=_ssl(info), timeout=timeout_s)

    async def close(self) -> None:
        await self.client.aclose()

    @staticmethod
    def url(api_version: str, kind: str, namespace: str, name: str = "") -> str:
        prefix, plural = _RESOURCES[(api_version, kind)]
        return f"/{prefix}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")

    async def _send(self, method: str, url: str, **kw: Any) -> dict[str, Any] | None:
        r = await self.client.request(method, url, **kw)
        if r.status_code == 404:
            return None
        if r.status_code >= 400:
            try:
                message = r.json().get("message", r.text)
            except ValueError:
                message = r.text
            raise KubeError(r.status_code, str(message)[:500])
        return r.json()

    async def get(self, api_version: str, kind: str, namespace: str,
                  name: str) -> dict[str, Any] | None:
        return await self._send("GET", self.url(api_version, kind, namespace, name))

    async def list(self, api_version: str, kind: str, namespace: str) -> list[dict[str, Any]]:
        out = await self._send("GET", self.url(api_version, kind, namespace))
        return list((out or {}).get("items") or [])

    async def list_all(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        """Objects of every namespace."""
        prefix, plural = _RESOURCES[(api_version, kind)]
        out = await self._send("GET", f"/{prefix}/{plural}")
        return list((out or {}).get("items") or [])

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of a child object (created when the server does not have it)."""
        meta = obj["metadata"]
        url = self.url(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        body = json.dumps(obj)
        out = await self._send("PATCH", url, content=body,
                               params={"fieldManager": FIELD_MANAGER, "force": "true"},
                               headers={"Content-Type": "application/apply-patch+yaml"})
        if out is None:  # servers without apply-creates (emulators): create it
            out = await self._send("POST", self.url(obj["apiVersion"], obj["kind"],
                                                    meta["namespace"]),
                                   content=body, params={"fieldManager": FIELD_MANAGER},
                                   headers={"Content-Type": "application/json"})
        assert out is not None
        return out

    async def patch_status(self, api_version: str, kind: str, namespace: str, name: str,
                           status: dict[str, Any],
                           resource_version: str | None = None) -> dict[str, Any] | None:
        """Merge-patch ``status`` through the status subresource; None if the object is gone.

        With ``resource_version`` the patch applies only to that version (KubeError 409
        otherwise), so a status computed from a stale read never overwrites a newer one."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self._send("PATCH", self.url(api_version, kind, namespace, name) + "/status",
                                content=json.dumps(body),
                                headers={"Content-Type": "application/merge-patch+json"})
