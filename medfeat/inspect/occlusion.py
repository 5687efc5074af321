"""Occlusion maps: how much a classifier's score drops when each part of the image is covered."""

import numpy as np

from ._common import image_stack

__all__ = ["occlusion_map"]


def _class_scores(model, X):
    """(n, k) scores, columns in ``model.classes_`` order: probabilities when available, else decisions."""
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(X), dtype=np.float64)
    if hasattr(model, "decision_function"):
        d = np.asarray(model.decision_function(X), dtype=np.float64)
        return np.column_stack([-d, d]) if d.ndim == 1 else d
    raise TypeError(f"{type(model).__name__} has neither predict_proba nor decision_function; expected a fitted classifier.")


def _starts(length, window, stride):
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:  # the last window ends at the border, so every pixel is covered
        starts.append(length - window)
    return starts


def occlusion_map(model, image, *, window=16, stride=8, baseline="mean", target=None, batch_size=64):
    """Score drop when a square of the image is replaced by a baseline, averaged per pixel.

    Each ``window x window`` square (moved by ``stride``, the last one flush with the border) is
    filled with ``baseline`` and the occluded images are scored by ``model``; a pixel's value is
    the mean over the squares covering it of ``score(image) - score(occluded)`` (Zeiler & Fergus
    2014). Positive: covering the pixel lowers the target's score, so the model relies on it. Works
    for any fitted classifier or pipeline on images (handcrafted or deep features, any head), at
    the cost of one prediction per square.

    Parameters
    ----------
    model : fitted classifier or Pipeline
        Takes an image batch; its score is ``predict_proba`` of the target (``decision_function``
        when there is no ``predict_proba``).
    image : ndarray
        One ``H x W`` or ``H x W x C`` image, uint8 or float in [0, 1].
    window : int, default 16
        Side of the occluding square in pixels.
    stride : int, default 8
    baseline : "mean", number or sequence, default "mean"
        Fill value: ``"mean"`` is the image's mean colour (less out-of-distribution than black); a
        number or per-channel values are uint8 levels (0-255).
    target : class label, optional
        Class whose score is followed; default ``classes_[1]`` for two classes, else the class
        predicted for the unoccluded image.
    batch_size : int, default 64
        Occluded images scored per call.

    Returns
    -------
    ndarray of float64, shape (H, W)

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> left_mean = FunctionTransformer(lambda X: X[:, :, :8].mean(axis=(1, 2, 3))[:, None])
    >>> X = np.stack([np.full((16, 16, 3), v, np.uint8) for v in (0, 50, 200, 255)]); y = [0, 0, 1, 1]
    >>> model = make_pipeline(left_mean, LogisticRegression()).fit(X, y)
    >>> m = occlusion_map(model, X[3], window=4, stride=4, baseline=0)
    >>> bool(m[:, :8].min() > 0 and np.all(m[:, 8:] == 0))   # only the left half matters
    True
    """
    img = image_stack(image, name="image")
    if len(img) != 1:
        raise ValueError(f"image must be one image (H x W or H x W x C), got a batch of {len(img)}.")
    img = img[0]
    h, w, c = img.shape
    for name, v in (("window", window), ("stride", stride), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}.")
    if window > min(h, w):
        raise ValueError(f"window={window} is larger than the image ({h} x {w}).")
    if isinstance(baseline, str):
        if baseline != "mean":
            raise ValueError(f"baseline must be 'mean', a number or one value per channel, got {baseline!r}.")
        fill = np.rint(img.reshape(-1, c).mean(axis=0)).astype(np.uint8)
    else:
        fill = np.asarray(baseline, dtype=np.float64).reshape(-1)
        if fill.size not in (1, c) or not np.all((fill >= 0) & (fill <= 255)):
            raise ValueError(f"baseline must be one value or {c} values in 0-255, got {baseline!r}.")
        fill = np.broadcast_to(np.rint(fill), (c,)).astype(np.uint8)
    classes = list(getattr(model, "classes_", []))
    base = _class_scores(model, img[None])[0]
    if target is None:
        col = 1 if len(base) == 2 else int(np.argmax(base))
    else:
        if target not in classes:
            raise ValueError(f"target {target!r} is not a class of the model; classes are {classes}.")
        col = classes.index(target)
    boxes = [(y0, x0) for y0 in _starts(h, window, stride) for x0 in _starts(w, window, stride)]
    total = np.zeros((h, w))
    count = np.zeros((h, w))
    for start in range(0, len(boxes), batch_size):
        chunk = boxes[start:start + batch_size]
        batch = np.repeat(img[None], len(chunk), axis=0)
        for i, (y0, x0) in enumerate(chunk):
            batch[i, y0:y0 + window, x0:x0 + window] = fill
        drop = base[col] - _class_scores(model, batch)[:, col]
        for (y0, x0), d in zip(chunk, drop):
            total[y0:y0 + window, x0:x0 + window] += d
            count[y0:y0 + window, x0:x0 + window] += 1
    return total / count
