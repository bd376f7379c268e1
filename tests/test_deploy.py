"""Notebook 10's ONNX export: ONNX Runtime equals quantnb's integer reference code for code on small random PT2E
models, in every bias mode; ORT's QuantizeLinear is the division `onnx_quantize` computes; bad input (a missing
extra, a float, dynamic or 7-bit model, an op the exporter cannot map, a file ORT refuses) gets a named error."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from quantnb.deploy import (
    QdqReference,
    check_pt2e_static,
    code_parity,
    export_onnx,
    int32_bias,
    onnx_quantize,
    op_types,
    optimized_op_types,
    ort_codes,
    ort_session,
    pt2e_codes,
    quantize_outputs,
    with_outputs,
)
from quantnb.ptq import PTQProcessor

onnx = pytest.importorskip('onnx')
warnings.filterwarnings('ignore', category=DeprecationWarning)
warnings.filterwarnings('ignore', category=UserWarning)


class ConvNet(nn.Module):
    "Two convolutions (one padded, one strided), pooling, flatten and two Linear layers: SampleNet's ops, smaller."
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2), nn.ReLU(),
                                  nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 3 * 3, 8), nn.ReLU(), nn.Linear(8, 5))

    def forward(self, x):
        return self.body(x)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, 12), nn.ReLU(), nn.Linear(12, 3))

    def forward(self, x):
        return self.body(x)


ARCHS = {'convnet': (ConvNet, (1, 14, 14)), 'mlp': (MLP, (1, 16, 16))}


def _batches(shape, seed, n=3, batch=16, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    return [(spread * torch.randn(batch, *shape, generator=g), torch.zeros(batch, dtype=torch.long)) for _ in range(n)]


def _pt2e(arch, seed, reduce_range=False):
    cls, shape = ARCHS[arch]
    torch.manual_seed(seed)
    model = cls().eval()
    return PTQProcessor().torchao_quantization(model, 'int8-static-pt2e', _batches(shape, seed), reduce_range=reduce_range)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    "Each small model quantized with two seeds and exported in the three bias modes."
    folder, out = tmp_path_factory.mktemp('onnx'), {}
    for arch in ARCHS:
        for seed in (0, 1):
            model = _pt2e(arch, seed)
            example = _batches(ARCHS[arch][1], seed)[0][0]
            files = {bias: export_onnx(model, example, folder / f'{arch}-{seed}-{bias}.onnx', bias=bias)
                     for bias in ('half_even', 'truncate', 'float')}
            out[arch, seed] = model, files
    return out


CASES = [(arch, seed) for arch in ARCHS for seed in (0, 1)]
IDS = [f'{arch}-seed{seed}' for arch, seed in CASES]


@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_one_self_contained_file_in_qdq_form(exported, case):
    _, files = exported[case]
    path = files['half_even']
    assert sorted(p.name for p in path.parent.glob(path.stem + '*')) == [path.name]  # no .onnx.data beside it
    counts = op_types(path)
    assert counts['QuantizeLinear'] >= 2 and counts['DequantizeLinear'] > counts['QuantizeLinear']
    proto = onnx.load(str(path))
    assert all(i.data_type == onnx.TensorProto.INT8 for i in proto.graph.initializer if len(i.dims) >= 2)
    assert sum(i.data_type == onnx.TensorProto.INT32 for i in proto.graph.initializer) >= 2  # int32 biases


@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_ort_fuses_the_qdq_groups_even_with_the_codes_exposed(exported, case):
    proto = onnx.load(str(exported[case][1]['half_even']))
    fused = lambda c: {k: v for k, v in c.items() if k.startswith(('QLinear', 'QGemm'))}
    plain = fused(optimized_op_types(proto))
    assert plain and plain == fused(optimized_op_types(with_outputs(proto, quantize_outputs(proto))))


@pytest.mark.parametrize('bias', ['half_even', 'truncate', 'float'])
@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_ort_equals_the_integer_reference_code_for_code(exported, case, bias):
    "Inputs up to 3x beyond the calibrated range: saturated codes included. A float bias: ORT rounds half to even."
    _, files = exported[case]
    proto = onnx.load(str(files[bias]))
    batches = _batches(ARCHS[case[0]][1], seed=100 + case[1], n=2, spread=3.0)
    rows = code_parity(proto, batches, QdqReference(proto, 'half_even').codes)
    assert sum(r['values'] for r in rows[:-1]) > 0
    assert [r['differing'] for r in rows] == [0] * len(rows), rows
    if bias != 'float':  # int32 biases: ORT fuses the last layer into a QGemm with float output, exactly as ours
        assert rows[-1]['max_diff'] == 0
    else:  # a float bias on a layer without QuantizeLinear after it: ORT runs a float Gemm
        assert rows[-1]['max_diff'] < 1e-4


@pytest.mark.parametrize('seed', [0, 1])
def test_other_bias_roundings_move_codes_that_ort_does_not(exported, seed):
    """The float-bias file: the reference with truncated biases is not what ORT computes (the convolutional net: the
    MLP's few hundred outputs may all stay put)."""
    case = 'convnet', seed
    proto = onnx.load(str(exported[case][1]['float']))
    batches = _batches(ARCHS[case[0]][1], seed=200 + case[1], n=2, spread=3.0)
    moved = {mode: sum(r['differing'] for r in code_parity(proto, batches, QdqReference(proto, mode).codes)[:-1])
             for mode in ('half_even', 'truncate')}
    assert moved['half_even'] == 0 and moved['truncate'] > 0


@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_pytorch_pt2e_model_within_one_code_of_ort(exported, case):
    model, files = exported[case]
    proto = onnx.load(str(files['half_even']))
    images = _batches(ARCHS[case[0]][1], seed=300 + case[1], n=1)[0][0]
    codes, logits = pt2e_codes(model, images)
    theirs = ort_codes(proto, images)
    names = quantize_outputs(proto)
    assert len(codes) == len(names)
    for name, ours in zip(names, codes):
        assert (ours - theirs[name]).abs().max() <= 1, name
    torch.testing.assert_close(logits, model(images))


def test_the_batch_dimension_stays_dynamic(exported):
    _, files = exported['convnet', 0]
    session = ort_session(files['half_even'])
    for n in (1, 7):
        out = session.run(None, {session.get_inputs()[0].name: np.zeros((n, 1, 14, 14), np.float32)})[0]
        assert out.shape == (n, 5)


@pytest.mark.parametrize('scale', [0.1, 0.0173, 3.3e-3, 0.7])
@pytest.mark.parametrize('zero_point', [0, 3, 128])
def test_onnx_quantize_is_orts_quantize_linear(scale, zero_point):
    "Values next to each half-code, where dividing and multiplying by the reciprocal can disagree."
    s = torch.tensor(scale, dtype=torch.float32)
    halves = (torch.arange(-zero_point, 256 - zero_point, dtype=torch.float32) + 0.5) * s
    x = torch.cat([halves, torch.nextafter(halves, halves - 1), torch.nextafter(halves, halves + 1),
                   torch.tensor([-1e6, 1e6, 0.0])])
    h = onnx.helper
    graph = h.make_graph([h.make_node('QuantizeLinear', ['x', 's', 'z'], ['q'])], 'q',
                         [h.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [len(x)])],
                         [h.make_tensor_value_info('q', onnx.TensorProto.UINT8, [len(x)])],
                         [onnx.numpy_helper.from_array(np.array(scale, np.float32), 's'),
                          onnx.numpy_helper.from_array(np.array(zero_point, np.uint8), 'z')])
    session = ort_session(h.make_model(graph, opset_imports=[h.make_opsetid('', 18)]))
    theirs = torch.from_numpy(session.run(None, {'x': x.numpy()})[0]).long()
    assert torch.equal(onnx_quantize(x, s, torch.tensor(zero_point, dtype=torch.uint8)), theirs)


def test_int32_bias_rounds_half_to_even_or_truncates():
    b = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1.99, -1.99])
    assert int32_bias(b, 1.0, 1.0).tolist() == [0, 2, 2, 0, -2, 2, -2]
    assert int32_bias(b, 1.0, 1.0, 'truncate').tolist() == [0, 1, 2, 0, -1, 1, -1]
    assert int32_bias(np.array([1.0, 1.0]), 0.5, np.array([0.5, 0.25])).tolist() == [4, 8]
    with pytest.raises(ValueError, match='rounding'):
        int32_bias(b, 1.0, 1.0, 'away')
    with pytest.raises(ValueError, match='beyond int32'):
        int32_bias(np.array([1.0]), 1e-20, 1e-20)


def test_a_float_model_is_refused_with_the_fix():
    model = MLP().eval()
    with pytest.raises(TypeError, match="int8-static-pt2e"):
        export_onnx(model, torch.randn(2, 1, 16, 16), 'never.onnx')
    graph = torch.export.export(model, (torch.randn(2, 1, 16, 16),)).module()
    with pytest.raises(ValueError, match='no quantize node'):
        check_pt2e_static(graph)


def test_seven_bit_activations_are_refused():
    with pytest.raises(ValueError, match='reduce_range=False'):
        check_pt2e_static(_pt2e('mlp', 0, reduce_range=True))


def test_a_dynamic_model_is_refused():
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    x = torch.randn(4, 1, 16, 16)
    graph = torch.export.export(MLP().eval(), (x,)).module()
    config = xiq.get_default_x86_inductor_quantization_config(is_dynamic=True)
    prepared = prepare_pt2e(graph, xiq.X86InductorQuantizer().set_global(config))
    prepared(x)
    with pytest.raises(ValueError, match='constant scales'):
        check_pt2e_static(convert_pt2e(prepared))


def test_an_op_the_exporter_cannot_map_is_named_and_no_file_is_left(tmp_path):
    class Cummax(nn.Module):
        def forward(self, x):
            return torch.cummax(x, dim=1).values
    with pytest.raises(ValueError, match='aten.cummax'):
        export_onnx(Cummax(), torch.randn(2, 5), tmp_path / 'm.onnx', allow_float=True)
    assert list(tmp_path.iterdir()) == []


def test_bad_export_arguments(exported, tmp_path):
    model, _ = exported['mlp', 0]
    with pytest.raises(ValueError, match='bias'):
        export_onnx(model, torch.randn(2, 1, 16, 16), tmp_path / 'm.onnx', bias='round')
    with pytest.raises(TypeError, match='example'):
        export_onnx(model, torch.zeros(2, 1, 16, 16, dtype=torch.long), tmp_path / 'm.onnx')


def test_a_file_ort_refuses_and_one_the_reference_cannot_run(tmp_path):
    h = onnx.helper
    graph = h.make_graph([h.make_node('NoSuchOp', ['x'], ['y'])], 'bad',
                         [h.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [1])],
                         [h.make_tensor_value_info('y', onnx.TensorProto.FLOAT, [1])])
    bad = h.make_model(graph)
    with pytest.raises(ValueError, match='ONNX Runtime refuses'):
        ort_session(bad)
    with pytest.raises(ValueError, match='NoSuchOp'):
        QdqReference(bad)
    (tmp_path / 'junk.onnx').write_bytes(b'not a model')
    with pytest.raises(ValueError, match='ONNX Runtime refuses'):
        ort_session(tmp_path / 'junk.onnx')
    with pytest.raises(FileNotFoundError):
        ort_session(tmp_path / 'missing.onnx')
    with pytest.raises(ValueError, match='no node'):
        with_outputs(bad, ['nowhere'])


def test_quantnb_imports_without_the_extra_and_names_it():
    code = ("import sys\n"
            "for name in ('onnx', 'onnxruntime', 'onnxscript'): sys.modules[name] = None\n"
            "import torch, quantnb.deploy as d\n"
            "try:\n"
            "    d.export_onnx(torch.nn.Linear(2, 2), torch.randn(1, 2), 'x.onnx')\n"
            "except ImportError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "pip install 'quantnb[onnx]'" in out.stdout and 'onnxruntime' in out.stdout
