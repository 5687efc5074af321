"""Public datasets bundled with scikit-learn, turned into binary problems with single-feature scores.

Shared by the pROC export script and the tests, so both use exactly the same numbers.
"""

import numpy as np


def reference_datasets():
    """{name: (y 0/1 int array, {score name: float64 array})}."""
    from sklearn.datasets import load_breast_cancer, load_digits, load_wine

    out = {}
    bc = load_breast_cancer()
    cols = list(bc.feature_names)
    y = (bc.target == 0).astype(int)  # malignant = positive
    out["breast_cancer"] = (
        y,
        {
            "mean_radius": bc.data[:, cols.index("mean radius")].astype(np.float64),
            "mean_texture": bc.data[:, cols.index("mean texture")].astype(np.float64),
            "worst_concave_points": bc.data[:, cols.index("worst concave points")].astype(np.float64),
        },
    )
    wine = load_wine()
    cols = list(wine.feature_names)
    y = (wine.target == 0).astype(int)  # cultivar 0 vs the others; integer features give many ties
    out["wine"] = (
        y,
        {
            "proline": wine.data[:, cols.index("proline")].astype(np.float64),
            "alcohol": wine.data[:, cols.index("alcohol")].astype(np.float64),
            "magnesium": wine.data[:, cols.index("magnesium")].astype(np.float64),
        },
    )
    digits = load_digits()
    y = (digits.target == 0).astype(int)  # digit 0 vs the rest; pixel values 0..16, heavy ties
    out["digits"] = (
        y,
        {
            "pixel_2_2": digits.data[:, 2 * 8 + 2].astype(np.float64),
            "pixel_4_4": digits.data[:, 4 * 8 + 4].astype(np.float64),
            "pixel_3_5": digits.data[:, 3 * 8 + 5].astype(np.float64),
        },
    )
    return out
