"`quantnb.fakequant`: STE and LSQ values and gradients against PyTorch, switchable layers, the weight quantizer, packing."
import pytest
import torch
import torch.nn as nn

from quantnb.affine import calc_qparams, fake_quantize, qrange
from quantnb.fakequant import (CustomQuantizer, FakeQuantizeSTE, LSQFakeQuantize, QuantizedConv2d, QuantizedLinear, _LSQFunction,
                               calibrate, fake_quantize_ste, load_packed, pack_codes, packed_state_dict, quantize_layers, state_size_bytes,
                               unpack_codes)
from quantnb.measure import model_size_bytes
from quantnb.models import SampleNet

N_RANDOM = 300


def _random(g):
    shape = tuple(int(d) for d in torch.randint(1, 7, (int(torch.randint(1, 4, (1,), generator=g)),), generator=g))
    return torch.randn(shape, generator=g) * 10 ** float(torch.empty(1).uniform_(-2, 2, generator=g))


@pytest.mark.parametrize('dtype', ['int8', 'uint8', 'int4', 'uint4', 'int2'])
def test_ste_matches_torch_per_tensor(dtype):
    g, (qmin, qmax) = torch.Generator().manual_seed(0), qrange(dtype)
    for _ in range(N_RANDOM):
        x = _random(g)
        scale, zero_point = calc_qparams(x * 0.7, dtype)  # a narrower range, so that some values are clipped
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        ours, ref = fake_quantize_ste(a, scale, zero_point, dtype), torch.fake_quantize_per_tensor_affine(b, scale.item(), zero_point.item(), qmin, qmax)
        upstream = torch.randn(x.shape, generator=g)
        (ours * upstream).sum().backward(); (ref * upstream).sum().backward()
        assert torch.equal(ours, ref) and torch.equal(a.grad, b.grad)


@pytest.mark.parametrize('dtype', ['int8', 'uint4'])
def test_ste_matches_torch_per_channel(dtype):
    g, (qmin, qmax) = torch.Generator().manual_seed(1), qrange(dtype)
    for _ in range(N_RANDOM):
        x = _random(g)
        axis = int(torch.randint(0, x.ndim, (1,), generator=g))
        scale, zero_point = calc_qparams(x * 0.7, dtype, axis=axis)
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        ours = fake_quantize_ste(a, scale, zero_point, dtype, axis)
        ref = torch.fake_quantize_per_channel_affine(b, scale, zero_point.int(), axis, qmin, qmax)
        ours.sum().backward(); ref.sum().backward()
        assert torch.equal(ours, ref) and torch.equal(a.grad, b.grad)


def test_ste_gradient_is_zero_outside_the_range():
    x = torch.tensor([-10.0, -0.5, 0.0, 0.5, 10.0], requires_grad=True)
    fake_quantize_ste(x, 0.1, 0, 'int4').sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 0]


def _grads(fn, x, scale, zero_point, qmin, qmax, grad_factor, upstream):
    x, scale, zero_point = (t.clone().requires_grad_() for t in (x, scale, zero_point))
    y = fn(x, scale, zero_point, qmin, qmax, grad_factor)
    (y * upstream).sum().backward()
    return y.detach(), x.grad, scale.grad, zero_point.grad


@pytest.mark.parametrize('dtype', ['int8', 'uint8', 'int4'])
def test_lsq_matches_torch_learnable_for_non_negative_zero_points(dtype):
    g, (qmin, qmax) = torch.Generator().manual_seed(2), qrange(dtype)
    for _ in range(N_RANDOM):
        x = _random(g)
        scale = x.abs().max() / (qmax - qmin) * float(torch.empty(1).uniform_(0.5, 2, generator=g)) + 1e-6
        zero_point = torch.tensor([float(torch.randint(max(qmin, 0), qmax + 1, (1,), generator=g))])
        grad_factor = 1 / (x.numel() * qmax) ** 0.5
        upstream = torch.randn(x.shape, generator=g)
        ours = _grads(_LSQFunction.apply, x, scale.reshape(1), zero_point, qmin, qmax, grad_factor, upstream)
        ref = _grads(torch._fake_quantize_learnable_per_tensor_affine, x, scale.reshape(1), zero_point, qmin, qmax, grad_factor, upstream)
        torch.testing.assert_close(ours[0], ref[0], rtol=0, atol=0)
        torch.testing.assert_close(ours[1], ref[1], rtol=0, atol=0)
        # PyTorch computes (x_hat - x) / s where LSQ's formula is round(x/s) - x/s: equal up to float rounding
        torch.testing.assert_close(ours[2], ref[2], rtol=1e-4, atol=1e-5 * (upstream.abs().sum().item() + 1))
        torch.testing.assert_close(ours[3], ref[3], rtol=1e-4, atol=1e-6)


def test_torch_learnable_backward_truncates_negative_zero_points():
    "The documented difference: PyTorch's backward uses int(z + 0.5), so -3 acts as -2; quantnb rounds."
    x, scale, zero_point = torch.linspace(-4, 4, 101), torch.tensor([0.3]), torch.tensor([-3.0])
    upstream = torch.ones(101)
    ours = _grads(_LSQFunction.apply, x, scale, zero_point, -8, 7, 1.0, upstream)
    ref = _grads(torch._fake_quantize_learnable_per_tensor_affine, x, scale, zero_point, -8, 7, 1.0, upstream)
    assert torch.equal(ours[0], ref[0]) and not torch.equal(ours[1], ref[1])
    truncated = _grads(_LSQFunction.apply, x, scale, torch.tensor([-2.0]), -8, 7, 1.0, upstream)
    unclamped = torch.round(x / 0.3) - 2
    assert torch.equal(ref[1], ((unclamped >= -8) & (unclamped <= 7)).float()) and torch.equal(truncated[1], ref[1])


def test_lsq_module_learns_and_initialises():
    torch.manual_seed(0)
    x = torch.randn(2048)
    lsq = LSQFakeQuantize('int4', batch_dim=None)
    opt = torch.optim.Adam(lsq.parameters(), lr=0.01)
    first = None
    for _ in range(100):
        loss = (lsq(x) - x).pow(2).mean()
        first = first or loss.item()
        opt.zero_grad(); loss.backward(); opt.step()
    assert loss.item() < first and bool(lsq.initialized) and lsq.zero_point.grad is None


@pytest.mark.parametrize('dtype', ['int4', 'uint4', 'int2', 'uint2'])
@pytest.mark.parametrize('extra', [0, 1, 3])
def test_pack_unpack_round_trip_every_value(dtype, extra):
    qmin, qmax = qrange(dtype)
    q = torch.cat([torch.arange(qmin, qmax + 1), torch.arange(qmin, qmin + extra)]).to(torch.int8 if qmin < 0 else torch.uint8)
    q = q[torch.randperm(len(q))]
    packed = pack_codes(q, dtype)
    assert packed.dtype == torch.uint8 and len(packed) == -(-len(q) * (4 if '4' in dtype else 2) // 8)
    assert torch.equal(unpack_codes(packed, dtype, len(q)), q)


def test_pack_rejects_bad_codes():
    with pytest.raises(ValueError, match='outside'): pack_codes(torch.tensor([8]), 'int4')
    with pytest.raises(ValueError, match='packs 2- and 4-bit'): pack_codes(torch.tensor([1]), 'int8')
    with pytest.raises(TypeError, match='integer tensor'): pack_codes(torch.tensor([1.0]), 'int4')


def test_quantized_layers_switch_off_to_exactly_the_float_layer():
    torch.manual_seed(0)
    linear, conv = nn.Linear(20, 8), nn.Conv2d(3, 4, 3, padding=1, stride=2)
    x_lin, x_conv = torch.randn(5, 20), torch.randn(2, 3, 9, 9)
    for layer, wrapper, x in [(linear, QuantizedLinear, x_lin), (conv, QuantizedConv2d, x_conv)]:
        q = calibrate(wrapper(layer), [(x, None)])
        assert torch.equal(q.disable_quantization()(x), layer(x))
        out = q.enable_quantization()(x)
        assert not torch.equal(out, layer(x)) and torch.allclose(out, layer(x), atol=0.05 * layer(x).abs().max().item())


def test_quantized_layer_needs_calibration_and_trains():
    q = QuantizedLinear(nn.Linear(4, 2), quantized=True)
    with pytest.raises(RuntimeError, match='has observed no data'): q(torch.randn(3, 4))
    with pytest.raises(ValueError, match='no QuantizedLayer'): calibrate(nn.Linear(2, 2), [])
    calibrate(q, [(torch.randn(16, 4), None)])
    q(torch.randn(3, 4)).sum().backward()
    assert q.layer.weight.grad is not None and q.layer.weight.grad.abs().sum() > 0


def test_quantize_layers_wraps_every_layer():
    model = quantize_layers(SampleNet())
    assert [type(m).__name__ for m in model.modules() if type(m).__name__.startswith('Quantized')] == \
        ['QuantizedConv2d', 'QuantizedConv2d', 'QuantizedLinear', 'QuantizedLinear']


@pytest.mark.parametrize('granularity,group_size', [('per-tensor', None), ('per-channel', None), ('per-group', 32)])
def test_custom_quantizer_matches_fake_quantize(granularity, group_size):
    torch.manual_seed(0)
    model = SampleNet()
    quantizer = CustomQuantizer('int4', granularity, group_size, symmetric=True)
    qmodel = quantizer.quantize_model(model)
    w = model.fc1.weight.detach()
    axis = {'per-tensor': None, 'per-channel': 0, 'per-group': -1}[granularity]
    scale, zero_point = calc_qparams(w, 'int4', True, axis=axis, group_size=group_size)
    assert torch.equal(qmodel.fc1.weight, fake_quantize(w, scale, zero_point, 'int4', axis))
    assert set(quantizer.scale_dict) == {'conv1.weight', 'conv2.weight', 'fc1.weight', 'fc2.weight'} and torch.equal(model.fc1.weight, w)
    if group_size:  # conv1's 9 weights per filter do not split into groups of 32: one group per row
        assert quantizer.scale_dict['conv1.weight'].shape == (32, 1) and quantizer.scale_dict['fc1.weight'].shape == (128, 9216 // 32)


def test_custom_quantizer_bad_arguments():
    with pytest.raises(ValueError, match='granularity='): CustomQuantizer(granularity='per-row')
    with pytest.raises(ValueError, match='group_size'): CustomQuantizer(granularity='per-group')


@pytest.mark.parametrize('dtype,granularity,group_size,min_ratio', [('int4', 'per-channel', None, 7.5), ('int2', 'per-channel', None, 14),
                                                                 ('int4', 'per-group', 64, 6.5)])
def test_packed_model_is_small_and_exact(dtype, granularity, group_size, min_ratio):
    torch.manual_seed(0)
    model = SampleNet()
    quantizer = CustomQuantizer(dtype, granularity, group_size)
    fake = quantizer.quantize_model(model)
    state = packed_state_dict(fake, quantizer)
    restored = load_packed(model, state, quantizer)
    assert all(torch.equal(a, b) for a, b in zip(restored.state_dict().values(), fake.state_dict().values()))
    ratio = model_size_bytes(model) / state_size_bytes(state)
    assert ratio >= min_ratio


@pytest.mark.parametrize('dtype,axis', [('int8', None), ('uint8', None), ('int4', 0), ('uint4', 1), ('int2', None)], ids=str)
def test_fused_inference_path_equals_the_ste_forward(dtype, axis):
    "Without a gradient, fake_quantize_ste takes PyTorch's one-kernel op: the values must not change."
    g = torch.Generator().manual_seed(3)
    for _ in range(50):
        x = torch.randn(5, 7, generator=g) * 3
        scale, zero_point = calc_qparams(x * 0.7, dtype, axis=axis)
        with torch.no_grad(): fused = fake_quantize_ste(x, scale, zero_point, dtype, axis)
        assert torch.equal(fused, FakeQuantizeSTE.apply(x, scale, zero_point, dtype, axis))


def test_lsq_step_gradient_does_not_depend_on_batch_size():
    "Esser et al.: g = 1/sqrt(N qmax), N the values of one example; counting the batch made the step learn sqrt(B) slower."
    example = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    def scale_grad(batch_size):
        lsq = LSQFakeQuantize('int4')
        x = example.repeat(batch_size, 1, 1, 1)
        (lsq(x) - x).pow(2).flatten(1).sum(1).mean().backward()  # a per-example loss, averaged over the batch
        return lsq.scale.grad.item()
    one = scale_grad(1)
    for batch_size in (4, 64):
        assert scale_grad(batch_size) == pytest.approx(one, rel=1e-5)
    weight = LSQFakeQuantize('int4', batch_dim=None)
    assert weight.grad_factor(example.repeat(4, 1, 1, 1)) == pytest.approx(1 / (4 * 192 * 7) ** 0.5)
    with pytest.raises(ValueError, match='batch_dim=None'): LSQFakeQuantize('int4')(torch.randn(10))


def _count_qparams(layer):
    calls = []
    original = layer.observer.calculate_qparams
    layer.observer.calculate_qparams = lambda: calls.append(1) or original()
    return calls


def test_quantized_layer_computes_activation_qparams_once_per_calibration():
    torch.manual_seed(0)
    x = torch.randn(8, 16)
    layer = calibrate(QuantizedLinear(nn.Linear(16, 4), quantized=True), [(x, None)])
    calls = _count_qparams(layer)
    with torch.no_grad(): outs = [layer(x) for _ in range(5)]
    assert len(calls) == 1 and all(torch.equal(o, outs[0]) for o in outs)
    calibrate(layer, [(torch.randn(8, 16) * 10, None)])  # new data through the layer: new qparams
    with torch.no_grad(): wide = layer(x)
    assert len(calls) == 2 and not torch.equal(wide, outs[0])
    layer.observer(torch.randn(8, 16) * 100)  # the observer called directly: its buffers change, the cache notices
    layer(x); assert len(calls) == 3
    layer.observer.load_state_dict(calibrate(QuantizedLinear(nn.Linear(16, 4)), [(x, None)]).observer.state_dict())
    assert torch.equal(layer(x), outs[0]) and len(calls) == 4  # loaded in place: recomputed, back to the first range


def test_quantized_layer_weight_cache_follows_training():
    torch.manual_seed(0)
    x = torch.randn(8, 16)
    layer = calibrate(QuantizedLinear(nn.Linear(16, 4), quantized=True), [(x, None)])
    with torch.no_grad(): before = layer(x)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x).pow(2).sum().backward(); opt.step()
    with torch.no_grad(): after = layer(x)
    fresh = calibrate(QuantizedLinear(layer.base_layer, quantized=True), [(x, None)])
    with torch.no_grad(): assert not torch.equal(after, before) and torch.equal(after, fresh(x))


def test_quantized_layer_bad_arguments():
    with pytest.raises(TypeError, match='nn.Linear'): QuantizedLinear(nn.Conv2d(1, 1, 1))
    with pytest.raises(TypeError, match='nn.Conv2d'): QuantizedConv2d('3', 4, 3)
    with pytest.raises(TypeError, match='drop out_features'): QuantizedLinear(nn.Linear(2, 2), 4)
    with pytest.raises(TypeError, match='by keyword'): QuantizedLinear(nn.Linear(2, 2), quantized='int4')
    with pytest.raises(TypeError, match='module with a weight'): QuantizedLinear.__mro__[1](nn.ReLU())
    with pytest.raises(TypeError, match='nn.Linear or nn.Conv2d'): CustomQuantizer().quantize_layer('relu', 'relu')
    with pytest.raises(TypeError, match='LSTM has parameters'): CustomQuantizer().quantize_layer(nn.LSTM(2, 2), 'lstm')


def test_calibrate_takes_bare_image_batches_and_rejects_a_bare_tensor_or_nothing():
    "Calibration data follows quantnb.data.iter_batches: bare image tensors are batches; one tensor alone or no batch is an error."
    torch.manual_seed(0)
    batches = [torch.randn(64, 16) for _ in range(3)]
    bare = calibrate(QuantizedLinear(nn.Linear(16, 4), quantized=True), batches)
    paired = calibrate(QuantizedLinear(nn.Linear(16, 4), quantized=True), [(x, torch.zeros(64, dtype=torch.long)) for x in batches])
    assert bare._batches_seen == 3
    assert torch.equal(bare.observer.min_val, paired.observer.min_val) and torch.equal(bare.observer.max_val, paired.observer.max_val)
    with pytest.raises(TypeError, match='wrap one batch in a list'): calibrate(QuantizedLinear(nn.Linear(16, 4)), torch.randn(2, 16))
    with pytest.raises(ValueError, match='batches is empty'): calibrate(QuantizedLinear(nn.Linear(16, 4)), [])
    with pytest.raises(ValueError, match='batches is empty'): calibrate(QuantizedLinear(nn.Linear(16, 4)), iter([]))


@pytest.mark.parametrize('bad', [-0.1, 0.0], ids=['negative', 'zero'])
def test_lsq_keeps_its_scale_positive(bad):
    "A scale pushed to zero or below is clamped to float32's eps in the forward, as torch's _LearnableFakeQuantize does."
    torch.manual_seed(0)
    x = torch.randn(200)
    lsq = LSQFakeQuantize('int8', batch_dim=None)
    lsq(x)
    with torch.no_grad(): lsq.scale.fill_(bad)
    y = lsq(x)
    eps = torch.finfo(torch.float32).eps
    assert lsq.scale.item() == pytest.approx(eps)
    expected = fake_quantize(x, eps, int(lsq.zero_point.item()), 'int8')
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    assert torch.isfinite(y).all() and (y != 0).any()


@pytest.mark.parametrize('scale, zero_point, error, match', [
    (float('inf'), 0, ValueError, 'scale must be positive and finite'),
    (float('nan'), 0, ValueError, 'scale must be positive and finite'),
    (-0.1, 0, ValueError, 'scale must be positive and finite'),
    (1e-40, 0, ValueError, 'scale must be positive and finite'),
    (0.1, 300, ValueError, r'zero_point must lie in \[-128, 127\]'),
    (0.1, 0.7, TypeError, 'zero_point must be an integer'),
    (0.1, torch.tensor(1.0), TypeError, 'zero_point must be an integer'),
    ('0.1', 0, TypeError, 'scale must be a number or a tensor'),
], ids=['inf', 'nan', 'negative', 'subnormal', 'zero-point-out-of-range', 'float-zero-point', 'float-tensor-zero-point', 'str-scale'])
def test_fake_quantize_ste_checks_like_quantize(scale, zero_point, error, match):
    "fake_quantize_ste applies quantize's argument checks."
    from quantnb.affine import quantize
    x = torch.randn(8)
    with pytest.raises(error, match=match): quantize(x, scale, zero_point, 'int8')
    with pytest.raises(error, match=match): fake_quantize_ste(x, scale, zero_point, 'int8')
    with pytest.raises(error, match=match): fake_quantize_ste(x.clone().requires_grad_(), scale, zero_point, 'int8')


def test_fake_quantize_ste_checks_axis():
    with pytest.raises(ValueError, match='axis=2 is out of range'): fake_quantize_ste(torch.randn(3, 4), torch.ones(3), torch.zeros(3, dtype=torch.long), 'int8', 2)


def test_quantized_layer_seed_attributes_per_tensor_are_float_and_int():
    "With per_channel=False, .scale and .zero_point are the seed's per-tensor float and int."
    layer = QuantizedLinear(nn.Linear(8, 4), per_channel=False)
    assert type(layer.scale) is float and type(layer.zero_point) is int
    scale, zero_point = calc_qparams(layer.base_layer.weight.detach(), 'int8', symmetric=True)
    assert layer.scale == scale.item() and layer.zero_point == int(zero_point)
    per_channel = QuantizedLinear(nn.Linear(8, 4))
    assert per_channel.scale.shape == (4,) and per_channel.zero_point.shape == (4,)
