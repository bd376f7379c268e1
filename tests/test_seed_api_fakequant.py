"The seed's `CustomQuantizer` and `QuantizedLayer`/`QuantizedLinear`/`QuantizedConv2d` calls, as the seed wrote them, on quantnb."
import copy
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from quantnb.fakequant import CustomQuantizer, QuantizedConv2d, QuantizedLayer, QuantizedLinear, calibrate


def _seed_corrected_int8(w):
    "The seed's per-tensor min-max qparams, corrected: int8 codes (not uint8 on qint8), range containing 0, zero point rounded."
    rmin, rmax = min(w.min().item(), 0.0), max(w.max().item(), 0.0)
    scale = (rmax - rmin) / 255
    return scale, -128 - round(rmin / scale)


@pytest.mark.parametrize('make,name', [(lambda: nn.Linear(64, 32), 'fc1'), (lambda: nn.Conv2d(3, 8, 3), 'conv1')], ids=['linear', 'conv2d'])
def test_custom_quantizer_seed_call(make, name):
    torch.manual_seed(0)
    layer = make()
    w = layer.weight.detach().clone()
    quantizer = CustomQuantizer()
    quantizer.quantize_layer(layer, name)  # the seed's order: (layer, layer_name, calibrate_data=None)
    key = f'{name}.weight'  # the seed's keys
    assert list(quantizer.scale_dict) == [key] and list(quantizer.zero_point_dict) == [key]
    scale, zero_point = quantizer.scale_dict[key], quantizer.zero_point_dict[key]
    assert isinstance(scale, float) and isinstance(zero_point, int)  # the seed's Tuple[float, int]
    ref_scale, ref_zero_point = _seed_corrected_int8(w)
    assert scale == pytest.approx(ref_scale, rel=1e-6) and zero_point == ref_zero_point and -128 <= zero_point <= 127
    expected = torch.fake_quantize_per_tensor_affine(w, scale, zero_point, -128, 127)
    assert torch.equal(layer.weight.detach(), expected)
    assert (layer.weight - w).abs().max() <= scale / 2 + 1e-7  # nothing clipped: every weight within half a step


def test_custom_quantizer_seed_bug_would_clip():
    "What the correction avoids: the seed's uint8 qparams used on qint8 codes clip every weight above (127 - z) * s."
    torch.manual_seed(0)
    w = nn.Linear(64, 32).weight.detach()
    rmin, rmax = w.min().item(), w.max().item()
    seed_scale = (rmax - rmin) / 255
    seed_zero_point = int(0 - rmin / seed_scale)  # truncated, near the middle of 0..255
    seed = ((torch.round(w / seed_scale) + seed_zero_point).clamp(-128, 127) - seed_zero_point) * seed_scale  # qint8 codes
    clip_at = (127 - seed_zero_point) * seed_scale
    assert clip_at < rmax / 2 and seed.max().item() == pytest.approx(clip_at)  # more than half of the positive range is lost
    layer = nn.Linear(64, 32); layer.weight.data.copy_(w)
    CustomQuantizer().quantize_layer(layer, 'fc')
    assert layer.weight.max().item() == pytest.approx(rmax, abs=seed_scale)  # quantnb keeps the largest weight


def test_custom_quantizer_calibrate_data_warns_and_is_not_needed():
    torch.manual_seed(0)
    a, b = nn.Linear(8, 4), nn.Linear(8, 4)
    b.load_state_dict(a.state_dict())
    with pytest.warns(UserWarning, match='calibrate_data is not used'):
        CustomQuantizer().quantize_layer(a, 'fc', torch.randn(16, 8))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        CustomQuantizer().quantize_layer(b, 'fc', calibrate_data=None)
    assert torch.equal(a.weight, b.weight)


def test_custom_quantizer_accepts_quantnb_earlier_order_and_rejects_others():
    torch.manual_seed(0)
    a, b = nn.Linear(8, 4), nn.Linear(8, 4)
    b.load_state_dict(a.state_dict())
    qa, qb = CustomQuantizer(), CustomQuantizer()
    qa.quantize_layer(a, 'fc'); qb.quantize_layer('fc', b)
    assert torch.equal(a.weight, b.weight) and qa.scale_dict == qb.scale_dict
    with pytest.raises(TypeError, match='layer_name must be a str'): CustomQuantizer().quantize_layer(nn.Linear(2, 2), 3)
    with pytest.raises(TypeError, match='nn.Linear or nn.Conv2d'): CustomQuantizer().quantize_layer('fc', 'fc')


def test_custom_quantizer_seed_loop_over_named_modules():
    "The loop a reader of the seed writes: every module of named_modules(), the model itself and activations included."
    from quantnb.models import SampleNetBN
    torch.manual_seed(0)
    model = SampleNetBN()
    before = copy.deepcopy(model)
    quantizer = CustomQuantizer()
    for name, module in model.named_modules():
        quantizer.quantize_layer(module, name)  # the seed skipped what is not Linear/Conv2d; so does quantnb
    weighted = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert list(quantizer.scale_dict) == [f'{n}.weight' for n in weighted]
    direct = copy.deepcopy(before)
    for n in weighted:
        CustomQuantizer().quantize_layer(direct.get_submodule(n), n)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), direct.state_dict().values()))
    for bn in ('bn1', 'bn2'):  # a normalization layer has no weight to quantize: it stays float, unchanged
        assert torch.equal(model.get_submodule(bn).weight, before.get_submodule(bn).weight)


def test_custom_quantizer_refuses_weighted_modules_it_cannot_quantize():
    "Skipping is for modules with no weight to quantize; a weighted one quantnb cannot quantize is named, not skipped."
    for module, kind in ((nn.Embedding(10, 4), 'Embedding'), (nn.LSTM(4, 4), 'LSTM'), (nn.Conv1d(2, 2, 3), 'Conv1d')):
        with pytest.raises(TypeError, match=f'{kind} has parameters'):
            CustomQuantizer().quantize_layer(module, 'layer')
    relu = nn.ReLU()
    assert CustomQuantizer().quantize_layer(relu, 'relu') is relu


def test_quantized_linear_seed_constructor_and_switch():
    torch.manual_seed(0)
    layer = QuantizedLinear(20, 10)  # the seed's (in_features, out_features, bias=True)
    assert isinstance(layer.base_layer, nn.Linear) and layer.base_layer.weight.shape == (10, 20) and layer.base_layer.bias is not None
    assert QuantizedLinear(20, 10, bias=False).base_layer.bias is None and QuantizedLinear(20, 10, False).base_layer.bias is None
    x = torch.randn(32, 20)
    assert layer.quantized is False and torch.equal(layer(x), layer.base_layer(x))  # the seed's default: off
    calibrate(layer, [(x, None)])
    layer.enable_quantization()
    assert layer.quantized is True
    scale, zero_point = layer.observer.calculate_qparams()
    w = layer.base_layer.weight.detach()
    w_scale = w.abs().amax(1) / 127.5
    x_fq = torch.fake_quantize_per_tensor_affine(x, scale.item(), int(zero_point), 0, 255)
    w_fq = torch.fake_quantize_per_channel_affine(w, w_scale, torch.zeros(10, dtype=torch.int32), 0, -128, 127)
    torch.testing.assert_close(layer(x), F.linear(x_fq, w_fq, layer.base_layer.bias), rtol=1e-5, atol=1e-5)
    layer.disable_quantization()
    assert layer.quantized is False and torch.equal(layer(x), layer.base_layer(x))


def test_quantized_conv2d_seed_constructor():
    torch.manual_seed(0)
    layer = QuantizedConv2d(3, 8, 3, 2, 1, False)  # (in_channels, out_channels, kernel_size, stride, padding, bias), positional
    conv = layer.base_layer
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.bias) == (3, 8, (3, 3), (2, 2), (1, 1), None)
    keyword = QuantizedConv2d(in_channels=3, out_channels=8, kernel_size=3, stride=1, padding=0, bias=True).base_layer
    assert keyword.stride == (1, 1) and keyword.padding == (0, 0) and keyword.bias is not None
    x = torch.randn(4, 3, 9, 9)
    calibrate(layer, [(x, None)]).enable_quantization()
    out, ref = layer(x), conv(x)
    assert out.shape == ref.shape == (4, 8, 5, 5) and not torch.equal(out, ref)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()


def test_quantized_layer_seed_base_class():
    "The seed's base class wraps any layer with a weight: `QuantizedLayer(base_layer, quantized=False)`."
    torch.manual_seed(0)
    linear = nn.Linear(12, 6)
    base = QuantizedLayer(linear)
    x = torch.randn(16, 12)
    assert base.quantized is False and torch.equal(base(x), linear(x))
    on = QuantizedLayer(linear, True)
    calibrate(on, [(x, None)])
    twin = calibrate(QuantizedLinear(linear, quantized=True), [(x, None)])
    torch.testing.assert_close(on(x), twin(x), rtol=0, atol=1e-6)
    w_scale, w_zero_point = on.scale, on.zero_point  # the seed's attributes: the weight's qparams (here per channel)
    assert w_scale.shape == (6,) and torch.equal(w_zero_point, torch.zeros(6, dtype=w_zero_point.dtype))


def test_quantized_layer_seed_order_enable_assign_scale_then_calibrate():
    "The seed's order: build, enable, set the step by assignment; quantnb needs calibration before the first call."
    torch.manual_seed(0)
    layer = QuantizedLinear(20, 10)
    layer.enable_quantization()  # the seed enabled before any data
    x = torch.randn(32, 20)
    with pytest.raises(RuntimeError, match='calibration'):
        layer(x)  # no input range yet: an error that says what to run, not a silent guess
    layer.scale = 0.01  # the seed's attribute, assignable: fixes the weight's step
    assert layer.scale == pytest.approx(0.01, rel=1e-7) and layer.zero_point == 0  # float32's 0.01
    calibrate(layer, [(x, None)])
    w = layer.base_layer.weight.detach()
    scale, zero_point = layer.observer.calculate_qparams()
    x_fq = torch.fake_quantize_per_tensor_affine(x, scale.item(), int(zero_point), 0, 255)
    w_fq = torch.fake_quantize_per_tensor_affine(w, 0.01, 0, -128, 127)
    torch.testing.assert_close(layer(x), F.linear(x_fq, w_fq, layer.base_layer.bias), rtol=1e-5, atol=1e-5)
    assert torch.equal(layer.quantized_weight(), w_fq)  # the weight on the assigned step's grid
    with torch.no_grad():
        layer.base_layer.weight.mul_(2)  # the weight moves; a fixed step stays
    assert layer.scale == pytest.approx(0.01, rel=1e-7)
    torch.testing.assert_close(layer.quantized_weight(), torch.fake_quantize_per_tensor_affine(
        layer.base_layer.weight.detach(), 0.01, 0, -128, 127))
    layer.scale = None  # back to the weight's own per-channel steps
    assert layer.scale.shape == (10,)


def test_quantized_layer_fixed_scale_per_channel_trains_and_survives_state_dict():
    torch.manual_seed(0)
    layer = QuantizedConv2d(3, 4, 3)
    steps = torch.tensor([0.01, 0.02, 0.03, 0.04])
    layer.scale = steps
    assert torch.equal(layer.scale, steps)
    calibrate(layer, [(torch.randn(2, 3, 8, 8), None)]).enable_quantization()
    layer(torch.randn(2, 3, 8, 8)).sum().backward()  # the straight-through path uses the fixed steps too
    assert layer.base_layer.weight.grad is not None
    twin = QuantizedConv2d(3, 4, 3)
    twin.load_state_dict(layer.state_dict())
    assert torch.equal(twin.scale, steps)
    layer.scale = None
    twin.load_state_dict(layer.state_dict())  # a state without a fixed step hands the step back to the weight
    assert twin.fixed_scale is None
    with pytest.raises(ValueError, match='one per output channel'):
        layer.scale = torch.ones(3)
    with pytest.raises(ValueError, match='positive and finite'):
        layer.scale = 0.0
    with pytest.raises(ValueError, match='layer.scale'):
        layer.zero_point = 5
    layer.zero_point = 0  # its own zero point: accepted, nothing changes
