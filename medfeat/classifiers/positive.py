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

__all__ = ["positive_class"]


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
