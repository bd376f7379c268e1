"""Inputs of notebook 05c's public functions: PyTorch's quantize multiplies at every tensor length; infinities,
huge values and empty batches taken everywhere PyTorch's model takes them, NaN refused everywhere; a custom leaf
module named up front while a user's own container is kept; 1-D input refused by a Linear twin as by PyTorch;
average pooling and a partly quantized model refused with their true reasons, Dropout2d taken; a fitting fix for
each tensor attribute asked of codes; shape errors naming the layer; one-hot (images, labels) pairs recognised."""

import warnings

import pytest
import torch
import torch.ao.nn.quantized as nnq
import torch.nn as nn

import quantnb.isa as isa
from quantnb.integer import IntLayer, IntegerModel, QCodes, layer_inputs, parity_report, qparams_of, quantize_codes
from quantnb.integer_proof import gemm_operands, kernel_errors, library_parity, saturation_report
from quantnb.ptq import PTQProcessor
from quantnb.isa import packed_library, saturating_gemm

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
    rows = parity_report(model, images)
    assert all(r['outputs'] == 0 for r in rows) == (kind == 'empty')
    assert all(r['float_max_diff'] == 0 for r in rows)
    saturation = saturation_report(model, images)
    assert all(r['accumulators'] == 0 for r in saturation) == (kind == 'empty')
    assert all(r['accumulator_sqnr_db'] is None for r in saturation) == (kind == 'empty')  # no ratio of nothing
    if kind == 'empty':  # nothing measured: refused, not reported as agreement
        with pytest.raises(ValueError, match='hold no images'):
            library_parity(model, [images])
        with pytest.raises(ValueError, match='images is empty'):
            kernel_errors(model, images)
        return
    assert all(r['max_diff'] == 0 for r in library_parity(model, [images]))
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


# --- what a converted model may hold, and how each refusal is worded


class _Residual(nn.Module):
    "x + conv(x): the addition by a FloatFunctional, as eager quantization requires (converted to a QFunctional)."

    def __init__(self):
        super().__init__()
        self.quant, self.dequant = torch.ao.quantization.QuantStub(), torch.ao.quantization.DeQuantStub()
        self.conv, self.add = nn.Conv2d(1, 1, 3, padding=1), nnq.FloatFunctional()

    def forward(self, x):
        x = self.quant(x)
        return self.dequant(self.add.add(x, self.conv(x)))


def test_converted_functional_add_is_named_as_such_not_as_prepared():
    "A converted QFunctional keeps an Identity named activation_post_process: it is no observer."
    converted = _convert(_Residual())
    assert isinstance(converted.add, nnq.QFunctional)
    with pytest.raises(ValueError, match=r'add \(torch\.ao\.nn\.quantized\..*QFunctional\): a quantized functional'):
        IntegerModel.from_quantized(converted)


def test_prepared_models_are_named_prepared():
    "Observers (post-training) and fake-quantize modules (QAT) both mean: not converted yet."
    tq = torch.ao.quantization
    for qconfig, prepare in ((tq.get_default_qconfig('x86'), tq.prepare), (tq.get_default_qat_qconfig('x86'), tq.prepare_qat)):
        net = _Residual().train(prepare is tq.prepare_qat)
        net.qconfig = qconfig
        prepared = prepare(net)
        with pytest.raises(TypeError, match='prepared, not converted'):
            IntegerModel.from_quantized(prepared)


def test_float_and_integer_models_are_named():
    with pytest.raises(ValueError, match=r'no statically quantized Conv2d or Linear \(quant .*a float QuantStub: conversion left it float'):
        IntegerModel.from_quantized(_Net().eval())
    converted = _convert(_Net())
    twin = IntegerModel.from_quantized(converted)
    with pytest.raises(TypeError, match='already runs on integer layers'):
        IntegerModel.from_quantized(twin)
    for call in (parity_report, saturation_report, kernel_errors, layer_inputs):
        with pytest.raises(TypeError, match='is an IntegerModel: pass the converted model'):
            call(twin, torch.zeros(1, 1, 8, 8))


def test_library_parity_takes_any_iterable_of_batches_and_names_the_rest(model):
    images = torch.randn(6, 1, 8, 8)
    as_list = library_parity(model, [(images[:3], None), (images[3:], None)])
    as_generator = library_parity(model, ((images[i : i + 2], None) for i in range(0, 6, 2)))
    assert as_list == as_generator and as_list[0]['outputs'] == 6 * 4 * 6 * 6
    for batches, message in ((None, 'iterable of'), ([1], 'not int'), ([()], 'empty tuple'), ([{'x': images}], 'dict')):
        with pytest.raises(TypeError, match=message):
            library_parity(model, batches)
    with pytest.raises(ValueError, match='hold no images'):
        library_parity(model, iter([]))


# --- qschemes: what PyTorch's quantized tensors report


@pytest.mark.parametrize('weight_scheme', ['per_tensor_symmetric', 'per_tensor_affine', 'per_channel_symmetric', 'per_channel_affine'])
@pytest.mark.parametrize('activation_scheme', ['per_tensor_symmetric', 'per_tensor_affine'])
def test_quantized_tensors_report_only_affine_schemes(weight_scheme, activation_scheme):
    "Symmetric is an observer setting: converted weights and activations report the affine scheme of their kind."
    tq = torch.ao.quantization
    per_channel = weight_scheme.startswith('per_channel')
    weight_observer = tq.PerChannelMinMaxObserver if per_channel else tq.MinMaxObserver
    net = nn.Sequential(tq.QuantStub(), nn.Linear(3, 4), tq.DeQuantStub()).eval()
    net.qconfig = tq.QConfig(
        activation=tq.MinMaxObserver.with_args(dtype=torch.quint8, qscheme=getattr(torch, activation_scheme)),
        weight=weight_observer.with_args(dtype=torch.qint8, qscheme=getattr(torch, weight_scheme)),
    )
    prepared = tq.prepare(net)
    prepared(torch.randn(16, 3))
    converted = tq.convert(prepared)
    weight = converted[1].weight()
    assert weight.qscheme() == (torch.per_channel_affine if per_channel else torch.per_tensor_affine)
    scale, zero_point = qparams_of(weight)
    assert isinstance(scale, torch.Tensor) == per_channel
    codes = QCodes.of(converted[1](converted[0](torch.randn(2, 3))))
    assert codes.codes.shape == (2, 4)


def test_float_zero_points_are_refused():
    "The one other scheme a quantized tensor reports: embedding tables with float zero points."
    weight = nnq.EmbeddingBag(10, 4).weight()
    assert weight.qscheme() == torch.per_channel_affine_float_qparams
    with pytest.raises(ValueError, match='float zero points'):
        qparams_of(weight)


# --- saturation_report follows the twins: it refuses the layouts quantnb does not reproduce


class _LongLinear(nn.Module):
    "One Linear with K = 301: over 256 and not a multiple of 4, which oneDNN's AVX2 matmul pairs in blocks."

    def __init__(self):
        super().__init__()
        self.quant, self.dequant = torch.ao.quantization.QuantStub(), torch.ao.quantization.DeQuantStub()
        self.fc = nn.Linear(301, 5)

    def forward(self, x):
        return self.dequant(self.fc(self.quant(x)))


@pytest.fixture(scope='module')
def onednn_long_linear():
    "_LongLinear packed for oneDNN, 8-bit activations; images whose codes reach above 127, and ones that stay below."
    torch.manual_seed(0)
    converted = PTQProcessor().static_quantization(
        _LongLinear().eval(), [(torch.randn(32, 301), None)], backend='onednn', reduce_range=False
    )
    assert packed_library(converted.fc) == 'onednn'
    high = torch.randn(4, 301) * 3
    (_, x), = layer_inputs(converted, high).values()
    assert x.int_repr().max() > 127
    scale, zero_point = converted.quant.scale.item(), converted.quant.zero_point.item()
    low = ((torch.rand(4, 301) * 127).round() - zero_point) * scale  # codes 0..127 exactly
    return converted, high, low


def _pretend(monkeypatch, fbgemm, onednn):
    monkeypatch.setattr(isa, '_this_process', lambda library: {'fbgemm': fbgemm, 'onednn': onednn}[library])


def test_saturation_report_refuses_onednn_avx2_long_matmul_above_127(monkeypatch, onednn_long_linear):
    "Where the saturating twin refuses a layout (notebook 05a), so does the report, naming the layer; never a count."
    converted, high, low = onednn_long_linear
    _pretend(monkeypatch, 'avx2', 'avx2')
    with pytest.raises(ValueError, match="K=301.*does not reproduce"):  # the twin refuses (notebook 05a)
        IntLayer(converted.fc, saturate_int16=True)(QCodes.of(layer_inputs(converted, high)['fc'][1]))
    with pytest.raises(ValueError, match=r"cannot count layer 'fc' \(packed for onednn\).*K=301.*backend='fbgemm'"):
        saturation_report(converted, high)
    (row,) = saturation_report(converted, low)  # codes <= 127: no pair can saturate, whatever the pairing
    assert row['max_input_code'] <= 127 and row['saturated_pairs'] == 0 and row['accumulators_changed'] == 0


def test_saturation_report_counts_onednn_long_matmul_where_onednn_pairs_as_fbgemm(monkeypatch, onednn_long_linear):
    "oneDNN's AVX-512 kernel without VNNI pairs the long matmul as fbgemm does: counted, equal to fbgemm's pairing."
    converted, high, _ = onednn_long_linear
    _pretend(monkeypatch, 'avx512', 'avx512_core')
    (row,) = saturation_report(converted, high)
    x = layer_inputs(converted, high)['fc'][1]
    rows, w_codes = gemm_operands(converted.fc, x)
    _, saturated = saturating_gemm(rows, x.q_zero_point(), w_codes, torch.zeros(5, dtype=torch.long))
    assert row['saturated_pairs'] == saturated


def test_saturation_report_refuses_onednn_one_channel_conv_without_vnni_above_127(monkeypatch):
    "oneDNN's AVX-512 (no VNNI) one-channel convolution: refused by the twin (notebook 05a), and by the report."
    _pretend(monkeypatch, 'avx512', 'avx512_core')
    torch.manual_seed(0)
    converted = PTQProcessor().static_quantization(
        _Net().eval(), [(torch.randn(16, 1, 8, 8), None)], backend='onednn', reduce_range=False
    )
    assert packed_library(converted.conv) == 'onednn'
    with pytest.raises(ValueError, match=r"cannot count layer 'conv' \(packed for onednn\)"):
        saturation_report(converted, torch.randn(4, 1, 8, 8) * 3)


# --- float modules a converted model may keep, tensor attributes asked of codes, shapes, one-hot labels


class _PoolNet(nn.Module):
    "A converted model that keeps float modules PyTorch runs on quantized tensors: `pool` (given) and Dropout2d."

    def __init__(self, pool):
        super().__init__()
        self.quant, self.dequant = torch.ao.quantization.QuantStub(), torch.ao.quantization.DeQuantStub()
        self.conv, self.drop, self.pool = nn.Conv2d(1, 4, 3), nn.Dropout2d(), pool
        self.flatten, self.fc = nn.Flatten(), nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.dequant(self.fc(self.flatten(self.pool(self.drop(self.conv(self.quant(x)))))))


@pytest.mark.parametrize('pool', [nn.AdaptiveAvgPool2d(6), nn.AvgPool2d(1)], ids=['AdaptiveAvgPool2d', 'AvgPool2d'])
def test_average_pooling_is_refused_as_not_written_yet_not_as_not_converted(pool):
    converted = _convert(_PoolNet(pool))
    assert type(converted.pool) is type(pool)  # conversion keeps it float: PyTorch runs it on quantized tensors
    with torch.no_grad():
        assert converted(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    name = type(pool).__name__
    with pytest.raises(ValueError, match=rf'pool \(.*{name}\): IntegerModel has no integer version of nn\.{name} yet') as e:
        IntegerModel.from_quantized(converted)
    assert 'not converted' not in str(e.value) and 'drop' not in str(e.value)  # Dropout2d is taken


def test_dropout2d_is_the_identity_and_equals_pytorch():
    converted = _convert(_PoolNet(nn.Identity()))
    twin = IntegerModel.from_quantized(converted)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(twin(x), converted(x))


class _PartlyQuantized(nn.Module):
    "fc2 runs in float after the DeQuantStub: its qconfig is None, so conversion leaves it float."

    def __init__(self):
        super().__init__()
        self.quant, self.dequant = torch.ao.quantization.QuantStub(), torch.ao.quantization.DeQuantStub()
        self.fc1, self.fc2 = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.fc2(self.dequant(self.fc1(self.quant(x))))


def test_partly_quantized_model_gets_the_true_reason():
    tq = torch.ao.quantization
    net = _PartlyQuantized().eval()
    net.qconfig = tq.get_default_qconfig('x86')
    net.fc2.qconfig = None
    prepared = tq.prepare(net)
    prepared(torch.randn(8, 4))
    converted = tq.convert(prepared)
    assert type(converted.fc2) is nn.Linear
    with pytest.raises(ValueError, match=r'fc2 \(.*Linear\): a float nn\.Linear: conversion left it float .*qconfig was None'):
        IntegerModel.from_quantized(converted)


@pytest.mark.parametrize(
    'name,fix',
    [('dtype', 'read x.codes.dtype'), ('device', 'read x.codes.device'), ('to', r'x\.dequantize\(\)'), ('float', r'x\.dequantize\(\)'),
     ('q_scale', 'QCodes names it x.scale'), ('int_repr', 'QCodes names it x.codes'), ('reshape', r'x\.reshape\(\.\.\.\) in forward by nn\.Flatten'),
     ('view', 'by nn.Flatten'), ('clamp', r'replace x\.clamp\(\.\.\.\) in forward by one of them')],
)
def test_each_tensor_attribute_gets_a_fix_that_fits_it(name, fix):
    q = QCodes(torch.zeros(2, dtype=torch.uint8), 0.1, 3)
    with pytest.raises(AttributeError, match=rf"QCodes has no '{name}'.*{fix}") as e:
        getattr(q, name)
    if name in ('dtype', 'device', 'to', 'q_scale'):
        assert 'nn.Flatten' not in str(e.value)


def test_shape_errors_name_the_layer_and_the_models_input(model):
    twin = IntegerModel.from_quantized(model)
    with pytest.raises(ValueError, match=r"layer 'conv' \(a quantized Conv2d with 1 input channel\(s\)\) got codes of shape \(1, 8, 8\)") as e:
        twin(torch.zeros(1, 8, 8))
    assert 'model an input x' in str(e.value) and 'q_x' not in str(e.value)
    with pytest.raises(ValueError, match=r"layer 'fc' \(a quantized Linear with 144 input features\) got codes of shape \(2, 100\)"):
        twin.model.fc(QCodes(torch.zeros(2, 100, dtype=torch.uint8), 0.1, 0))
    with pytest.raises(ValueError, match="layer 'conv'"):
        twin(torch.zeros(2, 3, 8, 8))


class _Rows(nn.Module):
    "A model whose inputs are (N, 10), the shape of one-hot labels."

    def __init__(self):
        super().__init__()
        self.quant, self.dequant, self.fc = torch.ao.quantization.QuantStub(), torch.ao.quantization.DeQuantStub(), nn.Linear(10, 3)

    def forward(self, x):
        return self.dequant(self.fc(self.quant(x)))


def test_library_parity_reads_one_hot_pairs_as_one_batch():
    torch.manual_seed(0)
    converted = PTQProcessor().static_quantization(_Rows().eval(), [(torch.randn(16, 10), None)])
    images = torch.randn(6, 10)
    one_hot = nn.functional.one_hot(torch.arange(6) % 10, 10).float()
    for labels in (one_hot, torch.arange(6)):
        with pytest.raises(TypeError, match='not one batch'):
            library_parity(converted, (images, labels))
        rows = library_parity(converted, [(images, labels)])
        assert rows[0]['outputs'] == 6 * 3 and rows[0]['equal'] == rows[0]['outputs']
    with pytest.raises(TypeError, match='not one batch'):
        library_parity(torch.nn.Sequential(), [images, images])  # two image batches of one length read as a pair
    assert library_parity(converted, [images[:4], images[4:]])[0]['outputs'] == 6 * 3  # lengths differ: two batches


def test_qcodes_refuse_equality_and_models_without_a_quantize_stub():
    "== on QCodes compared identity (equal codes gave False); a model without QuantStub failed at conv1 with a bad hint."
    import torch.ao.quantization as tq
    import torch.nn as nn
    from quantnb.integer import IntegerModel, QCodes
    from quantnb.ptq import quantized_engine
    a, b = (QCodes(torch.zeros(2, dtype=torch.uint8), 0.1, 0) for _ in range(2))
    with pytest.raises(TypeError, match='torch.equal'):
        a == b
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).eval()
    net.qconfig = tq.get_default_qconfig('x86')
    with quantized_engine('x86'):
        prepared = tq.prepare(net)
        prepared(torch.randn(2, 1, 8, 8))
        converted = tq.convert(prepared)
    with pytest.raises(TypeError, match='no quantize stub'):
        IntegerModel.from_quantized(converted)


def test_library_parity_names_a_data_sets_items():
    "[(image (1, 28, 28), int label)] is a Dataset's items, not batches: it failed inside PyTorch's conv."
    from quantnb.integer_proof import library_parity
    with pytest.raises(TypeError, match='one \\(image, label\\) item of a data set'):
        library_parity(nn.Sequential(), [(torch.zeros(1, 28, 28), 3)])


def test_a_qint8_quantize_stub_is_refused_not_read_as_quint8():
    "A stub whose observer makes qint8 codes: PyTorch's layers refuse it, so does IntegerModel (it clamped negatives)."
    import torch.ao.quantization as tq
    from quantnb.ptq import quantized_engine

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = tq.QuantStub()
            self.fc = nn.Linear(4, 2)
            self.dequant = tq.DeQuantStub()

        def forward(self, x):
            return self.dequant(self.fc(self.quant(x)))

    net = Net().eval()
    net.qconfig = tq.QConfig(activation=tq.MinMaxObserver.with_args(dtype=torch.qint8,
                                                                     qscheme=torch.per_tensor_symmetric),
                             weight=tq.default_per_channel_weight_observer)
    with quantized_engine('fbgemm'):
        prepared = tq.prepare(net)
        prepared(torch.randn(8, 4))
        converted = tq.convert(prepared)
    with pytest.raises(ValueError, match='dtype=torch.quint8'):
        IntegerModel.from_quantized(converted)


def test_arithmetic_on_codes_and_images_of_the_wrong_shape_are_refused_by_name():
    import torch.ao.quantization as tq
    from quantnb.integer import QCodes, layer_inputs
    codes = QCodes(torch.tensor([1, 2], dtype=torch.uint8), 0.1, 0)
    for operation in (lambda: codes + codes, lambda: codes * 2, lambda: 1 - codes, lambda: -codes):
        with pytest.raises(TypeError, match='arithmetic was done on QCodes'):
            operation()
    model = torch.nn.Sequential(tq.QuantStub(), torch.nn.Conv2d(3, 4, 3), tq.DeQuantStub()).eval()
    model.qconfig = tq.get_default_qconfig('x86')
    tq.prepare(model, inplace=True)
    model(torch.rand(2, 3, 8, 8))
    tq.convert(model, inplace=True)
    with pytest.raises(ValueError, match=r'model failed on images of shape \(2, 5, 8, 8\)'):
        layer_inputs(model, torch.rand(2, 5, 8, 8))


def test_the_integer_model_owns_its_numbers():
    "Changing the converted model's bias leaves the twin alone, and the twin holds no trainable parameters."
    import torch.ao.quantization as tq
    from quantnb.integer import IntegerModel, layer_inputs
    model = torch.nn.Sequential(tq.QuantStub(), torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), tq.DeQuantStub()).eval()
    model.qconfig = tq.get_default_qconfig('x86')
    tq.prepare(model, inplace=True)
    model(torch.rand(2, 3, 8, 8))
    tq.convert(model, inplace=True)
    twin = IntegerModel.from_quantized(model)
    images = torch.rand(2, 3, 8, 8)
    before = twin(images)
    with torch.no_grad():
        model[1].bias().add_(1.0)
    assert torch.equal(twin(images), before)
    assert not list(twin.parameters())
    with pytest.raises(ValueError, match=r'model failed on images of shape \(3, 8, 8\)'):
        layer_inputs(model, torch.rand(3, 8, 8))


def test_own_bound_and_max_or_zero_name_bad_arguments():
    from quantnb.integer import max_or_zero, own_bound
    assert own_bound('onednn-amx', True) == 1 and own_bound('onednn-amx', False) == 0 and own_bound('fbgemm', True) == 0
    with pytest.raises(ValueError, match='kernel'):
        own_bound('ONEDNN-AMX', True)
    with pytest.raises((TypeError, ValueError), match='conv'):
        own_bound('onednn-amx', 'no')
    with pytest.raises(TypeError, match='tensor'):
        max_or_zero([1, 2])
    assert max_or_zero(torch.tensor([])) == 0 and max_or_zero(torch.tensor([3, 1])) == 3
