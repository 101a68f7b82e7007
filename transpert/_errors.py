"""Exceptions raised for bad user input.

Every message names the file (when there is one), the column or gene, and the offending value,
so the user knows what to fix without reading a traceback.
"""

from __future__ import annotations


class TranspertInputError(ValueError):
    """Input data or arguments that transpert cannot use (raised before any output is written)."""


class ChecksumMismatchError(TranspertInputError):
    """A downloaded or cached file whose checksum differs from the manifest's."""
