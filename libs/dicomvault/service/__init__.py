"""One service skeleton: the settings every service shares and the wiring every one repeats.

``ServiceSettings`` / ``WorkerSettings`` (``settings``) are the base of each service's
settings class; ``Service`` (``skeleton``) opens the publisher and audit trail, runs the
consumers, tasks and HTTP listener, answers readiness and stops it all in one order, so a
service's settings.py and ``run(settings, stop)`` say only what is their own.
``dicomvault.lifecycle.serve`` still owns the process: logs, signals, exit code.
"""

from dicomvault.service.settings import ServiceSettings, WorkerSettings
from dicomvault.service.skeleton import NOT_ASSIGNED, Service

__all__ = ["NOT_ASSIGNED", "Service", "ServiceSettings", "WorkerSettings"]
