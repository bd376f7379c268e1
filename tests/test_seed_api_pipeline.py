"""The seed's `ModelQuantizationPipeline` calls and its `main()` flow, run as the seed wrote them (only the imports
changed), in fast mode; the result agrees with what the `quantnb demo` command measured on the same settings."""
import json
import re

import pytest
import torch

from quantnb.pipeline import ModelQuantizationPipeline
from test_cli import fast_demo


def main():
    "The seed's `main()`, unchanged."
    pipeline = ModelQuantizationPipeline()
    pipeline.full_quantization_demo()


@pytest.fixture(scope='module')
def seed_main_output():
    "Run the seed's main() once (fast mode), capturing what it prints and the result full_quantization_demo returned."
    import contextlib, io, os
    assert os.environ.get('QUANTNB_FAST') == '1', 'run the tests with QUANTNB_FAST=1 (make test does)'
    results, original = [], ModelQuantizationPipeline.full_quantization_demo
    def recording(self):
        results.append(original(self)); return results[-1]
    out = io.StringIO()
    ModelQuantizationPipeline.full_quantization_demo = recording
    try:
        with contextlib.redirect_stdout(out): main()
    finally: ModelQuantizationPipeline.full_quantization_demo = original
    return out.getvalue(), results[0]


def test_main_prints_the_seeds_summary_for_every_model(seed_main_output):
    printed, result = seed_main_output
    for row in result['rows']:
        assert re.search(rf"^{re.escape(row['model'])}: size [\d.]+ MiB \([\d.-]+% smaller\), [\d.]+ ms per batch of 64, accuracy [\d.]+$", printed, re.M), printed[-2000:]


def test_main_and_the_command_agree(seed_main_output):
    "Same settings, same seed: the seed's flow and `quantnb demo --fast` measure the same accuracies and sizes."
    _, result = seed_main_output
    cli = json.loads((fast_demo()['out'] / 'results.json').read_text())
    assert result['settings'] == cli['settings']
    key = lambda rows: {r['model']: (r['accuracy'], r['size_mib']) for r in rows}
    assert key(result['rows']).keys() == key(cli['rows']).keys()
    for name, (acc, size) in key(result['rows']).items():
        assert acc == pytest.approx(key(cli['rows'])[name][0], abs=0.005), name
        assert size == pytest.approx(key(cli['rows'])[name][1], rel=0.01), name


def test_seed_methods_keep_their_shapes():
    pipeline = ModelQuantizationPipeline()
    train_loader, test_loader = pipeline.prepare_data()          # the seed's default batch_size=32
    images, labels = next(iter(train_loader))
    assert images.shape == (32, 1, 28, 28) and labels.shape == (32,)
    model = pipeline.create_sample_model()
    assert model(images).shape == (32, 10)
    dynamic = pipeline.ptq_processor.dynamic_quantization(model)
    params_and_buffers = sum(t.nelement() * t.element_size() for t in [*dynamic.parameters(), *dynamic.buffers()])
    assert pipeline._get_model_size(dynamic) > 1_000_000 > params_and_buffers  # the seed's sum missed the packed int8 fc1


def test_seed_train_model_trains():
    pipeline = ModelQuantizationPipeline()
    torch.manual_seed(0)
    batches = [(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))) for _ in range(2)]
    model = pipeline._train_model(pipeline.create_sample_model(), batches, batches, epochs=1)
    assert len(model.history) == 1 and not model.training
