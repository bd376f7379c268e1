"""quantnb.x86 at its boundary: arguments that would otherwise fail deep inside, or silently."""
import pytest
import torch

from quantnb.x86 import onednn_requantize, onednn_weight_scales


@pytest.mark.parametrize('name', ['x_scale', 'scale'])
def test_onednn_requantize_refuses_a_scale_whose_float32_reciprocal_overflows(name):
    "oneDNN holds 1/s_x and 1/s_y in float32: a scale of 1e-40 is named, not reported as an internal overflow."
    acc = torch.zeros(1, 1, dtype=torch.long)
    scales = {'x_scale': 0.1, 'scale': 0.1, name: 1e-40}
    with pytest.raises(ValueError, match=name):
        onednn_requantize(acc, None, scales['x_scale'], onednn_weight_scales(0.1, linear=False), scales['scale'], 0)
