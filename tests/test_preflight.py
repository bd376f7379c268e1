"quantnb.preflight: check_quantizable flags each cause of a failing or unprofitable eager quantization, with its fix."
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import DeQuantStub, QuantStub

from quantnb.preflight import check_quantizable

warnings.filterwarnings('ignore', category=DeprecationWarning)
warnings.filterwarnings('ignore', message='.*quantize.*deprecated', category=UserWarning)

class NoStubs(nn.Module):
    def __init__(self): super().__init__(); self.conv, self.relu = nn.Conv2d(1, 4, 3), nn.ReLU()
    def forward(self, x): return self.relu(self.conv(x))

class _Stubbed(nn.Module):
    def __init__(self): super().__init__(); self.quant, self.dequant, self.conv, self.relu = QuantStub(), DeQuantStub(), nn.Conv2d(1, 4, 3), nn.ReLU()

class FunctionalRelu(_Stubbed):
    def forward(self, x): return self.dequant(F.relu(self.conv(self.quant(x))))

class ResidualAdd(_Stubbed):
    def forward(self, x): y = self.relu(self.conv(self.quant(x))); return self.dequant(y + y)

class Reused(_Stubbed):
    def __init__(self): super().__init__(); self.conv2 = nn.Conv2d(4, 4, 3)
    def forward(self, x): return self.dequant(self.relu(self.conv2(self.relu(self.conv(self.quant(x))))))

class Unused(_Stubbed):
    def __init__(self): super().__init__(); self.extra = nn.Conv2d(4, 4, 3)
    def forward(self, x): return self.dequant(self.relu(self.conv(self.quant(x))))

class Dead(_Stubbed):
    def __init__(self):
        super().__init__()
        with torch.no_grad(): self.conv.weight.zero_(); self.conv.bias.fill_(-1.0)
    def forward(self, x): return self.dequant(self.relu(self.conv(self.quant(x))))

class Scale(nn.Module):
    def __init__(self): super().__init__(); self.weight = nn.Parameter(torch.ones(1))
    def forward(self, x): return x * self.weight

class Fallback(_Stubbed):
    def __init__(self): super().__init__(); self.scale = Scale()
    def forward(self, x): return self.dequant(self.scale(self.relu(self.conv(self.quant(x)))))

class Correct(_Stubbed):
    def forward(self, x): return self.dequant(self.relu(self.conv(self.quant(x))))

BROKEN = [(NoStubs, {}, 'stubs'), (FunctionalRelu, {}, 'functional-relu'), (ResidualAdd, {}, 'float-functional'), (Reused, {}, 'reused-module'),
          (lambda: Correct().train(), {}, 'mode'), (Unused, {}, 'no-data'), (Dead, {}, 'collapsed-scale'), (Fallback, {}, 'float-fallback'),
          (Correct, dict(backend='no-such-engine'), 'engine')]

@pytest.mark.parametrize('make,kwargs,check', BROKEN, ids=[b[2] for b in BROKEN])
def test_check_quantizable_flags_each_failure(make, kwargs, check):
    torch.manual_seed(0)
    model = make() if check == 'mode' else make().eval()
    findings = check_quantizable(model, torch.rand(2, 1, 8, 8), **kwargs)
    assert check in findings.checks(), findings
    assert not findings.ok and all(f['fix'] for f in findings)


def test_check_quantizable_passes_a_correct_model():
    findings = check_quantizable(Correct().eval(), torch.rand(2, 1, 8, 8))
    assert findings.ok, findings
    assert findings.checks() <= {'vnni', 'boundaries'}


def test_a_failing_conversion_is_explained():
    findings = check_quantizable(ResidualAdd().eval(), torch.rand(2, 1, 8, 8))
    assert 'convert-run' in findings.checks() and 'FloatFunctional' in str(findings)


@pytest.mark.parametrize('call,error,message', [
    (lambda: check_quantizable(Correct().eval(), [torch.rand(2, 1, 8, 8)]), TypeError, 'example must be one input batch'),
    (lambda: check_quantizable('model', torch.rand(2, 1, 8, 8)), TypeError, 'model must be a torch.nn.Module'),
], ids=['example', 'not-a-model'])
def test_bad_input_is_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()
