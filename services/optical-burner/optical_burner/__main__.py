"""Entry point: ``dicomvault run optical-burner`` (or ``python -m optical_burner``)."""

from __future__ import annotations

from dicomvault.lifecycle import serve
from optical_burner.service import run
from optical_burner.settings import OpticalSettings


def main() -> None:
    serve("optical-burner", OpticalSettings(), run)


if __name__ == "__main__":
    main()
