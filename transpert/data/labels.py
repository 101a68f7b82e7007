"""Perturbation labels in error messages: the most frequent ones, how many more, and the labels
that look like controls (so a shortened list never hides the control label the user needs).

One home for every message about a control label that was not found (summaries, the schema
mapping, validation, evaluation).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

#: labels screens commonly give their control cells (lower case, matched as whole words)
_CONTROL_LIKE = re.compile(
    r"(^|[^a-z0-9])(sg)?(control|ctrl|ctl|non[-_ ]?targeting|nontargeting|non[-_ ]?target|ntc|nt|"
    r"safe[-_ ]?targeting|scrambled?|intergenic|negative|neg|no[-_ ]?guide|unperturbed|gfp|"
    r"luciferase|lacz)([^a-z0-9]|$)")

#: how many labels a message lists before "and N more"
SHOWN = 8


def looks_like_control(label: str) -> bool:
    """True for labels such as ``control``, ``non-targeting``, ``NTC``, ``safe-targeting``."""
    return bool(_CONTROL_LIKE.search(str(label).lower()))


def label_counts(labels) -> pd.Series:
    """Cells per label (most frequent first, ties by label), NaN and empty labels left out."""
    values = pd.Series(np.asarray(labels, dtype=object))
    values = values[values.notna()].astype(str)
    values = values[values != ""]
    counts = values.value_counts()
    order = sorted(counts.index, key=lambda k: (-int(counts[k]), k))
    return counts.loc[order] if len(order) else counts


def label_overview(counts: pd.Series, shown: int = SHOWN) -> str:
    """``"DOK2 (400 cells), EGR1 (400), ... and 13 more labels; looks like a control: 'control'
    (200 cells)"`` from :func:`label_counts`' output."""
    counts = counts.sort_values(ascending=False, kind="stable")
    if len(counts) == 0:
        return "no labels"
    head = [f"{k!r} ({_cells(n)})" if i == 0 else f"{k!r} ({int(n)})"
            for i, (k, n) in enumerate(counts.iloc[:shown].items())]
    text = ", ".join(head)
    if len(counts) > shown:
        text += f" and {len(counts) - shown} more labels"
    controls = [f"{k!r} ({_cells(n)})" for k, n in counts.items() if looks_like_control(k)]
    if controls:
        text += "; " + ("looks like a control: " if len(controls) == 1 else "look like controls: ")
        text += ", ".join(controls[:shown])
    return text


def _cells(n) -> str:
    return f"{int(n)} cell" + ("" if int(n) == 1 else "s")


def control_not_found(where: str, column: str, control: str, counts: pd.Series,
                      hint: str | None = None) -> str:
    """The one sentence for a control label absent from ``column``; ``counts``: cells per label
    (:func:`label_counts` of the cells' labels); ``hint``: what to do, when not to give another
    control label (e.g. a prediction that must use the real file's)."""
    like = [str(k) for k in counts.index if looks_like_control(k)]
    if hint is not None:
        hint = f": {hint}"
    elif len(like) == 1:
        hint = f"; if {like[0]!r} marks the control cells, give it as the control label (--control {like[0]})"
    else:
        hint = "; give the label of the control cells as the control label (--control LABEL)"
    return (f"{where}: control label {control!r} not found in obs[{column!r}] "
            f"(labels: {label_overview(counts)}){hint}")
