"""Random quantized layers packed under one engine, against quantnb's integer layers with this CPU's defaults.

Imported by tests/test_integer.py, and run as a script in a fresh process where an environment variable lowers
the instructions fbgemm (FBGEMM_ENABLE_INSTRUCTIONS) or oneDNN (ONEDNN_MAX_CPU_ISA) may use: both libraries read
it once, when they start. `python tests/kernel_sweep.py ENGINE SEEDS` prints the counts as JSON.
"""

import json
import random
import sys
import warnings

import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
import torch.nn.functional as F

from quantnb.integer import IntLayer, IntegerModel, QCodes, parity_report
from quantnb.requant import near_half_bias
from quantnb.isa import fbgemm_isa, onednn_isa
from quantnb.ptq import PTQProcessor, quantized_engine

warnings.filterwarnings('ignore', category=DeprecationWarning)
warnings.filterwarnings('ignore', message='.*quantize.*deprecated', category=UserWarning)


def _weight(shape, per_channel, symmetric, rnd, g):
    "int8 weights: per channel (symmetric) or per tensor, extreme codes in some layers."
    w = torch.randn(*shape, generator=g) * 0.1
    if rnd.random() < 0.3:
        w = torch.where(w < 0, -1.0, 1.0) * 0.1  # every code at the range ends
    if per_channel:
        scales = torch.rand(shape[0], dtype=torch.float64, generator=g) * 0.02 + 1e-4
        return torch.quantize_per_channel(w, scales, torch.zeros(shape[0], dtype=torch.long), 0, torch.qint8)
    zero_point = 0 if symmetric else rnd.choice([-128, 127, 5, -3])
    return torch.quantize_per_tensor(w, rnd.uniform(1e-4, 0.02), zero_point, torch.qint8)


def _shapes(rnd, conv):
    "Input shape, weight shape and conv options of one random layer (odd sizes, 1-channel convolutions included)."
    if not conv:
        M, K, N = rnd.randint(1, 24), rnd.randint(1, 300), rnd.randint(1, 40)
        return (M, K), (N, K), {}
    B, C, H, W = rnd.randint(1, 3), rnd.choice([1, 1, 2, 3, 4, 5, 8, 16]), rnd.randint(4, 10), rnd.randint(4, 10)
    k, stride, padding = rnd.choice([1, 3, 3, 4, 5]), rnd.choice([1, 2]), rnd.choice([0, 1])
    if k > min(H, W) + 2 * padding:
        k = 1
    return (B, C, H, W), (rnd.randint(1, 20), C, k, k), dict(stride=stride, padding=padding)


def _near_half_bias(q_x, x_zero_point, q_w, w_scale, x_scale, scale, conv, kw, g):
    "A bias that puts the first output of every channel within 2^-17 of a half-code (exact accumulator)."
    x, w = q_x.double() - x_zero_point, q_w.double()
    acc = F.conv2d(x, w, None, **kw)[0, :, 0, 0] if conv else (x @ w.T)[0]
    return near_half_bias(acc, x_scale, w_scale, scale, g, spread=60)


def random_layer(seed, engine):
    "One random quantized Conv2d/Linear (ReLU or not, 7- or 8-bit input codes) packed under `engine`, and its input."
    g, rnd = torch.Generator().manual_seed(seed), random.Random(seed)
    conv, relu, per_channel = seed % 2 == 0, seed % 5 < 2, seed % 3 != 0
    symmetric = engine == "onednn" or seed % 8 not in (1, 2)  # oneDNN takes only symmetric weights
    x_shape, w_shape, kw = _shapes(rnd, conv)
    x_scale, scale = rnd.uniform(1e-3, 0.1), rnd.uniform(0.01, 1.0)
    x_zero_point, zero_point = (
        rnd.choice([0, 255, 128, 3, rnd.randint(0, 255)]),
        rnd.choice([0, 255, rnd.randint(0, 255)]),
    )
    high = 128 if seed % 4 else 256  # 7-bit and full-range activation codes
    q_x = torch.randint(0, high, x_shape, generator=g).to(torch.uint8)
    qw = _weight(w_shape, per_channel, symmetric, rnd, g)
    w_scale = qw.q_per_channel_scales() if per_channel else torch.tensor(qw.q_scale(), dtype=torch.float64)
    w_scale = w_scale.reshape(-1, *[1] * (len(w_shape) - 2)) if conv else w_scale
    bias = None if seed % 7 == 0 else torch.randn(w_shape[0], generator=g)
    if bias is not None and (seed // 6) % 2 == 1:  # adversarial, per tensor and per channel: outputs next to half-codes
        x_codes = q_x.to(torch.int64)
        bias = _near_half_bias(
            x_codes,
            x_zero_point,
            (qw.int_repr().double() - qw_zero_points(qw, w_shape)),
            w_scale.flatten() if per_channel else w_scale.flatten()[0],  # per tensor: one 0-d scale for all outputs
            x_scale,
            scale,
            conv,
            kw,
            g,
        )
    with quantized_engine(engine):
        if conv:
            m = (nniq.ConvReLU2d if relu else nnq.Conv2d)(
                w_shape[1], w_shape[0], w_shape[2], bias=bias is not None, **kw
            )
        else:
            m = (nniq.LinearReLU if relu else nnq.Linear)(w_shape[1], w_shape[0], bias is not None)
        m.set_weight_bias(qw, bias)
    m.scale, m.zero_point = scale, zero_point
    return m, torch._make_per_tensor_quantized_tensor(q_x, x_scale, x_zero_point)


def qw_zero_points(qw, w_shape):
    "Weight zero points broadcastable to the weight codes."
    if qw.qscheme() == torch.per_tensor_affine:
        return torch.tensor(float(qw.q_zero_point()))
    return qw.q_per_channel_zero_points().double().reshape(-1, *[1] * (len(w_shape) - 1))


def sweep(engine, seeds) -> dict:
    """Per layer kind: outputs, codes equal to PyTorch's with the default kernel, codes equal to either oneDNN order
    (for oneDNN layers), the largest difference, and the kernels and instruction sets seen."""
    stats = {kind: dict(outputs=0, equal=0, either=0, max_diff=0, kernels=[]) for kind in ('conv', 'linear')}
    refused = {'one-channel': 0, 'groupwise': 0}  # layouts quantnb does not reproduce: a clear error, not a guess
    for seed in seeds:
        m, x = random_layer(seed, engine)
        ref, codes = m(x).int_repr().long(), QCodes(x.int_repr(), x.q_scale(), x.q_zero_point())
        layer = IntLayer(m)
        try:
            ours = layer(codes).codes.long()
        except ValueError as e:  # codes above 127 reaching a layout quantnb does not reproduce
            if 'does not reproduce' not in str(e):
                raise
            refused['groupwise' if 'groupwise' in str(e) else 'one-channel'] += 1
            continue
        either = ours == ref
        if layer.kernel != 'fbgemm':  # oneDNN: is each code one of its two orders?
            for order in ('onednn', 'onednn-combined'):
                either |= IntLayer(m, kernel=order)(codes).codes.long() == ref
        s = stats['conv' if isinstance(m, nnq.Conv2d) else 'linear']
        s['outputs'] += ref.numel()
        s['equal'] += (ours == ref).sum().item()
        s['either'] += either.sum().item()
        s['max_diff'] = max(s['max_diff'], (ours - ref).abs().max().item())
        if layer.kernel not in s['kernels']:
            s['kernels'].append(layer.kernel)
    return dict(stats, refused=refused, fbgemm_isa=fbgemm_isa(), onednn_isa=onednn_isa(), engine=engine)


class TinyNet(torch.nn.Module):
    "Not SampleNet: two input channels, odd channel counts, a 5x5 and a padded strided 3x3 conv, two linear layers."

    def __init__(self):
        super().__init__()
        self.quant, self.dequant = torch.ao.quantization.QuantStub(), torch.ao.quantization.DeQuantStub()
        self.conv1, self.relu1 = torch.nn.Conv2d(2, 5, 5), torch.nn.ReLU()
        self.conv2, self.relu2 = torch.nn.Conv2d(5, 12, 3, stride=2, padding=1), torch.nn.ReLU()
        self.pool, self.flatten = torch.nn.MaxPool2d(2), torch.nn.Flatten()
        self.fc1, self.relu3, self.fc2 = torch.nn.Linear(12 * 2 * 2, 40), torch.nn.ReLU(), torch.nn.Linear(40, 10)

    def forward(self, x):
        x = self.pool(self.relu2(self.conv2(self.relu1(self.conv1(self.quant(x))))))
        return self.dequant(self.fc2(self.relu3(self.fc1(self.flatten(x)))))


def agrees_with_pytorch(model, x):
    "Default IntegerModel against the converted model: bit for bit, or (AMX convolutions) within one code per layer."
    with torch.no_grad():
        ours, ref = IntegerModel.from_quantized(model)(x), model(x)
    if torch.equal(ours, ref):
        return True
    rows = parity_report(model, x)
    amx_convs = [r for r in rows if r['kernel'] == 'onednn-amx' and r['layer'].startswith('conv')]
    return (
        bool(amx_convs)
        and all(r['float_max_diff'] <= 1 for r in amx_convs)
        and all(r['float_equal'] == r['outputs'] for r in rows if r not in amx_convs)
    )


def model_check(engine, seeds=range(3)) -> dict:
    """Default IntegerModel against TinyNets converted under `engine`, 7- and 8-bit activations: do all agree, and
    would exact int32 accumulation (no saturation) have differed from PyTorch anywhere."""
    agree, exact_differs = True, False
    for seed in seeds:
        torch.manual_seed(seed)
        images = torch.rand(24, 2, 14, 14) * 3 - 0.5
        for reduce_range in (True, False):
            with quantized_engine(engine):
                model = PTQProcessor().static_quantization(
                    TinyNet().eval(), [images[:16]], backend=engine, reduce_range=reduce_range
                )
            agree = agree and agrees_with_pytorch(model, images)
            with torch.no_grad():
                exact = IntegerModel.from_quantized(model, saturate_int16=False)(images)
                exact_differs = exact_differs or not torch.equal(exact, model(images))
    return dict(agree=agree, exact_int32_differs=exact_differs)


GROUPWISE_SHAPES = [  # (C, O, kernel, stride, padding): fbgemm's groupwise path for the first four, im2col after
    (8, 8, 3, 1, 1),
    (16, 16, 3, 1, 1),
    (8, 8, 3, 2, 1),
    (16, 16, 3, 2, 1),
    (8, 8, 3, 1, 0),
    (8, 16, 3, 1, 1),
    (4, 4, 3, 1, 1),
    (16, 16, 1, 1, 0),
    (8, 8, 3, (1, 2), 1),
]


def groupwise_check(engine) -> dict:
    "Convolutions near fbgemm's groupwise path, 8-bit codes and extreme weights: the default twin against PyTorch."
    g = torch.Generator().manual_seed(0)
    result = {}
    for C, O, k, stride, padding in GROUPWISE_SHAPES:
        q_x = torch.randint(200, 256, (2, C, 9, 9), generator=g).to(torch.uint8)
        w = torch.where(torch.rand(O, C, k, k, generator=g) < 0.5, -127, 127).to(torch.int8)
        with quantized_engine(engine):
            m = nnq.Conv2d(C, O, k, stride=stride, padding=padding)
            m.set_weight_bias(torch._make_per_tensor_quantized_tensor(w, 0.01, 0), None)
        m.scale, m.zero_point = 50.0, 128
        reference = m(torch._make_per_tensor_quantized_tensor(q_x, 0.02, 0)).int_repr()
        try:
            ours = IntLayer(m)(QCodes(q_x, 0.02, 0)).codes
        except ValueError as e:  # the groupwise routine on a CPU without VNNI: its pairing is not reproduced
            if 'groupwise' not in str(e):
                raise
            result[str((C, O, k, stride, padding))] = 'refused'
            continue
        result[str((C, O, k, stride, padding))] = torch.equal(ours, reference)
    return result


if __name__ == '__main__':
    engine = sys.argv[1]
    stats = sweep(engine, range(int(sys.argv[2])))
    print(json.dumps(dict(stats, models=model_check(engine), groupwise=groupwise_check(engine))))
