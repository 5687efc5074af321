"""The slide-grid specification: every setting that decides which patches a slide is cut into.

:class:`GridSpec` is defined once, validated once (when it is built) and travels as one object:
the CLI builds it from its options, :func:`medfeat.pipelines.extract_slide_features` records it in every
feature store (attribute ``grid_spec``), training copies it into the model and its metadata, and heatmaps
read it back, so a model scores slides on exactly the grid it was trained on.

The defaults below are the project's defaults; nothing else spells them out. The reader settings that
change speed but not the patches (batch size, worker count) are here too, with their one validation
rule (:func:`check_batch_size`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

from .._checks import check_positive_int

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_NUM_WORKERS", "TISSUE_METHODS", "GridSpec", "check_batch_size"]

#: Patches per batch read from the slide and passed through the feature transformer (and the CNN).
DEFAULT_BATCH_SIZE = 64
#: Slide-reader workers overlapping slide I/O with compute: "auto" picks the number from the CPU count
#: (:func:`medfeat.slides.auto_num_workers`).
DEFAULT_NUM_WORKERS = "auto"
#: Tissue detection methods a spec can name (None: keep every patch).
TISSUE_METHODS = ("otsu", "gray")


def check_batch_size(batch_size, name="batch_size"):
    """The one rule for a batch size: a positive integer. Returns it as ``int``.

    Examples
    --------
    >>> check_batch_size(8)
    8
    >>> check_batch_size(0)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be a positive integer, got 0.
    """
    return check_positive_int(batch_size, name)


def _positive_float(value, name, *, allow_none=False):
    if value is None and allow_none:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = float("nan")
    if isinstance(value, bool) or not (math.isfinite(out) and out > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    return out


@dataclass(frozen=True)
class GridSpec:
    """Which patches a slide is cut into: resolution, patch size, stride, tissue rule and scales.

    Built once and validated once; frozen, so it can be shared, compared and recorded
    (:meth:`to_dict` / :meth:`from_dict`, the ``grid_spec`` attribute of feature stores).

    Parameters
    ----------
    mpp : float or None, default 0.5
        Target resolution in microns per pixel (the patches' resolution, not the slide's own: that is
        ``slide_mpp`` everywhere in medfeat). None when ``magnification`` is given instead.
    magnification : float or None, default None
        Target objective magnification instead of ``mpp`` (see
        :meth:`medfeat.slides.PatchGrid.from_reader`). Giving it alone sets ``mpp`` to None.
    size : int, default 224
        Patch side in pixels at the target resolution.
    stride : int or None, default None
        Grid step in pixels at the target resolution; None means ``size`` (non-overlapping).
    tissue : {"otsu", "gray"}, TissueMask or None, default "otsu"
        Tissue detection; None keeps every patch. A precomputed
        :class:`~medfeat.slides.TissueMask` is accepted (and recorded as ``"mask"``).
    min_tissue : float, default 0.5
        Minimum tissue fraction of a kept patch, in [0, 1].
    tissue_mpp : float, default 8.0
        Resolution (um/px) of the low-resolution view the tissue mask is computed on.
    scales : tuple of float, default (1.0,)
        Fields of view read around each patch (multiscale context, Liu et al. 2017), scale 0 the finest.

    Examples
    --------
    >>> spec = GridSpec(mpp=1.0, size=64)
    >>> spec.step, spec.scales
    (64, (1.0,))
    >>> GridSpec.from_dict(spec.to_dict()) == spec
    True
    >>> GridSpec(magnification=20).mpp is None
    True
    >>> GridSpec(size=0)
    Traceback (most recent call last):
    ...
    ValueError: size must be a positive integer, got 0.
    """

    mpp: float | None = 0.5
    magnification: float | None = None
    size: int = 224
    stride: int | None = None
    tissue: object = "otsu"
    min_tissue: float = 0.5
    tissue_mpp: float = 8.0
    scales: tuple = (1.0,)

    def __init__(self, mpp=dataclasses.MISSING, magnification=None, size=224, stride=None, tissue="otsu",
                 min_tissue=0.5, tissue_mpp=8.0, scales=(1.0,)):
        # mpp's default (0.5) applies only when magnification is not given: the two are alternatives.
        if mpp is dataclasses.MISSING:
            mpp = None if magnification is not None else 0.5
        if mpp is not None and magnification is not None:
            raise ValueError(f"give either mpp or magnification, not both (got mpp={mpp!r}, "
                             f"magnification={magnification!r}).")
        if mpp is None and magnification is None:
            raise ValueError("one of mpp or magnification must be given.")
        mpp = _positive_float(mpp, "mpp", allow_none=True)
        magnification = _positive_float(magnification, "magnification", allow_none=True)
        size = check_positive_int(size, "size")
        stride = None if stride is None else check_positive_int(stride, "stride")
        if isinstance(tissue, str):
            if tissue not in TISSUE_METHODS:
                raise ValueError(f"tissue must be one of {list(TISSUE_METHODS)}, a TissueMask or None, got {tissue!r}.")
        elif tissue is not None and type(tissue).__name__ != "TissueMask":
            raise ValueError(f"tissue must be one of {list(TISSUE_METHODS)}, a TissueMask or None, "
                             f"got {type(tissue).__name__}.")
        try:
            min_tissue = float(min_tissue)
        except (TypeError, ValueError):
            min_tissue = float("nan")
        if not 0.0 <= min_tissue <= 1.0:
            raise ValueError(f"min_tissue must be in [0, 1], got {min_tissue!r}.")
        tissue_mpp = _positive_float(tissue_mpp, "tissue_mpp")
        if isinstance(scales, (int, float)):
            scales = (scales,)
        try:
            scales = tuple(_positive_float(s, "scales") for s in scales)
        except TypeError:
            raise ValueError(f"scales must be a sequence of positive numbers, got {scales!r}.") from None
        if not scales:
            raise ValueError("scales must hold at least one field-of-view factor, e.g. (1,).")
        for key, value in dict(mpp=mpp, magnification=magnification, size=size, stride=stride, tissue=tissue,
                               min_tissue=min_tissue, tissue_mpp=tissue_mpp, scales=scales).items():
            object.__setattr__(self, key, value)

    # -- derived -------------------------------------------------------------------------------------
    @property
    def step(self):
        """Grid step in pixels at the target resolution (``stride``, or ``size`` when it is None)."""
        return self.size if self.stride is None else self.stride

    @property
    def tissue_name(self):
        """``tissue`` as recorded: the method name, ``"none"`` or ``"mask"``."""
        if self.tissue is None:
            return "none"
        return self.tissue if isinstance(self.tissue, str) else "mask"

    def replace(self, **changes):
        """A copy with some fields changed (validated again). ``magnification=`` alone clears ``mpp``.

        Examples
        --------
        >>> GridSpec().replace(size=64, magnification=10).describe()
        '10x, 64 px, stride 64, tissue otsu >= 0.5'
        """
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"unknown grid setting(s) {sorted(unknown)}; GridSpec has {sorted(fields)}.")
        if changes.get("magnification") is not None and "mpp" not in changes:
            fields["mpp"] = None
        if changes.get("mpp") is not None and "magnification" not in changes:
            fields["magnification"] = None
        fields.update(changes)
        return type(self)(**fields)

    @classmethod
    def build(cls, spec=None, **changes):
        """``spec`` (a GridSpec, a dict from :meth:`to_dict`, or None for the defaults) with ``changes``.

        This is how functions that take ``grid=`` plus individual settings (``mpp=``, ``size=`` ...)
        combine them: the individual settings win.

        Examples
        --------
        >>> GridSpec.build(None, mpp=1.0).mpp, GridSpec.build({"size": 32}, stride=16).step
        (1.0, 16)
        """
        if spec is None:
            base = cls()
        elif isinstance(spec, cls):
            base = spec
        elif isinstance(spec, dict):
            base = cls.from_dict(spec)
        else:
            raise TypeError(f"grid must be a GridSpec, a dict or None, got {type(spec).__name__}.")
        return base.replace(**changes) if changes else base

    # -- records -------------------------------------------------------------------------------------
    def to_dict(self):
        """JSON-able dict of the settings (``tissue`` by name: ``"otsu"``, ``"gray"``, ``"none"``, ``"mask"``)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["tissue"] = self.tissue_name
        d["scales"] = list(self.scales)
        return d

    def to_json(self):
        """:meth:`to_dict` as canonical JSON text (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d):
        """Rebuild from :meth:`to_dict`. A recorded ``"mask"`` (a precomputed mask, not stored) reads back
        as ``"otsu"``, the method such masks are usually made with; ``"none"`` as None.

        Examples
        --------
        >>> GridSpec.from_dict({"mpp": 1.0, "tissue": "none"}).tissue is None
        True
        """
        if isinstance(d, str):
            d = json.loads(d)
        d = dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown grid setting(s) {sorted(unknown)}; GridSpec has {sorted(names)}.")
        if "tissue" in d:
            d["tissue"] = {"none": None, "mask": "otsu"}.get(d["tissue"], d["tissue"])
        if "scales" in d:
            d["scales"] = tuple(d["scales"])
        return cls(**d)

    @classmethod
    def from_store_attrs(cls, attrs):
        """The spec a feature store was extracted with (its ``grid_spec`` attribute; stores written before
        it existed give it through ``mpp``, ``size``, ``stride``, ``tissue``, ``min_tissue``, ``scales`` and
        the grid's ``magnification``, with the default tissue-mask resolution).

        Examples
        --------
        >>> GridSpec.from_store_attrs({"mpp": 1.0, "size": 64, "stride": 64, "tissue": "gray"}).tissue
        'gray'
        """
        recorded = attrs.get("grid_spec")
        if recorded:
            return cls.from_dict(recorded)
        grid_attrs = attrs.get("grid_attrs") or {}
        if isinstance(grid_attrs, str):
            grid_attrs = json.loads(grid_attrs)
        d = {}
        magnification = grid_attrs.get("magnification")
        if magnification not in (None, ""):
            d["magnification"] = float(magnification)
            d["mpp"] = None
        elif attrs.get("mpp") is not None:
            d["mpp"] = float(attrs["mpp"])
        for key in ("size", "stride"):
            if attrs.get(key) is not None:
                d[key] = int(attrs[key])
        if attrs.get("tissue") is not None:
            d["tissue"] = attrs["tissue"]
        if attrs.get("min_tissue") is not None:
            d["min_tissue"] = float(attrs["min_tissue"])
        if attrs.get("scales") is not None:
            d["scales"] = tuple(float(s) for s in attrs["scales"])
        return cls.from_dict(d)

    def describe(self):
        """One line for logs and reports.

        Examples
        --------
        >>> GridSpec(mpp=0.5, size=224, stride=112, scales=(1, 2)).describe()
        '0.5 um/px, 224 px, stride 112, tissue otsu >= 0.5, scales 1, 2'
        """
        res = f"{self.mpp:g} um/px" if self.mpp is not None else f"{self.magnification:g}x"
        tissue = "all patches" if self.tissue is None else f"tissue {self.tissue_name} >= {self.min_tissue:g}"
        text = f"{res}, {self.size} px, stride {self.step}, {tissue}"
        if self.scales != (1.0,):
            text += ", scales " + ", ".join(f"{s:g}" for s in self.scales)
        return text

    # -- use -----------------------------------------------------------------------------------------
    def make_grid(self, reader):
        """Lay this grid over a slide: :meth:`medfeat.slides.PatchGrid.from_reader` with these settings.

        Examples
        --------
        >>> import numpy as np
        >>> from medfeat.slides import SlideReader
        >>> reader = SlideReader.open(np.zeros((100, 130, 3), np.uint8), slide_mpp=0.25)
        >>> grid = GridSpec(mpp=0.5, size=20, tissue=None).make_grid(reader)
        >>> grid.mpp, grid.size, grid.size_level0
        (0.5, 20, 40.0)
        """
        from .grid import PatchGrid

        return PatchGrid.from_reader(reader, mpp=self.mpp, magnification=self.magnification, size=self.size,
                                     stride=self.stride, tissue=self.tissue, min_tissue=self.min_tissue,
                                     tissue_mpp=self.tissue_mpp)
