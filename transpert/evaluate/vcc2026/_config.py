"""The vcc2026 suite's fixed parameters: cell-eval2 0.20.0's ``configs/vcc2026.yaml``.

Raw counts in; every value below is the preset's, named as cell-eval2 names it.
"""

from __future__ import annotations

SUITE = "vcc2026"
REFERENCE = "cell-eval2 0.20.0 run --preset vcc2026"

MAX_COUNTS_PER_CELL = 1e6  # max_counts_per_cell: no cell total above this
DE_TARGET_SUM = 1e6  # target_sum: the Wilcoxon test ranks log1p(CPM)
BULK_TARGET_SUM = 5e4  # bulk_target_sum: profiles are log1p(TS * P / S) of group sums
MIN_CPM = 5.0  # filter.filter_gene_min_cpm_cell: the control's mean CPM must exceed it
P_ADJ_THRESHOLD = 0.05  # de.p_adj_threshold (BH within each perturbation)
EPSILON = 1e-9  # de.epsilon of the log2 fold change of arithmetic CPM means
LFC_NMAE_MIN_GATE = 10  # de_lfc_nmae scores a perturbation with >= 10 gated genes
REACH_PURITY_FLOOR = 0.9  # de_wilcoxon_direction_reach_raw's pass mark
PRED_TRACE_CAP_K = 1.0  # expr_mse_unbiased_capped: pred correction capped at the real one's

#: The profile's ten members in cell-eval2's output order (results.csv rows, agg columns).
SCORED = (
    "pds_cosine",
    "expr_mse_unbiased_capped_norm",
    "de_wilcoxon_direction_fidelity_yield_raw",
    "de_wilcoxon_direction_reach_raw",
    "de_wilcoxon_sig_jaccard",
    "de_wilcoxon_lfc_nmae",
)
PER_PERT = (
    "de_wilcoxon_lfc_nmae",
    "de_wilcoxon_direction_fidelity_yield_raw",
    "de_wilcoxon_direction_reach_raw",
    "de_wilcoxon_sig_jaccard",
    "pds_cosine",
    "expr_mse_unbiased",
    "expr_mse_unbiased_capped",
    "expr_distance_unbiased",
    "expr_real_mass_ratio",
)
DERIVED = {"expr_mse_unbiased_capped_norm": ("expr_mse_unbiased_capped", "expr_distance_unbiased")}
#: Lower is better for these (the score's direction).
LOWER_IS_BETTER = ("expr_mse_unbiased_capped_norm", "de_wilcoxon_lfc_nmae")
