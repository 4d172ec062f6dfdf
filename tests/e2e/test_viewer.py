"""OHIF in a real browser: the archive (catalogue and gateway processes on the real broker)
serves the pinned OHIF build at /viewer; a modality stores a CT series and a multi-frame
instance with dcmtk storescu; headless Chromium (driven by selenium) shows the patient in the
study list, opens the study and draws the image, and no request it made to the archive failed.
The screenshots are kept under the test's temporary folder (their paths are printed)."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.uid import generate_uid
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from dicomvault.bus.broker import EmbeddedBroker
from tests.conftest import dcmtk, peer_env
from tests.gateway.dicomweb_peers import AE_TITLE, MODALITY, Issuer, WebArchive, bus_settings_for
from tests.peers.datasets import ROOT, gdcm_transcode, make_instance

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
OHIF = REPO / ".ohif"
PATIENT_ID, PATIENT_NAME = "OHIF0001", "VIEWER^VERA"
SHOWN_NAME = "VIEWER, VERA"  # how OHIF's study list writes it
MF_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"


def ct_pixels(n: int, size: int = 256) -> np.ndarray:
    """A recognisable slice: a ramp with a bright disc whose place depends on ``n``."""
    y, x = np.mgrid[0:size, 0:size]
    img = 200 + x * 6 + y * 2
    cx, cy = size // 4 + n * 30, size // 3 + n * 20
    img[(x - cx) ** 2 + (y - cy) ** 2 < (size // 8) ** 2] = 3800
    return img.astype(np.uint16)


def write_study(folder: Path) -> tuple[str, str, list[Path]]:
    """A 3-slice CT series (JPEG Lossless, as many CTs send it: OHIF decodes the frames) and a
    4-frame native secondary capture in one study."""
    folder.mkdir(parents=True)
    study, ct_series, mf_series = generate_uid(ROOT), generate_uid(ROOT), generate_uid(ROOT)
    files = []
    for n in range(1, 4):
        ds = make_instance(study_uid=study, series_uid=ct_series, instance_number=n, size=256,
                           patient_id=PATIENT_ID, patient_name=PATIENT_NAME)
        ds.PixelData = ct_pixels(n).tobytes()
        ds.WindowCenter, ds.WindowWidth = 1000, 3000
        ds.save_as(folder / f"ct{n}.plain.dcm", enforce_file_format=True)
        files.append(folder / f"ct{n}.dcm")
        gdcm_transcode(folder / f"ct{n}.plain.dcm", files[-1], JPEG_LOSSLESS)
    mf = make_instance(study_uid=study, series_uid=mf_series, series_number=2, size=128,
                       modality="OT", patient_id=PATIENT_ID, patient_name=PATIENT_NAME)
    mf.SOPClassUID = mf.file_meta.MediaStorageSOPClassUID = MF_WORD_SC
    mf.NumberOfFrames = 4
    mf.PixelData = np.stack([ct_pixels(f, 128) for f in range(4)]).tobytes()
    files.append(folder / "multiframe.dcm")
    mf.save_as(files[-1], enforce_file_format=True)
    return study, ct_series, files


@pytest.fixture(scope="module")
def archive(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[WebArchive]:
    # The pinned OHIF build, as `make viewer` installs it (idempotent; fetched once).
    subprocess.run([str(REPO / "scripts" / "install-ohif.sh"), str(OHIF)], check=True,
                   timeout=600)
    folder = tmp_path_factory.mktemp("viewer")
    a = WebArchive(folder, bus_settings_for(broker), Issuer(folder),
                   DICOMVAULT_AUTH__ENABLED="false",
                   DICOMVAULT_VIEWER__DIST_DIR=str(OHIF / "dist"))
    try:
        yield a.start()
    finally:
        a.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


class Network:
    """Every response and failure the browser saw (DevTools performance log)."""

    def __init__(self) -> None:
        self.urls: dict[str, str] = {}
        self.status: dict[str, int] = {}
        self.failed: dict[str, str] = {}

    def read(self, driver: webdriver.Chrome) -> None:
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            params = msg.get("params", {})
            if msg["method"] == "Network.requestWillBeSent":
                self.urls[params["requestId"]] = params["request"]["url"]
            elif msg["method"] == "Network.responseReceived":
                self.urls[params["requestId"]] = params["response"]["url"]
                self.status[params["requestId"]] = int(params["response"]["status"])
            elif msg["method"] == "Network.loadingFailed" and not params.get("canceled"):
                self.failed[params["requestId"]] = params.get("errorText", "")

    def to(self, origin: str) -> list[tuple[str, int]]:
        return [(url, self.status.get(rid, 0)) for rid, url in self.urls.items()
                if url.startswith(origin)]

    def failures(self, origin: str) -> list[str]:
        bad = [f"{url} -> {self.status[rid]}" for rid, url in self.urls.items()
               if url.startswith(origin) and self.status.get(rid, 200) >= 400]
        bad += [f"{self.urls.get(rid, rid)} -> {err}" for rid, err in self.failed.items()
                if self.urls.get(rid, "").startswith(origin)]
        return bad


def wait_for(driver: webdriver.Chrome, folder: Path, what: str, check,
             timeout_s: float = 120.0):
    """``check()`` once it is neither None nor False; else fail with a screenshot and the console's errors."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result is not None and result is not False:
            return result
        time.sleep(0.5)
    shot = folder / "timeout.png"
    driver.save_screenshot(str(shot))
    console = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    raise AssertionError(f"timed out waiting for {what}; screenshot {shot}; page text "
                         f"{driver.find_element('tag name', 'body').text[:500]!r}; "
                         f"console errors {console[:10]}")


def drawn_canvas(driver: webdriver.Chrome) -> np.ndarray | None:
    """The viewport's canvas as grey pixels once it holds more than a blank fill."""
    url = driver.execute_script(
        "const c = document.querySelector('canvas.cornerstone-canvas');"
        "return c && c.width > 0 ? c.toDataURL('image/png') : null;")
    if not url:
        return None
    img = np.asarray(Image.open(BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("L"))
    return img if img.std() > 10 else None


def fitted(canvas: np.ndarray) -> np.ndarray:
    """The centred square an image fitted into the canvas occupies, at 64×64."""
    h, w = canvas.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = Image.fromarray(canvas[top:top + side, left:left + side])
    return np.asarray(square.resize((64, 64), Image.Resampling.BILINEAR), dtype=float)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_ohif_shows_and_draws_a_stored_study(archive: WebArchive, browser: webdriver.Chrome,
                                             tmp_path: Path) -> None:
    origin = f"http://127.0.0.1:{archive.http_port}"
    study, ct_series, files = write_study(tmp_path / "modality")
    # A modality stores the study with storescu: the CT slices as JPEG Lossless (-xs), the
    # multi-frame object uncompressed.
    for option, batch in (("-xs", files[:3]), ("-xe", files[3:])):
        done = subprocess.run([dcmtk("storescu"), "-aet", MODALITY, "-aec", AE_TITLE, option,
                               "127.0.0.1", str(archive.dimse_port), *map(str, batch)],
                              env=peer_env(), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "Warning" not in done.stderr, done.stderr
    archive.wait_indexed(study, len(files))
    stored = sorted(str(dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID)
                    for p in archive.files())
    assert stored == ["1.2.840.10008.1.2.1"] + [JPEG_LOSSLESS] * 3

    # The study list shows the patient.
    net = Network()
    browser.get(f"{origin}/viewer/")
    wait_for(browser, tmp_path, "the patient in the study list",
             lambda: SHOWN_NAME in browser.find_element("tag name", "body").text)
    shot = tmp_path / "study-list.png"
    browser.save_screenshot(str(shot))
    print(f"study list screenshot: {shot}")

    # Open the study: the viewport draws the CT image.
    browser.get(f"{origin}/viewer/viewer?StudyInstanceUIDs={study}")
    canvas = wait_for(browser, tmp_path, "an image in the viewport", lambda: drawn_canvas(browser))
    shot = tmp_path / "viewport.png"
    browser.save_screenshot(str(shot))
    Image.fromarray(canvas).save(tmp_path / "canvas.png")
    print(f"viewer screenshot: {shot}; canvas: {tmp_path / 'canvas.png'}")

    # It is one of the CT slices as the archive renders it (same window), not a blank fill.
    with httpx.Client(base_url=archive.url, timeout=60) as http:
        series = http.get(f"/studies/{study}/series/{ct_series}/instances").json()
        rendered = []
        for row in series:
            sop = row["00080018"]["Value"][0]
            r = http.get(f"/studies/{study}/series/{ct_series}/instances/{sop}/rendered",
                         headers={"Accept": "image/png"})
            assert r.status_code == 200
            grey = Image.open(BytesIO(r.content)).convert("L").resize((64, 64))
            rendered.append(np.asarray(grey, dtype=float))
    shown = fitted(canvas)
    best = max(correlation(shown, ref) for ref in rendered)
    assert best > 0.9, f"the viewport does not show a stored slice (best correlation {best})"

    # No request from the viewer to the archive failed; it fetched pixel data from us.
    net.read(browser)
    assert not net.failures(origin), net.failures(origin)
    dicomweb = [url for url, _ in net.to(origin + "/dicomweb/")]
    assert any("/frames/" in url or "/rendered" in url for url in dicomweb), dicomweb
