"""Entry point: ``dicomvault run stow-exporter`` (or ``python -m stow_exporter``)."""

from __future__ import annotations

from dicomvault.lifecycle import serve
from stow_exporter.service import run
from stow_exporter.settings import ExporterSettings


def main() -> None:
    serve("stow-exporter", ExporterSettings(), run)


if __name__ == "__main__":
    main()
