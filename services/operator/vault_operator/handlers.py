"""kopf handlers: Exporters become a ConfigMap + stow-exporter Deployment; their status follows
the Deployment. No finalizer: the children go with the Exporter through owner references."""

from __future__ import annotations

import kopf

from dicomvault.exporters import API_VERSION, GROUP, KIND, PLURAL, VERSION
from vault_operator import metrics, render
from vault_operator.reconcile import owner_of, reconcile, refresh_conditions

HANDLERS = kopf.OperatorRegistry()
EXPORTERS = (GROUP, VERSION, PLURAL)


@kopf.on.login(registry=HANDLERS)
def login(memo: kopf.Memo, **_) -> kopf.ConnectionInfo:
    return memo.connection


@kopf.on.create(*EXPORTERS, registry=HANDLERS)
async def created(body, patch, memo: kopf.Memo, logger, **_) -> None:
    patch.status.update(await reconcile(body, memo.kube, memo.settings, "create", logger))


@kopf.on.update(*EXPORTERS, field="spec", registry=HANDLERS)
async def updated(body, patch, memo: kopf.Memo, logger, **_) -> None:
    patch.status.update(await reconcile(body, memo.kube, memo.settings, "update", logger))


@kopf.on.resume(*EXPORTERS, registry=HANDLERS)
async def resumed(body, patch, memo: kopf.Memo, logger, **_) -> None:
    patch.status.update(await reconcile(body, memo.kube, memo.settings, "resume", logger))


@kopf.on.delete(*EXPORTERS, optional=True, registry=HANDLERS)
def deleted(name, logger, **_) -> None:
    metrics.RECONCILIATIONS.labels("delete", "ok").inc()
    logger.info(f"exporter {name} deleted; its Deployment and ConfigMap go with it")


@kopf.on.event("apps", "v1", "deployments",
               labels={"app.kubernetes.io/managed-by": render.MANAGED_BY}, registry=HANDLERS)
async def deployment_changed(type, body, memo: kopf.Memo, logger, **_) -> None:
    owner = owner_of(body)
    if owner is None:
        return
    kube = memo.kube
    exporter = await kube.get(API_VERSION, KIND, body.metadata.namespace, owner["name"])
    if exporter is None or exporter["metadata"].get("uid") != owner.get("uid"):
        return  # its Exporter is gone: the garbage collector takes the Deployment
    if exporter["metadata"].get("deletionTimestamp"):
        return
    if type == "DELETED":  # removed by hand: put it back (level-triggered)
        logger.info(f"deployment {body.metadata.name} vanished; re-creating it")
        result = await reconcile(exporter, kube, memo.settings, "child-deleted", logger)
        await kube.patch_status(API_VERSION, KIND, body.metadata.namespace, owner["name"],
                                result)
        return
    await refresh_conditions(kube, exporter, dict(body))
