"""Re-assembling a gene block written chunk by chunk into one contiguous run per gene."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def regroup_segments(keys_in, codes_in, seg_counts, keys_out, codes_out):
    """Segments (one per row chunk, each gene-major over the block's genes) -> gene-major.

    ``seg_counts[s, g]`` = entries of gene g in segment s. Returns the block's ``gene_ptr``.
    Within a gene, entries keep chunk order (row order). An empty ``codes_in`` means packed
    words (the codes live inside ``keys_in``); ``codes_out`` is then left alone.
    """
    with_codes = codes_in.shape[0] > 0
    n_seg, nb = seg_counts.shape
    gene_ptr = np.zeros(nb + 1, dtype=np.int64)
    for g in range(nb):
        t = 0
        for s in range(n_seg):
            t += seg_counts[s, g]
        gene_ptr[g + 1] = gene_ptr[g] + t
    pos = gene_ptr[:-1].copy()
    src = 0
    for s in range(n_seg):
        for g in range(nb):
            n = seg_counts[s, g]
            d = pos[g]
            for k in range(n):
                keys_out[d + k] = keys_in[src + k]
            if with_codes:
                for k in range(n):
                    codes_out[d + k] = codes_in[src + k]
            pos[g] = d + n
            src += n
    return gene_ptr
