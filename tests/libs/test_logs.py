"""Log lines explain themselves and stay small (issue 13 item 9): no settings dump per line,
extra values and messages bounded. Run in a child process: logging is process-global."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import logging
import kopf
from kopf._core.actions.loggers import ObjectLogger
from dicomvault.logs import configure
from dicomvault.settings import LogSettings

configure(LogSettings(json_format=True), "operator")
body = kopf.Body({"apiVersion": "dicomvault.io/v1", "kind": "Exporter",
                  "metadata": {"name": "orthanc", "namespace": "pacs", "uid": "u1"}})
ObjectLogger(body=body, settings=kopf.OperatorSettings()).info("Handler succeeded.")
logging.getLogger("gw").info("refused " + "x" * 30000, extra={"reason": "y" * 200_000,
                                                             "status": "0xC000", "n": 3})
"""


def test_lines_carry_only_what_explains_them() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in done.stderr.splitlines() if x.startswith("{")]
    kopf_line = next(x for x in lines if x["event"] == "Handler succeeded.")
    # The kopf line names its object and holds no OperatorSettings dump.
    assert kopf_line["object"] == "Exporter pacs/orthanc"
    assert "settings" not in kopf_line and "k8s_ref" not in kopf_line
    assert len(json.dumps(kopf_line)) < 400
    # A huge message and a huge extra value are cut, with what was cut said.
    big = next(x for x in lines if x["event"].startswith("refused"))
    assert big["status"] == "0xC000" and big["n"] == 3
    assert len(big["event"]) < 2100 and len(big["reason"]) < 400
    assert big["reason"].endswith("(+199700 chars)")
    assert all(len(x) < 3000 for x in done.stderr.splitlines())
