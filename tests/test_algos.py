import copy
import math
import warnings
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch

from dydiff.algos import ALGOS
from dydiff.algos.optim import polyak
from dydiff.types import Transitions

warnings.filterwarnings("ignore", ".*does not have many workers.*")
SMALL = {"td3bc": {"hidden": 32}, "cql": {"hidden": 32, "layers": 2}, "diffql": {"hidden": 32, "ema_start": 2}}


def random_data(n=512, obs_dim=4, act_dim=2, seed=0) -> Transitions:
    g = torch.Generator().manual_seed(seed)
    return Transitions(torch.randn(n, obs_dim, generator=g), torch.rand(n, act_dim, generator=g) * 2 - 1,
                       torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g), torch.zeros(n))


def make(algo, seed=0, **kw):
    torch.manual_seed(seed)
    m = ALGOS[algo](obs_dim=4, act_dim=2, task="maze2d-umaze", batch_size=32, steps_per_epoch=3, seed=seed,
                    **{**SMALL[algo], **kw})
    m.attach_data(random_data())
    return m


class Snapshots(L.Callback):
    """Parameters before and after every update."""

    def __init__(self):
        self.before, self.after = [], []

    def on_train_batch_start(self, trainer, module, *a):
        self.before.append(copy.deepcopy(module.state_dict()))

    def on_train_batch_end(self, trainer, module, *a):
        self.after.append(copy.deepcopy(module.state_dict()))


def fit(module, epochs=1, callbacks=()):
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks))
    trainer.fit(module)
    return trainer


@pytest.mark.parametrize("algo", list(ALGOS))
def test_every_trainable_parameter_changes(algo):
    m = make(algo)
    before = {k: v.detach().clone() for k, v in m.named_parameters() if v.requires_grad}
    fit(m)
    skip = {"log_alpha_prime"}  # only trained with lagrange=True
    unchanged = [k for k, v in m.named_parameters() if k in before and k not in skip and torch.equal(v, before[k])]
    assert not unchanged


@pytest.mark.parametrize("algo", list(ALGOS))
def test_targets_follow_polyak_exactly(algo):
    m, snaps = make(algo), Snapshots()
    fit(m, callbacks=[snaps])
    tau = m.hparams.tau
    before, after = snaps.before[0], snaps.after[0]  # update 0: every algorithm updates its targets
    for k in after:
        if k.startswith("critic_target."):
            online = after[k.replace("critic_target.", "critic.")]
            expected = before[k].clone().mul_(1 - tau).add_(online, alpha=tau)
            assert torch.equal(after[k], expected), k


def test_td3bc_policy_delay_and_update_counter():
    m, snaps = make("td3bc"), Snapshots()
    fit(m, callbacks=[snaps])
    assert m.updates == 3
    actor = lambda sd: [v for k, v in sd.items() if k.startswith("actor.")]  # noqa: E731
    changed = [not all(torch.equal(a, b) for a, b in zip(actor(snaps.before[i]), actor(snaps.after[i]), strict=True))
               for i in range(3)]
    assert changed == [True, False, True]  # the actor and targets update every policy_freq = 2 updates


def test_diffql_ema_starts_at_ema_start():
    m, snaps = make("diffql", ema_start=2, ema_every=1), Snapshots()
    fit(m, callbacks=[snaps])
    ema = lambda sd: [v for k, v in sd.items() if k.startswith("actor_ema.")]  # noqa: E731
    changed = [not all(torch.equal(a, b) for a, b in zip(ema(snaps.before[i]), ema(snaps.after[i]), strict=True))
               for i in range(3)]
    assert changed == [False, False, True]


@pytest.mark.parametrize("algo", list(ALGOS))
def test_same_seed_identical_runs_and_act_contract(algo):
    a, b = make(algo, seed=3), make(algo, seed=3)
    fit(a)
    fit(b)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    obs = torch.randn(7, 4) * 3
    for det in (True, False):
        act = a.act(obs, det, torch.Generator().manual_seed(0))
        assert act.shape == (7, 2) and float(act.abs().max()) <= 1.0
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(a.act(obs, False, g1), a.act(obs, False, g2))


def test_a_checkpoint_from_before_the_evaluator_loads(tmp_path):
    """Checkpoints written before evaluation moved to the Evaluator callback carry its settings as hyperparameters:
    load_policy drops them and rebuilds the same policy."""
    from dydiff.algos import load_policy

    m = make("td3bc", seed=2)
    old = {"eval_every": 10, "eval_episodes": 20, "ref_random": 1.0, "ref_expert": 2.0}
    torch.save({"algo": "td3bc", "hyper_parameters": {**m.hparams, **old}, "state_dict": m.state_dict(),
                "updates": 7, "evaluations": []}, tmp_path / "old.ckpt")
    back = load_policy(tmp_path / "old.ckpt")
    obs = torch.randn(5, 4)
    assert back.updates == 7 and torch.equal(back.act(obs), m.act(obs))


@pytest.mark.parametrize("algo", list(ALGOS))
def test_updates_per_step_changes_nothing_but_speed(algo):
    """k updates per Lightning step (3 updates an epoch, k = 2: steps of 2 and 1) give the k = 1 parameters."""
    a, b = make(algo, seed=1), make(algo, seed=1, updates_per_step=2)
    fit(a, epochs=2)
    trainer = fit(b, epochs=2)
    assert a.updates == b.updates == 6 and trainer.num_training_batches == 2
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def test_td3bc_actor_loss_by_hand():
    m = make("td3bc")
    b = Transitions(*(t[:8] for t in random_data()))  # a batch arrives normalised
    obs = b.obs
    pi = m.actor(obs)[0]
    q = m.critic(obs, pi)[0]  # Q₁
    lam = 2.5 / q.abs().mean()
    expected = -lam * q.mean() + ((pi - b.act) ** 2).mean()
    torch.testing.assert_close(m.actor_loss(Transitions(*(t[None] for t in b))), expected)  # one seed: (1, B, ·)


def test_cql_conservative_gap_sign_and_size():
    m = make("cql")
    obs = torch.randn(1, 64, 4)  # one seed: (1, B, ·)
    act = torch.zeros(1, 64, 2)  # the data action; Q grows away from it
    planted = lambda c: lambda s, a: (c * (a**2).sum(-1))[:, None].expand(-1, 2, -1)  # noqa: E731  (K, 2, B)
    gaps = {}
    for c in (1.0, 10.0):
        m.critic.both = planted(c)
        q_data = m.critic.both(obs, act)
        d = m.draws(SimpleNamespace(act=act), [torch.Generator().manual_seed(0)])
        gaps[c] = float(m.conservative_gap(obs, obs, q_data, d)[0])
    # logsumexp ≥ the mean Q of uniform actions (c·2/3) plus the importance weight log 2^d
    assert gaps[1.0] > 2 / 3 + 2 * math.log(2) - 0.2
    assert gaps[10.0] > 10 * 2 / 3
    assert gaps[10.0] > gaps[1.0]
    m.critic.both = planted(-10.0)  # Q highest on the data
    q_data = m.critic.both(obs, act)
    lower = float(m.conservative_gap(obs, obs, q_data, d)[0])
    assert lower < gaps[1.0]


def test_diffql_bc_loss_is_zero_gradient_at_optimum():
    """With one action a* per state, ε_θ(x_t, t) = (x_t − √ᾱ_t·a*)/√(1 − ᾱ_t) is optimal: loss 0, gradient 0."""
    m = make("diffql")
    a_star = torch.nn.Parameter(torch.tensor([0.3, -0.6]))
    actor = m.actor
    actor.eps = lambda a, t, s: (a - actor.alphas_bar[t][..., None].sqrt() * a_star) / (
        1 - actor.alphas_bar[t][..., None]).sqrt()
    obs = torch.randn(64, 4)
    loss = actor.loss(obs, a_star.detach().expand(64, 2), *actor.loss_draws(torch.Generator().manual_seed(0), 64))
    loss.backward()
    assert float(loss) < 1e-10 and float(a_star.grad.abs().max()) < 1e-5
    a_star.grad = None
    draws = actor.loss_draws(torch.Generator().manual_seed(0), 64)
    off = actor.loss(obs, (a_star.detach() + 0.1).expand(64, 2), *draws)
    off.backward()
    assert float(off) > 1e-3 and float(a_star.grad.abs().max()) > 1e-3


@pytest.mark.parametrize("algo", list(ALGOS))
def test_critic_converges_on_one_step_bandit(algo):
    """done = 1 everywhere: Q(s, a) must converge to the reward r(s, a) = s₀ + a₀ on the data."""
    g = torch.Generator().manual_seed(0)
    obs, act = torch.randn(1024, 4, generator=g), torch.rand(1024, 2, generator=g) * 2 - 1
    rew = obs[:, 0] + act[:, 0]
    kw = {"cql_weight": 0.0} if algo == "cql" else {}  # the conservative term biases Q on purpose
    m = ALGOS[algo](obs_dim=4, act_dim=2, task="maze2d-umaze", batch_size=128, steps_per_epoch=400, seed=0,
                    **{**SMALL[algo], "hidden": 64}, **kw)
    m.attach_data(Transitions(obs, act, rew, obs, torch.ones(1024)))
    if algo == "td3bc":
        m.hparams.critic_lr = 1e-3
    fit(m, epochs=2)
    with torch.no_grad():
        q1, q2 = m.critic(m.norm(obs), act)
    err = float(((q1 - rew) ** 2).mean())
    assert err < 0.05 * float(rew.var()), err
    np.testing.assert_allclose(q1.numpy(), q2.numpy(), atol=0.5)


def test_cql_follows_corl_order_and_initialisation():
    """CORL: the three losses come from the same actor, then temperature, actor and critic step (replayed here by
    hand, update by update, from a copy); the actor's log-std is m·out + b from m = 1, b = −1; log α' starts at 1;
    the temperature learns at the policy's rate."""
    m = make("cql", seed=4)
    ref = copy.deepcopy(m)
    assert m.actor.log_std_multiplier.item() == 1.0 and m.actor.log_std_offset.item() == -1.0
    assert m.log_alpha_prime.item() == 1.0 and m.hparams.alpha_lr == m.hparams.policy_lr == 3e-5
    fit(m)
    actor_opt, critic_opt, alpha_opt, _ = ref.configure_optimizers()
    for k in range(3):
        g = torch.Generator().manual_seed(4 * 1_000_003 + k)
        b = Transitions(*(t[None] for t in ref.sample_batch(g)))  # one seed: (1, B, ·)
        draws, temps = ref.draws(b, [g]), ref.temperatures()
        loss_a, log_pi = ref.actor_loss(b.obs, draws.pi, temps[0])
        loss_alpha = ref.alpha_loss(log_pi)
        loss_c, _ = ref.critic_loss(b, draws, *temps)
        for opt, loss in ((alpha_opt, loss_alpha), (actor_opt, loss_a), (critic_opt, loss_c)):
            opt.zero_grad()
            loss.backward()
            opt.step()
        polyak(ref.critic_target, ref.critic, ref.hparams.tau)
    for (k, v), w in zip(m.state_dict().items(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(v, w, msg=k)


def test_diffql_rolls_out_with_one_reverse_diffusion_sample():
    """Synthetic rollouts take one sample of the diffusion actor (the official DyDiff code), not the best of 50."""
    m = make("diffql", seed=1)
    calls = []
    m.actor.register_forward_pre_hook(lambda mod, args: calls.append(args[0].shape[-2]))  # states sampled for
    obs = torch.randn(7, 4)
    a = m.rollout_act(obs, True, torch.Generator().manual_seed(0))
    m.act(obs, True, torch.Generator().manual_seed(0))
    assert a.shape == (7, 2) and calls == [7, 7 * m.hparams.eval_samples]
    assert torch.equal(a, m.actor(m.norm(obs), torch.Generator().manual_seed(0)))


def test_cql_losses_equal_corls_formulas_computed_by_hand():
    """CORL's CQL (algorithms/offline/cql.py) on a planted critic Q(s, a) = s₀ + Σa² and a planted actor (every
    action 0.5, log π = −1), done = 1, importance sampling, T = 1, α' = 10, computed here in numpy."""
    m = make("cql", seed=0)
    b, n, d = 8, m.hparams.n_actions, 2
    q = lambda s, a: (s[..., 0] + (a**2).sum(-1))[:, None].expand(-1, 2, -1)  # noqa: E731  (K, 2, B)
    for net in (m.critic, m.critic_target):
        net.both = q
    m.actor.forward = lambda s, g=None, det=False, eps=None: (torch.full((*s.shape[:-1], d), 0.5),
                                                              torch.full(s.shape[:-1], -1.0))
    g = torch.Generator().manual_seed(0)
    obs, act, rew = torch.randn(b, 4, generator=g), torch.rand(b, d, generator=g) * 2 - 1, torch.randn(b, generator=g)
    batch = Transitions(*(t[None] for t in (obs, act, rew, obs, torch.ones(b))))  # one seed: (1, B, ·)
    draws = m.draws(batch, [torch.Generator().manual_seed(1)])
    loss, _ = m.critic_loss(batch, draws, *m.temperatures())
    rand = draws.rand[0].numpy().reshape(b, n, d)
    assert rand.min() >= -1 and rand.max() <= 1 and rand.std() > 0.5  # uniform on [−1, 1]: std 0.577
    s0, a, r = obs[:, 0].numpy().astype(np.float64), act.numpy().astype(np.float64), rew.numpy().astype(np.float64)
    q_data = s0 + (a**2).sum(-1)
    parts = np.concatenate([s0[:, None] + (rand**2).sum(-1) - d * np.log(0.5),  # random actions, density 0.5^d
                            np.repeat((s0 + 0.5) + 1.0, 2 * n).reshape(b, 2 * n)], 1)  # next and current: Q − log π
    gap = (np.log(np.exp(parts).sum(1)) - q_data).mean()
    expected = 2 * ((q_data - r) ** 2).mean() + 2 * 10.0 * gap  # qf1 + qf2 TD losses, α'·(gap1 + gap2)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    pi_loss, log_pi = m.actor_loss(obs[None], None, m.temperatures()[0])
    alpha_loss = m.alpha_loss(log_pi)
    assert float(pi_loss) == pytest.approx(float((1.0 * -1.0 - (s0 + 0.5)).mean()), rel=1e-5)  # α = e⁰
    assert float(alpha_loss) == pytest.approx(0.0) and m.target_entropy == -2.0  # log α = 0


@pytest.mark.parametrize("algo", list(ALGOS))
def test_three_seeds_as_one_model_equal_three_single_seed_runs(algo):
    """seeds [0, 1, 2] stacked: each seed starts from its single-seed run's weights, draws its batches, and after
    6 updates (TD3+BC: 3 actor steps) holds that run's parameters up to float rounding."""
    kw = dict(obs_dim=4, act_dim=2, task="maze2d-umaze", batch_size=32, steps_per_epoch=6, **SMALL[algo])
    many = ALGOS[algo].stacked([0, 1, 2], **kw)
    singles = [ALGOS[algo].stacked([s], **kw) for s in (0, 1, 2)]
    for m in (many, *singles):
        m.attach_data(random_data())
    for k, one in enumerate(singles):
        assert all(torch.equal(v, one.state_dict()[n]) for n, v in many.member_state(k).items())
        (_, batch), (_, own) = next(many.batches(0)), next(one.batches(0))
        many.updates = one.updates = 0
        assert all(torch.equal(a[k], b[0]) for a, b in zip(batch, own, strict=True))
    for m in (many, *singles):
        fit(m)
    for k, one in enumerate(singles):
        assert many.updates == one.updates == 6
        for n, v in many.member_state(k).items():
            torch.testing.assert_close(v, one.state_dict()[n], rtol=1e-5, atol=1e-6)
        obs = torch.randn(5, 4)
        g = lambda: torch.Generator().manual_seed(7)  # noqa: E731  (Diffusion-QL samples its actions)
        torch.testing.assert_close(many.act(obs, True, g(), member=k), one.act(obs, True, g()), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="distinct"):
        ALGOS[algo].stacked([1, 1], **kw)


def test_cql_loads_a_checkpoint_of_the_unstacked_layout():
    """CQL's earlier layout (the actor's net an MLP, scalar log-std affine, log α and log α' scalars) loads."""
    m = make("cql", seed=2)
    old = {}
    for name, v in m.state_dict().items():
        if name.startswith("actor.net.weights.") or name.startswith("actor.net.biases."):
            continue
        old[name] = v.reshape(()) if v.numel() == 1 and name.split(".")[-1].startswith("log_") else v
    linears = zip(m.actor.net.weights, m.actor.net.biases, strict=True)
    for i, (w, b) in enumerate(linears):
        old[f"actor.net.{2 * i}.weight"], old[f"actor.net.{2 * i}.bias"] = w[0].T, b[0, 0]
    assert old["log_alpha_prime"].shape == () and old["actor.log_std_offset"].shape == ()
    back = make("cql", seed=5)
    back.load_state_dict(old)
    obs = torch.randn(6, 4)
    for det in (True, False):
        g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
        assert torch.equal(back.act(obs, det, g()), m.act(obs, det, g()))
    assert torch.equal(back.log_alpha_prime, m.log_alpha_prime)


def test_td3bc_loads_a_checkpoint_of_separate_networks():
    """The earlier layout (actor = Sequential(mlp, Tanh), critic.q1 / critic.q2 MLPs) loads into the stacked
    networks and computes the same actions and values."""
    from dydiff.algos.networks import mlp

    m = make("td3bc")
    torch.manual_seed(3)
    actor, q1, q2 = torch.nn.Sequential(mlp(4, 2, 32, 2), torch.nn.Tanh()), mlp(6, 1, 32, 2), mlp(6, 1, 32, 2)
    old = {f"{p}.{k}": v for p, net in (("actor", actor), ("actor_target", actor), ("critic.q1", q1),
                                         ("critic.q2", q2), ("critic_target.q1", q1), ("critic_target.q2", q2))
           for k, v in net.state_dict().items()}
    m.load_state_dict({**old, "obs_mean": m.obs_mean, "obs_std": m.obs_std})
    obs, act = torch.randn(8, 4), torch.rand(8, 2)
    torch.testing.assert_close(m.policy_action(obs), actor(obs), rtol=1e-5, atol=1e-6)
    x = torch.cat([obs, act], -1)
    torch.testing.assert_close(m.critic_target.both(obs[None], act[None])[0],
                               torch.stack([q1(x)[:, 0], q2(x)[:, 0]]), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("algo,extra", [("td3bc", {}), ("cql", {"lagrange": True}), ("diffql", {})])
def test_compiled_losses_give_the_eager_parameters(algo, extra):
    """compile=true: the same 6 updates of 2 stacked seeds as eager, to float rounding (torch.compile fuses and
    reorders); the losses take their random draws as inputs, so both runs see the same ones."""
    kw = dict(obs_dim=4, act_dim=2, task="maze2d-umaze", batch_size=32, steps_per_epoch=6, hidden=16, **extra)
    eager, compiled = ALGOS[algo].stacked([0, 1], **kw), ALGOS[algo].stacked([0, 1], compile=True, **kw)
    for m in (eager, compiled):
        m.attach_data(random_data())
        fit(m)
    assert compiled.fns.critic_loss is not compiled.critic_loss  # the compiled wrapper ran
    start = dict(ALGOS[algo].stacked([0, 1], **kw).named_parameters())
    for n, v in eager.state_dict().items():
        torch.testing.assert_close(compiled.state_dict()[n], v, rtol=1e-4, atol=1e-5)
    for n, v in eager.named_parameters():
        assert not v.requires_grad or not torch.equal(v, start[n]), n  # it trained: not untouched weights compared


@pytest.mark.parametrize("act,orthogonal", [(torch.nn.ReLU, False), (torch.nn.Mish, False), (torch.nn.ReLU, True)])
def test_fused_twin_critics_equal_two_separate_mlps(act, orthogonal):
    """TwinQ (CQL, Diffusion-QL, the built-in SAC) is one Stacked network: under the same seed it starts from the
    weights two separate MLPs would have, and gives their values and gradients; their checkpoints load into it."""
    from dydiff.algos.networks import TwinQ, mlp

    torch.manual_seed(5)
    twin = TwinQ(4, 2, 32, 3, act, orthogonal)
    torch.manual_seed(5)
    q1, q2 = (mlp(6, 1, 32, 3, act, orthogonal) for _ in range(2))
    obs, a = torch.randn(16, 4), torch.rand(16, 2) * 2 - 1
    x = torch.cat([obs, a], -1)
    got, want = twin(obs, a), (q1(x)[:, 0], q2(x)[:, 0])
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
    (got[0].square().mean() + 3 * got[1].mean()).backward()
    (want[0].square().mean() + 3 * want[1].mean()).backward()
    linears = [[m for m in q if isinstance(m, torch.nn.Linear)] for q in (q1, q2)]
    for i, (w, b) in enumerate(zip(twin.weights, twin.biases, strict=True)):
        for k in range(2):
            torch.testing.assert_close(w.grad[k].T, linears[k][i].weight.grad, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(b.grad[k, 0], linears[k][i].bias.grad, rtol=1e-4, atol=1e-6)
    old = {f"q{k + 1}.{n}": v for k, q in enumerate((q1, q2)) for n, v in q.state_dict().items()}
    fresh = TwinQ(4, 2, 32, 3, act, orthogonal)
    fresh.load_state_dict(old)
    for g, w in zip(fresh(obs, a), want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_diffql_loads_a_checkpoint_of_the_unstacked_layout():
    """Diffusion-QL's earlier actor (its time embedding and ε network nn.Sequential MLPs) loads, for the actor and
    its EMA copy, and samples the same actions."""
    m = make("diffql", seed=2)
    old = {}
    for name, v in m.state_dict().items():
        head, _, tail = name.rpartition(".")
        if head.endswith((".weights", ".biases")) and name.startswith("actor"):
            i = int(tail)
            old[f"{head.rsplit('.', 1)[0]}.{2 * i}.{'weight' if head.endswith('weights') else 'bias'}"] = \
                v[0].T if head.endswith("weights") else v[0, 0]
        else:
            old[name] = v
    assert "actor.time.2.weight" in old and "actor_ema.net.6.bias" in old
    back = make("diffql", seed=5)
    back.load_state_dict(old)
    obs, g = torch.randn(6, 4), lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert torch.equal(back.act(obs, False, g()), m.act(obs, False, g()))


def test_per_member_gradient_clipping_equals_torch_per_run():
    """clip_grad_norm over K runs stacked along dim 0 scales each run's gradients as torch's clip_grad_norm_ scales
    that run's alone: run 0's norm is above the limit, run 1's below (left unchanged)."""
    from dydiff.algos.optim import clip_grad_norm

    g = torch.Generator().manual_seed(0)
    runs = [[torch.randn(3, 4, generator=g) * s, torch.randn(3, generator=g) * s] for s in (5.0, 0.01)]
    stacked = [torch.nn.Parameter(torch.cat([r[i] for r in runs])) for i in range(2)]  # rows 0-2: run 0
    for p, i in zip(stacked, range(2), strict=True):
        p.grad = torch.cat([r[i] for r in runs]).clone()
    clip_grad_norm(stacked, 1.0, members=2)
    for k, r in enumerate(runs):
        ps = [torch.nn.Parameter(torch.zeros_like(t)) for t in r]
        for p, t in zip(ps, r, strict=True):
            p.grad = t.clone()
        torch.nn.utils.clip_grad_norm_(ps, 1.0)
        for p, s in zip(ps, stacked, strict=True):
            torch.testing.assert_close(s.grad[3 * k:3 * (k + 1)], p.grad, rtol=1e-6, atol=1e-7)
    assert torch.equal(stacked[1].grad[3:], runs[1][1])  # below the limit: untouched
    norm0 = torch.cat([s.grad[:3].flatten() for s in stacked]).norm()
    assert float(norm0) == pytest.approx(1.0, rel=1e-5)
