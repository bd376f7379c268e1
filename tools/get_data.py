"""Provision Fashion-MNIST (`make data`): find it, or offer to install Debian's `dataset-fashion-mnist`, or say how to get it.

Standard library only, so that it runs before `.venv` exists. Looks where `quantnb.data` looks: `$QUANTNB_DATA`,
`data/` in the project root (not in the working directory), and the Debian package's folder.
Installing a system package needs root, so it is never done unasked: at a terminal the tool asks first;
elsewhere (CI, a pipe) it prints the command and exits 1. `.ci/run` installs the package before `make data`.
Every failure ends in a message and exit status 1, never a traceback.
"""
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']
ROOT = Path(__file__).resolve().parents[1]
DEBIAN_DIR = Path('/usr/share/datasets/fashion-mnist')
PACKAGE = 'dataset-fashion-mnist'


def roots():
    "The folders searched, in order: `$QUANTNB_DATA`, the project's `data/`, the Debian package's folder."
    env = os.environ.get('QUANTNB_DATA')
    return ([Path(env).expanduser()] if env else []) + [ROOT / 'data', DEBIAN_DIR]


def candidates():
    "Each root, also in the layouts `<root>/fashion-mnist` and torchvision's `<root>/FashionMNIST/raw`."
    return [p for d in roots() for p in (d, d / 'fashion-mnist', d / 'FashionMNIST' / 'raw')]


def has_all(d):
    return all((d / f).exists() or (d / f'{f}.gz').exists() for f in FILES)


def find():
    return next((d for d in candidates() if has_all(d)), None)


def install_command():
    "The apt-get command that installs the package (with sudo when not root), or None where apt cannot."
    if not shutil.which('apt-get'): return None
    if os.geteuid() == 0: return ['apt-get', 'install', '-y', PACKAGE]
    return ['sudo', 'apt-get', 'install', '-y', PACKAGE] if shutil.which('sudo') else None


def apt_knows_package():
    "True when apt's package lists hold the package (False where the distribution lacks it or lists are empty)."
    if not shutil.which('apt-cache'): return False
    out = subprocess.run(['apt-cache', 'policy', PACKAGE], capture_output=True, text=True)
    return out.returncode == 0 and 'Candidate:' in out.stdout and 'Candidate: (none)' not in out.stdout


def ask(question):
    "Ask a yes/no question at a terminal; False when there is no terminal or no answer."
    if not (sys.stdin.isatty() and sys.stdout.isatty()): return False
    try: return input(f'{question} [y/N] ').strip().lower() in ('y', 'yes')
    except (EOFError, KeyboardInterrupt): print(); return False


def how_to_get(reason):
    where = ', '.join(map(str, roots()))
    return f"""Fashion-MNIST was not found in {where} (each also as <folder>/fashion-mnist or <folder>/FashionMNIST/raw).
{reason}
Get it in one of these ways, then run `make data` again:
  - Debian/Ubuntu: sudo apt-get update && sudo apt-get install {PACKAGE}   (files go to {DEBIAN_DIR})
  - download the four .gz files ({', '.join(FILES)}) from
    https://github.com/zalandoresearch/fashion-mnist into {ROOT / 'data'} or a folder named by $QUANTNB_DATA"""


def main():
    found = find()
    if found: return print(f'Fashion-MNIST: found in {found}')
    cmd = install_command()
    if cmd is None or not apt_knows_package():
        sys.exit(how_to_get(f'apt-get cannot install {PACKAGE} here (no apt, no sudo, or no such package in its lists).'))
    line = shlex.join(cmd)
    if not ask(f'Fashion-MNIST is missing. Install it now with `{line}`?'):
        sys.exit(how_to_get(f'Not installed: installing a system package needs your consent at a terminal. To install it: {line}'))
    try: rc = subprocess.run(cmd, env=dict(os.environ, DEBIAN_FRONTEND='noninteractive')).returncode
    except OSError as e: rc = f'{e}'
    if rc != 0: sys.exit(how_to_get(f'`{line}` failed (exit status {rc}).'))
    found = find()
    if not found: sys.exit(how_to_get(f'`{line}` succeeded, yet the files are not where the package should put them.'))
    print(f'Fashion-MNIST: installed, found in {found}')


if __name__ == '__main__': main()
