"""The README's Python snippets run as written (in order, in one fresh interpreter, in an empty folder)."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def python_blocks(text: str) -> list[str]:
    """The fenced ```python blocks of a markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_python_blocks_are_found() -> None:
    blocks = python_blocks("x\n```python\na = 1\n```\n```bash\nls\n```\n```python\nb = 2\n```\n")
    assert blocks == ["a = 1\n", "b = 2\n"]


def test_every_readme_python_snippet_runs(tmp_path: Path) -> None:
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 4, "the README lost its Python snippets"
    script = "\n".join(f"print('--- snippet {i}', flush=True)\n{block}" for i, block in enumerate(blocks))
    (tmp_path / "snippets.py").write_text(script)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "snippets.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"a README snippet failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    out = done.stdout
    assert f"--- snippet {len(blocks) - 1}" in out
    assert re.search(r"^300 \(JointDamage\(", out, flags=re.M), "the env snippet's break at step 300 was not seen"
    assert re.search(r"return over 350 steps: -?\d+\.\d", out)
    assert (tmp_path / "my_presets" / "rebal_5x600.yaml").is_file()
    assert (tmp_path / "runs" / "readme_mb" / "model.pt").is_file()
