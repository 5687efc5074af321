"""Deep-vs-handcrafted comparison table (Bar et al. 2015): sensitivity, specificity, AUC per feature set."""

import html
import io
import math
from dataclasses import dataclass, field

import numpy as np

from .._checks import ResultDisplay, json_safe, write_text_atomic
from ._validation import check_binary, check_labels
from .delong import clustered_auc_test, delong_test
from .roc import roc_report

__all__ = ["FeatureSetComparison", "compare_feature_sets", "markdown_table"]


def _fmt(v, digits=3):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


def fmt_ci(v, lo, hi, digits=3):
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return _fmt(v, digits)
    return f"{v:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def _fmt_p(p):
    if p is None or not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def markdown_table(df, *, index=True):
    """A DataFrame as a GitHub-flavoured Markdown table (no ``tabulate`` needed, unlike pandas' to_markdown).

    Examples
    --------
    >>> import pandas as pd
    >>> print(markdown_table(pd.DataFrame({"a": [1, 2]}, index=["x", "y"])))
    |  | a |
    |---|---|
    | x | 1 |
    | y | 2 |
    """

    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")

    header = ([cell(df.index.name or "")] if index else []) + [cell(c) for c in df.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for idx, row in zip(df.index, df.itertuples(index=False)):
        cells = ([cell(idx)] if index else []) + [cell(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass(repr=False)
class FeatureSetComparison(ResultDisplay):
    """Result of :func:`compare_feature_sets`: one :class:`ROCReport` per feature set plus paired tests.

    Attributes
    ----------
    reports : dict of str to ROCReport
    best : str
        Feature set with the highest AUC.
    p_values : dict of str to float
        Paired DeLong p-value of each feature set against ``best`` (NaN for ``best`` itself).
    operating_point : str
    confidence : float
    notes : list of str
    """

    reports: dict
    best: str
    p_values: dict
    operating_point: str
    confidence: float
    notes: list = field(default_factory=list)

    @property
    def thresholds(self):
        """``{feature set: threshold}`` of the operating point, to reuse on test data."""
        return {k: r.operating_points[self.operating_point].threshold for k, r in self.reports.items()}

    def to_frame(self, numeric=False):
        """The table: feature sets as columns (formatted strings), or numeric rows per set when ``numeric``."""
        import pandas as pd

        if numeric:
            rows = []
            for name, rep in self.reports.items():
                op = rep.operating_points[self.operating_point]
                row = {"feature_set": name, "threshold": op.threshold}
                for m in ("sensitivity", "specificity"):
                    row[m] = getattr(op, m)
                    row[f"{m}_ci_lo"], row[f"{m}_ci_hi"] = op.ci[m]
                row.update(auc=rep.auc, auc_ci_lo=rep.auc_ci[0], auc_ci_hi=rep.auc_ci[1],
                           auc_ci_method=rep.ci_method, p_value_vs_best=self.p_values[name])
                rows.append(row)
            return pd.DataFrame(rows).set_index("feature_set")
        pct = f"{self.confidence:.0%}"
        test = "clustered" if any("clustered" in n for n in self.notes[:1]) else "DeLong"
        index = ["Sensitivity", "Specificity", f"AUC ({pct} CI)", f"p vs {self.best} ({test})"]
        data = {}
        for name, rep in self.reports.items():
            op = rep.operating_points[self.operating_point]
            data[name] = [
                fmt_ci(op.sensitivity, *op.ci["sensitivity"]),
                fmt_ci(op.specificity, *op.ci["specificity"]),
                fmt_ci(rep.auc, *rep.auc_ci),
                "best" if name == self.best else _fmt_p(self.p_values[name]),
            ]
        return pd.DataFrame(data, index=pd.Index(index, name=f"at {self.operating_point}"))

    def to_markdown(self):
        """Markdown table followed by the notes."""
        text = markdown_table(self.to_frame())
        if self.notes:
            text += "\n\n" + "\n".join(f"- {n}" for n in self.notes)
        return text

    def to_html(self):
        """HTML table (escaped, no external resources) followed by the notes."""
        out = self.to_frame().to_html(classes="medfeat-table", border=0, escape=True)
        if self.notes:
            out += "\n<ul class=\"notes\">" + "".join(f"<li>{html.escape(n)}</li>" for n in self.notes) + "</ul>"
        return out

    def to_csv(self, path=None, *, numeric=True):
        """CSV of the numeric table (or the formatted one); written to ``path`` atomically when given."""
        buf = io.StringIO()
        self.to_frame(numeric=numeric).to_csv(buf)
        text = buf.getvalue()
        if path is not None:
            write_text_atomic(path, text)
        return text

    def to_dict(self):
        return json_safe(
            {
                "best": self.best,
                "operating_point": self.operating_point,
                "confidence": self.confidence,
                "p_values": self.p_values,
                "reports": {k: r.to_dict() for k, r in self.reports.items()},
                "notes": self.notes,
            }
        )

    def summary(self):
        """Text summary: the best feature set, then each set's AUC, CI and paired p-value against it."""
        pct = f"{self.confidence:.0%}"
        rep = self.reports[self.best]
        lines = [f"{len(self.reports)} feature sets; best {self.best}: AUC {rep.auc:.4f} "
                 f"({pct} CI {rep.auc_ci[0]:.4f}-{rep.auc_ci[1]:.4f}, {rep.ci_method})"]
        for name, r in self.reports.items():
            p = "best" if name == self.best else f"p vs best {_fmt_p(self.p_values[name])} (DeLong)"
            lines.append(f"  {name}: AUC {r.auc:.4f} ({r.auc_ci[0]:.4f}-{r.auc_ci[1]:.4f}), {p}")
        return "\n".join(lines + [f"Note: {n}" for n in self.notes])

    def __str__(self):
        return self.to_markdown()


def compare_feature_sets(
    y_true,
    scores,
    *,
    groups=None,
    operating_point="youden",
    thresholds=None,
    ci="delong",
    confidence=0.95,
    n_bootstrap=2000,
    random_state=None,
    pos_label=None,
    min_groups=10,
):
    """Bar et al. (2015) table: sensitivity, specificity and AUC with CIs for each feature set.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Binary labels of the common test set.
    scores : dict of str to array-like of shape (n,)
        Scores of each feature set's classifier on the same samples, e.g.
        ``{"LBP": ..., "GIST": ..., "L5": ..., "fusion": ...}`` (column order kept).
    groups : array-like, optional
        Slide / patient per sample: AUC intervals are then clustered (Obuchowski 1997) and the p-values
        come from the clustered paired test (:func:`clustered_auc_test`); see :func:`roc_report`.
    operating_point : str, default "youden"
        Rule for sensitivity / specificity (see ``roc_report(operating_points=...)``).
    thresholds : dict of str to float, optional
        Threshold per feature set fixed beforehand (e.g. ``comparison_val.thresholds``).
    ci, confidence, n_bootstrap, random_state, pos_label, min_groups
        As in :func:`roc_report`.

    Returns
    -------
    FeatureSetComparison
        P-values are paired tests against the feature set with the best AUC: DeLong without groups,
        clustered (Obuchowski 1997) with groups.

    See Also
    --------
    delong_test : the paired test of each row against the reference.
    medfeat.pipelines.compare_image_folder : the whole comparison on a folder of images.

    References
    ----------
    .. [1] Bar Y, Diamant I, Wolf L, Greenspan H. Deep learning with non-medical training used for chest
       pathology identification. Proc. SPIE Medical Imaging 9414 (2015). doi:10.1117/12.2083124
    .. [2] DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more correlated receiver
       operating characteristic curves: a nonparametric approach. Biometrics 44(3):837-845 (1988).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.r_[np.zeros(40), np.ones(40)]
    >>> cmp = compare_feature_sets(y, {"LBP": y + rng.normal(size=80), "CNN": 2 * y + rng.normal(size=80)},
    ...                            n_bootstrap=200, random_state=0)
    >>> cmp.best, list(cmp.to_frame().columns)
    ('CNN', ['LBP', 'CNN'])
    """
    if not isinstance(scores, dict) or not scores:
        raise ValueError("scores must be a non-empty dict {feature set name: scores on the test set}.")
    y = check_labels(y_true, pos_label=pos_label)
    checked = {}
    for name, s in scores.items():
        _, checked[name] = check_binary(y, s, score_name=f"scores[{name!r}]")
    if thresholds is not None:
        missing = [k for k in checked if k not in thresholds]
        if not isinstance(thresholds, dict) or missing:
            raise ValueError(f"thresholds must be a dict with a threshold for every feature set; missing {missing}.")
    reports = {}
    for i, (name, s) in enumerate(checked.items()):
        reports[name] = roc_report(
            y, s, groups=groups, ci=ci, confidence=confidence, n_bootstrap=n_bootstrap,
            operating_points=(operating_point,),
            thresholds=None if thresholds is None else {operating_point: thresholds[name]},
            min_groups=min_groups,
            random_state=random_state
            if random_state is None or isinstance(random_state, np.random.Generator)
            else np.random.default_rng([int(random_state), i]),
        )
    best = max(reports, key=lambda k: reports[k].auc)
    p_values = {}
    test_name = "DeLong"
    if groups is not None:
        test_name = "clustered (Obuchowski 1997)"
        try:
            for name, s in checked.items():
                p_values[name] = (float("nan") if name == best
                                  else clustered_auc_test(y, checked[best], s, groups).p_value)
        except ValueError as exc:
            p_values = {name: float("nan") for name in checked}
            test_name = "none"
            notes_p = f"No paired test: {exc}"
    else:
        for name, s in checked.items():
            p_values[name] = float("nan") if name == best else delong_test(y, checked[best], s).p_value
    if test_name == "none":
        notes = [notes_p]
    else:
        notes = [f"p: paired {test_name} test of each AUC against {best} (highest AUC)."]
    if groups is not None:
        n_groups = reports[best].n_groups
        notes.append(
            f"Samples are grouped ({n_groups} groups): AUC intervals and p-values account for the correlation "
            "of samples within a group (clustered variance); DeLong's, which treat them as independent, are not used."
        )
        if n_groups < min_groups:
            notes.append(
                f"Only {n_groups} groups: intervals and p-values rest on too few groups to be trusted "
                f"(fewer than {min_groups})."
            )
    else:
        notes.append("Samples are treated as independent (no groups given): DeLong intervals and p-values.")
    if thresholds is None:
        notes.append(f"Sensitivity and specificity at the {operating_point} threshold chosen on this data.")
    else:
        notes.append("Sensitivity and specificity at thresholds fixed beforehand.")
    return FeatureSetComparison(reports, best, p_values, operating_point, reports[best].confidence, notes)
