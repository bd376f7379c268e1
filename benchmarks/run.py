"""Every quantized form of SampleNet, measured side by side in one process, written to BENCHMARKS.md (`make bench`).

    .venv/bin/python benchmarks/run.py            # print the table
    .venv/bin/python benchmarks/run.py --write    # and rewrite its section of BENCHMARKS.md

The models come from the demo's pipeline (quantnb.pipeline.ModelQuantizationPipeline.build_models: fp32, dynamic,
static per-channel with the best observer, QAT int8, low-bit QAT, IntegerModel) plus torchao int8 dynamic and PT2E
static int8 compiled (quantnb.ptq). Latency: quantnb.measure.interleaved_latency, every model in the same interleaved
rounds, at batch 1 and 64 on 1 and 2 threads; p10/median/p90 of the timed calls in ms. Ratios are to fp32 in the same
run. Sizes are serialized bytes (the low-bit model: its packed state; IntegerModel: its codes, qparams and biases).
Accuracy on the test set (the full one unless QUANTNB_FAST=1). Latencies are given to the decimal place of their
spread (p90 - p10), speed-ups to 2 significant digits, sizes to 3: digits beyond those are noise.
"""
import datetime
import math
import os
import sys
import warnings

import torch

from quantnb.core import progress
from quantnb.measure import evaluate, interleaved_latency, markdown_table
from quantnb.pipeline import ModelQuantizationPipeline, deployed_size_bytes, machine

from bench_md import replace_section

warnings.filterwarnings('ignore')
HEADING = '## Every quantized form of SampleNet (benchmarks/run.py)'
ITERS, ROUNDS = 30, 3


def sig(x: float, digits: int = 3) -> str:
    "`x` to `digits` significant digits, without scientific notation for the values here."
    return f'{float(f"{x:.{digits}g}"):g}'


def at_spread(p10: float, median: float, p90: float) -> str:
    "p10/median/p90 to the decimal place of their spread: the digits a rerun would keep."
    spread = p90 - p10
    decimals = max(0, -math.floor(math.log10(spread))) if spread > 0 else 3
    return '/'.join(f'{v:.{decimals}f}' for v in (p10, median, p90))


def build() -> tuple:
    "The pipeline's models (and the torchao/PT2E ones), the test loader and a batch of 64 test images."
    pipeline = ModelQuantizationPipeline()
    data = pipeline.build_models()
    models = dict(pipeline.models)
    unavailable = {n: s['reason'] for n, s in pipeline.steps.items() if s['status'] != 'ok'}
    ptq, calib = pipeline.ptq_processor, data['calibration']
    models['torchao int8 dynamic'] = ptq.torchao_quantization(models['fp32'], 'int8-dynamic')
    models['PT2E static int8 compiled'] = ptq.torchao_quantization(models['fp32'], 'int8-static-pt2e', calib, compile=True)
    return models, data, unavailable, pipeline


def measure(models: dict, data: dict) -> list:
    "Accuracy, size, and latency spreads at batch 1/64 on 1/2 threads, one row per model."
    x = data['images']
    size = {n: deployed_size_bytes(m) for n, m in models.items()}
    rows = {n: dict(model=n, accuracy=sig(evaluate(m, data['test'])['accuracy'], 4), size_mib=sig(size[n] / 2**20),
                    size_ratio=size['fp32'] / size[n]) for n, m in progress(list(models.items()), 'evaluating')}
    for threads in (1, min(2, os.cpu_count() or 1)):
        for batch in (1, 64):
            times = interleaved_latency(models, x[:batch], ITERS, ROUNDS, threads)
            q = {n: torch.tensor(t).quantile(torch.tensor([0.1, 0.5, 0.9])).tolist() for n, t in times.items()}
            for n in models:
                rows[n][f'b{batch} {threads}t ms (p10/med/p90)'] = at_spread(*q[n])
                rows[n][f'speedup b{batch} {threads}t'] = sig(q['fp32'][1] / q[n][1], 2)
    for r in rows.values(): r['size_ratio'] = sig(r['size_ratio'])
    return list(rows.values())


def main():
    models, data, unavailable, pipeline = build()
    rows = measure(models, data)
    m, s = machine(), pipeline.settings
    notes = ''.join(f'\n- {n}: not measured: {why}' for n, why in unavailable.items())
    if 'low-bit QAT' in models: notes += ('\n- low-bit QAT: size of its packed deployable state (quantnb.qat.packed_lowbit_state); it runs here as '
                                          'float fake quantization (no low-bit kernel), so its latency is that of the simulation')
    section = (f"{HEADING}\n\n{datetime.date.today()} · {m['cpu']}, {m['cores']} cores, {m['cpu_capability']}, VNNI: {m['vnni']}, "
               f"quantized engine: {m['quantized_engine']}; torch {m['torch']}, Python {m['python']}, quantnb {m['quantnb']}"
               f"{' · QUANTNB_FAST=1 (subsets)' if s['fast'] else ''} · static int8 observer: {pipeline.best_observer}\n\n"
               f"{markdown_table(rows)}\n{notes}\n")
    print(section)
    if '--write' in sys.argv:
        path = replace_section(HEADING, section)
        print(f'wrote {path}')


if __name__ == '__main__': main()
