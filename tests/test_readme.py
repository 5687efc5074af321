"""The README's Python tour runs as written (docs that match the code) and its first lines hold the two commands."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_first_lines_give_the_two_commands():
    lines = [ln.strip() for ln in README.read_text().splitlines() if ln.startswith("    ")][:2]
    assert "medfeat demo" in lines[0] and "pip install" in lines[0]
    assert lines[1] == "python -m pytest"


def test_readme_python_examples_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 4
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    # values the README states in its comments
    assert "(54,)" in out and "(2, 512)" in out and "(2, 1472)" in out
    assert "Egyptian cat" in out
    assert "AUC" in out
