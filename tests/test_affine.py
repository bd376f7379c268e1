"Differential tests of `quantnb.affine` against PyTorch's quantization kernels and observers, plus properties and bad input."
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver

from quantnb.affine import (QuantizationBasics, calc_qparams, compression_ratio, dequantize, fake_quantize, min_max,
                            qparams_from_range, qrange, qtype, quant_error, quantize)

warnings.filterwarnings('ignore', message='.*quantize.*deprecated', category=UserWarning)

N_RANDOM = 1000  # random tensors per (dtype, scheme) comparison
TORCH_QDTYPES = [torch.qint8, torch.quint8, torch.qint32]


def random_tensor(g):
    "A tensor of 1-4 dims from one of several distributions: normal, one-sided, heavy-tailed, outliers, sparse, tiny, huge."
    shape = tuple(int(d) for d in torch.randint(1, 9, (int(torch.randint(1, 5, (1,), generator=g)),), generator=g))
    base = torch.randn(shape, generator=g)
    kind = int(torch.randint(0, 7, (1,), generator=g))
    magnitude = 10 ** float(torch.empty(1).uniform_(-4, 4, generator=g))
    if kind == 1: base = base.abs()                                   # one-sided (ReLU outputs)
    if kind == 2: base = torch.sign(base) * base.abs() ** 4            # heavy tails
    if kind == 3: base = base * (1 + 50 * (torch.rand(shape, generator=g) < 0.02))  # rare outliers
    if kind == 4: base = base * (torch.rand(shape, generator=g) < 0.3)  # sparse, many exact zeros
    if kind == 5: base = -base.abs()                                   # all negative
    if kind == 6: base = torch.full(shape, float(base.flatten()[0]))   # constant
    return base * magnitude


def adversarial_tensor(scale, zero_point, qmin, qmax):
    "Values on exact ties, range ends, just beyond them, far beyond, zero and float32 extremes."
    k = torch.arange(qmin - zero_point - 3, qmax - zero_point + 4, dtype=torch.float32) if qmax - qmin < 70000 else \
        torch.tensor([qmin - zero_point - 1.0, -1.0, 0.0, 1.0, qmax - zero_point + 1.0])
    ties = (k + 0.5) * scale
    near = torch.cat([k * scale, torch.nextafter(ties, torch.tensor(np.inf)), torch.nextafter(ties, torch.tensor(-np.inf))])
    # Far beyond the range, but |x / scale| < 2**31: past that PyTorch converts round(x / scale) to int32 (INT_MIN
    # for large negatives) and adding a negative zero point wraps it to the top code. quantnb saturates instead
    # (test_huge_values_saturate).
    extremes = torch.tensor([0.0, -0.0, 1e-45, -1e-45, 1e6 * scale, -1e6 * scale])
    return torch.cat([ties, near, extremes])


def seeded(seed): return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize('dtype', TORCH_QDTYPES, ids=str)
@pytest.mark.parametrize('symmetric', [False, True], ids=['affine', 'symmetric'])
def test_calc_qparams_matches_minmax_observer(dtype, symmetric):
    g = seeded(0)
    qscheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
    checked = 0
    for _ in range(N_RANDOM):
        x = random_tensor(g)
        observer = MinMaxObserver(dtype=dtype, qscheme=qscheme)
        observer(x)
        scale_ref, zero_point_ref = observer.calculate_qparams()
        scale, zero_point = calc_qparams(x, dtype, symmetric)
        # PyTorch casts round(min_val / scale) to int32 before subtracting it from quant_min: that overflows
        # when the negative side holds more than half of an int32 range (see 00_affine); quantnb computes in int64.
        if dtype == torch.qint32 and not symmetric and torch.round(torch.clamp(x.min(), max=0) / scale) < -2**31: continue
        assert zero_point.item() == zero_point_ref.item(), x
        torch.testing.assert_close(scale, scale_ref.reshape(()), rtol=1e-6, atol=0)
        checked += 1
    assert checked > 0.8 * N_RANDOM


@pytest.mark.parametrize('dtype', [torch.qint8, torch.quint8], ids=str)
@pytest.mark.parametrize('symmetric', [False, True], ids=['affine', 'symmetric'])
def test_per_channel_qparams_match_observer(dtype, symmetric):
    g = seeded(1)
    qscheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
    for _ in range(N_RANDOM // 2):
        x = random_tensor(g)
        if x.ndim == 1: x = x[:, None]  # PyTorch's per-channel observer cannot flatten a 1-D tensor
        axis = int(torch.randint(0, x.ndim, (1,), generator=g))
        observer = PerChannelMinMaxObserver(ch_axis=axis, dtype=dtype, qscheme=qscheme)
        observer(x)
        scale_ref, zero_point_ref = observer.calculate_qparams()
        scale, zero_point = calc_qparams(x, dtype, symmetric, axis=axis)
        assert torch.equal(zero_point, zero_point_ref.to(torch.int64))
        torch.testing.assert_close(scale, scale_ref, rtol=1e-6, atol=0)


def _torch_codes(x, scale, zero_point, dtype, axis=None):
    if axis is None: return torch.quantize_per_tensor(x, scale.item(), int(zero_point), dtype).int_repr()
    return torch.quantize_per_channel(x, scale.double(), zero_point, axis, dtype).int_repr()


def _assert_codes_match(q, q_ref, dtype, zero_point):
    "Exact for 8-bit types. For qint32 PyTorch adds the zero point in float32 (see 00_affine): two roundings to float32."
    if dtype != torch.qint32: return torch.testing.assert_close(q, q_ref, rtol=0, atol=0)
    magnitude = zero_point.abs().double() + q_ref.double().abs() if zero_point.ndim == 0 else \
        q_ref.double().abs() + zero_point.abs().double().max()
    diff = (q.long() - q_ref.long()).abs()
    assert (diff <= (magnitude * 2**-23).ceil()).all(), diff.max()


@pytest.mark.parametrize('dtype', TORCH_QDTYPES, ids=str)
def test_quantize_matches_quantize_per_tensor(dtype):
    g, qt = seeded(2), qtype(dtype)
    for i in range(N_RANDOM):
        x = random_tensor(g)
        scale, zero_point = calc_qparams(x, dtype, symmetric=bool(i % 2))
        _assert_codes_match(quantize(x, scale, zero_point, dtype), _torch_codes(x, scale, zero_point, dtype), dtype, zero_point)
        x_adv = adversarial_tensor(scale, int(zero_point), qt.qmin, qt.qmax)
        _assert_codes_match(quantize(x_adv, scale, zero_point, dtype), _torch_codes(x_adv, scale, zero_point, dtype), dtype, zero_point)


def test_huge_values_saturate():
    x = torch.tensor([-3e38, -1e30, 1e30, 3e38])
    for dtype in ('int4', 'uint8', 'int16', 'int32'):
        qmin, qmax = qrange(dtype)
        assert quantize(x, 1e-3, 0 if qmin < 0 else 3, dtype).long().tolist() == [qmin, qmin, qmax, qmax]


def test_qint32_exact_for_moderate_codes():
    "With zero point 0 (how int32 holds biases) and codes below 2**24, PyTorch's float32 addition is exact: so are we."
    g = seeded(3)
    for _ in range(N_RANDOM):
        x = torch.randn(64, generator=g) * 100
        scale = torch.tensor(10 ** float(torch.empty(1).uniform_(-4, 0, generator=g)))
        q = quantize(x, scale, 0, 'int32')
        torch.testing.assert_close(q, _torch_codes(x, scale, torch.tensor(0), torch.qint32), rtol=0, atol=0)


@pytest.mark.parametrize('dtype', TORCH_QDTYPES, ids=str)
def test_quantize_matches_quantize_per_channel(dtype):
    g = seeded(4)
    for i in range(N_RANDOM // 2):
        x = random_tensor(g)
        axis = int(torch.randint(0, x.ndim, (1,), generator=g))
        scale, zero_point = calc_qparams(x, dtype, symmetric=bool(i % 2), axis=axis)
        _assert_codes_match(quantize(x, scale, zero_point, dtype, axis), _torch_codes(x, scale, zero_point, dtype, axis), dtype, zero_point)


@pytest.mark.parametrize('dtype', [torch.qint8, torch.quint8], ids=str)
def test_dequantize_matches_torch(dtype):
    g = seeded(5)
    for _ in range(N_RANDOM // 2):
        x = random_tensor(g)
        scale, zero_point = calc_qparams(x, dtype)
        x_q = torch.quantize_per_tensor(x, scale.item(), zero_point.item(), dtype)
        assert torch.equal(dequantize(x_q.int_repr(), scale, zero_point), x_q.dequantize())


BITS = ['int2', 'uint2', 'int4', 'uint4', 'int8', 'uint8', 'int16']


@pytest.mark.parametrize('dtype', BITS)
@pytest.mark.parametrize('symmetric', [False, True], ids=['affine', 'symmetric'])
def test_fake_quantize_matches_torch(dtype, symmetric):
    g, qt = seeded(6), qtype(dtype)
    for _ in range(N_RANDOM // 4):
        x = random_tensor(g)
        scale, zero_point = calc_qparams(x, dtype, symmetric)
        for xs in (x, adversarial_tensor(scale, int(zero_point), qt.qmin, qt.qmax)):
            ref = torch.fake_quantize_per_tensor_affine(xs, scale.item(), int(zero_point), qt.qmin, qt.qmax)
            torch.testing.assert_close(fake_quantize(xs, scale, zero_point, dtype), ref, rtol=0, atol=0)
        axis = int(torch.randint(0, x.ndim, (1,), generator=g))
        scale, zero_point = calc_qparams(x, dtype, symmetric, axis=axis)
        ref = torch.fake_quantize_per_channel_affine(x, scale, zero_point.int(), axis, qt.qmin, qt.qmax)
        torch.testing.assert_close(fake_quantize(x, scale, zero_point, dtype, axis), ref, rtol=0, atol=0)


@pytest.mark.parametrize('symmetric', [False, True], ids=['affine', 'symmetric'])
def test_per_group_equals_per_channel_on_reshaped_groups(symmetric):
    "Per-group along the last axis is per-channel on the tensor reshaped to one row per group."
    g = seeded(7)
    for _ in range(200):
        rows, groups, group_size = (int(v) for v in torch.randint(1, 9, (3,), generator=g))
        x = torch.randn(rows, groups * group_size, generator=g) * (1 + 10 * torch.rand(rows, 1, generator=g))
        scale, zero_point = calc_qparams(x, 'int4', symmetric, group_size=group_size)
        assert scale.shape == (rows, groups)
        scale_rows, zero_point_rows = calc_qparams(x.reshape(-1, group_size), 'int4', symmetric, axis=0)
        assert torch.equal(scale.flatten(), scale_rows) and torch.equal(zero_point.flatten(), zero_point_rows)
        expected = fake_quantize(x.reshape(-1, group_size), scale_rows, zero_point_rows, 'int4', axis=0).reshape(x.shape)
        assert torch.equal(fake_quantize(x, scale, zero_point, 'int4'), expected)


def test_per_group_on_a_middle_axis():
    x = torch.randn(3, 8, 5)
    scale, zero_point = calc_qparams(x, 'int8', axis=1, group_size=4)
    assert scale.shape == (3, 2, 5)
    x_fq = fake_quantize(x, scale, zero_point, 'int8', axis=1)
    first_group = x[:, :4, :]
    s0, z0 = calc_qparams(first_group.permute(0, 2, 1).reshape(-1, 4), 'int8', axis=0)
    assert torch.equal(scale[:, 0, :].flatten(), s0)
    assert torch.equal(x_fq[:, :4, :].permute(0, 2, 1).reshape(-1, 4), fake_quantize(first_group.permute(0, 2, 1).reshape(-1, 4), s0, z0, axis=0))


# ---- properties

finite_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, width=32)
float_lists = st.lists(finite_floats, min_size=1, max_size=64)
dtypes = st.sampled_from(BITS)


@settings(max_examples=300, deadline=None)
@given(values=float_lists, dtype=dtypes, symmetric=st.booleans())
def test_round_trip_error_at_most_half_a_step_inside_the_range(values, dtype, symmetric):
    x = torch.tensor(values)
    scale, zero_point = calc_qparams(x, dtype, symmetric)
    qt = qtype(dtype)
    lo, hi = scale * (qt.qmin - zero_point), scale * (qt.qmax - zero_point)
    inside = (x >= lo) & (x <= hi)
    err = (x - fake_quantize(x, scale, zero_point, dtype)).abs()
    # half a step, plus float32 rounding of x / scale and of the product s (q - z)
    assert (err[inside] <= scale / 2 * (1 + 1e-5) + 1e-6 * x.abs()[inside]).all()


@settings(max_examples=300, deadline=None)
@given(values=float_lists, dtype=dtypes, symmetric=st.booleans())
def test_fake_quantize_is_idempotent(values, dtype, symmetric):
    x = torch.tensor(values)
    scale, zero_point = calc_qparams(x, dtype, symmetric)
    once = fake_quantize(x, scale, zero_point, dtype)
    assert torch.equal(fake_quantize(once, scale, zero_point, dtype), once)


@settings(max_examples=300, deadline=None)
@given(values=float_lists, dtype=dtypes, symmetric=st.booleans())
def test_quantize_is_monotonic(values, dtype, symmetric):
    x = torch.tensor(sorted(values))
    scale, zero_point = calc_qparams(x, dtype, symmetric)
    q = quantize(x, scale, zero_point, dtype).long()
    assert (q[1:] >= q[:-1]).all()


@settings(max_examples=200, deadline=None)
@given(values=float_lists, dtype=dtypes)
def test_zero_is_exact_and_codes_in_range(values, dtype):
    x = torch.tensor(values + [0.0])
    scale, zero_point = calc_qparams(x, dtype)
    q = quantize(x, scale, zero_point, dtype)
    qmin, qmax = qrange(dtype)
    assert q.long().min() >= qmin and q.long().max() <= qmax
    assert fake_quantize(x, scale, zero_point, dtype)[-1] == 0


# ---- types, metrics, facade

@pytest.mark.parametrize('dtype,expected', [('int2', (-2, 1)), ('uint2', (0, 3)), ('int4', (-8, 7)), ('uint4', (0, 15)),
                                            ('int8', (-128, 127)), ('uint8', (0, 255)), ('int16', (-32768, 32767)),
                                            ('int32', (-2**31, 2**31 - 1)), (torch.qint8, (-128, 127)),
                                            (torch.quint8, (0, 255)), (torch.qint32, (-2**31, 2**31 - 1))], ids=str)
def test_qrange(dtype, expected):
    assert qrange(dtype) == expected


@pytest.mark.parametrize('dtype,storage', [('int2', torch.int8), ('uint4', torch.uint8), ('int8', torch.int8),
                                           ('uint8', torch.uint8), ('int16', torch.int16), ('int32', torch.int32)], ids=str)
def test_codes_use_the_smallest_storage(dtype, storage):
    x = torch.randn(10)
    assert quantize(x, *calc_qparams(x, dtype), dtype).dtype == storage


def test_quant_error_values():
    x, x_hat = torch.tensor([1.0, -2.0, 3.0, 0.0]), torch.tensor([1.0, -1.0, 3.0, 1.0])
    err = quant_error(x, x_hat)
    assert err['mse'] == pytest.approx(0.5) and err['mae'] == pytest.approx(0.5) and err['max_error'] == 1.0
    assert err['sqnr_db'] == pytest.approx(10 * np.log10(14 / 2))
    assert quant_error(x, x)['sqnr_db'] == float('inf')


def test_compression_ratio():
    x = torch.randn(1024, 256)
    assert compression_ratio(x, 'int8') == pytest.approx(1024 * 256 * 4 / (1024 * 256 + 8))
    assert compression_ratio(x, 'int4', torch.ones(1024)) == pytest.approx(1024 * 256 * 4 / (1024 * 128 + 8 * 1024))


def test_quantization_basics_facade_agrees_with_functions():
    rng = np.random.default_rng(0)
    data = rng.normal(size=500).astype(np.float32)
    qb = QuantizationBasics()
    for dtype in ('int4', 'uint4', 'int8', 'uint8', 'int16', 'int32'):
        scale, zero_point = qb.calculate_quantization_params(data, dtype)
        s_ref, z_ref = calc_qparams(torch.from_numpy(data), dtype)
        assert (scale, zero_point) == (s_ref.item(), z_ref.item())
        q = qb.quantize_tensor(data, scale, zero_point, dtype)
        np.testing.assert_array_equal(q, quantize(torch.from_numpy(data), s_ref, z_ref, dtype).numpy())
        np.testing.assert_array_equal(qb.dequantize_tensor(q, scale, zero_point),
                                      fake_quantize(torch.from_numpy(data), s_ref, z_ref, dtype).numpy())
    q, scale, zero_point = qb.quantize_with_calibration(data, [data[:10], data[10:13]], 'int8')
    assert (scale, zero_point) == qb.calculate_quantization_params(data, 'int8')  # weights: their own range
    assert qb.activation_qparams == qb.calculate_quantization_params(data[:13], 'int8')
    with pytest.raises(TypeError, match='weights must hold floats'):
        qb.calculate_quantization_params(np.arange(5))


# ---- bad input

X = torch.randn(4, 6)


@pytest.mark.parametrize('call,error,match', [
    (lambda: calc_qparams(torch.tensor([1.0, float('nan')])), ValueError, 'x contains NaN or Inf'),
    (lambda: calc_qparams(torch.tensor([1.0, float('inf')])), ValueError, 'x contains NaN or Inf'),
    (lambda: calc_qparams(torch.empty(0)), ValueError, 'x is empty'),
    (lambda: calc_qparams(torch.arange(5)), TypeError, 'x must be a floating-point tensor'),
    (lambda: calc_qparams([1.0, 2.0]), TypeError, 'x must be a torch.Tensor'),
    (lambda: calc_qparams(X, 'int9x'), ValueError, "dtype='int9x' is unknown"),
    (lambda: calc_qparams(X, 'int64'), ValueError, "dtype='int64' is unknown"),
    (lambda: calc_qparams(X, torch.float16), TypeError, 'dtype=torch.float16'),
    (lambda: calc_qparams(X, 8), TypeError, 'dtype must be a name'),
    (lambda: calc_qparams(X, axis=2), ValueError, 'axis=2 is out of range'),
    (lambda: calc_qparams(X, axis=-3), ValueError, 'axis=-3 is out of range'),
    (lambda: calc_qparams(X, axis='0'), ValueError, "axis='0'"),
    (lambda: calc_qparams(X, group_size=4), ValueError, 'group_size=4 must be a positive divisor'),
    (lambda: calc_qparams(X, group_size=0), ValueError, 'group_size=0'),
    (lambda: quantize(X, 0.0, 0), ValueError, 'scale must be positive'),
    (lambda: quantize(X, -0.1, 0), ValueError, 'scale must be positive'),
    (lambda: quantize(X, float('nan'), 0), ValueError, 'scale must be positive'),
    (lambda: quantize(X, 0.1, 0.5), TypeError, 'zero_point must be an integer'),
    (lambda: quantize(X, 0.1, 300), ValueError, 'zero_point must lie in'),
    (lambda: quantize(X, torch.ones(4), torch.zeros(4, dtype=torch.long)), ValueError, 'need axis='),
    (lambda: quantize(X, torch.ones(5), torch.zeros(5, dtype=torch.long), axis=0), ValueError, 'scale has 5 values'),
    (lambda: quantize(X, torch.ones(4, 4), torch.zeros(4, 4, dtype=torch.long)), ValueError, 'does not split x'),
    (lambda: dequantize(X, 0.1, 0), TypeError, 'q must be an integer tensor'),
    (lambda: quant_error(X, X[:2]), ValueError, 'x_hat has shape'),
    (lambda: qparams_from_range(1.0, -1.0), ValueError, 'min_val must be <= max_val'),
], ids=lambda v: v if isinstance(v, str) else '')
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match): call()


def test_min_max_shapes():
    x = torch.randn(3, 4, 6)
    assert min_max(x)[0].shape == ()
    assert min_max(x, axis=1)[0].shape == (4,)
    assert min_max(x, group_size=3)[0].shape == (3, 4, 2)
