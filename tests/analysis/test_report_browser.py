"""report.html opened in headless Chromium: no JavaScript error, every figure renders, the
page works offline (nothing fetched: the network is disabled for the page), the answers come
first, the baselines are drawn, and nothing from an undetermined fit is drawn as a result."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from equisweep.analysis import report as report_mod
from equisweep.analysis.analyze import analyze_data, analyze_store, write_outputs
from equisweep.analysis.data import load_sweep
from equisweep.store import open_store
from tests.analysis.synth import NewerStore, write_sweep

CHROMIUM = os.environ.get("EQUISWEEP_CHROMIUM", "/usr/bin/chromium")
N_FIGURES = 6
VERDICT_BORDER = (0x33, 0x44, 0x55)  # #verdict's border colour in report.CSS

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


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """A quickstart-sized sweep (3 sizes x 3 lengths, noisy) in a store with the newer
    columns and baselines: its Approach 3 fits are undetermined."""
    root = tmp_path_factory.mktemp("quick")
    store = write_sweep(open_store(root / "results"), "quick",
                        sizes={"gatr": [1500, 4500, 15000], "transformer": [1000, 3000, 10000]},
                        steps=[100, 200, 300], trajs=[256], noise=1.0, seed=5, samples=2,
                        equivariance_error=True)
    data = load_sweep(NewerStore(store), "quick")
    fits = analyze_data(data, n_boot=20)
    assert all(v["approach3"]["status"] == "undetermined" for v in fits["variants"].values())
    html, _, _ = report_mod.render(data, fits, png=False)
    write_outputs(root / "out", fits, html, {})
    return root / "out" / "report.html"


def rendered_dom(page, tmp_path):
    r = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_quickstart_report_leads_with_answers_draws_baselines_and_no_undetermined_line(
        quick_report, tmp_path):
    dom = rendered_dom(quick_report, tmp_path)
    # every figure rendered, less the allocation chart: nothing determined, nothing drawn
    assert dom.count('class="main-svg"') >= 2 * (N_FIGURES - 1)
    # the answers come first: before any figure, and say "not determined"
    assert dom.index('id="verdict"') < dom.index('class="plotly-graph-div')
    verdict = dom[dom.index('id="verdict"'):dom.index('class="plotly-graph-div')]
    assert "not determined" in verdict.lower() and "constant_velocity" in verdict
    # baselines drawn on the loss figures (plotly renders the hline labels as SVG text)
    compute_fig = dom[dom.index('id="fig-loss_vs_compute"'):dom.index('id="fig-loss_vs_data"')]
    data_fig = dom[dom.index('id="fig-loss_vs_data"'):dom.index("<h2>Fits</h2>")]
    assert 'id="fig-allocation"' not in dom
    for fig in (compute_fig, data_fig):
        assert ">constant velocity (test): 0.2 ± 0.008<" in fig  # a drawn legend entry
        assert ">copy last (test): 0.9 ± 0.036<" in fig
        assert fig.count('class="yerror"') >= 9  # test-loss standard errors drawn
    # nothing derived from the undetermined fits: no frontier, no allocation line, and the
    # figures say so on the plot
    for derived in ("compute-optimal L*(C)", "N_opt (approach 3)", "S_opt"):
        assert f">gatr {derived}" not in dom and f">transformer+aug {derived}" not in dom
    assert "frontier not determined" in compute_fig
    assert "Not determined for any variant, so there is no allocation to draw" in dom
    # the learned-equivariance curve of the non-equivariant variant is drawn
    eq_fig = dom[dom.index('id="fig-equivariance"'):]
    assert ">transformer+aug<" in eq_fig and "no equivariance_error recorded" not in eq_fig
    assert "Provenance" in dom and "equisweep version" in dom


def test_quickstart_screenshot_shows_the_answers_on_top(quick_report, tmp_path):
    shot = tmp_path / "quick.png"
    chromium(tmp_path, "--hide-scrollbars", "--window-size=1200,1600", f"--screenshot={shot}",
             quick_report.as_uri())
    img = decode_png(shot.read_bytes()).astype(int)
    border = np.all(np.abs(img - VERDICT_BORDER) <= 12, axis=-1)
    rows = np.flatnonzero(border.sum(axis=1) > 600)  # the box's horizontal edges
    assert rows.size >= 2 and rows[0] < 200, rows[:5]  # the answers box opens the page


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
    # a determined fit's frontier and allocation are drawn (the quickstart test checks that
    # an undetermined one's are not, by these same legend entries)
    assert ">gatr compute-optimal L*(C)<" in dom and ">gatr N_opt (approach 3)<" in dom


def test_screenshot_is_not_blank(report, tmp_path):
    shot = tmp_path / "shot.png"
    r = chromium(tmp_path, "--hide-scrollbars", "--window-size=1000,2000",
                 f"--screenshot={shot}", report.as_uri())
    assert shot.is_file(), r.stderr[-2000:]
    img = decode_png(shot.read_bytes())
    colours = np.unique(img.reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 50  # text, axes, markers in several colours, bands
    # the first figure (below the answers) has plotted markers of the family colours
    fig = img[700:]
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
