"`quantnb.ptq` on models the notebook never shows, trained briefly on real Fashion-MNIST images, checked against their fp32 versions."
import warnings

import pytest
import torch
import torch.ao.quantization as tq
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional

from quantnb.data import calibration_batches, get_dataloaders
from quantnb.models import train
from quantnb.observers import MSEObserver
from quantnb.ptq import PTQProcessor, compare_models, fusable_groups, static_qconfig, take_batches
from quantnb.measure import interleaved_latency

warnings.filterwarnings('ignore', category=DeprecationWarning)
warnings.filterwarnings('ignore', message='.*quantize.*deprecated', category=UserWarning)


class MLP(nn.Module):
    "No stubs at all: static_quantization must wrap it."
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    def forward(self, x): return self.body(x)


class BNNet(nn.Module):
    "Conv-BN-ReLU blocks, not in a Sequential: fusion must find them in the dataflow."
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.c1, self.b1, self.r1 = nn.Conv2d(1, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU()
        self.c2, self.b2, self.r2 = nn.Conv2d(8, 16, 3, stride=2), nn.BatchNorm2d(16), nn.ReLU()
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(16, 10)
    def forward(self, x):
        x = self.r2(self.b2(self.c2(self.r1(self.b1(self.c1(self.quant(x)))))))
        return self.dequant(self.fc(self.pool(x).flatten(1)))


class ResNetLike(nn.Module):
    "A residual block whose skip connection is a FloatFunctional (or a plain `+`, which eager mode cannot convert)."
    def __init__(self, float_functional=True):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.stem, self.relu = nn.Conv2d(1, 8, 3, padding=1), nn.ReLU()
        self.conv, self.relu2 = nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        self.skip = FloatFunctional() if float_functional else None
        self.fc = nn.Linear(8 * 14 * 14, 10)
    def forward(self, x):
        h = F.max_pool2d(self.relu(self.stem(self.quant(x))), 2)
        r = self.relu2(self.conv(h))
        h = self.skip.add(h, r) if self.skip is not None else h + r
        return self.dequant(self.fc(h.flatten(1)))


@pytest.fixture(scope='module')
def data():
    train_dl, test_dl = get_dataloaders(batch_size=64, subset=3000, test_subset=1000, seed=0)
    return train_dl, test_dl, calibration_batches(num_batches=8)


def _trained(model, data, epochs=1, lr=3e-3):
    train(model, data[0], data[1], epochs=epochs, lr=lr)
    return model.eval()


def _agreement(a, b, test_dl, margin=0.0):
    "Share of test images where `b` predicts `a`'s class, among those where `a`'s top two logits differ by more than `margin`."
    agree = []
    with torch.no_grad():
        for x, _ in test_dl:
            logits = a(x)
            top2 = logits.topk(2, 1).values
            confident = (top2[:, 0] - top2[:, 1]) > margin
            agree.append((logits.argmax(1) == b(x).argmax(1))[confident].float())
    return torch.cat(agree).mean().item()


@pytest.mark.parametrize('make', [MLP, BNNet, ResNetLike], ids=lambda m: m.__name__)
def test_static_quantization_agrees_with_fp32(make, data):
    "BNNet is tiny (8 and 16 channels, about 60% accurate after this training): many of its predictions are near-ties,"
    "which 7-bit activations may flip, so its bound is on the predictions fp32 makes with a margin; where the margin"
    "is larger than quantization noise, int8 must agree."
    model = _trained(make(), data, **(dict(epochs=3, lr=1e-2) if make is BNNet else {}))
    quantized = PTQProcessor().static_quantization(model, data[2], observer=MSEObserver if make is MLP else None)
    assert _agreement(model, quantized, data[1], margin=1.0 if make is BNNet else 0.0) >= 0.97
    assert any('quantized' in type(m).__module__ for m in quantized.modules())


def test_fusion_is_found_in_the_dataflow():
    assert fusable_groups(BNNet()) == [['c1', 'b1', 'r1'], ['c2', 'b2', 'r2']]
    assert fusable_groups(MLP()) == [['body.1', 'body.2'], ['body.3', 'body.4']]


def test_unsupported_functional_op_is_a_clear_error(data):
    with pytest.raises(ValueError, match=r'aten::add.*FloatFunctional\(\)\.add'):
        PTQProcessor().static_quantization(ResNetLike(float_functional=False).eval(), data[2])


def test_functional_relu_warns():
    class FunctionalReLU(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(784, 10)
        def forward(self, x): return F.relu(self.fc(x.flatten(1)))
    with pytest.warns(UserWarning, match='use nn.ReLU'):
        PTQProcessor().static_quantization(FunctionalReLU(), [(torch.randn(8, 1, 28, 28), None)])


def test_dynamic_quantization_of_an_lstm():
    torch.manual_seed(0)
    lstm = nn.LSTM(16, 32, batch_first=True).eval()
    quantized = PTQProcessor().dynamic_quantization(lstm, module_types=['LSTM'])
    x = torch.randn(4, 10, 16)
    out, out_q = lstm(x)[0], quantized(x)[0]
    assert type(quantized).__module__.startswith('torch.ao.nn.quantized.dynamic')
    assert (out - out_q).abs().max() < 0.05 * out.abs().max()


def test_dynamic_quantization_arguments():
    ptq = PTQProcessor()
    mlp = MLP()
    for types in (['Linear'], ['nn.Linear'], [nn.Linear], ['linear'], 'Linear', nn.Linear):
        assert type(ptq.dynamic_quantization(mlp, module_types=types).body[1]).__name__ == 'Linear'
    with pytest.warns(UserWarning, match="'conv2d' skipped"):
        quantized = ptq.dynamic_quantization(mlp, module_types=['linear', 'conv2d', 'lstm', 'gru'])  # the seed's default list
    assert type(quantized.body[1]).__module__.startswith('torch.ao.nn.quantized.dynamic')
    with pytest.warns(UserWarning), pytest.raises(ValueError, match='leaves nothing'): ptq.dynamic_quantization(mlp, module_types=['Conv2d'])
    with pytest.raises(ValueError, match="'Conv3x3' is not a module"): ptq.dynamic_quantization(mlp, module_types=['Conv3x3'])
    with pytest.warns(UserWarning), pytest.raises(ValueError, match='leaves nothing'):
        ptq.dynamic_quantization(mlp, module_types=[nn.Conv2d])  # a class too: no silent float copy
    with pytest.raises(ValueError, match='ReLU is not a module'):
        ptq.dynamic_quantization(mlp, module_types=[nn.ReLU])
    with pytest.raises(TypeError, match='module classes'):
        ptq.dynamic_quantization(mlp, module_types=[3])
    assert ptq.supported_modules[nn.Conv2d] == 'conv2d' and ptq.supported_dtypes == [torch.qint8, torch.float16]
    with pytest.raises(ValueError, match='dtype=torch.int8'): ptq.dynamic_quantization(mlp, dtype=torch.int8)
    with pytest.raises(TypeError, match='model must be a torch.nn.Module'): ptq.dynamic_quantization('x')
    with pytest.raises(TypeError, match='model must be a torch.nn.Module'): ptq.static_quantization('x', [torch.zeros(1, 784)])
    with pytest.raises(ValueError, match="backend='nope'"): PTQProcessor('nope')


def test_global_quantized_engine_is_restored(data):
    previous = torch.backends.quantized.engine
    other = next(e for e in torch.backends.quantized.supported_engines if e not in (previous, 'none'))
    torch.backends.quantized.engine = other
    try:
        PTQProcessor('x86').static_quantization(MLP().eval(), data[2], num_batches=2)
        PTQProcessor('x86').dynamic_quantization(MLP())
        assert torch.backends.quantized.engine == other
    finally: torch.backends.quantized.engine = previous


def test_calibration_data_may_be_any_iterable(data):
    "A generator is read once (it used to end in a bare StopIteration); bare image tensors work like (images, labels)."
    model = _trained(MLP(), data)
    batches = data[2][:4]
    reference = PTQProcessor().static_quantization(model, batches)
    for calibration_data in ((b for b in batches), iter(batches), [x for x, _ in batches]):
        quantized = PTQProcessor().static_quantization(model, calibration_data)
        x = batches[0][0]
        assert torch.equal(quantized(x), reference(x))
    pt2e = PTQProcessor().torchao_quantization(model, 'int8-static-pt2e', (b for b in batches))
    assert _agreement(model, pt2e, data[1]) >= 0.97


@pytest.mark.parametrize('bad,error,message', [([], ValueError, 'yielded no batches'), (torch.randn(8, 1, 28, 28), TypeError, 'wrap one batch in a list'),
                                               (5, TypeError, 'must be an iterable'), ([('images', 'labels')], TypeError, 'calibration_data')],
                         ids=['empty', 'one tensor', 'not iterable', 'batches without tensors'])
def test_bad_calibration_data_is_a_clear_error(bad, error, message):
    with pytest.raises(error, match=message): PTQProcessor().static_quantization(MLP(), bad)


@pytest.mark.parametrize('num_batches', [0, -1, 2.5, True])
def test_bad_num_batches(num_batches):
    with pytest.raises(ValueError, match='num_batches'): take_batches([torch.zeros(1)], num_batches)


def test_static_default_uses_7_bit_activations(data):
    "The default qconfig gives activations the codes 0..127 (reduce_range), so that no CPU saturates (notebook 04)."
    assert static_qconfig().activation().quant_max == 127 and static_qconfig(reduce_range=False).activation().quant_max == 255
    quantized = PTQProcessor().static_quantization(_trained(MLP(), data), data[2])
    codes = quantized.quant(data[2][0][0]).int_repr()
    assert codes.max() <= 127 and codes.max() > 100  # in-range data use the 7-bit codes, and most of them


def test_dynamic_and_torchao_agree_with_fp32(data):
    model = _trained(MLP(), data)
    ptq = PTQProcessor()
    for quantized in (ptq.dynamic_quantization(model), ptq.torchao_quantization(model, 'int8-weight-only'),
                      ptq.torchao_quantization(model, 'int8-dynamic'), ptq.torchao_quantization(model, 'int8-static-pt2e', data[2])):
        assert _agreement(model, quantized, data[1]) >= 0.97
    with pytest.raises(ValueError, match='needs calibration_data'): ptq.torchao_quantization(model, 'int8-static-pt2e')
    with pytest.raises(ValueError, match="method='int4'"): ptq.torchao_quantization(model, 'int4')


SEED_COMPARE_KEYS = ['original_size_mb', 'quantized_size_mb', 'size_reduction_percent', 'original_time_ms', 'quantized_time_ms',
                     'speed_up', 'original_accuracy', 'quantized_accuracy', 'accuracy_drop_percent']


def test_compare_models_has_the_seed_keys_and_units(data):
    model = _trained(MLP(), data)
    quantized = PTQProcessor().dynamic_quantization(model)
    res = PTQProcessor().compare_models(model, quantized, data[1], iters=3)
    assert list(res)[:9] == SEED_COMPARE_KEYS
    from quantnb.measure import model_size_bytes
    assert res['original_size_mb'] == model_size_bytes(model) / 2**20  # MiB, as the seed
    assert abs(res['size_reduction_percent'] - 100 * (1 - model_size_bytes(quantized) / model_size_bytes(model))) < 1e-9
    assert abs(res['accuracy_drop_percent'] - 100 * (res['original_accuracy'] - res['quantized_accuracy']) / res['original_accuracy']) < 1e-9
    assert abs(res['speed_up'] - res['original_time_ms'] / res['quantized_time_ms']) < 1e-9 and res['size_ratio'] > 3
    assert res['batch_size'] == len(next(iter(data[1]))[0])
    from_generator = compare_models(model, quantized, (b for b in data[1]), iters=3)  # read once, used for latency and both accuracies
    assert from_generator['original_accuracy'] == res['original_accuracy'] and from_generator['quantized_accuracy'] == res['quantized_accuracy']


def test_interleaved_latency_times_every_model_in_every_round():
    calls = []
    class Probe(nn.Module):
        def __init__(self, name): super().__init__(); self.name = name
        def forward(self, x): calls.append(self.name); return x
    times = interleaved_latency({'a': Probe('a'), 'b': Probe('b')}, torch.zeros(1), iters=6, rounds=3)
    assert [len(t) for t in times.values()] == [6, 6]
    assert calls == (['a'] * 7 + ['b'] * 7) * 3  # 5 warm-up and 2 timed calls per model and round, alternating
    with pytest.raises(ValueError, match='rounds'): interleaved_latency({'a': Probe('a')}, torch.zeros(1), iters=2, rounds=3)


def test_untraceable_model_is_quantized_without_automatic_fusion(data):
    class DataDependent(MLP):
        def forward(self, x):
            return self.body(x) if x.shape[0] > 0 else self.body(x[:0])  # control flow: torch.fx cannot trace it
    model = _trained(DataDependent(), data)
    with pytest.warns(UserWarning, match='cannot trace'):
        quantized = PTQProcessor().static_quantization(model, data[2])
    assert _agreement(model, quantized, data[1]) >= 0.97


class SharedReLU(nn.Module):
    "One nn.ReLU used after two convolutions: fusing it into the first would turn its second use into Identity."

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.relu = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3), nn.ReLU()
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(self.relu(self.conv2(self.relu(self.conv1(x)))).flatten(1))


def test_a_shared_relu_is_not_fused_and_the_model_stays_right():
    torch.manual_seed(0)
    model, x = SharedReLU().eval(), torch.randn(32, 1, 12, 12)
    with pytest.warns(UserWarning, match='called more than once'):
        quantized = PTQProcessor().static_quantization(model, [(x, None)])
    reference = model(x)
    assert (quantized(x) - reference).norm() / reference.norm() < 0.1
    assert isinstance(model.relu, nn.ReLU)  # the caller's model is unchanged
