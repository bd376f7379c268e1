"""Provision Fashion-MNIST (`make data`): find it, or install Debian's `dataset-fashion-mnist`, or say how to get it.

Standard library only, so that it runs before `.venv` exists. Looks in `$QUANTNB_DATA`, `./data` and the
Debian package's folder, the same places `quantnb.data` reads from.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']
DEBIAN_DIR = Path('/usr/share/datasets/fashion-mnist')
PACKAGE = 'dataset-fashion-mnist'


def candidates():
    env = os.environ.get('QUANTNB_DATA')
    dirs = [Path(env)] if env else []
    dirs += [Path('data'), DEBIAN_DIR]
    return [p for d in dirs for p in (d, d / 'fashion-mnist', d / 'FashionMNIST' / 'raw')]


def has_all(d):
    return all((d / f).exists() or (d / f'{f}.gz').exists() for f in FILES)


def find():
    return next((d for d in candidates() if has_all(d)), None)


def apt_install():
    "Install the Debian package with apt-get (through sudo when not root); False when apt is not available."
    if not shutil.which('apt-get'): return False
    sudo = [] if os.geteuid() == 0 else (['sudo'] if shutil.which('sudo') else None)
    if sudo is None: return False
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    if subprocess.run(sudo + ['apt-get', 'install', '-y', '-q', PACKAGE], env=env).returncode:
        subprocess.run(sudo + ['apt-get', 'update', '-q'], env=env, check=True)
        subprocess.run(sudo + ['apt-get', 'install', '-y', '-q', PACKAGE], env=env, check=True)
    return True


def main():
    found = find()
    if not found and apt_install(): found = find()
    if found: return print(f'Fashion-MNIST: found in {found}')
    sys.exit(f"""Fashion-MNIST was not found in {', '.join(map(str, dict.fromkeys(c for c in candidates())))}.
Get it in one of these ways:
  - Debian/Ubuntu: sudo apt-get install {PACKAGE}   (files go to {DEBIAN_DIR})
  - download the four .gz files ({', '.join(FILES)}) from
    https://github.com/zalandoresearch/fashion-mnist into ./data or a folder named by $QUANTNB_DATA""")


if __name__ == '__main__': main()
