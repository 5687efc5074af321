"""The one atomic-write helper of the pipelines: outputs appear under their final name only when complete."""

import os
from pathlib import Path


def write_atomic(path, write, *, suffix=".tmp"):
    """Call ``write(fh)`` on a binary file beside ``path`` (``<name><suffix>``), then rename it to ``path``.

    The temporary file is removed if ``write`` fails, so an interrupted run leaves no half-written output.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = write_atomic(pathlib.Path(tempfile.mkdtemp()) / "a.txt", lambda fh: fh.write(b"hi"))
    >>> p.read_text(), sorted(q.name for q in p.parent.iterdir())
    ('hi', ['a.txt'])
    """
    path = Path(path)
    tmp = path.with_name(path.name + suffix)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
