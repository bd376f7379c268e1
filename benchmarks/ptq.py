"""Post-training quantization of the trained SampleNet, every path side by side in one process (notebook 04's table).

    .venv/bin/python benchmarks/ptq.py            # print the table
    .venv/bin/python benchmarks/ptq.py --write    # and write it, with the machine, to BENCHMARKS.md

Latency: median of 30 timed calls, 1 thread (quantnb.measure.benchmark_latency), taken in 3 interleaved rounds of
10 calls per model (after 5 warm-up calls each round) so that drift in the machine hits every model alike.
Speedups are ratios to the fp32 row of the same run. Accuracy on the full Fashion-MNIST test set.
"""
import datetime
import os
import platform
import sys
import warnings


from quantnb.data import calibration_batches, get_dataloaders
from quantnb.measure import cpu_info, markdown_table
from quantnb.models import pretrained
from quantnb.observers import OBSERVERS
from quantnb.ptq import ptq_table, ptq_variants

from bench_md import replace_section

warnings.filterwarnings('ignore')

HEADING = '## Post-training quantization of SampleNet (benchmarks/ptq.py)'


def main():
    model, calib = pretrained(), calibration_batches(num_batches=10)
    _, test_dl = get_dataloaders()
    images = next(iter(test_dl))[0][:64]
    rows = ptq_table(ptq_variants(model, calib, OBSERVERS), test_dl, {'b64': images, 'b1': images[:1]}, iters=30)
    info = cpu_info()
    machine = (f"{info['cpu']}, {os.cpu_count()} cores, {info['cpu_capability']}, VNNI: {info['vnni']}, quantized engine: "
               f"{info['quantized_engine']}; torch {info['torch']}, Python {platform.python_version()}; 1 thread")
    report = (f"{HEADING}\n\n{datetime.date.today()} · {machine}\n\n"
              f"{markdown_table(rows)}\n")
    print(report)
    if '--write' in sys.argv:
        print(f'wrote {replace_section(HEADING, report)}')


if __name__ == '__main__': main()
