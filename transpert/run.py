"""``transpert run``: one YAML config, the whole pipeline (summaries, fit and predict every
method, write challenge-format cells, evaluate when ``real`` is given), with the config, the
package versions and the timings recorded next to the outputs.

Scales: summaries and predictions are log1p (median-library-size normalised, natural log1p);
cells may be raw counts or log1p and are normalised on the way where needed.
"""

from __future__ import annotations

from pathlib import Path

from transpert._errors import TranspertInputError
from transpert.data.schema import CONTROL_LABEL, PERT_COL
from transpert.methods import METHODS

RUN_KEYS = {"output", "seed", "pert_col", "control", "threads", "references", "target_train",
            "target_controls", "counts", "genes", "real", "methods", "params", "max_cells", "cells", "move",
            "deg_threshold", "n_boot", "suite"}


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
    if config.get("suite") is not None:
        from transpert.evaluate._suites import get_suite

        get_suite(config["suite"])  # an unknown or unavailable suite fails before any work
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
        from transpert.data.tables import reference_sources

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
    from transpert._versions import versions
    from transpert.data.controls import target_controls
    from transpert.data.tables import read_counts, read_gene_list
    from transpert.evaluate.leaderboard import evaluate_methods, leaderboard_markdown
    from transpert.methods import fit_predict
    from transpert.predict import write_prediction
    from transpert.summarize import read_input

    t0 = time.perf_counter()
    (out / "summaries").mkdir(parents=True, exist_ok=True)
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config_path, out / "config.yaml")
    kw = dict(pert_col=cfg.get("pert_col") or PERT_COL, control=cfg.get("control") or CONTROL_LABEL,
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
                                 seed=seed, show_progress=show_progress, suite=cfg.get("suite"), **kw)
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
