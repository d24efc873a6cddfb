from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from equisweep.errors import UserError
from equisweep.task import SHAPE_KINDS, TaskConfig, default_cache_dir


def test_defaults_match_the_contract():
    cfg = TaskConfig().validate()
    assert cfg.bodies == (3, 10) and cfg.vertices == 12 and cfg.seed == 0
    assert cfg.frames == 96 and cfg.delta == 1
    assert cfg.val_trajectories == 64 and cfg.test_trajectories == 64
    assert set(cfg.shapes) >= {"hull", "box", "tetrahedron", "icosahedron"}
    assert cfg.shapes == SHAPE_KINDS


def test_dict_round_trip_is_json_and_exact():
    cfg = TaskConfig(trajectories=100, bodies=(2, 4), shapes=("box", "hull"), delta=3)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert TaskConfig.from_dict(d) == cfg
    assert TaskConfig.from_dict({"name": "rigid_body", **d}) == cfg


def test_key_ignores_delta_and_number_spelling_but_not_content():
    base = TaskConfig(trajectories=100)
    assert base.key() == base.replace(delta=4).key()
    assert base.key() == TaskConfig.from_dict({"trajectories": 100, "gravity": 9.81}).key()
    assert TaskConfig(gravity=10).key() == TaskConfig(gravity=10.0).key()
    assert base.key() != base.replace(seed=1).key()
    assert base.key() != base.replace(trajectories=101).key()


@pytest.mark.parametrize("d, field", [
    ({"trajectoires": 5}, "task.trajectoires"),
    ({"trajectories": -1}, "task.trajectories"),
    ({"trajectories": 2.5}, "task.trajectories"),
    ({"trajectories": True}, "task.trajectories"),
    ({"bodies": [5, 3]}, "task.bodies"),
    ({"bodies": [0, 3]}, "task.bodies"),
    ({"bodies": 4}, "task.bodies"),
    ({"vertices": 3}, "task.vertices"),
    ({"shapes": ["box", "sphere"]}, "task.shapes"),
    ({"shapes": []}, "task.shapes"),
    ({"shapes": "box"}, "task.shapes"),
    ({"shapes": ["box", "box"]}, "task.shapes"),
    ({"frames": 5, "delta": 4}, "task.delta"),
    ({"delta": 0}, "task.delta"),
    ({"seed": -3}, "task.seed"),
    ({"size": [0.5, 0.1]}, "task.size"),
    ({"timestep": 0}, "task.timestep"),
    ({"gravity": "down"}, "task.gravity"),
    ({"val_trajectories": -1}, "task.val_trajectories"),
    ({"name": "cartpole"}, "task.name"),
])
def test_bad_values_name_their_field(d, field):
    with pytest.raises(UserError) as info:
        TaskConfig.from_dict(d)
    message = str(info.value)
    assert message.startswith(field + ":"), message
    assert "\n" not in message


def test_from_dict_rejects_non_mappings():
    with pytest.raises(UserError, match="^task:"):
        TaskConfig.from_dict(["trajectories", 5])


@given(lo=st.integers(-5, 80), hi=st.integers(-5, 80))
def test_bodies_range_valid_iff_ordered_and_in_bounds(lo, hi):
    ok = 1 <= lo <= hi <= 64
    if ok:
        assert TaskConfig.from_dict({"bodies": [lo, hi]}).bodies == (lo, hi)
    else:
        with pytest.raises(UserError, match="^task.bodies:"):
            TaskConfig.from_dict({"bodies": [lo, hi]})


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EQUISWEEP_DATA", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("EQUISWEEP_DATA")
    assert default_cache_dir().parts[-3:] == (".cache", "equisweep", "data")


def test_package_import_is_light():
    import subprocess
    import sys

    code = ("import sys, equisweep.task; "
            "print(any(m in sys.modules for m in ('mujoco', 'torch', 'scipy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
