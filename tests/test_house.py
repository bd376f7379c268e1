"""House rules of the library (quantnb/*.py, written by nbdev from the notebooks) and of the notebooks themselves:
where a helper lives, how long a line may be, one statement per line."""
import ast
import json
import re
from pathlib import Path

import pytest

LIBRARY = sorted(p for p in (Path(__file__).parents[1] / 'quantnb').glob('*.py') if p.name != '_modidx.py')
NOTEBOOKS = sorted((Path(__file__).parents[1] / 'nbs').glob('*.ipynb'))
GUARDS = (ast.Return, ast.Raise, ast.Continue, ast.Break, ast.Pass)


def _tree(path):
    return ast.parse(path.read_text())


def _quantnb_imports(tree):
    "`(module, name)` of every `from quantnb.x import name` (nbdev writes them as `from .x import name`)."
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or '').startswith('quantnb')):
            for alias in node.names:
                yield node.module, alias.name


def test_no_module_imports_a_private_name_of_another():
    "A private name used by another module is a public helper in the wrong place."
    found = [f'{p.stem} imports {name} from {module}' for p in LIBRARY for module, name in _quantnb_imports(_tree(p))
             if name.startswith('_')]
    assert not found, found


def _top_level_names(tree):
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            yield from (t.id for t in targets if isinstance(t, ast.Name) and t.id != '__all__')


def test_no_name_is_defined_in_two_modules():
    homes = {}
    for p in LIBRARY:
        for name in _top_level_names(_tree(p)):
            homes.setdefault(name, []).append(p.stem)
    twice = {name: modules for name, modules in homes.items() if len(modules) > 1}
    assert not twice, twice


def _generated_lines(path):
    "Line numbers nbdev writes itself: the `__all__` list, which it wraps at its own width."
    for node in _tree(path).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == '__all__' for t in node.targets):
            return set(range(node.lineno, node.end_lineno + 1))
    return set()


@pytest.mark.parametrize('path', LIBRARY, ids=lambda p: p.name)
def test_library_lines_fit_in_120_characters(path):
    generated = _generated_lines(path)
    long = [n for n, line in enumerate(path.read_text().splitlines(), 1) if len(line) > 120 and n not in generated]
    assert not long, f'{path.name}: lines {long[:20]} ({len(long)} in all) are longer than 120 characters'


def _shared_lines(tree):
    "Lines that start two statements, except one-line guards such as `if x is None: return y`."
    starts = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                starts.setdefault(child.lineno, []).append((node, child))
    shared = []
    for line, pairs in starts.items():
        if len(pairs) < 2:
            continue
        guard = all(isinstance(parent, ast.If) and isinstance(child, (ast.If, *GUARDS)) and not parent.orelse
                    for parent, child in pairs) or (
            len(pairs) == 2 and isinstance(pairs[0][1], ast.If) and pairs[1][0] is pairs[0][1]
            and isinstance(pairs[1][1], GUARDS) and not pairs[0][1].orelse)
        if not guard:
            shared.append(line)
    return sorted(shared)


@pytest.mark.parametrize('path', LIBRARY, ids=lambda p: p.name)
def test_one_statement_per_line(path):
    shared = _shared_lines(_tree(path))
    assert not shared, f'{path.name}: lines {shared[:20]} ({len(shared)} in all) hold two statements'


def _cells(path, kind):
    "`(cell id, source)` of every `kind` ('code' or 'markdown') cell of a notebook."
    return [(c.get('id'), ''.join(c['source'])) for c in json.loads(path.read_text())['cells'] if c['cell_type'] == kind]


def _is_table_row(line):
    "A Markdown table row or a link definition: both must stay on one line."
    stripped = line.lstrip()
    return stripped.startswith('|') or (stripped.startswith('[') and ']: ' in stripped)


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_lines_fit_in_120_characters(path):
    long = [cell for kind in ('code', 'markdown') for cell, source in _cells(path, kind)
            for line in source.splitlines() if len(line) > 120 and not (kind == 'markdown' and _is_table_row(line))]
    assert not long, f'{path.name}: cells {sorted(set(long))[:20]} hold lines longer than 120 characters'


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_code_has_one_statement_per_line(path):
    shared = [cell for cell, source in _cells(path, 'code') if _shared_lines(ast.parse(source))]
    assert not shared, f'{path.name}: cells {shared} hold two statements on one line (joined by ; or after a colon)'


# A measured number reaches a notebook's prose only through a cell's Markdown output. What prose may type: definitions,
# figures cited with their source, and the thresholds its cells assert, each named here with why.
TYPED_NUMBERS = {
    '00_affine.ipynb': {'0.5%': 'the bound the next cell asserts', '6 dB': 'one bit: 20·log10(2) dB'},
    '01_data.ipynb': {n: "Fashion-MNIST's README, cited" for n in ('99.7%', '99.2%', '99.3%', '92.5%', '92.2%')}
    | {n: 'round figures of the argument' for n in ('99%', '1%', '92%')},
    '01a_measure.ipynb': {'4×': '32 bits over 8'},
    '02_observers.ipynb': {'99.99%': 'the default percentile', '0.2%': 'the 12 outliers of the data built above',
                           '40 dB': 'the bound the cell asserts'},
    '03_fakequant.ipynb': {'8×': '32 bits over 4'},
    '04_ptq.ipynb': {'4×': '32 bits over 8'},
    '05a_kernels.ipynb': {'48 KiB': 'the default the code assumes where Linux does not report L1'},
    '05c_integer.ipynb': {'0.05 points': 'the bound the cell asserts', '99%': 'the bound the cell asserts'},
    '07_analysis.ipynb': {'6 dB': 'one bit', '0 dB': 'the definition', '30 dB': 'the bound the cell asserts'},
    '08_pipeline.ipynb': {'4×': '32 bits over 8'},
    '09_advanced_ptq.ipynb': {'20%': "AdaRound's warm-up, cited"},
    '10_deploy.ipynb': {'4×': '32 bits over 8'},
}
MEASURED = re.compile(r'(?<![\w.$^{/×-])\d[\d,]*(?:\.\d+)?\s?(?:%|×|ms|s|MiB|KiB|dB|pt|points)(?![\w×\d])')


def _prose(source):
    "Markdown without math, code spans and link targets, where numbers are not prose."
    for pattern in (r'\$\$.*?\$\$', r'\$[^$]*\$', r'`[^`]*`', r'\]\([^)]*\)'):
        source = re.sub(pattern, '', source, flags=re.S)
    return source


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.name)
def test_measured_numbers_reach_the_prose_only_through_cell_outputs(path):
    allowed = TYPED_NUMBERS.get(path.name, {})
    typed = [(cell, number) for cell, source in _cells(path, 'markdown') for number in MEASURED.findall(_prose(source))
             if number not in allowed]
    assert not typed, f'{path.name}: numbers typed into markdown (compute them in a cell): {typed[:10]}'
