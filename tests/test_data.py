"`quantnb.data` on tiny synthetic IDX sets written by the tests: both data sets' formats, and every way a file can be bad."
import dataclasses
import gzip
import hashlib
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import quantnb.data as qd
from quantnb.data import check_idx, data_spec, find_idx_files, get_dataloaders, prepare_root


def idx_bytes(array):
    "An IDX file of unsigned bytes: magic 0x08nn (nn = number of dimensions), the sizes, the data."
    magic = 0x800 + array.ndim
    return magic.to_bytes(4, 'big') + b''.join(d.to_bytes(4, 'big') for d in array.shape) + array.astype(np.uint8).tobytes()


def write_idx_set(folder, n_train=12, n_test=6, gz=True, seed=0):
    "Write the four files of a tiny data set into `folder`; return the arrays and the MD5 of each uncompressed file."
    rng = np.random.default_rng(seed)
    arrays = {'train-images-idx3-ubyte': rng.integers(0, 256, (n_train, 28, 28)), 'train-labels-idx1-ubyte': rng.integers(0, 10, n_train),
              't10k-images-idx3-ubyte': rng.integers(0, 256, (n_test, 28, 28)), 't10k-labels-idx1-ubyte': rng.integers(0, 10, n_test)}
    folder.mkdir(parents=True, exist_ok=True)
    md5 = {}
    for name, array in arrays.items():
        data = idx_bytes(array)
        md5[name] = hashlib.md5(data).hexdigest()
        (folder / (f'{name}.gz' if gz else name)).write_bytes(gzip.compress(data) if gz else data)
    return arrays, md5


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv('QUANTNB_CACHE', str(tmp_path / 'cache'))
    return tmp_path / 'cache'


@pytest.mark.parametrize('dataset', ['fashion-mnist', 'mnist'])
@pytest.mark.parametrize('gz', [True, False], ids=['gz', 'raw'])
def test_prepared_root_loads_in_torchvision(tmp_path, cache, dataset, gz):
    arrays, md5 = write_idx_set(tmp_path / 'src', gz=gz)
    spec = data_spec(dataset)
    root = prepare_root(dataset, root=tmp_path / 'root', sources=find_idx_files(spec, [tmp_path / 'src']), raw_md5=md5)
    train, test = spec.torchvision_class(root, train=True), spec.torchvision_class(root, train=False)
    assert (len(train), len(test)) == (12, 6)
    assert torch.equal(train.data, torch.from_numpy(arrays['train-images-idx3-ubyte'].astype(np.uint8)))
    assert train.targets.tolist() == arrays['train-labels-idx1-ubyte'].tolist()
    assert not list((root / spec.torchvision_class.__name__ / 'raw').glob('*.tmp')), 'temporary files left behind'


def test_prepare_is_done_once(tmp_path, cache):
    _, md5 = write_idx_set(tmp_path / 'src')
    spec = data_spec('fashion-mnist')
    root = prepare_root(sources=find_idx_files(spec, [tmp_path / 'src']), root=tmp_path / 'root', raw_md5=md5)
    for f in (tmp_path / 'src').iterdir(): f.unlink()  # sources gone: the prepared copy must suffice
    assert prepare_root(root=tmp_path / 'root', raw_md5=md5) == root


def _prepare_with(tmp_path, corrupt, md5_override=None):
    _, md5 = write_idx_set(tmp_path / 'src', gz=False)
    corrupt(tmp_path / 'src' / 'train-images-idx3-ubyte')
    spec = data_spec('fashion-mnist')
    return prepare_root(root=tmp_path / 'root', sources=find_idx_files(spec, [tmp_path / 'src']), raw_md5=md5_override or md5)


def test_bad_magic_number(tmp_path, cache):
    def corrupt(p): p.write_bytes((0x802).to_bytes(4, 'big') + p.read_bytes()[4:])
    with pytest.raises(ValueError, match='bad magic number 0x802, expected 0x803'): _prepare_with(tmp_path, corrupt)


def test_truncated_file(tmp_path, cache):
    def corrupt(p): p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(ValueError, match='truncated'): _prepare_with(tmp_path, corrupt)
    assert not (tmp_path / 'root' / 'FashionMNIST' / 'raw' / 'train-images-idx3-ubyte').exists(), 'a bad file was kept'


def test_truncated_gzip(tmp_path, cache):
    _, md5 = write_idx_set(tmp_path / 'src', gz=True)
    p = tmp_path / 'src' / 't10k-labels-idx1-ubyte.gz'
    p.write_bytes(p.read_bytes()[:20])
    spec = data_spec('fashion-mnist')
    with pytest.raises(ValueError, match='not a whole gzip file'):
        prepare_root(root=tmp_path / 'root', sources=find_idx_files(spec, [tmp_path / 'src']), raw_md5=md5)


def test_wrong_md5(tmp_path, cache):
    def corrupt(p): data = bytearray(p.read_bytes()); data[-1] ^= 0xff; p.write_bytes(bytes(data))
    with pytest.raises(ValueError, match='does not match the published'): _prepare_with(tmp_path, corrupt)


def test_check_idx_accepts_whole_files_only():
    check_idx(idx_bytes(np.zeros(5)), 'x-idx1-ubyte')
    with pytest.raises(ValueError, match='bad magic number None'): check_idx(b'\x00', 'x-idx1-ubyte')
    with pytest.raises(ValueError, match='promises'): check_idx(idx_bytes(np.zeros(5)) + b'\x00', 'x-idx1-ubyte')


def test_missing_data_is_a_clear_error(tmp_path, cache, monkeypatch):
    class Unreachable(qd.datasets.FashionMNIST):
        mirrors = ['http://127.0.0.1:9/']  # nothing listens: torchvision's download, the last resort, fails at once
    monkeypatch.setitem(qd.DATASETS, 'fashion-mnist', dataclasses.replace(data_spec(), system_dir=None, torchvision_class=Unreachable))
    monkeypatch.setenv('QUANTNB_DATA', str(tmp_path / 'empty'))
    monkeypatch.setattr(qd, 'project_root', lambda: tmp_path)  # an empty project: no data/
    with pytest.raises(FileNotFoundError, match='make data'): get_dataloaders()
    assert not list((cache / 'data').rglob('*ubyte*')), 'a failed download left files behind'


def test_unknown_dataset():
    with pytest.raises(ValueError, match="dataset='cifar' is unknown"): data_spec('cifar')


def test_subset_is_checked_and_seeded(tmp_path, cache, monkeypatch):
    _, md5 = write_idx_set(tmp_path / 'data' / 'fashion-mnist', n_train=30)
    monkeypatch.setitem(qd.DATASETS, 'fashion-mnist', dataclasses.replace(data_spec(), system_dir=None, raw_md5=md5))
    monkeypatch.delenv('QUANTNB_DATA', raising=False)
    monkeypatch.setattr(qd, 'project_root', lambda: tmp_path)  # the files are in <project>/data
    a, _ = get_dataloaders(subset=10, seed=1)
    b, _ = get_dataloaders(subset=10, seed=1)
    assert a.dataset.indices == b.dataset.indices and len(a.dataset) == 10
    with pytest.raises(ValueError, match='subset=31 must be an int between 1 and 30'): get_dataloaders(subset=31)


# --- where the data are looked for: the project root, whatever the working directory -------------------------

REPO = Path(__file__).resolve().parents[1]


def test_project_root_is_this_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a working directory with no data/ in it
    assert qd.project_root() == REPO
    assert qd.local_data_dir() == REPO / 'data'


def test_data_dir_does_not_depend_on_the_working_directory(tmp_path, cache, monkeypatch):
    "Files in <root>/data are found from <root>/nbs, where Jupyter runs the notebooks (a cwd-relative ./data is not)."
    _, md5 = write_idx_set(tmp_path / 'proj' / 'data')
    (tmp_path / 'proj' / 'nbs').mkdir()
    monkeypatch.setattr(qd, 'project_root', lambda: tmp_path / 'proj')
    monkeypatch.setitem(qd.DATASETS, 'fashion-mnist', dataclasses.replace(data_spec(), system_dir=None, raw_md5=md5))
    monkeypatch.delenv('QUANTNB_DATA', raising=False)
    for cwd in (tmp_path / 'proj' / 'nbs', tmp_path / 'proj', tmp_path):
        monkeypatch.chdir(cwd)
        found = find_idx_files(data_spec())
        assert found and {p.parent for p in found.values()} == {tmp_path / 'proj' / 'data'}, f'not found from {cwd}'


def test_quantnb_data_env_comes_first(tmp_path, monkeypatch):
    monkeypatch.setenv('QUANTNB_DATA', str(tmp_path / 'mine'))
    dirs = qd.search_dirs(data_spec())
    assert dirs[0] == tmp_path / 'mine' and dirs[3] == REPO / 'data'


# --- tools/get_data.py (`make data`): same folders, never installs unasked, never a traceback -----------------

def load_get_data():
    spec = importlib.util.spec_from_file_location('get_data', REPO / 'tools' / 'get_data.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_get_data_looks_where_the_library_looks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('QUANTNB_DATA', str(tmp_path / 'mine'))
    tool = load_get_data()
    assert [str(p) for p in tool.candidates()] == [str(p) for p in qd.search_dirs(data_spec())]


def test_get_data_finds_files_in_the_project_data_dir_from_anywhere(tmp_path, monkeypatch, capsys):
    tool = load_get_data()
    write_idx_set(tmp_path / 'proj' / 'data')
    monkeypatch.setattr(tool, 'ROOT', tmp_path / 'proj')
    monkeypatch.setattr(tool, 'DEBIAN_DIR', tmp_path / 'nowhere')
    monkeypatch.delenv('QUANTNB_DATA', raising=False)
    monkeypatch.chdir(tmp_path)
    tool.main()
    assert f"found in {tmp_path / 'proj' / 'data'}" in capsys.readouterr().out


@pytest.fixture
def tool_without_data(tmp_path, monkeypatch):
    "get_data.py on a machine without the data, with apt and sudo, where `subprocess.run` is recorded, not run."
    tool = load_get_data()
    monkeypatch.setattr(tool, 'ROOT', tmp_path)
    monkeypatch.setattr(tool, 'DEBIAN_DIR', tmp_path / 'nowhere')
    monkeypatch.delenv('QUANTNB_DATA', raising=False)
    monkeypatch.setattr(tool.shutil, 'which', lambda name: f'/usr/bin/{name}')
    monkeypatch.setattr(tool.os, 'geteuid', lambda: 1000)
    tool.calls, tool.policy, tool.install_rc = [], 'dataset-fashion-mnist:\n  Installed: (none)\n  Candidate: 0.1\n', 0
    def run(cmd, **kw):
        tool.calls.append(cmd)
        if cmd[0] == 'apt-cache': return subprocess.CompletedProcess(cmd, 0, stdout=tool.policy, stderr='')
        return subprocess.CompletedProcess(cmd, tool.install_rc)
    monkeypatch.setattr(tool.subprocess, 'run', run)
    return tool


def installs(tool): return [c for c in tool.calls if 'install' in c]


def test_get_data_never_installs_unasked(tool_without_data, monkeypatch):
    monkeypatch.setattr('sys.stdin', io.StringIO('y\n'))  # not a terminal: CI, a pipe
    with pytest.raises(SystemExit) as e: tool_without_data.main()
    assert 'To install it: sudo apt-get install -y dataset-fashion-mnist' in str(e.value.code)
    assert installs(tool_without_data) == []


def tty(answer):
    stream = io.StringIO(answer)
    stream.isatty = lambda: True
    return stream


@pytest.mark.parametrize('answer', ['n\n', '\n', ''], ids=['no', 'enter', 'eof'])
def test_get_data_asks_and_respects_no(tool_without_data, monkeypatch, answer):
    monkeypatch.setattr('sys.stdin', tty(answer))
    monkeypatch.setattr('sys.stdout', tty(''))
    with pytest.raises(SystemExit) as e: tool_without_data.main()
    assert 'needs your consent' in str(e.value.code) and installs(tool_without_data) == []


def test_get_data_failed_install_is_a_message(tool_without_data, monkeypatch):
    monkeypatch.setattr('sys.stdin', tty('y\n'))
    monkeypatch.setattr('sys.stdout', tty(''))
    tool_without_data.install_rc = 100
    with pytest.raises(SystemExit) as e: tool_without_data.main()
    assert installs(tool_without_data) == [['sudo', 'apt-get', 'install', '-y', 'dataset-fashion-mnist']]
    assert 'failed (exit status 100)' in str(e.value.code) and 'zalandoresearch' in str(e.value.code)


def test_get_data_without_the_package_offers_no_apt(tool_without_data, monkeypatch):
    tool_without_data.policy = ''  # apt-cache policy prints nothing for a package its lists lack
    with pytest.raises(SystemExit) as e: tool_without_data.main()
    assert 'no such package' in str(e.value.code) and installs(tool_without_data) == []


def test_get_data_script_exits_1_without_traceback(tmp_path):
    "The real script, run as `make data` runs it, where nothing is found and nothing may be installed."
    script = tmp_path / 'tools' / 'get_data.py'
    script.parent.mkdir()
    script.write_text((REPO / 'tools' / 'get_data.py').read_text().replace("Path('/usr/share/datasets/fashion-mnist')", f"Path({str(tmp_path / 'nowhere')!r})"))
    env = {k: v for k, v in os.environ.items() if k != 'QUANTNB_DATA'}
    out = subprocess.run([sys.executable, str(script)], stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 1 and 'Traceback' not in out.stderr and 'Fashion-MNIST was not found' in out.stderr


def test_installed_copy_uses_the_working_directory(tmp_path, monkeypatch):
    "A non-editable install (site-packages/quantnb) has no project root: data/ is looked for in the working directory."
    fake = tmp_path / 'site-packages' / 'quantnb' / '__init__.py'
    fake.parent.mkdir(parents=True)
    fake.touch()
    monkeypatch.setattr(qd.quantnb, '__file__', str(fake))
    monkeypatch.chdir(tmp_path)
    assert qd.project_root() is None and qd.local_data_dir() == tmp_path / 'data'


# --- plot titles come from the images' own data set ---------------------------------------------------------

@pytest.mark.parametrize('dataset', ['fashion-mnist', 'mnist'])
def test_plot_titles_use_the_data_sets_own_names(tmp_path, cache, monkeypatch, dataset):
    _, md5 = write_idx_set(tmp_path / 'data' / dataset, n_train=20, n_test=6)
    spec = data_spec(dataset)
    monkeypatch.setitem(qd.DATASETS, dataset, dataclasses.replace(spec, system_dir=None, raw_md5=md5))
    monkeypatch.setattr(qd, 'project_root', lambda: tmp_path)
    monkeypatch.delenv('QUANTNB_DATA', raising=False)
    train_dl, _ = get_dataloaders(dataset, batch_size=8, subset=16)
    images, labels = next(iter(train_dl))
    axs = qd.plot_images(images, labels, train_dl)
    titles = [ax.get_title() for ax in axs.flat[:8]]
    assert titles == [spec.torchvision_class.classes[int(l)] for l in labels]
    assert titles == [qd.plot_images(images, labels, dataset).flat[i].get_title() for i in range(8)]
    if dataset == 'mnist': assert all(t[0].isdigit() for t in titles), titles
    import matplotlib.pyplot as plt; plt.close('all')


def test_class_names_bad_input():
    with pytest.raises(TypeError, match='has no class names'): qd.class_names(3)
    with pytest.raises(TypeError, match='has no class names'): qd.class_names([])
    with pytest.raises(ValueError, match="dataset='cifar' is unknown"): qd.class_names('cifar')
    with pytest.raises(ValueError, match='label 12 has no name'): qd.plot_images(torch.zeros(2, 1, 28, 28), torch.tensor([1, 12]))


def test_tensor_images_match_the_per_image_transform_bit_for_bit(tmp_path, cache, monkeypatch):
    "Same split, same shuffle order (two epochs), same float bits as torchvision's ToTensor + Normalize, on random bytes."
    monkeypatch.setenv('QUANTNB_DATA', str(tmp_path / 'data'))
    monkeypatch.setattr(qd, 'local_data_dir', lambda: tmp_path / 'none')
    qd._tensor_dataset.cache_clear()
    spec = data_spec('fashion-mnist')
    raw_md5 = write_idx_set(tmp_path / 'data', n_train=300, n_test=20)[1]
    monkeypatch.setattr(qd, 'DATASETS', {**qd.DATASETS, 'fashion-mnist': dataclasses.replace(spec, raw_md5=raw_md5, system_dir=None)})
    try:
        plain_ds, tensor_ds = qd.load_dataset(train=True), qd.tensor_dataset(train=True)
        idx = torch.randperm(300, generator=torch.Generator().manual_seed(3))[:250].tolist()
        plain = torch.utils.data.DataLoader(torch.utils.data.Subset(plain_ds, idx), 32, shuffle=True, generator=torch.Generator().manual_seed(3))
        fast = qd.tensor_loader(torch.utils.data.Subset(tensor_ds, idx), 32, shuffle=True, generator=torch.Generator().manual_seed(3))
        for epoch in range(2):
            pairs = list(zip(plain, fast, strict=True))
            assert len(pairs) == 8
            for (x0, y0), (x1, y1) in pairs:
                assert torch.equal(x0, x1) and torch.equal(y0, y1)
        x, y = tensor_ds[5]
        assert torch.equal(x, plain_ds[5][0]) and y == plain_ds[5][1] and isinstance(y, int)
        assert tensor_ds.classes == plain_ds.classes and tensor_ds.train is True
    finally: qd._tensor_dataset.cache_clear()


def test_tensor_loader_bad_input():
    with pytest.raises(TypeError, match='ds must be a TensorImages'): qd.tensor_loader([1, 2, 3], 2)
    with pytest.raises(TypeError, match='source must be a torchvision data set'): qd.TensorImages(torch.zeros(3, 28, 28), 0.5, 0.5)
    with pytest.raises(TypeError, match='train must be True'): qd.tensor_dataset(train='yes')
