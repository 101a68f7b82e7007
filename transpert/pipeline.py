"""The steps every run shares (CLI ``predict``/``fit``/``run``, ``demo``, the accuracy benchmark):
choose a predictor by name, read inputs as summaries (summarising cells on the way), fit and
predict, evaluate several predictions against the same real cells, and print a leaderboard.

Scales: summaries and predictions are log1p (median-library-size normalised, natural log1p);
cells may be raw counts or log1p and are normalised on the way where needed.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import platform
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError

logger = logging.getLogger("transpert.pipeline")

#: every method ``--method`` accepts: the TransPert estimator, then the baselines
METHODS: tuple[str, ...] = ("transpert", "control", "cell-mean", "train-mean", "reference-mean",
                            "linear", "linear-transfer", "deg-frequency")
#: the three challenge metrics (cell-eval ``vcc`` profile) and the seven of the generalist ranking
VCC_METRICS = ("mae", "discrimination_score_l1", "overlap_at_N")
GENERALIST_METRICS = ("mae", "discrimination_score_l1", "overlap_at_N", "pearson_delta",
                      "de_spearman_lfc_sig", "pr_auc", "de_spearman_sig")


def make_predictor(method: str, params: dict | None = None):
    """A new, unfitted predictor ``method`` (see :data:`METHODS`) with ``params``."""
    params = dict(params or {})
    if method == "transpert":
        from transpert.transfer import TransPert

        try:
            return TransPert(**params)
        except TypeError as err:
            raise TranspertInputError(f"transpert: bad parameter ({err})") from None
    from transpert.baselines import BASELINES, get_baseline

    if method not in BASELINES:
        raise TranspertInputError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    try:
        return get_baseline(method, **params)
    except TypeError as err:
        raise TranspertInputError(f"{method}: bad parameter ({err})") from None


def summarize_cells(cells, *, pert_col: str = "target_gene", control: str = "non-targeting",
                    threads: int | None = None, show_progress: bool | None = None):
    """Summary profile of cells (path or AnnData; counts or log1p) via :func:`transpert.summarize.summarize`."""
    from transpert.summarize import summarize

    return summarize(cells, pert_col=pert_col, control=control, threads=threads, show_progress=show_progress)


def read_input(source, *, what: str, pert_col: str = "target_gene", control: str = "non-targeting",
               threads: int | None = None, show_progress: bool | None = None):
    """Read ``source`` (h5ad path or AnnData) as a summary profile.

    A summary profile (layers ``mean``/``delta``, var ``control_mean``) is used as it is; anything
    else is taken for cells and summarised. Returns ``(summary, cells)``, ``cells`` being the
    source itself when it held cells, else ``None``.
    """
    import anndata as ad

    from transpert.baselines import is_summary

    if isinstance(source, ad.AnnData):
        adata = source
    else:
        path = Path(source)
        if not path.exists():
            raise TranspertInputError(f"{what}: file not found: {path}")
        adata = ad.read_h5ad(path, backed="r")
        if is_summary(adata):
            adata.file.close()
            return ad.read_h5ad(path), None
        adata.file.close()
        logger.info("%s: %s holds cells; summarising", what, path)
        return summarize_cells(str(path), pert_col=pert_col, control=control, threads=threads,
                               show_progress=show_progress), str(path)
    if is_summary(adata):
        return adata, None
    logger.info("%s: summarising %d cells", what, adata.n_obs)
    return summarize_cells(adata, pert_col=pert_col, control=control, threads=threads,
                           show_progress=show_progress), adata


def control_cells(cells, *, what: str, pert_col: str = "target_gene", control: str = "non-targeting"):
    """The control cells of ``cells`` (path or AnnData), in memory, with ``obs[pert_col]``."""
    import anndata as ad

    if isinstance(cells, ad.AnnData):
        adata = cells
    else:
        adata = ad.read_h5ad(cells, backed="r")
    if pert_col not in adata.obs.columns:
        raise TranspertInputError(f"{what}: no obs column {pert_col!r} (columns: {list(adata.obs.columns)})")
    mask = (adata.obs[pert_col].astype(str) == control).to_numpy()
    if not mask.any():
        raise TranspertInputError(f"{what}: no control cells ({pert_col} == {control!r})")
    out = adata[mask]
    out = out.to_memory() if getattr(out, "isbacked", False) else out.copy()
    if getattr(adata, "isbacked", False):
        adata.file.close()
    return out


def versions() -> dict:
    """Versions of transpert and the packages its results depend on."""
    out = {"python": platform.python_version()}
    for name in ("transpert", "numpy", "scipy", "pandas", "anndata", "numba", "statsmodels",
                 "scikit-learn", "cell-eval", "pdex"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


# ------------------------------------------------------------------------------ evaluation
@dataclass
class Leaderboard:
    """Predictions evaluated on the same real cells.

    ``table``: one row per method (challenge score x100 with its bootstrap interval, the seven
    generalist metrics, their mean rank), best score first. ``results``: per method the
    per-perturbation results (generalist metrics); ``intervals``: per method the bootstrap table.
    """

    table: pd.DataFrame
    results: dict = field(default_factory=dict)
    intervals: dict = field(default_factory=dict)

    def to_text(self) -> str:
        return format_leaderboard(self.table)


@contextlib.contextmanager
def _quiet_empty_means():
    """A metric with no defined value (e.g. no perturbation with a real DE gene) averages to NaN:
    expected and reported as NaN, so numpy's 'Mean of empty slice' warning is not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        yield


def _evaluate_api():
    from transpert import evaluate as ev

    try:
        from transpert.evaluate import bootstrap_ci, generalist_ranking
    except ImportError:  # not re-exported yet
        from transpert.evaluate._bootstrap import bootstrap_ci, generalist_ranking
    return ev, bootstrap_ci, generalist_ranking


def evaluate_methods(real, predictions: dict, baseline, *, pert_col: str = "target_gene",
                     control: str = "non-targeting", threads: int | None = None, n_boot: int = 1000,
                     seed: int = 0, show_progress: bool | None = None) -> Leaderboard:
    """Evaluate every prediction (name -> h5ad path or AnnData of cells) against ``real``.

    Metrics are cell-eval 0.8.2's (:mod:`transpert.evaluate`); the challenge score is against
    ``baseline`` (the cell-mean baseline's cells, :func:`transpert.evaluate.build_baseline`) with
    a bootstrap interval over perturbations; the generalist mean rank is over the seven metrics.
    """
    from transpert._progress import track

    ev, bootstrap_ci, generalist_ranking = _evaluate_api()
    kw = dict(pert_col=pert_col, control=control, threads=threads)
    real_p = ev.prepare(real, "real", **kw)
    base_p = ev.prepare(baseline, "baseline", **kw)
    base_vcc = ev.evaluate_prepared(real_p, base_p, metrics=VCC_METRICS, **kw)
    rows, results, intervals = [], {}, {}
    for name, pred in track(predictions.items(), len(predictions), "evaluating", "prediction", show_progress):
        pred_p = ev.prepare(pred, f"prediction {name}", **kw)
        vcc = ev.evaluate_prepared(real_p, pred_p, metrics=VCC_METRICS, **kw)
        gen = ev.evaluate_prepared(real_p, pred_p, metrics=GENERALIST_METRICS, **kw)
        vcc.baseline = base_vcc
        vcc.score = ev.score(vcc.means(), base_vcc.means())
        with _quiet_empty_means():
            ci = bootstrap_ci(vcc, n_boot=n_boot, seed=seed)
            ci_gen = bootstrap_ci(gen, n_boot=n_boot, seed=seed)
        avg = ci.set_index("metric").loc["score:avg_score"]
        rows.append({"method": name, "score": 100 * avg["mean"], "score_ci_low": 100 * avg["ci_low"],
                     "score_ci_high": 100 * avg["ci_high"]})
        results[name] = gen
        intervals[name] = pd.concat([ci, ci_gen[~ci_gen["metric"].isin(ci["metric"])]], ignore_index=True)
        logger.info("evaluated %s: score %.2f", name, 100 * avg["mean"])
    with _quiet_empty_means():
        ranking = generalist_ranking(results, metrics=GENERALIST_METRICS).set_index("prediction")
    table = pd.DataFrame(rows).set_index("method")
    table = table.join(ranking[list(GENERALIST_METRICS) + ["mean_rank"]])
    table = table.sort_values(["score", "mean_rank"], ascending=[False, True], kind="stable").reset_index()
    return Leaderboard(table=table, results=results, intervals=intervals)


_SHORT = {"discrimination_score_l1": "PDS", "overlap_at_N": "DES", "mae": "MAE",
          "pearson_delta": "pearson_d", "de_spearman_lfc_sig": "sp_lfc_sig", "pr_auc": "pr_auc",
          "de_spearman_sig": "sp_nsig", "mean_rank": "mean_rank"}


def format_leaderboard(table: pd.DataFrame) -> str:
    """A fixed-width text leaderboard (score x100 with its 95% bootstrap interval)."""
    cols = ["method", "score", "95% CI"] + [_SHORT[c] for c in GENERALIST_METRICS] + ["mean_rank"]
    lines = []
    for _, r in table.iterrows():
        cells = [str(r["method"]), f"{r['score']:.2f}", f"[{r['score_ci_low']:.2f}, {r['score_ci_high']:.2f}]"]
        cells += [("nan" if pd.isna(r[m]) else f"{r[m]:.3f}") for m in GENERALIST_METRICS]
        cells.append(f"{r['mean_rank']:.2f}")
        lines.append(cells)
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(cols)]
    fmt = lambda row: "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths)))  # noqa: E731
    return "\n".join([fmt(cols), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines])


def leaderboard_markdown(table: pd.DataFrame) -> str:
    """The leaderboard as a Markdown table."""
    head = ["method", "score (x100)", "95% CI"] + [_SHORT[c] for c in GENERALIST_METRICS] + ["mean rank"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        vals = [f"`{r['method']}`", f"{r['score']:.2f}", f"[{r['score_ci_low']:.2f}, {r['score_ci_high']:.2f}]"]
        vals += [("nan" if pd.isna(r[m]) else f"{r[m]:.3f}") for m in GENERALIST_METRICS]
        vals.append(f"{r['mean_rank']:.2f}")
        out.append("| " + " | ".join(vals) + " |")
    return "\n".join(out)


def fit_predict(method: str, references: dict, target_train, perturbations, params: dict | None = None):
    """Fit ``method`` on summaries and predict ``perturbations``; returns ``(predictor, prediction)``."""
    predictor = make_predictor(method, params)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        predictor.fit(references, target_train)
        prediction = predictor.predict(list(perturbations))
    return predictor, prediction


def split_perturbations(perturbations, n_heldout: int | float, seed: int = 0) -> tuple[list[str], list[str]]:
    """Seeded split into (training, held-out); ``n_heldout`` a count or a fraction."""
    perts = sorted(map(str, perturbations))
    n = int(round(n_heldout * len(perts))) if isinstance(n_heldout, float) else int(n_heldout)
    if not 1 <= n < len(perts) - 1:
        raise TranspertInputError(f"cannot hold out {n_heldout!r} of {len(perts)} perturbations "
                                  "(need at least one held out and two for training)")
    rng = np.random.default_rng(seed)
    held = set(rng.choice(perts, n, replace=False))
    return [p for p in perts if p not in held], [p for p in perts if p in held]
