"""The hostile-input sweep as regression tests: 456 calls of quantnb's public functions (requant, isa, x86, integer,
advanced_ptq, deploy, qat, preflight) with bad, extreme or odd arguments, one test each (the cases: hostile_cases.py).

Each call keeps today's answer. A CLEAR case must still refuse with the error type named (ValueError or TypeError
unless the case says otherwise), raised inside quantnb, with a message naming the argument; a RIGHT case must still
return a result its check accepts. A call that becomes CRYPTIC (another error type, raised outside quantnb, or not
naming the argument), SILENT-WRONG (returns where it refused, or a result its check rejects) or MUTATES (changes the
caller's model, tensors or torch's global settings, where the case watches them) fails."""
import copy
import sys
import traceback
import warnings
from pathlib import Path

import pytest
import torch

import quantnb

sys.path.insert(0, str(Path(__file__).parent))
from hostile_cases import CASES, Fixtures  # noqa: E402

QUANTNB_DIR = Path(quantnb.__file__).resolve().parent


@pytest.fixture(scope='module')
def fixtures(tmp_path_factory):
    "The shared inputs and tiny models, built on first use and kept for the module (per xdist worker)."
    return Fixtures(tmp_path_factory.mktemp('hostile'))


# ---- what a call did
def call(case, fixtures):
    "`(result, None)` when the call returns, `(None, error)` when it raises."
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            return case.fn(fixtures), None
        except Exception as error:
            return None, error


def raised_in(error) -> Path:
    "The file of the innermost frame: where the error was raised."
    return Path(traceback.extract_tb(error.__traceback__)[-1].filename).resolve()


def in_quantnb(path: Path) -> bool:
    return path.is_relative_to(QUANTNB_DIR)


def first_line(error) -> str:
    text = str(error)
    return f'{type(error).__name__}: {text.splitlines()[0][:200] if text else ""}'


def close_figures():
    "The plotting cases draw on new figures; close them so that none piles up."
    if 'matplotlib.pyplot' in sys.modules:
        sys.modules['matplotlib.pyplot'].close('all')


# ---- the caller's state
def global_state() -> tuple:
    return torch.backends.quantized.engine, torch.get_num_threads(), torch.is_grad_enabled()


def value_copy(value):
    "A copy to compare with later: tensors (quantized ones by their codes) and tuples of them cloned."
    if torch.is_tensor(value):
        return value.int_repr().clone() if value.is_quantized else value.detach().clone()
    if isinstance(value, (tuple, list)):
        return tuple(value_copy(v) for v in value)
    return copy.deepcopy(value)


def model_state(model) -> tuple:
    "Weights and buffers, training flags and requires_grad of a model."
    state = {k: value_copy(v) for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    grads = [p.requires_grad for p in model.parameters()]
    return state, flags, grads


def same_value(before, after) -> bool:
    if torch.is_tensor(before):
        return torch.is_tensor(after) and before.shape == after.shape and torch.equal(before, after)
    if isinstance(before, tuple):
        return isinstance(after, tuple) and len(before) == len(after) and all(map(same_value, before, after))
    return str(before) == str(after)


def model_changes(before, model) -> list:
    state, flags, grads = model_state(model)
    old_state, old_flags, old_grads = before
    changed = [k for k in old_state if k not in state or not same_value(old_state[k], state[k])]
    out = [f'state changed: {changed[:4]}'] if changed else []
    if flags != old_flags:
        out.append('training flags changed')
    if grads != old_grads:
        out.append('requires_grad changed')
    return out


def same_tensor(now, then) -> bool:
    "Equal, NaNs in the same places counting as equal."
    return torch.equal(now, then) or (bool(then.isnan().any()) and torch.equal(now.isnan(), then.isnan())
                                      and torch.equal(now.nan_to_num(), then.nan_to_num()))


class Snapshot:
    "The watched objects as they were before the call; `changes()` lists what the call changed."
    def __init__(self, watched):
        self.watched = watched
        self.globals = global_state()
        self.model = model_state(watched.model) if watched.model is not None else None
        self.tensors = [(t, t.detach().clone(), t.requires_grad) for t in watched.tensors]

    def changes(self) -> list:
        out = []
        if global_state() != self.globals:
            out.append(f'global {self.globals} -> {global_state()}')
        if self.model is not None:
            out += model_changes(self.model, self.watched.model)
        for tensor, then, requires_grad in self.tensors:
            if not same_tensor(tensor.detach(), then):
                out.append('input tensor changed')
            if tensor.requires_grad != requires_grad:
                out.append('input requires_grad changed')
        return out


# ---- the classification
def assert_clear(case, result, error):
    "A clear refusal: the error type expected, raised inside quantnb, naming the argument."
    assert error is not None, f'SILENT-WRONG: returned instead of refusing: {repr(result)[:200]}'
    where = raised_in(error)
    assert isinstance(error, case.types), f'CRYPTIC: {first_line(error)} [raised in {where.name}]'
    assert case.any_frame or in_quantnb(where), f'CRYPTIC: {first_line(error)} [raised in {where}]'
    named = not case.expect or any(word in str(error) for word in case.expect)
    assert named, f'CRYPTIC: {first_line(error)} names none of {case.expect}'


def assert_right(case, fixtures, result, error):
    "A right result: the call returns, and the case's check accepts what it returned."
    assert error is None, f'raised instead of returning: {first_line(error)} [raised in {raised_in(error)}]'
    if case.check is not None:
        ok = case.check(result, fixtures)
        assert ok is True, f'SILENT-WRONG: {ok if isinstance(ok, str) else repr(result)[:200]}'


@pytest.mark.parametrize('case', CASES, ids=[case.id for case in CASES])
def test_hostile_input(case, fixtures):
    torch.manual_seed(0)
    snapshot = Snapshot(case.watch(fixtures)) if case.watch is not None else None
    result, error = call(case, fixtures)
    close_figures()
    if case.outcome == 'CLEAR':
        assert_clear(case, result, error)
    else:
        assert_right(case, fixtures, result, error)
    if snapshot is not None:
        changes = snapshot.changes()
        assert not changes, f'MUTATES: {"; ".join(changes)}'


def test_every_case_has_one_readable_id():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) == 458
    assert all(case.outcome in ('CLEAR', 'RIGHT') for case in CASES)
