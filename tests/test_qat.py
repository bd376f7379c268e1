"`quantnb.qat`: the rebuilt optimizer, freeze schedules, convert vs fake-quant agreement, the PT2E path, low-bit LSQ, the cache, bad input."
import copy
import math
import warnings

import pytest
import torch
import torch.ao.quantization as tq
import torch.nn as nn

from quantnb.fakequant import state_size_bytes
from quantnb.models import SampleNet, SampleNetBN
from quantnb.qat import (ActFakeQuant, QATLayer, QATProcessor, WeightFakeQuant, _observers_paused, _param_map, absmean_scale, bn_frozen, fake_quant, lowbit_qat,
                         lowbit_range, lsq_init_scale, mse_scale, observers_enabled, packed_lowbit_state, plot_qat_history, prepare_lowbit, qat_qconfig)
from quantnb.qat import int8_missing_ops, rebuild_optimizer

warnings.filterwarnings('ignore', category=UserWarning)
warnings.filterwarnings('ignore', category=DeprecationWarning)


def batches(n=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 1, 28, 28, generator=g), torch.randint(0, 10, (size,), generator=g)) for _ in range(n)]


def net(cls=SampleNet):
    torch.manual_seed(0)
    return cls().eval()


class Tiny(nn.Module):
    "A small conv net: the same code paths as SampleNet at a fraction of the cost."
    def __init__(self):
        super().__init__()
        self.conv1, self.relu, self.fc = nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Linear(4 * 13 * 13, 10)
    def forward(self, x): return self.fc(self.relu(self.conv1(x)).flatten(1))


class Reversed(nn.Module):
    "Declares its Linear before the convolution that runs first."
    def __init__(self):
        super().__init__()
        self.fc, self.conv = nn.Linear(4 * 26 * 26, 10), nn.Conv2d(1, 4, 3)
    def forward(self, x): return self.fc(self.conv(x).relu().flatten(1))


def tiny():
    torch.manual_seed(0)
    return Tiny().eval()


def hyper(group): return {k: v for k, v in group.items() if k != 'params'}


OPTIMIZERS = {
    'adam': lambda ps: torch.optim.Adam(ps, lr=3e-4, betas=(0.8, 0.95), amsgrad=True),
    'adamw-decay': lambda ps: torch.optim.AdamW(ps, lr=2e-4, weight_decay=0.05),
    'sgd-nesterov': lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4),
    'sgd-groups': lambda ps: torch.optim.SGD([dict(params=ps[:4], lr=0.1), dict(params=ps[4:], lr=0.01, momentum=0.5)], lr=0.05, momentum=0.9),
    'adamw-groups': lambda ps: torch.optim.AdamW([dict(params=ps[:2], weight_decay=0.0), dict(params=ps[2:], lr=1e-3)], lr=1e-4, weight_decay=0.1),
}


@pytest.mark.parametrize('name', list(OPTIMIZERS))
def test_optimizer_keeps_class_and_every_hyper_parameter(name):
    model = net()
    opt = OPTIMIZERS[name](list(model.parameters()))
    x, y = batches(1)[0]
    nn.functional.cross_entropy(model.train()(x), y).backward(); opt.step()  # give it state (momentum, moments)
    prepared, new = QATProcessor().prepare_qat_model(model, opt)
    assert type(new) is type(opt) and new.defaults == opt.defaults
    assert [hyper(g) for g in new.param_groups] == [hyper(g) for g in opt.param_groups]
    own = {id(p) for p in prepared.parameters()}
    assert all(id(p) in own for g in new.param_groups for p in g['params'])
    assert [len(g['params']) for g in new.param_groups] == [len(g['params']) for g in opt.param_groups]
    old_p, new_p = opt.param_groups[0]['params'][0], new.param_groups[0]['params'][0]
    assert torch.equal(old_p, new_p) and old_p is not new_p
    for k, v in opt.state[old_p].items():
        assert torch.equal(torch.as_tensor(v), torch.as_tensor(new.state[new_p][k])), k
    if name.startswith('adamw'): assert all(g['decoupled_weight_decay'] for g in new.param_groups)


def test_freeze_schedules_stop_observers_and_bn_statistics():
    "Two epochs frozen after one = one epoch unfrozen, for ranges and BN statistics; and the flags say so."
    data, valid, qat = batches(3), batches(1, seed=1), QATProcessor()
    def run(epochs, after):
        torch.manual_seed(0)
        model = net(SampleNetBN)
        m, o = qat.prepare_qat_model(model, torch.optim.SGD(model.parameters(), lr=0.01))
        m, h = qat.train_with_qat(m, o, data, valid, epochs=epochs, freeze_observers_after=after, freeze_bn_after=after)
        return m, h
    frozen, h = run(2, 1)
    once, _ = run(1, None)
    assert h['observers_frozen'] == [False, True] and h['bn_frozen'] == [False, True]
    assert not any(observers_enabled(frozen)) and all(bn_frozen(frozen)) and any(observers_enabled(once))
    stats = lambda m: {k: v for k, v in m.state_dict().items() if k.endswith(('min_val', 'max_val', 'running_mean', 'running_var', 'scale'))}
    a, b = stats(frozen), stats(once)
    assert a.keys() == b.keys() and len(a) > 8
    for k in a: torch.testing.assert_close(a[k], b[k], msg=k)
    changed = {k for k, v in frozen.state_dict().items() if k.endswith('weight') and not torch.equal(v, once.state_dict()[k])}
    assert changed, 'the weights kept training after the freeze'


def test_fraction_schedule_and_validation_does_not_move_ranges():
    data, qat = batches(4), QATProcessor()
    model = net()
    m, o = qat.prepare_qat_model(model, torch.optim.SGD(model.parameters(), lr=0.01))
    m, h = qat.train_with_qat(m, o, data, batches(1, seed=1), epochs=1, freeze_observers_after=0.5)
    assert h['observers_frozen'] == [True]
    m2, o2 = qat.prepare_qat_model(model, torch.optim.SGD(model.parameters(), lr=0.01))
    m2, _ = qat.train_with_qat(m2, o2, data, batches(2, seed=7), epochs=1)
    before = copy.deepcopy(m2.state_dict())
    m2, _ = qat.train_with_qat(m2, torch.optim.SGD(m2.parameters(), lr=0.0), data[:1], batches(2, seed=9), epochs=1, freeze_observers_after=0)
    assert all(torch.equal(v, m2.state_dict()[k]) for k, v in before.items() if k.endswith(('min_val', 'max_val')))


def test_train_with_qat_refuses_the_float_models_optimizer():
    "An optimizer over the float model would step weights the prepared model does not use: refused, not a no-op."
    qat, model = QATProcessor(), net()
    float_optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    prepared, _ = qat.prepare_qat_model(model, float_optimizer)
    with pytest.raises(ValueError, match='prepare_qat_model returned'):
        qat.train_with_qat(prepared, float_optimizer, batches(1), batches(1), epochs=1)


def test_convert_refuses_a_model_that_saw_no_batch():
    "Unobserved ranges would convert to scale 1.0, zero point 0: a silent nonsense model. Refused by name."
    qat, model = QATProcessor(), net()
    prepared, _ = qat.prepare_qat_model(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match='have seen no data'):
        qat.convert_to_quantized(prepared)


def test_convert_agrees_with_fake_quant_on_real_images():
    from quantnb.data import calibration_batches
    from quantnb.models import pretrained
    real = calibration_batches(num_batches=6, batch_size=128, seed=3)
    fp32, qat = pretrained(), QATProcessor()
    m, o = qat.prepare_qat_model(fp32, torch.optim.AdamW(fp32.parameters(), lr=1e-4))
    m, _ = qat.train_with_qat(m, o, real[:3], real[3:4], epochs=1, freeze_observers_after=0.5)
    int8 = qat.convert_to_quantized(m)
    assert any(isinstance(x, torch.ao.nn.quantized.Conv2d) for x in int8.modules())
    images = torch.cat([x for x, _ in real[3:]])
    m.apply(tq.disable_observer)
    with torch.no_grad(): agree = (int8(images).argmax(1) == m.eval()(images).argmax(1)).float().mean().item()
    assert agree >= 0.99, agree
    assert any(isinstance(x, tq.FakeQuantizeBase) for x in m.modules()), 'convert must leave the trained model as it was'


BAD = {
    'unsupported dtype': (lambda m: QATProcessor().prepare_qat_model(m, torch.optim.SGD(m.parameters(), lr=0.1), dtype=torch.quint8), ValueError, 'dtype='),
    'no trainable parameters': (lambda m: QATProcessor().prepare_qat_model(m.requires_grad_(False), torch.optim.SGD(m.parameters(), lr=0.1)), ValueError, 'no trainable parameters'),
    'optimizer over other parameters': (lambda m: QATProcessor().prepare_qat_model(m, torch.optim.SGD(nn.Linear(4, 2).parameters(), lr=0.1)), ValueError, 'model.parameters()'),
    'not an optimizer': (lambda m: QATProcessor().prepare_qat_model(m, 'adam'), TypeError, 'optimizer must be'),
    'not a model': (lambda m: QATProcessor().prepare_qat_model('net', torch.optim.SGD(m.parameters(), lr=0.1)), TypeError, 'model must be'),
    'unprepared model': (lambda m: QATProcessor().train_with_qat(m, torch.optim.SGD(m.parameters(), lr=0.1), batches(1), batches(1)), ValueError, 'prepare_qat_model'),
    'convert unprepared': (lambda m: QATProcessor().convert_to_quantized(m), ValueError, 'fake-quantize'),
    'bad backend': (lambda m: QATProcessor('tpu'), ValueError, 'backend='),
    'weight bits 1': (lambda m: prepare_lowbit(m, 1), ValueError, 'bits=1'),
    'act bits 9': (lambda m: prepare_lowbit(m, 4, 9, calibration=[batches(1)[0][0]]), ValueError, 'act_bits=9'),
    'unknown method': (lambda m: prepare_lowbit(m, 4, method='pact'), ValueError, 'method='),
    'act bits without calibration': (lambda m: prepare_lowbit(m, 4, 4), ValueError, 'calibration'),
    'input bits without calibration': (lambda m: prepare_lowbit(m, 4, input_bits=8), ValueError, 'calibration'),
    'input bits 9': (lambda m: prepare_lowbit(m, 4, 4, calibration=[batches(1)[0][0]], input_bits=9), ValueError, 'input_bits=9'),
    'unknown weight_init': (lambda m: prepare_lowbit(m, 4, weight_init='minmax'), ValueError, 'weight_init='),
    'weight_init in lowbit_qat': (lambda m: lowbit_qat(m, batches(1), batches(1), 2, weight_init=None, cache=False), ValueError, 'weight_init='),
    'lsq_init_scale qmax 0': (lambda m: lsq_init_scale(m.fc1.weight, 0), ValueError, 'qmax=0'),
    'lsq_init_scale int weight': (lambda m: lsq_init_scale(torch.ones(4, 3, dtype=torch.int64), 1), ValueError, 'float weight'),
    'lsq_init_scale 1-D weight': (lambda m: lsq_init_scale(torch.randn(5), 1), ValueError, 'one step per output channel'),
    'input bits on a layer that runs second': (lambda m: prepare_lowbit(Reversed(), 4, 4, calibration=[batches(1)[0][0]], input_bits=8), ValueError, 'not the first one called'),
    'input bits string': (lambda m: lowbit_qat(m, batches(1), batches(1), 2, 4, input_bits='8', cache=False), ValueError, "input_bits='8'"),
    'one-shot loader': (lambda m: lowbit_qat(m, iter(batches(1)), batches(1), 4, cache=False), TypeError, 'one-shot'),
    'weight quantizer method LSQ': (lambda m: WeightFakeQuant(m.fc1.weight, 4, 'LSQ'), ValueError, 'method='),
    'weight quantizer method None': (lambda m: WeightFakeQuant(m.fc1.weight, 4, None), ValueError, 'method='),
    'act quantizer method LSQ': (lambda m: ActFakeQuant(4, 'LSQ'), ValueError, 'method='),
    'uncalibrated act quantizer': (lambda m: QATLayer(m.fc2, 4, 4)(torch.randn(2, m.fc2.in_features)), RuntimeError, 'calibrate'),
    'fake_quant scale 0': (lambda m: fake_quant(torch.randn(4), 0, -2, 1), ValueError, 'scale must be positive'),
    'fake_quant NaN scale': (lambda m: fake_quant(torch.randn(4), torch.tensor(float('nan')), -2, 1), ValueError, 'scale must be positive'),
    'fake_quant qmin > qmax': (lambda m: fake_quant(torch.randn(4), 0.1, 1, -2), ValueError, 'qmin=1'),
    'NaN weights': (lambda m: WeightFakeQuant(torch.full((4, 3), float('nan')), 4), ValueError, 'NaN'),
    'NaN weights ternary': (lambda m: WeightFakeQuant(torch.full((4, 3), float('nan')), 'ternary'), ValueError, 'NaN'),
    'mse_scale empty': (lambda m: mse_scale(torch.empty(0, 5), -2, 1), ValueError, 'empty'),
    'mse_scale 0-d per channel': (lambda m: mse_scale(torch.tensor(1.0), -2, 1), ValueError, 'one step per output channel'),
    'mse_scale int values': (lambda m: mse_scale(torch.ones(5, dtype=torch.int64), -2, 1, per_channel=False), ValueError, 'float values'),
    'mse_scale grid 0': (lambda m: mse_scale(torch.ones(4, 5), -2, 1, grid=0), ValueError, 'grid=0'),
    'absmean_scale 0-d': (lambda m: absmean_scale(torch.tensor(1.0)), ValueError, 'one step per output channel'),
    'absmean_scale int weight': (lambda m: absmean_scale(torch.ones(4, 3, dtype=torch.int64)), ValueError, 'float weight'),
    'packed state without QAT layers': (lambda m: packed_lowbit_state(m), ValueError, 'no QATLayer'),
    'qconfig per_channel string': (lambda m: qat_qconfig(per_channel='no'), TypeError, 'per_channel='),
    'qconfig reduce_range int': (lambda m: qat_qconfig(reduce_range=1), TypeError, 'reduce_range='),
    'fake_quant string scale': (lambda m: fake_quant(torch.rand(3), '0.1', -8, 7), TypeError, 'scale must be a float'),
    'fake_quant complex scale': (lambda m: fake_quant(torch.rand(3), torch.tensor(0.1j), -8, 7), TypeError,
                                 'scale must hold real steps'),
    'fake_quant huge int scale': (lambda m: fake_quant(torch.rand(3), 10**400, -8, 7), ValueError,
                                  'scale must be positive'),
    'fake_quant float qmin': (lambda m: fake_quant(torch.rand(3), 0.1, -8.0, 7), TypeError, 'qmin=-8.0 must be an int'),
    'fake_quant list x': (lambda m: fake_quant([0.1, 0.2], 0.1, -8, 7), TypeError, 'x must be a tensor'),
    'mse_scale qmax 0': (lambda m: mse_scale(torch.rand(4, 3), -8, 0), ValueError, 'qmax=0'),
    'mse_scale qmin above qmax': (lambda m: mse_scale(torch.rand(4, 3), 8, 7), ValueError, 'qmin=8 must be below'),
    'mse_scale string qmin': (lambda m: mse_scale(torch.rand(4, 3), '-8', 7), TypeError, "qmin='-8' must be an int"),
    'rebuild_optimizer not an optimizer': (lambda m: rebuild_optimizer(m, None), TypeError, 'optimizer must be'),
    'rebuild_optimizer mapping None': (lambda m: rebuild_optimizer(torch.optim.SGD(m.parameters(), lr=0.1), None),
                                       TypeError, 'mapping must be a dict'),
    'rebuild_optimizer mapping short': (lambda m: rebuild_optimizer(torch.optim.SGD(m.parameters(), lr=0.1), {}),
                                        ValueError, 'mapping lacks'),
    'rebuild_optimizer mapping to str': (lambda m: rebuild_optimizer(torch.optim.SGD(m.parameters(), lr=0.1),
                                                                     {p: 'p' for p in m.parameters()}),
                                         TypeError, 'new parameter'),
    'int8_missing_ops not a model': (lambda m: int8_missing_ops('x'), TypeError, 'model must be'),
    'history without train_acc': (lambda m: plot_qat_history({'val_acc': []}), TypeError, 'train_acc'),
    'history without epochs': (lambda m: plot_qat_history({'val_acc': [], 'train_acc': []}), ValueError, 'no epochs'),
}


@pytest.mark.parametrize('case', list(BAD))
def test_bad_input(case):
    call, error, message = BAD[case]
    with pytest.raises(error, match=message): call(net())


@pytest.mark.parametrize('bad', [-1, 1.5, 'half', 3, 2, 1.0, 0.0], ids=['negative', 'fraction>1', 'string', 'epochs>total', 'epochs=total (never freezes)', 'fraction 1.0 (never freezes)', 'fraction 0.0'])
def test_bad_freeze_schedule(bad):
    model, qat = net(), QATProcessor()
    m, o = qat.prepare_qat_model(model, torch.optim.SGD(model.parameters(), lr=0.01))
    with pytest.raises((ValueError, TypeError), match='freeze_bn_after'): qat.train_with_qat(m, o, batches(1), batches(1), epochs=2, freeze_bn_after=bad)


def test_lsq_gradients_and_the_per_channel_grad_scale():
    torch.manual_seed(0)
    w = torch.randn(4, 50)
    fq = WeightFakeQuant(w, 3, 'lsq')
    wq = w.clone().requires_grad_(True)
    fq(wq).sum().backward()
    qmin, qmax = lowbit_range(3)
    s = fq.scale.detach()[:, None]
    v = w / s
    raw = torch.where(v < qmin, torch.tensor(float(qmin)), torch.where(v > qmax, torch.tensor(float(qmax)), v.round() - v)).sum(1)
    torch.testing.assert_close(fq.scale.grad, raw / math.sqrt(50 * qmax))  # g = 1/sqrt(N Qp), N = weights per channel
    torch.testing.assert_close(wq.grad, ((v >= qmin) & (v <= qmax)).float())


@pytest.mark.parametrize('bits', [2, 3, 4, 8])
def test_mse_init_beats_min_max(bits):
    torch.manual_seed(bits)
    w = torch.randn(8, 200) * torch.rand(8, 1)
    qmin, qmax = lowbit_range(bits)
    err = lambda s: ((fake_quant(w, s[:, None], qmin, qmax) - w) ** 2).mean()
    assert err(mse_scale(w, qmin, qmax)) <= err(w.abs().amax(1) / qmax) + 1e-12


@pytest.mark.parametrize('bits,act_bits,method', [(2, 4, 'lsq'), ('ternary', 8, 'ste'), (4, None, 'lsq')], ids=['W2A4-lsq', 'ternary-A8-ste', 'W4-float-act-lsq'])
def test_lowbit_qat_trains_caches_and_packs(tmp_path, monkeypatch, bits, act_bits, method):
    monkeypatch.setenv('QUANTNB_CACHE', str(tmp_path))
    fp32, data, valid = tiny(), batches(3), batches(1, seed=1)
    model, history = lowbit_qat(fp32, data, valid, bits, act_bits, method, epochs=1)
    assert set(history) >= {'train_loss', 'train_acc', 'val_loss', 'val_acc'} and len(history['val_acc']) == 1
    again, history2 = lowbit_qat(fp32, data, valid, bits, act_bits, method, epochs=1)  # from the cache
    assert history2 == history and all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    with torch.no_grad(): torch.testing.assert_close(again(valid[0][0]), model(valid[0][0]))
    assert len(list((tmp_path / 'qat').glob('*.pt'))) == 1
    other, _ = lowbit_qat(fp32, data, valid, bits, act_bits, method, epochs=1, lr=1e-3)  # another config: another file
    assert len(list((tmp_path / 'qat').glob('*.pt'))) == 2
    state = packed_lowbit_state(model)
    codes = model.fc.weight_fq.codes(model.fc.layer.weight)
    if bits == 'ternary': assert set(codes.unique().tolist()) <= {-1, 0, 1}
    width = 2 if bits in (2, 'ternary') else 4
    assert state['fc.weight'].dtype == torch.uint8 and state['fc.weight'].numel() == fp32.fc.weight.numel() * width // 8
    payload = lambda st: sum(t.numel() * t.element_size() for t in st.values())  # bytes of the tensors (torch.save adds a fixed cost per entry)
    assert payload(state) < payload(fp32.state_dict()) / 5 and state_size_bytes(state) < state_size_bytes(fp32.state_dict()) / 2


def test_input_bits_sets_only_the_first_layer_and_keeps_old_cache_keys(tmp_path, monkeypatch):
    monkeypatch.setenv('QUANTNB_CACHE', str(tmp_path))
    fp32, data, valid = tiny(), batches(2), batches(1, seed=1)
    m = prepare_lowbit(fp32, 2, 4, calibration=[x for x, _ in data], input_bits=8)
    layers = [l for l in m.modules() if isinstance(l, QATLayer)]
    assert [(l.act_fq.bits, l.act_fq.qmax) for l in layers] == [(8, 127)] + [(4, 15)] * (len(layers) - 1)  # images signed, later inputs after a ReLU
    images_only = prepare_lowbit(fp32, 2, None, calibration=[x for x, _ in data], input_bits=8)
    assert [l.act_fq is not None for l in images_only.modules() if isinstance(l, QATLayer)] == [True] + [False] * (len(layers) - 1)
    lowbit_qat(fp32, data, valid, 2, 4, epochs=0)
    key_without = {p.name for p in (tmp_path / 'qat').glob('*.pt')}
    model, _ = lowbit_qat(fp32, data, valid, 2, 4, epochs=0, input_bits=8)
    assert len({p.name for p in (tmp_path / 'qat').glob('*.pt')} - key_without) == 1  # its own file
    assert all(torch.load(tmp_path / 'qat' / k, weights_only=True)['config'].keys().isdisjoint({'input_bits'}) for k in key_without)
    again, _ = lowbit_qat(fp32, data, valid, 2, 4, epochs=0, input_bits=8)  # from the cache: the first input stays 8-bit
    first = next(l for l in again.modules() if isinstance(l, QATLayer))
    assert (first.act_fq.bits, first.act_fq.qmin, first.act_fq.qmax) == (8, -128, 127)
    with torch.no_grad(): torch.testing.assert_close(again(valid[0][0]), model(valid[0][0]))


def test_weight_init_lsq_starts_at_esser_et_al_step(tmp_path, monkeypatch):
    monkeypatch.setenv('QUANTNB_CACHE', str(tmp_path))
    fp32, data, valid = tiny(), batches(2), batches(1, seed=1)
    w = fp32.fc.weight.detach()
    torch.testing.assert_close(lsq_init_scale(w, 1), 2 * w.abs().mean(1))  # 2 mean|w| / sqrt(Qp), Qp = 1 at 2 bits
    m = prepare_lowbit(fp32, 3, weight_init='lsq')
    torch.testing.assert_close(m.fc.weight_fq.scale.detach(), 2 * w.abs().mean(1) / math.sqrt(3))
    assert not torch.allclose(prepare_lowbit(fp32, 3).fc.weight_fq.scale, m.fc.weight_fq.scale)  # the default is the MSE step
    torch.testing.assert_close(prepare_lowbit(fp32, 'ternary', weight_init='lsq').fc.weight_fq.scale, absmean_scale(w))  # ternary: always absmean
    lowbit_qat(fp32, data, valid, 2, epochs=0)
    lowbit_qat(fp32, data, valid, 2, epochs=0, weight_init='lsq')
    configs = [torch.load(p, weights_only=True)['config'] for p in (tmp_path / 'qat').glob('*.pt')]
    assert sorted(c.get('weight_init', 'default') for c in configs) == ['default', 'lsq']  # the default keeps its old key


def test_qconfig_is_pytorchs_x86_default():
    spec = lambda fq: (fq.dtype, fq.quant_min, fq.quant_max, fq.qscheme, type(fq.activation_post_process), fq.activation_post_process.averaging_constant)
    ours, ref = qat_qconfig(), tq.get_default_qat_qconfig('x86')
    assert (spec(ours.activation()), spec(ours.weight())) == (spec(ref.activation()), spec(ref.weight()))
    assert spec(qat_qconfig(reduce_range=False).activation())[2] == 255 and spec(qat_qconfig(per_channel=False).weight())[3] == torch.per_tensor_symmetric


def test_pt2e_validation_leaves_ranges_unchanged():
    "Validation on images 50x larger must not change the converted model: torchao's observers are paused (they are no FakeQuantizeBase)."
    fp32, data = tiny(), batches(2)
    normal, huge = batches(1, seed=1), [(x * 50, y) for x, y in batches(1, seed=1)]
    def run(valid):
        torch.manual_seed(0)
        return QATProcessor().torchao_qat(fp32, data, valid, epochs=2, max_batches=1)
    (model, history), (other, _) = [run(valid) for valid in (normal, huge)]
    with torch.no_grad(): a, b = model(data[0][0]), other(data[0][0])
    assert a.shape == (16, 10) and torch.isfinite(a).all() and len(history['val_acc']) == 2
    assert any('quantize' in str(n.target) for n in model.graph.nodes)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_observers_paused_finds_torchao_fake_quantizers():
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
    x = batches(1)[0][0]
    exported = torch.export.export(tiny().train(), (x,)).module()
    prepared = prepare_qat_pt2e(exported, xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config(is_qat=True)))
    prepared(x)
    fqs = [m for m in prepared.modules() if hasattr(m, 'observer_enabled')]
    assert len(fqs) >= 3 and not any(isinstance(m, tq.FakeQuantizeBase) for m in fqs)  # why isinstance was not enough
    state = lambda: [(m.scale.clone(), m.zero_point.clone()) for m in fqs]
    before = state()
    with torch.no_grad(), _observers_paused(prepared): prepared(x * 50)
    assert all(torch.equal(s0, s1) and torch.equal(z0, z1) for (s0, z0), (s1, z1) in zip(before, state()))
    assert all(observers_enabled(prepared))  # restored afterwards
    with torch.no_grad(): prepared(x * 50)
    assert not all(torch.equal(s0, s1) for (s0, _), (s1, _) in zip(before, state())), 'the control: unpaused, the ranges move'


class TwoBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.conv2, self.bn2 = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)
    def forward(self, x): return self.bn2(self.conv2(self.bn1(self.conv1(x))))


def test_param_map_by_position_keeps_each_group():
    "Two BatchNorm2d(4) weights are equal (ones): an optimizer over the original model must map each to its own copy, in its own group."
    torch.manual_seed(0)
    model = TwoBN()
    copied = copy.deepcopy(model)
    groups = [dict(params=[model.bn1.weight], lr=1.0), dict(params=[p for n, p in model.named_parameters() if n != 'bn1.weight'], lr=1e-3)]
    in_order = torch.optim.SGD(list(model.parameters()), lr=0.1)
    with pytest.warns(UserWarning, match='position'): mapping = _param_map(copied, in_order)
    assert [mapping[p] for p in model.parameters()] == list(copied.parameters())
    assert all(mapping[p] is q for p, q in zip(model.parameters(), copied.parameters()))
    with pytest.raises(ValueError, match='ambiguous'): _param_map(copied, torch.optim.SGD(groups, lr=0.1))  # out of order, two equal candidates
    distinct = TwoBN(); nn.init.constant_(distinct.bn2.weight, 2.0); nn.init.constant_(distinct.bn2.bias, 0.5)
    d_copy = copy.deepcopy(distinct)
    groups = [dict(params=[distinct.bn2.weight], lr=1.0), dict(params=[p for n, p in distinct.named_parameters() if n != 'bn2.weight'], lr=1e-3)]
    with pytest.warns(UserWarning): mapping = _param_map(d_copy, torch.optim.SGD(groups, lr=0.1))
    assert mapping[distinct.bn2.weight] is d_copy.bn2.weight and mapping[distinct.bn1.weight] is d_copy.bn1.weight


def test_lowbit_order_depends_on_seed_not_on_the_callers_iterations(tmp_path, monkeypatch):
    monkeypatch.setenv('QUANTNB_CACHE', str(tmp_path))
    from torch.utils.data import DataLoader, TensorDataset
    xs, ys = torch.cat([x for x, _ in batches(4)]), torch.cat([y for _, y in batches(4)])
    def loader(): return DataLoader(TensorDataset(xs, ys), 16, shuffle=True, generator=torch.Generator().manual_seed(0))
    fp32, valid = tiny(), batches(1, seed=1)
    fresh, used = loader(), loader()
    for _ in used: pass  # the caller iterated its loader once: its generator moved on
    a, _ = lowbit_qat(fp32, fresh, valid, 4, 4, epochs=1, max_batches=2, calib_batches=1, cache=False)
    b, _ = lowbit_qat(fp32, used, valid, 4, 4, epochs=1, max_batches=2, calib_batches=1, cache=False)
    c, _ = lowbit_qat(fp32, loader(), valid, 4, 4, epochs=1, max_batches=2, calib_batches=1, seed=1, cache=False)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not all(torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items()), 'another seed, another order'
    other = DataLoader(TensorDataset(xs.flip(0), ys), 16, shuffle=True)  # same size, batch size and type: other images
    lowbit_qat(fp32, loader(), valid, 4, None, epochs=0)
    lowbit_qat(fp32, other, valid, 4, None, epochs=0)
    assert len(list((tmp_path / 'qat').glob('*.pt'))) == 2, 'the data set identity is part of the cache key'


class _Residual(nn.Module):
    "A residual block with `+` in forward (or, with `module=True`, a FloatFunctional add)."

    def __init__(self, module=False):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)
        self.skip = torch.ao.nn.quantized.FloatFunctional() if module else None

    def forward(self, x):
        y = torch.relu(self.conv1(x))
        y = self.skip.add(y, self.conv2(y)) if self.skip is not None else y + self.conv2(y)
        return self.fc(y.flatten(1))


def test_prepare_refuses_a_residual_add_and_an_lstm_before_any_training():
    "Both used to prepare and train, then failed at conversion (`+`) or with a bare AssertionError (LSTM)."
    from quantnb.qat import QATProcessor
    for model, words in ((_Residual(), r'add \(node add\).*FloatFunctional'), (nn.Sequential(nn.LSTM(8, 8)), '0 \\(LSTM\\)')):
        with pytest.raises(ValueError, match=words):
            QATProcessor().prepare_qat_model(model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_a_float_functional_residual_prepares_trains_and_converts():
    "The fix the message names works end to end: the int8 model agrees with the fake-quantized one."
    from quantnb.qat import QATProcessor
    torch.manual_seed(0)
    qat, model = QATProcessor(), _Residual(module=True)
    prepared, optimizer = qat.prepare_qat_model(model, torch.optim.SGD(model.parameters(), lr=0.05))
    batches = [(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))) for _ in range(4)]
    trained, _ = qat.train_with_qat(prepared, optimizer, batches, batches[:1], epochs=1)
    int8 = qat.convert_to_quantized(trained)
    x = batches[0][0]
    with torch.no_grad(), _observers_paused(trained):
        fake = trained.eval()(x)
        real = int8(x)
    assert (fake.argmax(1) == real.argmax(1)).float().mean() >= 0.9
    assert ((fake - real).abs() < 1e-3).float().mean() >= 0.9  # most outputs equal; the rest a code or so apart


def test_int8_missing_ops_follow_the_stubs():
    "Only ops on activations that are int8 after conversion count: after a DeQuantStub, a softmax runs in float."
    from quantnb.qat import int8_missing_ops
    tq = torch.ao.quantization

    class Head(nn.Module):
        def __init__(self, dequant_first):
            super().__init__()
            self.quant, self.dequant, self.fc = tq.QuantStub(), tq.DeQuantStub(), nn.Linear(4, 4)
            self.dequant_first = dequant_first

        def forward(self, x):
            y = self.fc(self.quant(x))
            if self.dequant_first:
                return torch.log_softmax(self.dequant(y), 1) * 2.0
            return self.dequant(torch.log_softmax(y, 1) * 2.0)

    assert int8_missing_ops(Head(True)) == []
    assert [op for op, _ in int8_missing_ops(Head(False))] == ['log_softmax', 'mul']


def test_int8_missing_ops_still_passes_over_an_untraceable_model():
    "Only tracing failures are swallowed (the model is checked at conversion); a wrong argument is an error."
    from quantnb.qat import int8_missing_ops

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant, self.fc = tq.QuantStub(), nn.Linear(4, 4)

        def forward(self, x):
            y = self.fc(self.quant(x))
            return y if y.sum() > 0 else -y  # control flow on a value: torch.fx cannot trace it

    assert int8_missing_ops(Branchy()) == []
