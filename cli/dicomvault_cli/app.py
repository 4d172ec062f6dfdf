"""The `dicomvault` command line: run one service, bring the embedded archive up, inspect it."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from dicomvault.bus.broker import BrokerCpu

SERVICES: dict[str, str] = {
    "gateway": "dicom_gateway",
    "catalogue": "catalogue",
    "hsm-archiver": "hsm_archiver",
    "optical-burner": "optical_burner",
    "stow-exporter": "stow_exporter",
    "commitment": "commitment",
    "operator": "vault_operator",
    "audit": "audit",
}

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="DICOM Vault: event-sourced DICOM archive.")
catalogue_app = typer.Typer(no_args_is_help=True, help="Catalogue maintenance.")
app.add_typer(catalogue_app, name="catalogue")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead-letter queue: list and replay.")
app.add_typer(dlq_app, name="dlq")
study_app = typer.Typer(no_args_is_help=True, help="Study commands (administrator).")
app.add_typer(study_app, name="study")


def _bus():
    from pydantic_settings import BaseSettings

    from dicomvault.settings import SETTINGS_CONFIG, BusSettings

    class CliSettings(BaseSettings):
        model_config = SETTINGS_CONFIG
        bus: BusSettings = BusSettings()

    return CliSettings().bus


@dlq_app.command("list")
def dlq_list() -> None:
    """Print every dead letter as a JSON line: where it came from, its type, id and error."""
    from dicomvault_cli.dlq import list_main

    list_main(_bus())


@dlq_app.command("replay")
def dlq_replay(
    ce_type: str | None = typer.Option(None, help="Only records of this CloudEvents type."),
    ce_id: str | None = typer.Option(None, help="Only the record with this event id."),
) -> None:
    """Send dead letters back to their original topic (consumers de-duplicate by ce_id)."""
    from dicomvault_cli.dlq import replay_main

    typer.echo(f"replayed {replay_main(_bus(), ce_type, ce_id)} record(s)")


@study_app.command("evict")
def study_evict(
    uid: str = typer.Argument(..., help="Study Instance UID."),
    url: str = typer.Option("http://127.0.0.1:8082", help="The hsm-archiver's HTTP API."),
    token_file: Path | None = typer.Option(
        None, help="File holding a bearer token with the admin scope (default: "
                   "DICOMVAULT_CLIENT__TOKEN_FILE; none: the embedded archive needs none)."),
) -> None:
    """Remove a study from the cache tier now, if every instance has a verified copy on
    another tier (never the last copy). Exit 0 evicted, 1 refused (the reason is printed)."""
    from dicomvault_cli.study import evict

    code, text = evict(uid, url, token_file)
    typer.echo(text, err=code != 0)
    raise typer.Exit(code)


@app.command()
def run(service: str = typer.Argument(..., help=" | ".join(SERVICES))) -> None:
    """Run one service in the foreground (what a container does). Settings: DICOMVAULT_* env."""
    package = SERVICES.get(service)
    if package is None:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"{package}.__main__")
    module.main()


def parse_broker_cpu(text: str) -> BrokerCpu:
    """``--broker-cpu``: "auto", "all" (None: no pinning) or a CPU number."""
    value = text.strip().lower()
    if value in ("auto", "all"):
        return "auto" if value == "auto" else None
    if not value.isdigit():
        raise typer.BadParameter(f"{text!r}: auto, all or a CPU number",
                                 param_hint="--broker-cpu")
    from dicomvault.bus.broker import allowed_cpus

    allowed = allowed_cpus()
    if int(value) not in allowed:
        raise typer.BadParameter(
            f"CPU {value} is not one this process may use "
            f"({', '.join(map(str, allowed)) or 'none can be chosen on this system'})",
            param_hint="--broker-cpu")
    return int(value)


@app.command()
def up(
    data_dir: Path = typer.Option(Path("./var"), help="Where cache, catalogue and logs live."),
    host: str = typer.Option("127.0.0.1", help="Address every listener binds to."),
    broker_port: int = typer.Option(9092, help="Kafka port of the embedded broker."),
    broker_cpu: str = typer.Option(
        "auto", help="CPU the embedded broker's threads share: auto (one picked), a CPU "
                     "number, or all (no pinning)."),
    dimse_port: int = typer.Option(11112, help="DIMSE port of the gateway."),
    http_port: int = typer.Option(8080, help="Gateway HTTP port; services use the next ones."),
    ae_title: str = typer.Option("DICOMVAULT", help="The archive's AE title."),
    strict_ae: bool = typer.Option(False, help="Only accept calling AEs from the allowlist."),
    exporters: Path | None = typer.Option(None, help="Exporters YAML (same schema as the CRD)."),
    stable_after: float = typer.Option(30.0, help="Seconds without new instances → StudyStable."),
    json_logs: bool = typer.Option(True, help="Service logs as JSON lines (else console)."),
) -> None:
    """Start the embedded archive: broker, catalogue (SQLite), gateway and every service."""
    from dicomvault_cli.embedded import EmbeddedOptions
    from dicomvault_cli.embedded import up as start

    if exporters is None and Path("examples/exporters.yaml").exists():
        typer.echo("(exporters: none; pass --exporters examples/exporters.yaml to export)")
    raise typer.Exit(start(EmbeddedOptions(
        data_dir=data_dir, host=host, broker_port=broker_port,
        broker_cpu=parse_broker_cpu(broker_cpu), dimse_port=dimse_port,
        http_port=http_port, ae_title=ae_title, accept_any_calling_ae=not strict_ae,
        exporters_file=exporters, stable_after_s=stable_after, log_json=json_logs,
    )))


@app.command()
def status(data_dir: Path = typer.Option(Path("./var"), help="The embedded archive's folder.")) -> None:
    """Show whether the embedded archive's broker and services are up and ready."""
    from dicomvault_cli.embedded import status as show

    raise typer.Exit(show(data_dir))


@catalogue_app.command("rebuild")
def catalogue_rebuild(
    check: bool = typer.Option(False, "--check", help="Only compare a replay with the live tables."),
) -> None:
    """Replay the journal into fresh projections (with --check: report differences only).

    Uses the catalogue's settings from DICOMVAULT_* (DICOMVAULT_DATABASE__URL)."""
    rebuild = importlib.import_module("catalogue.rebuild")
    result = rebuild.rebuild_main(check_only=check)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    raise typer.Exit(int(result or 0))


def main() -> None:
    app()
