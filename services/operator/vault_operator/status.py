"""Exporter status: the Ready and Degraded conditions, from the spec and the Deployment,
and the outcome of the latest storage commitment.

Ready: True/Available (the stow-exporter runs); False with reason InvalidSpec, Suspended or
Progressing. Degraded: True with reason InvalidSpec, RolloutStuck, ExportFailures or
CommitmentFailed; else False/AsExpected. ``lastTransitionTime`` changes only when a
condition's status changes. ``commitment`` (a printer column) is the state of the exporter's
latest COMMIT_SCU job: Committed, Pending, Retrying, Failed or Cancelled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

MAX_MESSAGE = 1000  # characters of a condition message (kubectl get/describe stay readable)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment_state(deployment: dict[str, Any] | None) -> tuple[bool, str]:
    """(available, problem) of a Deployment: problem is a message when its rollout is stuck."""
    st = (deployment or {}).get("status") or {}
    conds = {c.get("type"): c for c in st.get("conditions") or []}
    available = (conds.get("Available", {}).get("status") == "True"
                 or int(st.get("availableReplicas") or 0) > 0)
    progressing = conds.get("Progressing", {})
    problem = ""
    if progressing.get("status") == "False":
        problem = progressing.get("message") or progressing.get("reason") or "rollout stuck"
    return available, problem


# A COMMIT_SCU job's state (the jobs API) as the Exporter's ``status.commitment``.
COMMITMENT = {"DONE": "Committed", "FAILED": "Failed", "CANCELLED": "Cancelled",
              "RETRY": "Retrying", "NEW": "Pending", "IN_PROGRESS": "Pending",
              "WAITING": "Pending", "SUSPENDED": "Pending"}


def commitment(job: dict[str, Any]) -> dict[str, Any]:
    """Status fields from the exporter's latest COMMIT_SCU job (``GET /api/v1/jobs``)."""
    state = COMMITMENT.get(str(job.get("state")), "Pending")
    message = job.get("error") if state in ("Failed", "Retrying") else job.get("message")
    return {"commitment": state, "commitmentMessage": str(message or ""),
            "commitmentJob": str(job.get("job_id") or "")}


def conditions(previous: list[dict[str, Any]] | None, generation: int | None, *,
               invalid: str = "", suspended: bool = False,
               deployment: dict[str, Any] | None = None, failed: int = 0,
               queue: str = "", commitment_failed: str = "") -> list[dict[str, Any]]:
    """``commitment_failed``: the message of a failed latest commitment (empty: none)."""
    """The new conditions list; ``invalid`` is the InvalidSpec message (empty: valid)."""
    available, problem = deployment_state(deployment)
    if invalid:
        ready = ("False", "InvalidSpec", invalid)
        degraded = ("True", "InvalidSpec", invalid)
    else:
        if suspended:
            ready = ("False", "Suspended", "exports are suspended (spec.suspended is true)")
        elif available:
            ready = ("True", "Available", "the stow-exporter is running")
        else:
            ready = ("False", "Progressing",
                     "waiting for the stow-exporter Deployment to become available")
        if problem and not suspended:
            degraded = ("True", "RolloutStuck", problem)
        elif failed:
            degraded = ("True", "ExportFailures", f"{failed} export job(s) failed in queue {queue}")
        elif commitment_failed:
            degraded = ("True", "CommitmentFailed", commitment_failed)
        else:
            degraded = ("False", "AsExpected", "no problems")
    old = {c.get("type"): c for c in previous or []}
    out = []
    for kind, (status, reason, message) in (("Ready", ready), ("Degraded", degraded)):
        before = old.get(kind) or {}
        changed = before.get("status") != status
        if len(message) > MAX_MESSAGE:  # a spec value echoed in a reason can be huge
            message = message[:MAX_MESSAGE] + f"… (+{len(message) - MAX_MESSAGE} chars)"
        cond = {"type": kind, "status": status, "reason": reason, "message": message,
                "lastTransitionTime": now() if changed or "lastTransitionTime" not in before
                else before["lastTransitionTime"]}
        if generation is not None:
            cond["observedGeneration"] = generation
        out.append(cond)
    return out


def same(a: list[dict[str, Any]] | None, b: list[dict[str, Any]]) -> bool:
    """Equal apart from lastTransitionTime (avoids needless status patches)."""
    def strip(cs):
        return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in cs or []]

    return strip(a) == strip(b)
