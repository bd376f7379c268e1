"""Build the documentation site into `_docs/`, offline.

`nbdev-proc-nbs` writes `_proc/`; Quarto renders it where it is installed, else smalldocs does. nbdev's own
commands would try to download and install Quarto with sudo when it is missing, so this calls the same nbdev
functions without that step. smalldocs needs four fixes, made here:
- it names pages after their files (`00_affine.html`) and ignores the `output-file` front matter nbdev sets
  (`affine.html`), which nbdev's links use: the processed notebooks are renamed to their `output-file`;
- it loads KaTeX from a CDN: KaTeX is vendored from the npm registry into `site_libs/katex` (checked against
  the registry's sha512) and the pages point there;
- it lists whatever `sidebar.yml` lists: the sidebar is generated from notebooks and pages only;
- its search box fetches `search.json`, which a browser refuses for a page opened from disk (`file://`): the index is
  also written as `search.js`, a script (which `file://` pages may load), and the search code loads that instead.
quantnb has no hosted site or public repository (no `[project.urls]`), so nbdev's "source" links (made from the
repository's address) are pointed at the notebook each symbol is defined in, and there is no sitemap.
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
    try: return proc_nbs(cfg.nbs_path, n_workers=0, file_re=DOC_FILES, force=True)
    except Exception as e:
        if 'Error in notebook' not in str(e): raise
        sys.exit(f'{e}\n\nnbdev runs, to render the docs, only the cells that export, import or call show_doc, in order. A '
                 'cell that imports and also uses a variable from an earlier lesson cell fails there: give the import a '
                 'cell of its own (or move it to the imports at the top).')


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


SEARCH_FETCH = '''      const r = await fetch(offset + "search.json");
      index = await r.json();
'''
SEARCH_SCRIPT = '''      // quantnb: the index is a script, search.js, which a page opened from disk may load (fetch() is refused there)
      index = window.smalldocsSearchIndex || await new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = offset + "search.js";
        s.onload = () => resolve(window.smalldocsSearchIndex || []);
        s.onerror = reject;
        document.head.appendChild(s);
      });
'''


def search_from_disk(site):
    "Write the search index as `search.js` and make smalldocs' search load it rather than fetch `search.json`."
    js = site / 'site_libs' / 'smalldocs.js'
    if not js.exists():
        print('note: search.js not made: the site was not rendered by smalldocs (its search fetches search.json)')
        return
    index = json.loads((site / 'search.json').read_text())
    (site / 'search.js').write_text(f'window.smalldocsSearchIndex = {json.dumps(index, ensure_ascii=False)};\n')
    code = js.read_text()
    if SEARCH_SCRIPT in code: return
    if SEARCH_FETCH not in code: sys.exit(f'{js}: smalldocs changed how it loads search.json; update SEARCH_FETCH in {__file__}')
    js.write_text(code.replace(SEARCH_FETCH, SEARCH_SCRIPT))


def module_notebook(py):
    "The notebook that nbdev exported module file `py` from (its `File to edit:` line)."
    m = re.search(r'File to edit: (\S+\.ipynb)', py.read_text()) if py.exists() else None
    return (py.parent / m[1]).resolve() if m else None


def link_source_to_notebooks(site, cfg):
    "Point nbdev's \"source\" links (`blob/<branch>/<module>.py#L<n>` without a repository) at the symbol's notebook."
    src = re.compile(r'href="[^"]*?blob/[^/"]+/([^"#]+\.py)#L(\d+)"')
    def repl(m, page):
        nb = module_notebook(cfg.config_path / m[1])
        if nb is None: return m[0]
        where = f'{nb.relative_to(cfg.config_path)} (exported to {m[1]}, line {m[2]})'
        return f'href="{os.path.relpath(nb, page.parent)}" title="{where}"'
    for page in site.rglob('*.html'):
        html = page.read_text()
        new = src.sub(lambda m: repl(m, page), html)
        if new != html: page.write_text(new)


def main():
    cfg = get_config()
    proc = process_notebooks(cfg)
    renames = rename_to_output_files(proc)
    site = cfg.config_path / cfg.doc_path.name
    render(proc, site)
    vendor_katex(site, cfg.config_path / 'build')
    search_from_disk(site)
    if not cfg.git_url: link_source_to_notebooks(site, cfg)
    if not cfg.doc_host: (site / 'sitemap.xml').unlink(missing_ok=True)  # a sitemap lists the site's addresses: it has none
    pages = sorted(p.name for p in site.glob('*.html'))
    print(f"docs: {len(pages)} pages in {site.relative_to(cfg.config_path)}/ ({', '.join(pages)}); renamed {renames or 'nothing'}")


if __name__ == '__main__': main()
