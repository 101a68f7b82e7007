"""Zero-shot TransPert written as raw counts (``transpert predict --format counts`` with a
controls-only target) and scored by transpert's vcc2026 suite, end to end on a small simulation."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np

from transpert.data.schema import CONTROL_LABEL, PERT_COL

PARAMS = ["--param", 'temperatures=[0.05, "inf"]', "--param", "specific_scales=[0.5, 1.0]",
          "--param", "deg_max_rows=10000"]


def test_zero_shot_counts_file_is_scored_by_the_vcc2026_suite(tmp_path, capsys):
    from transpert.cli import main
    from transpert.data.simulate import simulate_atlas
    from transpert.evaluate.vcc2026 import evaluate_vcc2026
    from transpert.evaluate.vcc2026._config import SCORED

    atlas = simulate_atlas(seed=2, n_reference_lines=3, similarity=(0.9, 0.6, 0.3), n_genes=200,
                           n_perturbations=6, cells_per_perturbation=40, n_control_cells=160,
                           effect_scale=3.0)
    refs = []
    for name in atlas.reference_lines:
        atlas.lines[name].write_h5ad(tmp_path / f"{name}.h5ad")
        refs.append(f"{name}={tmp_path / f'{name}.h5ad'}")
    target = atlas.lines[atlas.target_line]
    labels = target.obs[PERT_COL].astype(str).to_numpy()
    ctrl_rows = np.flatnonzero(labels == CONTROL_LABEL)
    visible = np.zeros(labels.size, dtype=bool)
    visible[ctrl_rows[::2]] = True
    target[visible].copy().write_h5ad(tmp_path / "controls_only.h5ad")
    real = target[~visible].copy()
    real.obs = real.obs[[PERT_COL]]
    real.write_h5ad(tmp_path / "real.h5ad")
    counts = real.obs[PERT_COL].astype(str).value_counts().drop(CONTROL_LABEL)
    counts.rename_axis(PERT_COL).rename("n_cells").reset_index().to_csv(tmp_path / "counts.csv", index=False)

    scores = {}
    for method in ("transpert", "control"):
        out = tmp_path / f"{method}.h5ad"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rc = main(["predict", "--method", method, "--reference", *refs,
                       "--target-train", str(tmp_path / "controls_only.h5ad"),
                       "--counts", str(tmp_path / "counts.csv"), "--format", "counts", "-o", str(out),
                       *(PARAMS if method == "transpert" else [])])
        assert rc == 0, capsys.readouterr().err
        assert "zero-shot" in capsys.readouterr().out
        pred = ad.read_h5ad(out)
        assert list(pred.var_names) == list(target.var_names)
        assert np.array_equal(pred.X.data, np.round(pred.X.data)) and pred.X.data.min() >= 0
        n = pred.obs[PERT_COL].astype(str).value_counts()
        assert all(n[p] == k for p, k in counts.items())
        ctrl = pred.X[(pred.obs[PERT_COL].astype(str) == CONTROL_LABEL).to_numpy()].toarray()
        assert np.array_equal(ctrl, target.X[visible].toarray())  # the visible controls, raw

        result = evaluate_vcc2026(out, tmp_path / "real.h5ad", tmp_path / f"eval_{method}", anchor=True)
        means = result.agg.set_index("statistic").loc["mean"]
        assert all(np.isfinite(means[m]) for m in SCORED), means
        per = result.results.pivot(index="perturbation", columns="metric", values="value")
        assert sorted(per.index) == sorted(counts.index)
        assert np.isfinite(per["pds_cosine"]).all()
        assert np.isfinite(result.avg_score)
        assert (tmp_path / f"eval_{method}" / "score.csv").exists()
        scores[method] = (float(means["pds_cosine"]), result.avg_score)
    # the references' effects carry the target's (similarity 0.9): the transferred prediction
    # scores above the unchanged one (measured: 0.13 vs -0.45)
    assert scores["transpert"][1] > scores["control"][1] + 0.2, scores
