"`quantnb.measure`: size against the real file, accuracy against a hand count, latency's contract (no timing assertions)."
import warnings

import pytest
import torch
import torch.nn as nn

from quantnb.measure import benchmark_latency, evaluate, model_size_bytes
from quantnb.models import SampleNet


def _dynamic_int8(model):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


@pytest.mark.parametrize('make', [SampleNet, lambda: _dynamic_int8(SampleNet())], ids=['fp32', 'dynamic-int8'])
def test_model_size_is_the_size_of_the_saved_file(tmp_path, make):
    model = make()
    # torch.save names the zip's top folder after the file ('archive' for an in-memory buffer): same name, same bytes
    torch.save(model.state_dict(), tmp_path / 'archive.pt')
    assert model_size_bytes(model) == (tmp_path / 'archive.pt').stat().st_size
    torch.save(model.state_dict(), tmp_path / 'model.pt')
    assert model_size_bytes(model) == pytest.approx((tmp_path / 'model.pt').stat().st_size, rel=1e-3)


def test_packed_weights_are_counted():
    fp32, int8 = SampleNet(), _dynamic_int8(SampleNet())
    parameters_bytes = sum(p.numel() * p.element_size() for p in int8.parameters())
    assert parameters_bytes < 0.1 * model_size_bytes(int8)  # parameters() misses the packed fc weights
    assert 3 < model_size_bytes(fp32) / model_size_bytes(int8) < 4


def test_evaluate_matches_a_hand_count():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    batches = [(torch.randn(5, 1, 28, 28), torch.randint(0, 10, (5,))) for _ in range(3)]
    with torch.no_grad():
        logits = torch.cat([model(x) for x, _ in batches])
    y = torch.cat([y for _, y in batches])
    res = evaluate(model, batches)
    assert res['accuracy'] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert res['loss'] == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    with pytest.raises(ValueError, match='no batches'): evaluate(model, [])


def test_benchmark_latency_contract():
    before = torch.get_num_threads()
    res = benchmark_latency(nn.Linear(8, 8), torch.randn(4, 8), warmup=2, iters=7, threads=1)
    assert torch.get_num_threads() == before, 'thread count must be restored'
    assert len(res['times_ms']) == 7 and res['threads'] == 1 and res['batch_size'] == 4
    assert res['p10_ms'] <= res['median_ms'] <= res['p90_ms']
    assert {'cpu_capability', 'vnni', 'quantized_engine'} <= set(res)
    with pytest.raises(ValueError, match='iters=0'): benchmark_latency(nn.Linear(8, 8), torch.randn(4, 8), iters=0)


def test_measuring_leaves_the_callers_model_in_its_mode():
    "evaluate and benchmark_latency run in eval mode and give every module its training flag back."
    from quantnb.measure import benchmark_latency, evaluate
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Dropout(0.5)).train()
    net[1].eval()
    before = [m.training for m in net.modules()]
    evaluate(net, [(torch.randn(8, 4), torch.randint(0, 3, (8,)))])
    benchmark_latency(net, torch.randn(2, 4), warmup=0, iters=2)
    assert [m.training for m in net.modules()] == before
