"""Saliency of a linear scikit-learn head through a frozen CNN, down to the pixels."""

from collections import namedtuple

import numpy as np

from .._checks import check_positive_int
from ._common import flat_steps, image_stack

__all__ = ["LinearHead", "linear_head", "saliency"]

LinearHead = namedtuple("LinearHead", ["coef", "intercept", "classes"])
LinearHead.__doc__ = (
    "A fitted chain of linear steps collapsed to one affine map of the features: decision = X @ coef.T + "
    "intercept, with coef of shape (k, n_features) (k = 1 for a binary head: the score of classes[1])."
)


def _linear_classes():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import (
        LogisticRegression,
        LogisticRegressionCV,
        Perceptron,
        RidgeClassifier,
        RidgeClassifierCV,
        SGDClassifier,
    )
    from sklearn.svm import LinearSVC

    return (LogisticRegression, LogisticRegressionCV, LinearSVC, SGDClassifier, RidgeClassifier,
            RidgeClassifierCV, Perceptron, LinearDiscriminantAnalysis)


def _affine_step(step):
    """(M, c) with step.transform(x) = x @ M.T + c for a fitted linear transformer, else None."""
    from sklearn.decomposition import PCA, IncrementalPCA, TruncatedSVD
    from sklearn.feature_selection import SelectorMixin
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    if step is None or step == "passthrough":
        return "identity"
    if isinstance(step, StandardScaler):
        d = step.n_features_in_
        mean = step.mean_ if step.mean_ is not None else np.zeros(d)
        scale = step.scale_ if step.scale_ is not None else np.ones(d)
        if not step.with_mean:
            mean = np.zeros(d)
        return np.diag(1.0 / scale), -mean / scale
    if isinstance(step, MinMaxScaler):
        if step.clip:
            return None  # clipping is not linear
        return np.diag(step.scale_), np.asarray(step.min_, dtype=np.float64)
    if isinstance(step, MaxAbsScaler):
        return np.diag(1.0 / step.scale_), np.zeros(step.n_features_in_)
    if isinstance(step, (PCA, IncrementalPCA)):
        comps = np.asarray(step.components_, dtype=np.float64)
        if step.whiten:
            comps = comps / np.sqrt(step.explained_variance_)[:, None]
        return comps, -comps @ step.mean_
    if isinstance(step, TruncatedSVD):
        return np.asarray(step.components_, dtype=np.float64), np.zeros(step.components_.shape[0])
    if isinstance(step, SelectorMixin):
        keep = np.flatnonzero(step.get_support())
        m = np.zeros((keep.size, step.n_features_in_))
        m[np.arange(keep.size), keep] = 1.0
        return m, np.zeros(keep.size)
    return None


def _refuse(step, why):
    return TypeError(
        f"saliency needs a head whose score is a linear function of the features, but the pipeline holds "
        f"{type(step).__name__} ({why}). Supported: StandardScaler, MinMaxScaler (clip=False), MaxAbsScaler, "
        "PCA, TruncatedSVD and feature selectors, ending in LogisticRegression, LinearSVC, SGDClassifier, "
        "RidgeClassifier, Perceptron, LinearDiscriminantAnalysis or SVC(kernel='linear') on two classes. "
        "For any other classifier use medfeat.inspect.occlusion_map, which needs no gradient."
    )


def linear_head(steps):
    """Collapse fitted linear steps (scalers, PCA, a linear classifier) into one affine map of their input.

    Parameters
    ----------
    steps : estimator, Pipeline or list of estimators
        The part of a fitted pipeline after the feature extractor.

    Returns
    -------
    LinearHead
        ``coef`` (k, n_features), ``intercept`` (k,), ``classes``; for a binary head k = 1 and the
        row is the decision value of ``classes[1]``.

    Raises
    ------
    TypeError
        A step that is not linear (an RBF SVM, a forest, XGBoost, a Normalizer...): the message
        says which and points to :func:`occlusion_map`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.linear_model import LogisticRegression
    >>> X = np.random.default_rng(0).normal(size=(30, 4)); y = (X[:, 0] > 0).astype(int)
    >>> head = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    >>> lin = linear_head(head)
    >>> bool(np.allclose(X @ lin.coef.T[:, 0] + lin.intercept[0], head.decision_function(X)))
    True
    """
    from sklearn.svm import SVC, NuSVC
    from sklearn.utils.validation import check_is_fitted

    seq = []
    for step in (steps if isinstance(steps, (list, tuple)) else [steps]):
        seq.extend(flat_steps(step))
    if not seq:
        raise ValueError("steps is empty; expected at least the classifier.")
    *transforms, clf = seq
    if clf is None or clf == "passthrough":
        raise ValueError("the pipeline has no final classifier.")
    check_is_fitted(clf)
    if isinstance(clf, (SVC, NuSVC)):
        if clf.kernel != "linear":
            raise _refuse(clf, f"kernel={clf.kernel!r} is not linear in the features")
        if len(clf.classes_) != 2:
            raise _refuse(clf, "a multi-class SVC votes over one-vs-one pairs; its score is not one linear map")
    elif not isinstance(clf, _linear_classes()):
        raise _refuse(clf, "not one of the linear classifiers whose gradient is known")
    coef = np.atleast_2d(np.asarray(clf.coef_, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(clf.intercept_, dtype=np.float64))
    if intercept.size == 1 and coef.shape[0] == 1:
        intercept = intercept.reshape(1)
    # Push the rows back through the transformers: w . (M x + c) + b = (w M) . x + (w . c + b).
    for step in reversed(transforms):
        affine = _affine_step(step)
        if affine is None:
            raise _refuse(step, "a transformer that is not linear, or not one medfeat knows to be")
        if isinstance(affine, str):
            continue
        check_is_fitted(step)
        m, c = affine
        intercept = intercept + coef @ c
        coef = coef @ m
    return LinearHead(coef, intercept, np.asarray(clf.classes_))


def _split(model, features):
    """(DeepFeatures, head steps) from a pipeline whose first step is the extractor, or from features=..."""
    from medfeat.features import DeepFeatures

    if features is not None:
        if not isinstance(features, DeepFeatures):
            raise TypeError(f"features must be a fitted medfeat.features.DeepFeatures, got {type(features).__name__}.")
        return features, flat_steps(model)
    steps = flat_steps(model)
    first = steps[0]
    if not isinstance(first, DeepFeatures):
        raise TypeError(
            f"saliency needs a pipeline whose first step is a fitted DeepFeatures (the frozen CNN), got "
            f"{type(first).__name__} first; handcrafted features (LBP, GIST, colour, GLCM) and their unions "
            "are not differentiable in the pixels. Pass features=... with a separate head, or use occlusion_map."
        )
    if len(steps) < 2:
        raise ValueError("the pipeline holds only the feature extractor; a fitted classifier must follow it.")
    return first, steps[1:]


def saliency(model, images, *, features=None, target=None, reduce="absmax", batch_size=8, check=True):
    """Gradient of a linear classifier's score through a frozen CNN to the input pixels.

    The score is the decision value of a fitted linear scikit-learn head (e.g. ``StandardScaler``
    + ``LogisticRegression``) on the pooled layer features of :class:`~medfeat.features.DeepFeatures`;
    its gradient with respect to every pixel is computed by automatic differentiation through the
    CNN (Simonyan et al. 2013; the saliency figure of Esteva et al. 2017). The CNN stays frozen:
    nothing is trained.

    Parameters
    ----------
    model : fitted Pipeline or classifier
        A pipeline whose first step is a fitted ``DeepFeatures`` followed by linear steps (see
        :func:`linear_head`), e.g. ``make_patch_pipeline("deep", "logreg")``; or, with ``features``,
        just the head fitted on ``features.transform(X)``.
    images : ndarray or list
        One image (``H x W [x C]``) or a batch of same-size images, uint8 or float in [0, 1].
    features : DeepFeatures, optional
        The fitted extractor, when ``model`` is only the head.
    target : class label, optional
        The class whose score is differentiated. Default: ``classes[1]`` for a binary head, the
        predicted class of each image for a multi-class one.
    reduce : {"absmax", None}, default "absmax"
        ``"absmax"``: the largest absolute gradient over the colour channels, an (N, H, W) map
        (Simonyan et al.); None: the signed gradient, (N, H, W, C).
    batch_size : int, default 8
    check : bool, default True
        Check that the collapsed linear head reproduces ``model``'s own ``decision_function`` on the
        features of ``images`` (a safety net against a step that is not what it seems).

    Returns
    -------
    ndarray of float32
        d score / d pixel, pixels on the [0, 1] scale, at the input image's size (the resize to the
        network's input size is part of the differentiated function).

    Raises
    ------
    TypeError
        The head is not linear (the message says which step and suggests :func:`occlusion_map`), or
        the pipeline does not start with ``DeepFeatures``.

    Notes
    -----
    The gradient is that of the float path of :meth:`DeepFeatures.forward_tensor`; ``transform``
    resizes ``uint8`` images on the CPU, so its features differ from it by that rounding only.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from medfeat.features import DeepFeatures
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8); y = np.r_[0, 0, 0, 1, 1, 1]
    >>> deep = DeepFeatures(layers="blocks.2", input_size=None).fit(X)
    >>> head = LogisticRegression().fit(deep.transform(X), y)
    >>> saliency(head, X[:2], features=deep).shape
    (2, 32, 32)
    """
    import torch

    if reduce not in ("absmax", None):
        raise ValueError(f"reduce must be 'absmax' or None, got {reduce!r}.")
    check_positive_int(batch_size, "batch_size")
    deep, head_steps = _split(model, features)
    head = linear_head(head_steps)
    batch = image_stack(images)
    classes = list(head.classes)
    if target is not None and target not in classes:
        raise ValueError(f"target {target!r} is not a class of the head; classes are {classes}.")
    coef = torch.as_tensor(head.coef, dtype=torch.float32)
    intercept = torch.as_tensor(head.intercept, dtype=torch.float32)
    if check:
        feats = deep.transform(batch)
        ours = feats.astype(np.float64) @ head.coef.T + head.intercept
        theirs = _decision(head_steps, feats)
        if ours.shape[1] == 1:
            ours = ours[:, 0]
        if theirs.shape != ours.shape or not np.allclose(ours, theirs, rtol=1e-4, atol=1e-4 * (np.abs(theirs).max() + 1)):
            raise RuntimeError(
                "the collapsed linear head does not reproduce the model's decision_function on these images; "
                "a step of the pipeline is not the linear map medfeat takes it for. Use occlusion_map instead."
            )
    out = np.empty(batch.shape, dtype=np.float32)
    for start in range(0, len(batch), batch_size):
        x = torch.from_numpy(batch[start:start + batch_size]).float().div_(255.0).requires_grad_(True)
        blocks = deep.forward_tensor(x)
        f = torch.cat([blocks[a].float() for a in deep.layers_], dim=1) if len(blocks) > 1 else next(iter(blocks.values()))
        scores = f.cpu() @ coef.T + intercept  # (n, k)
        if scores.shape[1] == 1:  # binary: the row scores classes[1]
            s = scores[:, 0] if target is None or target == classes[1] else -scores[:, 0]
        else:
            idx = scores.argmax(1) if target is None else torch.full((len(scores),), classes.index(target))
            s = scores.gather(1, idx[:, None])[:, 0]
        (grad,) = torch.autograd.grad(s.sum(), x)
        out[start:start + len(x)] = grad.numpy()
    return np.abs(out).max(axis=-1) if reduce == "absmax" else out


def _decision(steps, X):
    """decision_function of the head steps applied in order (the model's own arithmetic)."""
    *transforms, clf = steps
    for step in transforms:
        if step is not None and step != "passthrough":
            X = step.transform(X)
    return np.asarray(clf.decision_function(X), dtype=np.float64)
