"quantnb.integer against PyTorch's x86 kernels: random layers code for code, fixed-point helpers, IntegerModel, bad input (notebook 05)."
import random
import warnings

import pytest
import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq

from quantnb.data import calibration_batches
from quantnb.integer import (INT32_MAX, INT32_MIN, IntegerModel, IntLayer, int_conv2d, int_flatten, int_gemm, int_linear, int_max_pool2d,
                             parity_report, quantize_codes, quantize_multiplier, requantize, rounding_right_shift,
                             saturating_rounding_doubling_high_mul)
from quantnb.measure import cpu_info
from quantnb.models import SampleNet, SampleNetBN
from quantnb.ptq import PTQProcessor, quantized_engine

warnings.filterwarnings('ignore', category=DeprecationWarning)
warnings.filterwarnings('ignore', message='.*quantize.*deprecated', category=UserWarning)

VNNI = cpu_info()['vnni']  # with VNNI, x86 conv runs oneDNN (should_use_onednn_quant) and no pair sum saturates


def _weight(shape, per_channel, g):
    "Random int8 weights, per channel (symmetric, as fbgemm's per-channel path takes them) or per tensor with a zero point at the range ends too."
    w = torch.randn(*shape, generator=g) * 0.1
    if per_channel:
        scales = torch.rand(shape[0], dtype=torch.float64, generator=g) * 0.02 + 1e-4
        return torch.quantize_per_channel(w, scales, torch.zeros(shape[0], dtype=torch.long), 0, torch.qint8)
    return torch.quantize_per_tensor(w, random.uniform(1e-4, 0.02), random.choice([0, 0, -128, 127, 5]), torch.qint8)


def _wparams(qw):
    if qw.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric): return qw.q_per_channel_scales(), qw.q_per_channel_zero_points()
    return qw.q_scale(), qw.q_zero_point()


def _random_case(seed):
    "One random layer (linear or conv, per tensor or per channel, ReLU or not, bias or not, odd sizes, zero points at the range ends), its input and PyTorch's output."
    g, rnd = torch.Generator().manual_seed(seed), random.Random(seed)
    random.seed(seed)
    conv, per_channel, relu, has_bias = seed % 2 == 0, seed % 3 != 0, seed % 5 < 2, seed % 7 != 0
    x_scale, y_scale = rnd.uniform(1e-3, 0.1), rnd.uniform(0.01, 1.0)
    x_zp, y_zp = rnd.choice([0, 255, 128, 3, rnd.randint(0, 255)]), rnd.choice([0, 255, rnd.randint(0, 255)])
    hi = 128 if seed % 4 else 256  # 7-bit and full-range activation codes
    if conv:
        B, C, H, W, O, k = rnd.randint(1, 2), rnd.randint(1, 6), rnd.randint(3, 7), rnd.randint(3, 7), rnd.randint(1, 9), rnd.choice([1, 2, 3])
        stride, padding = rnd.choice([1, 2]), rnd.choice([0, 1])
        if k > min(H, W) + 2 * padding: k = 1
        qx = torch._make_per_tensor_quantized_tensor(torch.randint(0, hi, (B, C, H, W), generator=g).to(torch.uint8), x_scale, x_zp)
        qw, bias = _weight((O, C, k, k), per_channel, g), torch.randn(O, generator=g) if has_bias else None
        m = (nniq.ConvReLU2d if relu else nnq.Conv2d)(C, O, k, stride, padding, bias=has_bias)
        kw = dict(stride=stride, padding=padding)
    else:
        M, K, N = rnd.randint(1, 6), rnd.randint(1, 70), rnd.randint(1, 24)
        qx = torch._make_per_tensor_quantized_tensor(torch.randint(0, hi, (M, K), generator=g).to(torch.uint8), x_scale, x_zp)
        qw, bias = _weight((N, K), per_channel, g), torch.randn(N, generator=g) if has_bias else None
        m, kw = (nniq.LinearReLU if relu else nnq.Linear)(K, N, has_bias), {}
    m.set_weight_bias(qw, bias); m.scale, m.zero_point = y_scale, y_zp
    with quantized_engine('x86'): ref = m(qx).int_repr()
    w_scale, w_zp = _wparams(qw)
    args = (qx.int_repr(), x_scale, x_zp, qw.int_repr(), w_scale, w_zp, m.bias(), y_scale, y_zp)
    return conv, args, kw, relu, ref


@pytest.mark.parametrize('block', range(10), ids=lambda b: f'seeds{60 * b}-{60 * b + 59}')
def test_float_mode_equals_pytorch_on_random_layers(block):
    "600 random layers in all: every output code equals PyTorch's x86 kernel (on a CPU without VNNI, with its int16 pair saturation emulated)."
    for seed in range(60 * block, 60 * block + 60):
        conv, args, kw, relu, ref = _random_case(seed)
        if conv and VNNI: continue  # oneDNN's convolution: not fbgemm's arithmetic
        ours = (int_conv2d if conv else int_linear)(*args, **kw, relu=relu, saturate_int16=not VNNI)
        assert ours.dtype == torch.uint8 and ours.shape == ref.shape
        assert torch.equal(ours, ref), f'seed {seed}: {(ours != ref).sum().item()} of {ref.numel()} codes differ'


@pytest.mark.parametrize('channels,stride,x_zp', [(c, s, z) for c in (8, 16) for s in (1, 2) for z in (0, 200)], ids=str)
def test_float_mode_equals_pytorch_on_fbgemm_groupwise_shapes(channels, stride, x_zp):
    "C = O in {8, 16}, 3x3, padding 1: fbgemm takes its groupwise-convolution kernel for these; 8-bit codes, extreme weights."
    if VNNI: pytest.skip("oneDNN's convolution: not fbgemm's arithmetic")
    g = torch.Generator().manual_seed(channels * 10 + stride)
    qx = torch._make_per_tensor_quantized_tensor(torch.randint(0, 256, (2, channels, 9, 9), generator=g).to(torch.uint8), 0.02, x_zp)
    w = torch.where(torch.rand(channels, channels, 3, 3, generator=g) < 0.5, -1.0, 1.0) * torch.rand(channels, 1, 1, 1, generator=g)
    scales = w.abs().amax((1, 2, 3)).double() / 127
    qw = torch.quantize_per_channel(w, scales, torch.zeros(channels, dtype=torch.long), 0, torch.qint8)
    m = nnq.Conv2d(channels, channels, 3, stride, 1)
    m.set_weight_bias(qw, torch.randn(channels, generator=g)); m.scale, m.zero_point = 0.5, 10
    with quantized_engine('x86'): ref = m(qx).int_repr()
    ours = int_conv2d(qx.int_repr(), 0.02, x_zp, qw.int_repr(), scales, torch.zeros(channels, dtype=torch.long), m.bias(), 0.5, 10,
                      stride=stride, padding=1, saturate_int16=True)
    assert torch.equal(ours, ref), f'{(ours != ref).sum().item()} of {ref.numel()} codes differ'


def test_integer_mode_is_within_one_code_on_random_layers():
    "Fixed-point requantization: at most one code off PyTorch's, and rarely (7-bit codes so that saturation plays no part; M < 1 cases only)."
    differ = total = 0
    for seed in range(0, 400, 4 * 7 + 1):
        conv, args, kw, relu, ref = _random_case(seed)
        if conv and VNNI: continue
        (q, xs, xz, qw, ws, wz, b, ys, yz) = args
        if (torch.as_tensor(ws, dtype=torch.float64) * xs / ys >= 1).any(): continue
        ours = (int_conv2d if conv else int_linear)(*args, **kw, relu=relu, requant='integer', saturate_int16=not VNNI)
        d = (ours.int() - ref.int()).abs()
        assert d.max() <= 1, f'seed {seed}'
        differ, total = differ + (d > 0).sum().item(), total + d.numel()
    assert total > 1000 and differ / total < 0.05


@pytest.mark.parametrize('M', [0.5, 0.0123, 1 - 1e-10, 2**-20, 0.75, 0.5 - 1e-12], ids=str)
def test_quantize_multiplier_reconstructs_M(M):
    m0, shift = quantize_multiplier(M)
    assert 2**30 <= m0.item() < 2**31 and shift.item() >= 0
    assert abs(m0.item() * 2.0**(-31 - shift.item()) - M) <= 2.0**(-31 - shift.item())


def test_fixed_point_helpers_match_gemmlowp_by_hand():
    assert saturating_rounding_doubling_high_mul(torch.tensor([2**30, -3, 5, 0]), 2**30).tolist() == [2**29, -1, 3, 0]
    assert saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN).item() == INT32_MAX
    assert rounding_right_shift(torch.tensor([5, -5, 7, -7, 6, 0]), 1).tolist() == [3, -3, 4, -4, 3, 0]
    assert rounding_right_shift(torch.tensor([9]), 0).tolist() == [9]


def test_fixed_point_requant_equals_exact_rounding_on_many_values():
    "x·M rounded (ties away from zero) against the fixed-point pipeline, on random accumulators: equal except at near-ties."
    g = torch.Generator().manual_seed(0)
    acc, M = torch.randint(-2**24, 2**24, (20000,), generator=g), 0.000173
    m0, shift = quantize_multiplier(M)
    ours = rounding_right_shift(saturating_rounding_doubling_high_mul(acc, m0), shift)
    exact = acc.double() * M
    assert (ours - exact).abs().max() <= 1  # two roundings (high mul, shift): within one of the exact product
    assert ((ours - exact).abs() > 0.5 + 1e-9).float().mean() < 0.01  # and almost always the nearest integer


@pytest.fixture(scope='module')
def converted():
    torch.manual_seed(0)
    calib = calibration_batches(num_batches=2)
    ptq = PTQProcessor()
    return {'samplenet': ptq.static_quantization(SampleNet().eval(), calib), 'samplenet-bn': ptq.static_quantization(SampleNetBN().eval(), calib),
            'images': torch.cat([x for x, _ in calib])[:16]}


@pytest.mark.parametrize('arch', ['samplenet', 'samplenet-bn'])
def test_integer_model_equals_converted_model(converted, arch):
    model, x = converted[arch], converted['images']
    with torch.no_grad(): assert torch.equal(IntegerModel.from_quantized(model, saturate_int16=not VNNI)(x), model(x))


def test_parity_report_counts(converted):
    rows = parity_report(converted['samplenet'], converted['images'], saturate_int16=not VNNI)  # an untrained model's inputs pass 127: fc1 saturates here
    assert [r['layer'] for r in rows] == ['conv1', 'conv2', 'fc1', 'fc2']
    assert all(r['float_equal'] == r['outputs'] for r in rows), rows
    assert all(r['integer_max_diff'] <= 1 for r in rows), rows  # one layer, same input codes: at most one rounding apart


def test_pool_and_flatten():
    q = torch.randint(0, 256, (2, 3, 7, 6), dtype=torch.uint8)
    qt = torch._make_per_tensor_quantized_tensor(q, 0.1, 3)
    for kernel, stride, padding in [(2, None, 0), (3, 2, 1), (3, 1, 0)]:
        assert torch.equal(int_max_pool2d(q, kernel, stride, padding), torch.nn.functional.max_pool2d(qt, kernel, stride, padding).int_repr())
    assert int_flatten(q).shape == (2, 126)


Z8, W8 = torch.zeros(2, 4, dtype=torch.uint8), torch.zeros(3, 4, dtype=torch.int8)
BAD = [
    ('float-codes', lambda: int_linear(Z8.float(), 0.1, 0, W8, 0.1, 0, None, 0.1, 0), TypeError, 'q_x must be a tensor of integer codes'),
    ('weight-out-of-range', lambda: int_linear(Z8, 0.1, 0, W8.int() + 200, 0.1, 0, None, 0.1, 0), ValueError, 'q_w holds codes outside -128..127'),
    ('zero-scale', lambda: int_linear(Z8, 0.0, 0, W8, 0.1, 0, None, 0.1, 0), ValueError, 'x_scale must be finite and > 0'),
    ('negative-w-scale', lambda: int_linear(Z8, 0.1, 0, W8, torch.tensor([0.1, -0.1, 0.1], dtype=torch.float64), 0, None, 0.1, 0), ValueError, 'w_scale must be finite and > 0'),
    ('zero-point-range', lambda: int_linear(Z8, 0.1, 256, W8, 0.1, 0, None, 0.1, 0), ValueError, 'x_zero_point=256'),
    ('float-zero-point', lambda: int_linear(Z8, 0.1, 0.5, W8, 0.1, 0, None, 0.1, 0), TypeError, 'x_zero_point must be an int'),
    ('mismatched-K', lambda: int_linear(Z8, 0.1, 0, torch.zeros(3, 5, dtype=torch.int8), 0.1, 0, None, 0.1, 0), ValueError, 'need q_x'),
    ('per-channel-length', lambda: int_linear(Z8, 0.1, 0, W8, torch.ones(2, dtype=torch.float64), 0, None, 0.1, 0), ValueError, 'one per output channel'),
    ('zero-points-vs-scales', lambda: int_linear(Z8, 0.1, 0, W8, torch.ones(3, dtype=torch.float64), torch.zeros(2, dtype=torch.long), None, 0.1, 0), ValueError, 'as many of each'),
    ('bias-shape', lambda: int_linear(Z8, 0.1, 0, W8, 0.1, 0, torch.zeros(4), 0.1, 0), ValueError, 'bias has shape'),
    ('int-bias', lambda: int_linear(Z8, 0.1, 0, W8, 0.1, 0, torch.zeros(3, dtype=torch.int32), 0.1, 0), TypeError, 'bias must be a float tensor'),
    ('M>=1', lambda: int_linear(Z8, 0.1, 0, W8, 1.0, 0, None, 0.01, 0, requant='integer'), ValueError, 'M < 1'),
    ('M<=0', lambda: quantize_multiplier(-0.5), ValueError, 'M must be finite and > 0'),
    ('requant-mode', lambda: int_linear(Z8, 0.1, 0, W8, 0.1, 0, None, 0.1, 0, requant='fixed'), ValueError, "requant='fixed'"),
    ('conv-groups', lambda: int_conv2d(torch.zeros(1, 4, 3, 3, dtype=torch.uint8), 0.1, 0, torch.zeros(2, 2, 1, 1, dtype=torch.int8), 0.1, 0, None, 0.1, 0), ValueError, 'same C'),
    ('pool-float', lambda: int_max_pool2d(torch.zeros(1, 1, 2, 2), 2), TypeError, 'integer codes'),
    ('2d-w-scale', lambda: int_linear(Z8, 0.1, 0, W8, torch.ones(3, 1, dtype=torch.float64), 0, None, 0.1, 0), ValueError, 'w_scale has shape (3, 1)'),
    ('nan-bias', lambda: int_linear(Z8, 0.1, 0, W8, 0.1, 0, torch.tensor([0.0, float('nan'), 0.0]), 0.1, 0), ValueError, 'bias holds NaN or inf'),
    ('requantize-zero-scale', lambda: requantize(torch.zeros(1, 3, dtype=torch.long), None, 0.1, 0.1, 0.0, 0), ValueError, 'scale must be finite and > 0'),
    ('requantize-zero-point', lambda: requantize(torch.zeros(1, 3, dtype=torch.long), None, 0.1, 0.1, 0.1, 300), ValueError, 'zero_point=300'),
    ('requantize-float-acc', lambda: requantize(torch.zeros(1, 3), None, 0.1, 0.1, 0.1, 0), TypeError, 'acc must be a tensor of integer codes'),
    ('int-gemm-codes', lambda: int_gemm(Z8.int() + 300, 0, W8, torch.zeros(3, dtype=torch.long)), ValueError, 'q_x holds codes outside 0..255'),
    ('high-mul-float', lambda: saturating_rounding_doubling_high_mul(torch.tensor([5.5]), 2**30), TypeError, 'a must hold integers'),
    ('shift-float', lambda: rounding_right_shift(torch.tensor([5]), 1.5), TypeError, 'shift must hold integers'),
    ('high-mul-beyond-int32', lambda: saturating_rounding_doubling_high_mul(torch.tensor([2**40]), 2**30), ValueError, 'outside int32'),
    ('multiplier-string', lambda: quantize_multiplier('0.5'), TypeError, 'M must be a float'),
    ('quantize-nan', lambda: quantize_codes(torch.tensor([float('nan')]), 0.1, 0), ValueError, 'x holds NaN'),
    ('quantize-zero-scale', lambda: quantize_codes(torch.zeros(2), 0.0, 0), ValueError, 'scale must be finite and > 0'),
    ('pool-padding', lambda: int_max_pool2d(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 2, 2, padding=2), ValueError, 'at most half of kernel_size'),
    ('model-type', lambda: IntegerModel.from_quantized('model'), TypeError, 'torch.nn.Module'),
    ('float-model', lambda: IntegerModel.from_quantized(torch.nn.Sequential(torch.nn.Linear(2, 2))), ValueError, '0 (torch.nn.modules.linear.Linear)'),
]


@pytest.mark.parametrize('call,error,message', [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message.replace('(', r'\(').replace(')', r'\)').replace('.', r'\.').replace('?', r'\?')): call()


def test_unsupported_module_is_named(converted):
    dynamic = PTQProcessor().dynamic_quantization(SampleNet())
    with pytest.raises(ValueError, match=r'fc1 \(torch\.ao\.nn\.quantized\.dynamic'): IntegerModel.from_quantized(dynamic)


def test_saturation_needs_integer_arithmetic(converted):
    conv1 = converted['samplenet'].conv1
    with pytest.raises(ValueError, match="saturate_int16=True needs integer arithmetic"): IntLayer(conv1, 'fakequant', saturate_int16=True)
