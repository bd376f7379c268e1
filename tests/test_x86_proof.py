"""quantnb.x86_proof and the helpers 05b's proofs use: the evidence sums_check gathers, and bad input."""
import warnings

import pytest
import torch

from quantnb.ptq import quantized_engine
from quantnb.x86 import check_kernel, first_output, packed_layer_codes, packed_near_half_linear, wrong_codes
from quantnb.x86_proof import plot_codes_against_real, sums_check

warnings.filterwarnings('ignore', category=DeprecationWarning)


def test_sums_check_here_is_reproduced_by_the_sums_its_library_adds():
    "As this CPU is: exact sums where quantnb predicts no saturation, int16 pairs where it predicts saturation."
    result = sums_check()
    assert len(result['sums']) == 4
    for row in result['sums']:
        right = row['wrong with int16 pairs'] if row['saturates_int16'] else row['wrong with exact int32 sums']
        other = row['wrong with exact int32 sums'] if row['saturates_int16'] else row['wrong with int16 pairs']
        assert right == 0 < other, row
    assert set(result['near-half']) == {'Linear', 'conv'}


def test_plot_codes_against_real_refuses_mismatched_codes():
    real = torch.arange(4.0)
    with pytest.raises(ValueError, match='one non-empty shape'):
        plot_codes_against_real(real, {'fbgemm': torch.arange(3.0)})
    with pytest.raises(ValueError, match='one non-empty shape'):
        plot_codes_against_real(torch.tensor([]), {'fbgemm': torch.tensor([])})
    with pytest.raises(ValueError, match='finite'):
        plot_codes_against_real(real, {'fbgemm': real / 0})
    with pytest.raises(TypeError, match='tensor of codes'):
        plot_codes_against_real(real, {'fbgemm': real.to(torch.complex64)})
    assert plot_codes_against_real(real, {'fbgemm': real + 1}) is not None


def test_packed_layer_codes_refuses_a_float64_bias():
    "PyTorch's oneDNN path runs a float64 bias wrongly: quantnb refuses it instead of answering for a float32 one."
    layer, x = packed_near_half_linear('onednn')
    with quantized_engine('onednn'):
        layer.set_weight_bias(layer.weight(), layer.bias().double())
    with pytest.raises(ValueError, match='float64 bias'):
        packed_layer_codes(layer, x)


def test_proof_helpers_name_bad_arguments():
    layer, x = packed_near_half_linear('fbgemm')
    with pytest.raises(TypeError, match='kernel must be a name'):
        wrong_codes(layer, x, None)
    with pytest.raises(TypeError, match='kernel must be a name'):
        check_kernel(1)
    with pytest.raises(TypeError, match='codes must be'):
        first_output([[1]])
    with pytest.raises(ValueError, match='at least one row'):
        first_output(torch.zeros(1, 3, 0, 0))


def test_run_fresh_call_warns_about_a_misspelt_cap():
    from quantnb.kernels import run_fresh_call
    with pytest.warns(UserWarning, match='not a cap quantnb knows'):
        run_fresh_call('quantnb.kernels.onednn_version', {'ONEDNN_MAX_CPU_ISA': 'AVX3'})
