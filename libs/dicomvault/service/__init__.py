"""One service skeleton: the settings every service shares.

``ServiceSettings`` / ``WorkerSettings`` (``settings``) are the base of each service's
settings class, so a service's settings.py says only what is its own.
"""

from dicomvault.service.settings import ServiceSettings, WorkerSettings

__all__ = ["ServiceSettings", "WorkerSettings"]
