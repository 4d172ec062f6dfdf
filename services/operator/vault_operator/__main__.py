"""Entry point: ``dicomvault run operator`` (or ``python -m vault_operator``)."""

from __future__ import annotations

from dicomvault.lifecycle import serve
from vault_operator.service import run
from vault_operator.settings import OperatorSettings


def main() -> None:
    serve("operator", OperatorSettings(), run)


if __name__ == "__main__":
    main()
