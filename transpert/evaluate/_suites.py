"""The evaluation suites: which reference scorer a number reproduces, and how it differs.

A suite names a reference tool and version and carries the few choices in which the scorers
differ; everything else (pseudo-bulks, the Wilcoxon engine, the metrics, the score) is shared.

- ``vcc2025``: the 2025 Virtual Cell Challenge leaderboard, scored by cell-eval 0.6.6 with
  pdex 0.1.27 (``cell-eval run --profile vcc``, ``baseline``, ``score``). pdex 0.1.27 computes
  the fold change of the geometric means (``expm1`` of the mean log1p value) with only its
  undefined ratios replaced (reference mean 0 -> 20, perturbation mean 0 -> 1/20, both 0 -> 1;
  finite ratios beyond [1/20, 20] are kept) and controls
  the FDR over the whole table (every perturbation and gene at once); cell-eval 0.6.6 scores
  pr_auc/roc_auc on ``-log10(FDR)`` with only FDR == 0 replaced by 1e-10.
- ``cell-eval-0.8.2``: cell-eval 0.8.2 with pdex 0.3.0: unclipped log2 fold changes
  (+-inf kept), FDR per perturbation, ``-log10`` of the FDR clipped to [1e-10, 1].
- ``vcc2026``: cell-eval2 0.20.0's ``vcc2026`` preset; registered here, run by its own package
  :mod:`transpert.evaluate.vcc2026` (``module``; refused cleanly where it is not installed). It
  has its own metrics and files, so the cell-eval functions (``evaluate``, ``evaluate_methods``,
  ``generalist_ranking``) refuse it; the CLI's ``evaluate``, ``rank`` and run configs send it to
  that package (``evaluate_vcc2026``, ``rank_vcc2026``).

Scales: the suites read raw counts or log1p cells like :func:`transpert.evaluate.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass

from transpert._errors import TranspertInputError


@dataclass(frozen=True)
class Suite:
    """One scorer reproduced: ``reference`` (tool and pinned versions) and its DE choices.

    ``fdr``/``log2fc``: :func:`transpert.summarize.summarize`'s ``fdr`` and ``log2fc`` methods;
    ``fdr_floor``: how the AUC metrics floor the predicted FDR before ``-log10`` (``"clip"``:
    clipped to [1e-10, 1]; ``"zero"``: only 0 replaced by 1e-10). ``module``: for suites not
    built on the cell-eval metrics, the package that runs them (available when importable).
    """

    name: str
    reference: str
    description: str
    fdr: str = "per_perturbation"
    log2fc: str = "exact"
    fdr_floor: str = "clip"
    cell_eval: bool = True
    module: str | None = None

    @property
    def available(self) -> bool:
        if self.cell_eval:
            return True
        import importlib.util

        return self.module is not None and importlib.util.find_spec(self.module) is not None


SUITES: dict[str, Suite] = {
    "vcc2025": Suite(
        name="vcc2025",
        reference="cell-eval 0.6.6 + pdex 0.1.27",
        description="the 2025 Virtual Cell Challenge leaderboard's scorer: fold changes of "
                    "geometric means clipped at 20, FDR over all perturbations at once",
        fdr="table", log2fc="clipped", fdr_floor="zero"),
    "cell-eval-0.8.2": Suite(
        name="cell-eval-0.8.2",
        reference="cell-eval 0.8.2 + pdex 0.3.0",
        description="the latest cell-eval: unclipped fold changes, FDR per perturbation",
        fdr="per_perturbation", log2fc="exact", fdr_floor="clip"),
    "vcc2026": Suite(
        name="vcc2026",
        reference="cell-eval2 0.20.0 (--preset vcc2026)",
        description="the 2026 Virtual Cell Challenge's scorer: raw-count submissions, six "
                    "metrics scored against a baseline and a replicate anchor",
        cell_eval=False, module="transpert.evaluate.vcc2026"),
}

#: What "the challenge's score" means: the 2025 leaderboard's scorer.
DEFAULT_SUITE = "vcc2025"


def get_suite(name: str | Suite | None = None) -> Suite:
    """The registered suite ``name`` (None: :data:`DEFAULT_SUITE`); a clean input error for an
    unknown name or a suite not available in this installation."""
    if isinstance(name, Suite):
        return name
    name = DEFAULT_SUITE if name is None else name
    if name not in SUITES:
        raise TranspertInputError(f"unknown suite {name!r}; known suites: {sorted(SUITES)}")
    suite = SUITES[name]
    if not suite.available:
        raise TranspertInputError(
            f"suite {name!r} ({suite.reference}) is registered but not available in this "
            f"installation; available: {sorted(n for n, s in SUITES.items() if s.available)}")
    return suite


def cell_eval_suite(name: str | Suite | None = None) -> Suite:
    """:func:`get_suite` for the cell-eval functions (evaluate, rank, leaderboard): a suite with
    its own metrics (vcc2026) is refused with a pointer to where it runs."""
    suite = get_suite(name)
    if not suite.cell_eval:
        raise TranspertInputError(
            f"suite {suite.name!r} ({suite.reference}) has its own metrics and files: run it with "
            f"`transpert evaluate/rank --suite {suite.name}` or {suite.module}; this function "
            "scores the cell-eval suites (vcc2025, cell-eval-0.8.2)")
    return suite
