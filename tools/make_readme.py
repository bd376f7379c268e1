"""Write README.md from nbs/index.ipynb.

With Quarto installed this is `nbdev-readme`. Without it (Quarto is not installable everywhere), the same
result in plain Python: markdown cells as they are, visible code cells as fenced Python with their outputs
(Markdown outputs as Markdown, text fenced; `#| echo: false` shows only the outputs), `#|` directives and
`#| hide` cells left out, and notebook links pointed at `nbs/`.
`python tools/make_readme.py --check` exits 1 when README.md is stale.
"""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = '<!-- Generated from nbs/index.ipynb by `make docs` (tools/make_readme.py); edit the notebook, not this file. -->\n\n'


def directives(source):
    "The `#|` directive lines at the top of a cell, and the rest of its source."
    lines = source.splitlines()
    n = next((i for i, l in enumerate(lines) if not l.startswith('#|')), len(lines))
    return [l[2:].strip() for l in lines[:n]], '\n'.join(lines[n:]).strip('\n')


def text_outputs(cell):
    "A cell's stdout and results, Markdown as Markdown and text fenced (warnings on stderr stay out of the README)."
    for out in cell.get('outputs', []):
        data = out.get('data', {})
        if out['output_type'] == 'stream' and out['name'] == 'stdout': yield '```\n' + ''.join(out['text']).rstrip('\n') + '\n```'
        elif out['output_type'] in ('execute_result', 'display_data') and 'text/markdown' in data: yield ''.join(data['text/markdown']).rstrip('\n')
        elif out['output_type'] in ('execute_result', 'display_data') and 'text/plain' in data \
                and not any(k.startswith('image/') for k in data):
            yield '```\n' + ''.join(data['text/plain']).rstrip('\n') + '\n```'


def cell_markdown(cell):
    source = ''.join(cell['source'])
    if cell['cell_type'] == 'markdown': return re.sub(r'\]\((\d\d\w*\.ipynb)\)', r'](nbs/\1)', source)
    flags, code = directives(source)
    if 'hide' in flags or not code: return ''
    shown = [] if 'echo: false' in flags else [f'```python\n{code}\n```']
    return '\n\n'.join([*shown, *text_outputs(cell)])


def readme_text(nb_path=ROOT / 'nbs' / 'index.ipynb'):
    cells = json.loads(nb_path.read_text())['cells']
    return HEADER + '\n\n'.join(filter(None, map(cell_markdown, cells))) + '\n'


def main():
    readme = ROOT / 'README.md'
    if '--check' in sys.argv:
        if shutil.which('quarto'): return print('README.md is made by nbdev-readme where Quarto exists: not checked')
        if readme.read_text() != readme_text(): sys.exit('README.md is stale: run make docs')
        return print('README.md matches nbs/index.ipynb')
    if shutil.which('quarto'): subprocess.run(['nbdev-readme'], check=True, cwd=ROOT)
    else: readme.write_text(readme_text())
    print(f'wrote {readme.relative_to(ROOT)}')


if __name__ == '__main__': main()
