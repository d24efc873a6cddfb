"""Every law form of the registry: its gradient is right, it recovers a planted law of its own
shape from noisy points, and held-out selection picks it over the other forms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from equisweep.analysis import heldout, lawfit
from equisweep.analysis.laws import FORMS, get
from equisweep.errors import UserError
from tests.helpers.cli import run_cli

# a planted law per form, in raw parameters; the floor forms get a floor that is 30-50% of
# the smallest loss, so that a form without one cannot mimic them
PLANTED = {
    "additive": {
        "a": np.log(2.0),
        "b": np.log(1.5),
        "e": np.log(2e-3),
        "alpha": 0.45,
        "beta": 0.55,
    },
    "kaplan": {"a": np.log(3.0), "b": np.log(5.0), "alpha": 0.4, "beta": 0.45},
    "kaplan_e": {
        "a": np.log(3.0),
        "b": np.log(5.0),
        "e": np.log(1.5e-2),
        "alpha": 0.5,
        "beta": 0.6,
    },
}
SIZES = np.geomspace(1e3, 1e5, 5)
LENGTHS = np.array([300.0, 1000.0, 3000.0, 10000.0])


def test_every_form_has_a_planted_law():
    assert set(PLANTED) == set(FORMS)


def planted(name, noise=0.01, seed=0):
    form = FORMS[name]
    theta = np.array([PLANTED[name][p] for p in form.params])
    N, S = (v.ravel() for v in np.meshgrid(SIZES, LENGTHS, indexing="ij"))
    rng = np.random.default_rng(seed)
    L = form.predict(theta, N, S) * np.exp(noise * rng.normal(size=N.size))
    return form, theta, N, S, L


@pytest.mark.parametrize("name", list(FORMS))
def test_gradient_matches_finite_differences(name):
    form, theta, N, S, _ = planted(name)
    lx = np.log(np.vstack([N, S]))
    th = theta[None] + np.random.default_rng(1).normal(0, 0.1, (4, theta.size))
    _, J = form.log_predict_grad(th, lx)
    eps = 1e-6
    for i in range(theta.size):
        d = np.zeros_like(th)
        d[:, i] = eps
        num = (form.log_predict(th + d, lx) - form.log_predict(th - d, lx)) / (2 * eps)
        np.testing.assert_allclose(J[..., i], num, atol=1e-6)


@pytest.mark.parametrize("name", list(FORMS))
def test_form_recovers_its_planted_law_and_selection_picks_it(name):
    form, theta, N, S, L = planted(name)
    f = lawfit.fit(form, (N, S), L)
    truth = form.named(theta)
    for k in ("alpha", "beta"):
        assert f.coefs[k] == pytest.approx(float(truth[k]), abs=0.06), k
    errors = {k: heldout.held_out(g, N, S, L)["error"] for k, g in FORMS.items()}
    pick, why = heldout.choose(errors, {k: g.n_params for k, g in FORMS.items()})
    assert pick == name, (errors, why)
    assert errors[name] < 0.03  # ~ the planted noise, not the misfit of another shape


def test_choose_breaks_ties_by_fewer_parameters():
    n = {"big": 6, "small": 4, "other": 4}
    assert heldout.choose({"big": 0.100, "small": 0.105, "other": 0.2}, n)[0] == "small"
    assert heldout.choose({"big": 0.05, "small": 0.105, "other": 0.2}, n)[0] == "big"
    assert heldout.choose({"big": None, "small": None, "other": None}, n)[0] is None


def test_unknown_form_names_the_known_ones():
    with pytest.raises(UserError, match="known: " + ", ".join(FORMS)):
        get("quadratic")


@pytest.mark.parametrize("name", list(FORMS))
def test_fit_cli_fits_any_registered_form(name, tmp_path, capsys):
    form, theta, N, S, L = planted(name, noise=0.005)
    p = tmp_path / "t.csv"
    p.write_text("n,s,loss\n" + "\n".join(f"{a},{b},{x}" for a, b, x in zip(N, S, L)))
    rc, out, err = run_cli(capsys, "fit", "--csv", p, "--n", "n", "--s", "s", "--loss", "loss",
                           "--form", name, "--starts", "200", "--bootstrap", "0", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["form"] == name and res["formula"].startswith("L(N, D) = ")
    truth = form.named(theta)
    assert res["alpha"] == pytest.approx(float(truth["alpha"]), abs=0.06)
    assert set(truth) <= set(res)


def test_fit_cli_unknown_form_is_one_line_exit_2(tmp_path, capsys):
    rc, out, err = run_cli(capsys, "fit", "--csv", tmp_path / "absent.csv", "--n", "n", "--s",
                           "s", "--loss", "loss", "--form", "quadratic")
    assert rc == 2 and out == ""
    assert err.strip().count("\n") == 0
    assert "--form 'quadratic'" in err and "known: " + ", ".join(FORMS) in err
    rc, out, _ = run_cli(capsys, "fit", "--help")
    assert "--form NAME" in out and all(k in out for k in FORMS)
