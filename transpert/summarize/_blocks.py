"""Gene blocks: which genes are ranked together, and where their entries live meanwhile.

A block is a range of genes whose non-zero entries (8 bytes each for float32 values: one
packed word ``key << 32 | code``; 12 for float64 values: a key and a 4-byte group code) fit
the memory budget. Streamed input is written chunk by chunk
into a *store*: in memory when everything fits, else a scratch file read back one block at a
time (``os.pwrite``/``os.pread``: the page cache holds it, not this process's memory).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def plan_blocks(gene_nnz: np.ndarray, max_entries: int) -> list[tuple[int, int]]:
    """Split genes into consecutive ranges holding at most ``max_entries`` entries each
    (a single gene larger than that gets a block of its own)."""
    blocks = []
    start, total = 0, 0
    for g, n in enumerate(np.asarray(gene_nnz, dtype=np.int64)):
        if g > start and total + n > max_entries:
            blocks.append((start, g))
            start, total = g, 0
        total += int(n)
    if len(gene_nnz):
        blocks.append((start, len(gene_nnz)))
    return blocks


class BlockStore:
    """Entries of every block, written one row chunk at a time, read back one block at a time.

    Layout per block: the segments of successive chunks, each gene-major over the block's genes;
    ``seg_counts[b]`` records entries per (chunk, gene) so :func:`regroup_segments` can rebuild
    one contiguous run per gene.
    """

    def __init__(self, blocks, block_entries, key_dtype, in_memory: bool, scratch_dir=None,
                 packed: bool = False):
        """``packed``: the keys are packed words holding their codes; no codes are stored and
        :meth:`read` returns an empty codes array."""
        self.blocks = blocks
        self.packed = packed
        self.key_dtype = np.dtype(key_dtype)
        self.code_dtype = np.dtype(np.int32)
        self.sizes = np.asarray(block_entries, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.cursor = np.zeros(len(blocks), dtype=np.int64)
        self.seg_counts: list[list[np.ndarray]] = [[] for _ in blocks]
        self.in_memory = in_memory
        self._dir = None
        if in_memory:
            total = int(self.offsets[-1])
            self._keys = np.empty(total, dtype=self.key_dtype)
            self._codes = np.empty(0 if packed else total, dtype=self.code_dtype)
        else:
            self._dir = tempfile.TemporaryDirectory(prefix="transpert-blocks-", dir=scratch_dir)
            base = Path(self._dir.name)
            self._fk = os.open(base / "keys.bin", os.O_RDWR | os.O_CREAT)
            self._fc = os.open(base / "codes.bin", os.O_RDWR | os.O_CREAT)

    def write(self, b: int, keys: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> None:
        """Append one chunk's segment (gene-major entries of block b, ``counts`` per gene)."""
        n = keys.shape[0]
        at = int(self.offsets[b] + self.cursor[b])
        if self.in_memory:
            self._keys[at:at + n] = keys
            if not self.packed:
                self._codes[at:at + n] = codes
        else:
            _pwrite_all(self._fk, np.ascontiguousarray(keys, self.key_dtype), at * self.key_dtype.itemsize)
            if not self.packed:
                _pwrite_all(self._fc, np.ascontiguousarray(codes, self.code_dtype), at * self.code_dtype.itemsize)
        self.cursor[b] += n
        self.seg_counts[b].append(np.asarray(counts, dtype=np.int64))

    def read(self, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Block b's segments: keys, codes and the (n_chunks, n_genes) count matrix."""
        lo, n = int(self.offsets[b]), int(self.cursor[b])
        nb = self.blocks[b][1] - self.blocks[b][0]
        seg = np.vstack(self.seg_counts[b]) if self.seg_counts[b] else np.zeros((0, nb), np.int64)
        if self.packed:
            codes = np.empty(0, dtype=self.code_dtype)
        elif self.in_memory:
            codes = self._codes[lo:lo + n]
        else:
            codes = _pread_all(self._fc, n, self.code_dtype, lo * self.code_dtype.itemsize)
        if self.in_memory:
            return self._keys[lo:lo + n], codes, seg
        keys = _pread_all(self._fk, n, self.key_dtype, lo * self.key_dtype.itemsize)
        return keys, codes, seg

    def close(self) -> None:
        if self._dir is not None:
            os.close(self._fk)
            os.close(self._fc)
            self._dir.cleanup()
            self._dir = None
        self._keys = self._codes = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _pwrite_all(fd: int, arr: np.ndarray, offset: int) -> None:
    view = memoryview(arr).cast("B")
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


def _pread_all(fd: int, n: int, dtype: np.dtype, offset: int) -> np.ndarray:
    out = np.empty(n, dtype=dtype)
    view = memoryview(out).cast("B")
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            raise OSError("scratch file shorter than expected")
        done += got
    return out
