"""Rollout storage: GAE against a hand-computed example, feed-forward minibatches that
partition the rollout, and recurrent (L, B) chunks with the stored hidden states."""

from __future__ import annotations

import pytest
import torch

from agent.storage import RolloutStorage

T, N, H = 8, 3, 2


def _filled(num_steps: int = T, num_envs: int = N, hidden: int = H) -> RolloutStorage:
    """A storage whose every field tells which (t, n) it came from: ``id = t * N + n``."""
    s = RolloutStorage(num_steps, num_envs, {"x": torch.zeros(num_envs, 2)}, (), torch.long,
                       hidden=hidden, privileged_dim=1)
    gen = torch.Generator().manual_seed(0)
    starts = torch.rand(num_steps, num_envs, generator=gen) < 0.3
    starts[0] = True
    for t in range(num_steps):
        ids = torch.arange(num_envs, dtype=torch.float32) + t * num_envs
        s.add({"x": torch.stack([ids, -ids], 1)}, actions=ids.long(), log_prob=ids + 0.25,
              values=ids + 0.5, rewards=torch.zeros(num_envs),
              dones=torch.zeros(num_envs, dtype=torch.bool), starts=starts[t],
              hidden=torch.stack([ids, 1000 + ids], 1), privileged=ids[:, None] + 0.75)
    s.advantages = torch.arange(num_steps * num_envs, dtype=torch.float32).view(
        num_steps, num_envs) + 0.125
    s.returns = s.advantages + 1.0
    return s


def test_gae_matches_a_hand_computed_example() -> None:
    """3 steps, 2 worlds, gamma = lambda = 0.5 (so gamma * lambda = 0.25).

    World 0 runs on: r = 1, 1, 1; V = 0, 0, 0; V(last) = 4
        t=2: delta = 1 + 0.5*4 - 0 = 3            A = 3
        t=1: delta = 1 + 0.5*0 - 0 = 1            A = 1 + 0.25*3    = 1.75
        t=0: delta = 1                            A = 1 + 0.25*1.75 = 1.4375
    World 1 ends its episode at t=1: r = 0, 3, 1; V = 1, 2, 2; V(last) = 2
        t=2: delta = 1 + 0.5*2 - 2 = 0            A = 0
        t=1: done, delta = 3 - 2 = 1 (no bootstrap, no carry)      A = 1
        t=0: delta = 0 + 0.5*2 - 1 = 0            A = 0 + 0.25*1    = 0.25
    Returns = A + V.
    """
    s = RolloutStorage(3, 2, {"x": torch.zeros(2, 1)}, (), torch.long)
    rewards = [[1.0, 0.0], [1.0, 3.0], [1.0, 1.0]]
    values = [[0.0, 1.0], [0.0, 2.0], [0.0, 2.0]]
    dones = [[False, False], [False, True], [False, False]]
    for t in range(3):
        s.add({"x": torch.zeros(2, 1)}, torch.zeros(2, dtype=torch.long), torch.zeros(2),
              torch.tensor(values[t]), torch.tensor(rewards[t]), torch.tensor(dones[t]),
              torch.tensor([t == 0, t == 2]))
    s.compute_returns(torch.tensor([4.0, 2.0]), gamma=0.5, lam=0.5)
    expected_adv = torch.tensor([[1.4375, 0.25], [1.75, 1.0], [3.0, 0.0]])
    assert torch.equal(s.advantages, expected_adv)
    assert torch.equal(s.returns, expected_adv + torch.tensor(values))


def test_gae_with_lambda_one_is_the_discounted_return_minus_the_value() -> None:
    s = RolloutStorage(4, 1, {"x": torch.zeros(1, 1)}, (), torch.long)
    for t in range(4):
        s.add({"x": torch.zeros(1, 1)}, torch.zeros(1, dtype=torch.long), torch.zeros(1),
              torch.tensor([0.5]), torch.tensor([1.0]), torch.tensor([False]),
              torch.tensor([t == 0]))
    s.compute_returns(torch.tensor([2.0]), gamma=0.5, lam=1.0)
    # return at t=0: 1 + .5 + .25 + .125 + .0625 * 2 = 2.0; at t=3: 1 + .5 * 2 = 2.0
    assert torch.allclose(s.returns[:, 0], torch.full((4,), 2.0))
    assert torch.allclose(s.advantages[:, 0], torch.full((4,), 1.5))


def test_feed_forward_minibatches_partition_the_rollout() -> None:
    s = _filled()
    seen = []
    for mb in s.minibatches(4, torch.Generator().manual_seed(1)):
        assert mb.h0 is None and mb.starts is None
        ids = mb.obs["x"][:, 0]
        assert ids.shape == (T * N // 4,)
        # every field of a sample comes from the same (t, n)
        assert torch.equal(mb.obs["x"][:, 1], -ids)
        assert torch.equal(mb.actions, ids.long())
        assert torch.equal(mb.old_log_prob, ids + 0.25)
        assert torch.equal(mb.old_value, ids + 0.5)
        assert torch.equal(mb.advantages, ids + 0.125)
        assert torch.equal(mb.returns, ids + 1.125)
        assert torch.equal(mb.privileged[:, 0], ids + 0.75)
        seen += ids.long().tolist()
    assert sorted(seen) == list(range(T * N))


def test_minibatch_order_follows_the_generator() -> None:
    s = _filled()

    def order(seed: int) -> list[int]:
        return [int(i) for mb in s.minibatches(2, torch.Generator().manual_seed(seed))
                for i in mb.obs["x"][:, 0]]

    assert order(3) == order(3)
    assert order(3) != order(4)


def test_recurrent_sequences_are_chunks_that_start_from_the_stored_hidden_state() -> None:
    s = _filled()
    seq_len, minibatches = 4, 2
    chunks = T // seq_len
    seen = set()
    for mb in s.sequences(minibatches, seq_len, torch.Generator().manual_seed(2)):
        b = chunks * N // minibatches
        assert mb.obs["x"].shape == (seq_len, b, 2)
        assert mb.actions.shape == mb.advantages.shape == mb.starts.shape == (seq_len, b)
        assert mb.h0.shape == (b, H) and mb.privileged.shape == (seq_len, b, 1)
        for j in range(b):
            ids = mb.obs["x"][:, j, 0].long()
            t0, n = divmod(int(ids[0]), N)
            assert t0 % seq_len == 0, "a chunk starts at a multiple of seq_len"
            # consecutive steps of one world
            assert ids.tolist() == [(t0 + k) * N + n for k in range(seq_len)]
            assert torch.equal(mb.h0[j], s.hidden[t0, n])
            assert not mb.starts[0, j]
            assert torch.equal(mb.starts[1:, j], s.starts[t0 + 1:t0 + seq_len, n])
            assert torch.equal(mb.actions[:, j], ids)
            assert torch.equal(mb.old_log_prob[:, j], ids + 0.25)
            assert torch.equal(mb.old_value[:, j], ids + 0.5)
            assert torch.equal(mb.advantages[:, j], ids + 0.125)
            assert torch.equal(mb.returns[:, j], ids + 1.125)
            assert torch.equal(mb.privileged[:, j, 0], ids + 0.75)
            seen.add((t0, n))
    assert seen == {(c * seq_len, n) for c in range(chunks) for n in range(N)}
    # the storage's own starts are left as stored
    assert s.starts[0].all()


def test_recurrent_sequences_refuse_bad_lengths() -> None:
    s = _filled()
    with pytest.raises(ValueError, match="rollout length 8 is not a multiple of seq_len 3"):
        next(s.sequences(1, 3))
    with pytest.raises(ValueError, match="6 sequences cannot fill 7 minibatches"):
        next(s.sequences(7, 4))


def test_a_full_storage_refuses_more_steps() -> None:
    s = _filled()
    with pytest.raises(RuntimeError, match="storage is full"):
        s.add({"x": torch.zeros(N, 2)}, torch.zeros(N, dtype=torch.long), torch.zeros(N),
              torch.zeros(N), torch.zeros(N), torch.zeros(N, dtype=torch.bool),
              torch.zeros(N, dtype=torch.bool))
    s.clear()
    assert s.step == 0
