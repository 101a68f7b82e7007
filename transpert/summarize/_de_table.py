"""The long DE table (one row per perturbation x gene), in cell-eval 0.8.2 / pdex 0.3.0's layout."""

from __future__ import annotations

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError

DE_COLUMNS = ("target", "feature", "target_mean", "ref_mean", "target_membership", "ref_membership",
              "log2_fold_change", "percent_change", "p_value", "statistic", "fdr")


def de_table(summary, *, means: str = "pdex") -> pd.DataFrame:
    """The DE table of a summary profile with pdex 0.3.0's columns, rows and numbers.

    Columns: target, feature, target_mean, ref_mean, target_membership, ref_membership,
    log2_fold_change, percent_change, p_value, statistic, fdr; targets in obs order (sorted
    labels, control excluded, as pdex), genes in var order. p_value, statistic and fdr are the
    summary's (scipy's asymptotic Mann-Whitney U; BH as chosen when summarising: per
    perturbation is pdex's).

    How pdex 0.3.0 (``pdex(adata, mode="ref", is_log1p=True, geometric_mean=True,
    epsilon=0.0)``, what cell-eval 0.8.2 runs) computes the means and fold changes, which
    ``means="pdex"`` (default) reproduces bit for bit on float32 CSR input:

    - ``target_mean`` / ``ref_mean`` are float32 and in count space: ``expm1`` (numba's float32
      ``expm1``) of the group's float32 mean of the log1p values as ``scipy.sparse``
      computes it: each value times float32(1/n), accumulated in float32 in row order
      (summary layer ``mean_f32`` / var ``control_mean_f32``). Not the float64 ``mean`` layer.
    - ``log2_fold_change`` is float64: log2(float64(target_mean) / float64(ref_mean)), 0/0 = 0,
      +-inf for one-sided zeros; so it carries float32 rounding of the means (differs from the
      summary's float64 ``log2fc`` layer by ~1e-7 relative).
    - ``percent_change`` = (target_mean - ref_mean) [float32] / ref_mean [float64], 0/0 = 0.
    - ``fdr`` is float64 here; cell-eval casts it to float32 before thresholding at 0.05.

    ``means="float64"`` uses the float64 ``mean`` layer instead (expm1 in float64, the summary's
    log2fc); this is the only choice for float64 input or a summary without ``mean_f32``.

    Parameters
    ----------
    summary
        A summary profile from :func:`summarize` (log1p-scale layers and the Wilcoxon test).
    means
        ``"pdex"`` (default) or ``"float64"``, as above.

    Returns
    -------
    pandas.DataFrame
        One row per (perturbation, gene): means in count space (``expm1`` of the log1p means),
        log2FC, percent change, the test's p-value, U statistic and FDR.

    Examples
    --------
    >>> from transpert.summarize import summarize, de_table
    >>> table = de_table(summarize("papalexi_thp1"))  # doctest: +SKIP
    >>> table[table["target"] == "STAT1"].sort_values("fdr").head()  # doctest: +SKIP
    """
    from transpert.kernels import expm1_f32, log2_ratio_pdex

    if means not in ("pdex", "float64"):
        raise TranspertInputError(f"de_table: means must be 'pdex' or 'float64', got {means!r}")
    for layer in ("pvalue", "statistic", "fdr"):
        if layer not in summary.layers:
            raise TranspertInputError(f"de_table: the summary has no {layer!r} layer (summarised without DE?)")
    n_t, n_g = summary.shape
    meta = summary.uns.get("transpert", {}) if isinstance(summary.uns.get("transpert"), dict) else {}
    ref_n = int(meta.get("reference_n_cells", -1))
    if means == "pdex" and "mean_f32" in summary.layers and "control_mean_f32" in summary.var:
        tm = expm1_f32(np.ascontiguousarray(summary.layers["mean_f32"], dtype=np.float32).ravel())
        rm1 = expm1_f32(np.ascontiguousarray(summary.var["control_mean_f32"].to_numpy(np.float32)))
        rm = np.tile(rm1, n_t)
        lfc = log2_ratio_pdex(tm.astype(np.float64), rm.astype(np.float64), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            pc = (tm - rm).astype(np.float64) / rm.astype(np.float64)
    else:
        tm = np.expm1(np.asarray(summary.layers["mean"], dtype=np.float64)).ravel()
        rm = np.tile(np.expm1(summary.var["control_mean"].to_numpy(np.float64)), n_t)
        lfc = np.asarray(summary.layers["log2fc"], dtype=np.float64).ravel()
        with np.errstate(divide="ignore", invalid="ignore"):
            pc = (tm - rm) / rm
    pc[np.isnan(pc)] = 0.0
    frame = pd.DataFrame({
        "target": np.repeat(summary.obs_names.to_numpy(dtype=object), n_g),
        "feature": np.tile(summary.var_names.to_numpy(dtype=object), n_t),
        "target_mean": tm,
        "ref_mean": rm,
        "target_membership": np.repeat(summary.obs["n_cells"].to_numpy(np.int64), n_g),
        "ref_membership": np.full(n_t * n_g, ref_n, dtype=np.int64),
        "log2_fold_change": lfc,
        "percent_change": pc,
        "p_value": np.asarray(summary.layers["pvalue"], dtype=np.float64).ravel(),
        "statistic": np.asarray(summary.layers["statistic"], dtype=np.float64).ravel(),
        "fdr": np.asarray(summary.layers["fdr"], dtype=np.float64).ravel(),
    })
    return frame
