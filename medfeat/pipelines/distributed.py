"""Many slides on Dask distributed: one task per slide, the same command from a laptop to a cluster.

:func:`extract_slide_features_many` and :func:`heatmap_slides_many` run one task per slide on a Dask
``distributed`` cluster (``client=``: a :class:`distributed.Client`, a scheduler address such as
``"tcp://10.0.0.5:8786"``, ``"local:N"`` for a :class:`distributed.LocalCluster` of N single-threaded worker
processes started and stopped here, or ``None`` to run in this process without Dask).

- Each task calls the single-slide code (:func:`medfeat.pipelines.extract_features` on one slide,
  :class:`medfeat.pipelines.SlideHeatmap`), so stores, resume of a partial store, skipping of finished ones
  and the atomic final rename are exactly those of the single-process path, and the outputs are the same
  files (byte-identical HDF5 when the slide paths are the same).
- A worker builds the feature transformer / loads the model once and keeps it for its later slides (a
  per-process cache keyed by the transformer's configuration), places it on GPU ``worker.name % n_gpus``
  when CUDA is present (one worker per GPU), sets torch's CPU threads to its share of the host's cores, and
  reads patches with ``reader_threads`` threads.
- Failures are isolated: a slide whose task raises is resubmitted up to ``retries`` times; a worker that
  dies is replaced by its nanny and its task rescheduled by Dask (``distributed.scheduler.allowed-failures``).
  A slide that still fails is reported with its error in ``<out>/<name>-summary.csv`` and ``.json``
  (written atomically) while the other slides finish.
- Outputs go to a local or shared-filesystem directory, or to an fsspec URL (``s3://bucket/feats`` with
  s3fs installed, ``memory://``, ...): the worker then writes into a local scratch directory and uploads
  each finished file under a temporary name that is renamed to its final name, so a reader never sees a
  partial object.

Dask is imported only when a cluster is used (``pip install "medfeat[dask]"``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from .._checks import write_atomic

__all__ = ["SlideTaskResult", "extract_slide_features_many", "heatmap_slides_many"]

logger = logging.getLogger(__name__)

_DASK_HINT = 'the Dask scale-out (--scheduler / client=); install it with `pip install "medfeat[dask]"`'


@dataclass
class SlideTaskResult:
    """Outcome of one slide in a many-slide run.

    Attributes
    ----------
    slide : str
        The slide as given.
    status : {"written", "skipped", "failed"}
        ``"skipped"``: its output was already complete.
    outputs : list of str
        Files written (or found complete) for the slide: paths, or URLs for fsspec outputs.
    error : str or None
        One-line reason of the last failure.
    attempts : int
        Tasks run for the slide (1 + retries used); a worker death that Dask rescheduled by itself does
        not count here.
    worker : str or None
        Worker (address) or ``"local"`` that ran the last attempt.
    seconds : float
        Wall time of the last attempt.
    """

    slide: str
    status: str
    outputs: list
    error: str | None = None
    attempts: int = 1
    worker: str | None = None
    seconds: float = 0.0

    @property
    def path(self):
        """The first output (the feature store of an extraction), or None when the slide failed."""
        return self.outputs[0] if self.outputs else None


class SlideTaskError(RuntimeError):
    """A slide's task failed (the message is the one-line error of the single-slide code)."""


# --------------------------------------------------------------------------------------------------------
# outputs: local directory or fsspec URL
# --------------------------------------------------------------------------------------------------------


class _Output:
    """Where results go: a local directory (``local`` set) or an fsspec filesystem + root path."""

    def __init__(self, out_dir):
        if out_dir is None:
            raise ValueError("out_dir must be given: a directory or an fsspec URL such as s3://bucket/features.")
        text = os.fspath(out_dir)
        self.url = text
        self.local = None
        self.fs = None
        self.root = None
        if "://" not in text and "::" not in text:
            self.local = Path(text)
            return
        from medfeat._checks import optional_import

        core = optional_import("fsspec.core", purpose=f"writing results to {text}", package="fsspec")
        fs, root = core.url_to_fs(text)
        if type(fs).__name__ == "LocalFileSystem":
            self.local = Path(root)
            return
        self.fs, self.root = fs, root.rstrip("/")

    def __getstate__(self):
        # Filesystem objects rebuild themselves from the URL (fsspec instances are cached per process).
        return {"url": self.url}

    def __setstate__(self, state):
        self.__init__(state["url"])

    @property
    def remote(self):
        return self.fs is not None

    def target(self, name):
        """Final location of the output file ``name``: a Path or a URL."""
        if not self.remote:
            return self.local / name
        return self.fs.unstrip_protocol(f"{self.root}/{name}")

    def exists(self, name):
        if not self.remote:
            return (self.local / name).exists()
        return self.fs.exists(f"{self.root}/{name}")

    def put(self, local_path, name):
        """Upload ``local_path`` as ``name``: a temporary object first, renamed when the upload is complete."""
        final = f"{self.root}/{name}"
        tmp = f"{final}.partial-{uuid.uuid4().hex[:12]}"
        self.fs.makedirs(self.root, exist_ok=True)
        try:
            self.fs.put_file(os.fspath(local_path), tmp)
            self.fs.mv(tmp, final)
        except BaseException:
            try:
                if self.fs.exists(tmp):
                    self.fs.rm_file(tmp)
            except Exception:  # noqa: BLE001 - cleaning up must not hide the real error
                pass
            raise
        return self.fs.unstrip_protocol(final)

    def write_bytes(self, name, data):
        """Write a small file (the summaries) atomically."""
        if not self.remote:
            self.local.mkdir(parents=True, exist_ok=True)
            return write_atomic(self.local / name, lambda fh: fh.write(data))
        with tempfile.TemporaryDirectory(prefix="medfeat-") as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            return self.put(path, name)

    def scratch(self, scratch_dir):
        """Local directory where a worker builds files before uploading them (kept between attempts, so a
        retry on the same machine resumes a partial store)."""
        base = Path(scratch_dir) if scratch_dir is not None else Path(tempfile.gettempdir()) / "medfeat-scratch"
        import hashlib

        key = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        path = base / key
        path.mkdir(parents=True, exist_ok=True)
        return path


def _stem(slide):
    name = Path(os.fspath(slide)).name
    return name.rsplit(".", 1)[0] if "." in name else name


# --------------------------------------------------------------------------------------------------------
# per-worker state: models built once per process, device placement, CPU threads
# --------------------------------------------------------------------------------------------------------

_CACHE = {}
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 2
_THREADS_SET = []


def _worker_identity():
    """(name, address) of the Dask worker running this code, or (None, "local") outside Dask."""
    if "distributed" not in sys.modules:
        return None, "local"
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return None, "local"
    return worker.name, worker.address


def _set_cpu_threads(workers_on_host, torch_threads=None):
    """Give torch this worker's share of the host's cores (or ``torch_threads``), once per process.

    Dask's nanny starts workers with OMP_NUM_THREADS=1, which would leave torch one core per worker even
    when the host has more cores than workers.
    """
    if _THREADS_SET or not (workers_on_host or torch_threads):
        return
    _THREADS_SET.append(True)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    import torch

    torch.set_num_threads(int(torch_threads) if torch_threads else max(1, cores // int(workers_on_host)))


def _place(estimator, worker_name):
    """Put ``device="auto"`` parameters of a worker's copy on its own GPU: ``cuda:<name % n_gpus>``.

    A LocalCluster names its workers 0..N-1, so N workers on a G-GPU host spread over the G GPUs. Workers
    with other names (a cluster started with one worker per GPU and CUDA_VISIBLE_DEVICES) keep "auto",
    which is their only visible GPU.
    """
    if not isinstance(worker_name, int) or "torch" not in sys.modules and not _uses_torch(estimator):
        return estimator
    import torch

    if not torch.cuda.is_available():
        return estimator
    n_gpus = torch.cuda.device_count()
    try:
        params = estimator.get_params(deep=True)
    except Exception:  # noqa: BLE001 - not an estimator with parameters: nothing to place
        return estimator
    update = {k: f"cuda:{worker_name % n_gpus}" for k, v in params.items()
              if (k == "device" or k.endswith("__device")) and v == "auto"}
    if update:
        estimator.set_params(**update)
    return estimator


def _uses_torch(estimator):
    try:
        return any(k == "device" or k.endswith("__device") for k in estimator.get_params(deep=True))
    except Exception:  # noqa: BLE001
        return False


def _cached(key, build):
    """The per-process object for ``key``, built once (the backbone is loaded by the first slide's fit)."""
    with _CACHE_LOCK:
        entry = _CACHE.get(key)
        if entry is None:
            entry = {"object": build(), "lock": threading.Lock()}
            _CACHE[key] = entry
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
        return entry


# --------------------------------------------------------------------------------------------------------
# tasks (run on the workers, or in this process when client is None)
# --------------------------------------------------------------------------------------------------------


def _task_setup(obj, key, options):
    """What every slide task does first: its worker's address, the torch threads of its share of the host,
    and the worker's cached copy of ``obj`` (the transformer or model, placed on the worker's device)."""
    import copy

    name, address = _worker_identity()
    if options.get("workers_on_host") and _uses_torch(obj):
        host = address.rsplit(":", 1)[0]
        _set_cpu_threads(options["workers_on_host"].get(host, 1), options.get("torch_threads"))
    return address, _cached(key, lambda: _place(copy.deepcopy(obj), name))


def _extract_task(slide, transformer, key, out, options):
    """Extract one slide; returns a SlideTaskResult as a dict, raises SlideTaskError on failure."""
    from medfeat.pipelines.extraction import extract_features
    from medfeat.pipelines.store import store_path_for

    start = time.perf_counter()
    address, entry = _task_setup(transformer, key, options)
    target_name = store_path_for(slide, ".").name
    if out.remote and not options["overwrite"] and out.exists(target_name):
        return asdict(SlideTaskResult(slide, "skipped", [out.target(target_name)], worker=address,
                                      seconds=time.perf_counter() - start))
    work_dir = out.scratch(options.get("scratch_dir")) if out.remote else out.local
    with entry["lock"], warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        (result,) = extract_features([slide], entry["object"], work_dir, overwrite=options["overwrite"],
                                     progress=False, annotations_dir=options.get("annotations_dir"),
                                     **options["kwargs"])
    if result.status == "failed":
        raise SlideTaskError(result.error)
    path, status = result.path, result.status
    if out.remote:
        # a store finished in scratch by an attempt whose upload failed is uploaded now, not recomputed
        url = out.put(path, Path(path).name)
        Path(path).unlink()
        # the store's lock file (medfeat.pipelines.store.store_lock) goes with it: the scratch stays empty
        with contextlib.suppress(OSError):
            Path(f"{path}.lock").unlink()
        path, status = url, "written"
    return asdict(SlideTaskResult(slide, status, [os.fspath(path)], worker=address,
                                  seconds=time.perf_counter() - start))


def _heatmap_task(slide, model, key, out, options):
    """Heatmap of one slide: PNG, GeoJSON, NPY and scores CSV; returns a SlideTaskResult as a dict."""
    from medfeat.pipelines.heatmap import SlideHeatmap
    from medfeat.pipelines.labels import slide_labels
    from medfeat.pipelines.workflow import write_heatmap_outputs

    start = time.perf_counter()
    address, entry = _task_setup(model, key, options)
    stem = _stem(slide)
    names = [f"{stem}.png", f"{stem}.geojson", f"{stem}.npy", f"{stem}_scores.csv"]
    if not options["overwrite"] and all(out.exists(n) for n in names):
        return asdict(SlideTaskResult(slide, "skipped", [os.fspath(out.target(n)) for n in names],
                                      worker=address, seconds=time.perf_counter() - start))
    work_dir = out.scratch(options.get("scratch_dir")) if out.remote else out.local
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        with entry["lock"]:
            hm = SlideHeatmap(entry["object"], progress=False, **options["kwargs"]).predict(slide)
        y_true = None
        if options["annotations_dir"] is not None:
            y_true = slide_labels(stem, hm.grid, options["annotations_dir"], options["rule"])
        # the four files of `medfeat heatmap`, each written atomically
        write_heatmap_outputs(hm, work_dir, stem, y_true=y_true, **options["outputs"])
    except Exception as exc:  # noqa: BLE001 - the driver records it and retries
        raise SlideTaskError(_one_line(exc)) from exc
    outputs = []
    for n in names:
        if out.remote:
            outputs.append(out.put(work_dir / n, n))
            (work_dir / n).unlink()
        else:
            outputs.append(os.fspath(work_dir / n))
    return asdict(SlideTaskResult(slide, "written", outputs, worker=address, seconds=time.perf_counter() - start))


def _one_line(exc):
    text = str(exc).strip()
    if isinstance(exc, SlideTaskError):
        return text.splitlines()[0] if text else "SlideTaskError"
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


# --------------------------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------------------------


def _parse_local(spec):
    _, _, n = spec.partition(":")
    if not n:
        return None
    try:
        n = int(n)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"client/scheduler {spec!r}: expected local:N with N a positive number of workers.")
    return n


class _Session:
    """A Dask client for the run: the caller's, one connected to an address, or a LocalCluster of ours."""

    def __init__(self, client, *, progress):
        self.given = client
        self.progress = progress
        self.client = None
        self._owned = []
        self.local_workers = None

    def __enter__(self):
        if self.given is None:
            return self
        from medfeat._checks import optional_import

        distributed = optional_import("distributed", purpose=_DASK_HINT, package="dask[distributed]")
        if not isinstance(self.given, (str, os.PathLike)):
            self.client = self.given
        else:
            spec = os.fspath(self.given).strip()
            if spec == "local" or spec.startswith("local:"):
                n = _parse_local(spec) or _default_local_workers()
                # One worker per GPU or per core share; one thread each (a task holds the model and
                # reads with its own reader threads). Dashboard on a free port: several runs may share a host.
                cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                   dashboard_address="127.0.0.1:0", host="127.0.0.1")
                self._owned.append(cluster)
                self.client = distributed.Client(cluster)
                self.local_workers = n
            elif spec.endswith(".json") and Path(spec).is_file():
                self.client = distributed.Client(scheduler_file=spec)
            else:
                self.client = distributed.Client(spec, timeout="30s")
            self._owned.insert(0, self.client)
        if self.progress:
            link = _dashboard(self.client)
            if link:
                print(f"Dask dashboard: {link}", file=sys.stderr)
        return self

    def __exit__(self, *exc):
        for obj in self._owned:
            try:
                obj.close()
            except Exception:  # noqa: BLE001 - closing must not hide the run's own error
                logger.debug("closing %r failed", obj, exc_info=True)
        return False

    def workers_on_host(self):
        """{host: number of workers} from the scheduler, to share each host's cores among its workers."""
        if self.client is None:
            return None
        counts = {}
        for address in self.client.scheduler_info(n_workers=-1)["workers"]:
            host = address.rsplit(":", 1)[0]
            counts[host] = counts.get(host, 0) + 1
        return counts


def _dashboard(client):
    """The dashboard address if something answers there (a scheduler may run without one)."""
    import urllib.error
    import urllib.request

    link = getattr(client, "dashboard_link", None)
    if not link:
        return None
    try:
        with urllib.request.urlopen(link, timeout=2) as response:
            body = response.read(2048)
    except urllib.error.HTTPError as exc:
        # 404: a scheduler started with --no-dashboard still serves /health and /metrics there
        return None if exc.code == 404 else link
    except (OSError, ValueError):
        return None
    if b"needs bokeh" in body:
        return f'{link} (install bokeh>=3.1 on the scheduler to see it: pip install "medfeat[dask]")'
    return link


def _default_local_workers():
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.device_count()
    except ImportError:
        pass
    return max(1, (os.cpu_count() or 1) // 2)


def _run(task, slides, payload, key, out, options, *, client, retries, progress, desc):
    """Run ``task`` once per slide (with bounded retries), in this process or on Dask; results in order."""
    results = [None] * len(slides)
    bar = None
    if progress:
        from .._checks import progress_bar

        bar = progress_bar(total=len(slides), unit="slide", desc=desc)

    def finish(i, record):
        results[i] = record
        if bar is not None:
            bar.update(1)
            failed = sum(r is not None and r.status == "failed" for r in results)
            if failed:
                bar.set_postfix(failed=failed)

    def failed(i, attempt, exc, worker=None):
        return SlideTaskResult(slides[i], "failed", [], error=_one_line(exc), attempts=attempt, worker=worker)

    try:
        with _Session(client, progress=progress) as session:
            if session.client is None:
                for i, slide in enumerate(slides):
                    for attempt in range(1, retries + 2):
                        try:
                            record = SlideTaskResult(**task(slide, payload, key, out, options))
                            record.attempts = attempt
                            break
                        except Exception as exc:  # noqa: BLE001 - isolate the slide, retry, then report
                            record = failed(i, attempt, exc, "local")
                            logger.info("slide %s failed (attempt %d): %s", slide, attempt, record.error)
                    finish(i, record)
                return results

            from distributed import as_completed

            options = dict(options, workers_on_host=session.workers_on_host())
            dask_client = session.client
            # Shipped to each worker once (not inside every task); a worker builds its model from it once.
            shipped = []

            def payload_future():
                if not shipped or shipped[-1].status != "finished":  # every holder died: ship it again
                    shipped.append(dask_client.scatter([payload], broadcast=True, hash=False)[0])
                return shipped[-1]

            run_id = uuid.uuid4().hex[:8]
            attempts = {}

            def submit(i, attempt):
                future = dask_client.submit(task, slides[i], payload_future(), key, out, options, pure=False,
                                            key=f"medfeat-{desc}-{_stem(slides[i])}-{run_id}-{i}-a{attempt}")
                attempts[future.key] = (i, attempt)
                return future

            pending = as_completed([submit(i, 1) for i in range(len(slides))])
            for future in pending:
                i, attempt = attempts.pop(future.key)
                if future.status == "finished":
                    record = SlideTaskResult(**future.result())
                    record.attempts = attempt
                    finish(i, record)
                    continue
                try:
                    exc = future.exception()
                except BaseException as err:  # noqa: BLE001 - a cancelled future raises here
                    exc = err
                logger.info("slide %s failed (attempt %d): %s", slides[i], attempt, _one_line(exc))
                if attempt <= retries:
                    pending.add(submit(i, attempt + 1))
                else:
                    finish(i, failed(i, attempt, exc))
                future.release()
            return results
    finally:
        # a threads-only cluster or this process: do not keep the model alive after the run
        _CACHE.pop(key, None)
        if bar is not None:
            bar.close()


def _write_summary(out, name, results, scheduler):
    """``<name>.csv`` and ``<name>.json`` beside the outputs, each written atomically."""
    columns = ["slide", "status", "attempts", "error", "worker", "seconds", "outputs"]
    rows = []
    for r in results:
        row = asdict(r)
        row["seconds"] = round(float(row["seconds"]), 3)
        rows.append(row)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "outputs": ";".join(row["outputs"]), "error": row["error"] or ""})
    counts = {s: sum(r.status == s for r in results) for s in ("written", "skipped", "failed")}
    doc = {"n_slides": len(results), **{f"n_{k}": v for k, v in counts.items()}, "scheduler": scheduler,
           "slides": rows}
    paths = [out.write_bytes(f"{name}.csv", text.getvalue().encode()),
             out.write_bytes(f"{name}.json", (json.dumps(doc, indent=2) + "\n").encode())]
    return [os.fspath(p) for p in paths]


def _scheduler_name(client):
    if client is None:
        return None
    if isinstance(client, (str, os.PathLike)):
        return os.fspath(client)
    return getattr(getattr(client, "scheduler", None), "address", None) or repr(client)


def _check_common(slides, retries, output_name):
    slides = [os.fspath(s) for s in slides]
    if not slides:
        raise ValueError("slides is empty; expected at least one slide file.")
    stems = {}
    for s in slides:
        stems.setdefault(output_name(s), []).append(s)
    clashes = [v for v in stems.values() if len(v) > 1]
    if clashes:
        raise ValueError(f"slides {clashes[0]} have the same file name; their outputs would overwrite each other.")
    if int(retries) < 0:
        raise ValueError(f"retries must be >= 0, got {retries!r}.")
    return slides, int(retries)


def extract_slide_features_many(slides, features="deep", out_dir=None, *, client=None, retries=2,
                                reader_threads="auto", torch_threads=None, overwrite=False, progress=True,
                                annotations_dir=None, summary="extract-summary", scratch_dir=None, **kwargs):
    """Extract feature stores of many slides, one task per slide, on Dask distributed or in this process.

    Parameters
    ----------
    slides : iterable of str or path
        Slide files; on a cluster they must be readable by the workers (a shared filesystem).
    features : transformer or {"deep", "handcrafted", "fusion", ...}
        As in :func:`medfeat.pipelines.extract_features`. Each worker builds (fits) its copy once and
        keeps it for its later slides.
    out_dir : str, path or fsspec URL
        Directory for the stores (``<out_dir>/<slide stem>.h5``): local, a shared filesystem, or a URL
        such as ``s3://bucket/features`` (needs s3fs) written through a local scratch directory.
    client : distributed.Client, str or None
        ``None``: run here, slide after slide (no Dask needed). ``"local:N"``: a LocalCluster of N
        single-threaded worker processes, started and closed here (``"local"``: one per GPU, else one per
        two cores). Any other string: the address of a running ``dask scheduler`` (``tcp://host:8786``) or
        a scheduler JSON file. A Client is used as given and left open.
    retries : int
        Times a failed slide is resubmitted before it is reported as failed.
    reader_threads : int or "auto"
        Patch-reading threads per task (``num_workers`` of :func:`extract_slide_features`).
    torch_threads : int, optional
        CPU threads of torch in each Dask worker (default: the host's cores shared among its workers).
        CPU convolutions sum in an order that depends on the thread count, so deep features on the CPU are
        bit-identical to a single-process run only with the same count (what that process uses: the
        cores it may run on); otherwise they differ by ~1e-5 relative. GPU runs and handcrafted features do
        not depend on it.
    overwrite : bool
        Recompute finished stores.
    progress : bool
        One progress bar over slides (and the dashboard address when a cluster is used).
    annotations_dir : str or path, optional
        ``<slide stem>.xml/.geojson/.json`` annotations, as in :func:`extract_features`.
    summary : str or None
        Stem of the summary table written to ``out_dir`` (``<summary>.csv`` and ``.json``: one row per
        slide with status, attempts, error, worker, seconds); None writes none.
    scratch_dir : str or path, optional
        Local directory where workers build stores for an fsspec ``out_dir`` (default: the system temp
        directory). A partial store there is resumed by a later attempt on the same machine.
    **kwargs
        Passed to :func:`medfeat.pipelines.extract_slide_features` (mpp, size, stride, tissue, scales,
        batch_size, chunk_size, slide_mpp, ...).

    Returns
    -------
    list of SlideTaskResult
        One per slide, in the given order (``.path`` is the store).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from medfeat.slides import write_synthetic_slide
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> s = write_synthetic_slide(d / "a.tif", size=(1024, 1024), mpp=0.5, seed=0)
    >>> res = extract_slide_features_many([s.path, d / "missing.svs"], "color", d / "feats", retries=0,
    ...                                   mpp=1.0, size=64, progress=False)
    >>> [(r.status, r.attempts) for r in res]
    [('written', 1), ('failed', 1)]
    >>> res[0].path == str(d / "feats" / "a.h5")
    True
    >>> sorted(p.name for p in (d / "feats").glob("extract-summary.*"))
    ['extract-summary.csv', 'extract-summary.json']
    """
    from medfeat.pipelines.config import make_features
    from medfeat.pipelines.store import store_path_for

    slides, retries = _check_common(slides, retries, lambda s: store_path_for(s, ".").name)
    out = _Output(out_dir)
    if "num_workers" in kwargs:
        raise TypeError("pass reader_threads= (the patch-reading threads of each task), not num_workers=.")
    transformer = make_features(features, scales=kwargs.get("scales", (1,)))
    # One cache entry per run: a worker of a long-lived cluster keeps at most _CACHE_SIZE models.
    key = ("extract", uuid.uuid4().hex)
    options = {"overwrite": bool(overwrite), "torch_threads": torch_threads,
               "annotations_dir": None if annotations_dir is None else
               os.path.abspath(os.fspath(annotations_dir)), "scratch_dir": scratch_dir,
               "kwargs": dict(kwargs, num_workers=reader_threads)}
    results = _run(_extract_task, slides, transformer, key, out, options, client=client, retries=retries,
                   progress=progress, desc="extract")
    if summary:
        _write_summary(out, summary, results, _scheduler_name(client))
    return results


def heatmap_slides_many(model, slides, out_dir, *, client=None, retries=2, reader_threads="auto", threshold=None,
                        annotations_dir=None, rule=None, objects="both", positive_class="Tumor",
                        negative_class="Normal", overwrite=True, progress=True, summary="heatmap-summary",
                        scratch_dir=None, **kwargs):
    """Heatmaps of many slides (PNG, QuPath GeoJSON, NPY, scores CSV), one task per slide.

    Parameters
    ----------
    model : fitted estimator
        An image pipeline or :class:`medfeat.pipelines.SlidePatchClassifier` (as for
        :class:`medfeat.pipelines.SlideHeatmap`). It is shipped to each worker once; a deep network is
        rebuilt there once per worker.
    slides : iterable of str or path
        Slide files (readable by the workers).
    out_dir : str, path or fsspec URL
        Output directory: ``<stem>.png``, ``<stem>.geojson``, ``<stem>.npy``, ``<stem>_scores.csv``.
    client, retries, progress, summary, scratch_dir
        As in :func:`extract_slide_features_many`.
    reader_threads : int or "auto"
        Patch-reading threads per task (``num_workers`` of :class:`medfeat.pipelines.SlideHeatmap`).
    threshold, objects, positive_class, negative_class
        As in :func:`medfeat.pipelines.write_heatmap_outputs` (threshold default: the model's own).
    annotations_dir : str or path, optional
        ``<stem>.xml/.geojson/.json`` annotations: the score CSV gets each patch's ``y_true``
        (:func:`medfeat.pipelines.slide_labels` with ``rule``).
    rule : ClassRule, optional
        Which annotation classes are lesion / normal / ignored.
    overwrite : bool
        Redraw slides whose four outputs exist (default True, as ``medfeat heatmap`` always redraws).
    **kwargs
        Passed to :class:`medfeat.pipelines.SlideHeatmap` (mpp, size, stride, scales, tissue, min_tissue,
        tta, batch_size, slide_mpp, positive_label).

    Returns
    -------
    list of SlideTaskResult
        One per slide, in the given order.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.linear_model import LogisticRegression
    >>> from medfeat.features import ColorFeatures
    >>> from medfeat.slides import write_synthetic_slide
    >>> model = make_pipeline(ColorFeatures(), LogisticRegression()).fit(
    ...     np.stack([np.full((8, 8, 3), v, np.uint8) for v in (50, 200)]), [1, 0])
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> s = write_synthetic_slide(d / "s.tif", size=(1024, 1024), mpp=0.5)
    >>> [r.status for r in heatmap_slides_many(model, [s.path], d / "maps", mpp=1.0, size=64, progress=False)]
    ['written']
    >>> sorted(p.name for p in (d / "maps").iterdir())[:3]
    ['heatmap-summary.csv', 'heatmap-summary.json', 's.geojson']
    """
    slides, retries = _check_common(slides, retries, _stem)
    out = _Output(out_dir)
    if "num_workers" in kwargs or "progress" in kwargs:
        raise TypeError("pass reader_threads= and progress= of heatmap_slides_many, not of SlideHeatmap.")
    options = {"overwrite": bool(overwrite), "scratch_dir": scratch_dir, "rule": rule,
               "annotations_dir": None if annotations_dir is None else os.path.abspath(os.fspath(annotations_dir)),
               "outputs": {"threshold": threshold, "objects": objects, "positive_class": positive_class,
                           "negative_class": negative_class},
               "kwargs": dict(kwargs, num_workers=reader_threads)}
    results = _run(_heatmap_task, slides, model, ("heatmap", uuid.uuid4().hex), out, options, client=client,
                   retries=retries, progress=progress, desc="heatmap")
    if summary:
        _write_summary(out, summary, results, _scheduler_name(client))
    return results
