import numpy as np
import pytest
import torch

from dydiff.builtin import sac as sac_mod
from dydiff.builtin.sac import load_actor, train_sac
from dydiff.envs.evaluation import evaluate, random_policy
from dydiff.envs.registry import get_task
from dydiff.sources import load_dataset

HOPPER = get_task("hopper")
TINY = dict(steps=1500, start_steps=500, batch_size=64, hidden=32, lr=1e-3, eval_every=500, eval_episodes=2,
            checkpoint_every=500)


@pytest.mark.slow
def test_sac_improves_over_random_on_hopper(tmp_path):
    """3000 steps (1000 random, then 2000 updates): the deterministic policy beats the uniform random policy on
    the same 5 evaluation episodes."""
    train_sac(HOPPER, tmp_path, **{**TINY, "steps": 3000, "start_steps": 1000}, progress=False)
    agent = load_actor(tmp_path / "expert.pt", HOPPER, hidden=32)
    learned = evaluate(lambda o: agent.act(o), HOPPER, 5, seed=123).return_mean
    rand = evaluate(random_policy(HOPPER, 0), HOPPER, 5, seed=123).return_mean
    assert learned > rand + 30, (learned, rand)


def test_sac_resume_after_a_crash_reproduces_the_uninterrupted_run(tmp_path, monkeypatch):
    train_sac(HOPPER, tmp_path / "a", **TINY, progress=False)
    calls, real = [], sac_mod.evaluate

    def crash_on_third(*a, **k):  # evaluations at 500, 1000, then the crash at 1500 (checkpoint at 1000)
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(sac_mod, "evaluate", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        train_sac(HOPPER, tmp_path / "b", **TINY, progress=False)
    assert (tmp_path / "b" / "checkpoint.pt").exists() and not (tmp_path / "b" / "expert.pt").exists()
    monkeypatch.setattr(sac_mod, "evaluate", real)
    b = train_sac(HOPPER, tmp_path / "b", **TINY, progress=False)
    a = torch.load(tmp_path / "a" / "buffer.pt", weights_only=True)
    for k, v in a["agent"]["model"].items():
        assert torch.equal(v, b["agent"]["model"][k]), k
    for k, v in a["buffer"].items():
        np.testing.assert_array_equal(v.numpy(), b["buffer"][k])
    assert a["evaluations"] == b["evaluations"] and not (tmp_path / "b" / "checkpoint.pt").exists()


@pytest.mark.slow
def test_a_run_that_never_reached_medium_is_continued_to_max_steps_as_if_uninterrupted(tmp_path):
    """max_steps continues a finished run whose evaluations never reached medium_return: continuing the cached
    1500-step run gives the 3000-step run bit for bit (agent, buffer, evaluations), and the medium snapshot is
    taken in the extension once an evaluation reaches the threshold."""
    kw = dict(TINY, progress=False)
    a = train_sac(HOPPER, tmp_path / "a", medium_return=1e9, max_steps=3000, **kw)
    first = train_sac(HOPPER, tmp_path / "b", medium_return=1e9, **kw)  # the shorter run, finished and cached
    assert first["dir"] == tmp_path / "b" and len(first["evaluations"]) == 3
    b = train_sac(HOPPER, tmp_path / "b", medium_return=1e9, max_steps=3000, **kw)
    assert a["dir"] == tmp_path / "a" / "extended-3000" and b["dir"] == tmp_path / "b" / "extended-3000"
    assert [e[0] for e in b["evaluations"]] == [500, 1000, 1500, 2000, 2500, 3000]
    assert a["evaluations"] == b["evaluations"] and a["medium_step"] is None
    for k, v in a["agent"]["model"].items():
        assert torch.equal(v, b["agent"]["model"][k]), k
    for k, v in a["buffer"].items():
        assert len(v) == 3000
        np.testing.assert_array_equal(v, b["buffer"][k])
        np.testing.assert_array_equal(v[:1500], first["buffer"][k])  # the first run's transitions are kept
    # the extension changed the policy, and its final snapshot is the expert
    assert not torch.equal(first["agent"]["model"]["actor.net.weights.0"], a["agent"]["model"]["actor.net.weights.0"])
    torch.testing.assert_close(torch.load(a["dir"] / "expert.pt", weights_only=True)["actor"]["net.weights.0"],
                               a["agent"]["model"]["actor.net.weights.0"], rtol=0, atol=0)
    # a threshold first reached after `steps` puts the medium snapshot in the extension
    threshold = max(r for _, r in first["evaluations"]) + 1e-3
    later = [(s, r) for s, r in a["evaluations"][3:] if r >= threshold]
    assert later, a["evaluations"]  # with this seed the policy improves past its first 1500 steps
    c = train_sac(HOPPER, tmp_path / "c", medium_return=threshold, max_steps=3000, **kw)
    assert c["medium_step"] == later[0][0] and (c["dir"] / "medium.pt").exists()
    assert not (tmp_path / "c" / "medium.pt").exists()
    # a run that reached medium within `steps` is not extended
    d = train_sac(HOPPER, tmp_path / "d", medium_return=-1e9, max_steps=3000, **kw)
    assert d["medium_step"] == 500 and d["dir"] == tmp_path / "d" and not (tmp_path / "d" / "extended-3000").exists()


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """The smoke-sized hopper family (the medium snapshot is the first evaluation: medium_return is low)."""
    data = tmp_path_factory.mktemp("loco")
    kw = dict(data_dir=data, size=600, seed=0, sac=TINY, medium_return=-1e9, ref_episodes=2, progress=False)
    return {k: load_dataset(f"builtin-hopper-{k}", **kw) for k in
            ("random", "medium", "medium-replay", "expert", "medium-expert")}, data


def test_terminal_and_timeout_semantics(family):
    for kind, ds in family[0].items():
        ends = ds.episode_ends - 1
        last = ds.terminals[ends].astype(int) + ds.timeouts[ends].astype(int)
        assert (last == 1).all(), kind  # every episode ends in exactly one of them
        assert not (ds.terminals & ds.timeouts).any()
        assert np.array_equal(ds.terminals, HOPPER.terminal(ds.next_observations)), kind  # the termination fn
        assert ds.infos["qpos"].shape == (len(ds), 6) and ds.infos["qvel"].shape == (len(ds), 6)
        assert (ds.timeouts.sum() + ds.terminals.sum()) == ds.num_episodes


def test_medium_replay_is_the_buffer_up_to_the_medium_snapshot_and_medium_expert_the_concatenation(family):
    sets, data = family
    me, m, e = sets["medium-expert"], sets["medium"], sets["expert"]
    for k in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts"):
        np.testing.assert_array_equal(getattr(me, k), np.concatenate([getattr(m, k), getattr(e, k)]))
    assert len(sets["medium-replay"]) == 500  # the first evaluation (500 steps) reached the medium return
    assert len(sets["random"]) == len(m) == len(e) == 600


def test_stored_states_replay_the_dataset_in_the_simulator(family):
    ds, task = family[0]["expert"], HOPPER
    env = task.make_env()
    env.reset(seed=0)
    for i in (0, 17, 333):
        task.set_state(env, ds.observations[i], ds.infos["qpos"][i], ds.infos["qvel"][i])
        np.testing.assert_allclose(task.step_state(env, ds.actions[i]), ds.next_observations[i], atol=1e-5)


def test_cached_family_reloads_without_retraining(family):
    sets, data = family
    again = load_dataset("builtin-hopper-medium", data_dir=data, size=600, seed=0, sac=TINY, medium_return=-1e9,
                         ref_episodes=2, progress=False)
    assert again.fingerprint == sets["medium"].fingerprint
    assert again.ref_expert == sets["medium"].ref_expert and again.ref_random == sets["medium"].ref_random
    assert "with hopper's references" in again.describe()


def test_max_steps_reuses_a_behaviour_run_that_reached_medium(family):
    """max_steps is not part of the behaviour folder's key: a run that reached medium within `steps` is shared
    (no second SAC run, no extension), and the dataset rebuilt from it is the same data under a new file key."""
    sets, data = family
    behaviour = data / "builtin" / "behaviour"
    before = sorted(p.name for p in behaviour.iterdir())
    again = load_dataset("builtin-hopper-medium", data_dir=data, size=600, seed=0, sac={**TINY, "max_steps": 3000},
                         medium_return=-1e9, ref_episodes=2, progress=False)
    assert sorted(p.name for p in behaviour.iterdir()) == before and len(before) == 1
    assert not list(behaviour.glob("*/extended-*"))
    assert again.fingerprint == sets["medium"].fingerprint
    assert len(list((data / "builtin").glob("builtin-hopper-medium-600-*.hdf5"))) == 2
