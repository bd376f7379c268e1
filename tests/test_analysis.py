"quantnb.analysis: layer reports on every form of quantized model, the seed's analyzer and grade, HTML."
import copy
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.ao.quantization as tq

from quantnb.analysis import (QuantizationAnalyzer, html_report, layer_errors, markdown_to_html, sqnr_db, weight_form,
                              deployable_size_bytes, expected_sqnr_db, match_layers, SEED_GRADES)
from quantnb.fakequant import CustomQuantizer, calibrate, load_packed, packed_state_dict, quantize_layers
from quantnb.ptq import PTQProcessor

sys.path.insert(0, str(Path(__file__).parent))
from tiny_net import FourClasses, tiny_setup  # noqa: E402

warnings.filterwarnings('ignore', category=DeprecationWarning)
warnings.filterwarnings('ignore', message='.*quantize.*deprecated', category=UserWarning)
LAYERS = ['conv1', 'conv2', 'fc1', 'fc2']


@pytest.fixture(scope='module')
def setup():
    return tiny_setup()



def _dynamic(m, d): return PTQProcessor().dynamic_quantization(m)
def _static(m, d): return PTQProcessor().static_quantization(m, d, num_batches=2)
def _qat(m, d):
    "QAT with torch.ao directly: fuse, prepare_qat, a few SGD steps, convert."
    torch.manual_seed(0)
    qm = copy.deepcopy(m).train().fuse_model(qat=True)
    qm.qconfig = tq.get_default_qat_qconfig('x86')
    tq.prepare_qat(qm, inplace=True)
    opt = torch.optim.SGD(qm.parameters(), lr=1e-5)
    for x, y in d[:2]: loss = F.cross_entropy(qm(x), y); opt.zero_grad(); loss.backward(); opt.step()
    return tq.convert(qm.eval())
def _fake(m, d): return calibrate(quantize_layers(m, quantized=True), d[:2])
def _torchao(m, d): return PTQProcessor().torchao_quantization(m, 'int8-dynamic')
_PT2E = {}
def _pt2e(m, d):  # exported once per model: the export is the slow part
    if id(m) not in _PT2E: _PT2E[id(m)] = PTQProcessor().torchao_quantization(m, 'int8-static-pt2e', d, num_batches=2)
    return _PT2E[id(m)]
def _packed(m, d):
    q = CustomQuantizer('int4', 'per-channel', symmetric=True)
    return load_packed(m, packed_state_dict(q.quantize_model(m), q), q)

FORMS = [(_dynamic, 'eager dynamic', ['fc1', 'fc2'], 8, 30), (_static, 'eager static', LAYERS, 8, 30), (_qat, 'eager static', LAYERS, 8, 30),
         (_fake, 'fake-quant', LAYERS, 8, 30), (_torchao, 'torchao', ['fc1', 'fc2'], 8, 30), (_pt2e, 'PT2E graph', LAYERS, 8, 30),
         (_packed, 'float, quantized values', ['conv2', 'fc1', 'fc2'], 4, 15)]  # conv1's 9 weights per channel cannot show their 4 bits


@pytest.mark.parametrize('make,form,layers,bits,min_sqnr', FORMS, ids=['dynamic', 'static', 'qat', 'fake-quant', 'torchao', 'pt2e', 'quantnb-packed'])
def test_layer_report_on_every_form(setup, make, form, layers, bits, min_sqnr):
    model, data = setup
    rows = layer_errors(model, make(model, data), data, num_batches=1)
    assert list(rows) == LAYERS
    quantized = [n for n, r in rows.items() if r['form'].startswith(form)]
    assert quantized == layers, {n: r['form'] for n, r in rows.items()}
    for n in quantized:
        r = rows[n]
        assert r['weight_bits'] == bits and r['weight_sqnr_db'] > min_sqnr, (n, r)
        assert r['local_sqnr_db'] > 10 and r['accumulated_sqnr_db'] > 10, (n, r)
    if form in ('eager dynamic', 'torchao'):  # conv layers left float: no weight error
        assert all(rows[n]['form'].startswith('float') and rows[n]['weight_sqnr_db'] == float('inf') for n in ('conv1', 'conv2'))  # conv1: 9 weights per channel, bits unknown


def test_static_report_has_the_seed_keys_and_grades(setup):
    model, data = setup
    res = QuantizationAnalyzer(iters=3, layer_batches=1).analyze_quantization_quality(model, _static(model, data), data)
    assert {'performance', 'precision', 'layer_analysis', 'overall_quality'} <= set(res)
    p, q = res['performance'], res['precision']
    assert p['original_accuracy'] == 1.0 and 0 <= p['quantized_accuracy'] <= 1
    assert p['accuracy_drop_percent'] == pytest.approx(100 * (1 - p['quantized_accuracy']))
    assert p['size_ratio'] > 3
    assert q['num_samples_analyzed'] == len(data) and q['num_images'] == 3 * 32 and 0 <= q['top1_agreement'] <= 1
    assert q['sqnr_db'] > 15 and q['kl_divergence'] >= 0
    assert all(r['weight_sqnr_db'] > 30 and r['compression_ratio'] == 4 for r in res['layer_analysis'].values())
    assert res['overall_quality'] in ('优秀', '良好', '一般', '需要改进') and res['overall_quality'] in str(res)  # the seed's words
    assert res['overall_quality'] == SEED_GRADES[res['quality']['grade']] and res['quality']['grade'] in str(res)
    assert '<table>' in res._repr_html_() and '|' in res._repr_markdown_()


def test_integer_model_is_analysed(setup):
    from quantnb.integer import IntegerModel
    model, data = setup
    static = _static(model, data)
    integer = IntegerModel.from_quantized(static)
    rows, ref = layer_errors(model, integer, data, num_batches=1), layer_errors(model, static, data, num_batches=1)
    assert list(rows) == LAYERS and all(r['form'] == 'integer (quantnb)' and r['weight_bits'] == 8 for r in rows.values())
    for n in LAYERS:  # the same codes and the same kernels' results: the same errors as the eager model
        assert rows[n]['weight_sqnr_db'] == pytest.approx(ref[n]['weight_sqnr_db'], abs=1e-3)
        assert rows[n]['accumulated_sqnr_db'] == pytest.approx(ref[n]['accumulated_sqnr_db'], abs=0.5)
    assert deployable_size_bytes(integer) == pytest.approx(deployable_size_bytes(static), rel=0.1)
    res = QuantizationAnalyzer(iters=3, layer_batches=1).analyze_quantization_quality(model, integer, data)
    assert res['performance']['size_ratio'] > 3 and list(res['layer_analysis']) == LAYERS


def test_pt2e_is_read_after_the_fused_relu_and_sized_by_its_constants(setup):
    model, data = setup
    pt2e = _pt2e(model, data)
    layers = match_layers(model, pt2e)
    assert layers['conv1']['group'] == ['conv1', 'relu1'] and any('relu' in str(n.target) for n in layers['conv1']['chain'])
    assert deployable_size_bytes(pt2e) < deployable_size_bytes(model) / 3  # int8 constants, not the float weights the state_dict keeps


def test_sqnr_and_weight_form():
    x = torch.randn(1000)
    assert sqnr_db(x, x + 0.1 * x) == pytest.approx(20.0)
    assert weight_form(nn.Linear(300, 4))['weight_bits'] == 32 and weight_form(nn.ReLU()) is None
    with pytest.raises(TypeError, match='dequantize them first'): sqnr_db(x, x.round().to(torch.int8))


def _per_channel(w, bits):
    "`w` rounded per output channel to a symmetric grid of `bits`, as float values."
    qmax = 2 ** (bits - 1) - 1
    scale = w.abs().amax(1) / qmax
    return torch.fake_quantize_per_channel_affine(w, scale, torch.zeros(len(w), dtype=torch.int32), 0, -qmax - 1, qmax)

# (in_features, bits of the grid or None for float, expected weight_bits): a channel of n <= 2**bits weights cannot show
# its grid; float values lie on no grid at all, so any size shows them
BITS = [(128, 8, None), (128, None, 32), (128, 4, 4), (1000, 8, 8), (1000, None, 32), (9, 4, None), (64, 2, 2)]

@pytest.mark.parametrize('n,bits,expected', BITS, ids=[f'{n}-in-{b or "float"}' for n, b, _ in BITS])
def test_weight_bits_are_decided_per_channel_or_unknown(n, bits, expected):
    torch.manual_seed(0)
    layer = nn.Linear(n, 10)
    if bits: layer.weight.data = _per_channel(layer.weight.detach(), bits)
    assert weight_form(layer)['weight_bits'] == expected


@pytest.mark.parametrize('axis', [None, 0], ids=['per-tensor', 'per-channel'])
def test_expected_sqnr_matches_rounding(axis):
    torch.manual_seed(0)
    w = torch.randn(64, 512) * torch.linspace(0.1, 2, 64)[:, None]
    w_q = _per_channel(w, 8) if axis == 0 else torch.fake_quantize_per_tensor_affine(w, w.abs().max().item() / 127, 0, -128, 127)
    assert sqnr_db(w, w_q) == pytest.approx(expected_sqnr_db(w, 8, axis), abs=0.5)



def test_html_report_is_self_contained(tmp_path):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(); ax.plot([1, 2])
    path = html_report(tmp_path / 'r.html', 'T <1>', ['# H\n\n| a |\n|---|\n| 1 |', '<p>raw</p>', ax])
    plt.close(fig)
    page = path.read_text()
    assert page.count('data:image/png;base64,') == 1 and '<p>raw</p>' in page and '<title>T &lt;1&gt;</title>' in page
    assert 'src="http' not in page and 'href="http' not in page
    assert [p.name for p in tmp_path.iterdir()] == ['r.html']  # no temporary file left
    assert markdown_to_html('- **a**\n- `b`') == '<ul><li><strong>a</strong></li><li><code>b</code></li></ul>'
    assert markdown_to_html('- a\n  b\n- c') == '<ul><li>a b</li><li>c</li></ul>'  # continuation lines are kept


@pytest.mark.parametrize('call,error,message', [
    (lambda m, d: QuantizationAnalyzer().analyze_quantization_quality(m, 'model', d), TypeError, 'quantized_model must be a torch.nn.Module'),
    (lambda m, d: QuantizationAnalyzer(iters=2), ValueError, 'iters=2'),
    (lambda m, d: html_report('x.html', 'T', 'text'), TypeError, 'parts must be a list'),
    (lambda m, d: layer_errors(m, nn.Sequential(nn.ReLU()), d), ValueError, 'no weight layer'),
    (lambda m, d: QuantizationAnalyzer(iters=3).analyze_quantization_quality(m, m, [1, 2]), (TypeError, ValueError), 'test_data'),
], ids=['analyzer-model', 'iters', 'html-parts', 'unrelated-model', 'test-data-named'])
def test_bad_input_is_a_clear_error(setup, call, error, message):
    model, data = setup
    with pytest.raises(error, match=message.replace('[', r'\[').replace(']', r'\]').replace('(', r'\(')): call(model, data)


def test_seed_grade_label_adds_pinyin_and_refuses_other_words():
    "A report page without Chinese fonts still reads the seed's grade: pinyin first, then the seed's word."
    from quantnb.analysis import SEED_GRADES, seed_grade_label
    assert seed_grade_label('优秀') == 'yōuxiù, 优秀'
    assert all(seed_grade_label(word).endswith(word) for word in SEED_GRADES.values())
    with pytest.raises(ValueError, match="seed's grades"):
        seed_grade_label('excellent')


def test_sizes_and_expected_sqnr_refuse_impossible_input():
    "No signal, no bits, unknown layers and non-models are named errors, not ZeroDivisionError or KeyError."
    for call, error, match in [
        (lambda: expected_sqnr_db(torch.zeros(4), 8), ValueError, 'all zeros'),
        (lambda: expected_sqnr_db(torch.randn(4), 0), ValueError, 'bits=0'),
        (lambda: expected_sqnr_db(torch.tensor([float('nan'), 1.0]), 8), ValueError, 'NaN'),
        (lambda: deployable_size_bytes('x'), TypeError, 'torch.nn.Module'),
    ]:
        with pytest.raises(error, match=match):
            call()


def test_weight_form_does_not_call_an_all_zero_or_pruned_float_layer_quantized():
    "A constant channel shows no grid (all zero: unknown); pruned float values lie on none (float)."
    torch.manual_seed(0)
    zero, pruned = nn.Linear(64, 8), nn.Linear(1024, 8)
    with torch.no_grad():
        zero.weight.zero_()
        pruned.weight.mul_((torch.rand_like(pruned.weight) > 0.97).float())
    assert weight_form(zero)['weight_bits'] is None
    assert weight_form(pruned)['weight_bits'] == 32 and weight_form(pruned)['form'] == 'float'





def test_layer_errors_refuses_non_finite_images():
    torch.manual_seed(0)
    model = FourClasses().eval()
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(32, 8, generator=g), torch.randint(0, 4, (32,), generator=g)) for _ in range(2)]
    quantized = calibrate(quantize_layers(model), [x for x, _ in data])
    with pytest.raises(ValueError, match='NaN or Inf images'):
        layer_errors(model, quantized, [(x * float('nan'), y) for x, y in data])
