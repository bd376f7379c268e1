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
from quantnb.ptq import PTQProcessor, compare_models, fusable_groups

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


def _trained(model, data):
    train(model, data[0], data[1], epochs=1, lr=3e-3)
    return model.eval()


def _agreement(a, b, test_dl):
    with torch.no_grad():
        return torch.cat([(a(x).argmax(1) == b(x).argmax(1)).float() for x, _ in test_dl]).mean().item()


@pytest.mark.parametrize('make', [MLP, BNNet, ResNetLike], ids=lambda m: m.__name__)
def test_static_quantization_agrees_with_fp32(make, data):
    model = _trained(make(), data)
    quantized = PTQProcessor().static_quantization(model, data[2], observer=MSEObserver if make is MLP else None)
    assert _agreement(model, quantized, data[1]) >= 0.97
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
    for types in (['Linear'], ['nn.Linear'], [nn.Linear]):
        assert type(ptq.dynamic_quantization(mlp, module_types=types).body[1]).__name__ == 'Linear'
    with pytest.raises(ValueError, match="'Conv2d' is not a module"): ptq.dynamic_quantization(mlp, module_types=['Conv2d'])
    with pytest.raises(ValueError, match='dtype=torch.int8'): ptq.dynamic_quantization(mlp, dtype=torch.int8)
    with pytest.raises(ValueError, match="backend='nope'"): PTQProcessor('nope')


def test_dynamic_and_torchao_agree_with_fp32(data):
    model = _trained(MLP(), data)
    ptq = PTQProcessor()
    for quantized in (ptq.dynamic_quantization(model), ptq.torchao_quantization(model, 'int8-weight-only'),
                      ptq.torchao_quantization(model, 'int8-dynamic'), ptq.torchao_quantization(model, 'int8-static-pt2e', data[2])):
        assert _agreement(model, quantized, data[1]) >= 0.97
    with pytest.raises(ValueError, match='needs calibration_data'): ptq.torchao_quantization(model, 'int8-static-pt2e')
    with pytest.raises(ValueError, match="method='int4'"): ptq.torchao_quantization(model, 'int4')


def test_compare_models_has_the_seed_keys(data):
    model = _trained(MLP(), data)
    res = compare_models(model, PTQProcessor().dynamic_quantization(model), data[1], iters=3)
    assert {'original_size_mb', 'quantized_size_mb', 'original_latency_ms', 'quantized_latency_ms', 'original_accuracy',
            'quantized_accuracy', 'speedup', 'accuracy_drop', 'size_ratio'} <= set(res)
    assert res['size_ratio'] > 3


def test_untraceable_model_is_quantized_without_automatic_fusion(data):
    class DataDependent(MLP):
        def forward(self, x):
            return self.body(x) if x.shape[0] > 0 else self.body(x[:0])  # control flow: torch.fx cannot trace it
    model = _trained(DataDependent(), data)
    with pytest.warns(UserWarning, match='cannot trace'):
        quantized = PTQProcessor().static_quantization(model, data[2])
    assert _agreement(model, quantized, data[1]) >= 0.97
