"""Every prediction method by name: TransPert and the baselines, behind one interface.

Each method is a predictor with ``fit(references: {line: summary}, target_train: summary)`` and
``predict(perturbations) -> AnnData`` (layers ``mean``, ``delta``, ``log2fc``, optional
``deg_probability``; ``uns["transpert_prediction"]`` names the method), all on the log1p scale.
``--method``, a run config's ``methods`` and the demo take these names.

Zero-shot methods (:data:`ZERO_SHOT_METHODS`) predict a target known only by its control cells:
their ``fit`` takes the target's controls (cells, a summary profile or a Series of log1p
control means) in place of ``target_train``. :func:`zero_shot_method` maps a few-shot name to
its zero-shot counterpart (``transpert`` -> ``transpert-zero-shot``, ``control`` ->
``zero-shot-control`` ...).
"""

from __future__ import annotations

import warnings

from transpert._errors import TranspertInputError

#: every method ``--method`` accepts: the TransPert estimator, then the baselines
METHODS: tuple[str, ...] = ("transpert", "control", "cell-mean", "train-mean", "reference-mean",
                            "linear", "linear-transfer", "deg-frequency",
                            "transpert-zero-shot", "zero-shot-control", "zero-shot-reference-mean",
                            "zero-shot-mean-response", "zero-shot-linear")
#: the methods whose fit takes the target's control cells only
ZERO_SHOT_METHODS: tuple[str, ...] = tuple(m for m in METHODS if "zero-shot" in m)
#: few-shot method -> its zero-shot counterpart
_ZERO_SHOT_OF = {"transpert": "transpert-zero-shot", "control": "zero-shot-control",
                 "reference-mean": "zero-shot-reference-mean", "cell-mean": "zero-shot-mean-response",
                 "train-mean": "zero-shot-mean-response", "linear-transfer": "zero-shot-linear"}


def zero_shot_method(method: str) -> str:
    """The zero-shot counterpart of ``method`` (itself when it is zero-shot already); a method
    without one is an error."""
    if method in ZERO_SHOT_METHODS:
        return method
    if method not in _ZERO_SHOT_OF:
        raise TranspertInputError(
            f"method {method!r} needs target training perturbations and has no zero-shot counterpart; "
            f"zero-shot methods: {', '.join(ZERO_SHOT_METHODS)}")
    return _ZERO_SHOT_OF[method]


def make_predictor(method: str, params: dict | None = None):
    """A new, unfitted predictor ``method`` (see :data:`METHODS`) with ``params``.

    Parameters
    ----------
    method
        One of :data:`METHODS`: ``"transpert"`` or a baseline name.
    params
        Keyword arguments of the predictor's constructor (e.g. ``{"cv_repeats": 1}``).

    Returns
    -------
    Predictor
        With ``fit(references, target_train)`` on summary profiles and ``predict(perturbations)``
        returning a pseudo-bulk prediction on the log1p scale.

    Raises
    ------
    TranspertInputError
        For an unknown method or a parameter its constructor does not take.

    Examples
    --------
    >>> from transpert.methods import make_predictor
    >>> make_predictor("transpert", {"cv_repeats": 1}).cv_repeats
    1
    """
    params = dict(params or {})
    if method == "transpert":
        from transpert.transfer import TransPert

        try:
            return TransPert(**params)
        except TypeError as err:
            raise TranspertInputError(f"transpert: bad parameter ({err})") from None
    if method == "transpert-zero-shot":
        from transpert.transfer import ZeroShotTransPert

        try:
            return ZeroShotTransPert(**params)
        except TypeError as err:
            raise TranspertInputError(f"transpert-zero-shot: bad parameter ({err})") from None
    from transpert.baselines import BASELINES, get_baseline

    if method not in BASELINES:
        raise TranspertInputError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    try:
        return get_baseline(method, **params)
    except TypeError as err:
        raise TranspertInputError(f"{method}: bad parameter ({err})") from None


def fit_predict(method: str, references: dict, target_train, perturbations, params: dict | None = None):
    """Fit ``method`` on summaries and predict ``perturbations``; returns ``(predictor, prediction)``.

    Parameters
    ----------
    method, params
        As :func:`make_predictor`.
    references
        Reference line name -> summary profile (:func:`transpert.summarize.summarize`).
    target_train
        The target line's training summary profile (its control and training perturbations);
        for a zero-shot method, the target's controls.
    perturbations
        The perturbations to predict.

    Returns
    -------
    tuple
        The fitted predictor, and the prediction: an AnnData with obs = ``perturbations``, var =
        the target's genes, layers ``mean`` and ``delta`` (log1p pseudo-bulk and its difference
        to the target's controls), ``log2fc`` and, for methods that call DE genes,
        ``deg_probability``.

    Examples
    --------
    >>> from transpert.methods import fit_predict
    >>> model, pred = fit_predict("train-mean", {"K562": k562}, h1_train, ["GENE1"])  # doctest: +SKIP
    """
    predictor = make_predictor(method, params)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        predictor.fit(references, target_train)
        prediction = predictor.predict(list(perturbations))
    return predictor, prediction
