"""Faults a shared cache meets: flipped bits, truncated and foreign files, read-only folders, a umask, two processes
at once, and writers killed half-way. Each must end in a correct result (rebuilt, or computed in memory with a
warning) or a clear error, never in a silently wrong model."""
import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import quantnb.models as qm
from quantnb.data import find_idx_files, data_spec, load_dataset
from quantnb.core import atomic_write, clean_stale_temps, is_writable, save_verified, sidecar_path
from quantnb.models import SampleNet, checkpoint_path, load_checkpoint, pretrained, training_recipe


@pytest.fixture
def fake_training(tmp_path, monkeypatch):
    "Cache in a temporary folder; `train` replaced by a seeded recorder, so that cache logic is tested in milliseconds."
    monkeypatch.setenv('QUANTNB_CACHE', str(tmp_path / 'cache'))
    calls = []
    def fake_train(model, train_dl, valid_dl, epochs, lr, seed=0, **kw):
        calls.append(seed)
        return [dict(epoch=e + 1, valid_accuracy=0.5, seconds=0.0) for e in range(epochs)]
    monkeypatch.setattr(qm, 'train', fake_train)
    monkeypatch.setattr(qm, 'train_valid_loaders', lambda *a, **k: ([], []))
    return calls


def _digest(model): return hashlib.sha256(b''.join(v.numpy().tobytes() for v in model.state_dict().values())).hexdigest()


def test_every_bit_flip_is_detected(fake_training):
    good = pretrained()
    path = checkpoint_path(training_recipe())
    original, digest, rng = path.read_bytes(), sidecar_path(path).read_text(), random.Random(0)
    for _ in range(40):
        bit = rng.randrange(8 * len(original))
        damaged = bytearray(original); damaged[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(damaged))
        with pytest.warns(UserWarning, match='SHA-256'):
            assert load_checkpoint(path, training_recipe()) is None
        assert not path.exists(), 'a corrupt file is removed'
        path.write_bytes(original); sidecar_path(path).write_text(digest)
    assert _digest(pretrained()) == _digest(good) and fake_training == [0], 'the intact file still loads, untrained'


@pytest.mark.parametrize('damage', ['truncated', 'garbage', 'empty'])
@pytest.mark.parametrize('hashed', [True, False], ids=['with-hash', 'legacy-no-hash'])
def test_damaged_files_are_replaced(fake_training, damage, hashed):
    good = pretrained()
    path = checkpoint_path(training_recipe())
    data = path.read_bytes()
    path.write_bytes({'truncated': data[:len(data) // 3], 'garbage': os.urandom(1000), 'empty': b''}[damage])
    if not hashed: sidecar_path(path).unlink()
    with pytest.warns(UserWarning, match='SHA-256|unreadable'):
        rebuilt = pretrained()
    assert fake_training == [0, 0] and _digest(rebuilt) == _digest(good)
    assert load_checkpoint(path, training_recipe()) is not None, 'the rebuilt file is valid and hashed'


def test_a_file_of_the_right_recipe_but_wrong_shapes_is_replaced(fake_training):
    recipe, wrong = training_recipe(), SampleNet(num_classes=5)
    path = checkpoint_path(recipe)
    save_verified(path, dict(recipe=recipe, history=[], state_dict=wrong.state_dict()))  # intact, hashed, wrong shapes
    with pytest.warns(UserWarning, match='does not fit'):
        model = pretrained()
    assert fake_training == [0] and model.fc2.out_features == 10
    assert load_checkpoint(path, recipe) is not None, 'replaced once, not failing on every call'


def test_a_file_without_its_hash_cannot_be_verified_and_is_rebuilt(fake_training):
    "Without its stored SHA-256 a checkpoint cannot be told from a damaged one: removed, and trained again once."
    pretrained()
    path = checkpoint_path(training_recipe())
    sidecar_path(path).unlink()
    with pytest.warns(UserWarning, match='cannot be verified'):
        assert load_checkpoint(path, training_recipe()) is None
    assert not path.exists()
    pretrained()
    assert fake_training == [0, 0]
    assert sidecar_path(path).read_text() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_loading_with_another_recipe_keeps_the_valid_file(fake_training):
    pretrained()
    path = checkpoint_path(training_recipe())
    with pytest.warns(UserWarning, match='another recipe'):
        assert load_checkpoint(path, training_recipe(seed=5)) is None
    assert path.exists() and load_checkpoint(path, training_recipe()) is not None


def _unwritable(tmp_path):
    "A cache path nobody can create, even root: it lies under a regular file."
    blocker = tmp_path / 'a-file'
    blocker.write_text('not a folder')
    return blocker / 'cache'


def test_read_only_cache_trains_in_memory_with_a_warning(fake_training, tmp_path, monkeypatch):
    monkeypatch.setenv('QUANTNB_CACHE', str(_unwritable(tmp_path)))
    assert not is_writable(checkpoint_path(training_recipe()).parent)
    with pytest.warns(UserWarning, match='not writable'):
        model = pretrained()
    assert fake_training == [0] and isinstance(model, SampleNet) and not model.training


@pytest.mark.skipif(os.geteuid() == 0, reason='root ignores permission bits')
def test_read_only_permissions(fake_training, tmp_path, monkeypatch):
    cache = tmp_path / 'ro'
    (cache / 'models').mkdir(parents=True); cache.chmod(0o555); (cache / 'models').chmod(0o555)
    monkeypatch.setenv('QUANTNB_CACHE', str(cache))
    try:
        with pytest.warns(UserWarning, match='not writable'): pretrained()
    finally: cache.chmod(0o755); (cache / 'models').chmod(0o755)


@pytest.mark.skipif(find_idx_files(data_spec('fashion-mnist')) is None, reason='Fashion-MNIST is not installed')
def test_load_dataset_reads_the_system_copy_without_a_writable_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('QUANTNB_CACHE', str(_unwritable(tmp_path)))
    with pytest.warns(UserWarning, match='not writable'):
        test_set = load_dataset('fashion-mnist', train=False)
    assert len(test_set) == 10_000 and test_set[0][0].shape == (1, 28, 28)


@pytest.mark.parametrize('umask', [0o022, 0o002, 0o077])
def test_cache_files_honour_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try: path = atomic_write(tmp_path / 'f.bin', lambda tmp: Path(tmp).write_bytes(b'x'))
    finally: os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


WRITER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from quantnb.data import atomic_write
    def slow(tmp):
        Path(tmp).write_bytes(b'half written')
        print('writing', flush=True)
        time.sleep(60)
    atomic_write(Path(sys.argv[1]), slow)
''')

def test_a_killed_writer_leaves_no_orphaned_temp_file(tmp_path):
    proc = subprocess.Popen([sys.executable, '-c', WRITER, str(tmp_path / 'data.bin')], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'writing'
    assert len(list(tmp_path.glob('.*.tmp'))) == 1
    proc.send_signal(signal.SIGKILL); proc.wait()
    assert len(list(tmp_path.glob('.*.tmp'))) == 1, 'SIGKILL runs no clean-up'
    atomic_write(tmp_path / 'other.bin', lambda tmp: Path(tmp).write_bytes(b'ok'))
    assert not list(tmp_path.glob('.*.tmp')) and not (tmp_path / 'data.bin').exists()


def test_only_quantnbs_abandoned_temp_files_are_cleaned(tmp_path):
    "A live writer's file stays until it is old; a file of another program's pattern is never touched, however old."
    live = tmp_path / f'.x.pt.{os.getpid()}-0123abcd.tmp'
    live.write_bytes(b'in progress')
    abandoned = tmp_path / f'.y.pt.{os.getpid()}-4567cdef.tmp'
    abandoned.write_bytes(b'old')
    os.utime(abandoned, (time.time() - 7200,) * 2)
    users = tmp_path / '.x.pt.k3j4h5.tmp'
    users.write_bytes(b'not quantnb')
    os.utime(users, (time.time() - 7200,) * 2)
    assert clean_stale_temps(tmp_path) == [abandoned]
    assert live.exists(), 'a live writer keeps its file'
    assert users.exists(), "another program's file is left alone"


# --- two real processes, fast mode, a small subset: the code path of pretrained() unchanged ---------------------------
TRAINER = textwrap.dedent('''
    import hashlib, quantnb.models as qm
    full = qm.train_valid_loaders
    qm.train_valid_loaders = lambda dataset, batch_size, valid_size, subset, seed: full(dataset, batch_size, 200, 600, seed)
    model = qm.pretrained(epochs=1, seed=0)
    print('DIGEST', hashlib.sha256(b''.join(v.numpy().tobytes() for v in model.state_dict().values())).hexdigest())
''')

def _run_together(caches):
    "Start one trainer per cache folder at the same time; their outputs."
    procs = [subprocess.Popen([sys.executable, '-c', TRAINER], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ, QUANTNB_FAST='1', QUANTNB_CACHE=str(c))) for c in caches]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    return outs

def _digest_of(out): return next(l.split()[1] for l in out.splitlines() if l.startswith('DIGEST'))

@pytest.mark.skipif(find_idx_files(data_spec('fashion-mnist')) is None, reason='Fashion-MNIST is not installed')
def test_pretrained_is_bit_identical_in_fresh_processes(tmp_path):
    outs = _run_together([tmp_path / 'a', tmp_path / 'b'])
    assert all('epoch=1' in o for o in outs), 'each process trained in its own cache'
    assert _digest_of(outs[0]) == _digest_of(outs[1])


@pytest.mark.skipif(find_idx_files(data_spec('fashion-mnist')) is None, reason='Fashion-MNIST is not installed')
def test_concurrent_first_calls_train_once(tmp_path):
    cache = tmp_path / 'shared'
    load_dataset_in = subprocess.run([sys.executable, '-c', 'from quantnb.data import load_dataset; load_dataset()'],
                                     env=dict(os.environ, QUANTNB_CACHE=str(cache)), check=True)  # both start at training
    outs = _run_together([cache, cache])
    assert sum('epoch=1' in o for o in outs) == 1, outs
    assert _digest_of(outs[0]) == _digest_of(outs[1])


def test_a_folder_set_killed_half_way_leaves_the_old_set_whole(tmp_path):
    "write_folder_set: SIGKILL while the new set is half written leaves the old set; the next writer cleans up."
    from quantnb.core import write_folder_set
    folder = tmp_path / 'report'
    old = {'a.txt': lambda p: Path(p).write_text('old'), 'b.txt': lambda p: Path(p).write_text('old')}
    write_folder_set(folder, old)
    started = tmp_path / 'first-file-written'
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from quantnb.core import write_folder_set
        def slow(path):
            Path({str(started)!r}).write_text('yes')
            time.sleep(60)
        write_folder_set(Path({str(folder)!r}), {{'a.txt': lambda p: Path(p).write_text('new'), 'b.txt': slow}})
    """)
    writer = subprocess.Popen([sys.executable, '-c', script])
    deadline = time.time() + 60
    while not started.exists() and time.time() < deadline:
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert {p.name: p.read_text() for p in folder.iterdir()} == {'a.txt': 'old', 'b.txt': 'old'}
    assert any(p.name.endswith('.set') for p in tmp_path.iterdir())  # the dead writer's hidden set
    new = {'a.txt': lambda p: Path(p).write_text('new'), 'b.txt': lambda p: Path(p).write_text('new')}
    write_folder_set(folder, new)
    assert {p.name: p.read_text() for p in folder.iterdir()} == {'a.txt': 'new', 'b.txt': 'new'}
    assert not any(p.name.endswith('.set') for p in tmp_path.iterdir())


def test_a_folder_set_without_a_one_step_swap_still_never_mixes(tmp_path, monkeypatch):
    "Without renameat2's swap, two renames replace the folder; a folder holding another file is written file by file."
    import quantnb.core
    from quantnb.core import write_folder_set
    monkeypatch.setattr(quantnb.core, '_exchange', lambda a, b: False)
    folder = tmp_path / 'report'
    for text in ('old', 'new'):
        write_folder_set(folder, {'a.txt': lambda p, t=text: Path(p).write_text(t)})
    assert [(p.name, p.read_text()) for p in folder.iterdir()] == [('a.txt', 'new')]
    assert [p.name for p in tmp_path.iterdir()] == ['report']
    (folder / 'notes.txt').write_text('mine')
    write_folder_set(folder, {'a.txt': lambda p: Path(p).write_text('newer')})
    assert {p.name: p.read_text() for p in folder.iterdir()} == {'a.txt': 'newer', 'notes.txt': 'mine'}
