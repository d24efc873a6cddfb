"""`equisweep analyze` end to end on synthetic sweeps written through the real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from equisweep import cli
from equisweep.analysis import frontier, laws, schema, validity
from equisweep.analysis.analyze import analyze_store
from tests.analysis.synth import LAWS, write_sweep

CLI = "import sys; from equisweep.cli import main; sys.exit(main(sys.argv[1:]))"


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
        assert a3["status"] == "undetermined"
        assert a3["reason"] == "not enough data: need ≥ 3 distinct N (model sizes) (have 2)"
        assert a3["diagnostics"][0]["code"] == "not_enough_data"
        de = fits["variants"][name]["data_efficiency"]
        assert "need ≥ 4 distinct train_trajectories (have 2)" in de["reason"]
    (comp,) = fits["comparisons"]
    assert comp["status"] == "undetermined" and "ratio" not in comp
    assert "no loss ratio or crossover" in comp["not_determined"]
    q = {x["id"]: x for x in fits["verdict"]["questions"]}
    assert q["allocation"]["status"] == "not determined"
    assert q["compute"]["answer"].startswith("Not determined from fits")
    html = (folder / "report.html").read_text()
    assert html.count("* plotly.js v") == 1  # one embedded copy for all figures
    # no empty allocation chart: the report says why there is none in its place
    assert html.count('class="plotly-graph-div"') == 5
    assert "Not determined for any variant, so there is no allocation to draw" in html
    assert "not enough data: need ≥ 3 distinct N" in html
    assert html.index("id='verdict'") < html.index('class="plotly-graph-div"')
    assert "not determined" in out.lower() and "report.html" in out and "PNG copies" in out
    assert out.index("Data efficiency") < out.index("gatr (")  # the answers come first


def test_degenerate_fits_are_not_determined_and_print_no_numpy_warning(store, tmp_path):
    """Nine noisy points per family over half a decade of steps: the fit runs to absurd
    coefficients; the console says "not determined" and shows no numpy RuntimeWarning."""
    write_sweep(store, "tiny", sizes={"gatr": [1500, 4500, 15000], "transformer":
                                      [1000, 3000, 10000]},
                steps=[100, 200, 300], trajs=[256], noise=0.4, seed=5)
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    r = subprocess.run([sys.executable, "-c", CLI, "analyze", "tiny", "--store",
                        store.uri, "--out", str(tmp_path / "r"), "--bootstrap", "30",
                        "--no-png"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Warning" not in r.stderr and "Warning" not in r.stdout, r.stderr[-2000:]
    fits = strict_json(tmp_path / "r" / "fits.json")
    for v in fits["variants"].values():
        assert v["approach3"]["status"] == "undetermined"
        assert v["approach3"]["frontier"] is None and "exponents" not in v["approach3"]
    assert "Not determined" in r.stdout


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
        schema.check(a3)  # the typed schema of the Approach 3 block
        bad = json.loads(json.dumps(a3))
        bad["forms"]["kaplan"]["held_out"]["error"] = "small"
        with pytest.raises(TypeError, match=r"approach3\.forms\.kaplan\.held_out\.error"):
            schema.check(bad)
        assert a3["primary_form"] == "additive", a3["selection"]
        assert set(a3["forms"]) == set(laws.FORMS)
        for f in a3["forms"].values():
            assert f["held_out"]["longest_length"]["error"] is not None
            assert len(f["held_out"]["interior_sizes"]["per_size"]) == 3
        fr = a3["frontier"]
        # the numerical optimum of the primary form is the additive form's closed form
        closed = frontier.allocation({k: c[k]["value"] for k in c}, frontier.FlopsModel(
            "power", k=v["flops_model"]["k"], p=v["flops_model"]["p"]), fr["C"])
        np.testing.assert_allclose(fr["N_opt"]["value"], closed["N_opt"], rtol=1e-3)
        np.testing.assert_allclose(fr["L_opt"]["value"], closed["L_opt"], rtol=1e-6)
        assert len(fr["C"]) == len(fr["L_opt"]["value"]) == len(fr["L_opt"]["lo"])
        assert all(lo <= hi for lo, hi in zip(fr["N_opt"]["lo"], fr["N_opt"]["hi"]))
        assert validity.usable(v["approach1"])
        assert validity.usable(v["approach2"])
        assert a3["status"] == "ok", a3["diagnostics"]
        de = v["data_efficiency"]
        assert de["status"] == "weak"  # 5 train_trajectories for 3 parameters
        assert [d["code"] for d in de["diagnostics"]] == ["few_points"]
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
    assert "at equal training compute gatr's loss is" in res.summary.lower()
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


def test_compute_wall_fits_against_measured_seconds(full_store):
    from equisweep.analysis.analyze import analyze_data
    from equisweep.analysis.data import load_sweep

    flops = analyze_data(load_sweep(full_store, "study"), n_boot=0)
    wall = analyze_data(load_sweep(full_store, "study", compute="wall"), n_boot=0)
    assert wall["compute"] == {"kind": "wall", "unit": "s"}
    for name, v in wall["variants"].items():
        f = flops["variants"][name]
        # the synthetic trainer's wall clock is FLOPs / 1e9: same law, seconds on the axis
        assert v["compute_range"] == pytest.approx([c / 1e9 for c in f["compute_range"]])
        assert v["approach3"]["frontier"]["unit"] == "s"
        assert v["approach3"]["coefficients"]["alpha"]["value"] == pytest.approx(
            f["approach3"]["coefficients"]["alpha"]["value"])
    answer = wall["verdict"]["questions"][1]["answer"]
    assert answer.startswith("At equal training wall-clock gatr's loss is") and " s;" in answer


def test_compute_wall_without_wall_clock_is_a_user_error(store, capsys):
    with store.writer("nowall") as w:
        w.add_trial({"key": "k", "family": "gatr", "n_params": 10, "flops_per_step": 1.0,
                     "steps": 5, "train_trajectories": 4, "status": "finished", "attempt": 1})
        w.add_metrics([{"key": "k", "attempt": 1, "step": 5, "test_loss": 0.1}])
    rc = cli.main(["analyze", "nowall", "--store", store.uri, "--compute", "wall",
                   "--bootstrap", "0", "--out", str(Path(store.uri) / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "--compute wall needs wall_s" in err


def test_fits_json_is_a_function_of_the_store(quickstart_store, tmp_path):
    """The published study promises that one command regenerates fits.json bit for bit:
    nothing in it may depend on the clock or the output folder. (The worker count is part of
    the command: the batched fits' BLAS sums, and so the last bits, depend on chunk shapes.)"""
    outs = []
    for i, workers in enumerate((1, 1)):
        rc = cli.main(["analyze", "quick", "--store", quickstart_store.uri, "--out",
                       str(tmp_path / f"r{i}"), "--bootstrap", "20", "--workers",
                       str(workers), "--no-png"])
        assert rc == 0
        outs.append((tmp_path / f"r{i}" / "fits.json").read_bytes())
    assert outs[0] == outs[1]
    prov = json.loads(outs[0])["provenance"]
    assert "analysed_at" not in prov and "data_as_of" in prov  # None: synth rows have no ends


def test_report_written_mid_run_says_the_sweep_is_running(quickstart_store, tmp_path):
    """A live driver beat: the report says it is provisional and counts finished trials
    against the planned ones (not against the rows the store happens to hold)."""
    import time

    from equisweep.store.heartbeat import write_beat

    meta = {"name": "quick", "planned_trials": 40, "spec": {}, "source": "quick.yaml"}
    quickstart_store.write_sweep_meta("quick", meta)
    write_beat(quickstart_store, "quick", {"state": "running", "beat_at": time.time(),
                                           "interval_s": 60, "host": "elsewhere"})
    res = analyze_store(quickstart_store.uri, "quick", tmp_path / "r", n_boot=0, png=False)
    n = res.fits["n_trials"]
    assert res.fits["progress"] == {
        "running": True, "finished_trials": n, "planned_trials": 40,
        "statement": f"the sweep is still running: {n} of 40 planned trials finished; this "
                     "report is provisional"}
    assert res.fits["notes"][0] == res.fits["progress"]["statement"]
    html = (tmp_path / "r" / "report.html").read_text()
    # said first thing in the answers box, before the questions
    head = html[html.index("id='verdict'"):html.index("<ol>", html.index("id='verdict'"))]
    assert f"the sweep is still running: {n} of 40 planned trials finished" in head
