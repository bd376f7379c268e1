"""quantnb.requant, quantnb.isa, quantnb.x86 and quantnb.integer against PyTorch's int8 kernels, per kernel library (fbgemm, oneDNN) and per instruction set:
random layers code for code, which library runs a layer, fixed-point helpers, IntegerModel, bad input (notebooks 05, 05a, 05b, 05c)."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.ao.nn.quantized as nnq
import torch.ao.quantization as tq

from quantnb.data import calibration_batches
from quantnb.measure import cpu_flags
from quantnb.integer import IntLayer, IntegerModel, QCodes, parity_report, quantize_codes
from quantnb.integer_proof import kernel_errors, library_parity
from quantnb.requant import (
    INT32_MAX,
    INT32_MIN,
    conv_accumulator,
    exact_dtype,
    fma_f32,
    int_flatten,
    int_gemm,
    int_max_pool2d,
    near_half_bias,
    quantize_multiplier,
    quantized_bias,
    requantize,
    rounding_right_shift,
    saturating_rounding_doubling_high_mul,
)
import quantnb.isa as isa
from quantnb.isa import fbgemm_isa, onednn_isa, packed_library, saturating_gemm, vpmaddubsw_matmul, x86_library
from quantnb.kernels import fbgemm_groupwise, onednn_conv_uses_amx, onednn_matmul_uses_amx, saturating_conv_accumulator
from quantnb.x86 import (
    KERNELS,
    default_kernel,
    int_conv2d,
    int_linear,
    onednn_requantize,
    onednn_weight_scales,
    saturates_int16,
)
from quantnb.models import SampleNet, SampleNetBN
from quantnb.ptq import PTQProcessor, quantized_engine

sys.path.insert(0, str(Path(__file__).parent))
from kernel_sweep import agrees_with_pytorch, model_check, random_layer, sweep  # noqa: E402

warnings.filterwarnings('ignore', category=DeprecationWarning)
warnings.filterwarnings('ignore', message='.*quantize.*deprecated', category=UserWarning)


def check_sweep(stats):
    """Every code equals PyTorch's, except oneDNN's convolutions on an AMX CPU, whose codes each equal one of
    oneDNN's two orders (at most one code off the default); at least 1,000 convolution outputs were compared."""
    for kind in ('conv', 'linear'):
        s = stats[kind]
        assert s['either'] == s['outputs'], (kind, s)
        if kind == 'linear' or 'onednn-amx' not in s['kernels']:
            assert s['equal'] == s['outputs'], (kind, s)
        assert s['max_diff'] <= 1, (kind, s)
    assert stats['conv']['outputs'] >= 1000
    if stats['refused']['one-channel']:
        assert stats['engine'] != 'fbgemm' and stats['onednn_isa'] == 'avx512_core', stats
    if stats['refused']['groupwise']:  # fbgemm's groupwise routine reads the CPU: refused only where it lacks VNNI
        assert 'avx512_vnni' not in cpu_flags(), stats


@pytest.mark.parametrize('engine', ['x86', 'fbgemm', 'onednn'])
@pytest.mark.parametrize('block', range(2), ids=lambda b: f'seeds{150 * b}-{150 * b + 149}')
def test_float_mode_equals_pytorch_on_random_layers(engine, block):
    "300 random layers per engine, packed under it: every output code equals PyTorch's, with this CPU's defaults."
    stats = sweep(engine, range(150 * block, 150 * block + 150))
    check_sweep(stats)
    expected = {'fbgemm': {'fbgemm'}, 'onednn': set(KERNELS) - {'fbgemm'}}.get(engine, set(KERNELS))
    assert set(stats['conv']['kernels'] + stats['linear']['kernels']) <= expected


ISA_CAPS = [
    ('fbgemm', 'FBGEMM_ENABLE_INSTRUCTIONS', 'AVX2'),
    ('fbgemm', 'FBGEMM_ENABLE_INSTRUCTIONS', 'AVX512'),
    ('onednn', 'ONEDNN_MAX_CPU_ISA', 'AVX2'),
    ('onednn', 'ONEDNN_MAX_CPU_ISA', 'AVX2_VNNI'),
    ('onednn', 'ONEDNN_MAX_CPU_ISA', 'AVX512_CORE'),
    ('onednn', 'ONEDNN_MAX_CPU_ISA', 'AVX512_CORE_VNNI'),
]


@pytest.mark.parametrize('engine,variable,cap', ISA_CAPS, ids=lambda v: str(v))
def test_float_mode_equals_pytorch_with_fewer_instructions(engine, variable, cap):
    """The same sweep in a fresh process whose library may use only `cap` (or less, on a CPU without it): the
    instruction sets of the other CPU classes, run on this one; saturation and requantization order follow."""
    env = {**os.environ, variable: cap}
    script = Path(__file__).parent / 'kernel_sweep.py'
    out = subprocess.run(
        [sys.executable, str(script), engine, '200'], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    stats = json.loads(out.stdout)
    check_sweep(stats)
    assert stats['models']['agree'], stats['models']
    if stats['onednn_isa' if engine == 'onednn' else 'fbgemm_isa'] in ('avx2', 'avx512', 'avx512_core'):
        assert stats['models']['exact_int32_differs'], 'the 8-bit nets never saturated: the check would not see it'
    assert stats['fbgemm_isa'] == fbgemm_isa(env=env) and stats['onednn_isa'] == onednn_isa(env=env)
    vnni_cpu = 'avx512_vnni' in cpu_flags()
    assert all(v is True or (v == 'refused' and not vnni_cpu) for v in stats['groupwise'].values()), stats['groupwise']


def _conv(engine, symmetric=True, groups=1):
    w = torch.randn(4, 4 // groups, 3, 3)
    if symmetric:
        qw = torch.quantize_per_channel(
            w, torch.full((4,), 0.01, dtype=torch.float64), torch.zeros(4, dtype=torch.long), 0, torch.qint8
        )
    else:
        qw = torch.quantize_per_tensor(w, 0.01, 3, torch.qint8)
    with quantized_engine(engine):
        m = nnq.Conv2d(4, 4, 3, groups=groups)
        m.set_weight_bias(qw, None)
    return m


@pytest.mark.parametrize('engine', ['x86', 'fbgemm', 'onednn'])
def test_packed_library_follows_pytorchs_rule(engine):
    "The library a layer's weights were packed for: PyTorch's rule for the engine at packing time, not the engine now."
    cases = [('conv', dict(symmetric=True)), ('conv', dict(symmetric=True, groups=2))]
    if engine != 'onednn':
        cases.append(('conv', dict(symmetric=False)))  # oneDNN refuses asymmetric weights
    for layer, kw in cases:
        m = _conv(engine, **kw)
        expected = x86_library(layer, **kw) if engine == 'x86' else engine
        with quantized_engine('fbgemm' if engine != 'fbgemm' else 'onednn'):
            assert packed_library(m) == expected, kw
    with quantized_engine(engine):
        linear = nnq.Linear(5, 3)
    assert packed_library(linear) == ('onednn' if engine == 'onednn' else 'fbgemm')


def test_int_layer_takes_the_default_kernel_and_saturation_of_this_cpu():
    for engine in ('fbgemm', 'onednn'):
        m = _conv(engine)
        layer = IntLayer(m)
        assert (layer.kernel, layer.saturate_int16) == (default_kernel(m), saturates_int16(default_kernel(m)))


@pytest.mark.parametrize(
    'library,isa,kernel,saturates',
    [
        ('fbgemm', 'avx2', 'fbgemm', True),
        ('fbgemm', 'avx512', 'fbgemm', True),
        ('fbgemm', 'avx512_vnni', 'fbgemm', False),
        ('onednn', 'avx2', 'onednn-combined', True),
        ('onednn', 'avx2_vnni', 'onednn', False),
        ('onednn', 'avx512_core', 'onednn', True),
        ('onednn', 'avx512_core_vnni', 'onednn', False),
        ('onednn', 'avx512_core_amx', 'onednn-amx', False),
    ],
)
def test_default_kernel_and_saturation_for_each_instruction_set(monkeypatch, library, isa, kernel, saturates):
    "What the oneDNN and fbgemm sources say each instruction set runs: its order, and int16 pairs without VNNI."
    import quantnb.x86 as x86

    monkeypatch.setattr(x86, 'fbgemm_isa' if library == 'fbgemm' else 'onednn_isa', lambda: isa)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # a oneDNN other than the one whose AMX rules quantnb follows warns
        assert x86.default_kernel(_conv(library)) == kernel
    assert x86.saturates_int16(kernel) == saturates


FLAGS = {'avx2': {'avx2'}, 'avx512': {'avx2', 'avx512f', 'avx512bw', 'avx512dq', 'avx512vl'}}
FLAGS['vnni'] = FLAGS['avx512'] | {'avx512_vnni'}
FLAGS['amx'] = FLAGS['vnni'] | {
    'amx_int8',
    'amx_tile',
    'amx_bf16',
    'avx512_fp16',
    'avx512_bf16',
    'avx_vnni',
}  # Sapphire Rapids
FLAGS['avx_vnni'] = FLAGS['avx2'] | {'avx_vnni'}


@pytest.mark.parametrize(
    'flags,env,fbgemm,onednn',
    [
        ('avx2', {}, 'avx2', 'avx2'),
        ('avx512', {}, 'avx512', 'avx512_core'),
        ('vnni', {}, 'avx512_vnni', 'avx512_core_vnni'),
        ('amx', {}, 'avx512_vnni', 'avx512_core_amx'),
        ('avx_vnni', {}, 'avx2', 'avx2_vnni'),
        (
            'amx',
            {'FBGEMM_ENABLE_INSTRUCTIONS': 'avx512', 'ONEDNN_MAX_CPU_ISA': 'AVX512_CORE_BF16'},
            'avx512',
            'avx512_core_vnni',
        ),
        ('amx', {'FBGEMM_ENABLE_INSTRUCTIONS': 'AVX2', 'ONEDNN_MAX_CPU_ISA': 'avx2_vnni'}, 'avx2', 'avx2_vnni'),
        ('avx2', {'FBGEMM_ENABLE_INSTRUCTIONS': 'AVX512_E1', 'ONEDNN_MAX_CPU_ISA': 'AVX512_CORE_AMX'}, 'avx2', 'avx2'),
        ('amx', {'DNNL_MAX_CPU_ISA': 'AVX512_CORE'}, 'avx512_vnni', 'avx512_core'),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else '-'.join(f'{k}={x}' for k, x in v.items()) or 'no-cap',
)
def test_instruction_set_detection(flags, env, fbgemm, onednn):
    "Four CPU classes and AMX, and environment caps that may only lower the choice (as both libraries do)."
    assert fbgemm_isa(FLAGS[flags], env) == fbgemm and onednn_isa(FLAGS[flags], env) == onednn


def test_x86_engine_rule():
    assert x86_library('conv', FLAGS['vnni'], 'Linux') == 'onednn'
    assert x86_library('conv', FLAGS['vnni'], 'Windows') == 'fbgemm'  # should_use_onednn_quant: Linux only
    assert x86_library('conv', FLAGS['avx_vnni'], 'Linux') == 'fbgemm'  # AVX-VNNI is not AVX-512 VNNI
    assert x86_library('conv', FLAGS['vnni'], 'Linux', symmetric=False) == 'fbgemm'
    assert x86_library('conv', FLAGS['vnni'], 'Linux', groups=101) == 'fbgemm'
    assert x86_library('linear', FLAGS['amx'], 'Linux') == 'fbgemm'


def test_onednn_weight_scales_round_trip():
    "A linear layer's scale makes the 1/(1/s) round trip in float32; a convolution's is float32(s)."
    s = torch.rand(10000, dtype=torch.float64) * 0.02 + 1e-5
    assert torch.equal(onednn_weight_scales(s, linear=False), s.float())
    one = torch.tensor(1.0)
    assert torch.equal(onednn_weight_scales(s, linear=True), one / (one / s.float()))
    assert (onednn_weight_scales(s, linear=True) != s.float()).any()  # the round trip moves some in the last bit


def test_requantization_orders_differ_only_near_half_codes():
    "fbgemm, oneDNN and oneDNN-combined on accumulators next to a half-code: one code apart at most, and they differ."
    g = torch.Generator().manual_seed(1)
    w_scale = torch.rand(4096, dtype=torch.float64, generator=g) * 0.01 + 1e-3
    acc = torch.randint(-30_000, 30_000, (1, 4096), generator=g)
    bias = near_half_bias(acc[0], 0.01, w_scale, 0.08, g)
    orders = ('fbgemm', 'onednn', 'onednn-combined')
    codes = {
        'fbgemm': requantize(acc, bias, 0.01, w_scale, 0.08, 128).long(),
        'onednn': onednn_requantize(acc, bias, 0.01, w_scale, 0.08, 128, linear=False).long(),
        'onednn-combined': onednn_requantize(acc, bias, 0.01, w_scale, 0.08, 128, combined=True, linear=False).long(),
    }
    assert 0 < codes['fbgemm'].min() and codes['fbgemm'].max() < 255  # no output clamped: every code compared
    for k in orders:
        assert (codes[k] - codes['fbgemm']).abs().max() <= 1
    assert (codes['fbgemm'] != codes['onednn']).any() and (codes['onednn'] != codes['onednn-combined']).any()


@pytest.mark.parametrize(
    'channels,stride,x_zp', [(c, s, z) for c in (8, 16) for s in (1, 2) for z in (0, 200)], ids=str
)
def test_float_mode_equals_pytorch_on_fbgemm_groupwise_shapes(channels, stride, x_zp):
    "C = O in {8, 16}, 3x3, padding 1, packed for fbgemm: its groupwise kernel; 8-bit codes, extreme weights."
    g = torch.Generator().manual_seed(channels * 10 + stride)
    qx = torch._make_per_tensor_quantized_tensor(
        torch.randint(0, 256, (2, channels, 9, 9), generator=g).to(torch.uint8), 0.02, x_zp
    )
    w = torch.where(torch.rand(channels, channels, 3, 3, generator=g) < 0.5, -1.0, 1.0) * torch.rand(
        channels, 1, 1, 1, generator=g
    )
    scales = w.abs().amax((1, 2, 3)).double() / 127
    qw = torch.quantize_per_channel(w, scales, torch.zeros(channels, dtype=torch.long), 0, torch.qint8)
    with quantized_engine('fbgemm'):
        m = nnq.Conv2d(channels, channels, 3, stride, 1)
        m.set_weight_bias(qw, torch.randn(channels, generator=g))
    m.scale, m.zero_point = 0.5, 10
    ref = m(qx).int_repr()
    twin = IntLayer(m)
    if twin.saturate_int16 and 'avx512_vnni' not in cpu_flags():  # the routine pairs products here, unreproduced
        with pytest.raises(ValueError, match='groupwise'):
            twin(QCodes(qx.int_repr(), 0.02, x_zp))
        return
    ours = twin(QCodes(qx.int_repr(), 0.02, x_zp)).codes
    assert torch.equal(ours, ref), f'{(ours != ref).sum().item()} of {ref.numel()} codes differ'


@pytest.mark.parametrize('engine', ['fbgemm', 'onednn'])
def test_integer_mode_is_within_one_code_on_random_layers(engine):
    "Fixed-point requantization: at most one code off PyTorch's, and rarely (7-bit codes: no saturation; M < 1)."
    differ = total = 0
    for seed in range(0, 400, 3):
        if seed % 4 == 0:
            continue  # full-range codes
        m, x = random_layer(seed, engine)
        w = m.weight()
        w_scale = w.q_per_channel_scales() if w.qscheme() == torch.per_channel_affine else torch.tensor(w.q_scale())
        if (w_scale * x.q_scale() / m.scale >= 1).any():
            continue
        ref = m(x).int_repr().int()
        d = (IntLayer(m, 'integer')(QCodes(x.int_repr(), x.q_scale(), x.q_zero_point())).codes.int() - ref).abs()
        assert d.max() <= 1, f'seed {seed}'
        differ, total = differ + (d > 0).sum().item(), total + d.numel()
    assert total > 1000 and differ / total < 0.05


@pytest.mark.parametrize('M', [0.5, 0.0123, 1 - 1e-10, 2**-20, 0.75, 0.5 - 1e-12], ids=str)
def test_quantize_multiplier_reconstructs_M(M):
    m0, shift = quantize_multiplier(M)
    assert 2**30 <= m0.item() < 2**31 and shift.item() >= 0
    assert abs(m0.item() * 2.0 ** (-31 - shift.item()) - M) <= 2.0 ** (-31 - shift.item())


def test_fixed_point_helpers_match_gemmlowp_by_hand():
    assert saturating_rounding_doubling_high_mul(torch.tensor([2**30, -3, 5, 0]), 2**30).tolist() == [2**29, -1, 3, 0]
    assert saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN).item() == INT32_MAX
    assert rounding_right_shift(torch.tensor([5, -5, 7, -7, 6, 0]), 1).tolist() == [3, -3, 4, -4, 3, 0]
    assert rounding_right_shift(torch.tensor([9]), 0).tolist() == [9]


def test_fixed_point_requant_equals_exact_rounding_on_many_values():
    "x·M rounded (ties away from zero) against the fixed-point pipeline, on random accumulators: equal but near ties."
    g = torch.Generator().manual_seed(0)
    acc, M = torch.randint(-(2**24), 2**24, (20000,), generator=g), 0.000173
    m0, shift = quantize_multiplier(M)
    ours = rounding_right_shift(saturating_rounding_doubling_high_mul(acc, m0), shift)
    exact = acc.double() * M
    assert (ours - exact).abs().max() <= 1  # two roundings (high mul, shift): within one of the exact product
    assert ((ours - exact).abs() > 0.5 + 1e-9).float().mean() < 0.01  # and almost always the nearest integer


@pytest.fixture(scope='module')
def converted():
    "SampleNet and SampleNetBN (untrained), converted under each engine: its layers packed for that engine's libraries."
    torch.manual_seed(0)
    calib = calibration_batches(num_batches=2)
    ptq, models = PTQProcessor(), {}
    for engine in ('x86', 'fbgemm', 'onednn'):
        with quantized_engine(engine):
            models[engine, 'samplenet'] = ptq.static_quantization(SampleNet().eval(), calib, backend=engine)
            models[engine, 'samplenet-bn'] = ptq.static_quantization(SampleNetBN().eval(), calib, backend=engine)
    return dict(models=models, images=torch.cat([x for x, _ in calib])[:16])


@pytest.mark.parametrize('engine', ['x86', 'fbgemm', 'onednn'])
@pytest.mark.parametrize('arch', ['samplenet', 'samplenet-bn'])
def test_integer_model_equals_converted_model(converted, engine, arch):
    assert agrees_with_pytorch(converted['models'][engine, arch], converted['images'])


@pytest.mark.parametrize('engine', ['x86', 'fbgemm', 'onednn'])
def test_integer_model_equals_converted_model_on_other_nets(engine):
    "Random TinyNets, 7- and 8-bit activations, calibrated on bright images so that 8-bit codes reach 255."
    check = model_check(engine)
    assert check['agree'], check


def test_parity_report_counts(converted):
    rows = parity_report(converted['models']['x86', 'samplenet'], converted['images'])
    assert [r['layer'] for r in rows] == ['conv1', 'conv2', 'fc1', 'fc2']
    assert [r['kernel'] for r in rows[2:]] == ['fbgemm', 'fbgemm']  # the x86 engine: Linear always on fbgemm
    for r in rows:
        if r['kernel'] == 'onednn-amx' and r['layer'].startswith('conv'):
            assert r['float_max_diff'] <= 1, r
        else:
            assert r['float_equal'] == r['outputs'], r
    assert all(r['integer_max_diff'] <= 1 for r in rows), (
        rows
    )  # one layer, same input codes: at most one rounding apart


def test_pool_and_flatten():
    q = torch.randint(0, 256, (2, 3, 7, 6), dtype=torch.uint8)
    qt = torch._make_per_tensor_quantized_tensor(q, 0.1, 3)
    for kernel, stride, padding in [(2, None, 0), (3, 2, 1), (3, 1, 0)]:
        assert torch.equal(
            int_max_pool2d(q, kernel, stride, padding),
            torch.nn.functional.max_pool2d(qt, kernel, stride, padding).int_repr(),
        )
    assert int_flatten(q).shape == (2, 126)


Z8, W8 = torch.zeros(2, 4, dtype=torch.uint8), torch.zeros(3, 4, dtype=torch.int8)
BAD = [
    (
        'float-codes',
        lambda: int_linear(Z8.float(), 0.1, 0, W8, 0.1, 0, None, 0.1, 0),
        TypeError,
        'q_x must be a tensor of integer codes',
    ),
    (
        'weight-out-of-range',
        lambda: int_linear(Z8, 0.1, 0, W8.int() + 200, 0.1, 0, None, 0.1, 0),
        ValueError,
        'q_w holds codes outside -128..127',
    ),
    (
        'zero-scale',
        lambda: int_linear(Z8, 0.0, 0, W8, 0.1, 0, None, 0.1, 0),
        ValueError,
        'x_scale must be finite and > 0',
    ),
    (
        'negative-w-scale',
        lambda: int_linear(Z8, 0.1, 0, W8, torch.tensor([0.1, -0.1, 0.1], dtype=torch.float64), 0, None, 0.1, 0),
        ValueError,
        'w_scale must be finite and > 0',
    ),
    ('zero-point-range', lambda: int_linear(Z8, 0.1, 256, W8, 0.1, 0, None, 0.1, 0), ValueError, 'x_zero_point=256'),
    (
        'float-zero-point',
        lambda: int_linear(Z8, 0.1, 0.5, W8, 0.1, 0, None, 0.1, 0),
        TypeError,
        'x_zero_point must be an int',
    ),
    (
        'mismatched-K',
        lambda: int_linear(Z8, 0.1, 0, torch.zeros(3, 5, dtype=torch.int8), 0.1, 0, None, 0.1, 0),
        ValueError,
        'need q_x',
    ),
    (
        'per-channel-length',
        lambda: int_linear(Z8, 0.1, 0, W8, torch.ones(2, dtype=torch.float64), 0, None, 0.1, 0),
        ValueError,
        'one per output channel',
    ),
    (
        'zero-points-vs-scales',
        lambda: int_linear(
            Z8, 0.1, 0, W8, torch.ones(3, dtype=torch.float64), torch.zeros(2, dtype=torch.long), None, 0.1, 0
        ),
        ValueError,
        'as many of each',
    ),
    ('bias-shape', lambda: int_linear(Z8, 0.1, 0, W8, 0.1, 0, torch.zeros(4), 0.1, 0), ValueError, 'bias has shape'),
    (
        'int-bias',
        lambda: int_linear(Z8, 0.1, 0, W8, 0.1, 0, torch.zeros(3, dtype=torch.int32), 0.1, 0),
        TypeError,
        'bias must be a float32 tensor',
    ),
    ('M>=1', lambda: int_linear(Z8, 0.1, 0, W8, 1.0, 0, None, 0.01, 0, requant='integer'), ValueError, 'M < 1'),
    ('M<=0', lambda: quantize_multiplier(-0.5), ValueError, 'M must be finite and > 0'),
    (
        'requant-mode',
        lambda: int_linear(Z8, 0.1, 0, W8, 0.1, 0, None, 0.1, 0, requant='fixed'),
        ValueError,
        "requant='fixed'",
    ),
    (
        'conv-groups',
        lambda: int_conv2d(
            torch.zeros(1, 4, 3, 3, dtype=torch.uint8),
            0.1,
            0,
            torch.zeros(2, 2, 1, 1, dtype=torch.int8),
            0.1,
            0,
            None,
            0.1,
            0,
        ),
        ValueError,
        'same C',
    ),
    ('pool-float', lambda: int_max_pool2d(torch.zeros(1, 1, 2, 2), 2), TypeError, 'integer codes'),
    (
        '2d-w-scale',
        lambda: int_linear(Z8, 0.1, 0, W8, torch.ones(3, 1, dtype=torch.float64), 0, None, 0.1, 0),
        ValueError,
        'w_scale has shape (3, 1)',
    ),
    (
        'nan-bias',
        lambda: int_linear(Z8, 0.1, 0, W8, 0.1, 0, torch.tensor([0.0, float('nan'), 0.0]), 0.1, 0),
        ValueError,
        'bias holds NaN or inf',
    ),
    (
        'requantize-zero-scale',
        lambda: requantize(torch.zeros(1, 3, dtype=torch.long), None, 0.1, 0.1, 0.0, 0),
        ValueError,
        'scale must be finite and > 0',
    ),
    (
        'requantize-zero-point',
        lambda: requantize(torch.zeros(1, 3, dtype=torch.long), None, 0.1, 0.1, 0.1, 300),
        ValueError,
        'zero_point=300',
    ),
    (
        'requantize-float-acc',
        lambda: requantize(torch.zeros(1, 3), None, 0.1, 0.1, 0.1, 0),
        TypeError,
        'acc must be an integer tensor',
    ),
    (
        'int-gemm-codes',
        lambda: int_gemm(Z8.int() + 300, 0, W8, torch.zeros(3, dtype=torch.long)),
        ValueError,
        'q_x holds codes outside 0..255',
    ),
    (
        'high-mul-float',
        lambda: saturating_rounding_doubling_high_mul(torch.tensor([5.5]), 2**30),
        TypeError,
        'a must hold integers',
    ),
    ('shift-float', lambda: rounding_right_shift(torch.tensor([5]), 1.5), TypeError, 'shift must be an int or an integer tensor'),
    (
        'high-mul-beyond-int32',
        lambda: saturating_rounding_doubling_high_mul(torch.tensor([2**40]), 2**30),
        ValueError,
        'outside int32',
    ),
    ('multiplier-string', lambda: quantize_multiplier('0.5'), TypeError, 'M must be a float'),
    ('quantize-nan', lambda: quantize_codes(torch.tensor([float('nan')]), 0.1, 0), ValueError, 'x holds NaN'),
    ('quantize-zero-scale', lambda: quantize_codes(torch.zeros(2), 0.0, 0), ValueError, 'scale must be finite and > 0'),
    (
        'pool-padding',
        lambda: int_max_pool2d(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 2, 2, padding=2),
        ValueError,
        'at most half of kernel_size',
    ),
    ('model-type', lambda: IntegerModel.from_quantized('model'), TypeError, 'torch.nn.Module'),
    (
        'float-model',
        lambda: IntegerModel.from_quantized(torch.nn.Sequential(torch.nn.Linear(2, 2))),
        ValueError,
        '0 (torch.nn.modules.linear.Linear)',
    ),
]


@pytest.mark.parametrize('call,error,message', [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, error, message):
    with pytest.raises(
        error, match=message.replace('(', r'\(').replace(')', r'\)').replace('.', r'\.').replace('?', r'\?')
    ):
        call()


def test_unsupported_module_is_named(converted):
    dynamic = PTQProcessor().dynamic_quantization(SampleNet())
    with pytest.raises(ValueError, match=r'fc1 \(torch\.ao\.nn\.quantized\.dynamic'):
        IntegerModel.from_quantized(dynamic)


def test_saturation_needs_integer_arithmetic(converted):
    conv1 = converted['models']['x86', 'samplenet'].conv1
    with pytest.raises(ValueError, match="saturate_int16=True needs integer arithmetic"):
        IntLayer(conv1, 'fakequant', saturate_int16=True)


def test_unreproduced_onednn_layout_sums_exactly_below_128_and_refuses_above(monkeypatch):
    "oneDNN's AVX-512 kernel without VNNI, one input channel: exact while no pair can saturate, else an error."
    monkeypatch.setattr(
        isa, '_this_process', lambda library: dict(fbgemm='avx512', onednn='avx512_core')[library]
    )  # Skylake-SP
    w = torch.quantize_per_channel(
        torch.randn(4, 1, 3, 3),
        torch.full((4,), 0.01, dtype=torch.float64),
        torch.zeros(4, dtype=torch.long),
        0,
        torch.qint8,
    )
    with quantized_engine('onednn'):
        m = nnq.Conv2d(1, 4, 3)
        m.set_weight_bias(w, None)
    m.scale, m.zero_point = 0.05, 10
    twin = IntLayer(m)
    assert twin.saturate_int16  # oneDNN without VNNI saturates
    small = torch.randint(0, 128, (2, 1, 7, 7), dtype=torch.uint8)
    exact = IntLayer(m, saturate_int16=False)(QCodes(small, 0.02, 3)).codes
    assert torch.equal(twin(QCodes(small, 0.02, 3)).codes, exact)
    with pytest.raises(ValueError, match='does not reproduce'):
        twin(QCodes(small.clone().fill_(200), 0.02, 3))


def _nearest_float32(value):
    "The float32 nearest to a Fraction, ties to even: the exact reference for one rounding."
    from fractions import Fraction

    f = torch.tensor(float(value), dtype=torch.float32)  # within one float32 step of the answer
    candidates = [torch.nextafter(f, torch.tensor(-float('inf'))), f, torch.nextafter(f, torch.tensor(float('inf')))]

    def distance(c):
        return abs(Fraction(c.item()) - value)

    best = min(distance(c) for c in candidates)
    ties = [c for c in candidates if distance(c) == best]
    return min(ties, key=lambda c: c.view(torch.int32).item() % 2)  # even mantissa on a tie


def test_fma_rounds_once():
    "fbgemm's fused bias step: float32(a·b + c) with one rounding, against exact rational arithmetic, ties included."
    from fractions import Fraction

    g = torch.Generator().manual_seed(0)
    a = (torch.randn(3000, generator=g) * 10).float()
    b = torch.rand(3000, generator=g).float() * 1e3
    c = torch.randint(-(2**26), 2**26, (3000,), generator=g).float()
    ties_a, ties_b = torch.tensor([1.0, 3.0]), torch.tensor([2.0**-25, 2.0**-24])  # c + a·b exactly halfway
    a, b, c = torch.cat([a, ties_a]), torch.cat([b, ties_b]), torch.cat([c, torch.tensor([1.0, 1.0])])
    ours = fma_f32(a, b, c)
    exact = [_nearest_float32(Fraction(x.item()) * Fraction(y.item()) + Fraction(z.item())) for x, y, z in zip(a, b, c)]
    assert torch.equal(ours, torch.stack(exact))


def test_qnnpack_weights_are_not_taken_for_fbgemm():
    if 'qnnpack' not in torch.backends.quantized.supported_engines:
        pytest.skip('no QNNPACK in this build')
    with quantized_engine('qnnpack'):
        linear = nnq.Linear(5, 3)
        conv = nnq.Conv2d(2, 3, 3)
    for m in (linear, conv):
        with pytest.raises(ValueError, match='cannot tell which library'):
            packed_library(m)


def test_arguments_are_checked(converted):
    model, images = converted['models']['x86', 'samplenet'], converted['images']
    z8, w8 = torch.zeros(2, 4, dtype=torch.uint8), torch.zeros(3, 4, dtype=torch.int8)
    cases = [
        (
            lambda: requantize(torch.zeros(1, 3, dtype=torch.long), None, 0.1, 0.1, 0.1, 0, requant='fixed'),
            ValueError,
            "choose 'float'",
        ),
        (lambda: requantize(torch.full((1, 3), 2**40), None, 0.1, 0.1, 0.1, 0), ValueError, 'beyond int32'),
        (lambda: int_linear(z8, 0.1, 0, w8, 0.1, 0, None, 0.1, 0, relu='no'), TypeError, 'relu must be True or False'),
        (lambda: int_linear(z8, 0.1, 0, w8, 0.1, 0, None, 0.1, 0, kernel='mkl'), ValueError, "kernel='mkl'"),
        (lambda: int_linear(z8, 0.1, 0, w8, 0.1, 3, None, 0.1, 0, kernel='onednn'), ValueError, 'symmetric weights'),
        (
            lambda: int_conv2d(
                torch.zeros(1, 1, 4, 4, dtype=torch.uint8),
                0.1,
                0,
                torch.zeros(2, 1, 3, 3, dtype=torch.int8),
                0.1,
                0,
                None,
                0.1,
                0,
                padding=-1,
                saturate_int16=True,
            ),
            ValueError,
            'padding',
        ),
        (lambda: onednn_weight_scales(-0.1, linear=True), ValueError, 'finite and > 0'),
        (lambda: x86_library('conv', groups=0), ValueError, 'groups=0'),
        (lambda: x86_library('conv', symmetric='no'), TypeError, 'symmetric must be True or False'),
        (lambda: fbgemm_isa(['avx2'], {}), TypeError, 'set of CPU flag names'),
        (lambda: IntLayer(model.conv1, requant='bogus'), ValueError, "requant='bogus'"),
        (
            lambda: IntegerModel.from_quantized(model, saturate_int16='yes'),
            TypeError,
            'saturate_int16 must be True or False',
        ),
        (lambda: parity_report(model, (images, None)), TypeError, r'not \(images, labels\)'),
        (lambda: parity_report(model, images * float('nan')), ValueError, 'holds NaN'),
        (lambda: library_parity(model, []), ValueError, 'hold no images'),
        (lambda: packed_library(torch.nn.Conv2d(1, 1, 1)), TypeError, 'statically quantized'),
        (lambda: IntLayer(torch.nn.Linear(2, 2)), TypeError, 'statically quantized'),
        (lambda: requantize(torch.zeros(1, 3, dtype=torch.long), None, 0.1, 0.1, 0.1, 0, relu='no'), TypeError, 'relu'),
        (
            lambda: requantize(torch.zeros(1, 3, dtype=torch.long), None, torch.tensor([0.1, 0.2, 0.3]), 0.1, 0.1, 0),
            TypeError,
            'one scale per tensor',
        ),
        (
            lambda: int_linear(z8, 0.1, 0, w8, 0.1, 0, None, 0.1, 0, saturate_int16='no'),
            TypeError,
            'saturate_int16',
        ),
        (lambda: onednn_weight_scales(0.1, 'yes'), TypeError, 'linear must be True or False'),
        (lambda: x86_library('conv', ['avx512_vnni']), TypeError, 'set of CPU flag names'),
        (lambda: onednn_isa({'avx2'}, {'ONEDNN_MAX_CPU_ISA': 'AVX'}), ValueError, 'below AVX2'),
        (lambda: library_parity(model, images), TypeError, 'iterable of batches'),
        (lambda: kernel_errors(model, (images, None)), TypeError, r'not \(images, labels\)'),
        (
            lambda: onednn_requantize(torch.zeros(1, 3, dtype=torch.long), None, 0.1, 0.1, 0.1, 0),
            TypeError,
            'linear',
        ),
        (
            lambda: onednn_requantize(
                torch.zeros(1, 3, dtype=torch.long), None, 0.1, 0.1, 0.1, 0, combined='yes', linear=True
            ),
            TypeError,
            'combined must be True or False',
        ),
        (lambda: fbgemm_isa({'avx2', 'avx512_vnni'}, {}), ValueError, 'no CPU has that'),
        (lambda: onednn_conv_uses_amx(1, 1, 1, (3,), (4, 4), (2, 2), (0, 0)), ValueError, 'kernel_size'),
        (lambda: onednn_conv_uses_amx(1, 1, 1, (3, 3), (4, 0), (2, 2), (0, 0)), ValueError, r'input_hw\[1\]'),
        (lambda: onednn_conv_uses_amx(1, 1, 1, (3, 3), (4, 4), (2, 2), (0, -1)), ValueError, r'padding\[1\]'),
        (lambda: onednn_conv_uses_amx(1, 1, 1, (3, 3), (4, 4), (2, 2), (0, 0), l1_bytes=0), ValueError, 'l1_bytes'),
        (lambda: IntegerModel(model), TypeError, 'from_quantized'),
        (lambda: QCodes(torch.zeros(2, dtype=torch.uint8), 0.1, 2.9), TypeError, 'Python int'),
        (lambda: QCodes(torch.zeros(2), 0.1, 2), TypeError, 'integer codes'),
        (lambda: QCodes(torch.zeros(2, dtype=torch.uint8), -0.1, 2), ValueError, 'finite and > 0'),
        (
            lambda: requantize(torch.zeros(1, 3, dtype=torch.long), None, 0.5, 1.0, 1.0, torch.tensor([1, 2, 3])),
            TypeError,
            'one zero point per tensor',
        ),
        (lambda: requantize(torch.zeros(3, dtype=torch.long), None, 0.5, 1.0, 1.0, 0), ValueError, r'\(rows, N\)'),
        (lambda: library_parity(model, (images, torch.zeros(len(images)))), TypeError, 'iterable of batches'),
        (lambda: quantized_bias(torch.tensor([float('nan')]), 0.1, 0.1), ValueError, 'NaN or inf'),
        (lambda: quantized_bias(torch.tensor([1.0]), 0.0, 0.1), ValueError, 'x_scale must be finite and > 0'),
        (lambda: near_half_bias(torch.zeros(2, 3), 0.1, 0.1, 0.1, torch.Generator()), ValueError, 'one row'),
        (
            lambda: int_conv2d(z8[None, None], 0.1, 0, torch.zeros(1, 1, 5, 5, dtype=torch.int8), 0.1, 0, None, 0.1, 0),
            ValueError,
            'no output position',
        ),
        (
            lambda: int_conv2d(
                z8[None, None],
                0.1,
                0,
                torch.zeros(1, 1, 1, 1, dtype=torch.int8),
                0.1,
                0,
                None,
                0.1,
                0,
                stride=torch.tensor(2),
            ),
            TypeError,
            'stride must be an int or two ints',
        ),
        (lambda: int_gemm(z8, 0, w8, torch.zeros(2, dtype=torch.long)), ValueError, 'w_zero_point has 2 values'),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


@pytest.mark.parametrize(
    'rows,k,n,amx',
    [
        (1, 300, 256, False),
        (2, 300, 256, True),
        (7, 220, 24, False),
        (4, 300, 64, False),
        (64, 300, 64, True),
        (64, 16, 64, False),
        (1, 256, 1024, False),
        (1, 257, 1024, True),
    ],
    ids=lambda v: str(v),
)
def test_onednn_matmul_amx_rule(rows, k, n, amx):
    "brgemm_matmul_utils.cpp's small shapes (kept off AMX), on shapes around each threshold."

    assert onednn_matmul_uses_amx(rows, k, n) == amx


@pytest.mark.parametrize('engine', ['fbgemm', 'onednn'])
def test_multipliers_above_one_follow_the_kernel(engine):
    "M >= 1 and huge biases: values beyond int32 and the saturating zero-point sum, as each library computes them."
    g = torch.Generator().manual_seed(0)
    q_x, q_w = (
        torch.randint(0, 256, (16, 300), generator=g).to(torch.uint8),
        torch.randint(-127, 128, (32, 300), generator=g).to(torch.int8),
    )
    for scale, zero_point in ((1e-5, 100), (1e-4, 250), (2e-3, 5)):
        with quantized_engine(engine):
            m = nnq.Linear(300, 32)
            m.set_weight_bias(torch._make_per_tensor_quantized_tensor(q_w, 0.1, 0), torch.randn(32, generator=g))
        m.scale, m.zero_point = scale, zero_point
        ref = m(torch._make_per_tensor_quantized_tensor(q_x, 1.0, 3)).int_repr()
        assert torch.equal(IntLayer(m)(QCodes(q_x, 1.0, 3)).codes, ref), (scale, zero_point)


def _near_half_conv(batch, channels, size, kernel_size, engine='onednn'):
    "A oneDNN-packed Conv2d whose first output of each channel lies next to a half-code, and its input codes."
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(batch * 100 + size)
    q = torch.randint(0, 128, (batch, channels, size, size), generator=g).to(torch.uint8)
    w_scale = torch.rand(256, dtype=torch.float64, generator=g) * 0.02 + 1e-4
    q_w = torch.randint(-127, 128, (256, channels, kernel_size, kernel_size), generator=g).to(torch.int8)
    acc = F.conv2d(q.double() - 3, q_w.double())[0, :, 0, 0]
    bias = near_half_bias(acc, 0.0123, w_scale, 0.0771, g)
    with quantized_engine(engine):
        m = nnq.Conv2d(channels, 256, kernel_size)
        m.set_weight_bias(
            torch._make_per_channel_quantized_tensor(q_w, w_scale, torch.zeros(256, dtype=torch.long), 0), bias
        )
    m.scale, m.zero_point = 0.0771, 17
    return m, q


@pytest.mark.skipif(onednn_isa() != 'avx512_core_amx', reason='oneDNN takes one order per instruction set without AMX')
@pytest.mark.parametrize(
    'batch,channels,size,kernel_size',
    [(1, 1, 28, 3), (64, 32, 13, 3), (4, 16, 3, 2), (1, 2, 3, 2)],
    ids=['samplenet-conv1', 'samplenet-conv2', 'small-4-positions', 'small-1-image'],
)
def test_amx_convolution_order_follows_the_small_shape_rule(batch, channels, size, kernel_size):
    "AMX (s_x·s_w first) for SampleNet's convolutions, the AVX-512 order for at most 4 output positions that fit L1."
    m, q = _near_half_conv(batch, channels, size, kernel_size)
    ref = m(torch._make_per_tensor_quantized_tensor(q, 0.0123, 3)).int_repr()
    assert torch.equal(IntLayer(m)(QCodes(q, 0.0123, 3)).codes, ref)


def test_onednn_conv_amx_rules():
    "<= 4 output positions that fit L1 (source), and 3x3, 32-output 640x640 with <= 12 inputs (fitted), stay off AMX."
    assert not onednn_conv_uses_amx(4, 16, 256, (2, 2), (3, 3), (2, 2), (0, 0))
    assert onednn_conv_uses_amx(64, 32, 64, (3, 3), (13, 13), (11, 11), (0, 0))
    for channels in (3, 8, 12):
        assert not onednn_conv_uses_amx(1, channels, 32, (3, 3), (640, 640), (640, 640), (1, 1))
    for channels in (13, 16):
        assert onednn_conv_uses_amx(1, channels, 32, (3, 3), (640, 640), (640, 640), (1, 1))
    assert onednn_conv_uses_amx(1, 3, 32, (3, 3), (608, 608), (608, 608), (1, 1))
    assert onednn_conv_uses_amx(1, 600, 16, (1, 1), (2, 2), (2, 2), (0, 0))  # more than 512 input channels


@pytest.mark.parametrize('engine', ['fbgemm', 'onednn'])
@pytest.mark.parametrize('zero_point', [100, 200])
def test_outputs_near_int32_saturate_like_the_kernel(engine, zero_point):
    "round(y·M) just below 2^31 plus the zero point: fbgemm saturates in int16 (no wrap), oneDNN in float."
    with quantized_engine(engine):
        m = nnq.Linear(4, 8)
        m.set_weight_bias(
            torch._make_per_tensor_quantized_tensor(torch.zeros(8, 4, dtype=torch.int8), 1.0, 0),
            torch.full((8,), 2147483520.0),
        )
    m.scale, m.zero_point = 1.0, zero_point
    q = torch.zeros(2, 4, dtype=torch.uint8)
    ref = m(torch._make_per_tensor_quantized_tensor(q, 1.0, 0)).int_repr()
    assert torch.equal(IntLayer(m)(QCodes(q, 1.0, 0)).codes, ref)


def test_amx_needs_what_onednn_requires():
    "oneDNN's avx512_core_amx also needs AMX-BF16, AVX512-FP16, AVX512-BF16 and AVX-VNNI (cpu_isa_traits.hpp)."
    assert onednn_isa(FLAGS['vnni'] | {'amx_int8', 'amx_tile'}, {}) == 'avx512_core_vnni'
    assert onednn_isa(FLAGS['amx'], {}) == 'avx512_core_amx'

    with pytest.raises(ValueError, match='rows=0'):
        onednn_matmul_uses_amx(0, 300, 256)
    with pytest.raises(ValueError, match='batch=-1'):
        onednn_conv_uses_amx(-1, 1, 1, (3, 3), (5, 5), (3, 3), (0, 0))
    assert onednn_conv_uses_amx(2, 64, 64, (1, 1), (2, 2), (2, 2), (0, 0), l1_bytes=4096)  # 8192 > 4096·7/8/2
    assert not onednn_conv_uses_amx(2, 64, 64, (1, 1), (2, 2), (2, 2), (0, 0), l1_bytes=48 * 1024)


def test_huge_onednn_outputs_saturate():
    "A bias far beyond int64 output steps: oneDNN saturates in float (255), the twin too."
    with quantized_engine('onednn'):
        m = nnq.Linear(4, 2)
        m.set_weight_bias(
            torch._make_per_tensor_quantized_tensor(torch.zeros(2, 4, dtype=torch.int8), 1.0, 0),
            torch.tensor([1e20, 3e38]),
        )
    m.scale, m.zero_point = 1.0, 0
    q = torch.zeros(1, 4, dtype=torch.uint8)
    ref = m(torch._make_per_tensor_quantized_tensor(q, 1.0, 0)).int_repr()
    assert torch.equal(IntLayer(m)(QCodes(q, 1.0, 0)).codes, ref) and ref.tolist() == [[255, 255]]


@pytest.mark.parametrize('n', [1, 7, 8, 16, 33, 4096])
@pytest.mark.parametrize('zero_point', [0, 10, 127, 128, 200, 255])
def test_quantize_codes_equals_pytorch_on_huge_values(n, zero_point):
    "Every loop length (vectorized body and scalar tail), zero points on both sides of PyTorch's int32 overflow."
    values = (2.0**31 - 1024, 2.0**31 - 256, 2.0**31 - 128, 2.0**31, 3e9, float('inf'), -3e9, -float('inf'), 2.5)
    for value in values:
        x = torch.full((n,), value)
        x[::3] = 1.5
        ours = quantize_codes(x, 1.0, zero_point).codes
        assert torch.equal(ours, torch.quantize_per_tensor(x, 1.0, zero_point, torch.quint8).int_repr()), value


def test_torch_functions_on_codes_are_named():
    "A forward that calls F.relu on what flows between layers fails with a message naming it, not deep in PyTorch."

    class FunctionalReLU(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.quant, self.fc, self.dequant = tq.QuantStub(), torch.nn.Linear(4, 3), tq.DeQuantStub()

        def forward(self, x):
            return self.dequant(self.fc(torch.nn.functional.relu(self.quant(x))))

    model = PTQProcessor().static_quantization(FunctionalReLU().eval(), [(torch.randn(8, 4), None)])
    twin = IntegerModel.from_quantized(model)
    with pytest.raises(TypeError, match=r'relu\(\) was called on QCodes'):
        twin(torch.randn(2, 4))


def test_empty_batches_give_empty_outputs(converted):
    model = converted['models']['x86', 'samplenet']
    empty = torch.zeros(0, 1, 28, 28)
    with torch.no_grad():
        assert IntegerModel.from_quantized(model)(empty).shape == model(empty).shape == (0, 10)


def test_codes_of_any_integer_dtype_are_taken():
    "Range checks compare Python ints: an int8 tensor of small codes is not refused by a wrapped bound."
    q = torch.arange(16, dtype=torch.int8).reshape(1, 1, 4, 4)
    assert int_max_pool2d(q, 2).tolist() == [[[[5, 7], [13, 15]]]]
    assert vpmaddubsw_matmul(torch.full((1, 2), 100, dtype=torch.int8), torch.ones(1, 2, dtype=torch.int8))[0] == 200


def test_reduced_precision_float32_keeps_the_accumulator_exact():
    "With bfloat16/TF32 allowed for float32 matmuls, the exact accumulators switch to float64 and stay exact."
    g = torch.Generator().manual_seed(0)
    q_x = torch.randint(0, 256, (16, 200), generator=g).to(torch.uint8)
    q_w = torch.randint(-128, 128, (8, 200), generator=g).to(torch.int8)
    exact = (q_x.long() - 3) @ q_w.long().T
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision('medium')
        assert exact_dtype(1000) == torch.float64
        assert torch.equal(int_gemm(q_x, 3, q_w, torch.zeros(1, dtype=torch.long)), exact)
    finally:
        torch.set_float32_matmul_precision(before)
    assert exact_dtype(1000) == torch.float32


def _near_half_linear(rows, k, n, seed=0):
    "A oneDNN-packed Linear whose first row of outputs lies next to half-codes, and its input."
    g = torch.Generator().manual_seed(seed)
    q_x = torch.randint(0, 128, (rows, k), generator=g).to(torch.uint8)
    q_w = torch.randint(-127, 128, (n, k), generator=g).to(torch.int8)
    w_scale = torch.rand(n, dtype=torch.float64, generator=g) * 0.01 + 1e-3
    bias = near_half_bias((q_x[0].double() - 9) @ q_w.double().T, 0.02, w_scale, 0.05, g, spread=60)
    with quantized_engine('onednn'):
        layer = nnq.Linear(k, n)
        layer.set_weight_bias(
            torch._make_per_channel_quantized_tensor(q_w, w_scale, torch.zeros(n, dtype=torch.long), 0), bias
        )
    layer.scale, layer.zero_point = 0.05, 100
    return layer, torch._make_per_tensor_quantized_tensor(q_x, 0.02, 9)


@pytest.mark.skipif(onednn_isa() != 'avx512_core_amx', reason='the AMX dispatch exists only on CPUs with AMX')
@pytest.mark.parametrize(
    'rows,k,n,amx',
    [
        (1, 256, 256, False),
        (1, 255, 256, False),
        (1, 300, 257, True),
        (2, 300, 256, True),
        (64, 16, 256, False),
        (64, 17, 256, True),
    ],
    ids=str,
)
def test_amx_matmul_thresholds_against_pytorch(rows, k, n, amx):
    "Each side of oneDNN's small-shape thresholds: the predicted order gives PyTorch's codes, and the other does not."
    assert onednn_matmul_uses_amx(rows, k, n) == amx
    layer, x = _near_half_linear(rows, k, n)
    reference = layer(x).int_repr()[0]
    codes = QCodes(x.int_repr(), x.q_scale(), x.q_zero_point())
    predicted = IntLayer(layer)(codes).codes[0]
    other = IntLayer(layer, kernel='onednn' if amx else 'onednn-combined')(codes).codes[0]
    assert torch.equal(predicted, reference)
    assert not torch.equal(other, reference), 'the two orders agree here: the shape cannot tell them apart'


@pytest.mark.parametrize('engine', ['fbgemm', 'onednn'])
@pytest.mark.parametrize('dilation,padding', [(2, 0), (2, 2), ((1, 3), (0, 1))], ids=str)
def test_dilated_convolutions_equal_pytorch(engine, dilation, padding):
    g = torch.Generator().manual_seed(0)
    q_x = torch.randint(0, 128, (2, 3, 11, 12), generator=g).to(torch.uint8)
    w_scale = torch.rand(5, dtype=torch.float64, generator=g) * 0.01 + 1e-3
    q_w = torch.randint(-127, 128, (5, 3, 3, 3), generator=g).to(torch.int8)
    with quantized_engine(engine):
        m = nnq.Conv2d(3, 5, 3, padding=padding, dilation=dilation)
        weight = torch._make_per_channel_quantized_tensor(q_w, w_scale, torch.zeros(5, dtype=torch.long), 0)
        m.set_weight_bias(weight, torch.randn(5, generator=g))
    m.scale, m.zero_point = 0.2, 60
    reference = m(torch._make_per_tensor_quantized_tensor(q_x, 0.02, 9)).int_repr()
    assert torch.equal(IntLayer(m)(QCodes(q_x, 0.02, 9)).codes, reference)


def test_integer_mode_refuses_a_bias_beyond_int32():
    "Zero weights get a tiny scale; that bias does not fit int32 at s_x·s_w: an error, not a clamped code."
    model = torch.nn.Sequential(tq.QuantStub(), torch.nn.Linear(4, 3), tq.DeQuantStub()).eval()
    with torch.no_grad():
        model[1].weight[0] = 0
        model[1].bias[0] = 20.0
    converted = PTQProcessor().static_quantization(model, [(torch.randn(16, 4), None)])
    float_twin = IntegerModel.from_quantized(converted)
    x = torch.randn(2, 4)
    with torch.no_grad():
        assert torch.equal(float_twin(x), converted(x))
        with pytest.raises(ValueError, match='steps of s_x·s_w, beyond int32'):
            IntegerModel.from_quantized(converted, requant='integer')(x)


def test_more_misuse_is_named():
    "A prepared (not converted) model, a tensor method called on codes, a (images, labels) pair, int sizes."
    model = torch.nn.Sequential(tq.QuantStub(), torch.nn.Linear(4, 3), tq.DeQuantStub()).eval()
    model.qconfig = tq.get_default_qconfig('x86')
    prepared = tq.prepare(model)
    with pytest.raises(TypeError, match='prepared, not converted'):
        IntegerModel.from_quantized(prepared)
    with pytest.raises(AttributeError, match="QCodes has no 'reshape'"):
        QCodes(torch.zeros(2, dtype=torch.uint8), 0.1, 3).reshape(2)
    with pytest.raises(TypeError, match=r'not \(images, labels\)'):
        quantize_codes((torch.zeros(2), torch.zeros(2)), 0.1, 3)
    assert fbgemm_groupwise(8, 8, 3, 1, 1, 1) and not fbgemm_groupwise(8, 8, 3, 1, 0, 1)
    with pytest.raises(ValueError, match='N > 0'):
        int_gemm(
            torch.zeros(2, 4, dtype=torch.uint8),
            0,
            torch.zeros(0, 4, dtype=torch.int8),
            torch.zeros(1, dtype=torch.long),
        )


def test_saturating_gemm_is_exact_on_7bit_codes_and_clips_the_worst_pair():
    "fbgemm without VNNI: int_gemm's accumulator where no pair can saturate; a clipped pair where one does."
    g = torch.Generator().manual_seed(3)
    q_x, q_w = torch.randint(0, 128, (6, 31), generator=g), torch.randint(-128, 128, (5, 31), generator=g)
    w_zp = torch.randint(-3, 4, (5,), generator=g)
    assert torch.equal(saturating_gemm(q_x, 9, q_w, w_zp)[0], int_gemm(q_x, 9, q_w, w_zp))
    worst_x, worst_w = torch.full((1, 2), 255), torch.full((1, 2), 127)
    clipped, saturated = saturating_gemm(worst_x, 0, worst_w, 0)
    assert (int_gemm(worst_x, 0, worst_w, 0).item(), clipped.item(), saturated) == (64770, 32767, 1)


def test_relu6_is_refused_not_run_as_relu():
    "Conversion turns nn.ReLU6 into quantized ReLU6, a subclass of nn.ReLU: run as a ReLU it would drop the clamp at 6."

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
            self.fc, self.act = torch.nn.Linear(4, 3), torch.nn.ReLU6()

        def forward(self, x):
            return self.dequant(self.act(self.fc(self.quant(x))))

    converted = PTQProcessor().static_quantization(Net().eval(), [(torch.randn(16, 4) * 10, None)])
    with pytest.raises(ValueError, match='ReLU6'):
        IntegerModel.from_quantized(converted)


def test_onednn_avx2_matmul_blocks_are_refused_above_127(monkeypatch):
    "oneDNN's AVX2 matmul pairs K > 256 (not a multiple of 4) in blocks quantnb does not reproduce: exact or refused."
    monkeypatch.setattr(isa, '_this_process', lambda library: dict(fbgemm='avx2', onednn='avx2')[library])
    g = torch.Generator().manual_seed(0)
    q_w = torch.randint(-128, 128, (5, 301), generator=g)
    args = (0.02, 3, q_w, 0.01, 0, None, 0.5, 10)
    low = torch.randint(0, 128, (2, 301), generator=g)
    exact = int_linear(low, *args, saturate_int16=False, kernel='onednn-combined')
    assert torch.equal(int_linear(low, *args, saturate_int16=True, kernel='onednn-combined'), exact)
    with pytest.raises(ValueError, match='K=301'):
        int_linear(low + 128, *args, saturate_int16=True, kernel='onednn-combined')


@pytest.mark.parametrize('host', ['avx2', 'avx2_vnni', 'avx512_core_vnni', 'avx512_core_amx'])
def test_one_channel_onednn_emulation_pairs_per_tap_unless_onednn_runs_avx512_core(monkeypatch, host):
    """Emulating a CPU without VNNI imitates oneDNN's AVX2 kernels (unless this oneDNN runs AVX-512 without VNNI):
    a one-channel conv pads each tap to four codes, so every product is alone in its pair and none saturates."""
    monkeypatch.setattr(isa, '_this_process', lambda library: {'fbgemm': 'avx2', 'onednn': host}[library])
    x_codes = torch.full((1, 1, 6, 6), 255)
    w_codes = torch.full((2, 1, 3, 3), -128)
    acc, saturated = saturating_conv_accumulator(x_codes, 0, w_codes, 0, library='onednn')
    assert saturated == 0
    assert torch.equal(acc, conv_accumulator(x_codes, 0, w_codes, 0))
    assert saturating_conv_accumulator(x_codes, 0, w_codes, 0, library='fbgemm')[1] > 0


@pytest.mark.parametrize('host', ['avx2', 'avx2_vnni', 'avx512_core_vnni', 'avx512_core_amx'])
def test_long_onednn_matmul_emulation_refuses_above_127_unless_onednn_runs_avx512_core(monkeypatch, host):
    "Imitating oneDNN's AVX2 kernels, K > 256 with K % 4 != 0 is paired in blocks quantnb does not reproduce."
    monkeypatch.setattr(isa, '_this_process', lambda library: {'fbgemm': 'avx2', 'onednn': host}[library])
    g = torch.Generator().manual_seed(0)
    q_w = torch.randint(-128, 128, (5, 301), generator=g)
    args = (0.02, 3, q_w, 0.01, 0, None, 0.5, 10)
    high = torch.randint(128, 256, (2, 301), generator=g)
    with pytest.raises(ValueError, match='K=301'):
        int_linear(high, *args, saturate_int16=True, kernel='onednn-combined')  # the AVX2 kernels' order


def test_long_onednn_matmul_emulation_pairs_as_fbgemm_where_onednn_runs_avx512_core(monkeypatch):
    "Where this oneDNN runs AVX-512 without VNNI, the long reduction is emulated (fbgemm's pairing): sums saturate."
    monkeypatch.setattr(isa, '_this_process', lambda library: {'fbgemm': 'avx512', 'onednn': 'avx512_core'}[library])
    high = torch.full((2, 301), 255)
    q_w = torch.full((5, 301), -128)
    args = (0.02, 0, q_w, 0.001, 0, None, 50.0, 255)
    emulated = int_linear(high, *args, saturate_int16=True, kernel='onednn')
    exact = int_linear(high, *args, saturate_int16=False, kernel='onednn')
    acc, saturated = saturating_gemm(high, 0, q_w, torch.zeros(1, dtype=torch.long))
    assert saturated > 0 and not torch.equal(emulated, exact)
