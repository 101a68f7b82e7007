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

    from transpert.summarize._contract import is_summary

    if isinstance(source, ad.AnnData):
        adata = source
    else:
        path = Path(source)
        if not path.exists():
            if _is_manifest_name(source):
                logger.info("%s: dataset %r of the manifest; summarising", what, source)
                return summarize_cells(str(source), pert_col=pert_col, control=control, threads=threads,
                                       show_progress=show_progress), str(source)
            raise TranspertInputError(f"{what}: no such file, and no dataset of that name in the manifest: {path}")
        from transpert._h5files import read_h5ad

        adata = read_h5ad(path, backed="r")
        if is_summary(adata):
            adata.file.close()
            return read_h5ad(path), None
        adata.file.close()
        logger.info("%s: %s holds cells; summarising", what, path)
        return summarize_cells(str(path), pert_col=pert_col, control=control, threads=threads,
                               show_progress=show_progress), str(path)
    if is_summary(adata):
        return adata, None
    logger.info("%s: summarising %d cells", what, adata.n_obs)
    return summarize_cells(adata, pert_col=pert_col, control=control, threads=threads,
                           show_progress=show_progress), adata


def _is_manifest_name(source) -> bool:
    from transpert.data.manifest import load_manifest

    try:
        return str(source) in load_manifest()
    except TranspertInputError:
        return False


def control_cells(cells, *, what: str, pert_col: str = "target_gene", control: str = "non-targeting"):
    """The control cells of ``cells`` (path, manifest name or AnnData), in memory, with ``obs[pert_col]``."""
    import anndata as ad

    if isinstance(cells, ad.AnnData):
        adata = cells
    elif not Path(cells).exists() and _is_manifest_name(cells):
        from transpert.data import read_cells

        adata = read_cells(str(cells))
    else:
        from transpert._h5files import read_h5ad

        adata = read_h5ad(cells, backed="r")
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


def median_library_size(cells, *, what: str, pert_col: str = "target_gene",
                        control: str = "non-targeting") -> float | None:
    """The median total count per cell of a raw-count file (path, manifest name or AnnData), read
    in row chunks; None when it is log1p. The summaries normalise a file to this target, so the
    writer must normalise that file's control cells to it too (not to the controls' own median).
    ``pert_col``/``control``: the file's perturbation column and control label (the file is
    opened in them, as the summaries open it)."""
    from transpert.data import open_cells
    from transpert.data.schema import CONTROL_LABEL, PERT_COL

    mapping = {}
    if pert_col != PERT_COL:
        mapping["pert_col"] = pert_col
    if control != CONTROL_LABEL:
        mapping["control_label"] = control
    with open_cells(cells, schema=mapping or None) as src:
        if src.scale != "counts":
            return None
        totals = np.concatenate([np.asarray(x.sum(axis=1)).ravel() for _, _, x in src.iter_chunks()])
    if totals.size == 0:
        raise TranspertInputError(f"{what}: no cells")
    return float(np.median(totals))


def target_controls(cells, *, whole_file_median: bool, pert_col: str = "target_gene",
                    control: str = "non-targeting", what: str = "target controls"):
    """``(control cells, target_sum)`` for :func:`transpert.predict.write_prediction`: the
    control cells of ``cells`` (path, manifest name or AnnData) and, with ``whole_file_median``
    (``cells`` is the file the target's summary was made from), the whole file's median library
    size their raw counts are normalised to, as that summary's were; else None (the controls'
    own median, or log1p cells)."""
    controls = control_cells(cells, what=what, pert_col=pert_col, control=control)
    return controls, (median_library_size(cells, what=what, pert_col=pert_col, control=control)
                      if whole_file_median else None)


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


# ------------------------------------------------------------------------------ a whole run
RUN_KEYS = {"output", "seed", "pert_col", "control", "threads", "references", "target_train",
            "target_controls", "counts", "genes", "real", "methods", "params", "max_cells", "cells", "move",
            "deg_threshold", "n_boot"}


def read_config(path) -> dict:
    """Read and check a run configuration (YAML); relative paths are relative to the file."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise TranspertInputError(f"{path}: config file not found")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise TranspertInputError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(config, dict):
        raise TranspertInputError(f"{path}: the config must be a mapping of keys to values")
    unknown = sorted(set(config) - RUN_KEYS)
    if unknown:
        raise TranspertInputError(f"{path}: unknown keys {unknown}; known: {sorted(RUN_KEYS)}")
    for key in ("target_train", "counts", "output"):
        if not config.get(key):
            raise TranspertInputError(f"{path}: key {key!r} is required")
    methods = config.get("methods") or list(METHODS)
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise TranspertInputError(f"{path}: unknown methods {bad}; known: {', '.join(METHODS)}")
    config["methods"] = list(methods)
    base = path.parent

    def resolve(value):
        if value is None:
            return None
        p = Path(str(value))
        if p.is_absolute():
            return str(p)
        return str(base / p) if (base / p).exists() or p.suffix else str(value)  # else a manifest name

    refs = config.get("references") or {}
    if isinstance(refs, list):
        from transpert.cli._common import reference_sources

        refs = reference_sources([str(r) for r in refs])
    config["references"] = {str(k): resolve(v) for k, v in refs.items()}
    for key in ("target_train", "target_controls", "counts", "genes", "real"):
        config[key] = resolve(config.get(key))
    config["output"] = str(base / config["output"]) if not Path(config["output"]).is_absolute() else config["output"]
    return config


def run_config(config_path, *, echo=print, show_progress: bool | None = None,
               overwrite: bool = False) -> dict:
    """``transpert run``: summaries, fit, predict, write cells, evaluate (when ``real`` is given),
    report; the config, the versions and the timings recorded next to the outputs.

    The run is written into a staging folder that becomes ``output`` only when the whole run
    succeeded (:func:`transpert._outputs.output_dir`): a failed run leaves nothing, and an
    existing non-empty ``output`` is refused unless ``overwrite`` (then replaced whole)."""
    from transpert._outputs import check_output_dir, output_dir

    cfg = read_config(config_path)
    final = check_output_dir(cfg["output"], overwrite=overwrite, option=f"{config_path}: output")
    with output_dir(final, overwrite=overwrite, option=f"{config_path}: output") as stage:
        result = _run_in(cfg, config_path, stage, final, echo=echo, show_progress=show_progress)
    result["out_dir"] = final
    return result


def _run_in(cfg: dict, config_path, out: Path, final: Path, *, echo, show_progress) -> dict:
    """The body of :func:`run_config`, writing into ``out`` (the staging folder of ``final``)."""
    import json
    import shutil
    import time

    from transpert._io import write_csv_atomic, write_h5ad_atomic
    from transpert.predict import read_counts, read_gene_list, write_prediction

    t0 = time.perf_counter()
    (out / "summaries").mkdir(parents=True, exist_ok=True)
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config_path, out / "config.yaml")
    kw = dict(pert_col=cfg.get("pert_col") or "target_gene", control=cfg.get("control") or "non-targeting",
              threads=cfg.get("threads"))
    seed = int(cfg.get("seed") or 0)
    timings = {}

    echo(f"[1/4] summaries: {len(cfg['references'])} reference lines and the target's training data ...")
    t = time.perf_counter()
    refs = {}
    for name, src in cfg["references"].items():
        refs[name], _ = read_input(src, what=f"reference {name!r} ({src})", show_progress=show_progress, **kw)
        write_h5ad_atomic(refs[name], out / "summaries" / f"{name}.h5ad")
    target, target_cells = read_input(cfg["target_train"], what=f"target_train ({cfg['target_train']})",
                                      show_progress=show_progress, **kw)
    write_h5ad_atomic(target, out / "summaries" / "target_train.h5ad")
    timings["summaries_s"] = time.perf_counter() - t

    counts = read_counts(cfg["counts"], pert_col=kw["pert_col"])
    perts = [p for p in counts[kw["pert_col"]] if p != kw["control"]]
    genes = read_gene_list(cfg["genes"]) if cfg.get("genes") else list(target.var_names)
    controls_src = cfg.get("target_controls") or target_cells
    if controls_src is None:
        raise TranspertInputError(f"{config_path}: target_train is a summary profile: give target_controls (cells)")
    controls, target_sum = target_controls(controls_src, whole_file_median=controls_src is target_cells,
                                           pert_col=kw["pert_col"], control=kw["control"])

    echo(f"[2/4] fit and predict {len(perts)} perturbations with {', '.join(cfg['methods'])} ...")
    t = time.perf_counter()
    predictions = {}
    params = cfg.get("params") or {}
    for method in cfg["methods"]:
        model, pred = fit_predict(method, refs, target, perts, params.get(method))
        write_h5ad_atomic(pred, out / "predictions" / f"{method}.pseudobulk.h5ad")
        if method == "transpert":
            model.save(out / "model")
        path = out / "predictions" / f"{method}.h5ad"
        max_cells = cfg.get("max_cells", 100_000)
        write_prediction(pred, controls, counts, genes, path, pert_col=kw["pert_col"], control=kw["control"],
                         max_cells=None if max_cells in (None, -1) else int(max_cells),
                         cells=cfg.get("cells"), move=cfg.get("move") or "pseudobulk",
                         deg_threshold=float(cfg.get("deg_threshold", 0.5)),
                         seed=seed, target_sum=target_sum, show_progress=show_progress)
        predictions[method] = str(path)
        echo(f"      {method}: {final / path.relative_to(out)}")
    timings["predict_s"] = time.perf_counter() - t

    board = None
    if cfg.get("real"):
        echo("[3/4] evaluating against the real cells ...")
        t = time.perf_counter()
        from transpert.evaluate import build_baseline

        base_path = out / "predictions" / "cell-eval_cell-mean_baseline.h5ad"
        if target_cells is None:
            raise TranspertInputError(f"{config_path}: evaluation needs the target's training cells "
                                      "(target_train as cells) for the cell-mean baseline")
        source = target_cells
        if isinstance(source, str) and not Path(source).exists():  # a manifest dataset
            from transpert.data import read_cells

            source = read_cells(source)
        base = build_baseline(source, counts, pert_col=kw["pert_col"], control=kw["control"])
        write_h5ad_atomic(base, base_path)
        board = evaluate_methods(cfg["real"], predictions, str(base_path), n_boot=int(cfg.get("n_boot") or 1000),
                                 seed=seed, show_progress=show_progress, **kw)
        write_csv_atomic(board.table, out / "leaderboard.csv", index=False)
        (out / "leaderboard.md").write_text(leaderboard_markdown(board.table) + "\n")
        for name, res in board.results.items():
            (out / "evaluation").mkdir(exist_ok=True)
            write_csv_atomic(res.results, out / "evaluation" / f"{name}_results.csv", index=False)
            write_csv_atomic(board.intervals[name], out / "evaluation" / f"{name}_intervals.csv", index=False)
        timings["evaluate_s"] = time.perf_counter() - t
    else:
        echo("[3/4] no 'real' in the config: evaluation skipped")
    echo("[4/4] recording the config, versions and timings ...")
    timings["total_s"] = time.perf_counter() - t0
    predictions = {m: str(final / Path(p).relative_to(out)) for m, p in predictions.items()}
    record = {"config": cfg, "versions": versions(), "timings": {k: round(v, 3) for k, v in timings.items()},
              "predictions": predictions}
    (out / "run.json").write_text(json.dumps(record, indent=2, default=str))
    return {"out_dir": final, "leaderboard": board, "predictions": predictions, "timings": timings}
