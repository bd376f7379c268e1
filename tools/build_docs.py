"""Build the documentation site into `_docs/`, offline.

`nbdev-proc-nbs` writes `_proc/`; Quarto renders it where it is installed, else smalldocs does. nbdev's own
commands would try to download and install Quarto with sudo when it is missing, so this calls the same nbdev
functions without that step. smalldocs needs three fixes, made here:
- it names pages after their files (`00_affine.html`) and ignores the `output-file` front matter nbdev sets
  (`affine.html`), which nbdev's links use: the processed notebooks are renamed to their `output-file`;
- it loads KaTeX from a CDN: KaTeX is vendored from the npm registry into `site_libs/katex` (checked against
  the registry's sha512) and the pages point there;
- it lists whatever `sidebar.yml` lists: the sidebar is generated from notebooks and pages only.
"""
import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

import yaml
from nbdev.config import get_config

DOC_FILES = r'\.(?:ipynb|qmd|html)$'
KATEX_VERSION = '0.16.22'
KATEX_CDN = re.compile(r'https://cdn\.jsdelivr\.net/npm/katex@[\d.]+/dist')


def process_notebooks(cfg):
    "Run nbdev's notebook processing into `_proc/`, without its Quarto installer."
    from nbdev.doclinks import _build_modidx
    from nbdev.quarto import nbdev_sidebar, refresh_quarto_yml
    from nbdev.serve import proc_nbs
    os.chdir(cfg.config_path)
    refresh_quarto_yml()
    _build_modidx()
    nbdev_sidebar.__wrapped__(path=cfg.nbs_path, file_re=DOC_FILES, force=True)
    return proc_nbs(cfg.nbs_path, n_workers=0, file_re=DOC_FILES, force=True)


def output_file(nb_path):
    "The `output-file` nbdev put in the processed notebook's front matter, if any."
    nb = json.loads(nb_path.read_text())
    first = ''.join(nb['cells'][0]['source']) if nb['cells'] else ''
    m = re.search(r'^output-file:\s*(\S+)\.html\s*$', first, re.M)
    return m[1] if m else None


def rename_to_output_files(proc):
    "Rename processed notebooks to their `output-file` names and point `sidebar.yml` at the new names."
    renames = {}
    for nb in sorted(proc.glob('*.ipynb')):
        stem = output_file(nb)
        if stem and stem != nb.stem:
            nb.rename(nb.with_name(f'{stem}.ipynb'))
            renames[nb.name] = f'{stem}.ipynb'
    for f in [proc / 'sidebar.yml', *proc.glob('*.ipynb'), *proc.glob('*.qmd')]:
        text = f.read_text()
        for old, new in renames.items(): text = re.sub(rf'(?<![\w/.-]){re.escape(old)}\b', new, text)
        f.write_text(text)
    return renames


def fetch_katex(cache):
    "KaTeX's `dist/` from the npm registry, verified against the registry's sha512, cached in `cache`."
    dist = cache / f'katex-{KATEX_VERSION}'
    if (dist / 'katex.min.js').exists(): return dist
    meta = json.load(urllib.request.urlopen(f'https://registry.npmjs.org/katex/{KATEX_VERSION}', timeout=60))
    data = urllib.request.urlopen(meta['dist']['tarball'], timeout=120).read()
    algo, expected = meta['dist']['integrity'].split('-', 1)
    if algo != 'sha512' or base64.b64encode(hashlib.sha512(data).digest()).decode() != expected:
        sys.exit(f'KaTeX {KATEX_VERSION} from the npm registry failed its sha512 check')
    tmp = cache / f'.katex-{os.getpid()}'
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith('package/dist/') and m.isfile()]
        tar.extractall(tmp, members=members, filter='data')
    os.replace(tmp / 'package' / 'dist', dist)
    shutil.rmtree(tmp)
    return dist


def vendor_katex(site, cache):
    "Copy KaTeX into the site and point every page at it instead of the CDN."
    shutil.copytree(fetch_katex(cache), site / 'site_libs' / 'katex', dirs_exist_ok=True)
    for page in site.rglob('*.html'):
        html = page.read_text()
        if not KATEX_CDN.search(html): continue
        local = os.path.relpath(site / 'site_libs' / 'katex', page.parent)
        page.write_text(KATEX_CDN.sub(local, html))


def render(proc, site):
    "Render `_proc` with Quarto when installed, else smalldocs, into `site`."
    if shutil.which('quarto'):
        subprocess.run(['quarto', 'render', str(proc), '--no-execute'], check=True)
    else:
        subprocess.run([shutil.which('smalldocs', path=Path(sys.executable).parent) or 'smalldocs', 'render', str(proc)], check=True)
    built = proc / site.name
    if site.exists(): shutil.rmtree(site)
    shutil.move(built, site)


def main():
    cfg = get_config()
    proc = process_notebooks(cfg)
    renames = rename_to_output_files(proc)
    site = cfg.config_path / cfg.doc_path.name
    render(proc, site)
    vendor_katex(site, cfg.config_path / 'build')
    pages = sorted(p.name for p in site.glob('*.html'))
    print(f"docs: {len(pages)} pages in {site.relative_to(cfg.config_path)}/ ({', '.join(pages)}); renamed {renames or 'nothing'}")


if __name__ == '__main__': main()
