"""FROC analysis of lesion detections on whole-slide images, as in the CAMELYON16 challenge.

The rules follow the challenge's evaluation (Bejnordi et al., JAMA 2017, and its
``Evaluation_FROC.py``):

- Tumour regions closer than ``dilation_um`` (75 µm, about five tumour cells) are merged: the
  annotation mask is dilated by *half* that distance (every pixel closer than 37.5 µm to a tumour joins
  it), holes are filled, and connected components (8-connectivity) become the lesions. This is exactly
  the official ``distance < 75 / (mpp * 2**level * 2)`` rule.
- Lesions whose major axis (after that dilation) is shorter than ``itc_um`` (275 µm) are isolated
  tumour cells (ITC): a detection inside one is neither a true nor a false positive, and ITCs are not
  counted among the lesions to find.
- A detection inside a lesion makes it a true positive, once, at the highest probability among its
  detections; a detection outside every lesion, and every detection on a normal slide, is a false
  positive. The FP rate is averaged over all slides.
- Sensitivity at 0.25, 0.5, 1, 2, 4 and 8 false positives per slide is read off the FROC curve by
  linear interpolation (``np.interp``, as the official script); the score is their mean.

One deliberate difference: the official script gives undetected lesions a probability of 0, so they
count as found at the threshold 0; here a lesion without a detection is never found.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np

from .._checks import JSONMixin, ResultDisplay, json_safe

__all__ = ["FROCResult", "detections_from_heatmap", "froc", "lesion_map"]

FP_RATES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def _per_slide(value, slide, name):
    if isinstance(value, dict):
        if slide not in value:
            raise ValueError(f"{name} has no entry for slide {slide!r}.")
        value = value[slide]
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number (or a dict slide -> number), got {value!r}.") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r} (slide {slide!r}).")
    return v


def lesion_map(mask, *, mpp, mask_downsample=1.0, dilation_um=75.0, itc_um=275.0):
    """Lesions of one slide by the CAMELYON16 rules: merged labels and the ITC labels.

    Parameters
    ----------
    mask : ndarray of shape (h, w)
        Tumour annotation (bool, or labels > 0 = tumour) at ``mask_downsample``.
    mpp : float
        Level-0 microns per pixel of the slide.
    mask_downsample : float, default 1
        Level-0 pixels per mask pixel.
    dilation_um, itc_um : float
        Merge distance (the mask grows by half of it) and the ITC major-axis limit, in µm.

    Returns
    -------
    labels : ndarray of int32, shape (h, w)
        0 = background, 1..K = lesions.
    itc : set of int
        Labels that are isolated tumour cells.

    See Also
    --------
    froc : scores detections against this map.

    References
    ----------
    .. [1] Ehteshami Bejnordi B, Veta M, van Diest PJ, et al. Diagnostic assessment of deep learning
       algorithms for detection of lymph node metastases in women with breast cancer.
       JAMA 318(22):2199-2210 (2017).

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((100, 100), bool); m[10:60, 10:60] = True; m[80:82, 80:82] = True
    >>> labels, itc = lesion_map(m, mpp=8.0)  # 8 µm per pixel: the big square is 400 µm wide
    >>> int(labels.max()), sorted(itc)
    (2, [2])
    """
    from scipy import ndimage
    from skimage import measure

    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"lesion mask must be 2-D (h, w), got shape {arr.shape}.")
    tumour = arr > 0
    px_um = float(mpp) * float(mask_downsample)
    if tumour.any():
        dist = ndimage.distance_transform_edt(~tumour)
        grown = ndimage.binary_fill_holes(dist < dilation_um / 2.0 / px_um)
    else:
        grown = tumour
    labels = measure.label(grown, connectivity=2).astype(np.int32)
    itc = {
        int(p.label) for p in measure.regionprops(labels) if p.axis_major_length * px_um < itc_um
    }
    return labels, itc


def _as_detections(dets, slide):
    if dets is None:
        return np.zeros((0, 3))
    if hasattr(dets, "columns"):
        cols = {c.lower(): c for c in dets.columns}
        prob = cols.get("probability", cols.get("prob", cols.get("score")))
        if "x" not in cols or "y" not in cols or prob is None:
            raise ValueError(
                f"detections for slide {slide!r} must have columns x, y, probability; got {list(dets.columns)}."
            )
        arr = dets[[cols["x"], cols["y"], prob]].to_numpy(dtype=np.float64)
    else:
        arr = np.asarray(dets, dtype=np.float64)
        if arr.size == 0:
            return np.zeros((0, 3))
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise ValueError(
                f"detections for slide {slide!r} must be an (k, 3) array of (x, y, probability) in level-0 "
                f"pixels, got shape {arr.shape}."
            )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"detections for slide {slide!r} contain NaN or inf.")
    return arr


@dataclass(repr=False)
class FROCResult(JSONMixin, ResultDisplay):
    """Result of :func:`froc`.

    Attributes
    ----------
    fp_per_slide, sensitivity, thresholds : ndarray
        The FROC curve, from the highest threshold (first point: no detection kept, 0 FP, sensitivity 0).
    sensitivity_at : dict of float to float
        Sensitivity at each FP rate of ``fp_rates``.
    score : float
        Mean of ``sensitivity_at`` (the CAMELYON16 FROC score).
    per_slide : pandas.DataFrame
        Counts per slide: detections, lesions, ITCs, lesions found, FPs, detections ignored in ITCs.
    """

    fp_per_slide: np.ndarray
    sensitivity: np.ndarray
    thresholds: np.ndarray
    fp_rates: tuple
    sensitivity_at: dict
    score: float
    n_slides: int
    n_normal_slides: int
    n_lesions: int
    n_itc: int
    tp_probabilities: np.ndarray
    fp_probabilities: np.ndarray
    per_slide: object
    settings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def to_dict(self):
        return json_safe(
            {
                "score": self.score,
                "sensitivity_at": {str(k): v for k, v in self.sensitivity_at.items()},
                "fp_rates": list(self.fp_rates),
                "n_slides": self.n_slides,
                "n_normal_slides": self.n_normal_slides,
                "n_lesions": self.n_lesions,
                "n_itc": self.n_itc,
                "curve": {
                    "fp_per_slide": self.fp_per_slide,
                    "sensitivity": self.sensitivity,
                    "thresholds": self.thresholds,
                },
                "per_slide": self.per_slide.reset_index().to_dict(orient="records"),
                "settings": self.settings,
                "notes": list(self.notes),
            }
        )

    def to_frame(self):
        """Sensitivity at each FP rate plus the mean (``score``), as a one-column DataFrame."""
        import pandas as pd

        idx = [f"sensitivity @ {r:g} FP/slide" for r in self.fp_rates] + ["FROC score (mean)"]
        vals = [self.sensitivity_at[r] for r in self.fp_rates] + [self.score]
        return pd.DataFrame({"value": vals}, index=pd.Index(idx, name="metric"))

    def summary(self):
        parts = ", ".join(f"{r:g}: {self.sensitivity_at[r]:.3f}" for r in self.fp_rates)
        return (
            f"FROC: {self.n_slides} slides ({self.n_normal_slides} normal), {self.n_lesions} lesions "
            f"(+{self.n_itc} ITCs ignored); sensitivity at FP/slide {parts}; score {self.score:.4f}"
        ) + "".join(f"\nNote: {n}" for n in self.notes)

    def __str__(self):
        return self.summary()

    def plot(self, ax=None, *, label=None, color=None):
        """FROC curve (log FP/slide axis) with the evaluated FP rates marked; returns the Axes."""
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(6.0, 4.5))
        text = f"FROC score {self.score:.3f}"
        x = np.maximum(self.fp_per_slide, 1e-3)
        ax.step(x, self.sensitivity, where="post", color=color, lw=2, label=f"{label}: {text}" if label else text)
        ax.plot(list(self.fp_rates), [self.sensitivity_at[r] for r in self.fp_rates], "o", color=color or "black")
        ax.set_xscale("log")
        ax.set_xlim(0.1, max(16.0, float(x.max()) * 1.2))
        ax.set_ylim(-0.01, 1.01)
        ax.set_xlabel("Average false positives per slide")
        ax.set_ylabel("Lesion sensitivity")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        return ax


def froc(
    detections,
    lesion_masks,
    *,
    mpp,
    mask_downsample=1.0,
    dilation_um=75.0,
    itc_um=275.0,
    fp_rates=FP_RATES,
    min_lesions=10,
):
    """CAMELYON16 FROC: lesion sensitivity against average false positives per slide.

    Parameters
    ----------
    detections : dict of slide id to array (k, 3) or DataFrame
        Detections per slide: (x, y, probability), x and y in level-0 pixels (DataFrame columns x, y,
        probability). Slides with no detections may be left out or given an empty array.
    lesion_masks : dict of slide id to ndarray or None
        Tumour mask per slide (bool, or labels > 0) at ``mask_downsample``; None for a normal (tumour-free)
        slide. Every slide in ``detections`` must appear here; the slides here define the slide count.
    mpp : float or dict
        Level-0 microns per pixel (per slide when a dict).
    mask_downsample : float or dict, default 1
        Level-0 pixels per mask pixel (e.g. 32 for a level-5 mask; 2**level in the challenge).
    dilation_um, itc_um : float
        The CAMELYON16 merge distance (75 µm) and ITC major-axis limit (275 µm); see the module notes.
    fp_rates : sequence of float
        FP-per-slide rates at which sensitivity is reported.
    min_lesions : int, default 10
        With fewer lesions a :class:`UserWarning` (and a note in ``notes``) says the score is anecdotal.

    Returns
    -------
    FROCResult

    See Also
    --------
    detections_from_heatmap : detections from a probability map.
    lesion_map : the reference lesions and isolated tumour cells.

    References
    ----------
    .. [1] Ehteshami Bejnordi B, Veta M, van Diest PJ, et al. Diagnostic assessment of deep learning
       algorithms for detection of lymph node metastases in women with breast cancer.
       JAMA 318(22):2199-2210 (2017).
    .. [2] Liu Y, Gadepalli K, Norouzi M, et al. Detecting cancer metastases on gigapixel pathology images.
       arXiv:1703.02442 (2017).

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((200, 200), bool); m[20:80, 20:80] = True   # one 480 µm lesion at 8 µm/px
    >>> dets = {"t1": [[400, 400, 0.9], [1500, 1500, 0.8]], "n1": [[10, 10, 0.3]]}
    >>> res = froc(dets, {"t1": m, "n1": None}, mpp=1.0, mask_downsample=8)
    >>> res.n_lesions, int(res.per_slide["n_fp"].sum()), res.sensitivity_at[0.25]
    (1, 2, 1.0)
    """
    import pandas as pd

    if not isinstance(detections, dict):
        raise ValueError("detections must be a dict {slide id: (k, 3) array or DataFrame of x, y, probability}.")
    if not isinstance(lesion_masks, dict) or not lesion_masks:
        raise ValueError("lesion_masks must be a non-empty dict {slide id: tumour mask, or None for a normal slide}.")
    extra = [s for s in detections if s not in lesion_masks]
    if extra:
        raise ValueError(
            f"detections has slides missing from lesion_masks: {extra[:5]}; give None for normal slides."
        )
    fp_rates = tuple(float(r) for r in fp_rates)
    if not fp_rates or any(r <= 0 for r in fp_rates):
        raise ValueError(f"fp_rates must be positive FP-per-slide rates, got {fp_rates}.")

    tp_probs, fp_probs, rows = [], [], []
    n_normal = n_lesions = n_itc = 0
    for slide, mask in lesion_masks.items():
        dets = _as_detections(detections.get(slide), slide)
        row = {"slide": slide, "normal": mask is None, "n_detections": len(dets), "n_lesions": 0, "n_itc": 0,
               "n_lesions_found": 0, "n_fp": 0, "n_detections_in_itc": 0}
        if mask is None:
            n_normal += 1
            fp_probs.extend(dets[:, 2].tolist())
            row["n_fp"] = len(dets)
            rows.append(row)
            continue
        ds = _per_slide(mask_downsample, slide, "mask_downsample")
        labels, itc = lesion_map(
            mask, mpp=_per_slide(mpp, slide, "mpp"), mask_downsample=ds, dilation_um=dilation_um, itc_um=itc_um
        )
        k = int(labels.max())
        best = np.full(k + 1, -np.inf)
        h, w = labels.shape
        # Level-0 (x, y) -> mask pixel (row, col); detections outside the mask are outside every lesion.
        cols = np.floor(dets[:, 0] / ds).astype(np.int64)
        rws = np.floor(dets[:, 1] / ds).astype(np.int64)
        inside = (cols >= 0) & (cols < w) & (rws >= 0) & (rws < h)
        hit = np.zeros(len(dets), dtype=np.int64)
        hit[inside] = labels[rws[inside], cols[inside]]
        is_itc = np.isin(hit, list(itc)) if itc else np.zeros(len(dets), bool)
        fp = hit == 0
        fp_probs.extend(dets[fp, 2].tolist())
        tp = (~fp) & (~is_itc)
        np.maximum.at(best, hit[tp], dets[tp, 2])
        real = [lab for lab in range(1, k + 1) if lab not in itc]
        found = [best[lab] for lab in real if np.isfinite(best[lab])]
        tp_probs.extend(found)
        n_lesions += len(real)
        n_itc += len(itc)
        row.update(n_lesions=len(real), n_itc=len(itc), n_lesions_found=len(found), n_fp=int(fp.sum()),
                   n_detections_in_itc=int(is_itc.sum()))
        rows.append(row)

    n_slides = len(lesion_masks)
    tp_probs = np.asarray(tp_probs, dtype=np.float64)
    fp_probs = np.asarray(fp_probs, dtype=np.float64)
    thr = np.unique(np.r_[tp_probs, fp_probs])[::-1]
    # Curve from the strictest threshold: a detection counts when probability >= threshold.
    n_fp_at = fp_probs.size - np.searchsorted(np.sort(fp_probs), thr, side="left")
    n_tp_at = tp_probs.size - np.searchsorted(np.sort(tp_probs), thr, side="left")
    fps = np.r_[0.0, n_fp_at] / n_slides
    sens = np.r_[0.0, n_tp_at] / n_lesions if n_lesions else np.zeros(thr.size + 1)
    thresholds = np.r_[np.inf, thr]
    # np.interp needs increasing x; fps is non-decreasing along the curve, as in the official script.
    sens_at = {r: float(np.interp(r, fps, sens)) for r in fp_rates}
    per_slide = pd.DataFrame(rows).set_index("slide")
    notes = []
    if n_lesions < min_lesions:
        # Each lesion moves the sensitivity by 1/n_lesions: a score from 2 lesions can only be 0, 0.5 or 1.
        notes.append(
            f"The FROC rests on {n_lesions} lesion(s) in {n_slides} slide(s) (fewer than min_lesions={min_lesions}): "
            f"each lesion moves the sensitivity by {1 / max(n_lesions, 1):.2g}; treat the score as anecdotal."
        )
        warnings.warn(notes[-1], UserWarning, stacklevel=2)
    return FROCResult(
        fp_per_slide=fps, sensitivity=sens, thresholds=thresholds, fp_rates=fp_rates,
        sensitivity_at=sens_at, score=float(np.mean(list(sens_at.values()))),
        n_slides=n_slides, n_normal_slides=n_normal, n_lesions=n_lesions, n_itc=n_itc,
        tp_probabilities=tp_probs, fp_probabilities=fp_probs, per_slide=per_slide,
        settings={"dilation_um": dilation_um, "itc_um": itc_um, "mpp": mpp if not isinstance(mpp, dict) else "per slide",
                  "mask_downsample": mask_downsample if not isinstance(mask_downsample, dict) else "per slide"},
        notes=notes,
    )


def _plateau_peaks(p, threshold, min_distance):
    """(row, col) of local maxima above ``threshold``, one per plateau, most probable first."""
    from scipy import ndimage
    from scipy.spatial import cKDTree
    from skimage.morphology import local_maxima

    finite = np.isfinite(p)
    if not np.any(finite & (p > threshold)):
        return np.zeros((0, 2), dtype=np.int64)
    # NaN (no tissue) and below-threshold cells sit below everything that can be a detection.
    floor = min(threshold, float(p[finite].min())) - 1.0
    img = np.where(finite, p, floor)
    # skimage's local_maxima returns whole plateaus, so each connected plateau can become one detection
    # (skimage.feature.peak_local_max would report every cell of a plateau).
    mask = local_maxima(img, connectivity=2, allow_borders=True) & (img > threshold)
    if min_distance > 1:
        mask &= img >= ndimage.maximum_filter(img, size=2 * min_distance + 1, mode="nearest")
    labels, k = ndimage.label(mask, structure=np.ones((3, 3)))
    if k == 0:
        return np.zeros((0, 2), dtype=np.int64)
    rows, cols = np.nonzero(labels)
    lab = labels[rows, cols] - 1
    centre_r = np.bincount(lab, rows, k) / np.bincount(lab, minlength=k)
    centre_c = np.bincount(lab, cols, k) / np.bincount(lab, minlength=k)
    d2 = (rows - centre_r[lab]) ** 2 + (cols - centre_c[lab]) ** 2
    # For each plateau the member cell nearest its centroid (first in row-major order on ties).
    order = np.lexsort((d2, lab))
    first = order[np.r_[True, lab[order][1:] != lab[order][:-1]]]
    pts = np.column_stack([rows[first], cols[first]])
    vals = img[pts[:, 0], pts[:, 1]]
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0], -vals))]
    if min_distance > 1 and len(pts) > 1:
        # Greedy suppression: keep the most probable, drop others within min_distance (Chebyshev).
        tree = cKDTree(pts)
        keep = np.ones(len(pts), bool)
        for i in range(len(pts)):
            if keep[i]:
                near = tree.query_ball_point(pts[i], r=min_distance, p=np.inf)
                keep[[j for j in near if j > i]] = False
        pts = pts[keep]
    return pts.astype(np.int64)


def detections_from_heatmap(
    prob_map,
    threshold=0.5,
    *,
    min_distance=1,
    origin=(0.0, 0.0),
    stride=None,
    patch_size=None,
    coords=None,
    max_detections=None,
):
    """Lesion detections (x, y, probability) from a probability heatmap: local maxima above a threshold.

    Parameters
    ----------
    prob_map : ndarray of shape (h, w), or (N,) with ``coords``
        Probabilities on a regular grid (NaN = no tissue, never a detection); or one probability per
        patch of a grid given by ``coords``.
    threshold : float, default 0.5
        Only maxima with probability strictly above it are kept.
    min_distance : int, default 1
        A detection is the maximum of the (2 * min_distance + 1)-cell square around it, and detections
        are at least ``min_distance + 1`` cells apart (Chebyshev), the higher one kept. A plateau of
        equal maxima gives one detection (the plateau cell nearest its centroid), not one per cell,
        so a saturated region is not counted as many false positives.
    origin : (float, float)
        Level-0 (x, y) of the top-left corner of heatmap cell (0, 0).
    stride : float or (float, float), optional
        Level-0 pixels between neighbouring cells (x, y); default 1 (or, with ``coords``, the smallest
        spacing between distinct coordinates).
    patch_size : float, optional
        Level-0 size of the patch behind a cell (default ``stride``); a detection sits at the patch centre.
    coords : ndarray of shape (N, 2), optional
        Level-0 top-left (x, y) of each patch (e.g. ``PatchGrid.coords``) when ``prob_map`` is 1-D; the
        heatmap is rebuilt from them (``origin`` = the smallest coords, ``stride`` as given, or the
        smallest spacing found).
    max_detections : int, optional
        Keep only the most probable ones.

    Returns
    -------
    ndarray of shape (k, 3)
        (x, y, probability) in level-0 pixels, most probable first.

    See Also
    --------
    froc : scores these detections.

    References
    ----------
    .. [1] Liu Y, Gadepalli K, Norouzi M, et al. Detecting cancer metastases on gigapixel pathology images.
       arXiv:1703.02442 (2017).
    .. [2] Ehteshami Bejnordi B, Veta M, van Diest PJ, et al. Diagnostic assessment of deep learning
       algorithms for detection of lymph node metastases in women with breast cancer.
       JAMA 318(22):2199-2210 (2017).

    Examples
    --------
    >>> import numpy as np
    >>> h = np.zeros((5, 5)); h[1, 3] = 0.9; h[4, 0] = 0.7
    >>> detections_from_heatmap(h, 0.5, stride=256).tolist()
    [[896.0, 384.0, 0.9], [128.0, 1152.0, 0.7]]
    """
    p = np.asarray(prob_map, dtype=np.float64)
    if coords is not None:
        c = np.asarray(coords, dtype=np.float64)
        if p.ndim != 1 or c.ndim != 2 or c.shape != (p.size, 2):
            raise ValueError(
                f"with coords, prob_map must be 1-D (N,) and coords (N, 2); got {p.shape} and {c.shape}."
            )
        if stride is None:
            steps = [np.diff(np.unique(c[:, i])) for i in (0, 1)]
            steps = [s[s > 0].min() if np.any(s > 0) else 1.0 for s in steps]
            sx, sy = steps
        else:
            sx, sy = (float(stride), float(stride)) if np.isscalar(stride) else map(float, stride)
        origin = c.min(axis=0)
        ci = np.round((c[:, 0] - origin[0]) / sx).astype(np.int64)
        ri = np.round((c[:, 1] - origin[1]) / sy).astype(np.int64)
        grid = np.full((ri.max() + 1, ci.max() + 1), np.nan)
        grid[ri, ci] = p
        p, stride = grid, (sx, sy)
    if p.ndim != 2:
        raise ValueError(f"prob_map must be a 2-D heatmap (h, w) (or 1-D with coords), got shape {p.shape}.")
    if stride is None:
        stride = 1.0
    sx, sy = (float(stride), float(stride)) if np.isscalar(stride) else tuple(map(float, stride))
    if sx <= 0 or sy <= 0:
        raise ValueError(f"stride must be positive, got {stride!r}.")
    half_x = (sx if patch_size is None else float(patch_size)) / 2.0
    half_y = (sy if patch_size is None else float(patch_size)) / 2.0
    if int(min_distance) < 1:
        raise ValueError(f"min_distance must be an integer >= 1 (heatmap cells), got {min_distance!r}.")
    peaks = _plateau_peaks(p, float(threshold), int(min_distance))
    if max_detections is not None:
        peaks = peaks[: int(max_detections)]
    probs = p[peaks[:, 0], peaks[:, 1]]
    x = float(origin[0]) + peaks[:, 1] * sx + half_x
    y = float(origin[1]) + peaks[:, 0] * sy + half_y
    out = np.column_stack([x, y, probs]).astype(np.float64)
    order = np.argsort(-out[:, 2], kind="stable")
    return out[order]
