"""Entry point: ``dicomvault run catalogue`` (or ``python -m catalogue``)."""

from __future__ import annotations

from catalogue.service import run
from catalogue.settings import CatalogueSettings
from dicomvault.lifecycle import serve


def main() -> None:
    serve("catalogue", CatalogueSettings(), run)


if __name__ == "__main__":
    main()
