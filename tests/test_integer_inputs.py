"""Inputs of notebook 05b's public functions: PyTorch's quantize multiplies at every tensor length; infinities,
huge values and empty batches taken everywhere PyTorch's model takes them, NaN refused everywhere; a custom leaf
module named up front while a user's own container is kept; 1-D input refused by a Linear twin as by PyTorch."""

import warnings

import pytest
import torch
import torch.ao.nn.quantized as nnq
import torch.nn as nn

from quantnb.integer import (
    IntegerModel,
    IntLayer,
    QCodes,
    kernel_errors,
    layer_inputs,
    library_parity,
    parity_report,
    quantize_codes,
    saturation_report,
)
from quantnb.ptq import PTQProcessor

warnings.filterwarnings('ignore', category=DeprecationWarning)
warnings.filterwarnings('ignore', message='.*quantize.*deprecated', category=UserWarning)


def _values_where_multiplying_is_not_dividing(scale, zero_point, n):
    "`n` float32 values whose code differs between x · float32(1/scale) and x / scale (rounded, + zero point)."
    s = torch.tensor(scale, dtype=torch.float32)
    halves = (torch.arange(-zero_point, 256 - zero_point, dtype=torch.float32) + 0.5) * s
    x = torch.cat([halves, torch.nextafter(halves, halves - 1), torch.nextafter(halves, halves + 1)])
    multiplied = (torch.round(x * (1 / s)) + zero_point).clamp(0, 255)
    x = x[multiplied != (torch.round(x / s) + zero_point).clamp(0, 255)]
    assert len(x) >= n, (scale, len(x))
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n]]


@pytest.mark.parametrize('length', range(1, 18))
def test_pytorch_quantize_multiplies_by_the_reciprocal_at_every_length(length):
    """Vector body (8 floats), the leftover elements, and both: this PyTorch multiplies by float32(1/scale) where
    dividing would give another code, and quantize_codes gives PyTorch's codes."""
    for scale, zero_point in ((0.3, 0), (0.0123, 128), (0.7, 10)):
        x = _values_where_multiplying_is_not_dividing(scale, zero_point, length)
        pytorch = torch.quantize_per_tensor(x, scale, zero_point, torch.quint8).int_repr()
        multiplied = (torch.round(x * (1 / torch.tensor(scale))) + zero_point).clamp(0, 255).to(torch.uint8)
        assert torch.equal(pytorch, multiplied), (scale, length)
        assert torch.equal(quantize_codes(x, scale, zero_point).codes, pytorch)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = torch.ao.quantization.QuantStub(), torch.ao.quantization.DeQuantStub()
        self.conv, self.act = nn.Conv2d(1, 4, 3), nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.dequant(self.fc(self.flatten(self.act(self.conv(self.quant(x))))))


class _Block(nn.Module):
    "A user's own container: a convolution and a ReLU, its forward calling both."

    def __init__(self):
        super().__init__()
        self.conv, self.relu = nn.Conv2d(1, 4, 3), nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


class _BlockNet(nn.Module):
    "A model whose convolution sits inside a user's own block."

    def __init__(self):
        super().__init__()
        self.quant, self.dequant = torch.ao.quantization.QuantStub(), torch.ao.quantization.DeQuantStub()
        self.block, self.flatten, self.fc = _Block(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.dequant(self.fc(self.flatten(self.block(self.quant(x)))))


class _Swish(nn.Module):
    "A user's own activation: no module inside, arithmetic in its forward."

    def forward(self, x):
        return x * torch.sigmoid(x)


def _convert(net):
    torch.manual_seed(0)
    calib = [(torch.randn(8, 1, 8, 8), None)]
    return PTQProcessor().static_quantization(net.eval(), calib)


@pytest.fixture(scope='module')
def model():
    return _convert(_Net())


def test_custom_leaf_module_is_named_up_front():
    converted = _convert(_Net())
    converted.act = _Swish()  # PyTorch's conversion would refuse it; swapped in afterwards, as a user might
    with pytest.raises(ValueError, match=r'act \(.*_Swish\)'):
        IntegerModel.from_quantized(converted)


def test_users_container_is_kept_and_equals_pytorch():
    converted = _convert(_BlockNet())
    twin = IntegerModel.from_quantized(converted)
    assert isinstance(twin.model.block, _Block) and isinstance(twin.model.block.conv, IntLayer)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(twin(x), converted(x))


BATCHES = {
    'inf': torch.tensor([float('inf'), -float('inf')]).repeat(32).reshape(1, 1, 8, 8),
    'huge': torch.full((2, 1, 8, 8), 1e30) * torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1),
    'empty': torch.zeros(0, 1, 8, 8),
}


@pytest.mark.parametrize('kind', list(BATCHES))
def test_inf_huge_and_empty_batches_are_taken_as_pytorch_takes_them(model, kind):
    images = BATCHES[kind]
    with torch.no_grad():
        assert torch.equal(IntegerModel.from_quantized(model)(images), model(images))
    inputs = layer_inputs(model, images)
    assert [x.shape[0] for _, x in inputs.values()] == [len(images)] * 2
    for rows in (parity_report(model, images), library_parity(model, [images])):
        assert all(r['outputs'] == 0 for r in rows) == (kind == 'empty')
        assert all(r['float_max_diff' if 'float_max_diff' in r else 'max_diff'] == 0 for r in rows)
    assert all(r['accumulators'] == 0 for r in saturation_report(model, images)) == (kind == 'empty')
    assert all(r['max_code_error'] <= 1 for r in kernel_errors(model, images))


@pytest.mark.parametrize(
    'call',
    [
        lambda m, x: IntegerModel.from_quantized(m)(x),
        layer_inputs,
        parity_report,
        saturation_report,
        kernel_errors,
        lambda m, x: library_parity(m, [x]),
    ],
    ids=['IntegerModel', 'layer_inputs', 'parity_report', 'saturation_report', 'kernel_errors', 'library_parity'],
)
def test_nan_is_refused_everywhere(model, call):
    images = torch.zeros(2, 1, 8, 8)
    images[1, 0, 3, 3] = float('nan')
    with pytest.raises(ValueError, match='NaN'):
        call(model, images)


def test_linear_twin_refuses_1d_codes_as_pytorch_does(model):
    x = torch.quantize_per_tensor(torch.rand(4 * 6 * 6), model.fc.scale, 0, torch.quint8)
    with pytest.raises(RuntimeError):
        model.fc(x)
    with pytest.raises(ValueError, match='batch dimension'):
        IntLayer(model.fc)(QCodes.of(x))
    row = x.reshape(1, -1)
    assert torch.equal(IntLayer(model.fc)(QCodes.of(row)).codes, model.fc(row).int_repr())


def test_qcodes_take_codes_of_any_integer_dtype():
    for dtype in (torch.uint8, torch.int16, torch.int64):
        q = QCodes(torch.tensor([0, 7, 255], dtype=dtype), 0.1, 3)
        assert q.dequantize().tolist() == pytest.approx([-0.3, 0.4, 25.2])
