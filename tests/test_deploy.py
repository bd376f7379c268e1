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
    BIAS_MODES,
    OrtClassifier,
    QdqReference,
    check_onnx_qparams,
    check_pt2e_static,
    code_parity,
    export_onnx,
    int32_bias,
    load_proto,
    onnx_quantize,
    op_types,
    optimized_op_types,
    ort_codes,
    ort_session,
    pt2e_codes,
    quantize_biases,
    quantize_outputs,
    with_outputs,
)
from quantnb.measure import cpu_info
from quantnb.ptq import PTQProcessor

onnx = pytest.importorskip('onnx')
_CPU = cpu_info()
needs_vnni = pytest.mark.skipif(not (_CPU['vnni'] or _CPU['avx_vnni']),
                                reason='exact ORT parity is claimed for VNNI kernels only; without VNNI, MLAS pairs '
                                       'u8xs8 products in 16 bits (set x64_precision=True and check on that CPU)')
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
                     for bias in BIAS_MODES}
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
    assert counts['QuantizeLinear'] >= 2
    assert counts['DequantizeLinear'] > counts['QuantizeLinear']
    proto = onnx.load(str(path))
    assert all(i.data_type == onnx.TensorProto.INT8 for i in proto.graph.initializer if len(i.dims) >= 2)
    assert sum(i.data_type == onnx.TensorProto.INT32 for i in proto.graph.initializer) >= 2  # int32 biases


@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_ort_fuses_the_qdq_groups_even_with_the_codes_exposed(exported, case):
    proto = onnx.load(str(exported[case][1]['half_even']))
    fused = lambda c: {k: v for k, v in c.items() if k.startswith(('QLinear', 'QGemm'))}
    plain = fused(optimized_op_types(proto))
    assert plain
    assert plain == fused(optimized_op_types(with_outputs(proto, quantize_outputs(proto))))


@needs_vnni
@pytest.mark.parametrize('bias', BIAS_MODES)
@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_ort_equals_the_integer_reference_code_for_code(exported, case, bias):
    "Inputs up to 3x beyond the calibrated range: saturated codes included. A float bias: ORT's float32 Round(Div)."
    _, files = exported[case]
    proto = onnx.load(str(files[bias]))
    batches = _batches(ARCHS[case[0]][1], seed=100 + case[1], n=2, spread=3.0)
    rows = code_parity(proto, batches, QdqReference(proto, 'float32').codes)
    assert sum(r['values'] for r in rows[:-1]) > 0
    assert [r['values_differing'] for r in rows[:-1]] == [0] * (len(rows) - 1), rows
    assert rows[-1]['top1_differing'] == 0
    assert all(r['top1_differing'] is None for r in rows[:-1])
    if bias != 'float':  # int32 biases: ORT fuses the last layer into a QGemm with float output, exactly as ours
        assert rows[-1]['max_diff'] == 0
    else:  # a float bias on a layer without QuantizeLinear after it: ORT runs a float Gemm
        assert rows[-1]['max_diff'] < 1e-4
        assert optimized_op_types(proto)['Gemm'] == 1


@needs_vnni
@pytest.mark.parametrize('seed', [0, 1])
def test_other_bias_roundings_move_codes_that_ort_does_not(exported, seed):
    """The float-bias file: the reference with truncated biases is not what ORT computes (the convolutional net: the
    MLP's few hundred outputs may all stay put)."""
    case = 'convnet', seed
    proto = onnx.load(str(exported[case][1]['float']))
    batches = _batches(ARCHS[case[0]][1], seed=200 + case[1], n=2, spread=3.0)
    moved = {mode: sum(r['values_differing'] for r in code_parity(proto, batches, QdqReference(proto, mode).codes)[:-1])
             for mode in ('float32', 'truncate')}
    assert moved['float32'] == 0
    assert moved['truncate'] > 0


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
    assert "pip install 'quantnb[onnx]'" in out.stdout
    assert 'onnxruntime' in out.stdout


# ---- constructed graphs: one Gemm whose input codes equal the zero point, so its accumulator is the bias alone ----

def _bias_only_gemm(bias, x_scale, w_scale, y_scale, y_zero_point, int32=False):
    "x -> Q -> DQ -> Gemm(w = ones, bias) -> Q: for x = 0 the output codes are the bias requantized."
    h, nh = onnx.helper, onnx.numpy_helper
    n = len(bias)
    inits = [nh.from_array(np.array(x_scale, np.float32), 'sx'), nh.from_array(np.array(0, np.uint8), 'zx'),
             nh.from_array(np.ones((n, 1), np.int8), 'wq'), nh.from_array(np.array(w_scale, np.float32), 'sw'),
             nh.from_array(np.array(0, np.int8), 'zw'), nh.from_array(np.array(y_scale, np.float32), 'sy'),
             nh.from_array(np.array(y_zero_point, np.uint8), 'zy')]
    nodes = [h.make_node('QuantizeLinear', ['x', 'sx', 'zx'], ['xq'], name='qx'),
             h.make_node('DequantizeLinear', ['xq', 'sx', 'zx'], ['xd'], name='dqx'),
             h.make_node('DequantizeLinear', ['wq', 'sw', 'zw'], ['wd'], name='dqw')]
    if int32:
        inits += [nh.from_array(np.array(bias, np.int32), 'bq'),
                  nh.from_array(np.array(np.float32(x_scale) * np.float32(w_scale), np.float32), 'sb')]
        nodes.append(h.make_node('DequantizeLinear', ['bq', 'sb'], ['b'], name='dqb'))
    else:
        inits.append(nh.from_array(np.array(bias, np.float32), 'b'))
    nodes += [h.make_node('Gemm', ['xd', 'wd', 'b'], ['yf'], transB=1, name='gemm'),
              h.make_node('QuantizeLinear', ['yf', 'sy', 'zy'], ['y'], name='qy')]
    graph = h.make_graph(nodes, 'bias', [h.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [None, 1])],
                         [h.make_tensor_value_info('y', onnx.TensorProto.UINT8, [None, n])], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid('', 18)])


NEAR_HALF = [0.49500003, 0.9750001, 1.005, 1.0350001]  # quotients by 0.1 * 0.3 near a half-step


def test_ort_rounds_a_float_bias_in_float32_and_the_float32_mode_reproduces_it():
    proto = _bias_only_gemm(NEAR_HALF, 0.1, 0.3, np.float32(0.1) * np.float32(0.3), 0)
    x = torch.zeros(1, 1)
    theirs = ort_codes(proto, x)['y']
    assert theirs.tolist() == [[16, 32, 34, 34]]
    assert QdqReference(proto, 'float32').codes(x)['y'].tolist() == theirs.tolist()
    assert QdqReference(proto, 'half_even').codes(x)['y'].tolist() == [[17, 33, 33, 35]]
    assert int32_bias(np.array(NEAR_HALF, np.float32), 0.1, 0.3, 'float32').tolist() == [16, 32, 34, 34]
    assert int32_bias(np.array(NEAR_HALF, np.float32), 0.1, 0.3, 'half_even').tolist() == [17, 33, 33, 35]


def test_quantize_biases_writes_what_ort_would_compute_in_float32_mode():
    proto = _bias_only_gemm(NEAR_HALF, 0.1, 0.3, np.float32(0.1) * np.float32(0.3), 0)
    before = ort_codes(proto, torch.zeros(1, 1))['y']
    assert quantize_biases(proto, 'float32') == 1
    assert ort_codes(proto, torch.zeros(1, 1))['y'].tolist() == before.tolist()


def test_a_product_beyond_int32_saturates_as_orts_mlas_does():
    "Bias +-2^30 steps, multiplier 4, zero point 10: MLAS clamps in float first; fbgemm's conversion would wrap."
    proto = _bias_only_gemm([2**30, -2**30], 1.0, 1.0, 0.25, 10, int32=True)
    x = torch.zeros(1, 1)
    theirs = ort_codes(proto, x)['y']
    assert theirs.tolist() == [[255, 0]]
    assert QdqReference(proto).codes(x)['y'].tolist() == [[255, 0]]


def test_onnx_quantize_gives_a_nan_code_0_as_ort_does():
    h = onnx.helper
    graph = h.make_graph([h.make_node('QuantizeLinear', ['x', 's', 'z'], ['q'])], 'q',
                         [h.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [3])],
                         [h.make_tensor_value_info('q', onnx.TensorProto.UINT8, [3])],
                         [onnx.numpy_helper.from_array(np.array(0.1, np.float32), 's'),
                          onnx.numpy_helper.from_array(np.array(7, np.uint8), 'z')])
    session = ort_session(h.make_model(graph, opset_imports=[h.make_opsetid('', 18)]))
    x = torch.tensor([float('nan'), 1.0, -float('inf')])
    theirs = torch.from_numpy(session.run(None, {'x': x.numpy()})[0]).long()
    assert torch.equal(onnx_quantize(x, torch.tensor(0.1), torch.tensor(7, dtype=torch.uint8)), theirs)
    assert theirs.tolist() == [0, 17, 0]


@pytest.mark.parametrize('args, error, match', [
    ((torch.tensor(0.0), torch.tensor(0, dtype=torch.uint8)), ValueError, 'scale'),
    ((torch.tensor(-0.1), torch.tensor(0, dtype=torch.uint8)), ValueError, 'scale'),
    ((torch.tensor(float('nan')), torch.tensor(0, dtype=torch.uint8)), ValueError, 'scale'),
    ((torch.tensor(0.1), torch.tensor(300)), ValueError, 'zero_point'),
    ((torch.tensor(0.1), torch.tensor(3, dtype=torch.int8)), ValueError, 'zero_point is torch.int8'),
    ((torch.tensor(0.1), torch.tensor(3.0)), TypeError, 'zero_point'),
    (('0.1', 0), TypeError, 'scale'),
], ids=['scale-0', 'scale-negative', 'scale-nan', 'zero-point-300', 'int8-zero-point-uint8-codes', 'float-zero-point',
        'string-scale'])
def test_onnx_quantize_refuses_bad_qparams(args, error, match):
    with pytest.raises(error, match=match):
        onnx_quantize(torch.randn(4), *args)


def test_onnx_quantize_takes_python_numbers_and_refuses_integer_x():
    assert onnx_quantize(torch.tensor([0.25, 1.0]), 0.1, 3).tolist() == [5, 13]
    with pytest.raises(TypeError, match='x must be a float tensor'):
        onnx_quantize(torch.tensor([1, 2]), 0.1, 0)


@pytest.mark.parametrize('args, error, match', [
    ((np.array(['1.0']), 1.0, 1.0), TypeError, 'bias'),
    ((np.array([1.0]), -1.0, 1.0), ValueError, 'x_scale'),
    ((np.array([[1.0]]), 1.0, 1.0), ValueError, 'bias must be 1-D'),
    ((np.array([1.0, 2.0]), np.array([1.0, 2.0]), 1.0), ValueError, 'x_scale must be one number'),
    ((np.array([np.nan]), 1.0, 1.0), ValueError, 'NaN'),
    ((np.array([1.0]), 1.0, np.array([[1.0]])), ValueError, 'w_scale'),
], ids=['string', 'negative-x-scale', '2d-bias', 'per-channel-x-scale', 'nan-bias', '2d-w-scale'])
def test_int32_bias_refuses_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        int32_bias(*args)


def test_export_checks_opset_and_example_first(exported, tmp_path):
    model, _ = exported['mlp', 0]
    x = torch.randn(2, 1, 16, 16)
    with pytest.raises(ValueError, match='opset=13'):
        export_onnx(model, x, tmp_path / 'm.onnx', opset=13)
    with pytest.raises(TypeError, match='opset must be an int'):
        export_onnx(model, x, tmp_path / 'm.onnx', opset='18')
    with pytest.raises(TypeError, match='float32'):
        export_onnx(model, x.double(), tmp_path / 'm.onnx')
    with pytest.raises(ValueError, match=r'cannot run example of shape \(1, 16, 16\)') as info:
        export_onnx(model, x[0], tmp_path / 'm.onnx')
    assert '\x1b' not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_export_errors_carry_no_terminal_colours(tmp_path):
    class Cummax(nn.Module):
        def forward(self, x):
            return torch.cummax(x, dim=1).values
    with pytest.raises(ValueError) as info:
        export_onnx(Cummax(), torch.randn(2, 5), tmp_path / 'm.onnx', allow_float=True)
    assert '\x1b' not in str(info.value)


def test_a_float_file_is_refused_by_the_reference_naming_the_node(tmp_path):
    path = export_onnx(MLP().eval(), torch.randn(2, 1, 16, 16), tmp_path / 'fp32.onnx', allow_float=True)
    with pytest.raises(ValueError, match=r'node .*\(Gemm\) reads .*not a QDQ layer'):
        QdqReference(path)
    with pytest.raises(ValueError, match='no QuantizeLinear'):
        code_parity(onnx.load(str(path)), _batches((1, 16, 16), 0, n=1))


def test_bad_batches_and_images_are_named(exported):
    _, files = exported['convnet', 0]
    proto = onnx.load(str(files['half_even']))
    images, labels = _batches((1, 14, 14), 5, n=1)[0]
    with pytest.raises(ValueError, match='batches is empty'):
        code_parity(proto, [])
    with pytest.raises(ValueError, match='holds no images'):
        code_parity(proto, [(images[:0], labels[:0])])
    with pytest.raises(TypeError, match='batches must'):
        code_parity(proto, images)
    with pytest.raises(ValueError, match="names \\['nope'\\]"):
        code_parity(proto, [(images, labels)], names=['nope'])
    with pytest.raises(TypeError, match='images of an \\(images, labels\\) batch'):
        QdqReference(proto).codes((images, labels))
    with pytest.raises(TypeError, match='images of an'):
        ort_codes(proto, (images, labels))
    with pytest.raises(ValueError, match='NaN'):
        QdqReference(proto).codes(torch.full_like(images, float('nan')))
    with pytest.raises(ValueError, match='the graph takes'):
        ort_codes(proto, torch.zeros(2, 1, 15, 15))
    rows = code_parity(files['half_even'], [(images, labels)])  # a path works as well as a ModelProto
    assert rows[-1]['values'] == 16 * 5
    assert ort_codes(files['half_even'], images).keys() == ort_codes(proto, images).keys()


def test_sessions_and_classifiers_refuse_bad_threads_and_inputs(exported):
    _, files = exported['convnet', 0]
    with pytest.raises(TypeError, match='threads must be an int'):
        ort_session(files['half_even'], threads='2')
    with pytest.raises(ValueError, match='threads=-1'):
        OrtClassifier(files['half_even'], threads=-1)
    classifier = OrtClassifier(files['half_even'])
    with pytest.raises(TypeError, match='float tensor'):
        classifier(torch.zeros(2, 1, 14, 14, dtype=torch.uint8))
    with pytest.raises(TypeError, match='images of an'):
        classifier((torch.zeros(2, 1, 14, 14), torch.zeros(2)))
    with pytest.raises(TypeError, match='model must be an .onnx path'):
        op_types(torch.zeros(3))
    assert classifier(torch.zeros(3, 1, 14, 14)).shape == (3, 5)


@needs_vnni
def test_the_x64_precision_option_exists_and_changes_no_code_on_a_vnni_cpu(exported):
    "On a VNNI CPU the option selects nothing new: the codes are the same with it (on AVX2 it avoids saturation)."
    _, files = exported['convnet', 1]
    proto = onnx.load(str(files['half_even']))
    images = 3 * _batches((1, 14, 14), 9, n=1)[0][0]
    inputs = {'x': images.numpy()}
    exposed = with_outputs(proto, quantize_outputs(proto))
    plain, precise = (ort_session(exposed, x64_precision=flag) for flag in (False, True))
    name = plain.get_inputs()[0].name
    for ours, theirs in zip(plain.run(None, {name: inputs['x']}), precise.run(None, {name: inputs['x']})):
        assert np.array_equal(ours, theirs)


@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_the_unfused_float_graph_is_within_one_code_of_the_reference(exported, case):
    proto = onnx.load(str(exported[case][1]['half_even']))
    rows = code_parity(proto, _batches(ARCHS[case[0]][1], seed=400 + case[1], n=1, spread=3.0), optimize=False)
    assert all(r['max_diff'] <= 1 for r in rows[:-1])


def test_prepared_models_and_signed_activations_are_refused():
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e
    x = torch.randn(4, 1, 16, 16)
    graph = torch.export.export(MLP().eval(), (x,)).module()
    config = xiq.get_default_x86_inductor_quantization_config()
    prepared = prepare_pt2e(graph, xiq.X86InductorQuantizer().set_global(config))
    prepared(x)
    with pytest.raises(ValueError, match='convert_pt2e'):
        check_pt2e_static(prepared)
    model = _pt2e('mlp', 0)
    node = next(n for n in model.graph.nodes if 'quantize_per_tensor' in str(n.target))
    node.args = (*node.args[:3], -128, 127, torch.int8)  # as a quantizer with signed activations writes it
    with pytest.raises(ValueError, match='torch.int8 activations'):
        check_pt2e_static(model)


@pytest.mark.parametrize('scale, zero_point, match', [
    (torch.tensor([]), 0, r'scale has shape \(0,\)'),
    (torch.full((2, 2), 0.1), 0, r'scale has shape \(2, 2\)'),
    (torch.tensor([0.1, 0.2]), torch.tensor([0, 1, 2]), r'zero_point has shape \(3,\) but scale has shape \(2,\)'),
    (torch.tensor(0.1), torch.tensor([0, 1]), r'zero_point has shape \(2,\) but scale has shape \(\)'),
], ids=['empty-scale', '2d-scale', 'three-zero-points-two-scales', 'two-zero-points-one-scale'])
def test_check_onnx_qparams_refuses_scales_and_zero_points_that_do_not_pair(scale, zero_point, match):
    with pytest.raises(ValueError, match=match):
        check_onnx_qparams(scale, zero_point)


def test_check_onnx_qparams_takes_one_zero_point_or_one_per_scale():
    scale, zero_point = check_onnx_qparams(torch.tensor([0.1, 0.2]), 3)
    assert scale.shape == (2,) and zero_point.item() == 3
    _, zero_point = check_onnx_qparams(torch.tensor([0.1, 0.2]), torch.tensor([1, 2], dtype=torch.uint8))
    assert zero_point.tolist() == [1, 2]


@pytest.mark.parametrize('bias, w_scale', [
    (np.ones(1), np.array([0.1, 0.2, 0.4])),
    (np.ones(3), np.array([0.1, 0.2])),
], ids=['one-bias-three-scales', 'three-biases-two-scales'])
def test_int32_bias_needs_one_weight_scale_or_one_per_bias(bias, w_scale):
    with pytest.raises(ValueError, match='w_scale has .* values but bias has'):
        int32_bias(bias, 1.0, w_scale)


def test_int32_bias_spreads_one_weight_scale_or_pairs_one_per_bias():
    assert int32_bias(np.ones(3), 1.0, np.array([0.5])).tolist() == [2, 2, 2]
    assert int32_bias(np.ones(2), 1.0, np.array([0.5, 0.25])).tolist() == [2, 4]


def test_load_proto_names_a_file_that_holds_no_onnx_model(tmp_path):
    (tmp_path / 'junk.onnx').write_bytes(b'not a model')
    with pytest.raises(ValueError, match='proto: .*junk.onnx is not an ONNX model'):
        load_proto(tmp_path / 'junk.onnx', 'proto')
    (tmp_path / 'empty.onnx').write_bytes(b'')
    with pytest.raises(ValueError, match='holds no ONNX graph'):
        op_types(tmp_path / 'empty.onnx')


def test_quantize_biases_refuses_a_path_by_name(tmp_path):
    with pytest.raises(TypeError, match='proto must be an onnx.ModelProto .*load_proto'):
        quantize_biases(str(tmp_path / 'm.onnx'))
