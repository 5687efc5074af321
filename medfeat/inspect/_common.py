"""Helpers shared inside medfeat.inspect: pipeline steps, image batches."""

import numpy as np
from sklearn.pipeline import Pipeline

from medfeat._checks import check_image_batch


def flat_steps(model):
    """The estimators of a pipeline in order, nested pipelines expanded; a bare estimator is one step."""
    if not isinstance(model, Pipeline):
        return [model]
    out = []
    for _, step in model.steps:
        out.extend(flat_steps(step))
    return out


def image_stack(images, name="images"):
    """Checked images as one uint8 (N, H, W, C) array.

    An ``H x W`` (grey) or ``H x W x C`` array is one image, a 4-D array or a list is a batch; the
    images of a list must share one shape.
    """
    if not isinstance(images, (list, tuple)):
        images = np.asarray(images)
        if images.ndim in (2, 3):
            images = images[None] if images.ndim == 3 else images[None, :, :, None]
    batch = check_image_batch(images, name=name)
    if isinstance(batch, list):
        shapes = {im.shape for im in batch}
        if len(shapes) > 1:
            raise ValueError(f"{name} must share one size and channel count here, got shapes {sorted(shapes)}.")
        batch = np.stack(batch)
    return batch
