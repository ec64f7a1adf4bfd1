"""The vLLM adapter's batch bookkeeping on CPU, with minimal fakes of vLLM's batch updates."""

from dataclasses import dataclass, field
from enum import Enum, auto

import pytest
import torch

from thinkscope.decoding import DecodingConfig, decode_step
from thinkscope.decoding.batch import EXTRA_ARG, BatchRows


class Move(Enum):  # vllm.v1.sample.logits_processor.MoveDirectionality
    UNIDIRECTIONAL = auto()
    SWAP = auto()


@dataclass
class Params:  # the part of vllm.SamplingParams the adapter reads
    extra_args: dict | None = None


@dataclass
class Update:  # vllm.v1.sample.logits_processor.BatchUpdate
    batch_size: int
    removed: list = field(default_factory=list)
    added: list = field(default_factory=list)
    moved: list = field(default_factory=list)


def _params(**knobs) -> Params:
    return Params({EXTRA_ARG: knobs})


def test_rows_follow_adds_removes_moves_and_swaps():
    greedy, top2 = dict(temperature=0.0), dict(top_k=2, temperature=0.5)
    rows = BatchRows()
    rows.update(
        Update(
            4,
            added=[
                (0, _params(**greedy), [1], []),
                (1, Params(), [2], []),
                (2, _params(**top2), None, []),
                (3, Params(None), [3], []),
            ],
        )
    )
    assert rows.rows == {0: DecodingConfig(**greedy), 2: DecodingConfig(**top2)}
    rows.update(None)  # no change
    rows.update(Update(3, removed=[0], moved=[(2, 0, Move.UNIDIRECTIONAL)]))
    assert rows.rows == {0: DecodingConfig(**top2)}
    rows.update(Update(3, added=[(2, _params(**greedy), [5], [])], moved=[(0, 2, Move.SWAP)]))
    assert rows.rows == {2: DecodingConfig(**top2), 0: DecodingConfig(**greedy)}
    rows.update(Update(3, added=[(0, Params(), [6], [])]))  # a plain request replaces row 0
    assert rows.rows == {2: DecodingConfig(**top2)}


def test_apply_decodes_each_configured_row_with_its_own_config_only():
    rows = BatchRows()
    configs = {
        0: dict(min_p=0.2),
        2: dict(greedy_threshold=0.9, temperature=0.7),
        3: dict(min_p=0.2),
    }
    rows.update(Update(4, added=[(i, _params(**c), None, []) for i, c in configs.items()]))
    logits = torch.randn(4, 50) * 3
    out = rows.apply(logits.clone())
    assert torch.equal(out[1], logits[1])  # no config: untouched
    for i, knobs in configs.items():
        assert torch.equal(
            out[i], decode_step(logits[i : i + 1], DecodingConfig(**knobs)).scores[0]
        )
    assert (torch.isfinite(out[0]).sum() < 50) and (torch.isfinite(out[2]).sum() >= 1)


def test_a_bad_config_in_extra_args_is_rejected():
    with pytest.raises(ValueError):
        BatchRows().update(Update(1, added=[(0, _params(dynamic_top_k=[1, 2]), None, [])]))


def test_the_vllm_module_imports_vllm_only_when_asked():
    import importlib.util
    import sys

    import thinkscope.decoding  # noqa: F401

    assert "vllm" not in sys.modules
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(ImportError):
            import thinkscope.decoding.vllm_processor  # noqa: F401
