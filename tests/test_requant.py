"""quantnb.requant (notebook 05): im2col and convolution geometry against PyTorch, requantize's argument checks,
and the fixed-point path's tie rules."""

import warnings

import pytest
import torch
import torch.nn.functional as F

import quantnb.requant as requant
from quantnb.requant import (
    as_pair,
    bias_step_mismatches,
    check_conv_geometry,
    conv_accumulator,
    conv_output_size,
    fbgemm_bias_step,
    fma_f32,
    im2col,
    int_gemm,
    near_half_linear,
    requantize,
)

needs_fbgemm = pytest.mark.skipif('fbgemm' not in torch.backends.quantized.supported_engines,
                                  reason='no fbgemm in this PyTorch build')


@pytest.mark.parametrize('hw,k,stride,padding,dilation', [((9, 7), 3, 2, 1, 1), ((8, 8), (3, 1), (1, 2), (0, 1), 2),
                                                           ((5, 6), 2, 1, 0, 1), ((11, 4), (5, 3), 3, 2, (1, 1))],
                         ids=str)
def test_conv_output_size_and_im2col_match_pytorch(hw, k, stride, padding, dilation):
    g = torch.Generator().manual_seed(0)
    q_x = torch.randint(0, 256, (2, 3, *hw), generator=g)
    kh, kw = as_pair(k, 'k')
    q_w = torch.randint(-128, 128, (4, 3, kh, kw), generator=g)
    expected = F.conv2d(q_x.double() - 7, q_w.double(), None, stride, padding, dilation)
    assert conv_output_size(hw, k, stride, padding, dilation) == tuple(expected.shape[2:])
    rows = im2col(q_x, 7, k, stride, padding, dilation)
    via_rows = int_gemm(rows, 7, q_w.permute(0, 2, 3, 1).flatten(1), 0)
    assert torch.equal(via_rows, expected.permute(0, 2, 3, 1).flatten(0, 2).long())
    assert torch.equal(conv_accumulator(q_x, 7, q_w, 0, stride, padding, dilation), via_rows)


@pytest.mark.parametrize('call,error,match', [
    (lambda: conv_output_size((2, 2), 5), ValueError, 'no output position'),
    (lambda: conv_output_size((4, 4), 3, stride=0), ValueError, 'must be >= 1'),
    (lambda: conv_output_size(4, 3, padding=-1), ValueError, 'padding'),
    (lambda: as_pair((1, 2, 3), 'stride'), ValueError, 'two ints'),
    (lambda: as_pair(1.5, 'stride'), TypeError, 'an int or two ints'),
    (lambda: im2col(torch.zeros(3, 4, 4, dtype=torch.uint8), 0, 3), ValueError, r'\(B, C, H, W\)'),
    (lambda: im2col(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 0, 0), ValueError, 'must be >= 1'),
    (lambda: check_conv_geometry(torch.zeros(1, 2, 4, 4), torch.zeros(3, 1, 3, 3), 1, 0, 1), ValueError, 'same C'),
    (lambda: conv_accumulator(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 0, torch.zeros(3, 1, 3, 3, dtype=torch.int8),
                              torch.zeros(2, dtype=torch.long)), ValueError, 'w_zero_point has 2 values'),
    (lambda: fma_f32(1.0, 2.0, 3.0), TypeError, 'float32 tensors'),
    (lambda: requantize(torch.zeros(1, 4, dtype=torch.long), None, 0.1, torch.tensor([0.1]), 0.1, 0), ValueError,
     'one per channel'),
    (lambda: requantize(torch.zeros(1, 2, dtype=torch.long), None, 1e-30, 1e-30, 0.1, 0), ValueError, 'float32'),
    (lambda: requantize(torch.zeros(1, 2, dtype=torch.long), None, 0.1, 0.1, 1e39, 0), ValueError, 'float32'),
    (lambda: int_gemm(torch.full((1, 40_000), 255), 0, torch.full((1, 40_000), -128), 127), ValueError, 'int32'),
], ids=lambda v: v if isinstance(v, str) else '')
def test_bad_geometry_and_scales_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_fixed_point_ties_go_up_in_the_multiply_and_away_from_zero_in_the_shift():
    "M = 1/2 (no shift): 2.5 -> 3, -2.5 -> -2; M = 1/4 (shift 1): 1.25 is rounded twice, 2.5 -> 3, then 1.5 -> 2."
    half = requantize(torch.tensor([[5, -5]]), None, 0.5, 1.0, 1.0, 10, requant='integer').long() - 10
    assert half.tolist() == [[3, -2]]
    quarter = requantize(torch.tensor([[5, -5]]), None, 0.25, 1.0, 1.0, 10, requant='integer').long() - 10
    fbgemm = requantize(torch.tensor([[5, -5]]), None, 0.25, 1.0, 1.0, 10).long() - 10
    assert (quarter.tolist(), fbgemm.tolist()) == ([[2, -1]], [[1, -1]])


@needs_fbgemm
def test_the_probe_tells_the_two_bias_steps_apart_and_requantize_uses_the_one_found():
    "One step gives all 512 near-half codes, the other misses some; requantize matches PyTorch, whichever is found."
    mismatches = bias_step_mismatches()
    assert sorted(mismatches.values())[0] == 0 < sorted(mismatches.values())[1], mismatches
    assert fbgemm_bias_step() == min(mismatches, key=mismatches.get)
    layer, x, args = near_half_linear(per_channel=False)
    assert torch.equal(requantize(**args), layer(x).int_repr())


@needs_fbgemm
def test_requantize_follows_a_build_whose_fbgemm_rounds_product_and_sum_separately(monkeypatch):
    "A fake build whose fbgemm adds a per-tensor bias in two roundings: requantize follows it; per channel: no change."
    args = {granularity: near_half_linear(per_channel=granularity == 'per channel')[2]
            for granularity in ('per tensor', 'per channel')}
    fma_codes = {granularity: requantize(**a) for granularity, a in args.items()}
    monkeypatch.setattr(requant, 'fbgemm_bias_step', lambda: 'product, then sum')
    two_roundings = {granularity: requantize(**a) for granularity, a in args.items()}
    a = args['per tensor']
    w_scale = torch.tensor(a['w_scale'], dtype=torch.float64)
    expected = requant._requant_fbgemm(a['acc'], a['bias'], a['x_scale'], w_scale, a['scale'], fma=False)
    assert torch.equal(two_roundings['per tensor'].long(), (expected + a['zero_point']).clamp(0, 255))
    assert (two_roundings['per tensor'] != fma_codes['per tensor']).any()  # the near-half layer shows it
    assert torch.equal(two_roundings['per channel'], fma_codes['per channel'])  # one bias step per channel


@needs_fbgemm
def test_a_build_where_neither_step_fits_warns_once_and_keeps_the_fma(monkeypatch):
    "Neither step gives PyTorch's codes: fbgemm_bias_step warns once, answers None, and requantize uses the FMA."
    monkeypatch.setattr(requant, 'bias_step_mismatches', lambda: {'fma': 3, 'product, then sum': 5})
    requant.fbgemm_bias_step.cache_clear()
    try:
        with pytest.warns(UserWarning, match='no single per-tensor bias step'):
            assert requant.fbgemm_bias_step() is None
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            assert requant.fbgemm_bias_step() is None  # cached: no second warning
            acc, bias = torch.tensor([[5]]), torch.tensor([0.5])
            y = requant._requant_fbgemm(acc, bias, 0.5, torch.tensor(1.0, dtype=torch.float64), 1.0, fma=True)
            assert requantize(acc, bias, 0.5, 1.0, 1.0, 10).item() == y.item() + 10
    finally:
        requant.fbgemm_bias_step.cache_clear()
