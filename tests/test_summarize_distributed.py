"""Distributed summaries on a LocalCluster of 2 worker processes: the same numbers as the
single-machine engine (which tests/test_summarize.py checks against scipy), on awkward data,
and after a worker dies mid-run."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

distributed = pytest.importorskip("distributed")


from transpert._errors import TranspertInputError  # noqa: E402
from transpert.data.schema import CONTROL_LABEL, PERT_COL  # noqa: E402
from transpert.summarize import summarize  # noqa: E402
from transpert.summarize import _distributed  # noqa: E402
from helpers_summaries import awkward_cells as _awkward  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


def _assert_same(a, b):
    assert list(a.obs_names) == list(b.obs_names)
    assert list(a.var_names) == list(b.var_names)
    assert set(a.layers) == set(b.layers)
    for name in a.layers:
        np.testing.assert_array_equal(a.layers[name], b.layers[name], err_msg=name)
    pd.testing.assert_frame_equal(a.var, b.var, check_exact=True)
    pd.testing.assert_frame_equal(a.obs, b.obs, check_exact=True)
    ua, ub = a.uns["transpert"], b.uns["transpert"]
    for key in ("normalization", "checksum", "control_n_cells", "reference_n_cells", "n_cells_unlabelled"):
        assert ua[key] == ub[key], key


@pytest.mark.parametrize("scale,dense", [("counts", False), ("log1p", False), ("counts", True)])
def test_equal_to_single_machine(tmp_path, client, scale, dense):
    path = tmp_path / "cells.h5ad"
    _awkward(scale, dense=dense).write_h5ad(path)
    single = summarize(str(path))
    dist = summarize(str(path), scheduler=client)
    _assert_same(single, dist)
    assert dist.uns["transpert"]["engine"]["workers"] == 2
    assert single.uns["transpert"]["normalization"]["input_scale"] == scale


def test_one_shard_per_group_and_other_reference(tmp_path, client, monkeypatch):
    path = tmp_path / "cells.h5ad"
    _awkward("log1p", seed=3).write_h5ad(path)
    # every group its own shard, whatever the budget
    monkeypatch.setattr(_distributed, "SHARD_BYTES_PER_ENTRY", 2**40)
    for reference in (None, "P3"):
        single = summarize(str(path), reference=reference)
        dist = summarize(str(path), scheduler=client, reference=reference)
        _assert_same(single, dist)
        # 9 groups but the reference (and the control: its own task when it is not the reference)
        assert dist.uns["transpert"]["engine"]["shards"] == (8 if reference is None else 7)


def test_plan_shards_balances_whole_groups():
    weights = np.array([50, 1, 30, 20, 10, 0, 5], dtype=float)
    shards = _distributed.plan_shards(weights, [0, 1, 2, 3, 4, 6], max_weight=60, min_shards=2)
    assert sorted(g for s in shards for g in s) == [0, 1, 2, 3, 4, 6]
    loads = [weights[s].sum() for s in shards]
    assert len(shards) == 2 and max(loads) == 60  # 116 entries: 50+10 / 30+20+5+1
    assert len(_distributed.plan_shards(weights, [0, 2], max_weight=10, min_shards=1)) == 2


def test_refused_inputs(tmp_path, client):
    path = tmp_path / "cells.h5ad"
    adata = _awkward("counts")
    adata.write_h5ad(path)
    with pytest.raises(TranspertInputError, match="rest"):
        summarize(str(path), scheduler=client, reference="rest")
    with pytest.raises(TranspertInputError, match="shared storage"):
        summarize(adata, scheduler=client)
    with pytest.raises(TranspertInputError, match="local:N"):
        summarize(str(path), scheduler="local:0")


def test_worker_killed_mid_run(tmp_path, monkeypatch):
    path = tmp_path / "cells.h5ad"
    _awkward("counts", seed=5).write_h5ad(path)
    single = summarize(str(path))
    monkeypatch.setattr(_distributed, "SHARD_BYTES_PER_ENTRY", 2**40)  # 8 shards
    placed = []
    killed = []
    original = _distributed._place

    def place_then_kill(acc, codes, result):
        original(acc, codes, result)
        placed.append(codes)
        if len(placed) == 2:  # the reference and one shard are in: kill a worker holding work
            c = distributed.get_client()
            victim = sorted(c.scheduler_info()["workers"])[0]
            killed.append(victim)
            c.run(os._exit, 1, workers=[victim], on_error="ignore")

    monkeypatch.setattr(_distributed, "_place", place_then_kill)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        before = set(c.scheduler_info()["workers"])
        dist = summarize(str(path), scheduler=c)
        c.wait_for_workers(2, timeout=60)
        after = set(c.scheduler_info()["workers"])
    assert killed and killed[0] in before and killed[0] not in after
    assert len(placed) == 1 + dist.uns["transpert"]["engine"]["shards"]
    _assert_same(single, dist)


def test_scale_checked_by_the_tasks_falls_back_to_the_scan(tmp_path, client, monkeypatch):
    """A file taken for log1p from its first rows is checked by the tasks; counts (or invalid
    values) send it to the scan, with the single machine's result or error."""
    path = tmp_path / "cells.h5ad"
    _awkward("counts", seed=2).write_h5ad(path)
    monkeypatch.setattr(_distributed, "_first_rows_look_log1p", lambda cells: True)
    _assert_same(summarize(str(path)), summarize(str(path), scheduler=client))
    bad = _awkward("log1p", seed=2)
    bad.X.data[-1] = -0.5
    bad.write_h5ad(path)
    with pytest.raises(TranspertInputError, match="negative"):
        summarize(str(path), scheduler=client)


def test_run_config_accepts_a_scheduler(tmp_path):
    from transpert.run import _cluster, read_config

    (tmp_path / "c.yaml").write_text("output: out\ntarget_train: t.h5ad\ncounts: c.csv\nscheduler: local:1\n")
    cfg = read_config(tmp_path / "c.yaml")
    assert cfg["scheduler"] == "local:1"
    with _cluster(None, 1) as none:
        assert none is None
    with _cluster(cfg["scheduler"], 1) as c:
        assert len(c.scheduler_info()["workers"]) == 1


def test_planned_worker_memory_counts_table_read_window_and_results():
    # a challenge-like file: 38k control cells of 1,600 entries, 150 groups of ~1,200 cells;
    # a 2 GiB budget. Sizing shards by their entries alone (the former rule) planned workers
    # above the budget once the reference table, the read window, the rank-sum blocks and the
    # groups' results are added; the plan now keeps every worker under it.
    from transpert.data._rows import WINDOW_ENTRIES

    budget, n_vars, per_entry = 2 * 2**30, 18_080, 24
    rng = np.random.default_rng(0)
    entries = np.concatenate([[38_000 * 1_600], rng.integers(1_000, 1_400, 150) * 1_600]).astype(float)
    others = list(range(1, 151))

    def worker_bytes(shard):  # what a shard's worker holds, summed here term by term
        table = 8 * entries[0] + 8 * (n_vars + 1)  # uint32 key + int32 count per reference entry
        read = 20 * WINDOW_ENTRIES  # window values + indices, int64 positions, gathered copies
        results = len(shard) * n_vars * 44 * 2  # sums, nonzero, sums32, raw sums, U, p; serialised
        return per_entry * entries[shard].sum() + table + read + budget / 4 + results

    old = _distributed.plan_shards(entries, others, budget / per_entry, 2)
    assert max(worker_bytes(s) for s in old) > budget
    shards, planned = _distributed.plan_worker_shards(entries, others, 0, n_vars, budget=budget,
                                                      per_entry=per_entry, de=True, dense=False,
                                                      min_shards=2)
    assert sorted(g for s in shards for g in s) == others
    assert max(worker_bytes(s) for s in shards) <= budget
    np.testing.assert_allclose(planned, [worker_bytes(s) for s in shards], rtol=1e-12)
    # a budget below the fixed part is refused with the size it needs
    with pytest.raises(TranspertInputError, match="memory_budget"):
        _distributed.plan_worker_shards(entries, others, 0, n_vars, budget=512 * 2**20, per_entry=per_entry,
                                        de=True, dense=False, min_shards=2)


@pytest.mark.parametrize("scale", ["counts", "log1p"])
def test_reference_table_within_its_planned_bytes(tmp_path, scale):
    # the table a worker really builds is no larger than the plan's bound for it
    from transpert.data import open_cells
    from transpert.summarize._shards import FileSpec, reference_task

    path = tmp_path / "cells.h5ad"
    a = _awkward(scale, seed=5)
    a.write_h5ad(path)
    cells = open_cells(str(path))
    rows = np.flatnonzero(a.obs[PERT_COL].astype(str).to_numpy() == CONTROL_LABEL)
    target = float(np.median(np.asarray(a.X.sum(axis=1)).ravel())) if scale == "counts" else None
    spec = FileSpec(path=str(path), key="X", n_vars=a.n_vars, scale=scale, target_sum=target)
    table = reference_task(spec, rows, de=True)["table"]
    ref_entries = int(sp.csr_matrix(a.X)[rows].nnz)
    bound = _distributed.TABLE_BYTES_PER_ENTRY * ref_entries + 8 * (a.n_vars + 1)
    assert 0 < sum(x.nbytes for x in table) <= bound
    cells.close()


@pytest.mark.parametrize("scale,dense,kw,one_per_group", [
    ("counts", False, {}, False),
    ("log1p", False, {"fdr": "table"}, True),
    ("counts", True, {"reference": "P3", "log2fc": "clipped"}, False),
])
def test_written_as_shards_arrive(tmp_path, client, monkeypatch, scale, dense, kw, one_per_group):
    """summarize(..., out=) on a cluster: the file equals the in-memory summary written whole
    (itself equal to the single machine's), and the driver never holds every group's results."""
    from helpers_summaries import assert_same_h5
    from transpert.summarize import read_summary, write_summary
    from transpert.summarize import _writer

    path = tmp_path / "cells.h5ad"
    _awkward(scale, seed=3, dense=dense).write_h5ad(path)
    if one_per_group:
        monkeypatch.setattr(_distributed, "SHARD_BYTES_PER_ENTRY", 2**40)
    single = summarize(str(path), **kw)
    write_summary(summarize(str(path), scheduler=client, **kw), tmp_path / "whole.h5ad")

    class NoWholeResults:
        @staticmethod
        def new(*args, **kwargs):
            raise AssertionError("the driver allocated every group's results")

    monkeypatch.setattr(_distributed, "Accumulators", NoWholeResults)
    monkeypatch.setattr(_writer, "BLOCK_BYTES", 1)  # one row at a time
    out = summarize(str(path), scheduler=client, out=tmp_path / "streamed.h5ad", **kw)
    assert_same_h5(tmp_path / "whole.h5ad", out)
    _assert_same(single, read_summary(out))


def test_written_file_after_a_worker_dies(tmp_path, monkeypatch):
    from helpers_summaries import assert_same_h5
    from transpert.summarize import write_summary
    from transpert.summarize._writer import SummaryFileSink

    path = tmp_path / "cells.h5ad"
    _awkward("counts", seed=7).write_h5ad(path)
    write_summary(summarize(str(path)), tmp_path / "single.h5ad")
    monkeypatch.setattr(_distributed, "SHARD_BYTES_PER_ENTRY", 2**40)  # 8 shards
    placed, killed = [], []
    original = SummaryFileSink.place

    def place_then_kill(self, codes, result):
        original(self, codes, result)
        placed.append(list(codes))
        if len(placed) == 2:
            c = distributed.get_client()
            victim = sorted(c.scheduler_info()["workers"])[0]
            killed.append(victim)
            c.run(os._exit, 1, workers=[victim], on_error="ignore")

    monkeypatch.setattr(SummaryFileSink, "place", place_then_kill)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        out = summarize(str(path), scheduler=c, out=tmp_path / "dist.h5ad")
    assert killed and len(placed) == 9
    # the same file but for the engine's facts (scheduler, workers, shards) in uns
    assert_same_h5(tmp_path / "single.h5ad", out, skip=("uns/transpert",))


def test_written_file_when_the_scale_check_starts_over(tmp_path, client, monkeypatch):
    """Counts taken for log1p from the first rows: the tasks' check fails, the sink starts
    over with the counts layout and the file is the single machine's."""
    from transpert.summarize import read_summary

    path = tmp_path / "cells.h5ad"
    _awkward("counts", seed=2).write_h5ad(path)
    monkeypatch.setattr(_distributed, "_first_rows_look_log1p", lambda cells: True)
    out = summarize(str(path), scheduler=client, out=tmp_path / "out.h5ad")
    written = read_summary(out)
    assert "counts_sum" in written.layers
    _assert_same(summarize(str(path)), written)
