"""A Kubernetes API for tests: kmock's emulator plus the few behaviours kubectl and kopf rely on.

kmock stores objects verbatim. This subclass adds what a real API server (and the garbage
collector of kube-controller-manager) would do:
- on create: ``uid``, ``resourceVersion``, ``creationTimestamp``, ``generation``, namespace;
- on patch: a new ``resourceVersion``; ``generation`` + 1 when ``spec`` changes; the main
  resource ignores ``status`` and ``/status`` only takes ``status`` (status subresource);
- lists carry ``kind``/``apiVersion``; ``Accept: …;as=Table`` gets a server-side Table whose
  columns come from the stored CRD's ``additionalPrinterColumns`` (as kubectl shows them);
- a created CRD registers its resource for discovery;
- dependents whose owners are all gone are deleted (background garbage collection).
The server runs in its own thread and event loop, so tests can call kubectl synchronously.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import gzip
import itertools
import re
import threading
import uuid
from importlib import resources
from typing import Any

import jsonpatch
import kmock
from kmock._internal import dicts

CRDS = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def jsonpath(obj: Any, path: str) -> list[Any]:
    """The subset of kubectl JSONPath that printer columns use: ``.a.b``, ``[n]``, ``[*]``,
    ``[?(@.k=="v")]``."""
    tokens = re.findall(r'\.([A-Za-z0-9_-]+)|\[(\d+|\*|\?\(@\.([A-Za-z0-9_]+)==\"([^"]*)\"\))\]',
                        path)
    values = [obj]
    for name, index, fkey, fval in tokens:
        nxt: list[Any] = []
        for v in values:
            if name:
                if isinstance(v, dict) and name in v:
                    nxt.append(v[name])
            elif index == "*" and isinstance(v, list):
                nxt.extend(v)
            elif fkey and isinstance(v, list):
                nxt.extend(i for i in v if isinstance(i, dict) and str(i.get(fkey)) == fval)
            elif index.isdigit() and isinstance(v, list) and int(index) < len(v):
                nxt.append(v[int(index)])
        values = nxt
    return values


def _age(timestamp: str) -> str:
    when = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = int((datetime.datetime.now(datetime.UTC) - when).total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


class Emulator(kmock.KubernetesEmulator):
    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._versions = itertools.count(1000)
        self._mutations = asyncio.Lock()

    # Writes -------------------------------------------------------------------------------

    async def _handle(self, request: kmock.Request):
        if request.resource is None or request.action not in (
                kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE):
            return await super()._handle(request)
        async with self._mutations:
            if request.action == kmock.action.CREATE and isinstance(request.data, dict):
                self._on_create(request)
            elif request.action == kmock.action.UPDATE:
                self._on_patch(request)
            response = await super()._handle(request)
            await self._collect_garbage()
            return response

    def _on_create(self, request: kmock.Request) -> None:
        meta = request.data.setdefault("metadata", {})
        meta.update(uid=str(uuid.uuid4()), resourceVersion=str(next(self._versions)),
                    creationTimestamp=_now(), generation=1)
        if request.namespace and not meta.get("namespace"):
            meta["namespace"] = request.namespace
        if request.resource == CRDS:
            self._register_crd(request.data)

    def _on_patch(self, request: kmock.Request) -> None:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return  # kmock answers 404
        current = copy.deepcopy(self.objects[key].raw)
        info = self.resources[request.resource]
        patch = request.data
        if isinstance(patch, dict):
            wanted = (patch.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != current["metadata"].get("resourceVersion"):
                raise kmock.KubernetesError(  # optimistic concurrency, as the API server does
                    status=409, reason="Conflict",
                    message="the object has been modified; apply your changes to the latest "
                            "version and try again")
            if request.subresource == "status":
                for k in [k for k in patch if k != "status"]:
                    del patch[k]
            elif "status" in info.subresources:
                patch.pop("status", None)
            new = dicts.patch_dict(current, patch)
        elif isinstance(patch, list):
            new = jsonpatch.apply_patch(current, patch)
        else:
            return
        extra = {"resourceVersion": str(next(self._versions))}
        if request.subresource is None and new.get("spec") != current.get("spec"):
            extra["generation"] = int(current["metadata"].get("generation") or 1) + 1
        if isinstance(patch, dict):
            patch.setdefault("metadata", {}).update(extra)
        else:
            patch.extend({"op": "add", "path": f"/metadata/{k}", "value": v}
                         for k, v in extra.items())

    def _register_crd(self, crd: dict[str, Any]) -> None:
        spec = crd["spec"]
        for version in spec["versions"]:
            res = f"{spec['group']}/{version['name']}/{spec['names']['plural']}"
            self.resources[res] = kmock.ResourceInfo(
                kind=spec["names"]["kind"], singular=spec["names"].get("singular"),
                namespaced=spec.get("scope") == "Namespaced",
                shortnames=spec["names"].get("shortNames", []),
                categories=spec["names"].get("categories", []),
                verbs=["create", "delete", "get", "list", "patch", "update", "watch"],
                subresources=list(version.get("subresources") or {}))

    async def _collect_garbage(self) -> None:
        """Delete dependents none of whose owners exist any more (as the GC controller does)."""
        while True:
            live = {obj.raw["metadata"].get("uid") for obj in self.objects.values()
                    if not obj.deleted}
            orphans = [(key, obj) for key, obj in self.objects.items() if not obj.deleted
                       and (refs := obj.raw["metadata"].get("ownerReferences"))
                       and not any(r.get("uid") in live for r in refs)]
            if not orphans:
                return
            for (resource, _, _), obj in orphans:
                raw = obj.raw
                obj.delete()
                await self._buses[resource].put({"type": "DELETED", "object": raw})

    # Reads --------------------------------------------------------------------------------

    async def _serve_version(self, request: kmock.Request):
        out = await super()._serve_version(request)
        out["groupVersion"] = out["groupVersion"].lstrip("/")  # the core group is "v1"
        return out

    def _identity(self, resource) -> tuple[str, str]:
        info = self.resources[resource]
        api_version = f"{resource.group}/{resource.version}" if resource.group else resource.version
        return api_version, info.kind or resource.plural.capitalize()

    async def _serve_list(self, request: kmock.Request):
        out = await super()._serve_list(request)
        api_version, kind = self._identity(request.resource)
        items = [{"apiVersion": api_version, "kind": kind, **item} for item in out["items"]]
        if self._wants_table(request):
            return self._table(request.resource, items)
        return {"apiVersion": api_version, "kind": f"{kind}List",
                "metadata": {"resourceVersion": str(next(self._versions))}, "items": items}

    async def _serve_fetch(self, request: kmock.Request):
        obj = await super()._serve_fetch(request)
        if self._wants_table(request):
            api_version, kind = self._identity(request.resource)
            return self._table(request.resource, [{"apiVersion": api_version, "kind": kind,
                                                   **obj}])
        return obj

    @staticmethod
    def _wants_table(request: kmock.Request) -> bool:
        return "as=Table" in request.headers.get("Accept", "")

    def _printer_columns(self, resource) -> list[dict[str, Any]]:
        for obj in self.objects.values():
            if obj.deleted or not obj.raw.get("kind") == "CustomResourceDefinition":
                continue
            spec = obj.raw["spec"]
            if spec["group"] == resource.group and spec["names"]["plural"] == resource.plural:
                for version in spec["versions"]:
                    if version["name"] == resource.version:
                        return version.get("additionalPrinterColumns") or []
        return [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]

    def _table(self, resource, items: list[dict[str, Any]]) -> dict[str, Any]:
        columns = self._printer_columns(resource)
        definitions = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
                        "description": "Name of the object"}]
        definitions += [{"name": c["name"], "type": c["type"], "format": c.get("format", ""),
                         "priority": c.get("priority", 0),
                         "description": c.get("description", "")} for c in columns]
        rows = []
        for item in items:
            cells: list[Any] = [item["metadata"]["name"]]
            for c in columns:
                found = jsonpath(item, c["jsonPath"])
                value = found[0] if found else None
                if value is not None and c["type"] == "date":
                    value = _age(value)
                cells.append(value)
            rows.append({"cells": cells, "object": item})
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": str(next(self._versions))},
                "columnDefinitions": definitions, "rows": rows}


class EmulatorThread:
    """The emulator served on a loopback port from its own thread and event loop."""

    def __init__(self) -> None:
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="kube-api", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with Emulator() as emulator, kmock.Server(emulator) as server:
            # kmock's bundled built-in kinds (load_bundled() itself warns on Python 3.11).
            bundled = resources.files("kmock._internal").joinpath("resources.json.gz")
            emulator.resources.load_data(gzip.decompress(bundled.read_bytes()))
            for info in emulator.resources.values():  # kubectl resolves "configmap" by it
                if info.singular is None and info.kind:
                    info.singular = info.kind.lower()
            self.url = f"http://127.0.0.1:{server.port}"
            self._ready.set()
            await self._stop.wait()

    def start(self) -> EmulatorThread:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"the Kubernetes API emulator did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self._thread.is_alive():
            raise RuntimeError("the Kubernetes API emulator did not stop")
