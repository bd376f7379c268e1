"""BENCHMARKS.md holds one section per benchmark script; each script replaces only its own."""
import re
from pathlib import Path

from quantnb.core import atomic_write

PATH = Path(__file__).resolve().parents[1] / 'BENCHMARKS.md'


def replace_section(heading:str, section:str, path:Path=PATH) -> Path:
    "Put `section` (which starts with `heading`, a `## ` line) in place of that heading's section of `path`, or append it."
    old = path.read_text() if path.exists() else '# Benchmarks\n'
    pattern = re.compile(rf'^{re.escape(heading)}\n.*?(?=^## |\Z)', re.M | re.S)
    new = pattern.sub(lambda _: section.rstrip('\n') + '\n\n', old) if pattern.search(old) else old.rstrip('\n') + '\n\n' + section
    atomic_write(path, lambda tmp: Path(tmp).write_text(new.rstrip('\n') + '\n'))
    return path
