"""One frame of an instance as a consumer image (JPEG or PNG) with Pillow: the modality LUT
(rescale), a linear VOI window (asked, else the instance's first Window Center/Width, else
the frame's range), MONOCHROME1 inverted, colour converted to RGB, scaled to fit a viewport.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, pixel_array

JPEG = "image/jpeg"
PNG = "image/png"
FORMATS = {JPEG: "JPEG", PNG: "PNG"}


@dataclass(frozen=True)
class Options:
    media_type: str = JPEG
    window: tuple[float, float] | None = None  # centre, width
    viewport: tuple[int, int] | None = None  # width, height (fit, aspect kept)
    quality: int = 90  # JPEG quality 1..100

    @staticmethod
    def parse(window: str | None, viewport: str | None, quality: str | None,
              media_type: str = JPEG) -> Options:
        """From the PS3.18 8.3.5 query parameters; ValueError with the reason."""
        win = None
        if window:
            parts = window.split(",")
            if len(parts) not in (2, 3):
                raise ValueError("window is center,width[,function]")
            if len(parts) == 3 and parts[2].strip().lower() not in ("linear", ""):
                raise ValueError("only the linear window function is supported")
            win = (float(parts[0]), float(parts[1]))
            if win[1] < 1:
                raise ValueError("the window width must be at least 1")
        vp = None
        if viewport:
            parts = viewport.split(",")
            if len(parts) not in (2, 6):
                raise ValueError("viewport is vw,vh[,sx,sy,sw,sh]")
            vp = (int(parts[0]), int(parts[1]))
            if not (0 < vp[0] <= 8192 and 0 < vp[1] <= 8192):
                raise ValueError("viewport sizes must be between 1 and 8192")
        q = 90
        if quality:
            q = int(quality)
            if not 1 <= q <= 100:
                raise ValueError("quality must be between 1 and 100")
        return Options(media_type, win, vp, q)


def _first(value: object) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None  # type: ignore[index,arg-type]
    return None if value is None else float(value)  # type: ignore[arg-type]


def _instance_window(ds: Dataset) -> tuple[float, float] | None:
    centre, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if centre is None or width is None:  # enhanced objects: the shared functional groups
        for group in ds.get("SharedFunctionalGroupsSequence") or []:
            for voi in group.get("FrameVOILUTSequence") or []:
                centre, width = _first(voi.get("WindowCenter")), _first(voi.get("WindowWidth"))
    if centre is None or width is None or width < 1:
        return None
    return centre, width


def _grey(values: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """Linear VOI (PS3.3 C.11.2.1.2.1) to 0..255."""
    if window is None:
        lo, hi = float(values.min()), float(values.max())
        centre, width = (lo + hi + 1) / 2, max(hi - lo + 1, 1.0)
    else:
        centre, width = window
    low = centre - 0.5 - (width - 1) / 2
    scaled = (values - low) / max(width - 1, 1e-9) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def image(ds: Dataset, frame: int, options: Options) -> Image.Image:
    """Frame ``frame`` (1-based) rendered; ValueError when it has no displayable pixels."""
    arr = pixel_array(ds, index=frame - 1)  # colour comes back as RGB
    samples = int(ds.get("SamplesPerPixel", 1))
    if samples == 3:
        if arr.dtype != np.uint8:
            arr = (arr.astype(np.float64) * 255.0 / float(2 ** int(ds.BitsStored) - 1))
            arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr)
    elif samples == 1:
        values = apply_modality_lut(arr, ds).astype(np.float64)
        grey = _grey(values, options.window or _instance_window(ds))
        if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
            grey = 255 - grey
        img = Image.fromarray(grey)
    else:
        raise ValueError(f"cannot render {samples} samples per pixel")
    if options.viewport:
        img.thumbnail(options.viewport, Image.Resampling.LANCZOS)
    return img


def encode(img: Image.Image, options: Options) -> bytes:
    buf = BytesIO()
    if options.media_type == JPEG:
        img.save(buf, "JPEG", quality=options.quality)
    else:
        img.save(buf, "PNG")
    return buf.getvalue()
