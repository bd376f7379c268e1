"`quantnb.data` on tiny synthetic IDX sets written by the tests: both data sets' formats, and every way a file can be bad."
import dataclasses
import gzip
import hashlib

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
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match='make data'): get_dataloaders()
    assert not list((cache / 'data').rglob('*ubyte*')), 'a failed download left files behind'


def test_unknown_dataset():
    with pytest.raises(ValueError, match="dataset='cifar' is unknown"): data_spec('cifar')


def test_subset_is_checked_and_seeded(tmp_path, cache, monkeypatch):
    _, md5 = write_idx_set(tmp_path / 'data' / 'fashion-mnist', n_train=30)
    monkeypatch.setitem(qd.DATASETS, 'fashion-mnist', dataclasses.replace(data_spec(), system_dir=None, raw_md5=md5))
    monkeypatch.delenv('QUANTNB_DATA', raising=False)
    monkeypatch.chdir(tmp_path)
    a, _ = get_dataloaders(subset=10, seed=1)
    b, _ = get_dataloaders(subset=10, seed=1)
    assert a.dataset.indices == b.dataset.indices and len(a.dataset) == 10
    with pytest.raises(ValueError, match='subset=31 must be an int between 1 and 30'): get_dataloaders(subset=31)
