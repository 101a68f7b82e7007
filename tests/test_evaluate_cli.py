"""The evaluate / baseline / rank / prep commands, end to end on small files."""

from __future__ import annotations

import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from _evaluate_synth import CONTROL, make_pair, unpack_vcc
from transpert.cli import main

pl = pytest.importorskip("polars")


@pytest.fixture
def files(tmp_path):
    real, pred = make_pair(8)
    train, _ = make_pair(9)
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    train.write_h5ad(tmp_path / "train.h5ad")
    counts = real.obs["target_gene"].value_counts().rename_axis("target_gene").reset_index(name="n_cells")
    counts.to_csv(tmp_path / "counts.csv", index=False)
    return tmp_path


def test_baseline_then_evaluate(files, capsys):
    assert main(["baseline", "--train", str(files / "train.h5ad"), "--counts",
                 str(files / "counts.csv"), "-o", str(files / "base.h5ad")]) == 0
    out = files / "out"
    assert main(["evaluate", "--real", str(files / "real.h5ad"), "--pred", str(files / "pred.h5ad"),
                 "--baseline", str(files / "base.h5ad"), "--profile", "vcc", "-o", str(out),
                 "--threads", "1", "--n-boot", "100"]) == 0
    results = pl.read_csv(out / "results.csv")
    assert results.columns == ["perturbation", "overlap_at_N", "mae", "discrimination_score_l1"]
    score = pl.read_csv(out / "score.csv")
    assert score.columns == ["suite", "metric", "from_baseline"]
    assert set(score["suite"].to_list()) == {"vcc2025"}  # the default: the 2025 leaderboard's scorer
    import json

    assert json.loads((out / "run_params.json").read_text())["reference"] == \
        "cell-eval 0.6.6 + pdex 0.1.27"
    assert "Suite `vcc2025`" in (out / "report.md").read_text()
    assert set(pl.read_csv(out / "flags.csv")["suite"].to_list()) == {"vcc2025"}
    assert score["metric"][-1] == "avg_score"
    assert score["from_baseline"][-1] == pytest.approx(float(np.mean(score["from_baseline"].to_numpy()[:-1])))
    agg = pl.read_csv(out / "agg_results.csv")
    assert agg["statistic"].to_list()[2] == "mean"
    for name in ("flags.csv", "ci.csv", "report.md", "report.html", "real_de.h5ad", "pred_de.h5ad"):
        assert (out / name).exists(), name
    assert "avg_score" in capsys.readouterr().out


def test_evaluate_input_error_exit_code(files, capsys):
    pred = ad.read_h5ad(files / "pred.h5ad")
    pred[pred.obs["target_gene"] != CONTROL].copy().write_h5ad(files / "noctrl.h5ad")
    assert main(["evaluate", "--real", str(files / "real.h5ad"), "--pred",
                 str(files / "noctrl.h5ad"), "-o", str(files / "o")]) == 2
    assert "must contain control cells" in capsys.readouterr().err
    assert not (files / "o" / "results.csv").exists()


def test_evaluate_suite_option(files, capsys):
    out = files / "o082"
    assert main(["evaluate", "--real", str(files / "real.h5ad"), "--pred", str(files / "pred.h5ad"),
                 "--suite", "cell-eval-0.8.2", "-o", str(out), "--threads", "1",
                 "--n-boot", "0", "--no-report"]) == 0
    assert "suite cell-eval-0.8.2" in capsys.readouterr().out
    import json

    assert json.loads((out / "run_params.json").read_text())["suite"] == "cell-eval-0.8.2"
    assert main(["evaluate", "--real", str(files / "real.h5ad"), "--pred", str(files / "pred.h5ad"),
                 "--suite", "vcc1999", "-o", str(files / "bad")]) == 2
    assert "unknown suite 'vcc1999'" in capsys.readouterr().err
    assert not (files / "bad").exists()


def test_unavailable_suite_is_refused(files, capsys):
    from transpert.evaluate._suites import SUITES

    if SUITES["vcc2026"].available:
        pytest.skip("the vcc2026 suite is available in this installation")
    assert main(["evaluate", "--real", str(files / "real.h5ad"), "--pred", str(files / "pred.h5ad"),
                 "--suite", "vcc2026", "-o", str(files / "bad")]) == 2
    assert "registered but not available" in capsys.readouterr().err


def test_cell_eval_ranking_refuses_a_suite_with_its_own_metrics(files, capsys):
    """rank --suite vcc2026 goes to the vcc2026 package (tests/test_vcc2026_rank.py); the
    cell-eval leaderboard refuses that suite, and --real-bundle belongs to it."""
    from transpert._errors import TranspertInputError
    from transpert.evaluate._suites import SUITES
    from transpert.evaluate.leaderboard import evaluate_methods

    if not SUITES["vcc2026"].available:
        pytest.skip("the vcc2026 suite is not installed")
    with pytest.raises(TranspertInputError, match="has its own metrics"):
        evaluate_methods(str(files / "real.h5ad"), {"p": str(files / "pred.h5ad")},
                         str(files / "pred.h5ad"), suite="vcc2026")
    assert main(["rank", "--real", str(files / "real.h5ad"), str(files / "pred.h5ad"),
                 "--real-bundle", str(files), "-o", str(files / "rk26")]) == 2
    assert "--real-bundle belongs to --suite vcc2026" in capsys.readouterr().err
    assert not (files / "rk26").exists()


def test_rank(files, capsys):
    _, other = make_pair(10)
    other.write_h5ad(files / "other.h5ad")
    shutil.copy(files / "real.h5ad", files / "oracle.h5ad")
    assert main(["rank", "--real", str(files / "real.h5ad"), str(files / "pred.h5ad"),
                 str(files / "other.h5ad"), str(files / "oracle.h5ad"), "-o", str(files / "rk"),
                 "--threads", "1", "--n-boot", "50"]) == 0
    ranking = pd.read_csv(files / "rk" / "ranking.csv")
    assert ranking["prediction"].iloc[0] == "oracle"
    assert set(ranking["suite"]) == {"vcc2025"}
    assert (files / "rk" / "ranking.md").exists() and (files / "rk" / "paired_top2.csv").exists()
    page = (files / "rk" / "report.html").read_text()
    assert "<h1>Generalist ranking</h1>" in page and "<td>oracle</td>" in page


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd command needed for cell-eval prep")
def test_prep_matches_cell_eval(files):
    from cell_eval._cli._prep import strip_anndata

    genes = list(ad.read_h5ad(files / "pred.h5ad").var_names)
    shuffled = list(reversed(genes))  # prep must reorder to the gene list's order
    pd.Series(shuffled).to_csv(files / "genes.csv", index=False, header=False)
    assert main(["prep", str(files / "pred.h5ad"), "--genes", str(files / "genes.csv"),
                 "-o", str(files / "mine.vcc")]) == 0
    strip_anndata(ad.read_h5ad(files / "pred.h5ad"), output_path=str(files / "ce.vcc"),
                  genelist=shuffled, encoding=32)

    mine, ce = unpack_vcc(files / "mine.vcc", files / "m"), unpack_vcc(files / "ce.vcc", files / "c")
    assert list(mine.var_names) == list(ce.var_names) == shuffled
    assert list(mine.obs_names) == list(ce.obs_names)
    assert list(mine.obs.columns) == list(ce.obs.columns)
    assert (mine.obs["target_gene"].astype(str) == ce.obs["target_gene"].astype(str)).all()
    assert mine.X.dtype == ce.X.dtype == np.float32
    np.testing.assert_array_equal(mine.X.toarray(), ce.X.toarray())


def test_prep_errors(files, capsys):
    pd.Series(["A", "B"]).to_csv(files / "bad.csv", index=False, header=False)
    assert main(["prep", str(files / "pred.h5ad"), "--genes", str(files / "bad.csv"),
                 "-o", str(files / "x.vcc")]) == 2
    assert "genes differ from the gene list" in capsys.readouterr().err
    assert not (files / "x.vcc").exists()


def test_prep_rejects_an_empty_gene_list(tmp_path):
    from transpert._errors import TranspertInputError
    from transpert.data.tables import read_gene_list

    empty = tmp_path / "genes.csv"
    empty.write_text("")
    with pytest.raises(TranspertInputError, match="gene list is empty"):
        read_gene_list(empty)
