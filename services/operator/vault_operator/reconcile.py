"""Reconciling one Exporter: validate, apply its ConfigMap and Deployment, compute its status.

Used by the kopf handlers (create, update, resume) and when a child Deployment vanished.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import kopf
from pydantic import ValidationError

from dicomvault.exporters import API_VERSION, KIND, ExporterSpec, describe_spec_error
from vault_operator import metrics, render, status
from vault_operator.kube import Kube, KubeError
from vault_operator.settings import OperatorSettings


async def reconcile(body: Any, kube: Kube, settings: OperatorSettings, cause: str,
                    logger: logging.Logger | logging.LoggerAdapter) -> dict[str, Any]:
    """Bring the children in line with ``body`` (an Exporter); returns the status to patch.

    An invalid spec creates nothing (an already running Deployment keeps the last valid spec)
    and is reported as Ready=False/InvalidSpec. API trouble raises kopf.TemporaryError.
    """
    meta = body["metadata"]
    name, namespace, generation = meta["name"], meta["namespace"], meta.get("generation")
    old = dict(body.get("status") or {})
    try:
        spec = ExporterSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as exc:
        message = f"invalid spec: {describe_spec_error(exc)}"
        running = await kube.get("apps/v1", "Deployment", namespace, render.child_name(name))
        if running is not None:
            message += " (the last valid spec keeps running)"
        logger.warning(message)
        metrics.RECONCILIATIONS.labels(cause, "invalid").inc()
        return {"observedGeneration": generation,
                "conditions": status.conditions(old.get("conditions"), generation,
                                                invalid=message)}
    with metrics.RECONCILE_DURATION.time():
        cm = render.config_map(name, namespace, spec)
        deployment = render.deployment(name, namespace, spec, settings.operator,
                                       settings.bus.bootstrap_servers, cm)
        kopf.append_owner_reference([cm, deployment], owner=body)
        try:
            await kube.apply(cm)
            applied = await kube.apply(deployment)
        except (KubeError, httpx.HTTPError) as exc:
            metrics.RECONCILIATIONS.labels(cause, "error").inc()
            raise kopf.TemporaryError(f"cannot apply the children of {name}: {exc}",
                                      delay=10) from exc
    metrics.RECONCILIATIONS.labels(cause, "ok").inc()
    logger.info(f"reconciled: deployment {deployment['metadata']['name']}, "
                f"config {deployment['spec']['template']['metadata']['annotations']}"
                f"{', suspended' if spec.suspended else ''}")
    return {
        "observedGeneration": generation,
        "deployment": deployment["metadata"]["name"],
        "conditions": status.conditions(old.get("conditions"), generation,
                                        suspended=spec.suspended, deployment=applied,
                                        failed=int(old.get("failed") or 0),
                                        queue=spec.queue_name),
    }


def owner_of(deployment: Any) -> dict[str, Any] | None:
    """The Exporter owner reference of a child Deployment, if any."""
    for ref in deployment.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("apiVersion") == API_VERSION and ref.get("kind") == KIND:
            return ref
    return None


async def refresh_conditions(kube: Kube, exporter: dict[str, Any],
                             deployment: dict[str, Any] | None,
                             extra: dict[str, Any] | None = None) -> None:
    """Recompute Ready/Degraded of a reconciled Exporter from its Deployment and counts;
    patch the status only when something changed. Leaves an InvalidSpec verdict alone."""
    meta, spec = exporter["metadata"], exporter.get("spec") or {}
    old = dict(exporter.get("status") or {})
    if "observedGeneration" not in old:
        return  # not reconciled yet: the create/resume handler writes the first status
    previous = old.get("conditions") or []
    if any(c.get("reason") == "InvalidSpec" for c in previous):
        new_conditions = previous
    else:
        failed = int((extra or {}).get("failed", old.get("failed")) or 0)
        latest = {**old, **(extra or {})}
        commitment_failed = (f"storage commitment failed: {latest.get('commitmentMessage')}"
                             if latest.get("commitment") == "Failed" else "")
        new_conditions = status.conditions(
            previous, old.get("observedGeneration"), suspended=bool(spec.get("suspended")),
            deployment=deployment, failed=failed, queue=spec.get("queueName", "Export1"),
            commitment_failed=commitment_failed)
    patch = {k: v for k, v in (extra or {}).items() if old.get(k) != v}
    if not status.same(previous, new_conditions):
        patch["conditions"] = new_conditions
    if patch:
        try:
            await kube.patch_status(API_VERSION, KIND, meta["namespace"], meta["name"], patch,
                                    resource_version=meta.get("resourceVersion"))
        except KubeError as exc:
            if exc.status != 409:
                raise
            # Changed since it was read: whoever changed it wrote a newer status; the next
            # Deployment event or queue sweep computes again from the fresh object.
