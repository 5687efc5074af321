"""Unpooled activations of frozen CNN layers."""

import numpy as np
from sklearn.base import clone

from .._checks import check_positive_int
from ._common import image_stack

__all__ = ["layer_activations"]


def layer_activations(images, features=None, layers=None, *, batch_size=16):
    """Raw (unpooled) activations of CNN layers for a batch of images.

    Parameters
    ----------
    images : ndarray or list
        One image (``H x W`` or ``H x W x C``) or a batch (``N x H x W x C`` array or list of
        same-size images), uint8 or float in [0, 1].
    features : DeepFeatures, optional
        The extractor whose backbone, input size and layers are used (fitted here when it is not
        yet). Default: ``DeepFeatures()`` (the offline EfficientNet-Lite0 at 224 px).
    layers : str, sequence of str or dict, optional
        Layers to read instead of the extractor's own (see :func:`medfeat.features.list_layers`);
        the extractor is cloned with them, the one given is not changed.
    batch_size : int, default 16

    Returns
    -------
    dict of str to ndarray of float32
        Layer alias -> activations, e.g. ``(N, C, h, w)`` for a convolutional map, in the order the
        layers were given. Computed in float32 without autocast, after the same resize and
        normalisation as :meth:`DeepFeatures.transform` (the resize in float, see
        :meth:`DeepFeatures.forward_tensor`).

    Examples
    --------
    >>> import numpy as np
    >>> from medfeat.features import DeepFeatures
    >>> X = np.zeros((2, 32, 32, 3), np.uint8)
    >>> maps = layer_activations(X, DeepFeatures(input_size=None), layers=["blocks.1", "blocks.2"])
    >>> {k: v.shape for k, v in maps.items()}
    {'blocks.1': (2, 24, 8, 8), 'blocks.2': (2, 40, 4, 4)}
    """
    import torch

    from medfeat.features import DeepFeatures

    if features is None:
        features = DeepFeatures()
    if not isinstance(features, DeepFeatures):
        raise TypeError(f"features must be a medfeat.features.DeepFeatures, got {type(features).__name__}.")
    check_positive_int(batch_size, "batch_size")
    batch = image_stack(images)
    if layers is not None:
        features = clone(features).set_params(layers=layers)
    if not hasattr(features, "n_features_out_"):
        features = features.fit(batch[:1])
    parts = {alias: [] for alias in features.layers_}
    with torch.no_grad():
        for start in range(0, len(batch), batch_size):
            x = torch.from_numpy(batch[start:start + batch_size]).float().div_(255.0)
            for alias, value in features.forward_tensor(x, pooled=False).items():
                parts[alias].append(value.float().cpu().numpy())
    return {alias: np.concatenate(chunks) for alias, chunks in parts.items()}
