"""glibc malloc tuning for CNN inference on the CPU (called on the first deep-feature fit/transform).

Why: glibc serves every allocation above its mmap threshold (128 KiB, rising dynamically to at most
32 MiB) with a fresh ``mmap`` and returns it with ``munmap`` on free. A CNN forward pass allocates
activations of tens to hundreds of MiB per batch (ResNet-50, 32 x 224 px: ~100 MiB for the first
stage), so every batch page-faults freshly zeroed pages from the kernel: about a fifth of the CPU
time went to the kernel in the profile of issue 15. Raising the mmap threshold and the trim threshold
keeps freed activations in the heap for the next batch, like the caching allocators (tcmalloc,
jemalloc) that PyTorch's docs suggest preloading, without asking users to preload anything.

Cost: memory freed after the peak of a batch stays with the process (reused by the next batch, not
returned to the OS), so resident memory stays near the peak of the largest batch.

Off switch: set the environment variable ``MEDFEAT_TUNE_MALLOC=0`` before the first deep-feature call.
Nothing happens on non-glibc platforms (macOS, Windows, musl) or when glibc refuses a setting.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

__all__ = ["malloc_tuning", "tune_malloc"]

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

# Allocations below 1 GiB come from the heap; freed memory is given back only beyond 1 GiB of free top
# (in practice never during extraction); the heap grows in 64 MiB steps (fewer brk calls).
_MMAP_THRESHOLD = 1 << 30
_MMAP_THRESHOLD_OLD_GLIBC = 32 << 20  # glibc < 2.35 refuses thresholds above HEAP_MAX_SIZE / 2
_TRIM_THRESHOLD = 1 << 30
_TOP_PAD = 64 << 20

_ENV = "MEDFEAT_TUNE_MALLOC"
_lock = threading.Lock()
_state = {"done": False, "applied": None}


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        version = libc.gnu_get_libc_version  # absent on musl
    except (OSError, AttributeError):
        return None
    version.restype = ctypes.c_char_p
    return libc


def tune_malloc():
    """Apply the glibc malloc settings once per process; return what was applied.

    Returns
    -------
    dict or None
        ``{"mmap_threshold": bytes, "trim_threshold": bytes, "top_pad": bytes}`` when applied (now or
        by an earlier call), None when switched off (``MEDFEAT_TUNE_MALLOC=0``) or not glibc.
    """
    with _lock:
        if _state["done"]:
            return _state["applied"]
        _state["done"] = True
        if os.environ.get(_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
            return None
        libc = _glibc()
        if libc is None:
            return None
        mallopt = libc.mallopt
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        mallopt.restype = ctypes.c_int
        applied = {}
        for threshold in (_MMAP_THRESHOLD, _MMAP_THRESHOLD_OLD_GLIBC):
            if mallopt(_M_MMAP_THRESHOLD, threshold) == 1:
                applied["mmap_threshold"] = threshold
                break
        if mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1:
            applied["trim_threshold"] = _TRIM_THRESHOLD
        if mallopt(_M_TOP_PAD, _TOP_PAD) == 1:
            applied["top_pad"] = _TOP_PAD
        _state["applied"] = applied or None
        return _state["applied"]


def malloc_tuning():
    """What :func:`tune_malloc` applied in this process (None if nothing or not yet called)."""
    return _state["applied"]
