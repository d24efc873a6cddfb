"""The test-only fault injector (tests/helpers/inject) reaches every kind of process the
reliability tests start: this pytest process, a fresh subprocess (a CLI driver), a Ray worker
of the session's shared Ray; without EQUISWEEP_FAULT it installs nothing and changes nothing.
It chains to a sitecustomize further along the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fault_injector

from equisweep.spec import parse_spec
from tests.conftest import INJECT
from tests.reliability.conftest import reliability_sweep

# What a process reports about the injector: its sitecustomize, whether the injector is
# loaded, and the module equisweep's trainable and payload come from once imported.
PROBE = """
import sys
import equisweep.sweep.searcher as searcher
import equisweep.sweep.trainable as trainable
print(sys.modules["sitecustomize"].__file__, "fault_injector" in sys.modules,
      trainable.run.__module__, hasattr(searcher.trial_payload, "__wrapped__"))
"""


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EQUISWEEP_FAULT")}
    return dict(env, **extra)


def _subprocess(env: dict) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def _sitecustomize() -> str:
    return str(Path(INJECT) / "sitecustomize.py")


def test_a_subprocess_with_the_variable_is_injected_and_one_without_is_untouched():
    assert _subprocess(_env(EQUISWEEP_FAULT="mark@10")) == [
        _sitecustomize(), "True", "fault_injector", "True"]
    assert _subprocess(_env()) == [
        _sitecustomize(), "False", "equisweep.sweep.trainable", "False"]


def test_an_existing_sitecustomize_still_runs(tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import os\nos.environ['CHAINED'] = 'yes'\n")
    env = _env(PYTHONPATH=os.pathsep.join((INJECT, str(tmp_path))))
    out = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('CHAINED'))"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["yes"], out.stderr


def test_this_process_ships_the_settings_only_while_the_variable_is_set(tmp_path, monkeypatch):
    from equisweep.sweep import searcher, trainable

    assert trainable.run is fault_injector.run
    spec = parse_spec(dict(reliability_sweep("probe"), store=str(tmp_path / "store")),
                      source="probe")
    config = spec.trials()[0]
    for name in fault_injector.ENV:
        monkeypatch.delenv(name, raising=False)
    assert fault_injector.PAYLOAD_KEY not in searcher.trial_payload(config, None)
    monkeypatch.setenv("EQUISWEEP_FAULT", "raise@20")
    assert searcher.trial_payload(config, None)[fault_injector.PAYLOAD_KEY][
        "EQUISWEEP_FAULT"] == "raise@20"


def test_a_ray_worker_loads_the_injector_only_with_the_variable(ray_session):
    # Each runtime_env gets its own fresh worker process, started by the raylet of the
    # session's Ray, whose environment (PYTHONPATH included) it inherits.
    source = PROBE.replace("print(", "result = (")

    def in_worker():  # a closure: pickled by value, so the worker imports no test module
        ns: dict = {}
        exec(source, ns)
        return ns["result"]

    probe = ray_session.remote(in_worker)
    injected = probe.options(runtime_env={"env_vars": {"EQUISWEEP_FAULT": "mark@10"}})
    plain = probe.options(runtime_env={"env_vars": {"EQUISWEEP_INJECTOR_PROBE": "plain"}})
    assert tuple(ray_session.get(injected.remote())) == (
        _sitecustomize(), True, "fault_injector", True)
    assert tuple(ray_session.get(plain.remote())) == (
        _sitecustomize(), False, "equisweep.sweep.trainable", False)
