"""The simulator is MuJoCo; these check that the scenes we build behave like physics."""

from __future__ import annotations

import numpy as np
import pytest

from equisweep.task import TaskConfig
from equisweep.task.geometry import quat_multiply, quat_to_matrix
from equisweep.task.shapes import make_mesh
from equisweep.task.shards import trajectory_rng
from equisweep.task.simulate import Scene, sample_scene, simulate

CFG = TaskConfig()


def _vertices(traj):
    """(F, total V, 3) world vertices of every body."""
    rot = quat_to_matrix(traj.quat)
    return np.concatenate([np.einsum("fij,vj->fvi", rot[b], traj.local[b]) + traj.pos[b][:, None]
                           for b in range(len(traj.local))], axis=1)


def test_free_flight_follows_gravity():
    rng = np.random.default_rng(0)
    meshes = [make_mesh(k, rng, 0.3, 12) for k in ("box", "hull")]
    v0 = np.array([[1.0, -0.5, 3.0], [-2.0, 0.0, 0.5]])
    scene = Scene(np.array([1, 0], np.int8), meshes, np.array([[0.5, -0.2, 50.0], [9, 9, 40.0]]),
                  np.array([[1.0, 0, 0, 0], [0.5, 0.5, 0.5, 0.5]]), v0,
                  np.array([[2.0, -1.0, 4.0], [0.0, 5.0, 0.0]]))
    traj = simulate(scene, CFG, frames=51)  # one second
    t = np.arange(51) * CFG.timestep * CFG.frame_every
    for b in range(2):
        start = traj.pos[b, 0]
        exact = start + v0[b] * t[:, None] - 0.5 * CFG.gravity * np.outer(t ** 2, [0, 0, 1])
        err = traj.pos[b] - exact
        np.testing.assert_allclose(err[:, :2], 0.0, atol=1e-6)
        # Semi-implicit Euler lags the parabola by g*dt*t/2; nothing else may differ.
        bound = 0.5 * CFG.gravity * CFG.timestep * t + 1e-6
        assert np.all(np.abs(err[:, 2]) <= bound)
        assert abs(err[-1, 2]) > 0.5 * bound[-1]  # gravity really acted over the second
    # A spinning body's vertices stay rigid: distances to the centre are preserved.
    x = _vertices(traj)[:, :8]
    r = np.linalg.norm(x - traj.pos[0][:, None], axis=-1)
    np.testing.assert_allclose(r, r[:1].repeat(len(r), 0), atol=1e-9)


@pytest.fixture(scope="module")
def long_runs():
    """A few default scenes simulated for 5 s (well past the default 96 frames)."""
    return [simulate(sample_scene(trajectory_rng(0, "train", i), CFG), CFG, frames=250)
            for i in range(6)]


def test_no_vertex_sinks_into_the_floor(long_runs):
    for traj in long_runs:
        z = _vertices(traj)[..., 2]
        # Impacts at up to ~7 m/s may dip a corner one timestep's travel into the soft floor;
        # resting contact holds it to a few millimetres.
        assert z.min() > -0.04
        assert z[-20:].min() > -0.003
        assert z[-1].min() < 0.01  # they did land on it


def test_bodies_come_to_rest(long_runs):
    dt = CFG.timestep * CFG.frame_every
    for traj in long_runs:
        speed = np.linalg.norm(np.diff(traj.pos[:, -3:], axis=1), axis=-1) / dt
        assert speed.max() < 0.02, speed.max()
        first_speed = np.linalg.norm(traj.pos[:, 1] - traj.pos[:, 0], axis=-1) / dt
        assert first_speed.max() > 0.5  # they were thrown
        # Orientation settles too: consecutive rotations differ by a tiny angle.
        rot = quat_to_matrix(traj.quat[:, -2:])
        rel = np.einsum("bji,bjk->bik", rot[:, 0], rot[:, 1])
        angle = np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1))
        assert angle.max() / dt < 0.05


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rotating_the_scene_about_up_rotates_the_trajectory(seed):
    scene = sample_scene(trajectory_rng(seed, "train", 0), CFG)
    theta = 1.1 + seed
    c, s = np.cos(theta), np.sin(theta)
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    qz = np.array([np.cos(theta / 2), 0, 0, np.sin(theta / 2)])
    shift = np.array([0.3, -2.0, 0.0])
    moved = Scene(scene.kinds, scene.meshes, scene.pos @ rz.T + shift,
                  quat_multiply(qz, scene.quat), scene.vel @ rz.T, scene.angvel @ rz.T)
    frames = 40
    a = simulate(scene, CFG, frames=frames)
    b = simulate(moved, CFG, frames=frames)
    err = np.abs(_vertices(b) - (_vertices(a) @ rz.T + shift)).max(axis=(1, 2))
    first_contact = np.argmax(_vertices(a)[..., 2].min(axis=1) < 0.005)
    assert 0 < first_contact < frames - 10  # the window covers impacts, not just flight
    # Isotropic (elliptic) friction keeps impacts and collisions equivariant to rounding
    # level; the default pyramidal cone, aligned with the world axes, misses by centimetres.
    assert np.all(err < 1e-6), err
