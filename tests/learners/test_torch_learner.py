"""TorchMLP specifics: learning a micro-batch by minibatches in event order, and checkpoints
written before that loading still."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from learners import LearnerError
from learners.base import Artifact, sha256_of
from learners.torch_learner import TorchMLP


def _data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    return x, (x[:, 0] > 0).astype(np.int64)


def test_a_micro_batch_takes_one_step_per_minibatch_in_event_order() -> None:
    x, y = _data(20)
    whole = TorchMLP(2, 2, hidden=(4,), minibatch=8, device="cpu")
    whole.learn(x, y)
    by_hand = TorchMLP(2, 2, hidden=(4,), minibatch=8, device="cpu")
    by_hand._update_scaler(by_hand._tensor(x))  # the scaler sees the micro-batch first, as in learn
    scaler = (by_hand._count, by_hand._mean, by_hand._m2)
    steps = [slice(0, 8), slice(8, 16), slice(16, 20)]
    for part in steps:  # 3 Adam steps, on events 0-7, 8-15, 16-19
        by_hand._count, by_hand._mean, by_hand._m2 = scaler
        by_hand._opt.zero_grad()
        logits = by_hand._net.train()(by_hand._standardise(by_hand._tensor(x[part])))
        loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y[part]))
        loss.backward()
        by_hand._opt.step()
    by_hand._net.eval()
    probe = _data(16)[0] + 0.5
    np.testing.assert_allclose(whole.predict_proba(probe), by_hand.predict_proba(probe), rtol=1e-5, atol=1e-6)


def test_minibatch_must_be_positive() -> None:
    with pytest.raises(LearnerError, match="minibatch >= 1"):
        TorchMLP(2, 2, minibatch=0, device="cpu")


def test_a_checkpoint_saved_with_steps_per_batch_still_loads(tmp_path: Path) -> None:
    """Checkpoints from before minibatches name ``steps_per_batch``: the weights load, the old
    knob is dropped (it described a way of learning that is gone)."""
    x, y = _data()
    model = TorchMLP(2, 2, hidden=(4,), device="cpu")
    model.learn(x, y)
    artifact = model.save(tmp_path / "new")
    tensors = load_file(str(artifact.path))
    config = {"n_features": 2, "n_classes": 2, "feature_names": ["x0", "x1"], "hidden": [4], "lr": 5e-3,
              "steps_per_batch": 4, "seed": 0, "device": "cpu"}  # fmt: skip
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata={"headwater.config": json.dumps(config)})
    loaded = TorchMLP.load(Artifact(old, sha256_of(old)))
    assert (loaded.minibatch, loaded.steps_per_minibatch) == (4, 1)  # today's defaults
    probe = _data(8)[0]
    np.testing.assert_allclose(loaded.predict_proba(probe), model.predict_proba(probe), rtol=1e-6)
