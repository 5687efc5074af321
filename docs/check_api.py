"""Check that every public name of every medfeat subpackage is documented in the built HTML site.

Usage: python docs/check_api.py docs/_build/html

Reads the site's Sphinx inventory (objects.inv: what the built site really documents) and compares it
with each subpackage's ``__all__``; exits non-zero listing any public name that has no entry.
"""

import importlib
import sys
import zlib
from pathlib import Path


def documented_names(html_dir):
    raw = (Path(html_dir) / "objects.inv").read_bytes()
    # Format: four '#' header lines, then a zlib stream of "name domain:role priority uri dispname" lines.
    header_end = 0
    for _ in range(4):
        header_end = raw.index(b"\n", header_end) + 1
    body = zlib.decompress(raw[header_end:]).decode("utf-8")
    return {line.split(" ", 1)[0] for line in body.splitlines() if line.strip()}


def main(html_dir):
    import medfeat

    names = documented_names(html_dir)
    missing = []
    count = 0
    for sub in (n for n in medfeat.__all__ if n != "__version__"):
        module = importlib.import_module(f"medfeat.{sub}")
        for name in module.__all__:
            count += 1
            if f"medfeat.{sub}.{name}" not in names:
                missing.append(f"medfeat.{sub}.{name}")
    if missing:
        print(f"{len(missing)} of {count} public names are missing from the API reference:", *missing, sep="\n  ")
        return 1
    print(f"all {count} public names of {len(medfeat.__all__) - 1} subpackages are in the API reference")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/_build/html"))
