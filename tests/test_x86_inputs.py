"""quantnb.x86 at its boundary: arguments that would otherwise fail deep inside, or silently."""
import pytest
import torch

from quantnb.x86 import onednn_requantize


@pytest.mark.parametrize('name', ['x_scale', 'scale'])
def test_onednn_requantize_refuses_a_scale_whose_float32_reciprocal_overflows(name):
    "oneDNN holds 1/s_x and 1/s_y in float32: a scale of 1e-40 is named, not reported as an internal overflow."
    acc = torch.zeros(1, 1, dtype=torch.long)
    scales = {'x_scale': 0.1, 'scale': 0.1, name: 1e-40}
    with pytest.raises(ValueError, match=name):
        onednn_requantize(acc, None, scales['x_scale'], 0.1, scales['scale'], 0, linear=False)


def test_a_tiny_input_scale_reaches_the_float32_reciprocal_check():
    "With a large weight scale, s_x·s_w stays usable while 1/s_x overflows float32: oneDNN's own check names it."
    acc = torch.zeros(1, 1, dtype=torch.long)
    with pytest.raises(ValueError, match='holds 1/x_scale in float32'):
        onednn_requantize(acc, None, 1e-39, 1000.0, 0.1, 0, linear=False)


def test_layer_functions_refuse_choices_no_cpu_runs():
    "saturate_int16 with 'onednn-amx' (AMX CPUs have VNNI), and l1_bytes with an arithmetic that does not read it."
    from quantnb.x86 import int_conv2d, int_linear
    q_x, q_w = torch.zeros(1, 2, dtype=torch.uint8), torch.zeros(1, 2, dtype=torch.int8)
    with pytest.raises(ValueError, match='never saturates'):
        int_linear(q_x, 0.1, 0, q_w, 0.1, 0, None, 0.1, 0, saturate_int16=True, kernel='onednn-amx')
    from quantnb.kernels import emulated_onednn_isa
    imitated = 'onednn-combined' if emulated_onednn_isa() == 'avx2' else 'onednn'
    with pytest.raises(ValueError, match=f"kernel='{imitated}'"):  # the advice names the imitated CPU's order
        int_linear(q_x, 0.1, 0, q_w, 0.1, 0, None, 0.1, 0, saturate_int16=True, kernel='onednn-amx')
    image, window = torch.zeros(1, 2, 4, 4, dtype=torch.uint8), torch.zeros(3, 2, 3, 3, dtype=torch.int8)
    with pytest.raises(ValueError, match="read only by kernel='onednn-amx'"):
        int_conv2d(image, 0.1, 0, window, 0.1, 0, None, 0.1, 0, kernel='fbgemm', l1_bytes=-5)


def test_onednn_requantize_makes_a_linear_layers_scales_oneDNNs_itself():
    "A Linear's weight scales make oneDNN's 1/(1/s) round trip inside onednn_requantize: next to half-codes it shows."
    from quantnb.requant import near_half_bias
    g = torch.Generator().manual_seed(0)
    w_scale = torch.rand(2048, dtype=torch.float64, generator=g) * 0.01 + 1e-3
    acc = torch.randint(-30_000, 30_000, (1, 2048), generator=g)
    bias = near_half_bias(acc[0], 0.0123, w_scale, 0.0771, g)
    linear, conv = (onednn_requantize(acc, bias, 0.0123, w_scale, 0.0771, 128, linear=flag) for flag in (True, False))
    assert (linear != conv).any() and (linear.int() - conv.int()).abs().max() == 1
    with pytest.raises(TypeError, match='linear'):
        onednn_requantize(acc, bias, 0.0123, w_scale, 0.0771, 128)


def test_onednn_isa_refuses_caps_it_does_not_model_and_non_string_values():
    from quantnb.isa import AMX_FLAGS, AVX512_FLAGS, onednn_isa
    amx_cpu = {'avx2', 'avx512_vnni', *AVX512_FLAGS, *AMX_FLAGS}
    with pytest.raises(ValueError, match='AVX10.2'):
        onednn_isa(amx_cpu, {'ONEDNN_MAX_CPU_ISA': 'AVX10_2_512'})  # oneDNN runs AVX10.1 there, not AMX
    with pytest.raises(TypeError, match='ONEDNN_MAX_CPU_ISA'):
        onednn_isa({'avx2'}, {'ONEDNN_MAX_CPU_ISA': 2})
    assert onednn_isa(amx_cpu, {'ONEDNN_MAX_CPU_ISA': 'AVX512_CORE_VNNI'}) == 'avx512_core_vnni'


def test_x86_library_refuses_an_unknown_system_name():
    from quantnb.isa import x86_library
    with pytest.raises(ValueError, match="system='linx'"):
        x86_library('conv', {'avx2'}, 'linx')
    assert x86_library('conv', {'avx2'}, 'linux') == 'fbgemm'


def test_onednn_conv_uses_amx_refuses_an_output_larger_than_the_input_allows():
    from quantnb.kernels import onednn_conv_uses_amx
    with pytest.raises(ValueError, match='output_hw'):
        onednn_conv_uses_amx(1, 16, 32, (3, 3), (4, 4), (100, 100), (0, 0), 48 * 1024)


def test_flag_sets_no_cpu_has_are_refused():
    from quantnb.isa import AMX_FLAGS, AVX512_FLAGS, fbgemm_isa, onednn_isa
    with pytest.raises(ValueError, match='avx_vnni without'):
        onednn_isa({'avx_vnni'}, {})
    with pytest.raises(ValueError, match='amx_int8 without'):
        onednn_isa({'avx2', *AVX512_FLAGS, *AMX_FLAGS}, {})  # AMX CPUs have AVX-512 VNNI
    with pytest.raises(TypeError, match='FBGEMM_ENABLE_INSTRUCTIONS'):
        fbgemm_isa({'avx2'}, {'FBGEMM_ENABLE_INSTRUCTIONS': 2})


def test_x86_library_refuses_flags_it_cannot_read():
    "No flags read looks like a CPU without AVX-512 VNNI: refused, as fbgemm_isa and onednn_isa refuse."
    from quantnb.isa import x86_library
    with pytest.raises(ValueError, match='lack AVX2'):
        x86_library('conv', set(), 'Linux')


def test_fbgemm_groupwise_layers_are_exact_only_where_the_routine_has_vnni(monkeypatch):
    "fbgemm's groupwise routine reads the CPU: exact under a cap on a VNNI CPU; elsewhere its pairing is unknown."
    import quantnb.isa as isa
    import quantnb.kernels as kernels
    from quantnb.isa import AVX512_FLAGS
    from quantnb.kernels import saturating_conv_accumulator
    from quantnb.requant import conv_accumulator
    g = torch.Generator().manual_seed(0)
    q_x = torch.randint(200, 256, (1, 8, 6, 6), generator=g)
    q_w = torch.where(torch.rand(8, 8, 3, 3, generator=g) < 0.5, -127, 127)
    exact = conv_accumulator(q_x, 0, q_w, 0, 1, 1, 1)
    monkeypatch.setattr(isa, '_this_process', lambda library: {'fbgemm': 'avx2', 'onednn': 'avx2'}[library])
    monkeypatch.setattr(kernels, 'cpu_flags', lambda: {'avx2', *AVX512_FLAGS, 'avx512_vnni'})
    acc, saturated = saturating_conv_accumulator(q_x, 0, q_w, 0, padding=1, library='fbgemm')  # capped, VNNI CPU
    assert torch.equal(acc, exact) and saturated == 0
    monkeypatch.setattr(kernels, 'cpu_flags', lambda: {'avx2'})  # a CPU without VNNI
    with pytest.raises(ValueError, match='groupwise'):
        saturating_conv_accumulator(q_x, 0, q_w, 0, padding=1, library='fbgemm')
    low = q_x - 128
    acc, _ = saturating_conv_accumulator(low, 0, q_w, 0, padding=1, library='fbgemm')
    assert torch.equal(acc, conv_accumulator(low, 0, q_w, 0, 1, 1, 1))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16, torch.int32])
def test_int_linear_refuses_a_bias_PyTorch_would_not_keep(dtype):
    "A float16 bias moved 123 of 256 near-half codes without a word: PyTorch keeps a float32 bias."
    from quantnb.x86 import int_linear
    q_x = torch.zeros(1, 4, dtype=torch.uint8)
    q_w = torch.zeros(2, 4, dtype=torch.int8)
    with pytest.raises(TypeError, match='bias must be a float32 tensor'):
        int_linear(q_x, 0.1, 0, q_w, 0.1, 0, torch.zeros(2, dtype=dtype), 0.1, 0)


def test_x86_library_refuses_groups_for_a_linear_layer():
    from quantnb.isa import x86_library
    with pytest.raises(ValueError, match='a Linear layer has no groups'):
        x86_library('linear', {'avx2'}, 'Linux', groups=5)
    assert x86_library('linear', {'avx2'}, 'Linux') == 'fbgemm'


@pytest.mark.parametrize('threads', [1, 2])
@pytest.mark.parametrize('batch', [1, 4])
def test_onednn_amx_one_by_one_follows_the_measured_pattern_and_warns(batch, threads):
    "1×1 convolutions oneDNN runs on AMX: one image on several threads takes s_x then s_w, else s_x·s_w (notebook 05b)."
    import warnings
    from quantnb.isa import onednn_isa
    from quantnb.x86 import packed_layer_codes, packed_near_half_conv
    if onednn_isa() != 'avx512_core_amx':
        pytest.skip('oneDNN runs AMX kernels only on a CPU with AMX')
    layer, x = packed_near_half_conv('onednn', in_channels=64, kernel_size=1, batch=batch)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        reference = layer(x).int_repr()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            ours = packed_layer_codes(layer, x, 'onednn-amx')
    finally:
        torch.set_num_threads(threads_before)
    assert any('1×1' in str(w.message) for w in caught)
    assert (ours.int() - reference.int()).abs().max() <= 1
    assert torch.equal(ours[0, :, 0, 0], reference[0, :, 0, 0])  # the near-half position: the pattern holds here


def test_int_conv2d_takes_the_l1_size_of_the_amx_cpu_it_imitates():
    "A 16→2048 3×3 conv with a 2×2 output is on AMX with a 32 KiB L1 and off it with 48 KiB: the order follows l1_bytes."
    from quantnb.kernels import onednn_conv_uses_amx
    from quantnb.x86 import int_conv2d
    assert onednn_conv_uses_amx(1, 16, 2048, (3, 3), (4, 4), (2, 2), (0, 0), 32 * 1024)
    assert not onednn_conv_uses_amx(1, 16, 2048, (3, 3), (4, 4), (2, 2), (0, 0), 48 * 1024)
    g = torch.Generator().manual_seed(0)
    q_x = torch.randint(0, 128, (1, 16, 4, 4), generator=g).to(torch.uint8)
    q_w = torch.randint(-127, 128, (2048, 16, 3, 3), generator=g).to(torch.int8)
    w_scale = torch.rand(2048, dtype=torch.float64, generator=g) * 0.01 + 1e-3
    args = (q_x, 0.02, 9, q_w, w_scale, torch.zeros(2048, dtype=torch.long), None, 0.05, 100)
    for l1_bytes, order in ((32 * 1024, 'onednn-combined'), (48 * 1024, 'onednn')):
        assert torch.equal(int_conv2d(*args, kernel='onednn-amx', l1_bytes=l1_bytes), int_conv2d(*args, kernel=order))
    with pytest.raises(ValueError, match='l1_bytes'):
        int_conv2d(*args, kernel='onednn-amx', l1_bytes=0)


def test_one_by_one_convolutions_with_padding_or_unaligned_channels_stay_off_amx():
    "Fitted to oneDNN's log: a padded 1×1 window, or one with < 32 input channels not a multiple of 4, runs off AMX."
    from quantnb.kernels import onednn_conv_uses_amx
    l1 = 48 * 1024
    assert onednn_conv_uses_amx(1, 16, 32, 1, (28, 28), (28, 28), 0, l1)
    assert not onednn_conv_uses_amx(1, 16, 32, 1, (28, 28), (30, 30), 1, l1)  # padded
    assert not onednn_conv_uses_amx(1, 6, 32, 1, (28, 28), (28, 28), 0, l1)  # 6 input channels
    assert onednn_conv_uses_amx(1, 6, 32, 3, (28, 28), (26, 26), 0, l1)  # a 3×3 window: the rule is 1×1 only
    assert onednn_conv_uses_amx(1, 33, 32, 1, (8, 8), (8, 8), 0, l1)  # 33 unaligned channels: on AMX (jit)
    assert not onednn_conv_uses_amx(1, 64, 32, 1, (8, 8), (10, 10), 1, l1)  # padded, however many channels


def test_amx_rules_agree_with_onednns_log():
    "On a CPU with AMX, the rules' prediction for a grid of shapes equals what oneDNN's log says it ran."
    from quantnb.isa import onednn_isa, run_fresh
    if onednn_isa() != 'avx512_core_amx':
        pytest.skip('the rules decide AMX only on a CPU with AMX')
    script = """import itertools, json
import torch
import torch.ao.nn.quantized as nnq
from quantnb.kernels import onednn_conv_uses_amx
from quantnb.ptq import quantized_engine
predicted = []
for k, c, p, size, b in itertools.product((1, 3), (3, 4, 6, 16), (0, 1), (2, 8), (1, 4)):
    if k == 3 and size == 2 and not p:
        continue
    with quantized_engine('onednn'):
        layer = nnq.Conv2d(c, 32, k, padding=p)
        layer.set_weight_bias(torch.quantize_per_tensor(torch.randn(32, c, k, k), 0.02, 0, torch.qint8), None)
    x = torch.quantize_per_tensor(torch.rand(b, c, size, size), 0.01, 0, torch.quint8)
    out = layer(x)
    predicted.append(onednn_conv_uses_amx(b, c, 32, k, (size, size), out.shape[2:], p))
print(json.dumps(predicted))
"""
    predicted, ran = run_fresh(script, {})
    assert len(ran) == len(predicted)
    assert [('amx' in impl) for _, impl in ran] == predicted


def test_run_fresh_names_what_the_script_printed_instead_of_json():
    "A script that prints nothing, or no JSON last, is told so; a timestamped log is not read as empty."
    from quantnb.isa import run_fresh
    with pytest.raises(RuntimeError, match='printed nothing'):
        run_fresh('x = 1', {})
    with pytest.raises(RuntimeError, match='not JSON'):
        run_fresh("print('done')", {})
    with pytest.raises(TypeError, match='env must be a dict'):
        run_fresh('print(1)', {'ONEDNN_VERBOSE': 1})
    script = """import json, torch
import torch.ao.nn.quantized as nnq
from quantnb.ptq import quantized_engine
with quantized_engine('onednn'):
    layer = nnq.Linear(8, 4)
layer(torch.quantize_per_tensor(torch.rand(2, 8), 0.1, 0, torch.quint8))
print(json.dumps('ran'))
"""
    result, ran = run_fresh(script, {'ONEDNN_VERBOSE_TIMESTAMP': '1'})
    assert result == 'ran' and [primitive for primitive, _ in ran] == ['matmul']


def test_an_avx512_cap_takes_avx_vnni_away_from_a_cpu_without_avx512():
    "oneDNN's caps are bit masks: AVX512_CORE (and _VNNI, _BF16) hold no AVX-VNNI bit, so an Alder Lake runs AVX2."
    from quantnb.isa import onednn_isa
    alder_lake = {'avx2', 'avx_vnni'}
    for cap in ('AVX512_CORE', 'AVX512_CORE_VNNI', 'AVX512_CORE_BF16'):
        assert onednn_isa(alder_lake, {'ONEDNN_MAX_CPU_ISA': cap}) == 'avx2'
    for cap in ('AVX2_VNNI', 'AVX10_1_512', 'ALL'):
        assert onednn_isa(alder_lake, {'ONEDNN_MAX_CPU_ISA': cap}) == 'avx2_vnni'


@pytest.mark.parametrize('engine', ['fbgemm', 'onednn'])
def test_packed_layer_codes_follow_a_fused_relu(engine):
    "A LinearReLU and a ConvReLU2d: quantnb's codes are PyTorch's, ReLU included."
    import torch.ao.nn.intrinsic.quantized as nniq
    from quantnb.ptq import quantized_engine
    from quantnb.x86 import packed_layer_codes
    g = torch.Generator().manual_seed(0)
    with quantized_engine(engine):
        linear = nniq.LinearReLU(20, 8)
        linear.set_weight_bias(torch.quantize_per_tensor(torch.randn(8, 20, generator=g), 0.02, 0, torch.qint8),
                               torch.randn(8, generator=g))
        conv = nniq.ConvReLU2d(3, 8, 3, padding=1)
        conv.set_weight_bias(torch.quantize_per_tensor(torch.randn(8, 3, 3, 3, generator=g), 0.02, 0, torch.qint8),
                             torch.randn(8, generator=g))
    for layer, shape in ((linear, (5, 20)), (conv, (2, 3, 6, 6))):
        layer.scale, layer.zero_point = 0.05, 0
        x = torch.quantize_per_tensor(torch.randn(*shape, generator=g), 0.05, 128, torch.quint8)
        reference = layer(x).int_repr()
        assert (reference == 0).any(), 'the ReLU must clip some outputs for the test to mean anything'
        assert torch.equal(packed_layer_codes(layer, x), reference)


def test_packed_layer_codes_refuse_what_int_conv2d_does_not_compute():
    import torch.ao.nn.quantized as nnq
    from quantnb.x86 import packed_layer_codes, packed_near_half_conv, packed_near_half_linear
    layer, x = packed_near_half_conv('fbgemm')
    grouped = nnq.Conv2d(16, 256, 3, groups=2)
    with pytest.raises(ValueError, match='groups=2'):
        packed_layer_codes(grouped, x)
    with pytest.raises(TypeError, match='per-tensor quint8'):
        packed_layer_codes(layer, x.int_repr())
    with pytest.raises(ValueError, match="engine='qnnpack'"):
        packed_near_half_linear('qnnpack')
    with pytest.raises(ValueError, match='kernel_size=9'):
        packed_near_half_conv('onednn', kernel_size=9)
    with pytest.raises(TypeError, match='seed'):
        packed_near_half_linear('fbgemm', seed=1.5)


def test_packed_layer_codes_refuse_layers_they_do_not_compute_even_with_a_kernel():
    "A LeakyReLU, a Tanh, an add and a dynamic layer: refused, whatever `kernel` says (they were computed as plain)."
    import torch.ao.nn.intrinsic.quantized as nniq
    import torch.ao.nn.quantized.dynamic as nnqd
    from quantnb.x86 import packed_layer_codes, packed_near_half_linear
    _, x = packed_near_half_linear('fbgemm')
    for layer in (nniq.LinearLeakyReLU(300, 256, 0.01), nniq.LinearTanh(300, 256), nnqd.Linear(300, 256)):
        with pytest.raises(TypeError, match='other fused activations'):
            packed_layer_codes(layer, x, kernel='onednn')


def test_near_half_builders_keep_the_layer_and_first_input_at_any_batch():
    from quantnb.x86 import packed_near_half_conv, packed_near_half_linear
    for build in (packed_near_half_linear, lambda engine, batch: packed_near_half_conv(engine, batch=batch)):
        one, x_one = build('fbgemm', 1)
        many, x_many = build('fbgemm', 5)
        assert torch.equal(one.weight().int_repr(), many.weight().int_repr())
        assert torch.equal(one.bias(), many.bias())
        assert torch.equal(x_one.int_repr()[0], x_many.int_repr()[0])
        assert len(x_many) == 5


def test_onednn_activation_scales_are_the_ones_onednn_requantize_multiplies_by():
    from quantnb.requant import f32
    from quantnb.x86 import onednn_activation_scales, onednn_requantize
    src_scale, dst_inverse = onednn_activation_scales(0.0123, 0.0771)
    acc = torch.tensor([[12345]])
    expected = torch.round(acc.float() * src_scale * f32(0.01) * dst_inverse + 7).clamp(0, 255).to(torch.uint8)
    assert torch.equal(onednn_requantize(acc, None, 0.0123, 0.01, 0.0771, 7, linear=False), expected)
    with pytest.raises(ValueError, match='overflows'):
        onednn_activation_scales(1e-39, 0.1)


def test_small_refusals_of_the_layer_functions_and_the_plot():
    from quantnb.x86 import int_linear, plot_half_code_distances
    with pytest.raises(ValueError, match='N > 0'):
        int_linear(torch.zeros(1, 2, dtype=torch.uint8), 0.1, 0, torch.zeros(0, 2, dtype=torch.int8), 0.1, 0, None,
                   0.1, 0)
    with pytest.raises(TypeError, match='matplotlib Axes'):
        plot_half_code_distances(torch.rand(4) / 2, torch.zeros(4, dtype=torch.bool), ax='x')


def test_run_fresh_sets_caps_from_env_alone_and_stops_at_its_timeout(monkeypatch):
    from quantnb.isa import run_fresh
    monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', 'AVX2')  # a cap of the process that calls run_fresh
    script = 'import json, os\nprint(json.dumps(os.environ.get("ONEDNN_MAX_CPU_ISA")))'
    assert run_fresh(script, {})[0] is None
    assert run_fresh(script, {'ONEDNN_MAX_CPU_ISA': 'AVX512_CORE'})[0] == 'AVX512_CORE'
    with pytest.raises(RuntimeError, match='timeout=1'):
        run_fresh('import time\ntime.sleep(30)', {}, timeout=1)
    with pytest.raises(ValueError, match='timeout'):
        run_fresh(script, {}, timeout=0)


def test_share_outside_int16_and_a_window_that_does_not_fit():
    from quantnb.isa import share_outside_int16
    from quantnb.kernels import onednn_conv_uses_amx
    assert share_outside_int16(torch.tensor([0, 40_000, -40_000, 32_767])) == 0.5
    with pytest.raises(TypeError, match='int32 or int64'):
        share_outside_int16(torch.tensor([0.5]))
    with pytest.raises(TypeError, match='would already have wrapped'):
        share_outside_int16(torch.tensor([255], dtype=torch.int16) * 127 * 2)
    with pytest.raises(ValueError, match='does not fit'):
        onednn_conv_uses_amx(1, 1, 1, 5, (2, 2), (1, 1), 0)


def test_groupwise_emulation_counts_the_zero_point_its_padding_holds(monkeypatch):
    "fbgemm's groupwise routine pads with the zero point's code: a zero point above 127 can saturate it, so refused."
    import quantnb.isa as isa
    import quantnb.kernels as kernels
    from quantnb.kernels import UnreproducedPairing, saturating_conv_accumulator
    monkeypatch.setattr(kernels, 'cpu_flags', lambda: {'avx2'})
    monkeypatch.setattr(isa, '_this_process', lambda library: 'avx2')
    codes = torch.zeros(1, 8, 4, 4, dtype=torch.long)
    weights = torch.full((8, 8, 3, 3), -128)
    with pytest.raises(UnreproducedPairing, match='zero point'):
        saturating_conv_accumulator(codes, 255, weights, 0, padding=1, library='fbgemm')
    acc, saturated = saturating_conv_accumulator(codes, 100, weights, 0, padding=1, library='fbgemm')
    assert saturated == 0


def test_emulated_onednn_isa_refuses_a_cap_below_avx2_instead_of_imitating_avx2(monkeypatch):
    "Only unreadable flags fall back to AVX2; a cap that keeps oneDNN below AVX2 is refused, as onednn_isa refuses it."
    import quantnb.isa as isa
    import quantnb.kernels as kernels
    from quantnb.kernels import emulated_onednn_isa

    def below_avx2(library):
        raise ValueError('ONEDNN_MAX_CPU_ISA=SSE41 keeps oneDNN below AVX2')
    monkeypatch.setattr(isa, '_this_process', below_avx2)
    with pytest.raises(ValueError, match='below AVX2'):
        emulated_onednn_isa()
    monkeypatch.setattr(kernels, 'cpu_flags', lambda: set())  # flags not read
    assert emulated_onednn_isa() == 'avx2'


def test_l1_size_falls_back_to_48_kib_with_a_warning(monkeypatch, tmp_path):
    import quantnb.kernels as kernels
    monkeypatch.setattr(kernels, 'Path', lambda _: tmp_path)  # a /sys without cache files
    with pytest.warns(UserWarning, match='48 KiB'):
        assert kernels._l1_data_bytes() == 48 * 1024


def test_check_library_names_the_argument_for_any_type():
    import numpy as np
    from quantnb.kernels import check_library
    for library in (np.array(['fbgemm']), None, 3, ('fbgemm',)):
        with pytest.raises(ValueError, match='library='):
            check_library(library)


def test_unreproduced_pairing_puts_the_alternative_before_exact_sums():
    from quantnb.kernels import UnreproducedPairing
    message = str(UnreproducedPairing('a layout', 'pack the layer for fbgemm'))
    assert message.startswith('a layout: pack the layer for fbgemm, or use exact int32 sums instead')
    assert str(UnreproducedPairing('a layout')).startswith('a layout: use exact int32 sums instead')


def test_unknown_cap_names_warn_and_read_as_no_cap():
    from quantnb.isa import AVX512_FLAGS, fbgemm_isa, onednn_isa
    flags = {'avx2', *AVX512_FLAGS, 'avx512_vnni'}
    with pytest.warns(UserWarning, match='not a cap quantnb knows'):
        assert onednn_isa(flags, {'ONEDNN_MAX_CPU_ISA': 'AVX_2'}) == 'avx512_core_vnni'
    with pytest.warns(UserWarning, match='not a name fbgemm knows'):
        assert fbgemm_isa(flags, {'FBGEMM_ENABLE_INSTRUCTIONS': 'AVX_2'}) == 'avx512_vnni'


def test_plot_pair_sums_takes_int_bits_and_int32_or_int64_sums():
    from quantnb.isa import plot_pair_sums
    for bad in ({8: torch.tensor([1], dtype=torch.int16)}, {'8': torch.tensor([1])}, {True: torch.tensor([1])}):
        with pytest.raises(TypeError, match='pair_sums'):
            plot_pair_sums(bad)


def test_run_fresh_skips_blank_lines_after_the_json_result():
    from quantnb.isa import run_fresh
    result, _ = run_fresh('import json\nprint(json.dumps(7))\nprint()', {})
    assert result == 7


def test_saturating_gemm_equals_pytorch_capped_at_avx2_on_random_full_range_codes():
    "PyTorch's Linear under both libraries, capped at AVX2 in a fresh process, against the emulation."
    from quantnb.isa import run_fresh, saturating_gemm
    script = '''import json
import torch
import torch.ao.nn.quantized as nnq
from quantnb.ptq import quantized_engine
g = torch.Generator().manual_seed(0)
q_x = torch.randint(0, 256, (16, 64), generator=g).to(torch.uint8)
q_w = torch.randint(-128, 128, (8, 64), generator=g).to(torch.int8)
codes = {}
for engine in ('fbgemm', 'onednn'):
    with quantized_engine(engine):
        layer = nnq.Linear(64, 8)
        layer.set_weight_bias(torch._make_per_tensor_quantized_tensor(q_w, 1.0, 0), None)
    layer.scale = 2.0 ** 12
    layer.zero_point = 128
    codes[engine] = layer(torch._make_per_tensor_quantized_tensor(q_x, 1.0, 100)).int_repr().tolist()
print(json.dumps(codes))
'''
    codes, _ = run_fresh(script, {'FBGEMM_ENABLE_INSTRUCTIONS': 'AVX2', 'ONEDNN_MAX_CPU_ISA': 'AVX2'})
    g = torch.Generator().manual_seed(0)
    q_x = torch.randint(0, 256, (16, 64), generator=g)
    q_w = torch.randint(-128, 128, (8, 64), generator=g)
    acc, saturated = saturating_gemm(q_x, 100, q_w, 0)
    assert saturated > 0
    expected = (torch.round(acc.double() / 2 ** 12) + 128).clamp(0, 255).long().tolist()
    assert codes == {'fbgemm': expected, 'onednn': expected}


def test_a_flag_spelt_without_its_underscore_is_refused():
    "'avx512vnni' (as some tools print it) would read as a CPU without VNNI: refused with Linux's spelling."
    from quantnb.isa import AVX512_FLAGS, fbgemm_isa, x86_library
    with pytest.raises(ValueError, match="'avx512_vnni'"):
        fbgemm_isa({'avx2', *AVX512_FLAGS, 'avx512vnni'}, {})
    with pytest.raises(ValueError, match="'avx_vnni'"):
        x86_library('conv', {'avx2', 'avxvnni'}, 'Linux')
