"""Write the scores used for the pROC reference numbers to CSV (run once by hand; not run by the tests).

Usage: python export_reference_data.py OUTDIR ; then Rscript make_proc_reference.R OUTDIR proc_reference.json
The datasets are scikit-learn's bundled copies (no download), so the tests rebuild the same scores.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from reference_scores import reference_datasets


def main(outdir):
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for name, (y, scores) in reference_datasets().items():
        df = pd.DataFrame({"y": y, **scores})
        # 17 significant digits round-trip float64 exactly.
        df.to_csv(outdir / f"{name}.csv", index=False, float_format="%.17g")
        print(name, df.shape, int(np.sum(y)))


if __name__ == "__main__":
    main(sys.argv[1])
