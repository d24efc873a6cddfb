from __future__ import annotations

import numpy as np
import pytest
import torch
from task_helpers import shard_poses

from equisweep.task import RigidBodyDataset, collate
from equisweep.task.geometry import world_vertices
from equisweep.task.symmetry import act, sample_e3, sample_task_group


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("sampler", [sample_task_group, sample_e3])
def test_elements_are_orthogonal_with_both_handednesses(sampler):
    rot, shift = sampler(400, generator=gen(), dtype=torch.float64)
    assert rot.shape == (400, 3, 3) and shift.shape == (400, 3)
    eye = torch.eye(3, dtype=torch.float64).expand(400, 3, 3)
    torch.testing.assert_close(rot @ rot.transpose(1, 2), eye, atol=1e-12, rtol=0)
    det = torch.linalg.det(rot)
    assert ((det - 1).abs() < 1e-12).sum() > 150 and ((det + 1).abs() < 1e-12).sum() > 150
    r2, s2 = sampler(400, generator=gen(), dtype=torch.float64)
    assert torch.equal(rot, r2) and torch.equal(shift, s2)  # seeded


def test_task_group_keeps_up_and_floor_height():
    rot, shift = sample_task_group(100, generator=gen(1), dtype=torch.float64)
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(rot @ up, up.expand(100, 3), atol=1e-15, rtol=0)
    assert (shift[:, 2] == 0).all() and shift[:, :2].std() > 0.5


def test_task_group_about_another_up():
    up = torch.nn.functional.normalize(torch.randn(50, 3, generator=gen(2),
                                                   dtype=torch.float64), dim=1)
    rot, shift = sample_task_group(50, generator=gen(3), dtype=torch.float64, up=up)
    torch.testing.assert_close(torch.einsum("bij,bj->bi", rot, up), up)
    torch.testing.assert_close((shift * up).sum(1), torch.zeros(50, dtype=torch.float64))


def test_e3_is_spread_over_o3():
    rot, _ = sample_e3(4000, generator=gen(4), dtype=torch.float64)
    # Haar measure: the mean of the matrix entries vanishes, E[R_ij^2] = 1/3.
    assert rot.mean(0).abs().max() < 0.05
    assert ((rot ** 2).mean(0) - 1 / 3).abs().max() < 0.03


@pytest.mark.parametrize("sampler", [sample_task_group, sample_e3])
def test_acting_on_a_sample_equals_sampling_the_moved_scene(small_dataset, sampler):
    """Vertices derived from transformed poses (R c + t, R Rq) equal g acting on the batch."""
    ds = RigidBodyDataset(small_dataset, delta=2)
    trajs = shard_poses(small_dataset)
    t0 = 4
    batch = collate([ds.sample(i, t0) for i in range(len(trajs))])
    rot, shift = sampler(len(trajs), generator=gen(5), dtype=torch.float32)
    moved = act(batch, rot, shift)
    for b, (local, body, pos, prot) in enumerate(trajs):
        r, t = rot[b].double().numpy(), shift[b].double().numpy()
        pos2 = pos @ r.T + t  # (nb, F, 3)
        rot2 = np.einsum("ij,bfjk->bfik", r, prot)
        x = world_vertices(local, body, pos2.transpose(1, 0, 2), rot2.transpose(1, 0, 2, 3))
        n = len(body)
        for key, frame in (("x0", t0), ("x1", t0 + 1), ("y", t0 + 3)):
            np.testing.assert_allclose(moved[key][b, :n].numpy(), x[frame], atol=2e-5)
        np.testing.assert_allclose(moved["c0"][b, :n].numpy(), pos2[body, t0], atol=2e-5)
        np.testing.assert_allclose(moved["c1"][b, :n].numpy(), pos2[body, t0 + 1], atol=2e-5)
        np.testing.assert_allclose(moved["up"][b].numpy(), r @ [0, 0, 1.0], atol=1e-6)
        np.testing.assert_allclose(moved["floor_point"][b].numpy(), t, atol=1e-6)
        assert (moved["x0"][b, n:] == 0).all()  # padding stays zero
    assert torch.equal(moved["mask"], batch["mask"]) and torch.equal(moved["body"],
                                                                     batch["body"])
    if sampler is sample_task_group:
        assert torch.equal(moved["up"], batch["up"])
        assert (moved["floor_point"][:, 2] == 0).all()


def test_act_is_a_group_action(small_dataset):
    batch = collate([RigidBodyDataset(small_dataset)[i] for i in range(3)])
    batch = {k: (v.double() if v.is_floating_point() else v) for k, v in batch.items()}
    r1, t1 = sample_e3(3, generator=gen(6), dtype=torch.float64)
    r2, t2 = sample_e3(3, generator=gen(7), dtype=torch.float64)
    twice = act(act(batch, r1, t1), r2, t2)
    once = act(batch, r2 @ r1, torch.einsum("bij,bj->bi", r2, t1) + t2)
    for key in ("x0", "x1", "c0", "c1", "y", "floor_point", "up"):
        torch.testing.assert_close(twice[key], once[key])
    single = act(batch, r1[0], t1[0])  # one element for the whole batch
    torch.testing.assert_close(single["y"][1], act(batch, r1[0].expand(3, 3, 3),
                                                   t1[0].expand(3, 3))["y"][1])
    assert batch["x0"] is not twice["x0"]
