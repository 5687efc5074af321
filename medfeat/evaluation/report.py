"""Self-contained HTML reports (plus a JSON of every figure) from ROC / FROC results and tables.

The HTML file has no scripts and no external resources: plots are PNGs embedded as base64 data URIs
and the style sheet is inline, so the file can be mailed, archived or opened offline.
"""

import base64
import datetime as _dt
import html
import io
import json
from collections import namedtuple
from importlib import metadata
from pathlib import Path

import numpy as np

from .._checks import json_safe, write_text_atomic
from .compare import fmt_ci
from .roc import ROCReport

__all__ = ["Report", "ReportPaths"]

ReportPaths = namedtuple("ReportPaths", ["html", "json"])

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{border-bottom:2px solid #446;padding-bottom:.2em}h2{margin-top:1.6em;color:#334}
table.medfeat-table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
table.medfeat-table th,table.medfeat-table td{border:1px solid #bbb;padding:.3em .6em;text-align:right}
table.medfeat-table th{background:#eef}
figure{margin:.8em 0}figcaption{color:#555;font-size:.9em}img{max-width:100%}
.notes{color:#555;font-size:.9em}.meta{color:#666;font-size:.85em}
"""


def _versions():
    out = {}
    for pkg in ("medfeat", "torch", "scikit-learn", "numpy", "scipy", "matplotlib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _is_report_json(path):
    """Whether ``path`` holds a JSON written by :meth:`Report.save` (so replacing it loses nothing of the user's)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError, RecursionError):
        return False
    return (isinstance(data, dict) and isinstance(data.get("sections"), list)
            and isinstance(data.get("versions"), dict) and "medfeat" in data["versions"])


def _new_figure(w=5.5, h=5.0):
    # Figure without pyplot: no GUI backend, no global figure registry (headless-safe).
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _image_png(image, max_size):
    """PNG (base64) thumbnail of an array (uint8 RGB/grey, or float heatmap -> colour map) or image file."""
    from PIL import Image

    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise ValueError(f"image file {str(path)!r} does not exist.")
        im = Image.open(path)
        im.load()
        im = im.convert("RGBA" if im.mode in ("RGBA", "LA", "P") else "RGB")
        shape = [im.height, im.width]
    else:
        arr = np.asarray(image)
        shape = list(arr.shape)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or arr.size == 0:
            raise ValueError(f"image must be an (h, w) heatmap or (h, w, 3|4) image, got shape {arr.shape}.")
        if arr.dtype == np.uint8:
            im = Image.fromarray(arr)
        elif arr.ndim == 2 and arr.dtype.kind in "fiub":
            from matplotlib import colormaps

            a = arr.astype(np.float64)
            finite = np.isfinite(a)
            lo, hi = (float(a[finite].min()), float(a[finite].max())) if finite.any() else (0.0, 1.0)
            if 0.0 <= lo and hi <= 1.0:
                lo, hi = 0.0, 1.0  # probabilities keep their absolute scale
            norm = np.clip((a - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
            rgba = colormaps["viridis"](np.where(finite, norm, 0.0))
            rgba[~finite] = (1.0, 1.0, 1.0, 1.0)
            im = Image.fromarray((rgba[:, :, :3] * 255).round().astype(np.uint8))
        elif arr.dtype.kind == "f" and np.nanmin(arr) >= 0 and np.nanmax(arr) <= 1:
            im = Image.fromarray(np.round(np.nan_to_num(arr) * 255).astype(np.uint8))
        else:
            raise ValueError(f"image of dtype {arr.dtype}: expected uint8, or float in [0, 1] for colour images.")
    scale = max(im.width, im.height) / float(max_size)
    if scale > 1:
        im = im.resize((max(1, round(im.width / scale)), max(1, round(im.height / scale))), Image.LANCZOS)
    elif max(im.width, im.height) < 256:
        # Small heatmaps (one cell per patch) are enlarged with NEAREST so cells stay visible.
        f = int(256 // max(im.width, im.height)) or 1
        im = im.resize((im.width * f, im.height * f), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii"), shape


def _table_html(df, float_digits=4):
    fmt = (lambda v: f"{v:.{float_digits}g}")
    # A named index would add a second, empty header row.
    return df.rename_axis(None).to_html(classes="medfeat-table", border=0, escape=True, float_format=fmt, na_rep="–")


def _operating_points_frame(report):
    """Compact operating-point table: value (CI) strings per metric."""
    import pandas as pd

    rows = []
    for name, op in report.operating_points.items():
        rows.append(
            {"operating point": name, "threshold": f"{op.threshold:.4g}",
             "chosen": "fixed beforehand" if op.fixed else "on this data",
             "sensitivity": fmt_ci(op.sensitivity, *op.ci["sensitivity"]),
             "specificity": fmt_ci(op.specificity, *op.ci["specificity"]),
             "PPV": fmt_ci(op.ppv, *op.ci["ppv"]), "NPV": fmt_ci(op.npv, *op.ci["npv"]),
             "TP/FP/TN/FN": f"{op.tp}/{op.fp}/{op.tn}/{op.fn}"}
        )
    return pd.DataFrame(rows).set_index("operating point")


class Report:
    """A self-contained HTML report built section by section.

    Parameters
    ----------
    title : str
        Report title.
    description : str, optional
        Paragraph under the title (e.g. data set, split, citation).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from medfeat.evaluation import roc_report
    >>> y = np.r_[np.zeros(30), np.ones(30)]; s = y + np.random.default_rng(0).normal(size=60)
    >>> rep = Report("Demo").add_roc("score", roc_report(y, s, n_bootstrap=100, random_state=0))
    >>> paths = rep.save(os.path.join(tempfile.mkdtemp(), "demo.html"))
    >>> paths.html.name, paths.json.name
    ('demo.html', 'demo.json')
    """

    def __init__(self, title="medfeat report", *, description=None):
        self.title = title
        self.description = description
        self.sections = []

    # Each section: dict(kind, name, html, data) where data is the JSON-able figure content.
    def _add(self, kind, name, body, data):
        self.sections.append({"kind": kind, "name": str(name), "html": body, "data": json_safe(data)})
        return self

    def add_text(self, text, *, title=None):
        """A paragraph (plain text, escaped; blank lines separate paragraphs)."""
        paras = "".join(f"<p>{html.escape(p.strip())}</p>" for p in str(text).split("\n\n") if p.strip())
        return self._add("text", title or "", paras, {"text": str(text)})

    def add_data_summary(self, y_true=None, *, groups=None, name="Data", **info):
        """Class counts (and group count) of a data set, plus any ``key=value`` facts (source, licence...)."""
        import pandas as pd

        rows = {str(k): str(v) for k, v in info.items()}
        data = dict(info)
        if y_true is not None:
            y = np.asarray(y_true)
            values, counts = np.unique(y, return_counts=True)
            rows["samples"] = str(y.size)
            for v, c in zip(values.tolist(), counts.tolist()):
                rows[f"class {v}"] = str(c)
            data["class_counts"] = {str(v): int(c) for v, c in zip(values.tolist(), counts.tolist())}
        if groups is not None:
            rows["groups"] = str(np.unique(np.asarray(groups).astype(str)).size)
            data["n_groups"] = int(rows["groups"])
        df = pd.DataFrame({"value": list(rows.values())}, index=pd.Index(list(rows.keys()), name="item"))
        return self._add("data", name, _table_html(df), data)

    def add_roc(self, name, report, *, caption=None):
        """ROC plot (with bands and operating points) and tables of one ROCReport or a dict of them."""
        import pandas as pd

        reports = report if isinstance(report, dict) else {name: report}
        for k, r in reports.items():
            if not isinstance(r, ROCReport):
                raise ValueError(f"add_roc expects ROCReport objects (from roc_report); got {type(r).__name__} for {k!r}.")
        fig, ax = _new_figure()
        for k, r in reports.items():
            r.plot(ax=ax, label=k if len(reports) > 1 else None, band=True, operating_points=True)
        ax.set_title(str(name))
        img = _png(fig)
        pct = f"{next(iter(reports.values())).confidence:.0%}"
        auc_rows = [
            {"model": k, "AUC": r.auc, f"{pct} CI low": r.auc_ci[0], f"{pct} CI high": r.auc_ci[1],
             "CI method": r.ci_method, "n": r.n_samples, "positive": r.n_positive, "negative": r.n_negative,
             "groups": r.n_groups if r.n_groups else "–"}
            for k, r in reports.items()
        ]
        body = [f'<figure><img alt="ROC curve {html.escape(str(name))}" src="data:image/png;base64,{img}">']
        if caption:
            body.append(f"<figcaption>{html.escape(caption)}</figcaption>")
        body.append("</figure>")
        body.append(_table_html(pd.DataFrame(auc_rows).set_index("model")))
        for k, r in reports.items():
            if r.operating_points:
                df = _operating_points_frame(r)
                body.append(
                    f"<h3>Operating points: {html.escape(str(k))}</h3><p class=\"notes\">score &ge; threshold is "
                    f"positive; {pct} percentile bootstrap intervals ({r.n_bootstrap_valid} resamples, unit: "
                    f"{html.escape(r.bootstrap_unit)}).</p>"
                )
                body.append(_table_html(df))
            if r.notes:
                body.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in r.notes) + "</ul>")
        return self._add("roc", name, "\n".join(body), {k: r.to_dict() for k, r in reports.items()})

    def add_table(self, name, table, *, caption=None):
        """A table: DataFrame, dict (-> one-column table), a FeatureSetComparison (its Bar et al. table),
        or a result with ``to_frame`` and ``to_dict`` (MulticlassROC, FROCResult, ROCReport)."""
        import pandas as pd

        if hasattr(table, "to_html") and hasattr(table, "to_dict") and not isinstance(table, pd.DataFrame):
            body, data = table.to_html(), table.to_dict()
        elif hasattr(table, "to_frame") and hasattr(table, "to_dict"):  # MulticlassROC, ROCReport, FROCResult
            body, data = _table_html(table.to_frame()), table.to_dict()
        elif isinstance(table, pd.DataFrame):
            body = _table_html(table)
            data = json.loads(table.to_json(orient="split", default_handler=str))
        elif isinstance(table, dict):
            df = pd.DataFrame({"value": list(table.values())}, index=pd.Index([str(k) for k in table], name="item"))
            body, data = _table_html(df), table
        else:
            raise ValueError(f"add_table expects a DataFrame, a dict or a comparison object, got {type(table).__name__}.")
        if caption:
            body = f'<p class="notes">{html.escape(caption)}</p>' + body
        return self._add("table", name, body, data)

    def add_froc(self, name, result, *, caption=None):
        """FROC plot and the sensitivity table of a :class:`FROCResult`."""
        fig, ax = _new_figure(6.0, 4.5)
        result.plot(ax=ax)
        ax.set_title(str(name))
        img = _png(fig)
        body = [f'<figure><img alt="FROC curve {html.escape(str(name))}" src="data:image/png;base64,{img}">']
        if caption:
            body.append(f"<figcaption>{html.escape(caption)}</figcaption>")
        body.append("</figure>")
        body.append(_table_html(result.to_frame()))
        body.append(f'<p class="notes">{html.escape(result.summary())}</p>')
        return self._add("froc", name, "\n".join(body), result.to_dict())

    def add_image(self, name, image, caption=None, *, max_size=512):
        """A thumbnail: uint8 RGB/grey array, a float heatmap (drawn with viridis), or an image file path."""
        b64, shape = _image_png(image, max_size)
        body = f'<figure><img alt="{html.escape(str(name))}" src="data:image/png;base64,{b64}">'
        if caption:
            body += f"<figcaption>{html.escape(caption)}</figcaption>"
        body += "</figure>"
        src = str(image) if isinstance(image, (str, Path)) else None
        return self._add("image", name, body, {"shape": shape, "source": src, "caption": caption})

    def to_dict(self):
        """Title, versions and every section's data (the JSON written by :meth:`save`)."""
        return json_safe(
            {
                "title": self.title,
                "description": self.description,
                "versions": _versions(),
                "sections": [{"kind": s["kind"], "name": s["name"], "data": s["data"]} for s in self.sections],
            }
        )

    def to_html(self):
        """The whole report as one HTML string (no scripts, no external resources)."""
        versions = _versions()
        # timezone.utc, not datetime.UTC: the package supports Python 3.10.
        now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # noqa: UP017
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        if self.description:
            parts.append(f"<p>{html.escape(self.description)}</p>")
        parts.append(
            '<p class="meta">Generated ' + now + " with "
            + ", ".join(f"{html.escape(k)} {html.escape(v)}" for k, v in versions.items()) + "</p>"
        )
        for s in self.sections:
            if s["name"]:
                parts.append(f"<section><h2>{html.escape(s['name'])}</h2>")
            else:
                parts.append("<section>")
            parts.append(s["html"])
            parts.append("</section>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def save(self, path, json_path=None):
        """Write the HTML and the JSON (default: same name, ``.json``), each via a temporary name.

        The default JSON path is only overwritten when it holds an earlier medfeat report: a neighbouring
        ``<name>.json`` of another origin (e.g. the predictions themselves) raises ``FileExistsError``.

        Returns
        -------
        ReportPaths
            ``(html, json)`` paths.
        """
        path = Path(path)
        if path.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"path must end in .html, got {str(path)!r}.")
        if json_path is None:
            json_path = path.with_suffix(".json")
            if json_path.exists() and not _is_report_json(json_path):
                raise FileExistsError(
                    f"{json_path} exists and is not a medfeat report; the report's JSON would overwrite it. "
                    "Choose another report name or pass json_path= explicitly."
                )
        json_path = Path(json_path)
        write_text_atomic(json_path, json.dumps(self.to_dict(), indent=2, allow_nan=False))
        write_text_atomic(path, self.to_html())
        return ReportPaths(path, json_path)
