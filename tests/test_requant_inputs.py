"""quantnb.requant (notebook 05): bad input to the helpers is refused with a named error, never a silent answer."""

import numpy as np
import pytest
import torch

from quantnb.requant import (
    check_accumulator,
    check_codes,
    check_scale,
    check_zero_point,
    f32,
    fma_f32,
    int_flatten,
    near_half_bias,
    near_half_linear,
    quantize_multiplier,
    requantize,
    rounding_right_shift,
    saturating_rounding_doubling_high_mul,
)


def _gen():
    return torch.Generator().manual_seed(0)


ROW = torch.tensor([1000, -2000, 3000])


@pytest.mark.parametrize('call,error,match', [
    (lambda: near_half_bias(ROW, 0.02, 0.004, 0.05, _gen(), spread=10**6), ValueError, 'float32 cannot hold'),
    (lambda: near_half_bias(torch.tensor([2**40]), 0.02, 0.004, 0.05, _gen()), ValueError, 'int32'),
    (lambda: near_half_bias(torch.tensor([-2.0**31 - 1], dtype=torch.float64), 0.02, 0.004, 0.05, _gen()),
     ValueError, 'int32'),
    (lambda: near_half_bias(ROW, 0.02, torch.tensor([0.004]), 0.05, _gen()), ValueError, r'1 scale\(s\) for 3'),
    (lambda: near_half_bias(ROW, 0.02, 0.004, 0.05, 0), TypeError, 'torch.Generator'),
    (lambda: near_half_bias(ROW, 0.02, 0.004, 0.05, _gen(), spread=0), ValueError, 'spread'),
    (lambda: saturating_rounding_doubling_high_mul(torch.tensor([1, 2]), torch.tensor([[1], [2]])), ValueError,
     'does not broadcast'),
    (lambda: saturating_rounding_doubling_high_mul((i for i in range(3)), 2), TypeError, 'generator'),
    (lambda: saturating_rounding_doubling_high_mul([1, 2], 2), TypeError, 'list'),
    (lambda: rounding_right_shift(torch.tensor([4, 8]), torch.tensor([[1], [2]])), ValueError, 'does not broadcast'),
    (lambda: rounding_right_shift(torch.tensor([1]), torch.tensor([], dtype=torch.long)), ValueError,
     'does not broadcast'),
    (lambda: rounding_right_shift(torch.tensor([1]), 1.0), TypeError, 'float'),
    (lambda: f32(float('nan')), ValueError, 'NaN'),
    (lambda: f32(1e-50), ValueError, 'underflows'),
    (lambda: f32(1e39), ValueError, 'overflows'),
    (lambda: f32(np.float32(0.5)), TypeError, 'NumPy'),
    (lambda: check_scale(np.float32(0.5), 'scale'), TypeError, 'NumPy'),
    (lambda: check_scale(1e-50, 'scale'), ValueError, 'float32'),
] + [
    (lambda dtype=dtype: check_codes(torch.tensor([1], dtype=dtype), 'q', 0, 255), TypeError, r'\.long\(\)')
    for dtype in (torch.uint16, torch.uint32, torch.uint64)
] + [
    (lambda dtype=dtype: check_accumulator(torch.tensor([1], dtype=dtype)), TypeError, r'\.long\(\)')
    for dtype in (torch.uint16, torch.uint32, torch.uint64)
], ids=lambda v: v if isinstance(v, str) else '')
def test_bad_input_is_refused_by_name(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize('w_scale', [0.004, torch.tensor([0.0011, 0.0057, 0.0103], dtype=torch.float64)],
                         ids=['per tensor', 'per channel'])
def test_near_half_bias_puts_every_output_next_to_a_half_code(w_scale):
    "Within 2^-12 of a step from a half-code after float32 rounding, per tensor and per channel."
    bias = near_half_bias(ROW, 0.02, w_scale, 0.05, _gen())
    real = (ROW.double() * 0.02 * torch.as_tensor(w_scale, dtype=torch.float64) + bias.double()) / 0.05
    assert ((real - real.floor() - 0.5).abs() <= 2**-12).all()


def test_the_high_multiply_and_shift_still_take_one_value_or_one_per_channel():
    "A scalar, or one multiplier/shift per output channel (the last dimension), broadcast into the accumulator's shape."
    acc = torch.tensor([[2**30, 6], [-2**30, 10]])
    per_channel = saturating_rounding_doubling_high_mul(acc, torch.tensor([2**30, 2**29]))
    assert per_channel.tolist() == [[2**29, 2], [-2**29, 3]]
    assert rounding_right_shift(acc, torch.tensor([0, 1])).tolist() == [[2**30, 3], [-2**30, 5]]
    assert requantize(acc, None, 0.5, torch.tensor([1.0, 0.5]), 1.0, 0, requant='integer').shape == acc.shape


@pytest.mark.parametrize('call,error,match', [
    (lambda: f32(float('inf')), ValueError, 'finite'),
    (lambda: f32(-float('inf')), ValueError, 'finite'),
    (lambda: f32(10**400), ValueError, 'overflows float32'),
    (lambda: near_half_linear('no'), TypeError, 'per_channel'),
    (lambda: near_half_linear(None), TypeError, 'per_channel'),
    (lambda: near_half_linear(False, seed=0.5), TypeError, 'seed'),
    (lambda: near_half_bias(ROW.to(torch.complex64), 0.02, 0.004, 0.05, _gen()), TypeError, 'complex'),
    (lambda: near_half_bias(torch.tensor([True, False]), 0.02, 0.004, 0.05, _gen()), TypeError, 'bool'),
    (lambda: near_half_bias(torch.quantize_per_tensor(torch.ones(3), 1.0, 0, torch.qint32), 0.02, 0.004, 0.05,
                            _gen()), TypeError, 'qint32'),
    (lambda: near_half_bias([1, 2], 0.02, 0.004, 0.05, _gen()), TypeError, 'list'),
    (lambda: int_flatten(torch.zeros(2, 3, 4, dtype=torch.long), start_dim=3), ValueError, 'start_dim=3'),
    (lambda: int_flatten(torch.zeros(2, 3, 4, dtype=torch.long), end_dim=1.0), TypeError, 'end_dim'),
    (lambda: int_flatten(torch.zeros(2, 3, 4, dtype=torch.long), start_dim=2, end_dim=1), ValueError, 'comes after'),
], ids=lambda v: v if isinstance(v, str) else '')
def test_more_bad_input_is_refused_by_name(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_int_flatten_keeps_pytorch_flatten_on_valid_dims():
    q = torch.arange(24).reshape(2, 3, 4)
    for start, end in [(1, -1), (0, 1), (-2, -1), (0, 2)]:
        assert torch.equal(int_flatten(q, start, end), q.flatten(start, end))


def test_complex_and_quantized_zero_points_are_refused():
    "A complex zero point lost its imaginary part in .long(): the accumulator came out as if it were real."
    import torch
    import pytest
    from quantnb.requant import int_gemm
    q_x, q_w = torch.randint(0, 255, (2, 4)), torch.randint(-128, 127, (3, 4))
    with pytest.raises(TypeError, match='w_zero_point must hold integers'):
        int_gemm(q_x, 0, q_w, torch.tensor([1 + 5j, 0, 0]))
    with pytest.raises(TypeError, match='w_zero_point must hold integers'):
        int_gemm(q_x, 0, q_w, torch.quantize_per_tensor(torch.zeros(3), 1.0, 0, torch.qint8))


@pytest.mark.parametrize('call,error,match', [
    (lambda: fma_f32(torch.ones(3), torch.ones(2), torch.ones(1)), ValueError,
     r'a, b and c have shapes \(3,\), \(2,\)'),
    (lambda: fma_f32(torch.ones(2, 3), torch.ones(()), torch.ones(2)), ValueError, 'do not broadcast'),
    (lambda: check_scale(10**400, 'x_scale'), ValueError, 'x_scale must be finite, > 0 and within float32'),
    (lambda: check_scale(-10**400, 'x_scale'), ValueError, 'x_scale must be finite, > 0'),
    (lambda: requantize(torch.tensor([[1, 2]]), None, 10**400, 0.5, 1.0, 0), ValueError, 'x_scale'),
    (lambda: requantize(torch.tensor([[1, 2]]), None, 0.5, 0.5, 10**400, 0, requant='integer'), ValueError, '^scale must'),
    (lambda: check_zero_point(10**30, 'zero_point', 0, 255), ValueError, rf'zero_point={10**30} is outside 0\.\.255'),
    (lambda: check_zero_point(-10**30, 'zero_point', 0, 255), ValueError, f'zero_point={-10**30} is outside'),
    (lambda: check_zero_point(10**5000, 'zero_point', 0, 255), ValueError, 'zero_point=an int of 16610 bits'),
    (lambda: quantize_multiplier(10**400), ValueError, 'M is an int of 1329 bits'),
    (lambda: quantize_multiplier(-10**400), ValueError, '0 < M < 1'),
], ids=['fma (3,) (2,) (1,)', 'fma (2, 3) () (2,)', 'scale 10**400', 'scale -10**400', 'requantize x_scale 10**400',
        'requantize scale 10**400', 'zero point 10**30', 'zero point -10**30', 'zero point 10**5000',
        'multiplier 10**400', 'multiplier -10**400'])
def test_huge_ints_and_mismatched_shapes_are_refused_by_name(call, error, match):
    "Python ints beyond int64 or float64, and FMA operands whose shapes do not broadcast, were PyTorch's errors."
    with pytest.raises(error, match=match):
        call()


def test_fma_f32_still_broadcasts_a_one_value_operand():
    "The per-tensor bias step passes a 0-d reciprocal and an (N,) bias with a (rows, N) accumulator."
    y = fma_f32(torch.tensor([1.0, 2.0]), torch.tensor(0.5), torch.ones(3, 2))
    assert torch.equal(y, torch.tensor([[1.5, 2.0]] * 3))
