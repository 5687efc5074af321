"""The one positive-class rule of medfeat: which of a binary classifier's two classes is "positive".

Training, cross-validated scores, heatmaps and reports all take the positive class from
:func:`positive_class`, and :class:`medfeat.pipelines.SlidePatchClassifier` records it (``positive_label_``),
so a heatmap always shows the score of the class the model was trained to call positive:

- an explicit ``positive_label`` (``--positive-label`` on the command line) wins; it must be one of the
  two classes (compared as given, or by its text, since command-line values are strings);
- otherwise the classes must be ``0``/``1`` (or ``False``/``True``) and ``1`` is positive;
- any other pair (``1``/``2``, ``"Tumor"``/``"normal"``) is an error asking for ``positive_label``: the
  positive class is never guessed from the sort order.
"""

import numbers

import numpy as np

__all__ = ["class_scores", "positive_class", "positive_scores"]


def _is_zero_one(classes):
    values = []
    for c in classes:
        if isinstance(c, (bool, np.bool_)):
            values.append(int(c))
        elif isinstance(c, numbers.Number) and float(c) in (0.0, 1.0):
            values.append(int(c))
        else:
            return False
    return sorted(values) == [0, 1]


def positive_class(classes, positive_label=None):
    """The positive class among the two ``classes`` of a binary classifier.

    Parameters
    ----------
    classes : sequence
        The classifier's ``classes_`` (exactly two).
    positive_label : object, optional
        The positive class. Required unless the classes are 0/1 (or False/True).

    Returns
    -------
    object
        The element of ``classes`` that is positive.

    Raises
    ------
    ValueError
        If there are not two classes, ``positive_label`` is not one of them, or it is needed and missing.

    Examples
    --------
    >>> positive_class([0, 1])
    1
    >>> positive_class(["Tumor", "normal"], positive_label="Tumor")
    'Tumor'
    >>> positive_class([1, 2], positive_label="2")   # command-line values are text
    2
    """
    classes = list(np.asarray(classes, dtype=object).ravel())
    if len(classes) != 2:
        raise ValueError(f"a positive class needs exactly two classes, got {len(classes)}: {classes[:10]}.")
    if positive_label is not None:
        # equal values first (True == 1 in Python, so a bool only matches a bool), then equal text
        same = [c for c in classes if c == positive_label
                and isinstance(c, (bool, np.bool_)) == isinstance(positive_label, (bool, np.bool_))]
        if len(same) == 1:
            return same[0]
        matches = [c for c in classes if str(c) == str(positive_label)]
        if len(matches) == 1:
            return matches[0]
        raise ValueError(f"positive_label={positive_label!r} is not one of the classes {[str(c) for c in classes]}.")
    if _is_zero_one(classes):
        return next(c for c in classes if int(c) == 1)
    raise ValueError(
        f"the labels are {[str(c) for c in classes]}, not 0/1: say which class is positive with positive_label= "
        "(command line: --positive-label); it is not guessed from the sort order."
    )


def class_scores(model, X, label):
    """Continuous score of one class of a fitted classifier: its ``predict_proba`` column, else its
    ``decision_function`` (column, or the binary decision value, negated for ``classes_[0]``).

    The one place medfeat turns a classifier's output into a score for a class; :func:`positive_scores`
    and :func:`medfeat.classifiers.decision_scores` use it.

    Returns
    -------
    scores : ndarray of float64, shape (n,)
    kind : {"probability", "decision"}

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.svm import LinearSVC
    >>> m = LinearSVC().fit([[0.0], [1.0]], ["a", "b"])
    >>> a, _ = class_scores(m, np.array([[0.0], [1.0]]), "a"); b, kind = class_scores(m, np.array([[0.0], [1.0]]), "b")
    >>> kind, bool(np.allclose(a, -b)), bool(b[1] > b[0])
    ('decision', True, True)
    """
    if not hasattr(model, "predict_proba") and not hasattr(model, "decision_function"):
        raise TypeError(f"{type(model).__name__} has neither predict_proba nor decision_function; expected a classifier.")
    classes = list(getattr(model, "classes_", []))
    if label not in classes:
        raise ValueError(f"{label!r} is not one of the classes {classes} of {type(model).__name__}.")
    col = classes.index(label)
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        return proba[:, col], "probability"
    dec = np.asarray(model.decision_function(X), dtype=np.float64)
    if dec.ndim == 2 and dec.shape[1] > 1:
        return dec[:, col], "decision"
    dec = dec.reshape(-1)
    return (dec if col == len(classes) - 1 else -dec), "decision"  # a binary decision value favours classes_[1]


def positive_scores(model, X, positive_label=None):
    """Scores of the positive class: ``predict_proba[:, positive]`` or ``decision_function``.

    The positive class follows :func:`medfeat.classifiers.positive_class`: ``positive_label`` if given,
    else the one the model recorded (``positive_label_``, set by :class:`SlidePatchClassifier`), else ``1``
    of 0/1 classes; other classes without a stated positive label are an error, never the last class.

    Parameters
    ----------
    model : fitted estimator
    X : array-like
        Input accepted by ``model``.
    positive_label : object, optional
        The positive class, for models that do not record one.

    Returns
    -------
    scores : ndarray of float64, shape (n,)
    kind : {"probability", "decision"}

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> m = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> s, kind = positive_scores(m, np.array([[0.0], [1.0]]))
    >>> kind, bool(s[1] > s[0])
    ('probability', True)
    """
    if not hasattr(model, "predict_proba") and not hasattr(model, "decision_function"):
        raise TypeError(f"{type(model).__name__} has neither predict_proba nor decision_function; expected a classifier.")
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise ValueError(f"{type(model).__name__} has no classes_; expected a fitted binary classifier.")
    recorded = getattr(model, "positive_label_", None)
    if positive_label is not None and recorded is not None and str(positive_label) != str(recorded):
        raise ValueError(f"positive_label={positive_label!r} contradicts the model, which was trained with positive "
                         f"class {recorded!r}.")
    return class_scores(model, X, positive_class(classes, recorded if positive_label is None else positive_label))
