"""Entry point: `dicomvault run gateway` or `python -m dicom_gateway`."""

from __future__ import annotations

from dicom_gateway.service import run
from dicom_gateway.settings import GatewaySettings
from dicomvault.lifecycle import serve


def main() -> None:
    serve("dicom-gateway", GatewaySettings(), run)


if __name__ == "__main__":
    main()
