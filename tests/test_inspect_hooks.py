"""core.inspect.hooks: inspection leaves the model as it found it, even when the forward pass fails."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from core.inspect.hooks import eval_mode, forward_hooks, model_device


def _model() -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(2, 4, 3), nn.Dropout(0.5), nn.ReLU())


def test_eval_mode_and_hooks_are_undone_after_an_error():
    m = _model().train()
    seen = []
    with pytest.raises(RuntimeError):
        with forward_hooks([(m[0], lambda mod, i, o: seen.append(o.shape))]), eval_mode(m):
            assert not m.training and not m[1].training
            m(torch.zeros(1, 2, 8))
            m(torch.zeros(1, 3, 8))  # wrong channel count: the conv raises
    assert m.training and m[1].training  # the caller's training mode is back
    assert seen == [torch.Size([1, 4, 6])]
    m(torch.zeros(1, 2, 8))
    assert len(seen) == 1  # the hook is gone
    assert not m[0]._forward_hooks


def test_eval_mode_keeps_an_eval_model_in_eval_and_model_device():
    m = _model().eval()
    with eval_mode(m):
        pass
    assert not m.training
    assert model_device(m) == torch.device("cpu") and model_device(nn.ReLU()) == torch.device("cpu")
