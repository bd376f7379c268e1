"""The low-bit QAT cache: keyed on everything that shapes a result, checked when read, usable read-only."""
import warnings

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

from quantnb.qat import _fingerprint, _forward_hash, lowbit_qat

warnings.filterwarnings('ignore', category=DeprecationWarning)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.relu, self.fc = nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Linear(4 * 13 * 13, 10)

    def forward(self, x):
        return self.fc(self.relu(self.conv1(x)).flatten(1))


class TinyTanh(Tiny):
    "The same weights and class layout; forward applies tanh instead of the ReLU."

    def forward(self, x):
        return self.fc(torch.tanh(self.conv1(x)).flatten(1))


def tiny(cls=Tiny):
    torch.manual_seed(0)
    return cls().eval()


def data(n=160, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def loader(images, labels):
    return DataLoader(TensorDataset(images, labels), 32)


def test_the_key_sees_every_label_and_every_image():
    images, labels = data()
    base = _fingerprint(loader(images, labels))
    assert _fingerprint(loader(images, (labels + 1) % 10)) != base  # labels shifted by one
    later = images.clone()
    later[64:128] = torch.randn(64, 1, 28, 28)
    assert _fingerprint(loader(later, labels)) != base  # images after the 64th replaced
    assert _fingerprint(loader(images.clone(), labels.clone())) == base


def test_the_key_sees_what_forward_computes():
    assert _forward_hash(tiny()) != _forward_hash(tiny(TinyTanh))
    assert _forward_hash(tiny()) == _forward_hash(tiny())


def _entries(folder):
    return sorted(p.name for p in (folder / 'qat').glob('*.pt'))


def test_a_changed_forward_or_labels_trains_again(tmp_path, monkeypatch):
    monkeypatch.setenv('QUANTNB_CACHE', str(tmp_path))
    images, labels = data(64)
    valid = [(images[:16], labels[:16])]
    lowbit_qat(tiny(), loader(images, labels), valid, 4, None, epochs=0)
    lowbit_qat(tiny(TinyTanh), loader(images, labels), valid, 4, None, epochs=0)
    lowbit_qat(tiny(), loader(images, (labels + 1) % 10), valid, 4, None, epochs=0)
    assert len(_entries(tmp_path)) == 3


def test_an_entry_of_other_settings_or_unreadable_is_discarded(tmp_path, monkeypatch):
    monkeypatch.setenv('QUANTNB_CACHE', str(tmp_path))
    images, labels = data(64)
    train, valid = loader(images, labels), [(images[:16], labels[:16])]
    lowbit_qat(tiny(), train, valid, 4, None, epochs=0)
    lowbit_qat(tiny(), train, valid, 2, None, epochs=0)
    four, two = (tmp_path / 'qat' / name for name in _entries(tmp_path))
    import hashlib
    for path, source in ((four, two), (two, None)):  # one holds another config's result, one garbage
        content = source.read_bytes() if source else b'not a torch file'
        path.write_bytes(content)
        path.with_name(path.name + '.sha256').write_text(hashlib.sha256(content).hexdigest())
    with pytest.warns(UserWarning, match='training again'):
        model, _ = lowbit_qat(tiny(), train, valid, 4, None, epochs=0)
    with pytest.warns(UserWarning, match='unreadable'):
        lowbit_qat(tiny(), train, valid, 2, None, epochs=0)
    assert model.conv1.weight_fq.bits == 4


def test_a_read_only_cache_is_read_without_a_lock_and_not_written(tmp_path, monkeypatch):
    "A folder that cannot be written (here: as the process sees it) is read without taking the lock file."
    import quantnb.qat as qat
    monkeypatch.setenv('QUANTNB_CACHE', str(tmp_path))
    images, labels = data(64)
    train, valid = loader(images, labels), [(images[:16], labels[:16])]
    first, history = lowbit_qat(tiny(), train, valid, 4, None, epochs=0)
    monkeypatch.setattr(qat, 'is_writable', lambda folder: False)

    def no_lock(path):
        raise PermissionError('the lock file cannot be created in a read-only folder')

    monkeypatch.setattr(qat, 'file_lock', no_lock)
    with pytest.warns(UserWarning, match='cannot be written'):
        again, history2 = lowbit_qat(tiny(), train, valid, 4, None, epochs=0)
    assert history2 == history
    with pytest.warns(UserWarning, match='cannot be written'):
        lowbit_qat(tiny(), train, valid, 2, None, epochs=0)  # trained, not stored
    assert len(_entries(tmp_path)) == 1


class LogSoftmaxNet(nn.Module):
    "The seed's pattern: log_softmax inside forward, after the last quantized layer."

    def __init__(self):
        super().__init__()
        self.quant, self.dequant = torch.ao.quantization.QuantStub(), torch.ao.quantization.DeQuantStub()
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return torch.log_softmax(self.fc(self.quant(x)), dim=1)


class UntraceableLogSoftmaxNet(LogSoftmaxNet):
    "The same, with a branch on a tensor's value: torch.fx cannot trace it, so prepare cannot see the log_softmax."

    def forward(self, x):
        y = self.fc(self.quant(x))
        return torch.log_softmax(y, dim=1) if x.sum() > -1e30 else y


def test_a_log_softmax_in_forward_is_refused_at_prepare_time():
    "Before any training: prepare reads forward's graph and names the op the int8 kernels lack, and the fix."
    from quantnb.qat import QATProcessor
    model = LogSoftmaxNet()
    with pytest.raises(ValueError, match='log_softmax.*cross_entropy'):
        QATProcessor().prepare_qat_model(model, torch.optim.SGD(model.parameters(), lr=0.01))


def test_conversion_runs_a_training_image_and_explains_a_missing_kernel():
    "A model torch.fx cannot trace is checked after training: conversion runs one training image."
    from quantnb.qat import QATProcessor
    qat, model = QATProcessor(), UntraceableLogSoftmaxNet()
    with pytest.warns(UserWarning, match='cannot trace'):
        prepared, optimizer = qat.prepare_qat_model(model, torch.optim.SGD(model.parameters(), lr=0.01))
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 16, generator=g), torch.randint(0, 4, (8,), generator=g)) for _ in range(2)]
    trained, _ = qat.train_with_qat(prepared, optimizer, batches, batches[:1], epochs=1)
    with pytest.raises(ValueError, match='log_softmax'):
        qat.convert_to_quantized(trained)


def test_empty_training_data_and_max_batches_zero_are_named():
    from quantnb.qat import QATProcessor
    qat, model = QATProcessor(), nn.Sequential(nn.Linear(16, 4))
    prepared, optimizer = qat.prepare_qat_model(model, torch.optim.SGD(model.parameters(), lr=0.01))
    batch = [(torch.randn(8, 16), torch.randint(0, 4, (8,)))]
    with pytest.raises(ValueError, match='train_loader yielded no batches'):
        qat.train_with_qat(prepared, optimizer, [], batch, epochs=1)
    for bad in (0, -1):
        with pytest.raises(ValueError, match='max_batches'):
            qat.torchao_qat(model, batch, batch, max_batches=bad)
