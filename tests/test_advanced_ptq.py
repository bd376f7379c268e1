"Advanced PTQ (notebook 09): oracles, invariances and bad input, on tiny random models."
import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from torch.ao.quantization._equalize import equalize as torch_equalize

from quantnb.advanced_ptq import (absorb_high_bias, absorb_pair, adaround, adaround_init, adaround_layer, beta_at,
                                  captured_inputs, channel_ranges, correct_bias, cross_layer_equalize,
                                  equalization_pairs, equalize_pair, fold_bn, folded_layer, harden, mean_output_error,
                                  observe_act_steps, qat_layers, quantize_nearest, round_regularizer)


class Tiny(nn.Module):
    "conv-BN-ReLU, conv-BN-ReLU, pool, linear-ReLU, linear: every pair kind of SampleNet at toy size."

    def __init__(self, bn=True):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6) if bn else nn.Identity(), nn.ReLU()
        self.conv2, self.bn2, self.relu2 = nn.Conv2d(6, 8, 3), nn.BatchNorm2d(8) if bn else nn.Identity(), nn.ReLU()
        self.pool, self.flatten = nn.AdaptiveAvgPool2d(2), nn.Flatten()
        self.fc1, self.relu3, self.fc2 = nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4)

    def forward(self, x):
        x = self.pool(self.relu2(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))))
        return self.fc2(self.relu3(self.fc1(self.flatten(x))))


def tiny(seed=0, bn=True):
    torch.manual_seed(seed)
    m = Tiny(bn)
    for b in (m.bn1, m.bn2) if bn else ():
        b.running_mean.uniform_(-1, 1)
        b.running_var.uniform_(0.2, 3)
        b.weight.data.uniform_(0.2, 3)
        b.bias.data.uniform_(-1, 2)
    return m.eval()


def images(n=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(16, 1, 10, 10, generator=g) for _ in range(n)]


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_fold_bn_keeps_the_function(seed):
    m = tiny(seed)
    x = images(1)[0]
    folded = fold_bn(m)
    assert rel(folded(x), m(x)) <= 1e-5
    assert isinstance(folded.bn1, nn.Identity) and isinstance(m.bn1, nn.BatchNorm2d)  # the caller's model untouched


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_cle_keeps_the_function_and_matches_torch(seed):
    m = fold_bn(tiny(seed))
    x = images(1)[0]
    pairs = equalization_pairs(m)
    assert pairs == [['conv1', 'conv2'], ['fc1', 'fc2']]
    ours = cross_layer_equalize(m, kind='minmax')
    theirs = torch_equalize(copy.deepcopy(m), pairs, inplace=False)
    for k, v in theirs.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[k], v, rtol=1e-4, atol=1e-5)
    assert rel(cross_layer_equalize(m)(x), m(x)) <= 1e-5


def test_depthwise_pair_is_equalized():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 6, 1), nn.ReLU(), nn.Conv2d(6, 6, 3, groups=6), nn.ReLU(), nn.Conv2d(6, 2, 1)).eval()
    x = torch.randn(2, 3, 8, 8)
    out = cross_layer_equalize(m)
    assert equalization_pairs(m) == [['0', '2'], ['2', '4']]
    assert rel(out(x), m(x)) <= 1e-5


def test_adaround_start_is_nearest_except_ties_which_go_up():
    torch.manual_seed(0)
    scale = torch.tensor(0.25)
    w = torch.cat([torch.randn(1000), torch.arange(-8, 8) * 0.25 + 0.125])  # random weights and exact ties
    q = torch.floor(w / scale) + harden(adaround_init(w, scale))
    r = w / scale
    ties = (r - r.floor()) == 0.5
    assert ties.sum() == 16
    assert torch.equal(q[~ties], torch.round(r)[~ties])
    assert torch.equal(q[ties], torch.ceil(r[ties]))


def test_bias_correction_zeroes_the_mean_error():
    m, cal = tiny(bn=False), images(2)
    q = quantize_nearest(m, 2, 8, cal)
    reference = {n: l.layer.bias.detach().clone() for n, l in qat_layers(q)}
    corrected = correct_bias(q, m, cal)
    for name, layer in qat_layers(corrected):
        x = layer.act_fq(captured_inputs(corrected, name, cal))
        bias_gap = layer.layer.bias.double() - reference[name].double()
        err = mean_output_error(layer, x, m.get_submodule(name).weight) + bias_gap
        assert err.abs().max() <= 1e-6


@pytest.mark.parametrize('per_channel', [True, False], ids=['per-channel', 'per-tensor'])
@pytest.mark.parametrize('bits', [2, 4, 8])
def test_adaround_keeps_weights_on_the_grid(bits, per_channel):
    m, cal = tiny(bn=False), images(2)
    q = quantize_nearest(m, bits, 8, cal, per_channel=per_channel)
    a = adaround(q, m, cal, iters=10, batch_size=8)
    for _, layer in qat_layers(a):
        w, fq = layer.layer.weight, layer.weight_fq
        torch.testing.assert_close(fq(w), w)  # already on the grid: quantizing again changes nothing
        assert fq.codes(w).min() >= fq.qmin and fq.codes(w).max() <= fq.qmax
    assert a.adaround_report['iters'] == 10 and a.adaround_report['images'] == 32
    assert not hasattr(q, 'adaround_report')  # the caller's model untouched


def test_train_mode_bn_is_refused():
    with pytest.raises(ValueError, match='training mode'):
        fold_bn(tiny().train())


def test_unsupported_pairs_are_refused():
    m = fold_bn(tiny())
    with pytest.raises(ValueError, match='Conv2d -> Linear'):
        cross_layer_equalize(m, [['conv2', 'fc1']])
    with pytest.raises(ValueError, match='not neighbours'):
        cross_layer_equalize(m, [['fc2', 'fc1']])
    g = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 1, groups=2)).eval()
    with pytest.raises(ValueError, match='grouped'):
        cross_layer_equalize(g, [['0', '2']])


def test_empty_data_is_refused():
    m = tiny(bn=False)
    with pytest.raises(ValueError, match='no batches'):
        quantize_nearest(m, 4, 8, [])
    q = quantize_nearest(m, 4, 8, images(1))
    with pytest.raises(ValueError, match='no batches'):
        adaround(q, m, [])
    with pytest.raises(ValueError, match='no batches'):
        correct_bias(q, m, [])


def test_nan_weights_are_refused():
    m = tiny()
    m.conv1.weight.data[0, 0, 0, 0] = float('nan')
    with pytest.raises(ValueError, match='NaN'):
        fold_bn(m)
    with pytest.raises(ValueError, match='NaN'):
        quantize_nearest(m, 2, None, images(1))


@pytest.mark.parametrize('bits', [1, 9])
def test_bits_out_of_range_are_refused(bits):
    with pytest.raises(ValueError, match='weight_bits'):
        quantize_nearest(tiny(bn=False), bits, 8, images(1))


def test_bias_correction_after_adaround_uses_the_float_weight():
    m, cal = tiny(bn=False), images(2)
    a = adaround(quantize_nearest(m, 2, 8, cal), m, cal, iters=10, batch_size=8)
    c = correct_bias(a, m, cal)
    assert any(not torch.equal(x.layer.bias, y.layer.bias) for (_, x), (_, y) in zip(qat_layers(a), qat_layers(c)))


def test_float_model_is_refused_by_adaround():
    m = tiny(bn=False)
    with pytest.raises(ValueError, match='no QATLayer'):
        adaround(m, m, images(1))


def _bn_pair(kind, seed=0):
    "Linear-BN-ReLU-Linear or Conv-BN-ReLU-Conv whose BatchNorm puts every channel well above zero (beta >> |gamma|)."
    torch.manual_seed(seed)
    if kind == 'linear':
        m = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    else:
        m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3))
    m[1].weight.data.uniform_(0.05, 0.2)
    m[1].bias.data.uniform_(1, 3)
    return m.eval()


@pytest.mark.parametrize('kind', ['linear', 'conv'])
def test_absorb_high_bias_keeps_the_function_where_the_relu_passes(kind):
    m = fold_bn(_bn_pair(kind))
    x = 0.1 * (torch.rand(5, 8) if kind == 'linear' else torch.rand(5, 1, 8, 8))
    beta, gamma = m[0].output_stats
    c = (beta - 3 * gamma).clamp(min=0)
    y = m[0](x).transpose(0, 1).reshape(len(c), -1)
    assert (c > 0).all() and (y >= c[:, None]).all()  # so ReLU(y) = ReLU(y - c) + c on every value
    absorbed = absorb_high_bias(m)
    torch.testing.assert_close(absorbed[0].bias, m[0].bias - c)
    assert not torch.equal(absorbed[3].bias, m[3].bias)
    torch.testing.assert_close(absorbed(x), m(x), rtol=1e-5, atol=1e-5)


def test_captured_inputs_leaves_a_training_model_as_it_was():
    m, cal = tiny().train(), images(1)
    before = copy.deepcopy(m.state_dict())
    got = captured_inputs(m, 'fc1', cal)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())  # BatchNorm running stats untouched
    assert all(module.training for module in m.modules())
    torch.testing.assert_close(got, captured_inputs(m.eval(), 'fc1', cal))


def test_captured_inputs_takes_labelled_batches_too():
    m, cal = tiny(bn=False), images(2)
    labelled = [(x, torch.zeros(len(x), dtype=torch.long)) for x in cal]
    assert torch.equal(captured_inputs(m, 'fc1', labelled), captured_inputs(m, 'fc1', cal))


def test_channel_ranges_counts_a_negative_axis_from_the_end():
    w = torch.randn(4, 3, 2, 5)
    assert torch.equal(channel_ranges(w, -1), channel_ranges(w, 3))
    assert torch.equal(channel_ranges(w, -4, 'minmax'), channel_ranges(w, 0, 'minmax'))


def test_beta_stays_at_its_end_value_after_the_last_step():
    assert beta_at(1, 10) is None
    assert beta_at(2, 10) == 20.0
    assert beta_at(10, 10) == 2.0
    assert beta_at(20, 10) == 2.0


@pytest.fixture(scope='module')
def parts():
    "A float model, its calibration images, its W4A8 copy, and one quantized layer's inputs and float target."
    m, cal = tiny(bn=False), images(1)
    q = quantize_nearest(m, 4, 8, cal)
    x = q.fc2.act_fq(captured_inputs(q, 'fc2', cal))
    other = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    return SimpleNamespace(m=m, cal=cal, q=q, layer=q.fc2, x=x, target=m.fc2(captured_inputs(m, 'fc2', cal)),
                           other=other)


NAN = float('nan')
BAD = {
    'per-channel-string': (lambda p: quantize_nearest(p.m, 4, 8, p.cal, per_channel='no'), TypeError, 'per_channel'),
    'observer-string': (lambda p: quantize_nearest(p.m, 4, 8, p.cal, observer='minmax'), TypeError, 'observer'),
    'observer-none': (lambda p: observe_act_steps(copy.deepcopy(p.q), p.cal, None), TypeError, 'observer'),
    'unknown-layer': (lambda p: captured_inputs(p.q, 'nope', p.cal), ValueError, "'nope' is no module"),
    'bare-tensor': (lambda p: captured_inputs(p.q, 'fc1', p.cal[0]), TypeError, 'images must be an iterable'),
    'no-batches': (lambda p: captured_inputs(p.q, 'fc1', []), ValueError, 'images yielded no batches'),
    'quantized-string': (lambda p: captured_inputs(p.q, 'fc1', p.cal, quantized='no'), TypeError, 'quantized'),
    'bn-other-width': (lambda p: folded_layer(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(3).eval()), ValueError,
                       'bn normalises 3 channels'),
    'bn-not-affine': (lambda p: folded_layer(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, affine=False).eval()), ValueError,
                      'no affine'),
    'bn-training': (lambda p: folded_layer(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)), ValueError, 'bn is in training'),
    'ranges-of-list': (lambda p: channel_ranges([[1.0]], 0), TypeError, 'w must be'),
    'ranges-axis': (lambda p: channel_ranges(torch.ones(2, 3), 2), ValueError, 'axis'),
    'ranges-kind': (lambda p: channel_ranges(torch.ones(2, 3), 0, 'absMax'), ValueError, 'kind'),
    'pair-mismatch': (lambda p: equalize_pair(nn.Linear(3, 4), nn.Linear(5, 2)), ValueError,
                      'layer1 has 4 output channels but layer2 takes 5'),
    'pairs-of-string': (lambda p: equalization_pairs('x'), TypeError, 'model'),
    'sweeps-0': (lambda p: cross_layer_equalize(p.m, max_sweeps=0), ValueError, 'max_sweeps'),
    'sweeps-float': (lambda p: cross_layer_equalize(p.m, max_sweeps=1.5), ValueError, 'max_sweeps'),
    'threshold-nan': (lambda p: cross_layer_equalize(p.m, threshold=NAN), ValueError, 'threshold'),
    'threshold-negative': (lambda p: cross_layer_equalize(p.m, threshold=-1.0), ValueError, 'threshold'),
    'pairs-flat': (lambda p: cross_layer_equalize(p.m, pairs=['fc1', 'fc2']), TypeError, 'pairs must be a list'),
    'pairs-unknown': (lambda p: cross_layer_equalize(p.m, pairs=[['fc1', 'nope']]), ValueError, "pairs: 'nope'"),
    'pair-of-one': (lambda p: absorb_high_bias(p.m, pairs=[['fc1']]), TypeError, 'pairs'),
    'sigmas-nan': (lambda p: absorb_high_bias(p.m, sigmas=NAN), ValueError, 'sigmas'),
    'sigmas-negative': (lambda p: absorb_high_bias(p.m, sigmas=-3.0), ValueError, 'sigmas'),
    'sigmas-string': (lambda p: absorb_high_bias(p.m, sigmas='3'), TypeError, 'sigmas'),
    'absorb-unfolded': (lambda p: absorb_pair(nn.Linear(3, 4), nn.Linear(4, 2)), ValueError, 'output_stats'),
    'error-x-width': (lambda p: mean_output_error(p.layer, torch.rand(2, 7), p.layer.layer.weight), ValueError,
                      'x has shape'),
    'error-w-shape': (lambda p: mean_output_error(p.layer, p.x, torch.rand(3, 3)), ValueError, 'w has shape'),
    'correct-other-model': (lambda p: correct_bias(p.q, p.other, p.cal), ValueError, 'made from'),
    'adaround-other-model': (lambda p: adaround(p.q, p.other, p.cal, iters=2), ValueError, 'made from'),
    'init-zero-step': (lambda p: adaround_init(torch.tensor([0.3]), torch.tensor(0.0)), ValueError, 'scale'),
    'init-negative-step': (lambda p: adaround_init(torch.tensor([0.3]), -0.1), ValueError, 'scale'),
    'init-nan-step': (lambda p: adaround_init(torch.tensor([0.3]), torch.tensor(NAN)), ValueError, 'scale'),
    'harden-nan': (lambda p: harden(torch.tensor([NAN, 1.0])), ValueError, 'NaN'),
    'beta-nan': (lambda p: round_regularizer(torch.zeros(3), NAN), ValueError, 'beta'),
    'beta-negative': (lambda p: round_regularizer(torch.zeros(3), -1.0), ValueError, 'beta'),
    'step-string': (lambda p: beta_at('5', 10), ValueError, 'step'),
    'no-iters': (lambda p: beta_at(0, 0), ValueError, 'iters'),
    'warmup-nan': (lambda p: beta_at(5, 10, warmup=NAN), ValueError, 'warmup'),
    'relu-string': (lambda p: adaround_layer(copy.deepcopy(p.layer), p.x, p.target, 'no', 2), TypeError, 'relu'),
    'batch-size-0': (lambda p: adaround_layer(copy.deepcopy(p.layer), p.x, p.target, False, 2, batch_size=0),
                     ValueError, 'batch_size'),
    'iters-0': (lambda p: adaround_layer(copy.deepcopy(p.layer), p.x, p.target, False, 0), ValueError, 'iters'),
    'lr-nan': (lambda p: adaround_layer(copy.deepcopy(p.layer), p.x, p.target, False, 2, lr=NAN), ValueError, 'lr'),
    'target-shape': (lambda p: adaround_layer(copy.deepcopy(p.layer), p.x, torch.rand(6, 3), False, 2), ValueError,
                     'target has shape'),
}


@pytest.mark.parametrize('call, error, match', BAD.values(), ids=BAD.keys())
def test_bad_arguments_are_refused_by_name(parts, call, error, match):
    with pytest.raises(error, match=match):
        call(parts)
