"quantnb.sensitivity: sensitivity sweeps, accuracy control, mixed precision, packed sizes, the Pareto front."
import copy
import sys
import warnings
from pathlib import Path

import pytest
import torch

from quantnb.analysis import layer_errors
from quantnb.fakequant import CustomQuantizer
from quantnb.sensitivity import (packed_size_bytes, pareto_front, quantize_with_accuracy_control, sensitivity,
                                 suggest_mixed_precision)

sys.path.insert(0, str(Path(__file__).parent))
from tiny_net import FourClasses, tiny_setup  # noqa: E402

warnings.filterwarnings('ignore', category=DeprecationWarning)
warnings.filterwarnings('ignore', message='.*quantize.*deprecated', category=UserWarning)
LAYERS = ['conv1', 'conv2', 'fc1', 'fc2']


@pytest.fixture(scope='module')
def setup():
    return tiny_setup()



def test_a_2_bit_layer_is_found(setup):
    model, data = setup
    mixed = copy.deepcopy(model)
    CustomQuantizer('int8', 'per-channel', symmetric=True).quantize_layer(mixed.conv1, 'conv1')
    CustomQuantizer('int2', 'per-channel', symmetric=True).quantize_layer(mixed.fc1, 'fc1')
    rows = layer_errors(model, mixed, data, num_batches=1)
    assert min(rows, key=lambda n: rows[n]['weight_sqnr_db']) == 'fc1' and rows['fc1']['weight_bits'] == 2
    assert min(rows, key=lambda n: rows[n]['local_sqnr_db']) == 'fc1'
    sens = sensitivity(model, data, layer_dtypes={'fc1': 'int2'}, num_batches=2)
    assert sens['ranking'][0] == 'fc1' and sens['float_accuracy'] == 1.0
    res = sens['resolution_points']  # one image, in points; closer layers are ordered by output KL
    assert res == pytest.approx(100 / (3 * 32))
    keys = [(-round(sens['layers'][n]['sensitivity_points'] / res), -sens['layers'][n]['sensitivity_kl']) for n in sens['ranking']]
    assert keys == sorted(keys) and sens['layers']['fc1']['sensitivity_kl'] > max(sens['layers'][n]['sensitivity_kl'] for n in LAYERS[:2])


def test_accuracy_control_reverts_until_the_budget_holds(setup):
    model, data = setup
    qm, rep = quantize_with_accuracy_control(model, data[:2], data, max_drop=0.0, weight_dtype='int2', act_dtype='uint4', num_batches=2)
    assert rep['initial_accuracy'] < 1.0 and rep['changed']  # 2-bit weights cost something, so something was reverted
    assert rep['met'] == (rep['drop_points'] <= 0.0)
    assert rep['met'] or set(rep['changed']) == set(LAYERS)
    assert [s['step'] for s in rep['steps'][1:]] == [f'{n} -> float' for n in rep['changed']]
    assert list(rep['changed']) == rep['ranking'][:len(rep['changed'])]
    with torch.no_grad(): acc = sum((qm(x).argmax(1) == y).sum().item() for x, y in data) / (3 * 32)
    assert acc == pytest.approx(rep['final_accuracy'])  # the returned model is the one measured


def test_accuracy_control_reads_generators_once(setup):
    model, data = setup
    _, rep = quantize_with_accuracy_control(model, iter(data[:2]), iter(data[:1]), max_drop=50.0, weight_dtype='int4', act_dtype='uint8', num_batches=2)
    assert rep['initial_accuracy'] > 0 and rep['steps']


def test_mixed_precision_meets_its_budget(setup):
    model, data = setup
    rep = suggest_mixed_precision(model, data, bits=(2, 4, 8), max_drop=2.0)
    assert rep['drop_points'] <= 2.0 and set(rep['bits']) == set(LAYERS) and set(rep['bits'].values()) <= {2, 4, 8}
    assert rep['size_bytes'] < rep['float_size_bytes'] / 3.5  # at least int8 everywhere
    assert any(b < 8 for b in rep['bits'].values())


@pytest.mark.parametrize('call,error,message', [
    (lambda m, d: quantize_with_accuracy_control(m, d, d, max_drop=-1), ValueError, 'max_drop=-1'),
    (lambda m, d: suggest_mixed_precision(m, d, bits=(3,)), ValueError, 'bits must be'),
    (lambda m, d: sensitivity(m, d, layer_dtypes={'nope': 'int4'}), ValueError, "names ['nope']"),
    (lambda m, d: sensitivity('model', d), TypeError, 'model must be a torch.nn.Module'),
    (lambda m, d: packed_size_bytes(torch.nn.Sequential(torch.nn.Linear(2, 2)), {'nope': 4}), ValueError, "'nope'"),
], ids=['max-drop', 'bits', 'layer-dtypes', 'not-a-model', 'packed-unknown-layer'])
def test_bad_input_is_a_clear_error(setup, call, error, message):
    model, data = setup
    with pytest.raises(error, match=message.replace('[', r'\[').replace(']', r'\]').replace('(', r'\(')): call(model, data)


def test_pareto_front():
    rows = [dict(name='a', size_mb=1, accuracy=0.9), dict(name='b', size_mb=2, accuracy=0.8), dict(name='c', size_mb=0.5, accuracy=0.5), dict(name='d', size_mb=1, accuracy=0.9)]
    assert pareto_front(rows) == ['a', 'c', 'd']




def test_sweeps_refuse_impossible_labels_and_dtypes_before_sweeping():
    torch.manual_seed(0)
    model = FourClasses().eval()
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(32, 8, generator=g), torch.randint(0, 4, (32,), generator=g)) for _ in range(2)]
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 3\]'):
        sensitivity(model, [(x, y + 10) for x, y in data])
    with pytest.raises(ValueError, match="weight_dtype='int16'"):
        quantize_with_accuracy_control(model, data, data, weight_dtype='int16')
    with pytest.raises(ValueError, match="fallback='int16'"):
        quantize_with_accuracy_control(model, data, data, fallback='int16')
    with pytest.raises(ValueError, match=r"layer_dtypes\['fc1'\]"):
        sensitivity(model, data, layer_dtypes={'fc1': 'int16'})
