"The int16 saturation of x86 CPUs without VNNI, emulated with torch integer ops so that every machine sees it (05a, 05c)."

import itertools
import warnings

import pytest
import torch

from quantnb.data import calibration_batches, get_dataloaders
from quantnb.models import pretrained
from quantnb.integer import layer_inputs
from quantnb.integer_proof import saturation_report
from quantnb.isa import INT16_MAX, INT16_MIN, vpmaddubsw_matmul
from quantnb.ptq import PTQProcessor

warnings.filterwarnings('ignore', category=DeprecationWarning)
warnings.filterwarnings('ignore', message='.*quantize.*deprecated', category=UserWarning)


def reference_vpmaddubsw(q_x, q_w):
    "Element by element, as the instruction is specified: pairs of u8*s8 products, saturated to int16, summed in int32."
    M, K = q_x.shape
    acc, saturated = torch.zeros(M, len(q_w), dtype=torch.int64), 0
    for m, n in itertools.product(range(M), range(len(q_w))):
        for k in range(0, K, 2):
            pair = sum(int(q_x[m, j]) * int(q_w[n, j]) for j in range(k, min(k + 2, K)))
            saturated += not INT16_MIN <= pair <= INT16_MAX
            acc[m, n] += min(max(pair, INT16_MIN), INT16_MAX)
    return acc, saturated


@pytest.mark.parametrize('seed', range(20))
def test_emulation_matches_the_instruction_definition(seed):
    g = torch.Generator().manual_seed(seed)
    M, N, K = (int(v) for v in torch.randint(1, 9, (3,), generator=g))
    top = (
        torch.randint(0, 2, (M, 1), generator=g) * 128 + 127
    )  # rows of 7-bit codes (the exact matmul) and of 8-bit codes (pair by pair)
    q_x = (torch.rand(M, K, generator=g) * (top + 1)).floor().to(torch.uint8)
    q_w = torch.randint(-128, 128, (N, K), generator=g, dtype=torch.int8)
    acc, saturated = vpmaddubsw_matmul(q_x, q_w, max_elements=7)  # tiny chunks: the chunking must not matter
    ref_acc, ref_saturated = reference_vpmaddubsw(q_x, q_w)
    assert torch.equal(acc, ref_acc) and saturated == ref_saturated


def test_seven_bit_codes_never_saturate_and_eight_bit_ones_can():
    "Adversarial operands: the largest codes each configuration can produce, against the largest weights of each sign."
    for w in (127, -128):
        assert vpmaddubsw_matmul(torch.full((1, 64), 127), torch.full((1, 64), w))[1] == 0
        assert vpmaddubsw_matmul(torch.full((1, 64), 255), torch.full((1, 64), w))[1] == 32
    g = torch.Generator().manual_seed(0)
    q_x, q_w = torch.randint(0, 128, (64, 300), generator=g), torch.randint(-128, 128, (32, 300), generator=g)
    acc, saturated = vpmaddubsw_matmul(q_x, q_w)
    assert saturated == 0 and torch.equal(acc, q_x @ q_w.T)


def test_long_reductions_are_exact():
    "K = 4000: sums beyond float32's exact integers (2^24), where the emulation must switch to float64."
    g = torch.Generator().manual_seed(0)
    q_x = torch.randint(100, 128, (4, 4000), generator=g)
    q_w = torch.randint(100, 128, (3, 4000), generator=g)
    exact = q_x @ q_w.T
    assert exact.abs().max() > 2**24
    assert not torch.equal((q_x.float() @ q_w.float().T).long(), exact)  # float32 alone would round: the test can fail
    acc, saturated = vpmaddubsw_matmul(q_x, q_w)
    assert torch.equal(acc, exact) and saturated == 0
    full = torch.cat([torch.full((1, 600), 127), torch.full((1, 600), 255)])
    acc, saturated = vpmaddubsw_matmul(full, torch.full((2, 600), -128))
    assert acc.tolist() == [[-127 * 128 * 600] * 2, [INT16_MIN * 300] * 2] and saturated == 600


def test_bad_operands_are_clear_errors():
    with pytest.raises(ValueError, match='q_x holds codes outside 0..255'):
        vpmaddubsw_matmul(torch.full((1, 2), -1), torch.ones(1, 2, dtype=torch.int8))
    with pytest.raises(TypeError, match='q_w must be a tensor of integer codes'):
        vpmaddubsw_matmul(torch.ones(1, 2, dtype=torch.uint8), torch.ones(1, 2))
    with pytest.raises(ValueError, match='same K'):
        vpmaddubsw_matmul(torch.ones(1, 2, dtype=torch.uint8), torch.ones(1, 3, dtype=torch.int8))
    with pytest.raises(ValueError, match='no statically quantized Conv2d or Linear'):
        saturation_report(torch.nn.Linear(2, 2), torch.zeros(1, 2))


@pytest.fixture(scope='module')
def samplenet_models():
    model, calib = pretrained(), calibration_batches(num_batches=10)
    _, test_dl = get_dataloaders(test_subset=256)
    ptq = PTQProcessor()
    return {  # packed for fbgemm on every CPU, so that the report pairs products the same way everywhere
        'default': ptq.static_quantization(model, calib, backend='fbgemm'),
        '8-bit': ptq.static_quantization(model, calib, backend='fbgemm', reduce_range=False),
        '8-bit onednn': ptq.static_quantization(model, calib, backend='onednn', reduce_range=False),
        'images': torch.cat([x for x, _ in test_dl]),
    }


@pytest.fixture(scope='module')
def samplenet_reports(samplenet_models):
    return {
        name: saturation_report(samplenet_models[name], samplenet_models['images']) for name in ('default', '8-bit')
    }


def test_default_configuration_saturates_only_beyond_127_on_samplenet(samplenet_reports):
    """On real test images (not the calibration ones), through every quantized layer of SampleNet: a layer whose
    input codes stay at or below 127 never saturates; codes above 127 (beyond the calibrated range) may, rarely."""
    default, full_range = samplenet_reports['default'], samplenet_reports['8-bit']
    assert [r['layer'] for r in default] == ['conv1', 'conv2', 'fc1', 'fc2']
    assert all(r['saturated_pairs'] == 0 for r in default if r['max_input_code'] <= 127)
    assert sum(r['saturated_pairs'] for r in default) * 1000 < sum(r['saturated_pairs'] for r in full_range)


def test_full_range_activations_saturate_on_samplenet(samplenet_reports):
    "The same model with full-range uint8 activations: a CPU without VNNI gets some of its sums wrong."
    assert sum(r['saturated_pairs'] for r in samplenet_reports['8-bit']) > 0
    assert min(r['accumulator_sqnr_db'] for r in samplenet_reports['8-bit']) < 60


def test_bad_codes_and_models():
    with pytest.raises(ValueError, match='same K > 0'):
        vpmaddubsw_matmul(torch.ones(1, 0, dtype=torch.uint8), torch.ones(1, 0, dtype=torch.int8))
    with pytest.raises(TypeError, match='integer codes'):
        vpmaddubsw_matmul(torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 2, dtype=torch.int8))
    dynamic = PTQProcessor().dynamic_quantization(torch.nn.Sequential(torch.nn.Linear(4, 4)))
    with pytest.raises(ValueError, match='statically quantized'):
        saturation_report(dynamic, torch.zeros(1, 4))


def test_seven_bit_codes_exceed_127_outside_the_calibrated_range(samplenet_models):
    """reduce_range sets the scale; quantize/requantize still clamp to 0..255. Inputs beyond the calibration data
    therefore get codes above 127: the guarantee holds for in-range inputs only."""
    model, images = samplenet_models['default'], samplenet_models['images']

    def share_above_127(x):
        return {name: (q.int_repr() > 127).float().mean().item() for name, (_, q) in layer_inputs(model, x).items()}

    ordinary, bright = share_above_127(images), share_above_127(images * 3)
    assert (
        ordinary['conv1'] == 0 and max(ordinary.values()) < 1e-3
    )  # test images: within the quant stub's range; rare beyond
    assert min(bright.values()) > 1e-3  # three times brighter: every layer sees codes above 127


def test_report_pairs_products_as_the_packing_library_does(samplenet_models, samplenet_reports):
    """oneDNN pads each tap's channels to groups of 4: a one-channel convolution pairs each product with a zero and
    cannot saturate, where fbgemm's im2col pairing of the same layer does."""
    with pytest.warns(UserWarning, match="packed for oneDNN.*backend='fbgemm'"):
        onednn = saturation_report(samplenet_models['8-bit onednn'], samplenet_models['images'])
    fbgemm = {r['layer']: r for r in samplenet_reports['8-bit']}
    assert [r['library'] for r in onednn] == ['onednn', 'onednn', 'onednn', 'onednn']
    assert onednn[0]['saturated_pairs'] == 0 < fbgemm['conv1']['saturated_pairs']
    assert all(r['library'] == 'fbgemm' for r in samplenet_reports['8-bit'])
