"The seed's `QuantizationAnalyzer` calls, as the seed wrote them, on quantnb."
import warnings

import pytest
import torch
import torch.nn as nn
from torch.ao.quantization import DeQuantStub, QuantStub

from quantnb.analysis import QuantizationAnalyzer
from quantnb.ptq import PTQProcessor

warnings.filterwarnings('ignore', category=DeprecationWarning)
warnings.filterwarnings('ignore', message='.*quantize.*deprecated', category=UserWarning)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = QuantStub(), DeQuantStub()
        self.conv, self.relu, self.flatten, self.fc = nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10)
    def forward(self, x): return self.dequant(self.fc(self.flatten(self.relu(self.conv(self.quant(x))))))


@pytest.fixture(scope='module')
def models():
    torch.manual_seed(0)
    original_model = Net().eval()
    xs = [torch.randn(16, 1, 28, 28) for _ in range(12)]
    with torch.no_grad(): test_data = [(x, original_model(x).argmax(1)) for x in xs]
    quantized_model = PTQProcessor().static_quantization(original_model, test_data, num_batches=2)
    return original_model, quantized_model, test_data


def test_seed_call_and_keys(models, capsys):
    original_model, quantized_model, test_data = models
    # the seed's named_parameters() comparison finds nothing here (int8 weights are packed, not Parameters): its layer analysis was empty
    assert not list(quantized_model.parameters())
    analyzer = QuantizationAnalyzer()
    results = analyzer.analyze_quantization_quality(original_model, quantized_model, test_data)
    perf, prec = results['performance'], results['precision']
    for key in ('original_accuracy', 'quantized_accuracy', 'accuracy_drop_percent', 'original_inference_time_ms', 'quantized_inference_time_ms', 'speedup_factor'):
        assert isinstance(perf[key], float), key
    assert perf['original_accuracy'] == 1.0  # a fraction, as the seed's correct / total
    assert perf['accuracy_drop_percent'] == pytest.approx((perf['original_accuracy'] - perf['quantized_accuracy']) / perf['original_accuracy'] * 100)
    assert perf['speedup_factor'] == pytest.approx(perf['original_inference_time_ms'] / perf['quantized_inference_time_ms'])
    for key in ('average_output_mse', 'max_output_mse', 'output_variance'): assert prec[key] >= 0, key
    assert prec['num_samples_analyzed'] == 12  # the seed's meaning (batches), over all the data, not capped at 10
    assert prec['max_output_mse'] >= prec['average_output_mse']
    assert results['overall_quality'] in ('优秀', '良好', '一般', '需要改进')  # the seed's words
    assert results['layer_analysis'], 'the seed found no layers on converted models; quantnb must'
    for layer_name, analysis in results['layer_analysis'].items():  # the seed's _print_analysis_results reads these
        assert analysis['parameter_mse'] >= 0 and analysis['compression_ratio'] == 4.0
        assert analysis['original_shape'] == analysis['quantized_shape']
    assert analyzer._calculate_overall_quality(perf, prec) == results['overall_quality']
    analyzer._print_analysis_results(results)
    out = capsys.readouterr().out
    assert results['overall_quality'] in out and 'conv' in out and 'fc' in out


def test_seed_accepts_a_generator(models):
    original_model, quantized_model, test_data = models
    results = QuantizationAnalyzer(iters=3, layer_batches=1).analyze_quantization_quality(original_model, quantized_model, iter(test_data))
    assert results['precision']['num_samples_analyzed'] == 12


def test_seed_thresholds():
    analyzer = QuantizationAnalyzer()
    grade = lambda drop, speedup, mse: analyzer._calculate_overall_quality(dict(accuracy_drop_percent=drop, speedup_factor=speedup), dict(average_output_mse=mse))
    assert grade(0.5, 2.5, 0.005) == '优秀' and grade(1.5, 1.6, 0.02) == '良好' and grade(4, 1.3, 0.09) == '一般'
    assert grade(6, 3, 0.001) == '需要改进' and grade(0.5, 1.1, 0.001) == '需要改进'
    assert grade(1, 2.5, 0.005) == '良好'  # the seed's strict '<': a drop of exactly 1% is not excellent


def test_seed_layer_analysis_on_a_dynamic_model(models):
    "The seed's named_parameters() found only the convolutions dynamic quantization leaves float (MSE 0); quantnb reads the int8 Linear too."
    original_model, _, test_data = models
    dynamic = PTQProcessor().dynamic_quantization(original_model)
    seed_view = set(dict(original_model.named_parameters())) & set(dict(dynamic.named_parameters()))
    assert seed_view == {'conv.weight', 'conv.bias'}  # what the seed compared: unquantized, identical
    layers = QuantizationAnalyzer(iters=3, layer_batches=1).analyze_quantization_quality(original_model, dynamic, test_data)['layer_analysis']
    assert layers['fc']['parameter_mse'] > 0 and layers['fc']['compression_ratio'] == 4.0 and layers['conv']['parameter_mse'] == 0
