"""Writing an evaluation to a directory in cell-eval's file layout (plus what it lacks)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from transpert._io import atomic_path, write_csv_atomic

logger = logging.getLogger("transpert.evaluate")


def _format_column(values: pd.Series, defined: np.ndarray) -> list[str]:
    # polars write_csv: null -> empty field, NaN -> "NaN", floats in shortest repr.
    if pd.api.types.is_integer_dtype(values):
        out = [str(int(v)) for v in values]
    else:
        out = ["NaN" if np.isnan(v) else repr(float(v)) for v in values.to_numpy(dtype=np.float64)]
    return [s if d else "" for s, d in zip(out, defined)]


def write_results_csv(results: pd.DataFrame, defined: pd.DataFrame, path) -> Path:
    """``results.csv`` with nulls as empty fields and NaN as ``NaN`` (what cell-eval writes)."""
    frame = pd.DataFrame({"perturbation": results["perturbation"].astype(str)})
    for c in results.columns:
        if c != "perturbation":
            frame[c] = _format_column(results[c], defined[c].to_numpy())
    return write_csv_atomic(frame, path, index=False)


def write_agg_csv(agg: pd.DataFrame, path) -> Path:
    frame = pd.DataFrame({"statistic": agg["statistic"]})
    stats = list(agg["statistic"])
    for c in agg.columns[1:]:
        v = agg[c].to_numpy(dtype=np.float64)
        count = v[stats.index("count")]
        cells = []
        for stat, x in zip(stats, v):
            # polars gives null (empty field) where there is no value: every statistic of an
            # all-null column, and the std of a single value; a NaN inside the data gives NaN.
            null = (count == 0 and stat not in ("count", "null_count")) or (count == 1 and stat == "std")
            cells.append("" if null else ("NaN" if np.isnan(x) else repr(float(x))))
        frame[c] = cells
    return write_csv_atomic(frame, path, index=False)


def write_de_tables(result, outdir: Path, csv: bool = False) -> list[Path]:
    """DE of both files: summary profiles (h5ad) by default, cell-eval's long CSV with ``csv``."""
    written = []
    for which, prep in (("real", result.real), ("pred", result.pred)):
        if prep.summary is None:
            continue
        if csv:
            from transpert.summarize import de_table

            written.append(write_csv_atomic(de_table(prep.summary), outdir / f"{which}_de.csv",
                                            index=False))
        else:
            from transpert.summarize import write_summary

            target = outdir / f"{which}_de.h5ad"
            with atomic_path(target) as tmp:
                write_summary(prep.summary, tmp)
            written.append(target)
    return written


def _with_suite(frame: pd.DataFrame, suite: str) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"suite": [suite] * len(frame)}, index=frame.index), frame],
                     axis=1)


def write_run_params(result, path) -> Path:
    """``run_params.json``: the suite (reference scorer and versions), profile and metrics."""
    import json

    from transpert import __version__
    from transpert.evaluate._suites import get_suite

    suite = get_suite(result.suite)
    params = {"suite": suite.name, "reference": suite.reference, "profile": result.profile,
              "metrics": list(result.metrics), "n_perturbations": int(len(result.results)),
              "ties": result.de.ties if result.de is not None else None,
              "transpert_version": __version__}
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(params, indent=2) + "\n")
    return Path(path)


def write_outputs(result, outdir, *, ci: pd.DataFrame | None = None, de_csv: bool = False,
                  report: bool = True, threads: int | None = None) -> list[Path]:
    """results.csv, agg_results.csv, score.csv (with a baseline), flags.csv, ci.csv, DE
    tables, run_params.json and report.md into ``outdir``.

    results.csv and agg_results.csv keep cell-eval's layout exactly (so ``cell-eval score`` and
    other cell-eval tooling read them); the suite is named in run_params.json, in a ``suite``
    column of every other CSV, and in the report's header."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = [
        write_results_csv(result.results, result.defined, outdir / "results.csv"),
        write_agg_csv(result.agg_results, outdir / "agg_results.csv"),
        write_csv_atomic(_with_suite(result.flags, result.suite), outdir / "flags.csv", index=False),
        write_run_params(result, outdir / "run_params.json"),
    ]
    if result.score is not None:
        written.append(write_csv_atomic(_with_suite(result.score, result.suite),
                                        outdir / "score.csv", index=False))
        base = result.baseline
        written.append(write_results_csv(base.results, base.defined, outdir / "baseline_results.csv"))
        written.append(write_agg_csv(base.agg_results, outdir / "baseline_agg_results.csv"))
    if ci is not None:
        written.append(write_csv_atomic(_with_suite(ci, result.suite), outdir / "ci.csv",
                                        index=False))
    written += write_de_tables(result, outdir, csv=de_csv)
    if report:
        from transpert.evaluate._report import write_report

        written.append(write_report(result, outdir, ci=ci, threads=threads))
    return written
