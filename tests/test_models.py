"`quantnb.models`: the cache of trained weights (hit, miss, corruption, atomic write, weights_only), training, quantization readiness."
import copy
import hashlib
import warnings

import pytest
import torch
import torch.nn as nn

import quantnb.models as qm
from quantnb.core import atomic_write, sidecar_path
from quantnb.models import RECIPE, SampleNet, SampleNetBN, checkpoint_path, pretrained, train, train_valid_loaders, training_recipe


@pytest.fixture
def fake_training(tmp_path, monkeypatch):
    "Cache in a temporary folder; `train` replaced by a recorder so that cache logic is tested without minutes of training."
    monkeypatch.setenv('QUANTNB_CACHE', str(tmp_path))
    calls = []
    def fake_train(model, train_dl, valid_dl, epochs, lr, seed=0, **kw):
        torch.manual_seed(seed)
        for p in model.parameters(): nn.init.normal_(p)
        calls.append(seed)
        return [dict(epoch=e + 1, valid_accuracy=0.5, seconds=0.0) for e in range(epochs)]
    monkeypatch.setattr(qm, 'train', fake_train)
    monkeypatch.setattr(qm, 'train_valid_loaders', lambda *a, **k: ([], []))
    return calls


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_cache_miss_then_hit(fake_training):
    first = pretrained(epochs=2, seed=3)
    path = checkpoint_path(training_recipe(epochs=2, seed=3))
    assert fake_training == [3] and path.exists()
    second = pretrained(epochs=2, seed=3)
    assert fake_training == [3], 'a cache hit must not train'
    assert _same_weights(first, second) and second.history == first.history and not second.training


def test_anything_that_shapes_the_weights_is_a_new_key(fake_training):
    base = training_recipe()
    variants = [training_recipe(seed=1), training_recipe(epochs=4), training_recipe(arch='samplenet-bn'), training_recipe(dataset='mnist'),
                training_recipe(lr=1e-3), training_recipe(label_smoothing=0.0), training_recipe(batch_size=64), training_recipe(weight_decay=0.0)]
    assert len({checkpoint_path(r) for r in [base, *variants]}) == 1 + len(variants)
    pretrained(seed=0); pretrained(seed=1); pretrained(seed=0, label_smoothing=0.0)
    assert fake_training == [0, 1, 0]
    assert pretrained(**RECIPE).recipe == base and fake_training == [0, 1, 0], 'the defaults are RECIPE'


def test_recipe_holds_out_validation_and_rejects_unknown_keys(monkeypatch):
    monkeypatch.delenv('QUANTNB_FAST', raising=False)
    full = training_recipe()
    assert full['valid_size'] == 5000 and full['subset'] is None
    monkeypatch.setenv('QUANTNB_FAST', '1')
    fast = training_recipe()
    assert (fast['valid_size'], fast['subset']) == (1000, 5000) and checkpoint_path(fast) != checkpoint_path(full)
    with pytest.raises(ValueError, match=r"\['momentum'\] not recipe keys"): training_recipe(momentum=0.9)


def test_validation_split_is_disjoint_seeded_and_from_the_training_images():
    train_dl, valid_dl = train_valid_loaders(valid_size=500, subset=2000, seed=1)
    tr, va = set(train_dl.dataset.indices), set(valid_dl.dataset.indices)
    assert len(tr) == 2000 and len(va) == 500 and not tr & va
    assert train_dl.dataset.dataset.train and valid_dl.dataset.dataset.train, 'validation comes from the training images, never the test set'
    assert va == set(train_valid_loaders(valid_size=500, subset=2000, seed=1)[1].dataset.indices)
    assert va != set(train_valid_loaders(valid_size=500, subset=2000, seed=2)[1].dataset.indices)
    # the validation images are the same whatever the subset: candidates trained on subsets are compared on one set
    assert va == set(train_valid_loaders(valid_size=500, subset=100, seed=1)[1].dataset.indices)
    for bad in (0, 60000, 1.5, True):
        with pytest.raises(ValueError, match='valid_size='): train_valid_loaders(valid_size=bad)
    with pytest.raises(ValueError, match='subset=59001'): train_valid_loaders(valid_size=1000, subset=59001)


@pytest.mark.parametrize('damage', ['garbage', 'truncated', 'other recipe'])
def test_corrupt_cache_is_reported_and_rebuilt(fake_training, damage):
    model = pretrained()
    path = checkpoint_path(training_recipe())
    if damage == 'garbage': path.write_bytes(b'not a checkpoint')
    if damage == 'truncated': path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    if damage == 'other recipe':
        ckpt = torch.load(path, weights_only=True)
        torch.save(dict(ckpt, recipe=dict(ckpt['recipe'], seed=99)), path)
    with pytest.warns(UserWarning, match='SHA-256'):  # the stored hash catches every change to the file
        rebuilt = pretrained()
    assert fake_training == [0, 0] and _same_weights(model, rebuilt)
    assert torch.load(path, weights_only=True)['recipe'] == training_recipe()


EXECUTED = []
def _record_execution(): EXECUTED.append(True); return 'pwned'

class Malicious:
    def __reduce__(self): return (_record_execution, ())


def test_checkpoints_are_loaded_with_weights_only(fake_training):
    pretrained()
    path = checkpoint_path(training_recipe())
    ckpt = torch.load(path, weights_only=True)
    torch.save(dict(ckpt, payload=Malicious()), path)
    sidecar_path(path).write_text(hashlib.sha256(path.read_bytes()).hexdigest())  # the attacker replaced the hash too:
    # the file is intact as far as the hash can tell, so torch.load's weights_only check must refuse the pickle
    with pytest.warns(UserWarning, match='unreadable'):
        pretrained()
    assert not EXECUTED, 'loading a checkpoint ran code from its pickle'


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / 'ckpt.pt'
    path.write_bytes(b'old')
    def fail_half_way(tmp):
        open(tmp, 'wb').write(b'half of the new')
        raise OSError('disk full')
    with pytest.raises(OSError, match='disk full'): atomic_write(path, fail_half_way)
    assert path.read_bytes() == b'old' and list(tmp_path.iterdir()) == [path]


def test_failed_save_leaves_no_checkpoint(fake_training, monkeypatch):
    def broken_save(obj, f):
        if hasattr(f, 'write'):  # quantnb serializes to memory first, then writes the file set
            f.write(b'partial')
        else:
            open(f, 'wb').write(b'partial')
        raise OSError('disk full')
    monkeypatch.setattr(qm.torch, 'save', broken_save)
    with pytest.raises(OSError): pretrained()
    folder = checkpoint_path(training_recipe()).parent
    assert not [p for p in folder.iterdir() if not p.name.endswith('.lock')], 'only the (empty) lock file remains'


def _tiny_batches(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(n)]


def test_train_is_seeded_and_returns_a_record(capsys):
    batches = _tiny_batches()
    a, b = SampleNet(), SampleNet()
    b.load_state_dict(a.state_dict())
    hist_a = train(a, batches, batches[:1], epochs=2, lr=1e-3, seed=0)
    hist_b = train(b, batches, batches[:1], epochs=2, lr=1e-3, seed=0)
    assert _same_weights(a, b)
    assert [h['epoch'] for h in hist_a] == [1, 2]
    assert {'train_loss', 'train_accuracy', 'valid_loss', 'valid_accuracy', 'seconds'} <= set(hist_a[0])
    assert hist_a[-1]['train_loss'] == hist_b[-1]['train_loss']
    assert 'epoch 2/2: 4/4' in capsys.readouterr().err, 'outside Jupyter progress is printed as lines'


def test_unknown_arch_and_bad_epochs():
    with pytest.raises(ValueError, match="arch='resnet' is unknown"): training_recipe(arch='resnet')
    with pytest.raises(ValueError, match='epochs=0'): train(SampleNet(), [], [], epochs=0)


@pytest.mark.parametrize('arch', [SampleNet, SampleNetBN], ids=lambda a: a.__name__)
def test_fusion_keeps_the_function_and_static_quantization_runs(arch):
    torch.manual_seed(0)
    model = arch().eval()
    for bn in [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]:  # real statistics, not the identity of a fresh BN
        bn.running_mean.uniform_(-0.5, 0.5); bn.running_var.uniform_(0.2, 3.0)
        bn.weight.data.uniform_(0.5, 1.5); bn.bias.data.uniform_(-0.3, 0.3)
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad(): before = model(x)
    fused = copy.deepcopy(model).fuse_model()
    with torch.no_grad(): torch.testing.assert_close(fused(x), before, rtol=1e-4, atol=1e-4)
    if arch is SampleNetBN:
        bn, conv = model.bn1, model.conv1
        factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        torch.testing.assert_close(fused.conv1[0].weight, conv.weight * factor[:, None, None, None])
        torch.testing.assert_close(fused.conv1[0].bias, factor * (conv.bias - bn.running_mean) + bn.bias)
        assert (fused.conv1[0].weight - conv.weight).abs().max() > 0.01, 'the fold must change the weights'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        fused.qconfig = torch.ao.quantization.get_default_qconfig('x86')
        prepared = torch.ao.quantization.prepare(fused)
        prepared(x)
        quantized = torch.ao.quantization.convert(prepared)
    with torch.no_grad(): out = quantized(x)
    assert out.dtype == torch.float32 and out.shape == (16, 10)
    assert (out.argmax(1) == before.argmax(1)).float().mean() > 0.8


def test_train_valid_loaders_yield_the_per_image_transforms_batches_bit_for_bit():
    "The tensor-backed loaders replay the old per-image path exactly, so cached checkpoints stay what training would give."
    from torch.utils.data import DataLoader, Subset
    from quantnb.data import load_dataset
    train_dl, valid_dl = train_valid_loaders(valid_size=1000, subset=3000, seed=0)
    ds = load_dataset(train=True)  # the old path: torchvision's data set with per-image transforms
    old_train = DataLoader(Subset(ds, train_dl.dataset.indices), 128, shuffle=True, generator=torch.Generator().manual_seed(0))
    old_valid = DataLoader(Subset(ds, valid_dl.dataset.indices), 1000)
    for epoch in range(2):  # the generator advances identically from one epoch to the next
        for i, ((x0, y0), (x1, y1)) in enumerate(zip(old_train, train_dl)):
            if i == 4: break
            assert torch.equal(x0, x1) and torch.equal(y0, y1), (epoch, i)
    (x0, y0), (x1, y1) = next(iter(old_valid)), next(iter(valid_dl))
    assert torch.equal(x0, x1) and torch.equal(y0, y1)
    assert len(train_dl) == len(old_train) == 24


def test_a_checkpoint_without_its_hash_is_not_trusted(fake_training):
    "A flipped bit in a float weight still loads: without the stored SHA-256 the file cannot be verified, so it is rebuilt."
    model = pretrained()
    path = checkpoint_path(training_recipe())
    ckpt = torch.load(path, weights_only=True)
    name = next(iter(ckpt['state_dict']))
    ckpt['state_dict'][name].view(-1)[0] += 1.0  # a change torch.load cannot notice
    torch.save(ckpt, path)
    sidecar_path(path).unlink()
    with pytest.warns(UserWarning, match='cannot be verified'):
        rebuilt = pretrained()
    assert fake_training == [0, 0] and _same_weights(model, rebuilt)
    assert sidecar_path(path).exists()
