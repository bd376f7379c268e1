"""Smoke test of the built docs site (`make docs`) in headless Chromium.

Every notebook has a page, the sidebar links every page, every exported symbol has its `show_doc` heading,
maths is rendered by KaTeX, local links resolve, and no page loads a remote script, stylesheet, image or font.
Skips with a reason where Chromium or the site is missing, unless QUANTNB_REQUIRE_BROWSER=1 (CI sets it).
"""
import importlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from nbdev.config import nbpath2html

ROOT = Path(__file__).resolve().parents[1]
SITE, NBS = ROOT / '_docs', ROOT / 'nbs'
CHROMIUM = next((shutil.which(b) for b in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(b)), None)
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run', '--disable-quic']
REMOTE = re.compile(r'^(?:[a-z][a-z0-9+.-]*:)?//', re.I)


def _require(ok, reason):
    if ok: return
    if os.environ.get('QUANTNB_REQUIRE_BROWSER') == '1': pytest.fail(reason + ' (QUANTNB_REQUIRE_BROWSER=1)')
    pytest.skip(reason)


@pytest.fixture(scope='module')
def site():
    _require(CHROMIUM, 'Chromium is not installed: apt-get install chromium')
    _require((SITE / 'index.html').exists(), f'no site in {SITE}: run make docs')
    return SITE


def notebooks():
    return sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith('_'))


TEX = re.compile(r'\$\$|\$[^$\n]*\\[a-zA-Z]+[^$\n]*\$')  # display maths, or inline maths with a TeX command


def markdown_source(nb):
    return '\n'.join(''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'markdown')


def chromium(*args, timeout=60):
    with tempfile.TemporaryDirectory() as profile:
        res = subprocess.run([CHROMIUM, *FLAGS, f'--user-data-dir={profile}', *args], capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


class Page(HTMLParser):
    "What the smoke test reads from a rendered DOM: assets, links, sidebar links, headings, maths, and stray TeX."
    SKIP_TEXT = {'script', 'style', 'pre', 'code', 'annotation'}

    def __init__(self, html):
        super().__init__()
        self.assets, self.links, self.sidebar, self.headings, self.text = [], [], [], [], []
        self.katex = self.katex_errors = 0
        self.stack, self.in_sidebar, self.heading = [], 0, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get('class') or '').split()
        if tag in ('script', 'img', 'iframe', 'source', 'video', 'audio') and a.get('src'): self.assets.append(a['src'])
        if tag == 'link' and a.get('href') and {'stylesheet', 'preload', 'icon', 'modulepreload'} & set((a.get('rel') or '').split()):
            self.assets.append(a['href'])
        if tag == 'a' and a.get('href'):
            self.links.append(a['href'])
            if self.in_sidebar: self.sidebar.append(a['href'])
        if tag == 'nav' and a.get('id') == 'quarto-sidebar': self.in_sidebar = len(self.stack) + 1
        self.katex += 'katex' in cls
        self.katex_errors += 'katex-error' in cls
        if re.fullmatch(r'h[1-4]', tag): self.heading = []
        if tag not in ('img', 'br', 'hr', 'meta', 'link', 'input', 'source', 'path', 'use'):
            self.stack.append((tag, 'katex' in cls))

    def handle_endtag(self, tag):
        if re.fullmatch(r'h[1-4]', tag) and self.heading is not None:
            self.headings.append(''.join(self.heading).strip()); self.heading = None
        while self.stack:
            if self.stack.pop()[0] == tag: break
        if self.in_sidebar and len(self.stack) < self.in_sidebar: self.in_sidebar = 0

    def handle_data(self, data):
        if self.heading is not None: self.heading.append(data)
        if not any(t in self.SKIP_TEXT or k for t, k in self.stack): self.text.append(data)


@pytest.fixture(scope='module')
def pages(site):
    "Each page's DOM after its scripts ran (KaTeX renders on load)."
    return {p.name: Page(chromium('--virtual-time-budget=10000', '--dump-dom', p.as_uri()))
            for p in sorted(site.glob('*.html'))}


def test_every_notebook_has_a_page(site):
    missing = [nb.name for nb in notebooks() if not (site / nbpath2html(nb).name).exists()]
    assert not missing, f'notebooks without a page: {missing}'


def test_sidebar_lists_every_page(pages):
    expected = {nbpath2html(nb).name for nb in notebooks()}
    for name, page in pages.items():
        linked = {Path(urlsplit(h).path).name or 'index.html' for h in page.sidebar}
        assert expected <= linked, f'{name}: sidebar misses {expected - linked}'
        assert not {h for h in page.sidebar if re.search(r'\.(ya?ml|css)$', h)}, f'{name}: sidebar lists config files'


def test_every_exported_symbol_has_a_heading(pages):
    for nb in notebooks():
        m = re.search(r'#\|\s*default_exp\s+([\w.]+)', nb.read_text())
        if not m: continue
        module = importlib.import_module(f'quantnb.{m[1]}')
        headings = set(pages[nbpath2html(nb).name].headings)
        documented = [s for s in module.__all__ if callable(getattr(module, s))]  # show_doc documents functions and classes
        missing = [s for s in documented if s not in headings]
        assert not missing, f'{nb.name}: no show_doc heading for {missing}'


def test_maths_is_rendered(pages):
    for nb in notebooks():
        if not TEX.search(markdown_source(nb)): continue
        page = pages[nbpath2html(nb).name]
        assert page.katex > 0, f'{nb.name}: no KaTeX output'
        assert page.katex_errors == 0, f'{nb.name}: {page.katex_errors} KaTeX errors'
        stray = re.findall(r'\$\$|\$[^$\n]*\\[a-zA-Z]+[^$\n]*\$', ''.join(page.text))
        assert not stray, f'{nb.name}: raw TeX left on the page: {stray[:3]}'


def test_local_links_resolve(site, pages):
    for name, page in pages.items():
        for href in page.links + page.assets:
            parts = urlsplit(href)
            if REMOTE.match(href) or parts.scheme in ('mailto', 'data', 'javascript') or not parts.path: continue
            assert (site / unquote(parts.path)).resolve().exists(), f'{name}: broken link {href}'


def test_no_remote_assets(site, pages):
    for name, page in pages.items():
        remote = [a for a in page.assets if REMOTE.match(a)]
        assert not remote, f'{name} loads remote assets: {remote}'
    for css in site.rglob('*.css'):
        remote = re.findall(r'(?:@import\s+|url\()\s*[\'"]?((?:https?:)?//[^\'")\s]+)', css.read_text(errors='ignore'))
        assert not remote, f'{css.relative_to(site)} loads {remote}'


def test_screenshot_of_the_affine_page(site):
    shot = ROOT / 'build' / 'screenshots' / 'affine.png'
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    chromium('--virtual-time-budget=10000', '--window-size=1280,6000', f'--screenshot={shot}', (site / 'affine.html').as_uri())
    assert shot.stat().st_size > 50_000
