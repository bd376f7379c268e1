"Advanced PTQ (notebook 09): oracles, invariances and bad input, on tiny random models."
import copy

import pytest
import torch
import torch.nn as nn
from torch.ao.quantization._equalize import equalize as torch_equalize

from quantnb.advanced_ptq import (adaround, adaround_init, correct_bias, cross_layer_equalize, equalization_pairs,
                                  fold_bn, harden, mean_output_error, qat_layers, quantize_nearest, captured_inputs)


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
