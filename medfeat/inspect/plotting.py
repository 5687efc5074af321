"""Matplotlib helpers for the inspection results; each draws into a given Axes (pyplot only when none is given)."""

import numpy as np

__all__ = ["plot_channels", "plot_embedding", "plot_overlay"]


def _axes(ax, **kwargs):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(**kwargs)
    return ax


def plot_overlay(image, heat, ax=None, *, alpha=0.5, cmap="magma", title=None, colorbar=True, symmetric=False):
    """Draw a map (saliency, occlusion) over its image.

    Parameters
    ----------
    image : ndarray (H, W[, C])
        The image the map belongs to (drawn in grey underneath).
    heat : ndarray (H, W)
        The map; resized to the image when its shape differs.
    ax : matplotlib Axes, optional
    alpha : float, default 0.5
    cmap : str, default "magma"
    symmetric : bool, default False
        Centre the colour scale on zero (signed maps such as occlusion drops; use a diverging ``cmap``).

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> ax = Figure().add_subplot()
    >>> plot_overlay(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8)), ax, colorbar=False) is ax
    True
    """
    ax = _axes(ax, figsize=(4, 4))
    img = np.asarray(image)
    heat = np.asarray(heat, dtype=np.float64)
    if heat.ndim != 2:
        raise ValueError(f"heat must be a 2-D map, got shape {heat.shape}.")
    grey = img if img.ndim == 2 else img[..., :3].mean(axis=-1) if img.shape[-1] == 3 else img[..., 0]
    ax.imshow(grey, cmap="gray", interpolation="bilinear")
    extent = (-0.5, grey.shape[1] - 0.5, grey.shape[0] - 0.5, -0.5)
    vmin = vmax = None
    if symmetric:
        vmax = float(np.nanmax(np.abs(heat))) or 1.0
        vmin = -vmax
    im = ax.imshow(heat, cmap=cmap, alpha=alpha, extent=extent, vmin=vmin, vmax=vmax, interpolation="bilinear")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def plot_channels(activation, channels=None, axes=None, *, cmap="viridis", title=None):
    """Draw a few channels of one image's activation map side by side.

    Parameters
    ----------
    activation : ndarray (C, h, w)
        One image's map, e.g. ``layer_activations(...)[layer][i]``.
    channels : sequence of int, optional
        Channels to show; default the 6 with the largest mean activation.
    axes : sequence of matplotlib Axes, optional
        One per channel; a new one-row figure when omitted.

    Returns
    -------
    list of matplotlib Axes

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> act = np.zeros((4, 5, 5)); act[2] += 1.0
    >>> [ax.get_title() for ax in plot_channels(act, axes=Figure().subplots(1, 2))]
    ['ch 2', 'ch 0']
    """
    act = np.asarray(activation, dtype=np.float64)
    if act.ndim != 3:
        raise ValueError(f"activation must be one image's (C, h, w) map, got shape {act.shape}.")
    if channels is None:
        k = 6 if axes is None else len(np.ravel(axes))
        channels = np.argsort(-act.mean(axis=(1, 2)), kind="stable")[:k]  # ties: lower channel first
    channels = [int(c) for c in channels]
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, len(channels), figsize=(1.8 * len(channels), 2.0), squeeze=False)
        axes = axes[0]
    axes = list(np.ravel(axes))
    if len(axes) < len(channels):
        raise ValueError(f"axes holds {len(axes)} Axes for {len(channels)} channels.")
    for ax, ch in zip(axes, channels):
        ax.imshow(act[ch], cmap=cmap, interpolation="nearest")
        ax.set_title(f"ch {ch}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        axes[0].figure.suptitle(title, fontsize=9)
    return axes[:len(channels)]


def plot_embedding(embedding, labels=None, ax=None, *, markers=None, title=None, s=14, alpha=0.8):
    """Scatter a 2-D embedding, coloured by ``labels`` and, optionally, shaped by ``markers``.

    Parameters
    ----------
    embedding : ndarray (N, 2)
        From :func:`embed_2d`.
    labels : array-like (N,), optional
        Colour groups (e.g. class).
    ax : matplotlib Axes, optional
    markers : array-like (N,), optional
        Marker groups (e.g. slide or patient), to see whether points cluster by source rather than class.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> ax = plot_embedding(np.eye(4, 2), ["a", "a", "b", "b"], Figure().add_subplot())
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['a', 'b']
    """
    z = np.asarray(embedding, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"embedding must have shape (N, 2), got {z.shape}.")
    ax = _axes(ax, figsize=(4.5, 4))
    n = len(z)
    labels = np.asarray(labels) if labels is not None else np.zeros(n, dtype=int)
    shapes = np.asarray(markers) if markers is not None else np.zeros(n, dtype=int)
    if labels.shape != (n,) or shapes.shape != (n,):
        raise ValueError(f"labels and markers must have one value per point ({n}).")
    symbols = "osD^v<>pX*hP"
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    label_values = list(dict.fromkeys(labels.tolist()))
    marker_values = list(dict.fromkeys(shapes.tolist()))
    for i, lab in enumerate(label_values):
        for j, mk in enumerate(marker_values):
            keep = (labels == lab) & (shapes == mk)
            if keep.any():
                name = str(lab) if markers is None else f"{lab} / {mk}"
                ax.scatter(z[keep, 0], z[keep, 1], s=s, alpha=alpha, color=cmap(i % 10),
                           marker=symbols[j % len(symbols)], label=name if labels is not None else None)
    if len(label_values) * len(marker_values) <= 16 and (len(label_values) > 1 or markers is not None):
        ax.legend(fontsize=7, frameon=False, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax
