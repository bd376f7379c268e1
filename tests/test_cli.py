"""The `quantnb` command: the fast demo run once per session through the console script, its files checked; bad
arguments through the parser alone (nothing runs); the HTML report opened in headless Chromium."""
import atexit
import functools
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import quantnb
from quantnb.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
QUANTNB = shutil.which('quantnb', path=str(Path(sys.executable).parent)) or shutil.which('quantnb')
CHROMIUM = next((shutil.which(b) for b in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(b)), None)
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run', '--disable-quic']  # as tests/test_docs.py


@functools.cache
def fast_demo() -> dict:
    "`quantnb demo --fast --out DIR`, run once per session (test_pipeline.py shares it): folder, status, output, seconds."
    assert QUANTNB, 'the quantnb console script is not installed: pip install -e . (make test does)'
    tmp = tempfile.mkdtemp(prefix='quantnb-demo-')
    atexit.register(shutil.rmtree, tmp, True)
    out, start = Path(tmp) / 'report', time.perf_counter()
    res = subprocess.run([QUANTNB, 'demo', '--fast', '--out', str(out)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, 'MPLBACKEND': 'Agg'})
    return dict(out=out, returncode=res.returncode, stdout=res.stdout, stderr=res.stderr, seconds=time.perf_counter() - start)


@pytest.fixture(scope='session')
def demo_run():
    run = fast_demo()
    assert run['returncode'] == 0, f"quantnb demo --fast exited {run['returncode']}:\n{run['stderr'][-3000:]}"
    return run


def load_results(run): return json.loads((run['out'] / 'results.json').read_text())


def numbers(x):
    "Every number in a JSON value."
    if isinstance(x, dict): return [n for v in x.values() for n in numbers(v)]
    if isinstance(x, list): return [n for v in x for n in numbers(v)]
    return [x] if isinstance(x, (int, float)) and not isinstance(x, bool) else []


# ---- the fast demo, run once

def test_progress_and_summary_are_printed(demo_run):
    out = demo_run['stdout']
    assert re.search(r'^\[1/\d+\] data \.\.\.$', out, re.M), out[:2000]
    assert re.search(r'^\| model \| accuracy \|', out, re.M) and '| fp32 |' in out, out[-3000:]
    assert re.search(r'^quantnb demo finished in \d+ s$', out, re.M)


def test_files_exist_and_parse(demo_run):
    results = load_results(demo_run)
    assert {'settings', 'machine', 'rows', 'steps', 'latency'} <= set(results)
    md = (demo_run['out'] / 'report.md').read_text()
    for row in results['rows']: assert f"| {row['model']} |" in md
    assert sorted(p.name for p in demo_run['out'].iterdir()) <= ['report.html', 'report.md', 'results.json']


def test_every_number_is_finite(demo_run):
    found = numbers(load_results(demo_run))
    assert found and all(math.isfinite(n) for n in found)


def test_settings_record_fast_mode_and_the_machine(demo_run):
    results = load_results(demo_run)
    assert results['settings']['fast'] is True and results['settings']['quantnb'] == quantnb.__version__
    assert isinstance(results['machine']['vnni'], bool) and results['machine']['cores'] >= 1


def test_another_run_is_refused_without_force(demo_run, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in demo_run['out'].iterdir()}
    assert main(['demo', '--fast', '--seed', '1', '--out', str(demo_run['out'])]) == 2  # refused before any work
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'different run' in err and '--force' in err, err
    assert {p.name: p.stat().st_mtime_ns for p in demo_run['out'].iterdir()} == before


def test_foreign_files_are_refused(tmp_path, capsys):
    (tmp_path / 'thesis.tex').write_text('keep me')
    assert main(['demo', '--fast', '--out', str(tmp_path)]) == 2
    assert 'thesis.tex' in capsys.readouterr().err


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / 'f').write_text('')
    assert main(['demo', '--fast', '--out', str(tmp_path / 'f')]) == 2
    assert 'is a file' in capsys.readouterr().err


def test_missing_data_exits_1_saying_how_to_get_it(tmp_path, monkeypatch, capsys):
    from quantnb.data import _missing_message, data_spec
    from quantnb.pipeline import ModelQuantizationPipeline
    def no_data(self): raise FileNotFoundError(_missing_message(data_spec('mnist')))  # what load_dataset raises without files
    monkeypatch.setattr(ModelQuantizationPipeline, '_data', no_data)
    assert main(['demo', '--fast', '--dataset', 'mnist', '--out', str(tmp_path / 'r')]) == 1
    err = capsys.readouterr().err
    assert 'mnist was not found' in err and 'make data' in err, err


# ---- arguments, through the parser alone

BAD = {'epochs 0': ['demo', '--epochs', '0'], 'epochs -1': ['demo', '--epochs', '-1'], 'epochs x': ['demo', '--epochs', 'x'],
       'qat-epochs 0': ['demo', '--qat-epochs', '0'], 'threads 0': ['demo', '--threads', '0'], 'seed -1': ['demo', '--seed', '-1'],
       'dataset cifar': ['demo', '--dataset', 'cifar'], 'unknown option': ['demo', '--epoch', '3'],
       'no command': [], 'unknown command': ['train']}
NAMED = {'epochs 0': '--epochs', 'epochs -1': '--epochs', 'epochs x': '--epochs', 'qat-epochs 0': '--qat-epochs',
         'threads 0': '--threads', 'seed -1': '--seed', 'dataset cifar': '--dataset', 'unknown option': '--epoch',
         'no command': 'command', 'unknown command': 'train'}


@pytest.mark.parametrize('argv', BAD.values(), ids=BAD.keys())
def test_bad_arguments_exit_2_with_one_line(argv, capsys, request):
    with pytest.raises(SystemExit) as e: build_parser().parse_args(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1, err
    assert NAMED[request.node.callspec.id] in err and '--help' in err, err


def test_too_many_threads_exit_2(tmp_path, capsys):
    assert main(['demo', '--fast', '--threads', str(10 * (os.cpu_count() or 1)), '--out', str(tmp_path / 'r')]) == 2
    assert 'threads=' in capsys.readouterr().err


def test_defaults():
    args = build_parser().parse_args(['demo'])
    assert (args.dataset, args.epochs, args.qat_epochs, args.out, args.fast, args.threads, args.seed, args.force) == \
           ('fashion-mnist', 3, 1, 'report', False, 1, 0, False)


@pytest.mark.parametrize('argv,expected', [(['--help'], 'train (or load) SampleNet'), (['demo', '--help'], '--qat-epochs'),
                                           (['--version'], f'quantnb {quantnb.__version__}')], ids=['help', 'demo help', 'version'])
def test_help_and_version_exit_0(argv, expected, capsys):
    with pytest.raises(SystemExit) as e: build_parser().parse_args(argv)
    assert e.value.code == 0 and expected in capsys.readouterr().out


def test_console_script_prints_the_version():
    res = subprocess.run([QUANTNB, '--version'], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == f'quantnb {quantnb.__version__}'


# ---- the HTML report in headless Chromium

def _require(ok, reason):
    if ok: return
    if os.environ.get('QUANTNB_REQUIRE_BROWSER') == '1': pytest.fail(reason + ' (QUANTNB_REQUIRE_BROWSER=1)')
    pytest.skip(reason)


def test_report_html_in_chromium(demo_run):
    _require(CHROMIUM, 'Chromium is not installed: apt-get install chromium')
    html_file = demo_run['out'] / 'report.html'
    if not html_file.exists():
        why = load_results(demo_run)['steps'].get('analysis', {}).get('reason', 'report.html was not written')
        pytest.skip(f'no report.html: {why}')
    html = html_file.read_text()
    remote = re.findall(r'''(?:src|href)\s*=\s*["']?((?:https?:)?//[^"' >]+)''', html) + re.findall(r'url\(\s*["\']?((?:https?:)?//[^)]+)', html)
    assert not remote, f'report.html loads remote assets: {remote[:5]}'
    shot = ROOT / 'build' / 'screenshots' / 'report.png'
    shot.parent.mkdir(parents=True, exist_ok=True); shot.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        res = subprocess.run([CHROMIUM, *FLAGS, f'--user-data-dir={profile}', '--enable-logging=stderr', '--v=0',
                              '--virtual-time-budget=5000', '--window-size=1280,4000', f'--screenshot={shot}', html_file.as_uri()],
                             capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    console_errors = [l for l in res.stderr.splitlines() if 'CONSOLE' in l and re.search(r'error|uncaught', l, re.I)]
    assert not console_errors, console_errors
    assert shot.stat().st_size > 30_000, 'the screenshot is nearly empty: are the plots visible?'
    assert re.search(r'<img[^>]+src="data:image/(png|svg)|<svg', html), 'report.html shows no plot'
    assert html.count('<h1>') == 1, 'the title appears once'


def test_a_failed_run_leaves_no_empty_out_folder_and_ctrl_c_is_one_line(tmp_path, monkeypatch, capsys):
    import quantnb.cli as cli
    import quantnb.pipeline as pipeline

    def no_data(self):
        raise FileNotFoundError('the data set is missing')

    monkeypatch.setattr(pipeline.ModelQuantizationPipeline, 'full_quantization_demo', no_data)
    out = tmp_path / 'new-report'
    assert cli.main(['demo', '--out', str(out), '--fast']) == 1
    assert not out.exists()
    assert 'the data set is missing' in capsys.readouterr().err

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, 'demo', interrupted)
    assert cli.main(['demo', '--out', str(out)]) == 130
    assert capsys.readouterr().err.strip() == 'quantnb demo: interrupted'
