"""store/layout.py: one spelling of every place under a store, for paths and URIs alike."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from equisweep.store import layout

NAMES = st.text(st.sampled_from("abcxyz019-_"), min_size=1, max_size=12)


@given(bucket=NAMES, prefix=st.lists(NAMES, max_size=3), sweep=NAMES,
       scheme=st.sampled_from(["s3", "gs"]))
def test_an_object_store_stays_a_uri(bucket, prefix, sweep, scheme):
    store = "/".join([f"{scheme}://{bucket}", *prefix])
    assert layout.is_uri(store) and layout.is_object_store(store)
    assert layout.local_path(store) is None
    assert layout.tune_dir(store) == f"{store}/_tune"
    assert layout.tune_dir(store + "/") == f"{store}/_tune"  # one slash, however given
    assert layout.log_file(store, "x.log") == f"{store}/_logs/x.log"
    assert layout.report_dir(store, sweep) == os.path.join(".", f"report-{sweep}")


@given(parts=st.lists(NAMES, min_size=1, max_size=3), sweep=NAMES,
       spelling=st.sampled_from(["relative", "absolute", "file://"]))
def test_a_local_store_is_one_absolute_folder_however_spelled(tmp_path_factory, parts, sweep,
                                                               spelling):
    base = Path.cwd().joinpath(*parts)
    store = {"relative": os.path.join(*parts), "absolute": str(base),
             "file://": f"file://{base}"}[spelling]
    assert layout.is_uri(store) == (spelling == "file://")
    assert not layout.is_object_store(store)
    assert layout.local_path(store) == base
    assert layout.log_file(store, "x.log") == base / "_logs" / "x.log"
    assert layout.report_dir(store, sweep) == os.path.join(str(base), "reports", sweep)
    expected_tune = f"{store}/_tune" if spelling == "file://" else str(base / "_tune")
    assert layout.tune_dir(store) == expected_tune


@pytest.mark.parametrize("folder", [layout.driver_dir, layout.forks_dir])
def test_sweep_folders_sit_under_the_filesystem_root(folder):
    got = folder("bucket/prefix", "sw")
    assert got.startswith("bucket/prefix/_") and got.endswith("sw")
