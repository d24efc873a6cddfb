"""report.html opened in headless Chromium: no JavaScript error, every figure renders, and
the page works offline (nothing fetched: the network is disabled for the page)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from equisweep.analysis.analyze import analyze_store

CHROMIUM = os.environ.get("EQUISWEEP_CHROMIUM", "/usr/bin/chromium")
N_FIGURES = 5

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} not found (apt-get install -y --no-install-recommends chromium)",
    ),
]


def chromium(tmp_path, *args, timeout=120):
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           # offline: any request for a remote resource (a CDN plotly.js) fails
           "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=20000", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    shutil.rmtree(profile, ignore_errors=True)
    return r


def decode_png(blob: bytes) -> np.ndarray:
    """Minimal PNG reader (8-bit RGB/RGBA, non-interlaced: what Chromium writes)."""
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", None
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        kind, data = blob[pos + 4 : pos + 8], blob[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data)
            assert depth == 8 and ctype in (2, 6) and interlace == 0
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytes(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]
        if f == 0:
            cur = bytearray(line)
        elif f == 2:
            cur = bytearray((a + b) & 255 for a, b in zip(line, prev))
        else:
            cur = bytearray(stride)
            for x in range(stride):
                a = cur[x - bpp] if x >= bpp else 0
                b = prev[x]
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + b) >> 1
                else:
                    c = prev[x - bpp] if x >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (line[x] + pred) & 255
        rows.append(bytes(cur))
        prev = cur
    out = np.frombuffer(b"".join(rows), np.uint8).reshape(h, stride)
    return out.reshape(h, w, bpp)[:, :, :3]


@pytest.fixture(scope="module")
def report(full_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("browser")
    analyze_store(full_store.uri, "study", out, n_boot=10, png=False)
    return out / "report.html"


def test_page_loads_without_js_errors_and_every_figure_renders(report, tmp_path):
    r = chromium(tmp_path, "--dump-dom", report.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    console = [line for line in r.stderr.splitlines() if "CONSOLE" in line]
    errors = [line for line in console if "Uncaught" in line or "Error" in line]
    assert not errors, errors
    dom = r.stdout
    # plotly draws each figure into an svg.main-svg once rendered
    assert dom.count('class="plotly-graph-div') >= N_FIGURES
    assert dom.count('class="main-svg"') >= 2 * N_FIGURES
    assert dom.count('class="scatterlayer') >= N_FIGURES


def test_screenshot_is_not_blank(report, tmp_path):
    shot = tmp_path / "shot.png"
    r = chromium(tmp_path, "--hide-scrollbars", "--window-size=1000,1400",
                 f"--screenshot={shot}", report.as_uri())
    assert shot.is_file(), r.stderr[-2000:]
    img = decode_png(shot.read_bytes())
    colours = np.unique(img.reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 50  # text, axes, markers in several colours, bands
    # the first figure area (below the header) has plotted markers of the family colours
    fig = img[120:560]
    blue = (fig[..., 2] > 150) & (fig[..., 0] < 100)
    red = (fig[..., 0] > 180) & (fig[..., 1] < 120) & (fig[..., 2] < 120)
    assert blue.sum() > 200 and red.sum() > 200


def test_decoder_sees_a_blank_page_as_blank(tmp_path):
    page = tmp_path / "blank.html"
    page.write_text("<html><body style='background:#fff'></body></html>")
    shot = tmp_path / "blank.png"
    chromium(tmp_path, "--hide-scrollbars", "--window-size=400,300", f"--screenshot={shot}",
             page.as_uri())
    img = decode_png(shot.read_bytes())
    assert len(np.unique(img.reshape(-1, 3), axis=0)) == 1
