"""Entry point: `dicomvault run commitment` or `python -m commitment`."""

from __future__ import annotations

from commitment.service import run
from commitment.settings import CommitmentSettings
from dicomvault.lifecycle import serve


def main() -> None:
    serve("commitment", CommitmentSettings(), run)


if __name__ == "__main__":
    main()
