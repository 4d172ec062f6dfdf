"""The `dicomvault` command line: run one service, bring the embedded archive up, inspect it."""

from __future__ import annotations

import importlib

import typer

SERVICES: dict[str, str] = {
    "gateway": "dicom_gateway",
    "catalogue": "catalogue",
    "hsm-archiver": "hsm_archiver",
    "optical-burner": "optical_burner",
    "stow-exporter": "stow_exporter",
    "commitment": "commitment",
    "operator": "vault_operator",
}

app = typer.Typer(no_args_is_help=True, help="DICOM Vault: event-sourced DICOM archive.")


@app.command()
def run(service: str = typer.Argument(..., help="|".join(SERVICES))) -> None:
    """Run one service in the foreground (what a container does). Settings from DICOMVAULT_* env."""
    package = SERVICES.get(service)
    if package is None:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"{package}.__main__")
    module.main()


def main() -> None:
    app()
