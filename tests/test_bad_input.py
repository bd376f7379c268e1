"""Bad input, as a hostile user would give it: every public function returns a correct result or raises
`ValueError`/`TypeError` whose message names the argument at fault; never NaN/inf/garbage silently.

The campaign is one table, `CASES`: `case(id, call, error, *words)` says that `call()` must raise `error`
with every one of `words` (the argument's name, usually) in its message. To add cases for another module,
append to `CASES` (or build another list with `case` and add it to the `parametrize` below)."""
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

from quantnb.affine import (QuantizationBasics, calc_qparams, compression_ratio, dequantize, fake_quantize, min_max,
                            plot_quant_grid, plot_sqnr_vs_bits, plot_staircase, qparams_from_range, qrange, qtype,
                            quant_error, quantize, sqnr_vs_bits)
from quantnb.data import (calibration_batches, check_idx, class_names, data_spec, find_idx_files, get_dataloaders, iter_batches, load_dataset, plot_images, prepare_root, read_verified, search_dirs)
from quantnb.core import atomic_write, progress
from quantnb.measure import benchmark_latency, evaluate, interleaved_latency, markdown_table, model_size_bytes
from quantnb.fakequant import (CustomQuantizer, LSQFakeQuantize, QuantizedConv2d, QuantizedLayer, QuantizedLinear, calibrate,
                               fake_quantize_ste, load_packed, pack_codes, pack_int4, packed_state_dict, quantize_layers,
                               quantized_layers, unpack_codes, unpack_int4)
from quantnb.data import tensor_dataset, tensor_loader
from quantnb.qat import QATProcessor, fake_quant, lowbit_qat, mse_scale, prepare_lowbit, qat_qconfig
from quantnb.observers import (EntropyObserver, HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver,
                               MSEObserver, PercentileObserver, clipping_error_curve, code_type, compare_observers,
                               plot_clipping_error)
from quantnb.ptq import (PTQProcessor, compare_models, fusable_groups, ptq_table, quantized_engine, static_qconfig, take_batches)
from quantnb.models import (SampleNet, SampleNetBN, checkpoint_path, load_checkpoint, plot_history, pretrained, train,
                            train_valid_loaders, training_recipe)

def case(id, call, error, *words):
    "One row of the campaign: `call()` raises `error` and its message contains each of `words`."
    return pytest.param(call, error, words, id=id)

# --- the inputs the cases use --------------------------------------------------------------------------------------
X = torch.tensor([-1.0, 0.5, 2.0])
W = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
Q = torch.tensor([-3, 0, 5], dtype=torch.int8)
NP_W = np.linspace(-1, 1, 10, dtype=np.float32)
IMAGES = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
LABELS = torch.arange(8) % 10
BATCHES = [(IMAGES, LABELS)]
QB = QuantizationBasics()

def mlp(): return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

class NaNModel(nn.Module):
    "Outputs NaN logits: argmax of NaN is 0, so a naive accuracy is the share of label 0."
    def __init__(self): super().__init__(); self.fc = nn.Linear(784, 10)
    def forward(self, x): return self.fc(x.flatten(1)) * float('nan')

class FlatModel(nn.Module):
    "Returns one number per image instead of one logit per class."
    def __init__(self): super().__init__(); self.fc = nn.Linear(784, 1)
    def forward(self, x): return self.fc(x.flatten(1)).squeeze(1)

def gen_batches(): yield from BATCHES

def calibrated(layer, quantized=True):
    "`layer` after one calibration batch, switched on."
    calibrate(layer, [(torch.randn(4, layer.base_layer.weight.shape[1]), None)])
    return layer.enable_quantization() if quantized else layer

def assign(obj, name, value): setattr(obj, name, value)

def packed_int4():
    "A per-channel int4 state of a small model, and the model: for load_packed with the wrong quantizer."
    model = nn.Sequential(nn.Linear(16, 8))
    quantizer = CustomQuantizer('int4', 'per-channel', symmetric=True)
    return model, packed_state_dict(quantizer.quantize_model(model), quantizer)

class Residual(nn.Module):
    "A residual `+` in forward: eager-mode int8 has no add for it."
    def __init__(self): super().__init__(); self.a, self.b = nn.Linear(784, 16), nn.Linear(16, 16)
    def forward(self, x): y = self.a(x.flatten(1)); return y + self.b(y)

class SoftmaxHead(nn.Module):
    "The seed's pattern: a softmax in forward, on what would be an int8 activation."
    def __init__(self): super().__init__(); self.fc = nn.Linear(4, 4)
    def forward(self, x): return torch.softmax(self.fc(x), 1)

def nan_linear():
    "An nn.Linear whose weights hold a NaN."
    layer = nn.Linear(4, 5)
    with torch.no_grad(): layer.weight[0, 0] = float('nan')
    return layer

def prepare(model): return QATProcessor().prepare_qat_model(model, torch.optim.SGD(model.parameters(), lr=0.1))

TINY = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 26 * 26, 10))

AFFINE = [
    case('qtype-None', lambda: qtype(None), TypeError, 'dtype'),
    case('qtype-unknown-name', lambda: qtype('int9x'), ValueError, 'dtype'),
    case('qtype-float-dtype', lambda: qtype(torch.float32), TypeError, 'dtype'),
    case('qtype-1-bit', lambda: qtype('int1'), ValueError, 'dtype'),
    case('qtype-uint32', lambda: qtype('uint32'), ValueError, 'dtype'),
    case('qrange-int', lambda: qrange(8), TypeError, 'dtype'),
    case('qparams-min-above-max', lambda: qparams_from_range(1.0, -1.0), ValueError, 'min_val', 'max_val'),
    case('qparams-nan-min', lambda: qparams_from_range(float('nan'), 1.0), ValueError, 'min_val'),
    case('qparams-inf-max', lambda: qparams_from_range(0.0, float('inf')), ValueError, 'max_val'),
    case('qparams-None-min', lambda: qparams_from_range(None, 1.0), TypeError, 'min_val'),
    case('qparams-str-max', lambda: qparams_from_range(0.0, 'one'), TypeError, 'max_val'),
    case('qparams-symmetric-str', lambda: qparams_from_range(-1.0, 1.0, symmetric='yes'), TypeError, 'symmetric'),
    case('qparams-bad-dtype', lambda: qparams_from_range(-1.0, 1.0, 'int99'), ValueError, 'dtype'),
    case('qparams-shape-mismatch', lambda: qparams_from_range(torch.zeros(2), torch.ones(3)), ValueError, 'min_val', 'max_val'),
    case('quantize-list', lambda: quantize([1.0], 0.1, 0), TypeError, 'x'),
    case('quantize-int-tensor', lambda: quantize(torch.arange(3), 0.1, 0), TypeError, 'x'),
    case('quantize-empty', lambda: quantize(torch.empty(0), 0.1, 0), ValueError, 'x'),
    case('quantize-nan', lambda: quantize(torch.tensor([float('nan')]), 0.1, 0), ValueError, 'x'),
    case('quantize-complex', lambda: quantize(torch.zeros(2, dtype=torch.complex64), 0.1, 0), TypeError, 'x'),
    case('quantize-scale-None', lambda: quantize(X, None, 0), TypeError, 'scale'),
    case('quantize-zero_point-None', lambda: quantize(X, 0.1, None), TypeError, 'zero_point'),
    case('quantize-scale-str', lambda: quantize(X, '0.1', 0), TypeError, 'scale'),
    case('quantize-scale-0', lambda: quantize(X, 0.0, 0), ValueError, 'scale'),
    case('quantize-scale-negative', lambda: quantize(X, -1.0, 0), ValueError, 'scale'),
    case('quantize-scale-inf', lambda: quantize(X, float('inf'), 0), ValueError, 'scale'),
    case('quantize-scale-nan', lambda: quantize(X, float('nan'), 0), ValueError, 'scale'),
    case('quantize-scale-1e-40', lambda: quantize(torch.tensor([0.0]), 1e-40, 0), ValueError, 'scale'),
    case('quantize-scale-one-zero', lambda: quantize(W, torch.tensor([0.1, 0.0, 0.1, 0.1]), torch.zeros(4, dtype=torch.long), axis=0), ValueError, 'scale'),
    case('quantize-zero_point-float', lambda: quantize(X, 0.1, 0.5), TypeError, 'zero_point'),
    case('quantize-zero_point-bool', lambda: quantize(X, 0.1, True), TypeError, 'zero_point'),
    case('quantize-zero_point-out-of-range', lambda: quantize(X, 0.1, 200), ValueError, 'zero_point'),
    case('quantize-bad-dtype', lambda: quantize(X, 0.1, 0, 'int9x'), ValueError, 'dtype'),
    case('quantize-per-channel-no-axis', lambda: quantize(W, torch.ones(4), torch.zeros(4, dtype=torch.long)), ValueError, 'axis'),
    case('quantize-axis-out-of-range', lambda: quantize(W, torch.ones(4), torch.zeros(4, dtype=torch.long), axis=5), ValueError, 'axis'),
    case('quantize-axis-str', lambda: quantize(W, 0.1, 0, axis='0'), ValueError, 'axis'),
    case('quantize-wrong-channel-count', lambda: quantize(W, torch.ones(3), torch.zeros(3, dtype=torch.long), axis=0), ValueError, 'scale'),
    case('dequantize-float-codes', lambda: dequantize(X, 0.1, 0), TypeError, 'q'),
    case('dequantize-list', lambda: dequantize([1, 2], 0.1, 0), TypeError, 'q'),
    case('dequantize-bool', lambda: dequantize(torch.tensor([True]), 0.1, 0), TypeError, 'q'),
    case('dequantize-scale-None', lambda: dequantize(Q, None, 0), TypeError, 'scale'),
    case('dequantize-scale-0', lambda: dequantize(Q, 0, 0), ValueError, 'scale'),
    case('dequantize-zero_point-float', lambda: dequantize(Q, 0.1, 0.5), TypeError, 'zero_point'),
    case('dequantize-overflow', lambda: dequantize(torch.tensor([127], dtype=torch.int8), 1e38, -128), ValueError, 'scale'),
    case('dequantize-axis-str', lambda: dequantize(Q, 0.1, 0, axis='x'), ValueError, 'axis'),
    case('fake_quantize-scale-None', lambda: fake_quantize(X, None, 0), TypeError, 'scale'),
    case('fake_quantize-int-tensor', lambda: fake_quantize(torch.arange(3), 0.1, 0), TypeError, 'x'),
    case('fake_quantize-float-dtype', lambda: fake_quantize(X, 0.1, 0, 'float'), ValueError, 'dtype'),
    case('min_max-str', lambda: min_max('abc'), TypeError, 'x'),
    case('min_max-axis-out-of-range', lambda: min_max(X, axis=3), ValueError, 'axis'),
    case('min_max-axis-bool', lambda: min_max(X, axis=True), ValueError, 'axis'),
    case('min_max-group_size-0', lambda: min_max(W, group_size=0), ValueError, 'group_size'),
    case('min_max-group_size-not-divisor', lambda: min_max(W, group_size=4), ValueError, 'group_size'),
    case('min_max-group_size-float', lambda: min_max(W, group_size=2.0), ValueError, 'group_size'),
    case('calc_qparams-None', lambda: calc_qparams(None), TypeError, 'x'),
    case('calc_qparams-numpy', lambda: calc_qparams(NP_W), TypeError, 'x'),
    case('calc_qparams-dtype-None', lambda: calc_qparams(X, dtype=None), TypeError, 'dtype'),
    case('calc_qparams-symmetric-None', lambda: calc_qparams(X, symmetric=None), TypeError, 'symmetric'),
    case('calc_qparams-axis-float', lambda: calc_qparams(W, axis=1.5), ValueError, 'axis'),
    case('calc_qparams-group_size-negative', lambda: calc_qparams(W, group_size=-1), ValueError, 'group_size'),
    case('calc_qparams-inf', lambda: calc_qparams(torch.tensor([1.0, float('inf')])), ValueError, 'x'),
    case('quant_error-str', lambda: quant_error(X, 'abc'), TypeError, 'x_hat'),
    case('quant_error-shape', lambda: quant_error(X, X[:2]), ValueError, 'x_hat'),
    case('quant_error-nan', lambda: quant_error(X, X * float('nan')), ValueError, 'x_hat'),
    case('quant_error-list', lambda: quant_error([1.0], X), TypeError, 'x'),
    case('compression_ratio-str', lambda: compression_ratio('abc'), TypeError, 'x'),
    case('compression_ratio-bad-dtype', lambda: compression_ratio(W, 'int99'), ValueError, 'dtype'),
    case('compression_ratio-scale-str', lambda: compression_ratio(W, 'int8', 'abc'), TypeError, 'scale'),
    case('sqnr_vs_bits-1-bit', lambda: sqnr_vs_bits(W, bits=[1]), ValueError, 'bits'),
    case('sqnr_vs_bits-no-bits', lambda: sqnr_vs_bits(W, bits=[]), ValueError, 'bits'),
    case('sqnr_vs_bits-axis', lambda: sqnr_vs_bits(W, axis=5), ValueError, 'axis'),
    case('sqnr_vs_bits-group_size', lambda: sqnr_vs_bits(W, group_size=4), ValueError, 'group_size'),
    case('sqnr_vs_bits-list', lambda: sqnr_vs_bits([[1.0]]), TypeError, 'w'),
    case('plot_sqnr_vs_bits-empty', lambda: plot_sqnr_vs_bits({}), ValueError, 'res'),
    case('plot_sqnr_vs_bits-None', lambda: plot_sqnr_vs_bits(None), TypeError, 'res'),
    case('plot_staircase-scale-None', lambda: plot_staircase(None, 0), TypeError, 'scale'),
    case('plot_staircase-scale-negative', lambda: plot_staircase(-0.1, 0), ValueError, 'scale'),
    case('plot_staircase-bad-dtype', lambda: plot_staircase(0.1, 0, 'int9x'), ValueError, 'dtype'),
    case('plot_staircase-n-1', lambda: plot_staircase(0.1, 0, n=1), ValueError, 'n'),
    case('plot_quant_grid-list', lambda: plot_quant_grid([1.0], 0.1, 0), TypeError, 'x'),
    case('plot_quant_grid-bins-0', lambda: plot_quant_grid(X, 0.1, 0, bins=0), ValueError, 'bins'),
    case('plot_quant_grid-scale-None', lambda: plot_quant_grid(X, None, 0), TypeError, 'scale'),
    case('basics-params-None', lambda: QB.calculate_quantization_params(None), TypeError, 'weights'),
    case('basics-params-ints', lambda: QB.calculate_quantization_params(np.arange(5)), TypeError, 'weights'),
    case('basics-params-bad-dtype', lambda: QB.calculate_quantization_params(NP_W, 'int9x'), ValueError, 'dtype'),
    case('basics-params-symmetric-str', lambda: QB.calculate_quantization_params(NP_W, symmetric='no'), TypeError, 'symmetric'),
    case('basics-params-nan', lambda: QB.calculate_quantization_params(NP_W * np.nan), ValueError, 'weights'),
    case('basics-quantize-scale-None', lambda: QB.quantize_tensor(NP_W, None, 0), TypeError, 'scale'),
    case('basics-quantize-str', lambda: QB.quantize_tensor('abc', 0.1, 0), TypeError, 'tensor'),
    case('basics-quantize-zero_point-300', lambda: QB.quantize_tensor(NP_W, 0.1, 300), ValueError, 'zero_point'),
    case('basics-dequantize-floats', lambda: QB.dequantize_tensor(NP_W, 0.1, 0), TypeError, 'quantized'),
    case('basics-dequantize-scale-None', lambda: QB.dequantize_tensor(np.zeros(3, np.int8), None, 0), TypeError, 'scale'),
    case('basics-calibration-empty', lambda: QB.quantize_with_calibration(NP_W, []), ValueError, 'calibration_data'),
    case('basics-calibration-ints', lambda: QB.quantize_with_calibration(NP_W, [np.arange(3)]), TypeError, 'calibration_data'),
    case('basics-calibration-nan', lambda: QB.quantize_with_calibration(NP_W, [NP_W * np.nan]), ValueError, 'calibration_data'),
    case('basics-calibration-int', lambda: QB.quantize_with_calibration(NP_W, 5), TypeError, 'calibration_data'),
    case('basics-calibration-bad-dtype', lambda: QB.quantize_with_calibration(NP_W, None, 'int9x'), ValueError, 'dtype'),
]

DATA = [
    case('data_spec-unknown', lambda: data_spec('cifar'), ValueError, 'dataset'),
    case('data_spec-list', lambda: data_spec(['mnist']), TypeError, 'dataset'),
    case('data_spec-int', lambda: data_spec(-2), TypeError, 'dataset'),
    case('search_dirs-int', lambda: search_dirs(5), TypeError, 'spec'),
    case('find_idx_files-int', lambda: find_idx_files(5), TypeError, 'spec'),
    case('find_idx_files-dirs-str', lambda: find_idx_files('mnist', dirs='/tmp'), TypeError, 'dirs'),
    case('check_idx-str', lambda: check_idx('abc', 'x-idx3-ubyte'), TypeError, 'data'),
    case('check_idx-bad-magic', lambda: check_idx(b'\0' * 8, 'x-idx3-ubyte'), ValueError, 'magic'),
    case('check_idx-name-int', lambda: check_idx(b'\0' * 8, 3), TypeError, 'name'),
    case('read_verified-spec-int', lambda: read_verified(__file__, 5), TypeError, 'spec'),
    case('atomic_write-write-str', lambda: atomic_write('/tmp/quantnb-never-written', 'abc'), TypeError, 'write'),
    case('prepare_root-unknown', lambda: prepare_root('cifar'), ValueError, 'dataset'),
    case('prepare_root-sources-wrong-keys', lambda: prepare_root('mnist', '/tmp/quantnb-bad-root', {'x': __file__}), ValueError, 'sources'),
    case('progress-int', lambda: list(progress(5, 'x')), TypeError, 'items'),
    case('load_dataset-unknown', lambda: load_dataset('cifar'), ValueError, 'dataset'),
    case('load_dataset-train-str', lambda: load_dataset(train='yes'), TypeError, 'train'),
    case('get_dataloaders-unknown', lambda: get_dataloaders('cifar'), ValueError, 'dataset'),
    case('get_dataloaders-batch_size-0', lambda: get_dataloaders(batch_size=0), ValueError, 'batch_size'),
    case('get_dataloaders-batch_size-negative', lambda: get_dataloaders(batch_size=-3), ValueError, 'batch_size'),
    case('get_dataloaders-batch_size-float', lambda: get_dataloaders(batch_size=6.5), ValueError, 'batch_size'),
    case('get_dataloaders-subset-0', lambda: get_dataloaders(subset=0), ValueError, 'subset'),
    case('get_dataloaders-subset-huge', lambda: get_dataloaders(subset=10**9), ValueError, 'subset'),
    case('get_dataloaders-test_subset-float', lambda: get_dataloaders(test_subset=1.5), ValueError, 'test_subset'),
    case('get_dataloaders-test_batch_size-0', lambda: get_dataloaders(test_batch_size=0), ValueError, 'test_batch_size'),
    case('get_dataloaders-seed-str', lambda: get_dataloaders(seed='a'), TypeError, 'seed'),
    case('calibration_batches-dataset-int', lambda: calibration_batches(-2, batch_size=-3), TypeError, 'dataset', 'num_batches'),
    case('calibration_batches-num_batches-negative', lambda: calibration_batches(num_batches=-1), ValueError, 'num_batches'),
    case('calibration_batches-num_batches-0', lambda: calibration_batches(num_batches=0), ValueError, 'num_batches'),
    case('calibration_batches-num_batches-float', lambda: calibration_batches(num_batches=2.5), ValueError, 'num_batches'),
    case('calibration_batches-batch_size-negative', lambda: calibration_batches(num_batches=2, batch_size=-3), ValueError, 'batch_size'),
    case('calibration_batches-both-negative', lambda: calibration_batches(num_batches=-1, batch_size=-3), ValueError, 'num_batches'),
    case('calibration_batches-too-many', lambda: calibration_batches(num_batches=10**6), ValueError, 'num_batches'),
    case('calibration_batches-seed-None', lambda: calibration_batches(num_batches=1, seed=None), TypeError, 'seed'),
    case('class_names-int', lambda: class_names(5), TypeError, 'source'),
    case('class_names-empty-list', lambda: class_names([]), TypeError, 'source'),
    case('class_names-unknown', lambda: class_names('cifar'), ValueError, 'cifar'),
    case('plot_images-str', lambda: plot_images('abc', LABELS), TypeError, 'images'),
    case('plot_images-3d', lambda: plot_images(IMAGES[:, 0], LABELS), ValueError, 'images'),
    case('plot_images-label-12', lambda: plot_images(IMAGES, LABELS + 12), ValueError, 'label'),
    case('plot_images-labels-short', lambda: plot_images(IMAGES, LABELS[:2]), ValueError, 'labels'),
    case('plot_images-preds-short', lambda: plot_images(IMAGES, LABELS, preds=LABELS[:2]), ValueError, 'preds'),
    case('plot_images-ncols-0', lambda: plot_images(IMAGES, LABELS, ncols=0), ValueError, 'ncols'),
    case('plot_images-classes-int', lambda: plot_images(IMAGES, LABELS, classes=3), TypeError, 'classes'),
    case('iter_batches-None', lambda: list(iter_batches(None)), TypeError, 'data'),
    case('iter_batches-bare-tensors-need-labels', lambda: list(iter_batches([IMAGES])), TypeError, 'labels'),
    case('iter_batches-a-tensor', lambda: list(iter_batches(IMAGES)), TypeError, 'data'),
    case('iter_batches-triple', lambda: list(iter_batches([(IMAGES, LABELS, LABELS)])), TypeError, 'data'),
    case('iter_batches-float-labels', lambda: list(iter_batches([(IMAGES, LABELS.float())])), TypeError, 'labels'),
    case('iter_batches-length-mismatch', lambda: list(iter_batches([(IMAGES, LABELS[:3])])), ValueError, 'labels'),
    case('iter_batches-int-images', lambda: list(iter_batches([(IMAGES.long(), LABELS)])), TypeError, 'images'),
    case('iter_batches-labels-str', lambda: list(iter_batches(BATCHES, labels='no')), TypeError, "labels='no'"),
    case('tensor_loader-shuffle-str', lambda: tensor_loader(tensor_dataset(train=False), 8, shuffle='no'), TypeError, 'shuffle'),
    case('tensor_loader-drop_last-int', lambda: tensor_loader(tensor_dataset(train=False), 8, drop_last=1), TypeError, 'drop_last'),
]

MEASURE = [
    case('evaluate-model-str', lambda: evaluate('model', BATCHES), TypeError, 'model'),
    case('evaluate-dl-None', lambda: evaluate(mlp(), None), TypeError, 'dl'),
    case('evaluate-dl-empty', lambda: evaluate(mlp(), []), ValueError, 'dl'),
    case('evaluate-dl-exhausted-iterator', lambda: evaluate(mlp(), iter([])), ValueError, 'dl'),
    case('evaluate-bare-image-batches', lambda: evaluate(mlp(), [IMAGES]), TypeError, 'dl', 'labels'),
    case('evaluate-dl-a-tensor', lambda: evaluate(mlp(), IMAGES), TypeError, 'dl'),
    case('evaluate-batch-of-one', lambda: evaluate(mlp(), [(IMAGES,)]), TypeError, 'dl'),
    case('evaluate-labels-short', lambda: evaluate(mlp(), [(IMAGES, LABELS[:3])]), ValueError, 'labels'),
    case('evaluate-labels-out-of-range', lambda: evaluate(mlp(), [(IMAGES, LABELS + 100)]), ValueError, 'labels'),
    case('evaluate-labels-float', lambda: evaluate(mlp(), [(IMAGES, LABELS.float())]), TypeError, 'labels'),
    case('evaluate-nan-logits', lambda: evaluate(NaNModel(), BATCHES), ValueError, 'model', 'NaN'),
    case('evaluate-flat-logits', lambda: evaluate(FlatModel(), BATCHES), ValueError, 'model'),
    case('model_size_bytes-str', lambda: model_size_bytes('model'), TypeError, 'model'),
    case('benchmark_latency-model-str', lambda: benchmark_latency('model', IMAGES), TypeError, 'model'),
    case('benchmark_latency-example-str', lambda: benchmark_latency(mlp(), 'abc'), TypeError, 'example'),
    case('benchmark_latency-iters-0', lambda: benchmark_latency(mlp(), IMAGES, iters=0), ValueError, 'iters'),
    case('benchmark_latency-iters-str', lambda: benchmark_latency(mlp(), IMAGES, iters='5'), TypeError, 'iters'),
    case('benchmark_latency-warmup-negative', lambda: benchmark_latency(mlp(), IMAGES, warmup=-1), ValueError, 'warmup'),
    case('benchmark_latency-threads-0', lambda: benchmark_latency(mlp(), IMAGES, threads=0), ValueError, 'threads'),
    case('benchmark_latency-threads-float', lambda: benchmark_latency(mlp(), IMAGES, threads=1.5), TypeError, 'threads'),
    case('markdown_table-empty', lambda: markdown_table([]), ValueError, 'rows'),
    case('markdown_table-different-keys', lambda: markdown_table([{'a': 1}, {'b': 2}]), ValueError, 'rows'),
    case('markdown_table-str', lambda: markdown_table('abc'), TypeError, 'rows'),
    case('markdown_table-ints', lambda: markdown_table([1, 2]), TypeError, 'rows'),
]

MODELS = [
    case('SampleNet-num_classes-0', lambda: SampleNet(num_classes=0), ValueError, 'num_classes'),
    case('SampleNet-num_classes-float', lambda: SampleNet(num_classes=2.5), TypeError, 'num_classes'),
    case('SampleNetBN-num_classes-negative', lambda: SampleNetBN(num_classes=-1), ValueError, 'num_classes'),
    case('train-model-without-parameters', lambda: train(nn.Flatten(), BATCHES, BATCHES), ValueError, 'model'),
    case('train-model-str', lambda: train('model', BATCHES, BATCHES), TypeError, 'model'),
    case('train-epochs-0', lambda: train(mlp(), BATCHES, BATCHES, epochs=0), ValueError, 'epochs'),
    case('train-epochs-float', lambda: train(mlp(), BATCHES, BATCHES, epochs=1.5), TypeError, 'epochs'),
    case('train-lr-0', lambda: train(mlp(), BATCHES, BATCHES, lr=0), ValueError, 'lr'),
    case('train-lr-nan', lambda: train(mlp(), BATCHES, BATCHES, lr=float('nan')), ValueError, 'lr'),
    case('train-label_smoothing-1.5', lambda: train(mlp(), BATCHES, BATCHES, label_smoothing=1.5), ValueError, 'label_smoothing'),
    case('train-weight_decay-negative', lambda: train(mlp(), BATCHES, BATCHES, weight_decay=-1), ValueError, 'weight_decay'),
    case('train-seed-str', lambda: train(mlp(), BATCHES, BATCHES, seed='a'), TypeError, 'seed'),
    case('train-device-unknown', lambda: train(mlp(), BATCHES, BATCHES, device='tpu9'), ValueError, 'device'),
    case('train-generator', lambda: train(mlp(), gen_batches(), BATCHES), TypeError, 'train_dl'),
    case('train-empty', lambda: train(mlp(), [], BATCHES), ValueError, 'train_dl'),
    case('train-bare-image-batches', lambda: train(mlp(), [IMAGES], BATCHES), TypeError, 'train_dl', 'labels'),
    case('train-valid_dl-None', lambda: train(mlp(), BATCHES, None), TypeError, 'valid_dl'),
    case('train-valid-bare-images', lambda: train(mlp(), BATCHES, [IMAGES]), TypeError, 'valid_dl'),
    case('train_valid_loaders-unknown', lambda: train_valid_loaders('cifar'), ValueError, 'dataset'),
    case('train_valid_loaders-valid_size-0', lambda: train_valid_loaders(valid_size=0), ValueError, 'valid_size'),
    case('train_valid_loaders-batch_size-0', lambda: train_valid_loaders(batch_size=0), ValueError, 'batch_size'),
    case('train_valid_loaders-subset-0', lambda: train_valid_loaders(subset=0), ValueError, 'subset'),
    case('train_valid_loaders-valid_batch_size-neg', lambda: train_valid_loaders(valid_batch_size=-1), ValueError, 'valid_batch_size'),
    case('training_recipe-arch', lambda: training_recipe('resnet'), ValueError, 'arch'),
    case('training_recipe-dataset', lambda: training_recipe(dataset='cifar'), ValueError, 'dataset'),
    case('training_recipe-epochs-0', lambda: training_recipe(epochs=0), ValueError, 'epochs'),
    case('training_recipe-seed-float', lambda: training_recipe(seed=1.5), TypeError, 'seed'),
    case('training_recipe-lr-negative', lambda: training_recipe(lr=-1), ValueError, 'lr'),
    case('training_recipe-unknown-key', lambda: training_recipe(foo=1), ValueError, 'foo'),
    case('training_recipe-batch_size-0', lambda: training_recipe(batch_size=0), ValueError, 'batch_size'),
    case('training_recipe-label_smoothing-str', lambda: training_recipe(label_smoothing='x'), TypeError, 'label_smoothing'),
    case('checkpoint_path-str', lambda: checkpoint_path('x'), TypeError, 'recipe'),
    case('checkpoint_path-empty', lambda: checkpoint_path({}), ValueError, 'recipe'),
    case('load_checkpoint-recipe-str', lambda: load_checkpoint('/tmp/quantnb-none.pt', 'x'), TypeError, 'recipe'),
    case('load_checkpoint-path-int', lambda: load_checkpoint(5, training_recipe()), TypeError, 'path'),
    case('pretrained-arch', lambda: pretrained('resnet'), ValueError, 'arch'),
    case('pretrained-epochs-0', lambda: pretrained(epochs=0), ValueError, 'epochs'),
    case('pretrained-lr-0', lambda: pretrained(lr=0), ValueError, 'lr'),
    case('plot_history-empty', lambda: plot_history([]), ValueError, 'history'),
    case('plot_history-str', lambda: plot_history('abc'), TypeError, 'history'),
    case('SampleNet-fuse_model-qat-str', lambda: SampleNet().fuse_model(qat='no'), TypeError, "qat='no'"),
]

def observed(observer, *tensors):
    "`observer` after seeing `tensors`, then asked for its qparams."
    for t in tensors: observer(t)
    return observer.calculate_qparams()

AFFINE += [case('compression_ratio-int-tensor', lambda: compression_ratio(torch.tensor([1, 2, 3])), TypeError, 'x')]

OBSERVER_CLASSES = [MinMaxObserver, MovingAverageMinMaxObserver, HistogramObserver, PercentileObserver, MSEObserver, EntropyObserver]
OBSERVERS = [
    *[case(f'{cls.__name__}-{what}', call, error, word) for cls in OBSERVER_CLASSES for what, call, error, word in [
        ('dtype-unknown', lambda cls=cls: cls('int9x'), ValueError, 'dtype'),
        ('dtype-float', lambda cls=cls: cls(torch.float32), TypeError, 'dtype'),
        ('symmetric-str', lambda cls=cls: cls('uint8', 'yes'), TypeError, 'symmetric'),
        ('qscheme', lambda cls=cls: cls(qscheme=torch.per_tensor_affine), ValueError, 'qscheme'),
        ('eps', lambda cls=cls: cls(eps=1e-3), ValueError, 'eps'),
        ('observe-str', lambda cls=cls: cls()('abc'), TypeError, 'tensor'),
        ('observe-int', lambda cls=cls: cls()(torch.arange(5)), TypeError, 'floating-point'),
        ('observe-nan', lambda cls=cls: cls()(torch.tensor([float('nan'), 1.0])), ValueError, 'NaN'),
        ('observe-empty', lambda cls=cls: cls()(torch.empty(0)), ValueError, 'empty'),
        ('no-data', lambda cls=cls: cls().calculate_qparams(), RuntimeError, 'no data')]],
    case('symmetric-on-reduced-uint8', lambda: MinMaxObserver('uint8', True, reduce_range=True), ValueError, 'symmetric'),
    case('quant_min-not-a-type-range', lambda: MinMaxObserver(quant_min=3, quant_max=100), ValueError, 'quant_min'),
    case('ch_axis-on-per-tensor-observer', lambda: HistogramObserver(ch_axis=0), ValueError, 'ch_axis'),
    case('ch_axis-str', lambda: MinMaxObserver(ch_axis='0'), TypeError, 'ch_axis'),
    case('ch_axis-out-of-range', lambda: MinMaxObserver(ch_axis=5)(torch.randn(3, 4)), ValueError, 'axis'),
    case('mse-ch_axis-out-of-range', lambda: MSEObserver(ch_axis=5)(torch.randn(3, 4)), ValueError, 'axis'),
    case('mse-channels-change', lambda: observed(MSEObserver(ch_axis=0), torch.randn(3, 4), torch.randn(5, 4)), ValueError, 'channels'),
    case('bins-0', lambda: HistogramObserver(bins=0), ValueError, 'bins'),
    case('bins-negative', lambda: HistogramObserver(bins=-5), ValueError, 'bins'),
    case('bins-float', lambda: EntropyObserver(bins=20.5), ValueError, 'bins'),
    case('upsample_rate-0', lambda: HistogramObserver(upsample_rate=0), ValueError, 'upsample_rate'),
    case('n_factors-0', lambda: MSEObserver(n_factors=0), ValueError, 'n_factors'),
    case('averaging_constant-0', lambda: MovingAverageMinMaxObserver(averaging_constant=0), ValueError, 'averaging_constant'),
    case('averaging_constant-2', lambda: MovingAverageMinMaxObserver(averaging_constant=2), ValueError, 'averaging_constant'),
    case('percentile-0', lambda: PercentileObserver(percentile=0), ValueError, 'percentile'),
    case('percentile-101', lambda: PercentileObserver(percentile=101), ValueError, 'percentile'),
    case('code_type-unknown', lambda: code_type('float'), ValueError, 'dtype'),
    case('compare_observers-empty', lambda: compare_observers([]), ValueError, 'batches'),
    case('compare_observers-tensor', lambda: compare_observers(IMAGES), TypeError, 'batches'),
    case('compare_observers-held_out-empty', lambda: compare_observers([IMAGES], held_out=[]), ValueError, 'held_out'),
    case('compare_observers-int-batches', lambda: compare_observers([torch.arange(5)]), TypeError, 'batches'),
    case('clipping_error_curve-str', lambda: clipping_error_curve('abc', []), TypeError, 'x'),
    case('plot_clipping_error-str', lambda: plot_clipping_error('abc', []), TypeError, 'x'),
]

FAKEQUANT = [
    case('QuantizedLinear-0-inputs', lambda: QuantizedLinear(0, 5), ValueError, 'in_features'),
    case('QuantizedLinear-negative-outputs', lambda: QuantizedLinear(4, -1), ValueError, 'out_features'),
    case('QuantizedLinear-str', lambda: QuantizedLinear('4', 5), TypeError, 'QuantizedLinear'),
    case('QuantizedLinear-conv', lambda: QuantizedLinear(nn.Conv2d(1, 2, 3)), TypeError, 'nn.Linear'),
    case('QuantizedLinear-linear-and-sizes', lambda: QuantizedLinear(nn.Linear(4, 5), 5), TypeError, 'out_features'),
    case('QuantizedLinear-wrong-input-width', lambda: QuantizedLinear(4, 5)(torch.randn(3, 7)), ValueError, 'shape'),
    case('QuantizedLinear-int-input', lambda: QuantizedLinear(4, 5)(torch.ones(3, 4, dtype=torch.long)), TypeError, 'float'),
    case('QuantizedLinear-weight_dtype', lambda: QuantizedLinear(4, 5, weight_dtype='int9x'), ValueError, 'dtype'),
    case('QuantizedLinear-act_dtype', lambda: QuantizedLinear(4, 5, act_dtype='int9x'), ValueError, 'dtype'),
    case('QuantizedLinear-per_channel-str', lambda: QuantizedLinear(4, 5, per_channel='yes'), TypeError, 'per_channel'),
    case('QuantizedLinear-quantized-str', lambda: QuantizedLinear(4, 5, True, 'yes'), TypeError, 'quantized'),
    case('QuantizedConv2d-kernel-0', lambda: QuantizedConv2d(1, 2, 0), ValueError, 'kernel_size'),
    case('QuantizedConv2d-channels-0', lambda: QuantizedConv2d(0, 2, 3), ValueError, 'in_channels'),
    case('QuantizedConv2d-no-kernel', lambda: QuantizedConv2d(1, 2), TypeError, 'kernel_size'),
    case('QuantizedConv2d-conv-and-stride', lambda: QuantizedConv2d(nn.Conv2d(1, 2, 3), stride=2), TypeError, 'stride'),
    case('QuantizedConv2d-wrong-channels', lambda: QuantizedConv2d(1, 2, 3)(torch.randn(2, 3, 8, 8)), ValueError, 'shape'),
    case('QuantizedConv2d-flat-input', lambda: QuantizedConv2d(1, 2, 3)(torch.randn(2, 1)), ValueError, 'shape'),
    case('QuantizedLayer-no-weight', lambda: QuantizedLayer(nn.ReLU()), TypeError, 'base_layer'),
    case('QuantizedLayer-quantized-early-no-data', lambda: QuantizedLinear(4, 5, quantized=True)(torch.randn(3, 4)), RuntimeError, 'no data'),
    case('quantize_layers-str', lambda: quantize_layers('model'), TypeError, 'model'),
    case('quantized_layers-str', lambda: quantized_layers('model'), TypeError, 'model'),
    case('calibrate-no-quantized-layer', lambda: calibrate(mlp(), BATCHES), ValueError, 'QuantizedLayer'),
    case('calibrate-tensor', lambda: calibrate(quantize_layers(mlp()), IMAGES), TypeError, 'batches'),
    case('calibrate-empty', lambda: calibrate(quantize_layers(mlp()), []), ValueError, 'batches'),
    case('CustomQuantizer-granularity', lambda: CustomQuantizer(granularity='per-row'), ValueError, 'granularity'),
    case('CustomQuantizer-group_size-without-per-group', lambda: CustomQuantizer(group_size=4), ValueError, 'group_size'),
    case('CustomQuantizer-group_size-0', lambda: CustomQuantizer('int4', 'per-group', 0), ValueError, 'group_size'),
    case('CustomQuantizer-group_size-float', lambda: CustomQuantizer('int4', 'per-group', 2.5), ValueError, 'group_size'),
    case('CustomQuantizer-dtype', lambda: CustomQuantizer('int9x'), ValueError, 'dtype'),
    case('CustomQuantizer-symmetric-str', lambda: CustomQuantizer(symmetric='yes'), TypeError, 'symmetric'),
    case('CustomQuantizer-quantize_model-str', lambda: CustomQuantizer().quantize_model('model'), TypeError, 'model'),
    case('CustomQuantizer-quantize_layer-embedding', lambda: CustomQuantizer().quantize_layer(nn.Embedding(4, 2), 'e'), TypeError, 'Embedding has parameters'),
    case('CustomQuantizer-quantize_layer-name-int', lambda: CustomQuantizer().quantize_layer(nn.Linear(2, 2), 3), TypeError, 'layer_name'),
    case('pack_codes-8-bit', lambda: pack_codes(Q, 'int8'), ValueError, 'dtype'),
    case('pack_codes-out-of-range', lambda: pack_codes(torch.tensor([9], dtype=torch.int8), 'int4'), ValueError, 'q'),
    case('pack_codes-float', lambda: pack_codes(torch.tensor([1.0]), 'int4'), TypeError, 'q'),
    case('unpack_codes-numel-too-large', lambda: unpack_codes(pack_codes(Q, 'int4'), 'int4', numel=10), ValueError, 'numel'),
    case('unpack_codes-numel-0', lambda: unpack_codes(pack_codes(Q, 'int4'), 'int4', numel=0), ValueError, 'numel'),
    case('unpack_codes-int8-input', lambda: unpack_codes(Q, 'int4'), TypeError, 'packed'),
    case('unpack_codes-8-bit', lambda: unpack_codes(pack_codes(Q, 'int4'), 'int8'), ValueError, 'dtype'),
    case('fake_quantize_ste-scale-0', lambda: fake_quantize_ste(X, 0.0, 0), ValueError, 'scale'),
    case('fake_quantize_ste-str', lambda: fake_quantize_ste('x', 0.1, 0), TypeError, 'x'),
    case('LSQFakeQuantize-dtype', lambda: LSQFakeQuantize(dtype='int9x'), ValueError, 'dtype'),
    case('LSQFakeQuantize-no-batch-dim', lambda: LSQFakeQuantize()(X), ValueError, 'batch_dim'),
    case('LSQFakeQuantize-symmetric-str', lambda: LSQFakeQuantize(symmetric='no'), TypeError, 'symmetric'),
    case('LSQFakeQuantize-batch_dim-str', lambda: LSQFakeQuantize(batch_dim='0'), TypeError, 'batch_dim'),
    case('LSQFakeQuantize-inf-input', lambda: LSQFakeQuantize(batch_dim=None)(torch.tensor([1.0, float('inf')])), ValueError, 'NaN or Inf'),
    case('QuantizedLinear-bias-str', lambda: QuantizedLinear(4, 5, bias='no'), TypeError, "bias='no'"),
    case('QuantizedConv2d-bias-str', lambda: QuantizedConv2d(1, 2, 3, bias='no'), TypeError, "bias='no'"),
    case('QuantizedLinear-nan-input', lambda: calibrated(QuantizedLinear(4, 5))(torch.full((2, 4), float('nan'))), ValueError, 'x contains NaN'),
    case('QuantizedLinear-scale-negative', lambda: assign(QuantizedLinear(4, 5), 'scale', -0.1), ValueError, 'scale'),
    case('QuantizedLinear-scale-nan', lambda: assign(QuantizedLinear(4, 5), 'scale', float('nan')), ValueError, 'scale'),
    case('QuantizedLinear-scale-str', lambda: assign(QuantizedLinear(4, 5), 'scale', '0.1'), TypeError, 'scale'),
    case('QuantizedLinear-scale-bool', lambda: assign(QuantizedLinear(4, 5), 'scale', True), TypeError, 'scale'),
    case('QuantizedLinear-scale-wrong-shape', lambda: assign(QuantizedLinear(4, 5), 'scale', torch.ones(4)), ValueError, '(5,)'),
    case('QuantizedLinear-zero_point-3', lambda: assign(QuantizedLinear(4, 5), 'zero_point', 3), ValueError, 'layer.scale'),
    case('QuantizedLinear-nan-weight', lambda: calibrated(QuantizedLinear(nan_linear()))(torch.randn(2, 4)), ValueError, 'weight'),
    case('pack_int4-signed-str', lambda: pack_int4(torch.tensor([0, 3]), signed='no'), TypeError, 'signed'),
    case('unpack_int4-signed-str', lambda: unpack_int4(pack_int4(torch.tensor([0, 3])), signed='no'), TypeError, 'signed'),
    case('load_packed-unsigned-quantizer', lambda: load_packed(*packed_int4(), CustomQuantizer('uint4', 'per-channel')), ValueError, 'another quantizer'),
    case('load_packed-2-bit-quantizer', lambda: load_packed(*packed_int4(), CustomQuantizer('int2', 'per-channel', symmetric=True)), ValueError, 'another quantizer'),
    case('load_packed-per-tensor-quantizer', lambda: load_packed(*packed_int4(), CustomQuantizer('int4', symmetric=True)), ValueError, 'another quantizer'),
    case('load_packed-per-group-quantizer', lambda: load_packed(*packed_int4(), CustomQuantizer('int4', 'per-group', 8, True)), ValueError, 'another quantizer'),
    case('load_packed-quantizer-str', lambda: load_packed(*packed_int4(), 'int4'), TypeError, 'quantizer'),
]

QAT = [
    case('prepare_qat_model-residual-add', lambda: prepare(Residual()), ValueError, 'add', 'FloatFunctional'),
    case('prepare_qat_model-lstm', lambda: prepare(nn.Sequential(nn.LSTM(4, 4))), ValueError, 'LSTM', 'dynamic'),
    case('prepare_qat_model-gru', lambda: prepare(nn.Sequential(nn.GRU(4, 4))), ValueError, 'GRU'),
    case('prepare_qat_model-embedding', lambda: prepare(nn.Sequential(nn.Embedding(10, 4))), ValueError, 'Embedding'),
    case('prepare_qat_model-softmax', lambda: prepare(SoftmaxHead()), ValueError, 'softmax', 'loss'),
    case('qat_qconfig-per_channel-str', lambda: qat_qconfig(per_channel='no'), TypeError, 'per_channel'),
    case('qat_qconfig-reduce_range-int', lambda: qat_qconfig(reduce_range=0), TypeError, 'reduce_range'),
    case('fake_quant-inf-scale', lambda: fake_quant(X, torch.tensor(float('inf')), -8, 7), ValueError, 'scale'),
    case('fake_quant-nan-scale', lambda: fake_quant(X, torch.tensor(float('nan')), -8, 7), ValueError, 'scale'),
    case('mse_scale-per_channel-str', lambda: mse_scale(W, -8, 7, per_channel='no'), TypeError, 'per_channel'),
    case('mse_scale-nan', lambda: mse_scale(W * float('nan'), -8, 7), ValueError, 'NaN'),
    case('lowbit_qat-lr-inf', lambda: lowbit_qat(TINY, BATCHES, BATCHES, 4, cache=False, lr=float('inf')), ValueError, 'lr=inf'),
    case('lowbit_qat-lr-str', lambda: lowbit_qat(TINY, BATCHES, BATCHES, 4, cache=False, lr='1e-3'), TypeError, 'lr'),
    case('lowbit_qat-weight_decay-nan', lambda: lowbit_qat(TINY, BATCHES, BATCHES, 4, cache=False, weight_decay=float('nan')), ValueError, 'weight_decay'),
    case('lowbit_qat-seed-str', lambda: lowbit_qat(TINY, BATCHES, BATCHES, 4, cache=False, seed='0'), TypeError, 'seed'),
    case('lowbit_qat-cache-str', lambda: lowbit_qat(TINY, BATCHES, BATCHES, 4, cache='no'), TypeError, 'cache'),
    case('lowbit_qat-nan-images', lambda: lowbit_qat(TINY, [(IMAGES * float('nan'), LABELS)], BATCHES, 4, 8, cache=False), ValueError, 'NaN'),
    case('prepare_lowbit-act-no-calibration', lambda: prepare_lowbit(TINY, 4, 8), ValueError, 'calibration'),
    case('torchao_qat-lr-nan', lambda: QATProcessor().torchao_qat(TINY, BATCHES, BATCHES, lr=float('nan')), ValueError, 'lr'),
    case('torchao_qat-reduce_range-str', lambda: QATProcessor().torchao_qat(TINY, BATCHES, BATCHES, reduce_range='no'), TypeError, 'reduce_range'),
]

PTQ = [
    case('PTQProcessor-backend', lambda: PTQProcessor('nope'), ValueError, 'backend'),
    case('quantized_engine-unknown', lambda: quantized_engine('nope'), ValueError, 'backend'),
    case('dynamic-model-str', lambda: PTQProcessor().dynamic_quantization('model'), TypeError, 'model'),
    case('dynamic-dtype-int8', lambda: PTQProcessor().dynamic_quantization(mlp(), dtype=torch.int8), ValueError, 'dtype'),
    case('dynamic-module_types-unknown', lambda: PTQProcessor().dynamic_quantization(mlp(), module_types=['Dense']), ValueError, 'module_types'),
    case('static-model-str', lambda: PTQProcessor().static_quantization('model', BATCHES), TypeError, 'model'),
    case('static-no-batches', lambda: PTQProcessor().static_quantization(mlp(), []), ValueError, 'calibration_data'),
    case('static-tensor', lambda: PTQProcessor().static_quantization(mlp(), IMAGES), TypeError, 'calibration_data'),
    case('static-num_batches-negative', lambda: PTQProcessor().static_quantization(mlp(), BATCHES, num_batches=-1), ValueError, 'num_batches'),
    case('torchao-method', lambda: PTQProcessor().torchao_quantization(mlp(), method='nope'), ValueError, 'method'),
    case('take_batches-negative', lambda: take_batches(BATCHES, -1), ValueError, 'num_batches'),
    case('static_qconfig-observer-str', lambda: static_qconfig(observer='x'), TypeError, 'observer'),
    case('compare_models-str', lambda: compare_models(mlp(), 'model', BATCHES), TypeError, 'model'),
    case('compare_models-tensor-data', lambda: compare_models(mlp(), mlp(), IMAGES), TypeError, 'data'),
    case('interleaved_latency-empty', lambda: interleaved_latency({}, IMAGES), ValueError, 'models'),
    case('ptq_table-empty', lambda: ptq_table({}, BATCHES, {}), ValueError, 'variants'),
    case('fusable_groups-str', lambda: fusable_groups('model'), TypeError, 'model'),
]

CASES = AFFINE + DATA + MEASURE + MODELS + OBSERVERS + FAKEQUANT + PTQ + QAT

@pytest.mark.parametrize('call,error,words', CASES)
def test_bad_input_raises_a_named_error(call, error, words):
    with pytest.raises(error) as info: call()
    message = str(info.value)
    for word in words: assert word in message, f'{word!r} not in the message {message!r}'


def test_the_campaign_is_large_enough():
    assert len(CASES) >= 300 and len({p.id for p in CASES}) == len(CASES), 'ids must be unique'


# --- results that used to be silently wrong: now correct, or a warning ---------------------------------------------
def test_qparams_of_values_near_the_float32_limit_are_finite():
    x = torch.tensor([-3e38, 3e38])
    for symmetric in (False, True):
        scale, zero_point = calc_qparams(x, symmetric=symmetric)
        x_dq = fake_quantize(x, scale, zero_point)
        assert torch.isfinite(scale).all() and torch.isfinite(x_dq).all()
        torch.testing.assert_close(x_dq, x, rtol=1 / 127, atol=0)


def test_values_below_the_scale_floor_warn():
    with pytest.warns(UserWarning, match='scale'):
        scale, zero_point = calc_qparams(torch.tensor([-1e-30, 1e-30]))
    assert scale.item() == torch.finfo(torch.float32).eps
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        calc_qparams(torch.zeros(4))  # an all-zero tensor is exact at any scale: no warning


def test_evaluate_accepts_generators_and_one_shot_iterators():
    model = mlp()
    expected = evaluate(model, BATCHES)
    assert evaluate(model, gen_batches()) == expected
    assert evaluate(model, iter(BATCHES)) == expected


def test_iter_batches_accepts_bare_images_where_labels_are_not_needed():
    for data in ([IMAGES], [(IMAGES, LABELS)], [(IMAGES,)], gen_batches()):
        assert all(torch.equal(x, IMAGES) for x in iter_batches(data, labels=False))


# --- properties: affine functions never return NaN/inf for finite float32 input --------------------------------------
F32_MAX, F32_TINY = float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny)
finite32 = st.floats(-F32_MAX, F32_MAX, allow_nan=False, allow_infinity=False, width=32)
dtypes = st.sampled_from(['int2', 'uint4', 'int8', 'uint8', 'int16', 'int32'])

@settings(max_examples=300, deadline=None)
@given(st.lists(finite32, min_size=1, max_size=20), dtypes, st.booleans())
def test_affine_round_trip_is_finite(values, dtype, symmetric):
    x = torch.tensor(values, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the scale-floor warning
        scale, zero_point = calc_qparams(x, dtype, symmetric)
    q = quantize(x, scale, zero_point, dtype)
    x_dq = dequantize(q, scale, zero_point)
    assert torch.isfinite(scale).all() and (scale > 0).all()
    assert q.min() >= qrange(dtype)[0] and q.max() <= qrange(dtype)[1]
    assert torch.isfinite(x_dq).all() and torch.isfinite(fake_quantize(x, scale, zero_point, dtype)).all()
    assert all(math.isfinite(v) or k == 'sqnr_db' for k, v in quant_error(x, x_dq).items())


@settings(max_examples=300, deadline=None)
@given(finite32, st.floats(F32_TINY, F32_MAX, width=32), st.integers(-128, 127), dtypes)
def test_quantize_with_any_valid_scale_is_in_range(value, scale, zero_point, dtype):
    qmin, qmax = qrange(dtype)
    zero_point = min(max(zero_point, qmin), qmax)
    q = quantize(torch.tensor([value, 0.0, -value]), scale, zero_point, dtype)
    assert q.min() >= qmin and q.max() <= qmax
    assert q[1] == zero_point, 'zero must map to the zero point exactly'


def test_entropy_observer_keeps_data_that_stay_away_from_zero():
    "The textbook KL search scores a threshold holding all values in one code as KL = 0 and clipped them all (1.3 dB)."
    for x in (-torch.rand(10_000, generator=torch.Generator().manual_seed(0)) - 0.1, torch.linspace(5, 6, 10_000)):
        observer = EntropyObserver('uint8')
        scale, zero_point = observed(observer, x)
        assert quant_error(x, fake_quantize(x, scale, zero_point, 'uint8'))['sqnr_db'] > 40


def test_compare_observers_takes_the_images_of_labelled_batches():
    rows = compare_observers(BATCHES, dtypes=('uint8',))
    assert rows == compare_observers([IMAGES], dtypes=('uint8',))


def test_quantize_with_calibration_without_data_forgets_earlier_activation_qparams():
    qb = QuantizationBasics()
    qb.quantize_with_calibration(NP_W, [np.full(5, 3.0, dtype=np.float32)])
    assert qb.activation_qparams is not None
    qb.quantize_with_calibration(NP_W, None)
    assert qb.activation_qparams is None
