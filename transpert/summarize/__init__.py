"""transpert.summarize: per-perturbation summary profiles (pseudo-bulk and Wilcoxon DE vs control).

- :func:`summarize`: cells (AnnData, path, manifest name, CellSource) -> summary AnnData, or
  with ``out=`` the summary written to that h5ad block of rows by block (its path returned).
- :func:`connect_scheduler`: a ``dask.distributed`` client for ``summarize(..., scheduler=...)``.
- :func:`read_input`: a summary file as it is, or cells summarised on the way (a method's inputs).
- :func:`de_table`: the summary as cell-eval 0.8.2's long DE table (pdex 0.3.0 columns).
- :func:`write_summary`, :func:`read_summary`: h5ad I/O; :func:`summary_on_disk`: a summary file
  with its layers left on disk, read by rows.
- :func:`log2fc`, :func:`bh_fdr`: fold change (METRICS.md) and Benjamini-Hochberg.
- :func:`is_summary`, :func:`check_summary`, :func:`validate_summary`: the summary-profile contract.
"""

from transpert.summarize._api import summarize
from transpert.summarize._distributed import connect as connect_scheduler
from transpert.summarize._de_table import DE_COLUMNS, de_table
from transpert.summarize._effects import bh_fdr, log2fc
from transpert.summarize._inputs import read_input
from transpert.summarize._contract import check_summary, is_summary, validate_summary
from transpert.summarize._profile import read_summary, summary_on_disk, write_summary

__all__ = ["DE_COLUMNS", "bh_fdr", "check_summary", "connect_scheduler", "de_table", "is_summary", "log2fc", "read_input", "read_summary",
           "summarize", "summary_on_disk", "validate_summary", "write_summary"]
