"""Scenes of convex bodies thrown onto a floor, simulated with MuJoCo.

The floor is the plane z = 0 and gravity points along -z (`up` = +z). A trajectory records,
at every frame, the pose of each body's *inertial* frame (origin = centre of mass), and each
mesh once in that frame, so world vertices are `pos + R(quat) @ local` and the centre of mass
is `pos` itself.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from equisweep.task.config import SHAPE_KINDS, TaskConfig
from equisweep.task.geometry import quat_multiply, quat_to_matrix
from equisweep.task.shapes import make_mesh

UP = np.array([0.0, 0.0, 1.0])
DENSITY = 1000.0  # kg/m^3; bodies are uniform solids


@dataclasses.dataclass
class Scene:
    """Initial state. `meshes[i]` is body i's vertices in its body frame (as given to MuJoCo);
    poses are world positions and (w, x, y, z) quaternions; `angvel` is in the world frame."""

    kinds: np.ndarray  # (B,) int8 index into SHAPE_KINDS
    meshes: list[np.ndarray]
    pos: np.ndarray  # (B, 3)
    quat: np.ndarray  # (B, 4)
    vel: np.ndarray  # (B, 3)
    angvel: np.ndarray  # (B, 3)


@dataclasses.dataclass
class Trajectory:
    kinds: np.ndarray  # (B,) int8
    local: list[np.ndarray]  # per body (V_i, 3): vertices in the inertial frame
    pos: np.ndarray  # (B, F, 3) centre of mass
    quat: np.ndarray  # (B, F, 4) inertial-frame orientation, (w, x, y, z)


def sample_scene(rng: np.random.Generator, cfg: TaskConfig) -> Scene:
    """Bodies at random non-overlapping places above the floor, thrown towards the centre."""
    n = int(rng.integers(cfg.bodies[0], cfg.bodies[1] + 1))
    kinds = np.array([SHAPE_KINDS.index(cfg.shapes[i])
                      for i in rng.integers(0, len(cfg.shapes), size=n)], dtype=np.int8)
    radii = rng.uniform(cfg.size[0], cfg.size[1], size=n)
    meshes = [make_mesh(SHAPE_KINDS[k], rng, r, cfg.vertices) for k, r in zip(kinds, radii)]
    # The arena grows with the crowd so that placement stays easy.
    extent = cfg.size[1] * (2.0 + 1.5 * np.sqrt(n))
    pos = np.zeros((n, 3))
    for i in range(n):
        height = 2.0 * cfg.size[1] + 0.5
        for attempt in range(10_000):
            p = np.array([*rng.uniform(-extent, extent, size=2),
                          rng.uniform(radii[i] + 0.05, radii[i] + height)])
            gap = np.linalg.norm(pos[:i] - p, axis=1) - radii[:i] - radii[i]
            if i == 0 or gap.min() > 0.02:
                break
            if attempt % 100 == 99:
                height += cfg.size[1]
        pos[i] = p
    quat = rng.normal(size=(n, 4))
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    # Horizontal throw towards the centre (with some sideways spread), vertical toss.
    towards = -pos[:, :2] / np.maximum(np.linalg.norm(pos[:, :2], axis=1, keepdims=True), 1e-9)
    speed = rng.uniform(0.0, cfg.throw_speed, size=(n, 1))
    side = rng.normal(scale=0.3, size=(n, 1)) * np.stack([-towards[:, 1], towards[:, 0]], 1)
    vel = np.concatenate([speed * towards + speed * side,
                          rng.uniform(-1.0, 2.0, size=(n, 1))], axis=1)
    angvel = rng.normal(scale=3.0, size=(n, 3))
    return Scene(kinds, meshes, pos, quat, vel, angvel)


def scene_xml(scene: Scene, cfg: TaskConfig) -> str:
    """MJCF with the meshes inline (no files): a plane floor and one free body per mesh."""
    f = _fmt
    assets, bodies = [], []
    for i, (verts, p, q) in enumerate(zip(scene.meshes, scene.pos, scene.quat)):
        assets.append(f'<mesh name="m{i}" vertex="{f(verts)}"/>')
        bodies.append(f'<body name="b{i}" pos="{f(p)}" quat="{f(q)}"><freejoint/>'
                      f'<geom type="mesh" mesh="m{i}"/></body>')
    # Contact setup. Elliptic friction cones: MuJoCo's default pyramidal cone is aligned with
    # the world axes and would break the task's symmetry under rotations about `up` by
    # centimetres per impact (tests/task check rotated scenes to 1e-6); impratio 10 keeps
    # resting contacts from creeping under elliptic cones. The stiffest stable contact (time
    # constant two steps) stops fast corners sinking deep into the floor; condim 4 adds
    # torsional friction so spinning bodies settle.
    return (
        '<mujoco model="equisweep_rigid_body">'
        f'<option timestep="{f(cfg.timestep)}" gravity="0 0 {f(-cfg.gravity)}"'
        ' integrator="implicitfast" cone="elliptic" impratio="10"/>'
        f'<default><geom density="{f(DENSITY)}" friction="{f(cfg.friction)} 0.01 0.001"'
        f' condim="4" solref="{f(2 * cfg.timestep)} 1"/></default>'
        f'<asset>{"".join(assets)}</asset>'
        '<worldbody><geom name="floor" type="plane" size="0 0 1"/>'
        f'{"".join(bodies)}</worldbody></mujoco>'
    )


def simulate(scene: Scene, cfg: TaskConfig, frames: int | None = None) -> Trajectory:
    """Run MuJoCo; frame 0 is the initial state, then one frame every `cfg.frame_every` steps."""
    import mujoco

    frames = cfg.frames if frames is None else frames
    model = mujoco.MjModel.from_xml_string(scene_xml(scene, cfg))
    data = mujoco.MjData(model)
    n = len(scene.meshes)
    qvel = data.qvel.reshape(n, 6)
    qvel[:, :3] = scene.vel
    # MuJoCo's free-joint angular velocity is in the body frame.
    qvel[:, 3:] = np.einsum("bji,bj->bi", quat_to_matrix(scene.quat), scene.angvel)
    mujoco.mj_forward(model, data)
    qpos = np.empty((frames, n * 7))
    qpos[0] = data.qpos
    for frame in range(1, frames):
        mujoco.mj_step(model, data, nstep=cfg.frame_every)
        qpos[frame] = data.qpos
    qpos = qpos.reshape(frames, n, 7).transpose(1, 0, 2)
    body_pos, body_quat = qpos[..., :3], qpos[..., 3:]
    ipos = model.body_ipos[1:].copy()  # body 0 is the world
    iquat = model.body_iquat[1:].copy()
    rot = quat_to_matrix(body_quat)  # (B, F, 3, 3)
    com = body_pos + np.einsum("bfij,bj->bfi", rot, ipos)
    quat = quat_multiply(body_quat, iquat[:, None, :])
    irot = quat_to_matrix(iquat)
    local = [(m - ip) @ ir for m, ip, ir in zip(scene.meshes, ipos, irot)]
    return Trajectory(scene.kinds, local, com, quat)


def _fmt(x) -> str:
    # repr is the shortest exact round trip, so MuJoCo parses the very doubles we hold.
    return " ".join(repr(float(v)) for v in np.ravel(x))
