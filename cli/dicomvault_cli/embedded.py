"""The embedded archive: one process tree on one machine (`dicomvault up`, `make run`).

Starts the Tansu broker (memory storage), creates the topics, then runs every service as a
child process (`dicomvault run <service>`) with its settings in the environment and every
path (cache, catalogue, optical volumes, ISO images, hot folder, secrets, logs) under one data
folder; a ``DICOMVAULT_*`` variable the user set for one of those paths wins. HTTPS follows
the services' own ``DICOMVAULT_HTTP__*``/``DICOMVAULT_CLIENT__*`` settings (web.py). Children that die are restarted with backoff; Ctrl-C (or SIGTERM) stops
them in reverse order, then the broker.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dicomvault.bus import ensure_topics
from dicomvault.bus.broker import BrokerCpu, EmbeddedBroker
from dicomvault.lifecycle.processes import stop_processes
from dicomvault.settings import BusSettings
from dicomvault_cli.web import WebSettings


@dataclass
class Child:
    name: str
    package: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    # Paths under the data folder: defaults, below the user's own DICOMVAULT_* variables.
    paths: dict[str, str] = field(default_factory=dict)
    # Other defaults of the embedded archive, below the user's own variables too.
    defaults: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0  # since `dicomvault up` (shown by `dicomvault status`)
    failures: int = 0  # exits in a row without a stable run: the restart backoff's exponent
    started_at: float = 0.0

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """What the child process gets: its data paths and defaults, then ``base`` (the
        user's environment), then its own fixed settings (ports, URLs)."""
        return {**self.paths, **self.defaults, **(os.environ if base is None else base),
                **self.env}


@dataclass
class EmbeddedOptions:
    data_dir: Path
    host: str = "127.0.0.1"
    broker_port: int = 9092
    broker_cpu: BrokerCpu = "auto"  # the one CPU of the broker's threads (None: any)
    dimse_port: int = 11112
    http_port: int = 8080
    ae_title: str = "DICOMVAULT"
    accept_any_calling_ae: bool = True
    exporters_file: Path | None = None
    stable_after_s: float = 30.0
    log_json: bool = True


def available(package: str) -> bool:
    """A service is runnable once its package has a __main__ module."""
    try:
        return importlib.util.find_spec(f"{package}.__main__") is not None
    except ModuleNotFoundError:
        return False


MAX_GATEWAY_WORKERS = 4


def gateway_workers() -> int:
    """DIMSE worker processes of the embedded gateway: one per CPU this process may use, 4 at
    most. Associations that share a worker wait for each other's writes (docs/gateway.md,
    Workers); a laptop takes few at once, and each worker is a Python process of its own."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_GATEWAY_WORKERS))


def plan(opts: EmbeddedOptions, bootstrap: str, scheme: str = "http") -> list[Child]:
    data = opts.data_dir.resolve()
    paths = {  # every relative default of the services' settings, under the data folder
        "DICOMVAULT_CACHE__ROOT": str(data / "cache"),
        "DICOMVAULT_DATABASE__URL": f"sqlite+aiosqlite:///{data / 'catalogue.db'}",
        "DICOMVAULT_OPTICAL__VOLUME_STORE": str(data / "optical"),
        "DICOMVAULT_OPTICAL__BURNER__ISO_FOLDER": str(data / "optical-iso"),
        "DICOMVAULT_OPTICAL__BURNER__HOT_FOLDER": str(data / "optical-hotfolder"),
        "DICOMVAULT_OPTICAL__MOUNT_PATH": str(data / "optical-media"),
        "DICOMVAULT_EXPORTER__SECRETS_DIR": str(data / "secrets"),
    }
    audit_db = {"DICOMVAULT_DATABASE__URL": f"sqlite+aiosqlite:///{data / 'audit.db'}"}
    common = {
        "DICOMVAULT_BUS__BOOTSTRAP_SERVERS": bootstrap,
        "DICOMVAULT_HTTP__HOST": opts.host,
        "DICOMVAULT_LOG__JSON_FORMAT": "true" if opts.log_json else "false",
        # Laptop default: no bearer tokens on any service's HTTP API; each service warns
        # loudly at start-up (TokenVerifier.announce) and run() repeats it below.
        "DICOMVAULT_AUTH__ENABLED": "false",
    }
    catalogue_url = f"{scheme}://{opts.host}:{opts.http_port + 1}"
    children = [
        Child("catalogue", "catalogue", opts.http_port + 1, {
            "DICOMVAULT_CATALOGUE__STABLE_AFTER_S": str(opts.stable_after_s),
        }),
        Child("gateway", "dicom_gateway", opts.http_port, {
            "DICOMVAULT_GATEWAY__AE_TITLE": opts.ae_title,
            "DICOMVAULT_GATEWAY__DIMSE_HOST": opts.host,
            "DICOMVAULT_GATEWAY__DIMSE_PORT": str(opts.dimse_port),
            "DICOMVAULT_GATEWAY__ACCEPT_ANY_CALLING_AE": str(opts.accept_any_calling_ae).lower(),
            "DICOMVAULT_GATEWAY__CATALOGUE_URL": catalogue_url,
        }, defaults={"DICOMVAULT_GATEWAY__WORKERS": str(gateway_workers())}),
        Child("hsm-archiver", "hsm_archiver", opts.http_port + 2, {
            "DICOMVAULT_HSM__CATALOGUE_URL": catalogue_url,
        }),
        Child("optical-burner", "optical_burner", opts.http_port + 3, {
            "DICOMVAULT_OPTICAL__CATALOGUE_URL": catalogue_url,
        }),
        Child("commitment", "commitment", opts.http_port + 5, {
            "DICOMVAULT_COMMITMENT__CATALOGUE_URL": catalogue_url,
            "DICOMVAULT_COMMITMENT__AE_TITLE": opts.ae_title,
            "DICOMVAULT_COMMITMENT__DIMSE_HOST": opts.host,
            "DICOMVAULT_COMMITMENT__DIMSE_PORT": str(opts.dimse_port + 1),
        }),
        Child("audit", "audit", opts.http_port + 7),
    ]
    if opts.exporters_file is not None:
        children.append(Child("stow-exporter", "stow_exporter", opts.http_port + 4, {
            "DICOMVAULT_EXPORTER__SPEC_FILE": str(opts.exporters_file.resolve()),
            "DICOMVAULT_EXPORTER__CATALOGUE_URL": catalogue_url,
        }))
    for child in children:
        child.env = {**common, "DICOMVAULT_HTTP__PORT": str(child.port), **child.env}
        child.paths = {**paths, **(audit_db if child.name == "audit" else {})}
    return [c for c in children if available(c.package)]


STABLE_AFTER_S = 60.0  # a child alive this long resets its restart backoff


def restart_delay(failures: int) -> float:
    """Seconds before restarting a child after ``failures`` exits in a row: 1, 2, 4 … 30."""
    return min(30.0, 0.5 * 2 ** min(max(failures, 1), 6))


def failures_after(failures: int, ran_s: float) -> int:
    """Exits in a row after one more exit of a child that ran ``ran_s`` seconds: a stable run
    (``STABLE_AFTER_S``) starts the count, and so the backoff, again."""
    return 1 if ran_s >= STABLE_AFTER_S else failures + 1


class Supervisor:
    def __init__(self, opts: EmbeddedOptions) -> None:
        self.opts = opts
        self.web = WebSettings()
        self.logs = opts.data_dir / "logs"
        self.broker = EmbeddedBroker(port=opts.broker_port, host=opts.host,
                                     log_path=self.logs / "broker.log", cpu=opts.broker_cpu)
        self.children: list[Child] = []
        self.stopping = asyncio.Event()

    def _spawn(self, child: Child) -> None:
        log = open(self.logs / f"{child.name}.log", "ab")  # noqa: SIM115 - owned by the child
        child.process = subprocess.Popen(
            [sys.executable, "-m", "dicomvault_cli", "run", child.name],
            env=child.environment(), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        child.started_at = time.monotonic()

    async def _wait_ready(self, child: Child, timeout_s: float = 60.0) -> bool:
        url = f"{self.url(child.port)}/readyz"
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=1.0, **self.web.httpx_options()) as client:
            while time.monotonic() < deadline and not self.stopping.is_set():
                if child.process is None or child.process.poll() is not None:
                    return False
                try:
                    if (await client.get(url)).status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        return False

    async def run(self) -> int:
        self.opts.data_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("logs", "cache", "secrets"):
            (self.opts.data_dir / sub).mkdir(exist_ok=True)
        self.broker.start()
        bus = BusSettings(bootstrap_servers=self.broker.bootstrap_servers)
        await ensure_topics(bus)
        self.children = plan(self.opts, self.broker.bootstrap_servers, self.web.scheme)
        say(f"broker      kafka://{self.broker.bootstrap_servers}  (Tansu, memory storage)")
        for child in self.children:
            self._spawn(child)
            ok = await self._wait_ready(child)
            state = "ready" if ok else f"NOT READY (see {self.logs / (child.name + '.log')})"
            say(f"{child.name:<12} {self.url(child.port)}  {state}")
        self._write_state()
        say("")
        say(f"DIMSE       {self.opts.ae_title}@{self.opts.host}:{self.opts.dimse_port}"
            f"   e.g. storescu -aec {self.opts.ae_title} {self.opts.host} {self.opts.dimse_port} file.dcm")
        say(f"commitment  {self.opts.ae_title}@{self.opts.host}:{self.opts.dimse_port}"
            "   storage commitment (N-ACTION) on the DIMSE port; reports go to the AE's "
            "host/port in DICOMVAULT_GATEWAY__MODALITIES")
        say(f"DICOMweb    {self.url(self.opts.http_port)}/dicomweb")
        say(f"catalogue   {self.url(self.opts.http_port + 1)}/api/v1")
        say(f"audit       {self.url(self.opts.http_port + 7)}/api/v1/audit   (DICOM audit "
            "messages; syslog: DICOMVAULT_AUDIT__SYSLOG_URL)")
        say("WARNING     no HTTP API needs a token (embedded default): DICOMweb, the "
            "catalogue's job commands and every service's /api/v1 (close, burn, delete "
            "volumes, exports, commitments) are open to anyone reaching the ports; set "
            "DICOMVAULT_AUTH__* on every service in production")
        if self.opts.accept_any_calling_ae:
            say("WARNING     any calling AE title is accepted (embedded default) and may "
                "store, query and request storage commitment; "
                "use --strict-ae and DICOMVAULT_GATEWAY__ALLOWED_CALLING_AES in production")
        say(f"data        {self.opts.data_dir.resolve()}   logs in {self.logs.resolve()}")
        say("Ctrl-C stops everything.")
        await self._supervise()
        return 0

    async def _supervise(self) -> None:
        while not self.stopping.is_set():
            if self.broker.process is not None and self.broker.process.poll() is not None:
                say("broker exited; restarting it (memory storage: topics are recreated, "
                    "services rejoin and reconcile)")
                self.broker.start()
                await ensure_topics(BusSettings(bootstrap_servers=self.broker.bootstrap_servers))
            for child in self.children:
                if child.process is not None and child.process.poll() is not None:
                    code = child.process.returncode
                    child.restarts += 1
                    # A child that ran stably before dying starts the backoff from scratch.
                    child.failures = failures_after(child.failures,
                                                    time.monotonic() - child.started_at)
                    delay = restart_delay(child.failures)
                    say(f"{child.name} exited with {code}; restart #{child.restarts} in {delay:.1f}s")
                    child.process = None
                    self._write_state()
                    await asyncio.sleep(delay)
                    if not self.stopping.is_set():
                        self._spawn(child)
                        self._write_state()  # `dicomvault status` shows the current pid
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=1.0)
            except TimeoutError:
                pass

    def url(self, port: int) -> str:
        return f"{self.web.scheme}://{self.opts.host}:{port}"

    def _write_state(self) -> None:
        ca = self.web.client.ca_file
        state = {
            "broker": self.broker.bootstrap_servers,
            "ca_file": str(ca.resolve()) if ca else None,  # verifies https:// urls (status)
            "services": {c.name: {"url": self.url(c.port),
                                  "pid": c.process.pid if c.process else None,
                                  "restarts": c.restarts}
                         for c in self.children},
            "dimse": f"{self.opts.ae_title}@{self.opts.host}:{self.opts.dimse_port}",
        }
        path = self.opts.data_dir / "embedded.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)  # `status` never reads half a file

    def shutdown(self) -> None:
        stop_processes([c.process for c in reversed(self.children) if c.process is not None],
                       timeout_s=20)
        self.broker.stop()
        (self.opts.data_dir / "embedded.json").unlink(missing_ok=True)


def say(text: str) -> None:
    print(text, flush=True)


def up(opts: EmbeddedOptions) -> int:
    sup = Supervisor(opts)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, sup.stopping.set)
        try:
            return await sup.run()
        finally:
            say("stopping…")
            await asyncio.to_thread(sup.shutdown)
            say("stopped.")

    return asyncio.run(main())


def status(data_dir: Path) -> int:
    state_file = data_dir / "embedded.json"
    if not state_file.exists():
        say(f"no embedded archive running for {data_dir} (start it with `make run`)")
        return 1
    state = json.loads(state_file.read_text())
    say(f"broker     {state['broker']}")
    say(f"DIMSE      {state['dimse']}")
    worst = 0
    for name, svc in state["services"].items():
        try:
            r = httpx.get(svc["url"] + "/readyz", timeout=2.0, verify=_verify(state))
            text = "ready" if r.status_code == 200 else f"not ready: {_reasons(r)[:200]}"
            worst = worst if r.status_code == 200 else 1
        except httpx.HTTPError as exc:
            text, worst = f"unreachable: {exc!r}", 1
        say(f"{name:<12} {svc['url']}  pid {svc['pid']}  restarts {svc.get('restarts', 0)}"
            f"  {text}")
    return worst


def _reasons(r: httpx.Response) -> str:
    """The reasons of a /readyz answer (``{"status": ..., "reasons": [...]}``), else its text."""
    try:
        return "; ".join(str(x) for x in r.json()["reasons"])
    except (ValueError, KeyError, TypeError):
        return r.text


def _verify(state: dict) -> ssl.SSLContext | bool:
    """How `status` checks an https:// service: the CA file `up` was given, else the system's."""
    ca = state.get("ca_file")
    return ssl.create_default_context(cafile=ca) if ca else True
