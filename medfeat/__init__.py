"""medfeat: fast, honest medical-imaging baselines without fine-tuning.

Frozen ImageNet CNN layer embeddings and handcrafted (LBP, GIST, colour, GLCM) features from image
patches and whole-slide images, scikit-learn classifiers, slide heatmaps and ROC/FROC reports.

Subpackages are imported lazily, so ``import medfeat`` stays light: it never imports torch,
openslide, xgboost or matplotlib.

Examples
--------
>>> import medfeat
>>> medfeat.__version__
'0.1.0'
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = ("classifiers", "datasets", "evaluation", "features", "inspect", "pipelines", "slides")

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name):
    # PEP 562 lazy subpackages: `medfeat.features` is imported on first access only.
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'medfeat' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBPACKAGES))
