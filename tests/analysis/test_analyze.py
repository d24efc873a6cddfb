"""`equisweep analyze` end to end on synthetic sweeps written through the real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from equisweep import cli
from equisweep.analysis.analyze import analyze_store
from tests.analysis.synth import LAWS


def strict_json(path):
    def no_nan(x):
        raise AssertionError(f"non-finite number {x} in {path}")

    return json.loads(Path(path).read_text(), parse_constant=no_nan)


def test_quickstart_degrades_gracefully(quickstart_store, capsys, monkeypatch):
    monkeypatch.setenv("EQUISWEEP_STORE", quickstart_store.uri)
    rc = cli.main(["analyze", "quick", "--bootstrap", "20"])
    out = capsys.readouterr().out
    assert rc == 0
    folder = Path(quickstart_store.uri) / "reports" / "quick"  # the documented default
    fits = strict_json(folder / "fits.json")
    for name in ("gatr", "transformer+aug"):
        a3 = fits["variants"][name]["approach3"]
        assert a3["status"] == "not enough data"
        assert a3["reason"] == "not enough data: need ≥ 3 distinct N (model sizes) (have 2)"
        de = fits["variants"][name]["data_efficiency"]
        assert "need ≥ 4 distinct train_trajectories (have 2)" in de["reason"]
    assert fits["comparisons"] == []
    html = (folder / "report.html").read_text()
    assert html.count("* plotly.js v") == 1  # one embedded copy for all figures
    assert html.count('class="plotly-graph-div"') == 5
    assert "not enough data: need ≥ 3 distinct N" in html
    assert "not enough data" in out and "report.html" in out and "PNG copies" in out


@pytest.fixture(scope="module")
def study(full_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    res = analyze_store(full_store.uri, "study", out, n_boot=40, seed=3, png=False)
    return res, out


def test_study_recovers_planted_laws(study):
    res, out = study
    fits = strict_json(out / "fits.json")
    assert fits == json.loads(json.dumps(res.fits))
    for name, fam in (("gatr", "gatr"), ("transformer+aug", "transformer")):
        v = fits["variants"][name]
        a3 = v["approach3"]
        assert a3["status"] == "ok"
        c = a3["coefficients"]
        assert c["alpha"]["value"] == pytest.approx(LAWS[fam]["alpha"], abs=0.03)
        assert c["beta"]["value"] == pytest.approx(LAWS[fam]["beta"], abs=0.03)
        for k in ("E", "A", "B", "alpha", "beta"):
            lo, hi = c[k]["ci"]
            assert lo <= c[k]["value"] <= hi and c[k]["se"] > 0
        assert v["flops_model"]["kind"] == "power"
        assert v["flops_model"]["p"] == pytest.approx(LAWS[fam]["p"], rel=1e-6)
        assert a3["allocation_method"] == "closed_form"
        fr = a3["frontier"]
        assert len(fr["C"]) == len(fr["L_opt"]["value"]) == len(fr["L_opt"]["lo"])
        assert all(lo <= hi for lo, hi in zip(fr["N_opt"]["lo"], fr["N_opt"]["hi"]))
        assert v["approach1"]["status"] == "ok"
        assert v["approach2"]["status"] == "ok"
        de = v["data_efficiency"]
        assert de["status"] == "ok"
        assert de["coefficients"]["beta"]["value"] == pytest.approx(LAWS[fam]["delta"], abs=0.1)


def test_study_compares_families(study):
    res, _ = study
    (comp,) = res.fits["comparisons"]
    assert comp["pair"] == ["gatr", "transformer+aug"]
    r = comp["ratio"]
    assert len(r["value"]) == len(r["lo"]) == len(comp["C"])
    assert all(lo <= v <= hi for v, lo, hi in zip(r["value"], r["lo"], r["hi"]))
    x = comp["crossover"]
    assert "statement" in x and "fraction_of_resamples_crossing" in x
    if x["C"] is not None:
        assert x["search_range"][0] <= x["C"] <= x["search_range"][1]


def test_study_summary_and_files(study):
    res, out = study
    assert {Path(f).name for f in res.files} == {"fits.json", "report.html"}
    assert "gatr / transformer+aug compute-optimal loss ratio" in res.summary
    assert not list(out.glob(".*tmp"))  # nothing half-written left behind
    html = (out / "report.html").read_text()
    assert "Approach 3" in html and "Crossover" in html


def test_out_that_is_a_file_is_a_user_error(quickstart_store, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    rc = cli.main(["analyze", "quick", "--store", quickstart_store.uri, "--out", str(f),
                   "--bootstrap", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "--out" in err and "Traceback" not in err
