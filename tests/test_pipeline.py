"""quantnb.pipeline: the numbers of the fast demo (run once, shared with test_cli.py) checked against each other, and
the settings, the output-folder rules, the report and the plots on small inputs."""
import json
import math

import matplotlib
matplotlib.use('Agg')
import pytest
import torch

from quantnb.observers import OBSERVERS
from quantnb.pipeline import (NOISY_SPREAD, STEPS, DemoResult, _jsonable, _noisy, _round_speedups, check_out_dir,
                              demo_settings, plot_accuracy_vs_size, plot_latency, report_markdown, write_report)
from test_cli import fast_demo

ROW_OF_STEP = {'fp32 model': 'fp32', 'dynamic int8': 'dynamic int8', 'static int8': 'static int8', 'QAT int8': 'QAT int8',
               'low-bit QAT': 'low-bit QAT', 'integer-only': 'integer-only'}


@pytest.fixture(scope='module')
def results():
    run = fast_demo()
    assert run['returncode'] == 0, run['stderr'][-3000:]
    return DemoResult(json.loads((run['out'] / 'results.json').read_text()))


@pytest.fixture(scope='module')
def rows(results): return {r['model']: r for r in results['rows']}


def test_every_step_runs_and_has_its_row(results, rows):
    "Every module of the demo exists now: a step that became unavailable is a regression, not a smaller report."
    assert list(results['steps']) == list(STEPS)
    for name, step in results['steps'].items():
        assert step['status'] == 'ok' and step['seconds'] >= 0, (name, step)
        if name in ROW_OF_STEP: assert ROW_OF_STEP[name] in rows, name


def test_the_post_training_models_are_always_there(rows):
    assert {'fp32', 'dynamic int8', 'static int8'} <= set(rows)


def test_ratios_agree_with_the_raw_numbers(results, rows):
    fp32 = rows['fp32']
    for r in rows.values():
        assert math.isclose(r['drop_points'], 100 * (fp32['accuracy'] - r['accuracy']), abs_tol=1e-9)
        assert math.isclose(r['speedup_b64'], fp32['latency_ms_b64'] / r['latency_ms_b64'], rel_tol=1e-9)
        assert math.isclose(r['size_ratio'] * r['size_mib'], fp32['size_mib'], rel_tol=1e-9)
        assert r['speedup_b64_p10'] <= r['speedup_b64_p90'] and isinstance(r['noisy'], bool)
        for label in ('b1', 'b64'):
            spread = results['latency'][label][r['model']]
            assert spread['p10_ms'] <= spread['median_ms'] <= spread['p90_ms']
            assert spread['median_ms'] == r[f'latency_ms_{label}']


def test_accuracy_and_size_are_plausible(rows):
    assert all(0.5 < r['accuracy'] <= 1 for r in rows.values()), rows  # ten classes: chance is 0.1
    assert rows['fp32']['size_mib'] > 4 and 3 < rows['static int8']['size_ratio'] < 4.2  # weights 4 bytes -> 1 byte
    assert abs(rows['static int8']['drop_points']) < 3 and abs(rows['dynamic int8']['drop_points']) < 3


def test_the_best_observer_is_the_most_accurate(results):
    acc = results['observer_accuracy']
    assert set(acc) == set(OBSERVERS) and acc[results['best_observer']] == max(acc.values())


def test_training_history_comes_from_the_cached_model(results):
    history = results['histories']['fp32']
    assert [h['epoch'] for h in history] == list(range(1, results['settings']['epochs'] + 1))


def test_report_markdown_names_the_machine(results):
    md = report_markdown(results)
    assert 'VNNI' in md and results['date'] in md and results.table() in md


def test_same_run_may_be_written_again_and_force_overrides(results, tmp_path):
    out = fast_demo()['out']
    assert check_out_dir(out, results['settings']) == out
    other = {**results['settings'], 'seed': results['settings']['seed'] + 1}
    with pytest.raises(FileExistsError, match='different run'): check_out_dir(out, other)
    assert check_out_dir(out, other, force=True) == out
    assert check_out_dir(tmp_path / 'new' / 'folder', other) == tmp_path / 'new' / 'folder'


def test_the_report_files_are_one_set(results, tmp_path, monkeypatch):
    "A report that fails to render replaces none of the three files: no new results.json beside an old page."
    import quantnb.analysis
    written = write_report(results, tmp_path)
    assert sorted(written) == ['report.html', 'report.md', 'results.json']
    before = {name: path.read_bytes() for name, path in written.items()}
    changed = DemoResult({**results, 'test_images': results['test_images'] + 1})

    def page_fails(*args, **kwargs):
        raise RuntimeError('rendering failed')

    monkeypatch.setattr(quantnb.analysis, 'html_report', page_fails)
    with pytest.raises(RuntimeError, match='rendering failed'):
        write_report(changed, tmp_path)
    assert {name: path.read_bytes() for name, path in written.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['report.html', 'report.md', 'results.json']


def test_out_must_be_a_path():
    with pytest.raises(TypeError, match='out must be a folder path'): check_out_dir(3, {})


BAD_SETTINGS = {'epochs 0': (dict(epochs=0), 'epochs'), 'qat_epochs 1.5': (dict(qat_epochs=1.5), 'qat_epochs'),
                'threads 0': (dict(threads=0), 'threads'), 'dataset cifar': (dict(dataset='cifar'), 'cifar'),
                'seed str': (dict(seed='0'), 'seed')}


@pytest.mark.parametrize('kwargs,named', BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_bad_settings_name_the_argument(kwargs, named):
    with pytest.raises((ValueError, TypeError), match=named): demo_settings(**kwargs)


def test_jsonable_keeps_numbers_and_drops_non_finite():
    assert _jsonable({'a': torch.tensor([1.5, float('inf')]), 'b': (1, float('nan')), 3: True}) == {'a': [1.5, None], 'b': [1, None], '3': True}


def test_plots_return_axes_and_refuse_empty_input(results):
    assert plot_accuracy_vs_size(results['rows']).get_xlabel() == 'serialized size (MiB)'
    assert len(plot_latency(results['latency']).patches) == 2 * len(results['rows'])
    for plot in (plot_accuracy_vs_size, plot_latency):
        with pytest.raises(ValueError, match='is empty'): plot({} if plot is plot_latency else [])


def test_round_speedups_are_per_round_ratios():
    "Two rounds of two calls: fp32 takes 10 then 20 ms, int8 5 then 5: speed-ups 2 and 4 per round."
    spreads = _round_speedups({'fp32': [10, 10, 20, 20], 'int8': [5, 5, 5, 5]}, rounds=2)
    assert spreads['fp32'] == (1.0, 1.0)
    assert math.isclose(spreads['int8'][0], 2.2) and math.isclose(spreads['int8'][1], 3.8)  # p10, p90 of (2, 4)


def test_noisy_flags_wide_spreads_and_disagreeing_twins():
    def row(model, speedup, p10, p90):
        return dict(model=model, speedup_b64=speedup, speedup_b64_p10=p10, speedup_b64_p90=p90)
    steady = [row('fp32', 1, 1, 1), row('static int8', 4, 3.9, 4.1), row('QAT int8', 4.05, 3.95, 4.15)]
    _noisy(steady)
    assert [r['noisy'] for r in steady] == [False, False, False]
    wide = [row('fp32', 1, 1, 1), row('dynamic int8', 2, 2 - NOISY_SPREAD, 2 + NOISY_SPREAD)]
    _noisy(wide)
    assert [r['noisy'] for r in wide] == [False, True]
    apart = [row('fp32', 1, 1, 1), row('static int8', 7.9, 7.8, 8.0), row('QAT int8', 4.6, 4.5, 4.7)]
    _noisy(apart)
    assert [r['noisy'] for r in apart] == [False, True, True]
