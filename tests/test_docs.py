"""Smoke test of the built docs site (`make docs`) in headless Chromium.

Every notebook has a page, the sidebar links every page, every exported symbol has its `show_doc` heading,
maths is rendered by KaTeX, local links resolve, no page loads a remote script, stylesheet, image or font, the
search box finds each module's symbols in a page opened from disk (`file://`, as the README says to open it), and
"source" links open the notebook. Each module's docstring is its notebook's one-line summary.
Skips with a reason where Chromium or the site is missing, unless QUANTNB_REQUIRE_BROWSER=1 (CI sets it).
"""
import base64
import fcntl
import importlib
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
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


class Browser:
    "Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: it reads fd 3, writes fd 4)."

    def __init__(self, *args, timeout=30):
        self.profile = tempfile.TemporaryDirectory()
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_r, from_w)]  # out of the way of fds 3 and 4
        os.close(to_r); os.close(from_w)
        def as_fds_3_and_4(): os.dup2(ends[0], 3); os.dup2(ends[1], 4)
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, *args, '--remote-debugging-pipe', f'--user-data-dir={self.profile.name}',
                                      'about:blank'], pass_fds=(3, 4), preexec_fn=as_fds_3_and_4,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in ends: os.close(fd)
        self.timeout, self.buf, self.last_id, self.session = timeout, b'', 0, None

    def _message(self, deadline):
        while b'\0' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_r], [], [], left)[0]: raise TimeoutError('Chromium did not answer')
            chunk = os.read(self.from_r, 1 << 20)
            if not chunk: raise RuntimeError('Chromium closed its DevTools pipe')
            self.buf += chunk
        msg, self.buf = self.buf.split(b'\0', 1)
        return json.loads(msg)

    def send(self, method, browser=False, **params):
        "Send a DevTools command (to the open page unless `browser`) and return its result."
        self.last_id += 1
        msg = {'id': self.last_id, 'method': method, 'params': params}
        if self.session and not browser: msg['sessionId'] = self.session
        os.write(self.to_w, json.dumps(msg).encode() + b'\0')
        deadline = time.monotonic() + self.timeout
        while (res := self._message(deadline)).get('id') != self.last_id: pass  # events and other replies
        if 'error' in res: raise RuntimeError(f'{method}: {res["error"]}')
        return res['result']

    def open(self, url):
        target = self.send('Target.createTarget', browser=True, url=url)['targetId']
        self.session = self.send('Target.attachToTarget', browser=True, targetId=target, flatten=True)['sessionId']
        self.send('Emulation.setFocusEmulationEnabled', enabled=True)  # a headless page has no focus otherwise
        assert self.wait_for(f'location.href === {json.dumps(url)} && document.readyState === "complete"'), f'{url} did not load'

    def eval(self, js):
        res = self.send('Runtime.evaluate', expression=js, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in res: raise RuntimeError(f'{js}: {res["exceptionDetails"]}')
        return res['result'].get('value')

    def wait_for(self, js, timeout=10):
        "The value of `js` once it is truthy, polling for up to `timeout` seconds; else its last value."
        deadline = time.monotonic() + timeout
        while not (value := self.eval(js)) and time.monotonic() < deadline: time.sleep(0.1)
        return value

    def screenshot(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.send('Page.captureScreenshot', format='png')['data']))

    def close(self):
        try: self.send('Browser.close', browser=True)
        except (RuntimeError, TimeoutError, OSError): pass
        try: self.proc.wait(10)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        os.close(self.to_w); os.close(self.from_r)
        self.profile.cleanup()


@pytest.fixture(scope='module')
def browser(site):
    b = Browser('--window-size=1280,900')  # wide enough that the navbar, and its search box, are not collapsed
    yield b
    b.close()


def exported_modules():
    "(notebook, module) for each notebook with a `default_exp`."
    for nb in notebooks():
        m = re.search(r'#\|\s*default_exp\s+([\w.]+)', nb.read_text())
        if m: yield nb, importlib.import_module(f'quantnb.{m[1]}')


RESULTS = 'Array.from(document.querySelectorAll(".smalldocs-search .search-result")).map(a => a.getAttribute("href"))'


def test_search_works_from_disk(site, browser):
    "Type each module's first exported name into the search box of the home page opened from disk, see its page among the results."
    browser.open((site / 'index.html').as_uri())
    box = 'document.querySelector(".smalldocs-search input")'
    for nb, module in exported_modules():
        name = next(s for s in module.__all__ if callable(getattr(module, s)))
        browser.eval(f'document.querySelector(".smalldocs-search-results").innerHTML = ""; {box}.focus(); {box}.select()')
        browser.send('Input.insertText', text=name)  # typed, replacing the last query: fires the input event search listens to
        hits = browser.wait_for(f'{box}.value === {json.dumps(name)} && {RESULTS}.length && {RESULTS}')
        assert hits, (f'searching {name!r} in {site / "index.html"} opened from disk shows no results: a browser refuses to '
                      f'fetch search.json there; tools/build_docs.py writes search.js for it (run make docs)')
        page = nbpath2html(nb).name
        assert any(urlsplit(h).path.endswith(page) for h in hits), f'searching {name!r}: no result on {page}: {hits}'
        assert all((site / unquote(urlsplit(h).path)).exists() for h in hits), f'searching {name!r}: broken results {hits}'
        if nb == NBS / '00_affine.ipynb': browser.screenshot(ROOT / 'build' / 'screenshots' / 'search.png')
    first = hits[0]
    browser.send('Input.dispatchKeyEvent', type='keyDown', key='Enter', code='Enter', windowsVirtualKeyCode=13)
    assert browser.wait_for(f'location.href.endsWith({json.dumps(first[first.rfind("/") + 1:])})'), f'Enter did not open {first}'


def test_source_links_open_the_notebook(site):
    "nbdev's \"source\" links lead to the notebook that defines the symbol (quantnb has no public repository)."
    n = 0
    for page in sorted(site.glob('*.html')):
        for href in re.findall(r'<a href="([^"]*)"[^>]*>source</a>', page.read_text()):
            target = (page.parent / unquote(href)).resolve()
            assert target.suffix == '.ipynb' and target.parent == NBS and target.exists(), f'{page.name}: source link {href}'
            n += 1
    assert n > 0, 'no "source" links found: did show_doc stop making them?'


def test_no_links_to_sites_that_do_not_exist(site):
    "quantnb has no hosted docs or GitHub repository: nothing may link there."
    dead = re.compile(r'quantnb\.github\.io|github\.com/quantnb\b')
    for f in [*site.rglob('*.html'), *site.rglob('*.js'), *site.glob('*.json')]:
        assert not dead.findall(f.read_text(errors='ignore')), f'{f.relative_to(site)} links to a site that does not exist'


def notebook_summary(nb):
    "The `> ` summary under a notebook's `# Title` (in the title cell, or the markdown cell after it)."
    cells = [''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'markdown']
    i = next(i for i, c in enumerate(cells) if c.startswith('# '))
    lines = [l for c in cells[i:i + 2] for l in c.splitlines() if l.startswith('> ')]
    return '\n'.join(l[2:].strip() for l in lines)


def test_module_docstrings_are_notebook_summaries():
    for nb, module in exported_modules():
        summary = notebook_summary(nb)
        assert summary, f'{nb.name}: no "> summary" line under its title'
        assert (module.__doc__ or '').strip() == summary, (
            f'{module.__name__}.__doc__ is {module.__doc__!r}, not the summary of {nb.name}. nbdev-export takes it from the '
            f'"> " lines of the "# Title" markdown cell itself: put the summary in that cell, then run nbdev-export')
