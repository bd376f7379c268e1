"The seed tutorial's calls, run as the seed wrote them with only the imports changed, and their results checked."
import warnings

import numpy as np
import pytest
import torch

from quantnb.affine import QuantizationBasics

warnings.filterwarnings('ignore', message='.*quantize.*deprecated', category=UserWarning)

EPS32 = float(np.finfo(np.float32).eps)
# The seed's `supported_dtypes` table, {name: (numpy dtype, qmin, qmax)}, and the sub-byte types quantnb adds.
SEED_DTYPES = {'int8': (np.int8, -128, 127), 'uint8': (np.uint8, 0, 255),
               'int16': (np.int16, -32768, 32767), 'int32': (np.int32, -2147483648, 2147483647)}
EXTRA_DTYPES = {'int2': (np.int8, -2, 1), 'uint2': (np.uint8, 0, 3), 'int4': (np.int8, -8, 7), 'uint4': (np.uint8, 0, 15)}
ALL_DTYPES = {**SEED_DTYPES, **EXTRA_DTYPES}


def reference_qparams(x, qmin, qmax):
    "Corrected per-tensor qparams by hand in float64: range widened to 0, scale floored at eps (as PyTorch), zero point rounded."
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = max((hi - lo) / (qmax - qmin), EPS32)
    return scale, int(qmin - np.round(lo / scale))


def reference_codes(x, scale, zero_point, qmin, qmax):
    "Codes by hand in float64 (division, not PyTorch's float32 reciprocal: may differ by one code on near-ties)."
    return np.clip(np.round(x.astype(np.float64) / scale) + zero_point, qmin, qmax).astype(np.int64)


# ---- the seed's quantization_demo

def quantization_demo():
    "The seed's `quantization_demo`, its calls unchanged (printed labels in English); returns its variables for checking."
    quantizer = QuantizationBasics()
    weights = np.random.randn(1000).astype(np.float32) * 2 - 1
    print(f"weights: shape {weights.shape}, range [{weights.min():.4f}, {weights.max():.4f}], {weights.nbytes} bytes")
    scale, zero_point = quantizer.calculate_quantization_params(weights, 'int8')
    quantized_weights = quantizer.quantize_tensor(weights, scale, zero_point, 'int8')
    print(f"scale: {scale:.6f}, zero point: {zero_point}")
    print(f"quantized: shape {quantized_weights.shape}, dtype {quantized_weights.dtype}, {quantized_weights.nbytes} bytes")
    compression_ratio = weights.nbytes / quantized_weights.nbytes
    print(f"compression: {compression_ratio:.1f}x")
    dequantized_weights = quantizer.dequantize_tensor(quantized_weights, scale, zero_point)
    mse = np.mean((weights - dequantized_weights) ** 2)
    mae = np.mean(np.abs(weights - dequantized_weights))
    print(f"MSE: {mse:.8f}, MAE: {mae:.8f}, relative error: {mae / np.mean(np.abs(weights)) * 100:.4f}%")
    return locals()


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_quantization_demo(seed, capsys):
    np.random.seed(seed)
    d = quantization_demo()
    w, q, scale, zero_point = d['weights'], d['quantized_weights'], d['scale'], d['zero_point']
    assert type(scale) is float and type(zero_point) is int
    s_ref, z_ref = reference_qparams(w, -128, 127)
    assert scale == pytest.approx(s_ref, rel=1e-6) and zero_point == z_ref
    assert q.dtype == np.int8 and q.shape == (1000,) and q.nbytes == 1000
    assert d['compression_ratio'] == 4.0 and 'compression: 4.0x' in capsys.readouterr().out
    # codes: bit-exact against PyTorch's kernel, within one code of the float64 formula
    q_torch = torch.quantize_per_tensor(torch.from_numpy(w), scale, zero_point, torch.qint8).int_repr().numpy()
    np.testing.assert_array_equal(q, q_torch)
    diff = np.abs(q.astype(np.int64) - reference_codes(w, scale, zero_point, -128, 127))
    assert diff.max() <= 1 and diff.sum() <= 2
    # dequantized: float32 values s (q - z), each within half a step of the weight
    dq = d['dequantized_weights']
    assert dq.dtype == np.float32
    np.testing.assert_allclose(dq, (q.astype(np.float64) - zero_point) * scale, rtol=1e-6, atol=1e-6 * scale)
    assert np.abs(w - dq).max() <= scale / 2 * (1 + 1e-4)
    assert d['mse'] == pytest.approx(scale ** 2 / 12, rel=0.25)  # uniform rounding error over the step
    assert d['mae'] == pytest.approx(scale / 4, rel=0.25)


def test_seed_zero_point_is_rounded_not_truncated():
    "The seed's int() truncation gave 27 on this data; the corrected zero point is 28, and the error stays within half a step."
    np.random.seed(0)
    w = np.random.randn(1000).astype(np.float32) * 2 - 1
    seed_scale = (w.max() - w.min()) / 255
    assert int(-128 - w.min() / seed_scale) == 27
    scale, zero_point = QuantizationBasics().calculate_quantization_params(w, 'int8')
    assert zero_point == 28


# ---- each seed call of QuantizationBasics, every dtype

@pytest.mark.parametrize('dtype', list(ALL_DTYPES))
@pytest.mark.parametrize('kind', ['normal', 'positive', 'negative'])
def test_seed_calls_every_dtype(dtype, kind):
    rng = np.random.default_rng(hash((dtype, kind)) % 2**32)
    w = rng.normal(size=2000).astype(np.float32) * 3
    if kind == 'positive': w = np.abs(w) + 0.5   # range without 0: widened to [0, max]
    if kind == 'negative': w = -np.abs(w) - 0.5
    np_dtype, qmin, qmax = ALL_DTYPES[dtype]
    quantizer = QuantizationBasics()
    scale, zero_point = quantizer.calculate_quantization_params(w, dtype)  # positional dtype, as in the seed
    s_ref, z_ref = reference_qparams(w, qmin, qmax)
    assert type(scale) is float and type(zero_point) is int
    assert scale == pytest.approx(s_ref, rel=1e-6) and zero_point == z_ref and qmin <= zero_point <= qmax
    q = quantizer.quantize_tensor(w, scale, zero_point, dtype)
    assert q.dtype == np_dtype and q.shape == w.shape and q.min() >= qmin and q.max() <= qmax
    if qmax - qmin < 2**17:  # float32 holds these codes exactly
        assert np.abs(q.astype(np.int64) - reference_codes(w, scale, zero_point, qmin, qmax)).max() <= 1
    dq = quantizer.dequantize_tensor(q, scale, zero_point)
    assert dq.dtype == np.float32
    # 0 is exact, and every value is within half a step (plus float32 rounding of values as large as the codes)
    assert quantizer.dequantize_tensor(quantizer.quantize_tensor(np.zeros(3, np.float32), scale, zero_point, dtype),
                                       scale, zero_point).tolist() == [0.0, 0.0, 0.0]
    assert np.abs(w - dq).max() <= scale / 2 * (1 + 1e-4) + 4 * EPS32 * np.abs(w).max()


@pytest.mark.parametrize('dtype,torch_dtype', [('int8', torch.qint8), ('uint8', torch.quint8)])
def test_seed_codes_match_pytorch(dtype, torch_dtype):
    rng = np.random.default_rng(1)
    quantizer = QuantizationBasics()
    for _ in range(50):
        w = (rng.standard_t(3, size=500) * 10 ** rng.uniform(-3, 3)).astype(np.float32)
        scale, zero_point = quantizer.calculate_quantization_params(w, dtype)
        q_torch = torch.quantize_per_tensor(torch.from_numpy(w), scale, zero_point, torch_dtype).int_repr().numpy()
        np.testing.assert_array_equal(quantizer.quantize_tensor(w, scale, zero_point, dtype), q_torch)


def test_seed_supported_dtypes_table():
    quantizer = QuantizationBasics()
    for name, entry in ALL_DTYPES.items():
        assert quantizer.supported_dtypes[name] == entry


def test_uint8_zero_point_128():
    quantizer = QuantizationBasics()
    q = np.array([0, 127, 128, 255], dtype=np.uint8)
    np.testing.assert_array_equal(quantizer.dequantize_tensor(q, 0.5, 128), np.array([-64.0, -0.5, 0.0, 63.5], np.float32))
    w = np.array([-1.0, -0.25, 0.0, 0.5, 0.99], np.float32)
    scale, zero_point = quantizer.calculate_quantization_params(w, 'uint8')
    assert scale == pytest.approx(1.99 / 255) and zero_point == 128  # z = 0 - round(-1 / (1.99/255)) = round(128.14)
    q = quantizer.quantize_tensor(w, scale, zero_point, 'uint8')
    assert q.dtype == np.uint8 and q.tolist() == [0, 96, 128, 192, 255]  # 128 + round(-32.04, 0, 64.07, 126.86)
    assert quantizer.calculate_quantization_params(w, 'uint8', symmetric=True)[1] == 128


# ---- quantize_with_calibration

def test_quantize_with_calibration_seed_call():
    rng = np.random.default_rng(0)
    weights = rng.normal(0, 0.05, size=(32, 64)).astype(np.float32)
    calibration_data = [np.maximum(rng.normal(size=n), 0).astype(np.float32) * 4 for n in (10, 333, 57)]
    calibration_data.append(rng.normal(size=(2, 3, 5)).astype(np.float32))  # another shape
    quantizer = QuantizationBasics()
    result = quantizer.quantize_with_calibration(weights, calibration_data, 'int8')
    assert isinstance(result, tuple) and len(result) == 3
    quantized_weights, scale, zero_point = result
    # the weights are quantized on their own range (the seed's discarded weight_scale), not on the activations'
    s_ref, z_ref = reference_qparams(weights, -128, 127)
    assert scale == pytest.approx(s_ref, rel=1e-6) and zero_point == z_ref
    assert quantized_weights.dtype == np.int8 and quantized_weights.shape == weights.shape
    np.testing.assert_array_equal(quantized_weights, quantizer.quantize_tensor(weights, scale, zero_point, 'int8'))
    # the activations' qparams come from all calibration batches together
    acts = np.concatenate([a.ravel() for a in calibration_data])
    a_scale, a_zero_point = quantizer.activation_qparams
    a_ref = reference_qparams(acts, -128, 127)
    assert a_scale == pytest.approx(a_ref[0], rel=1e-6) and a_zero_point == a_ref[1]
    # the seed's combined range would have stretched the weights' grid many times over
    combined = np.concatenate([weights.ravel(), acts])
    assert (combined.max() - combined.min()) / 255 > 20 * scale


def test_quantize_with_calibration_uint8_and_none():
    rng = np.random.default_rng(1)
    weights = rng.normal(size=100).astype(np.float32)
    quantizer = QuantizationBasics()
    q, scale, zero_point = quantizer.quantize_with_calibration(weights, [np.ones(3, np.float32) * 2], 'uint8')
    assert q.dtype == np.uint8 and (scale, zero_point) == quantizer.calculate_quantization_params(weights, 'uint8')
    assert quantizer.activation_qparams == pytest.approx((2 / 255, 0))
    q2, _, _ = QuantizationBasics().quantize_with_calibration(weights, None)
    np.testing.assert_array_equal(q2, quantizer.quantize_tensor(weights, *quantizer.calculate_quantization_params(weights)))


# ---- the seed's bad input

W = np.linspace(-1, 1, 11).astype(np.float32)


@pytest.mark.parametrize('call,error,match', [
    (lambda qb: qb.calculate_quantization_params(W, 'float16'), ValueError, "dtype='float16' is unknown"),
    (lambda qb: qb.calculate_quantization_params(W, 'int64'), ValueError, "dtype='int64' is unknown"),
    (lambda qb: qb.quantize_tensor(W, 0.01, 0, 'int9x'), ValueError, "dtype='int9x' is unknown"),
    (lambda qb: qb.quantize_with_calibration(W, [W], 'float32'), ValueError, "dtype='float32' is unknown"),
    (lambda qb: qb.calculate_quantization_params(W, 8), TypeError, 'dtype must be a name'),
    (lambda qb: qb.quantize_tensor(W, 0.01, 128, 'int8'), ValueError, r'zero_point must lie in \[-128, 127\]'),
    (lambda qb: qb.quantize_tensor(W, 0.01, -1, 'uint8'), ValueError, r'zero_point must lie in \[0, 255\]'),
    (lambda qb: qb.quantize_tensor(W, 0.0, 0), ValueError, 'scale must be positive'),
    (lambda qb: qb.calculate_quantization_params(np.arange(5)), TypeError, 'weights must hold floats'),
    (lambda qb: qb.calculate_quantization_params(np.array([1.0, np.nan], np.float32)), ValueError, 'weights contains NaN'),
    (lambda qb: qb.calculate_quantization_params(np.zeros(0, np.float32)), ValueError, 'weights is empty'),
    (lambda qb: qb.dequantize_tensor(W, 0.1, 0), TypeError, 'quantized must hold integer codes'),
    (lambda qb: qb.quantize_with_calibration(W, []), ValueError, 'calibration_data is empty'),
    (lambda qb: qb.quantize_with_calibration(W, [W, np.arange(3)]), TypeError, r'calibration_data\[1\] must hold floats'),
], ids=lambda v: v if isinstance(v, str) else '')
def test_seed_bad_input(call, error, match):
    with pytest.raises(error, match=match): call(QuantizationBasics())
