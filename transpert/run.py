"""``transpert run``: one YAML config, the whole pipeline (summaries, fit and predict every
method, write challenge-format cells, evaluate when ``real`` is given), with the config, the
package versions and the timings recorded next to the outputs.

Zero-shot: with ``zero_shot: true``, or when ``target_train`` holds only control cells (detected),
the target has no training perturbation: every method is replaced by its zero-shot counterpart
(:func:`transpert.methods.zero_shot_method`; default methods: every zero-shot method), fitted on
the references and the target's control cells, and the run says so. The evaluation's baseline
is then ``zero-shot-mean-response`` (the reference lines' mean perturbation response), and a
fitted zero-shot TransPert is saved to ``model/`` as the few-shot one is.

Scales: summaries and predictions are log1p (median-library-size normalised, natural log1p);
cells may be raw counts or log1p and are normalised on the way where needed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

from transpert._errors import TranspertInputError
from transpert._io import write_csv_atomic, write_h5ad_atomic
from transpert._versions import versions
from transpert.data.controls import target_controls
from transpert.data.schema import CONTROL_LABEL, PERT_COL
from transpert.data.tables import read_counts, read_gene_list
from transpert.evaluate._html import write_html_report
from transpert.evaluate.leaderboard import evaluate_methods, leaderboard_markdown
from transpert.methods import METHODS, fit_predict
from transpert.predict import write_prediction
from transpert.summarize import read_input, summary_on_disk
from transpert.summarize._contract import FIT_LAYERS

RUN_KEYS = {"output", "seed", "pert_col", "control", "threads", "references", "target_train",
            "target_controls", "counts", "genes", "real", "methods", "params", "max_cells", "cells", "move",
            "deg_threshold", "n_boot", "zero_shot", "scheduler", "suite"}


def read_config(path) -> dict:
    """Read and check a run configuration (YAML); relative paths are relative to the file.

    Parameters
    ----------
    path
        The YAML file.

    Returns
    -------
    dict
        The config with defaults filled in (``methods``: every method when absent) and paths
        resolved; a value that is neither an existing path nor has a file suffix is kept as a
        manifest dataset name.

    Raises
    ------
    TranspertInputError
        For a missing file, invalid YAML, an unknown key or method, or a missing required key
        (``target_train``, ``counts``, ``output``).
    """
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
    config["methods_given"] = bool(config.get("methods"))
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
               overwrite: bool = False, scheduler=None) -> dict:
    """``transpert run``: summaries, fit, predict, write cells, evaluate (when ``real`` is given),
    report; the config, the versions and the timings recorded next to the outputs.

    The run is written into a staging folder that becomes ``output`` only when the whole run
    succeeded (:func:`transpert._outputs.output_dir`): a failed run leaves nothing, and an
    existing non-empty ``output`` is refused unless ``overwrite`` (then replaced whole).

    Parameters
    ----------
    config_path
        The YAML config (keys in :data:`RUN_KEYS`; :func:`read_config` checks it).
    echo
        Where the progress lines go (``print`` by default).
    show_progress
        Progress bars (None: on a terminal).
    overwrite
        Replace an existing non-empty output folder.
    scheduler
        Else the config's ``scheduler`` key: cells given as files are summarised on that
        ``dask.distributed`` cluster (an address or ``"local:N"``), one connection for the run.

    Returns
    -------
    dict
        ``out_dir``, ``predictions`` (method -> the written cells, log1p), ``leaderboard`` (None
        without ``real``) and ``timings``.

    Examples
    --------
    >>> from transpert.run import run_config
    >>> result = run_config("config.yaml")  # doctest: +SKIP
    >>> result["predictions"]["transpert"]  # doctest: +SKIP
    """
    from transpert._outputs import check_output_dir, output_dir

    cfg = read_config(config_path)
    if scheduler is not None:
        cfg["scheduler"] = scheduler
    final = check_output_dir(cfg["output"], overwrite=overwrite, option=f"{config_path}: output")
    with output_dir(final, overwrite=overwrite, option=f"{config_path}: output") as stage, \
            contextlib.ExitStack() as files:  # the reference summaries, read from disk by the fits
        result = _run_in(cfg, config_path, stage, final, files, echo=echo, show_progress=show_progress)
    result["out_dir"] = final
    return result


def _run_in(cfg: dict, config_path, out: Path, final: Path, files: contextlib.ExitStack, *, echo,
            show_progress) -> dict:
    """The body of :func:`run_config`, writing into ``out`` (the staging folder of ``final``);
    the reference summaries' files stay open in ``files`` until the run ends."""

    t0 = time.perf_counter()
    (out / "summaries").mkdir(parents=True, exist_ok=True)
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config_path, out / "config.yaml")
    kw = dict(pert_col=cfg.get("pert_col") or PERT_COL, control=cfg.get("control") or CONTROL_LABEL,
              threads=cfg.get("threads"))
    seed = int(cfg.get("seed") or 0)
    timings = {}

    if _is_zero_shot(cfg, kw):
        return _run_zero_shot(cfg, out, final, files, kw, seed, t0, echo=echo, show_progress=show_progress)
    echo(f"[1/4] summaries: {len(cfg['references'])} reference lines and the target's training data ...")
    t = time.perf_counter()
    with _cluster(cfg.get("scheduler"), kw["threads"]) as client:
        refs = _summarise_references(cfg, out, files, kw, client, timings, echo, show_progress)
        t_one = time.perf_counter()
        target, target_cells = read_input(cfg["target_train"], what=f"target_train ({cfg['target_train']})",
                                          show_progress=show_progress, scheduler=client, **kw)
    write_h5ad_atomic(target, out / "summaries" / "target_train.h5ad")
    _stage(timings, "summary target_train", t_one, echo)
    timings["summaries_s"] = time.perf_counter() - t

    counts = read_counts(cfg["counts"], pert_col=kw["pert_col"])
    perts = [p for p in counts[kw["pert_col"]] if p != kw["control"]]
    genes = read_gene_list(cfg["genes"]) if cfg.get("genes") else list(target.var_names)
    controls_src = cfg.get("target_controls") or target_cells
    if controls_src is None:
        raise TranspertInputError(f"{config_path}: target_train is a summary profile: give target_controls (cells)")

    echo(f"[2/4] fit and predict {len(perts)} perturbations with {', '.join(cfg['methods'])} ...")
    t = time.perf_counter()
    predictions, controls = {}, None
    params = cfg.get("params") or {}
    for method in cfg["methods"]:
        t_one = time.perf_counter()
        model, pred = fit_predict(method, refs, target, perts, params.get(method))
        write_h5ad_atomic(pred, out / "predictions" / f"{method}.pseudobulk.h5ad")
        if method == "transpert":
            model.save(out / "model")
        del model  # a fitted model holds its aligned reference lines: not needed to write cells
        _stage(timings, f"fit and predict {method}", t_one, echo)
        if controls is None:  # read once, after the first fit (which does not hold them too)
            t_one = time.perf_counter()
            controls, target_sum = target_controls(controls_src, whole_file_median=controls_src is target_cells,
                                                   pert_col=kw["pert_col"], control=kw["control"])
            _stage(timings, "target controls", t_one, echo)
        t_one = time.perf_counter()
        path = out / "predictions" / f"{method}.h5ad"
        write_prediction(pred, controls, counts, genes, path, pert_col=kw["pert_col"], control=kw["control"],
                         max_cells=_max_cells(cfg), cells=cfg.get("cells"),
                         move=cfg.get("move") or "pseudobulk",
                         deg_threshold=float(cfg.get("deg_threshold", 0.5)),
                         seed=seed, target_sum=target_sum, show_progress=show_progress,
                         format=_cell_format(cfg))
        predictions[method] = str(path)
        _stage(timings, f"write cells {method}", t_one, echo)
        echo(f"      {method}: {final / path.relative_to(out)}")
    timings["predict_s"] = time.perf_counter() - t

    board = None
    if cfg.get("real") and _cell_format(cfg) == "counts":
        echo("[3/4] evaluating against the real cells (suite vcc2026: baseline and replicate "
             "anchor built from the real cells) ...")
        t = time.perf_counter()
        board = _evaluate_run(cfg, out, predictions, None, seed, show_progress, kw)
        timings["evaluate_s"] = time.perf_counter() - t
    elif cfg.get("real"):
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
        board = _evaluate_run(cfg, out, predictions, base_path, seed, show_progress, kw)
        timings["evaluate_s"] = time.perf_counter() - t
    else:
        echo("[3/4] no 'real' in the config: evaluation skipped")
    return _record_run(cfg, out, final, predictions, board, timings, t0, echo)


def _stage(timings: dict, name: str, t_start: float, echo) -> None:
    """Record one step's wall time in ``timings`` (``stages``: name -> seconds) and say it."""
    seconds = time.perf_counter() - t_start
    timings.setdefault("stages", {})[name] = seconds
    echo(f"      {name}: {seconds:.1f} s")


def _is_zero_shot(cfg: dict, kw: dict) -> bool:
    """``zero_shot`` as configured, else whether ``target_train`` is a file of control cells only."""
    if cfg.get("zero_shot") is not None:
        return bool(cfg["zero_shot"])
    if not Path(str(cfg["target_train"])).exists():
        return False
    from transpert._h5files import read_h5ad
    from transpert.transfer import only_controls

    adata = read_h5ad(cfg["target_train"], backed="r")
    try:
        return only_controls(adata, pert_col=kw["pert_col"], control=kw["control"])
    finally:
        adata.file.close()


def _zero_shot_methods(cfg: dict) -> list[str]:
    """The zero-shot counterparts of the configured methods (all zero-shot methods by default)."""
    from transpert.methods import ZERO_SHOT_METHODS, zero_shot_method

    if not cfg.get("methods_given"):
        return list(ZERO_SHOT_METHODS)
    return list(dict.fromkeys(zero_shot_method(m) for m in cfg["methods"]))


def _summarise_references(cfg: dict, out: Path, files: contextlib.ExitStack, kw: dict, client,
                          timings: dict, echo, show_progress) -> dict:
    """{name: summary} of the config's reference lines (log1p pseudo-bulk + Wilcoxon DE), each
    written to ``summaries/<name>.h5ad`` block of perturbation rows by block (cells are never
    summarised whole in memory; a summary given as a file is copied); on the Dask ``client`` when
    one is given; one timing stage per line.

    Memory keeps none of them: each is reopened from its file with the layers methods fit on
    (:data:`~transpert.summarize._contract.FIT_LAYERS`) left on disk
    (:func:`transpert.summarize.summary_on_disk`, open until ``files`` closes), and a method reads
    them when it fits (TransPert one line and a block of perturbations at a time). Four
    real-size references held whole took about 1 GB each."""
    refs = {}
    for name, src in cfg["references"].items():
        t_one = time.perf_counter()
        path = out / "summaries" / f"{name}.h5ad"
        # written to its file block of perturbation rows by block: never whole in memory
        read_input(src, what=f"reference {name!r} ({src})", show_progress=show_progress,
                   scheduler=client, out=path, **kw)
        refs[name] = files.enter_context(summary_on_disk(path, FIT_LAYERS))
        _stage(timings, f"summary {name}", t_one, echo)
    return refs


def _run_zero_shot(cfg: dict, out: Path, final: Path, files: contextlib.ExitStack, kw: dict, seed: int,
                   t0: float, *, echo, show_progress) -> dict:
    """The run of a zero-shot config: the target's control cells only (``target_controls`` or
    ``target_train``), every method zero-shot."""

    methods = _zero_shot_methods(cfg)
    source = cfg.get("target_controls") or cfg["target_train"]
    controls, target_sum = target_controls(source, whole_file_median=True, pert_col=kw["pert_col"],
                                           control=kw["control"])
    echo(f"zero-shot: the target is known by {controls.n_obs} control cells only (no target perturbation); "
         f"methods: {', '.join(methods)}")
    timings = {}
    echo(f"[1/4] summaries: {len(cfg['references'])} reference lines ...")
    t = time.perf_counter()
    with _cluster(cfg.get("scheduler"), kw["threads"]) as client:
        refs = _summarise_references(cfg, out, files, kw, client, timings, echo, show_progress)
    timings["summaries_s"] = time.perf_counter() - t
    counts = read_counts(cfg["counts"], pert_col=kw["pert_col"])
    perts = [p for p in counts[kw["pert_col"]] if p != kw["control"]]
    genes = read_gene_list(cfg["genes"]) if cfg.get("genes") else list(controls.var_names)

    def fit_write(method: str, path: Path, params: dict) -> None:
        if method == "transpert-zero-shot":
            params = {"pert_col": kw["pert_col"], "control": kw["control"], **params}
        model, pred = fit_predict(method, refs, controls, perts, params)
        if method == "transpert-zero-shot":  # reusable with `transpert predict --model`
            model.save(out / "model")
        del model  # its aligned reference lines are not needed to write cells
        write_h5ad_atomic(pred, path.with_suffix(".pseudobulk.h5ad"))
        write_prediction(pred, controls, counts, genes, path, pert_col=kw["pert_col"], control=kw["control"],
                         max_cells=_max_cells(cfg), cells=cfg.get("cells"),
                         move=cfg.get("move") or "pseudobulk",
                         deg_threshold=float(cfg.get("deg_threshold", 0.5)),
                         seed=seed, target_sum=target_sum, show_progress=show_progress,
                         format=_cell_format(cfg))

    echo(f"[2/4] fit and predict {len(perts)} perturbations zero-shot ...")
    t = time.perf_counter()
    predictions, params = {}, cfg.get("params") or {}
    for method in methods:
        path = out / "predictions" / f"{method}.h5ad"
        fit_write(method, path, dict(params.get(method) or {}))
        predictions[method] = str(path)
        echo(f"      {method}: {final / path.relative_to(out)}")
    timings["predict_s"] = time.perf_counter() - t
    board = None
    if cfg.get("real") and _cell_format(cfg) == "counts":
        echo("[3/4] evaluating against the real cells (suite vcc2026) ...")
        t = time.perf_counter()
        board = _evaluate_run(cfg, out, predictions, None, seed, show_progress, kw)
        timings["evaluate_s"] = time.perf_counter() - t
    elif cfg.get("real"):
        echo("[3/4] evaluating against the real cells (baseline: zero-shot-mean-response, the reference "
             "lines' mean perturbation response) ...")
        t = time.perf_counter()
        base_path = Path(predictions.get("zero-shot-mean-response") or out / "predictions" / "baseline.h5ad")
        if "zero-shot-mean-response" not in predictions:
            fit_write("zero-shot-mean-response", base_path, {})
        board = _evaluate_run(cfg, out, predictions, base_path, seed, show_progress, kw)
        timings["evaluate_s"] = time.perf_counter() - t
    else:
        echo("[3/4] no 'real' in the config: evaluation skipped")
    return _record_run(cfg, out, final, predictions, board, timings, t0, echo, zero_shot=True)


def _cluster(scheduler, threads):
    """One ``dask.distributed`` client for the run's summaries (None: no cluster)."""
    if not scheduler:
        return contextlib.nullcontext(None)
    from transpert.summarize import connect_scheduler

    return connect_scheduler(scheduler if hasattr(scheduler, "submit") else str(scheduler), threads)


def _cell_format(cfg: dict) -> str:
    """The predictions' cell format: raw counts for the vcc2026 suite (cell-eval2 scores raw
    counts), log1p otherwise."""
    return "counts" if cfg.get("suite") == "vcc2026" else "log1p"


def _max_cells(cfg: dict):
    """The ``max_cells`` key for the writer: absent -> 100,000 for log1p (the 2025 challenge's
    cap), no cap for counts; None or -1 -> no cap."""
    value = cfg.get("max_cells", 100_000 if _cell_format(cfg) == "log1p" else None)
    return None if value in (None, -1) else int(value)


def _evaluate_run(cfg: dict, out: Path, predictions: dict, base_path: Path | None, seed: int,
                  show_progress, kw: dict):
    """Score every written prediction against the config's ``real`` cells with its suite (the
    challenge score against ``base_path``; under vcc2026 the anchored score, its reference points
    built from the real cells) and write the leaderboard; returns it."""
    if cfg.get("suite") == "vcc2026":
        from transpert.evaluate.vcc2026._rank import rank_vcc2026, write_leaderboard

        board = rank_vcc2026(cfg["real"], predictions, pert_col=kw["pert_col"],
                             control=kw["control"], n_boot=int(cfg.get("n_boot") or 1000),
                             seed=seed, show_progress=show_progress)
        write_leaderboard(board, out, title="transpert run: leaderboard",
                          stem="leaderboard", per_prediction=out / "evaluation")
        return board
    board = evaluate_methods(cfg["real"], predictions, str(base_path), n_boot=int(cfg.get("n_boot") or 1000),
                             seed=seed, show_progress=show_progress, suite=cfg.get("suite"), **kw)
    _write_leaderboard(out, board)
    return board


def _write_leaderboard(out: Path, board) -> None:
    """The leaderboard (CSV, Markdown, HTML) and each method's per-perturbation metrics and
    intervals, into the run's folder."""
    write_csv_atomic(board.table, out / "leaderboard.csv", index=False)
    (out / "leaderboard.md").write_text("# transpert run: leaderboard\n\n"
                                        + leaderboard_markdown(board.table) + "\n")
    write_html_report(out / "leaderboard.md")  # report.html: the same page for a browser
    for name, res in board.results.items():
        (out / "evaluation").mkdir(exist_ok=True)
        write_csv_atomic(res.results, out / "evaluation" / f"{name}_results.csv", index=False)
        write_csv_atomic(board.intervals[name], out / "evaluation" / f"{name}_intervals.csv", index=False)


def _record_run(cfg: dict, out: Path, final: Path, predictions: dict, board, timings: dict, t0: float,
                echo, **extra) -> dict:
    """``run.json`` (the config, ``extra`` such as ``zero_shot``, versions, timings, the written
    predictions' final paths) and the run's result."""
    echo("[4/4] recording the config, versions and timings ...")
    timings["total_s"] = time.perf_counter() - t0
    predictions = {m: str(final / Path(p).relative_to(out)) for m, p in predictions.items()}
    record = {"config": cfg, **extra, "versions": versions(),
              "timings": {k: ({s: round(x, 3) for s, x in v.items()} if isinstance(v, dict) else round(v, 3))
                          for k, v in timings.items()}, "predictions": predictions}
    (out / "run.json").write_text(json.dumps(record, indent=2, default=str))
    return {"out_dir": final, "leaderboard": board, "predictions": predictions, "timings": timings, **extra}
