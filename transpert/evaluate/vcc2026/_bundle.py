"""A real bundle (``cell-eval2 prep-real-bundle``) and the check that a scoring matches it.

``cell-eval2 score --real-bundle`` refuses a submission whose run did not read the bundle's real
data under the bundle's rule (``real_bundle.check_submission`` and the anchor gate): the run's
``source_fingerprint`` (strict: structure and counts of the real file) must equal the bundle's,
the bundle's competition rule must be the installed release's, and the manifest must be
complete. transpert reads the real file itself, so the same refusals are made on the real file
given with ``--real-bundle``: :func:`check_real_matches` compares cell-eval2's fingerprints of it
(:mod:`._fingerprint`) with the bundle's and names what differs.

Deliberate differences (transpert computes the submission's side with the preset and on CPU):
the bundle's host-specific stamps (``resolved_device``, ``resolved_de_backend`` and the
``config_digest`` that folds them in) are not compared, so a bundle built on a GPU host scores a
CPU evaluation; a diagnostic bundle (``rule_digest`` null: not built under the preset) is
refused, because its two reference points are not on the preset's scale.
"""

from __future__ import annotations

import json
import os

import pandas as pd

from transpert._errors import TranspertInputError
from transpert.evaluate.vcc2026._fingerprint import RealIdentity, real_identity

#: cell-eval2 0.20.0's ``competition.competition_digest()``: the vcc2026 rule a bundle is built
#: under (host independent; pinned by cell-eval2's own tests).
RULE_DIGEST = "fb5aa56b74368a7bc5befc8ccca8ca02a2cf4c8c7ad59b156ab86c3ae0859762"
MANIFEST_VERSION = 1
REQUIRED = (  # cell-eval2 real_bundle.read_real_bundle's required manifest fields
    "manifest_version", "real_bundle_id", "created_utc", "config_digest", "comparator",
    "source_fingerprint", "source_fingerprint_strict", "resolved_device", "resolved_de_backend",
    "input_type_real_effective", "de_real_fingerprint", "input_type_pred_effective",
    "cell_eval2_version", "real_fingerprint", "anchor_semantic_identity", "anchor_config_hash",
    "anchor_metric_names", "anchor_digest", "base_seed", "n_splits", "seed_derivation",
    "derived_seeds", "bulk_target_sum", "control_source_effective", "estimators", "profile",
    "members", "rule_digest", "rule_mismatches",
)
FILES = ("manifest.json", "baseline_agg.csv", "baseline_meta.json", "anchor_meta.json",
         "anchor_agg.parquet")


def _refuse(path, why: str) -> TranspertInputError:
    return TranspertInputError(f"--real-bundle {path}: {why}")


def read_manifest(path) -> tuple[dict, dict]:
    """(manifest, anchor_meta) of a bundle directory, after cell-eval2's shape checks and the
    rule checks (see the module docstring); anything else raises TranspertInputError."""
    for name in FILES:
        if not os.path.exists(os.path.join(path, name)):
            raise _refuse(path, f"no {name}; pass a directory written by cell-eval2 "
                          "prep-real-bundle")
    try:
        with open(os.path.join(path, "manifest.json")) as fh:
            manifest = json.load(fh)
        with open(os.path.join(path, "anchor_meta.json")) as fh:
            anchor_meta = json.load(fh)
    except (OSError, ValueError) as err:
        raise _refuse(path, f"manifest.json or anchor_meta.json is not readable JSON ({err})"
                      ) from None
    if not isinstance(manifest, dict) or not isinstance(anchor_meta, dict):
        raise _refuse(path, "manifest.json or anchor_meta.json is not a JSON object")
    missing = [f for f in REQUIRED if f not in manifest]
    if missing:
        raise _refuse(path, f"manifest.json lacks {missing}; rebuild the bundle with cell-eval2 "
                      "prep-real-bundle")
    if manifest["manifest_version"] != MANIFEST_VERSION:
        raise _refuse(path, f"manifest_version {manifest['manifest_version']!r} is not "
                      f"{MANIFEST_VERSION}, the version cell-eval2 0.20.0 writes and reads")
    if manifest["profile"] != "vcc2026":
        raise _refuse(path, f"built for profile {manifest['profile']!r}, not vcc2026")
    rule = manifest["rule_digest"]
    if rule is None:
        reasons = "; ".join(manifest.get("rule_mismatches") or ["no reason recorded"])
        raise _refuse(path, f"a diagnostic bundle, not built under the vcc2026 preset "
                      f"({reasons}), so its baseline and anchor are not on the suite's scale")
    if rule != RULE_DIGEST:
        raise _refuse(path, f"built under competition rule {rule[:12]}..., not cell-eval2 "
                      f"0.20.0's {RULE_DIGEST[:12]}...; its numbers are not on this suite's "
                      "scale")
    if manifest["input_type_real_effective"] != "counts" or manifest["de_real_fingerprint"]:
        raise _refuse(path, "its real side was not scored from raw counts with a DE table "
                      "computed from the cells")
    return manifest, anchor_meta


def _bundle_perturbations(path) -> int | None:
    """How many perturbations the bundle's baseline scored (its pds_cosine count)."""
    try:
        agg = pd.read_csv(os.path.join(path, "baseline_agg.csv")).set_index("statistic")
        return int(agg.loc["count", "pds_cosine"])
    except (KeyError, ValueError):
        return None


def check_real_matches(path, manifest: dict, anchor_meta: dict, real, pert_col: str,
                       control: str) -> RealIdentity:
    """Refuse (TranspertInputError, one sentence naming what differs) real data that is not
    the data the bundle was built from: cell-eval2's structural fingerprint first (cells,
    genes, dtype, gene names, per-cell labels), then the content fingerprint (the counts)."""
    ours = real_identity(real, pert_col)
    name = os.fspath(real) if isinstance(real, (str, os.PathLike)) else "the real AnnData"
    bundle_id = manifest.get("real_bundle_id")
    structure = anchor_meta.get("real_fingerprint_meta")
    if structure is not None and ours.structure != structure:
        n_bundle = _bundle_perturbations(path)
        n_ours = len([p for p in ours.labels if p != control])
        if n_bundle is not None and n_bundle != n_ours:
            what = (f"the bundle scored {n_bundle} perturbations, {name} has {n_ours} "
                    "(a perturbation missing or added)")
        else:
            what = (f"{name} ({ours.n_cells} cells x {ours.n_genes} genes, {ours.dtype}) differs "
                    "in its cell count, gene names, dtype or per-cell perturbation labels")
        raise _refuse(path, f"bundle {bundle_id!r} was built from other real data: {what} "
                      f"(cell-eval2 structural fingerprint {ours.structure[:12]}... vs the "
                      f"bundle's {structure[:12]}...); score against the real file the bundle "
                      "was built from")
    if ours.content != manifest["real_fingerprint"]:
        same = "the same cells, genes and labels but other counts" if structure is not None \
            else "other counts, cells, genes or labels"
        raise _refuse(path, f"bundle {bundle_id!r} was built from other real data: {name} has "
                      f"{same} (cell-eval2 content fingerprint {ours.content[:12]}... vs the "
                      f"bundle's {manifest['real_fingerprint'][:12]}...); score against the "
                      "real file the bundle was built from")
    return ours


def _means(agg: pd.DataFrame) -> dict:
    return agg.set_index("statistic").loc["mean"].astype(float).to_dict()


def read_real_bundle(path) -> tuple[dict, dict]:
    """The score's two reference points from a ``cell-eval2 prep-real-bundle`` directory.

    Parameters
    ----------
    path : the bundle directory: ``manifest.json``, ``baseline_agg.csv``, ``baseline_meta.json``,
        ``anchor_meta.json`` and ``anchor_agg.parquet``, built under cell-eval2 0.20.0's vcc2026
        rule (anything else raises :class:`~transpert._errors.TranspertInputError`).

    Returns
    -------
    (dict, dict)
        ``{metric: b}``, the baseline's mean per metric, and ``{metric: r}``, the replicate
        anchor, both on each metric's own scale (as :func:`evaluate_vcc2026` computes them).

    Examples
    --------
    >>> from transpert.evaluate.vcc2026 import read_real_bundle
    >>> b, r = read_real_bundle("bundle/")  # doctest: +SKIP
    >>> r["pds_cosine"]  # doctest: +SKIP
    """
    read_manifest(path)
    anchor = os.path.join(path, "anchor_agg.parquet")
    as_csv = anchor[:-len(".parquet")] + ".csv"
    try:
        frame = pd.read_parquet(anchor)
    except ImportError:
        if not os.path.exists(as_csv):
            raise _refuse(path, "reading anchor_agg.parquet needs pyarrow (pip install "
                          "'transpert[parquet]')") from None
        frame = pd.read_csv(as_csv)  # the same table as CSV beside it
    base = pd.read_csv(os.path.join(path, "baseline_agg.csv"))
    return _means(base), dict(zip(frame["metric"], frame["replicate"].astype(float)))
