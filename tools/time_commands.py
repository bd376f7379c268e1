"""Time the README's commands on a fresh clone, as a new user would run them, and write benchmarks/timings.json.

    python tools/time_commands.py            # clone HEAD into a temporary folder, time, write the JSON here

In the clone, in order: `make test` (cold: it creates .venv, and the model cache is empty), `make test` again
(warm), `make demo` with another empty model cache (cold: .venv made, the fp32 and low-bit models trained), `make
demo` again (warm: models cached). The caches are fresh folders (QUANTNB_CACHE), so the user's own cache is neither
used nor touched. Each time is wall-clock seconds
of the whole command; the machine (CPU, VNNI, cores) and the commit are recorded beside them. Run it with nothing
else on the machine: the JSON says so only if you do (`--note`).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = (('make test (cold: creates .venv, empty model cache)', 'test', 'test-cache'),
         ('make test (warm)', 'test', 'test-cache'),
         ('make demo (cold: .venv made, empty model cache)', 'demo', 'demo-cache'),
         ('make demo (warm: models cached)', 'demo', 'demo-cache'))


def run(cmd: list, cwd: Path, env: dict, log: Path) -> float:
    "Wall seconds of `cmd`; its output goes to `log`; a failure stops the timing with the log's tail."
    start = time.perf_counter()
    with log.open('a') as out:
        done = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        tail = log.read_text()[-3000:]
        sys.exit(f'{" ".join(cmd)} failed ({done.returncode}); the end of {log}:\n{tail}')
    return time.perf_counter() - start


def machine() -> dict:
    "CPU name, flags that matter here, and cores, from /proc/cpuinfo."
    info = Path('/proc/cpuinfo').read_text() if Path('/proc/cpuinfo').exists() else ''
    name = next((line.split(':', 1)[1].strip() for line in info.splitlines() if line.startswith('model name')), '?')
    flags = set(next((line.split(':', 1)[1].split() for line in info.splitlines() if line.startswith('flags')), []))
    return dict(cpu=name, avx512_vnni='avx512_vnni' in flags, amx='amx_int8' in flags, cores=os.cpu_count(),
                system=platform.system())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--note', default='', help='how loaded the machine was, e.g. "nothing else running"')
    args = parser.parse_args()
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        clone, log = Path(tmp) / 'quantnb', Path(tmp) / 'log.txt'
        subprocess.run(['git', 'clone', '-q', str(ROOT), str(clone)], check=True)
        times = {}
        for label, target, cache in STEPS:
            env = {key: v for key, v in os.environ.items() if key != 'QUANTNB_FAST'}
            env['QUANTNB_CACHE'] = str(Path(tmp) / cache)
            print(f'== {label} ...', flush=True)
            times[label] = round(run(['make', target], clone, env, log))
            print(f'   {times[label]} s', flush=True)
    result = dict(date=date.today().isoformat(), commit=commit, machine=machine(), note=args.note, seconds=times)
    out = ROOT / 'benchmarks' / 'timings.json'
    out.write_text(json.dumps(result, indent=1) + '\n')
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
