"""IntegerModel (quantnb.integer, notebook 05b) against PyTorch's converted model: latency, interleaved, one process.

    .venv/bin/python benchmarks/integer.py           # prints a markdown table
    .venv/bin/python benchmarks/integer.py --write   # and replaces its section of BENCHMARKS.md

Both run the statically quantized trained SampleNet (quantnb defaults); IntegerModel with requant='float' (equal to
PyTorch's x86 kernels code for code) and 'integer'. Latency: median of 30 timed calls, 1 thread, in 3 interleaved
rounds (quantnb.measure.interleaved_latency), at batch 64 and batch 1. IntegerModel is written for proof, not speed.
"""
import datetime
import sys
import warnings

import torch

from quantnb.data import calibration_batches, get_dataloaders
from quantnb.integer import IntegerModel
from quantnb.measure import cpu_info, interleaved_latency, markdown_table
from quantnb.models import pretrained
from quantnb.ptq import PTQProcessor

from bench_md import replace_section

HEADING = '## IntegerModel against PyTorch\'s kernels (benchmarks/integer.py)'

warnings.filterwarnings('ignore')


def integer_latency(iters:int=30, rounds:int=3) -> list:
    "Rows of model, median ms at batch 64 and 1, and the slowdown against PyTorch's converted model."
    converted = PTQProcessor().static_quantization(pretrained(), calibration_batches(num_batches=10))
    models = {'PyTorch converted (x86)': converted, 'IntegerModel float': IntegerModel.from_quantized(converted),
              'IntegerModel integer-only': IntegerModel.from_quantized(converted, requant='integer')}
    _, test_dl = get_dataloaders(test_subset=64)
    x = torch.cat([x for x, _ in test_dl])[:64]
    rows = {name: dict(model=name) for name in models}
    with torch.no_grad():
        for label, batch in (('b64', x), ('b1', x[:1])):
            times = interleaved_latency(models, batch, iters, rounds)
            for name in models: rows[name][f'latency_ms_{label}'] = torch.tensor(times[name]).median().item()
    reference = rows['PyTorch converted (x86)']
    for row in rows.values(): row['slowdown_b64'] = row['latency_ms_b64'] / reference['latency_ms_b64']
    return list(rows.values())


if __name__ == '__main__':
    rows, info = integer_latency(), cpu_info()
    f = rows[1]
    section = (f"{HEADING}\n\n{datetime.date.today()} · {info['cpu']}, {info['cpu_capability']}, VNNI: {info['vnni']}; torch {info['torch']}; "
               f"1 thread, median of 30 calls in 3 interleaved rounds\n\n{markdown_table(rows)}\n\n"
               f"IntegerModel (float requantization, equal to PyTorch's kernels) is {f['slowdown_b64']:.0f}x slower than PyTorch's "
               f"converted SampleNet at batch 64: it is written to be read and checked, not to be fast.\n")
    print(section)
    if '--write' in sys.argv: print(f'wrote {replace_section(HEADING, section)}')
