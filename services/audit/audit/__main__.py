"""Entry point: ``dicomvault run audit`` (or ``python -m audit``)."""

from __future__ import annotations

from audit.service import run
from audit.settings import AuditSettings
from dicomvault.lifecycle import serve


def main() -> None:
    serve("audit", AuditSettings(), run)


if __name__ == "__main__":
    main()
