"""Entry point: ``dicomvault run hsm-archiver`` (or ``python -m hsm_archiver``)."""

from __future__ import annotations

from dicomvault.lifecycle import serve
from hsm_archiver.service import run
from hsm_archiver.settings import ArchiverSettings


def main() -> None:
    serve("hsm-archiver", ArchiverSettings(), run)


if __name__ == "__main__":
    main()
