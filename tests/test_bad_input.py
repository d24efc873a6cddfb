"""Bad input across every user-facing surface: sweep YAMLs, CLI arguments, dataset folders,
store paths and CSV tables. Each case must exit 2 with ONE line on stderr naming the field
or path at fault, start no Ray, and write nothing anywhere (the test's folders, the data
cache, the working directory).

The sweep-YAML validator has its own gallery in tests/sweeps/bad/; the sweep cases here go
through `equisweep run`, the command that would start Ray.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from equisweep.cli import main
from tests.sweep.conftest import tiny_sweep_dict

HERE = Path(__file__).parent


def _sweep(name="ok", **overrides) -> dict:
    d = tiny_sweep_dict(name, **overrides)
    return d


def _training(**kw) -> dict:
    return dict({"batch_size": 4, "eval_every": 10, "checkpoint_every": 10}, **kw)


# id -> sweep dict written to {tmp}/sweeps/<id>.yaml; `store` defaults to {tmp}/store
SWEEPS = {
    "name_slash": _sweep("a/b"),
    "name_dotdot": _sweep(".."),
    "grid_empty": _sweep(grid={"steps": [], "train_trajectories": [8], "seed": [0]}),
    "budget_admits_no_trial": _sweep(budget={"flops": 1.0}),
    "size_unknown_key": _sweep(families={"gatr": {"sizes": [{"width": 2, "depth": 1,
                                                             "colour": 3}]}}),
    "size_zero_width": _sweep(families={"gatr": {"sizes": [{"width": 0, "depth": 1}]}}),
    "size_heads_do_not_divide": _sweep(families={"transformer": {"sizes": [
        {"width": 10, "depth": 1, "heads": 3}]}}),
    "family_unknown": _sweep(families={"resnet": {"sizes": [{"width": 2}]}}),
    "wrong_type": _sweep(max_concurrent="two"),
    "out_of_range": _sweep(training=_training(warmup=2)),
    "unknown_top_key": _sweep(colour="red"),
    "train_trajectories_above_pool": _sweep(
        grid={"steps": [20], "train_trajectories": [999], "seed": [0]}),
    "seed_not_int": _sweep(grid={"steps": [20], "train_trajectories": [8], "seed": ["a"]}),
    "shape_unknown": _sweep(task={"name": "rigid_body", "trajectories": 12,
                                  "shapes": ["sphere"]}),
    "task_unknown": _sweep(task={"name": "pendulum", "trajectories": 12}),
    "checkpoint_every_zero": _sweep(training=_training(checkpoint_every=0)),
    "method_typo": _sweep(search={"method": "optuan", "samples_per_cell": 1,
                                  "params": {"lr": {"loguniform": [1e-3, 1e-2]}}}),
    "param_not_searchable": _sweep(search={"method": "random", "samples_per_cell": 1,
                                           "params": {"momentum": {"uniform": [0, 1]}}}),
    # refused before Ray because this machine cannot run them (issue 12)
    "cpu_more_than_the_machine": _sweep(resources={"cpu": 4096}),
    "gpu_more_than_the_machine": _sweep(resources={"cpu": 1, "gpu": 64}),
    "size_beyond_memory": _sweep(families={"transformer": {"sizes": [
        {"width": 65536, "depth": 64, "heads": 64}]}}),
    # numbers the store's int64 columns cannot hold, or that are not finite
    "steps_infinite": _sweep(grid={"steps": [float("inf")], "train_trajectories": [8],
                                   "seed": [0]}),
    "seed_beyond_int64": _sweep(grid={"steps": [20], "train_trajectories": [8],
                                      "seed": [2**70]}),
    "width_beyond_int64": _sweep(families={"gatr": {"sizes": [{"width": 2**64, "depth": 1}]}}),
    "lr_nan": _sweep(search={"method": "random", "samples_per_cell": 1,
                             "params": {"lr": {"loguniform": [float("nan"), 1e-2]}}}),
    "budget_infinite": _sweep(budget={"flops": float("inf")}),
    "negative_beyond_int64": _sweep(retries=-(2**64)),
    # a grid that expands to an unreasonable number of trials
    "grid_explodes": _sweep(grid={"steps": list(range(10, 3010)),
                                  "train_trajectories": [8], "seed": list(range(100))}),
    "search_explodes": _sweep(search={"method": "random", "samples_per_cell": 10**7,
                                      "params": {"lr": {"loguniform": [1e-3, 1e-2]}}}),
    # issue 21: an integral float beyond int64, and a count whose field is named
    "steps_1e30": _sweep(grid={"steps": [1e30], "train_trajectories": [8], "seed": [0]}),
    "samples_per_cell_1e9": _sweep(search={"method": "optuna", "samples_per_cell": 10**9,
                                           "params": {"lr": {"loguniform": [1e-3, 1e-2]}}}),
    "eval_batches_removed": _sweep(training={"batch_size": 4, "eval_every": 10,
                                             "checkpoint_every": 10, "eval_batches": 4}),
    # issue 18: how trials are stacked is auto, off or a positive integer
    **{f"stack_{v}": _sweep(training=_training(stack=v)) for v in (0, -1, "yes", 1.5, True)},
    # object stores
    "store_s3_no_bucket": _sweep(store="s3://"),
    "store_s3_no_bucket_slash": _sweep(store="s3:///prefix"),
    "store_s3_credentials_in_uri": _sweep(store="s3://AKIAEXAMPLE:hunter2@bucket/x"),
    "store_s3_secret_query": _sweep(store="s3://bucket/x?secret_key=hunter2"),
    "store_is_a_file": _sweep(store="{tmp}/afile"),
    "store_under_a_file": _sweep(store="{tmp}/afile/sub"),
}
EXPECT_SWEEP = {
    "name_slash": "name: must match", "name_dotdot": "name: must match",
    "grid_empty": "grid.steps", "budget_admits_no_trial": "budget.flops",
    "size_unknown_key": "families.gatr.sizes[0]", "size_zero_width": "'width'",
    "size_heads_do_not_divide": "families.transformer.sizes[0]",
    "family_unknown": "families.resnet", "wrong_type": "max_concurrent",
    "out_of_range": "training.warmup", "unknown_top_key": "colour",
    "train_trajectories_above_pool": "grid.train_trajectories[0]",
    "seed_not_int": "grid.seed[0]", "shape_unknown": "task.shapes",
    "task_unknown": "task.name", "checkpoint_every_zero": "training.checkpoint_every",
    "method_typo": "search.method", "param_not_searchable": "search.params.momentum",
    "store_is_a_file": "{tmp}/afile", "store_under_a_file": "{tmp}/afile",
    "cpu_more_than_the_machine": "resources.cpu", "gpu_more_than_the_machine": "resources.gpu",
    "size_beyond_memory": "GiB per trial", "steps_infinite": "grid.steps[0]: must be a finite",
    "seed_beyond_int64": "grid.seed[0]: 1180591620717411303424 does not fit a 64-bit",
    "width_beyond_int64": "families.gatr.sizes[0].width", "lr_nan": "loguniform[0]",
    "budget_infinite": "budget.flops", "negative_beyond_int64": "retries",
    "grid_explodes": "grid.steps: 3000 makes 1200000 trials planned",
    "search_explodes": "search.samples_per_cell: 10000000 makes",
    "steps_1e30": "grid.steps[0]: must fit a 64-bit integer",
    "samples_per_cell_1e9": "search.samples_per_cell: 1000000000 makes",
    "eval_batches_removed": "training.eval_batches: removed",
    **{f"stack_{v}": "training.stack: must be auto, off or a positive integer"
       for v in (0, -1, "yes", 1.5, True)},
    "store_s3_no_bucket": "names no bucket", "store_s3_no_bucket_slash": "names no bucket",
    "store_s3_credentials_in_uri": "credentials in the URI are refused",
    "store_s3_secret_query": "secret_key in the URI is refused",
}

def _alias_bomb(levels: int = 9) -> str:
    """'Billion laughs': each level lists the previous one 9 times (9**levels leaves)."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "name: bomb\n" + "\n".join(lines) + f"\ndescription: *a{levels - 1}\n"


def _deep_mapping(depth: int = 400) -> str:
    return "name: deep\ntask:\n" + "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(depth))


HOSTILE_YAML = {
    "alias_bomb": _alias_bomb(),
    "deep": "name: deep\ndescription: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "deep_mapping": _deep_mapping(),
    "huge": "name: huge\ndescription: '" + "x" * (5 * 2**20) + "'\n",
}

# sweep name -> recorded metadata fields that differ from a good record
RECORDED = {
    "rec_no_spec": {"spec": None},
    "rec_spec_not_a_mapping": {"spec": ["a", "b"]},
    "rec_spec_invalid": {"spec": _sweep("rec_spec_invalid", max_concurrent="two")},
    "rec_spec_other_name": {"spec": _sweep("someone_else")},
    "rec_name_differs": {"name": "other"},
    "rec_data_dir_not_text": {"data_dir": 5},
}
EXPECT_RECORDED = {
    "rec_no_spec": "field 'spec'", "rec_spec_not_a_mapping": "field 'spec'",
    "rec_spec_invalid": "max_concurrent", "rec_spec_other_name": "'someone_else'",
    "rec_name_differs": "field 'name'", "rec_data_dir_not_text": "field 'data_dir'",
}

# (id, argv, text the one-line message must contain); {tmp}, {ds} are filled in.
CASES = [(f"run_{k}", ["run", f"{{tmp}}/sweeps/{k}.yaml"], v) for k, v in EXPECT_SWEEP.items()]
CASES += [(f"resume_{k}", ["resume", k, "--store", "{tmp}/store"], v)
          for k, v in EXPECT_RECORDED.items()]
CASES += [
    # sweep files that are not sweep data
    ("run_object_tag", ["run", "{tmp}/sweeps/object_tag.yaml"], "object tags are refused"),
    ("run_alias_bomb", ["run", "{tmp}/sweeps/alias_bomb.yaml"], "expands to more than"),
    ("validate_alias_bomb", ["validate", "{tmp}/sweeps/alias_bomb.yaml"],
     "expands to more than"),
    ("run_deep_nesting", ["run", "{tmp}/sweeps/deep.yaml"], "nested more than 32 levels"),
    ("validate_deep_mapping", ["validate", "{tmp}/sweeps/deep_mapping.yaml"],
     "nested more than 32 levels"),
    ("run_huge_file", ["run", "{tmp}/sweeps/huge.yaml"], "a sweep file is at most"),
    ("validate_grid_explodes", ["validate", "{tmp}/sweeps/grid_explodes.yaml"],
     "trials planned"),
    ("run_broken_yaml", ["run", "{tmp}/sweeps/broken.yaml"], "line 2"),
    ("run_missing_file", ["run", "{tmp}/nope.yaml"], "{tmp}/nope.yaml"),
    # run / resume / submit arguments
    ("run_store_flag_is_a_file", ["run", "{tmp}/sweeps/good.yaml", "--store", "{tmp}/afile"],
     "{tmp}/afile"),
    ("run_store_flag_under_a_file",
     ["run", "{tmp}/sweeps/good.yaml", "--store", "{tmp}/afile/sub"], "{tmp}/afile"),
    ("run_data_dir_is_a_file",
     ["run", "{tmp}/sweeps/good.yaml", "--data-dir", "{tmp}/afile"], "--data-dir"),
    ("run_data_dir_under_a_file",
     ["run", "{tmp}/sweeps/good.yaml", "--data-dir", "{tmp}/afile/x"], "--data-dir"),
    ("run_unknown_flag", ["run", "{tmp}/sweeps/good.yaml", "--fast"], "--fast"),
    ("resume_name_dotdot", ["resume", "../x", "--store", "{tmp}/store"], "'../x'"),
    ("resume_name_slash", ["resume", "a/b", "--store", "{tmp}/store"], "'a/b'"),
    ("resume_unknown_sweep", ["resume", "nosuch", "--store", "{tmp}/store"], "'nosuch'"),
    ("resume_store_is_a_file", ["resume", "x", "--store", "{tmp}/afile"], "{tmp}/afile"),
    ("submit_address_not_url",
     ["submit", "{tmp}/sweeps/good.yaml", "--address", "not-a-url"], "--address"),
    # a cluster's trials run on its nodes: a laptop path is refused as for `submit` (issue 20)
    ("run_address_local_store",
     ["run", "{tmp}/sweeps/good.yaml", "--address", "ray://127.0.0.1:1", "--store",
      "{tmp}/store"], "--shared-store"),
    ("resume_address_local_store",
     ["resume", "x", "--address", "127.0.0.1:1", "--store", "{tmp}/store"], "--shared-store"),
    # data generate / info
    ("data_negative_count", ["data", "generate", "--trajectories", "-5", "--out", "{tmp}/d"],
     "--trajectories"),
    ("data_count_not_int", ["data", "generate", "--trajectories", "many"], "--trajectories"),
    ("data_bodies_min_above_max", ["data", "generate", "--bodies", "6", "3", "--out",
                                   "{tmp}/d"], "--bodies"),
    ("data_unknown_shape", ["data", "generate", "--shapes", "sphere", "--out", "{tmp}/d"],
     "--shapes"),
    ("data_too_few_frames", ["data", "generate", "--frames", "1", "--out", "{tmp}/d"],
     "--frames"),
    ("data_too_few_vertices", ["data", "generate", "--vertices", "2", "--out", "{tmp}/d"],
     "--vertices"),
    ("data_zero_workers", ["data", "generate", "--workers", "0", "--out", "{tmp}/d"],
     "--workers"),
    ("data_out_is_a_file", ["data", "generate", "--trajectories", "4", "--out", "{tmp}/afile"],
     "{tmp}/afile"),
    ("data_info_missing", ["data", "info", "{tmp}/nope"], "{tmp}/nope"),
    ("data_info_a_file", ["data", "info", "{tmp}/afile"], "{tmp}/afile"),
    ("data_info_not_a_dataset", ["data", "info", "{tmp}/notds"], "{tmp}/notds"),
    ("data_info_corrupt_shard", ["data", "info", "{ds}/corrupt", "--verify"],
     "{ds}/corrupt/train-00000.npz"),
    ("data_info_missing_shard", ["data", "info", "{ds}/missing", "--verify"],
     "{ds}/missing/train-00000.npz"),
    ("data_info_damaged_manifest", ["data", "info", "{ds}/manifest"],
     "{ds}/manifest/manifest.json"),
    ("data_info_manifest_is_a_folder", ["data", "info", "{ds}/manifest_folder"],
     "{ds}/manifest_folder/manifest.json: is a folder"),
    ("data_info_manifest_is_a_list", ["data", "info", "{ds}/manifest_list"],
     "{ds}/manifest_list/manifest.json: damaged manifest (the top level is a list"),
    ("data_info_manifest_splits_wrong", ["data", "info", "{ds}/manifest_splits"],
     "{ds}/manifest_splits/manifest.json: damaged manifest (splits."),
    ("data_info_manifest_shard_escapes", ["data", "info", "{ds}/manifest_escape"],
     "is not a shard name"),
    # store paths and queries
    ("store_check_store_is_a_file", ["store", "check", "--store", "{tmp}/afile"],
     "{tmp}/afile"),
    ("store_check_no_store", ["store", "check", "--store", "{tmp}/nope"], "{tmp}/nope"),
    ("query_store_is_a_file", ["query", "--store", "{tmp}/afile"], "{tmp}/afile"),
    ("status_store_is_a_file", ["status", "--store", "{tmp}/afile"], "{tmp}/afile"),
    ("query_unknown_sweep", ["query", "nosuch", "--store", "{tmp}/store"], "'nosuch'"),
    ("query_name_escapes", ["query", "../etc", "--store", "{tmp}/store"], "'../etc'"),
    ("query_where_syntax", ["query", "--where", "step===", "--store", "{tmp}/store"],
     "--where"),
    ("query_where_unknown_column", ["query", "--where", "nosuch > 1", "--store",
                                    "{tmp}/store"], "'nosuch'"),
    ("query_where_type", ["query", "--where", "step > 'a'", "--store", "{tmp}/store"],
     "--where"),
    ("query_unknown_column", ["query", "--columns", "nosuch", "--store", "{tmp}/store"],
     "--columns"),
    ("query_negative_limit", ["query", "--limit", "-1", "--store", "{tmp}/store"], "--limit"),
    ("query_parquet_needs_output", ["query", "--format", "parquet", "--store", "{tmp}/store"],
     "--output"),
    ("query_output_folder_missing", ["query", "--output", "{tmp}/nodir/out.csv", "--store",
                                     "{tmp}/store"], "{tmp}/nodir"),
    ("query_output_is_a_folder", ["query", "--output", "{tmp}/notds", "--store",
                                  "{tmp}/store"], "{tmp}/notds"),
    ("query_bad_format", ["query", "--format", "xlsx", "--store", "{tmp}/store"], "--format"),
    ("query_where_int_beyond_int64", ["query", "--where", "step > 99999999999999999999",
                                      "--store", "{tmp}/store"], "64-bit integer"),
    ("query_where_negative_beyond_int64", ["query", "--where", "step > -9999999999999999999",
                                           "--store", "{tmp}/store"], "64-bit integer"),
    ("query_where_not_finite", ["query", "--where", "train_loss < 1e999", "--store",
                                "{tmp}/store"], "not finite"),
    ("query_where_deep_parentheses", ["query", "--where", "(" * 300 + "step > 1" + ")" * 300,
                                      "--store", "{tmp}/store"], "--where"),
    ("query_where_deep_not", ["query", "--where", "not " * 200 + "step > 1", "--store",
                              "{tmp}/store"], "nested"),
    ("query_where_too_long", ["query", "--where", " or ".join(["step > 1"] * 2000),
                              "--store", "{tmp}/store"], "characters long"),
    ("final_where_beyond_int64", ["query", "--final", "--where", "n_params == 2**64",
                                  "--store", "{tmp}/store"], "--where"),
    ("status_unknown_sweep", ["status", "nosuch", "--store", "{tmp}/store"], "'nosuch'"),
    ("analyze_unknown_sweep", ["analyze", "nosuch", "--store", "{tmp}/store"], "'nosuch'"),
    ("analyze_no_store", ["analyze", "x", "--store", "{tmp}/nope"], "{tmp}/nope"),
    ("analyze_negative_bootstrap", ["analyze", "exists", "--store", "{tmp}/store",
                                    "--bootstrap", "-1"], "--bootstrap"),
    # fit tables
    ("fit_missing_csv", ["fit", "--csv", "{tmp}/nope.csv", "--n", "N", "--d", "D", "--loss",
                         "L"], "{tmp}/nope.csv"),
    ("fit_csv_missing_columns", ["fit", "--csv", "{tmp}/ab.csv", "--n", "N", "--d", "D",
                                 "--loss", "L"], "'N'"),
    ("fit_non_positive", ["fit", "--csv", "{tmp}/neg.csv", "--n", "N", "--d", "D", "--loss",
                          "L"], "--n"),
    ("fit_drop_everything", ["fit", "--csv", "{tmp}/two.csv", "--n", "N", "--d", "D",
                             "--loss", "L", "--drop-highest", "5"], "--drop-highest"),
    ("fit_infinite_values", ["fit", "--csv", "{tmp}/inf.csv", "--n", "N", "--d", "D",
                             "--loss", "L"], "--d column 'D' has 1 infinite"),
    ("fit_infinite_size", ["fit", "--csv", "{tmp}/inf.csv", "--n", "D", "--d", "N",
                           "--loss", "N"], "infinite"),
    ("fit_nan_cells", ["fit", "--csv", "{tmp}/nan.csv", "--n", "N", "--d", "D", "--loss", "L"],
     "2 empty, NaN"),
    ("fit_no_second_covariate", ["fit", "--csv", "{tmp}/two.csv", "--n", "N", "--loss", "L"],
     "--d"),
    ("fit_unknown_form", ["fit", "--csv", "{tmp}/ab.csv", "--n", "N", "--d", "D", "--loss",
                          "L", "--form", "cubic"], "known: additive"),
    ("fit_header_only", ["fit", "--csv", "{tmp}/header.csv", "--n", "N", "--d", "D", "--loss",
                         "L"], "--csv {tmp}/header.csv: no data rows"),
]


def test_there_are_at_least_30_cases_across_classes():
    assert len(CASES) >= 30
    commands = {argv[0] for _, argv, _ in CASES}
    assert commands >= {"run", "resume", "submit", "data", "store", "query", "status",
                        "analyze", "fit"}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """A real (tiny) dataset, then three damaged copies: corrupt shard, missing shard,
    garbage manifest."""
    from equisweep.task import TaskConfig, ensure_dataset

    root = tmp_path_factory.mktemp("datasets")
    cfg = TaskConfig(trajectories=4, val_trajectories=2, test_trajectories=2, bodies=(3, 3),
                     vertices=6, frames=8, seed=0)
    good = ensure_dataset(cfg, cache_dir=root / "cache", workers=1, progress=False)
    for name in ("corrupt", "missing", "manifest", "manifest_folder", "manifest_list",
                 "manifest_splits", "manifest_escape"):
        shutil.copytree(good, root / name)
    import json

    text = (good / "manifest.json").read_text()
    (root / "manifest_folder" / "manifest.json").unlink()
    (root / "manifest_folder" / "manifest.json").mkdir()
    (root / "manifest_list" / "manifest.json").write_text("[1, 2, 3]")
    m = json.loads(text)
    m["splits"] = {"train": {"trajectories": 4, "shards": "all"}}
    (root / "manifest_splits" / "manifest.json").write_text(json.dumps(m))
    m = json.loads(text)
    m["splits"]["train"]["shards"][0]["file"] = "../../etc/passwd"
    (root / "manifest_escape" / "manifest.json").write_text(json.dumps(m))
    shard = root / "corrupt" / "train-00000.npz"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    (root / "missing" / "train-00000.npz").unlink()
    (root / "manifest" / "manifest.json").write_text("{not json")
    return root


@pytest.fixture
def world(tmp_path, datasets, monkeypatch):
    """Everything the cases point at, an empty cwd, and tripwires on starting Ray."""
    import equisweep.sweep.session as session

    (tmp_path / "afile").write_text("x")
    (tmp_path / "notds").mkdir()
    (tmp_path / "ab.csv").write_text("a,b\n1,2\n")
    (tmp_path / "neg.csv").write_text("N,D,L\n1,2,3\n-1,2,3\n5,6,7\n")
    (tmp_path / "header.csv").write_text("N,D,L\n")
    (tmp_path / "two.csv").write_text("N,D,L\n1,2,3\n2,3,4\n")
    (tmp_path / "inf.csv").write_text("N,D,L\n1,2,3\n2,inf,4\n3,4,inf\n4,5,6\n")
    (tmp_path / "nan.csv").write_text("N,D,L\n1,2,3\n2,3,nan\n3,4,\n4,5,6\n")
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    for name, d in dict(SWEEPS, good=_sweep()).items():
        d = dict(d)
        d["store"] = d.get("store", "{tmp}/store").format(tmp=tmp_path)
        (sweeps / f"{name}.yaml").write_text(yaml.safe_dump(d))
    (sweeps / "object_tag.yaml").write_text(
        f'!!python/object/apply:os.system ["touch {tmp_path}/pwned"]\n')
    (sweeps / "broken.yaml").write_text("name: x\n  bad: [\n")
    for name, text in HOSTILE_YAML.items():
        (sweeps / f"{name}.yaml").write_text(text)
    from tests.reliability.storerows import write_minimal_sweep

    write_minimal_sweep(tmp_path / "store", "exists")
    from equisweep.store import open_store

    store = open_store(tmp_path / "store")
    # Recorded sweeps that resume must refuse before it plans or starts Ray.
    for name, meta in RECORDED.items():
        store.write_sweep_meta(name, dict({"name": name, "spec": _sweep(name)}, **meta))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("EQUISWEEP_STORE", str(tmp_path / "default-store"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    def no_ray(*args, **kwargs):
        raise AssertionError("bad input reached Ray")

    monkeypatch.setattr(session, "connect", no_ray)
    import ray

    monkeypatch.setattr(ray, "init", no_ray)
    # `equisweep` runs in a fresh process, where no Ray is connected yet; earlier tests of
    # this pytest process may have left their shared Ray up, which would make the driver
    # take the joined-cluster path instead of the embedded Ray's preflight.
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    return tmp_path


def _snapshot(*roots: Path) -> dict:
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                p = Path(dirpath) / n
                st = p.lstat()
                out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("case_id, argv, expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_no_side_effects(world, datasets, capsys,
                                                               case_id, argv, expect):
    fill = {"tmp": str(world), "ds": str(datasets)}
    argv = [a.format(**fill) for a in argv]
    expect = expect.format(**fill)
    cache = Path(os.environ["EQUISWEEP_DATA"])
    before = _snapshot(world, datasets, cache)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("equisweep"), lines[0]
    assert expect in lines[0], (expect, lines[0])
    assert out == ""
    assert _snapshot(world, datasets, cache) == before
    assert not (world / "pwned").exists()


@pytest.mark.parametrize("what", ["--store", "--data-dir"])
def test_folders_this_user_cannot_write_are_refused_before_ray(world, capsys, what):
    """A store or data folder that exists but is read-only for the user running the sweep
    (the test drops to `nobody` when it runs as root, which could write anyway)."""
    import tempfile

    from tests.reliability.helpers import as_nobody

    root = Path(tempfile.mkdtemp(prefix="equisweep-ro-"))
    try:
        root.chmod(0o755)
        sweep = root / "ok.yaml"
        sweep.write_text(yaml.safe_dump(_sweep("ok")))
        writable, readonly = root / "writable", root / "readonly"
        writable.mkdir(mode=0o777)
        writable.chmod(0o777)
        readonly.mkdir()
        readonly.chmod(0o555)
        store = readonly if what == "--store" else writable / "store"
        data = readonly if what == "--data-dir" else writable / "data"
        before = _snapshot(root)
        with as_nobody():
            code = main(["run", str(sweep), "--store", str(store), "--data-dir", str(data)])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert ("results store" if what == "--store" else "--data-dir") in err, err
        assert f"{readonly} is not writable" in err, err
        assert _snapshot(root) == before
    finally:
        shutil.rmtree(root, ignore_errors=True)
