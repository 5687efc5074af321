"""What frozen features see: layer activations, 2-D embeddings, saliency and occlusion maps.

Composes :mod:`medfeat.features` and any fitted scikit-learn classifier (like :mod:`medfeat.pipelines`);
no leaf subpackage imports it. torch, scikit-learn's manifold learners, umap-learn and matplotlib are
imported inside the functions that need them.

- :func:`layer_activations`: unpooled maps of chosen CNN layers for a batch of images;
- :func:`embed_2d`: PCA, t-SNE (scikit-learn) or UMAP (the optional ``umap-learn``) of a feature table;
- :func:`saliency`: gradient of a fitted *linear* scikit-learn head's score through the frozen CNN's
  pooled layer features to the pixels (the figure of Esteva et al. 2017, after Simonyan et al. 2013);
- :func:`occlusion_map`: the score drop when each part of an image is covered, for any fitted
  classifier or pipeline (Zeiler & Fergus 2014);
- :func:`plot_overlay`, :func:`plot_channels`, :func:`plot_embedding`: matplotlib helpers taking ``ax``.

Examples
--------
>>> import numpy as np
>>> from medfeat.inspect import embed_2d
>>> X = np.random.default_rng(0).normal(size=(20, 5))
>>> embed_2d(X, "pca").shape
(20, 2)
"""

from .activations import layer_activations
from .embedding import embed_2d
from .occlusion import occlusion_map
from .plotting import plot_channels, plot_embedding, plot_overlay
from .saliency import linear_head, saliency

__all__ = [
    "embed_2d",
    "layer_activations",
    "linear_head",
    "occlusion_map",
    "plot_channels",
    "plot_embedding",
    "plot_overlay",
    "saliency",
]
