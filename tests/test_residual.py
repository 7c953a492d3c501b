"""kind=residual: a regressor μ(s_0, a), then an EDM on the standardised residual (dydiff/diffusion/trajectory.py)."""

import warnings

import numpy as np
import pytest
import torch
from test_pretrain_models import attach_windows, denoiser, train

from dydiff.data.dataset import OfflineDataset
from dydiff.data.windows import TrajectoryWindows
from dydiff.diffusion.trajectory import TrajectoryModel

warnings.filterwarnings("ignore", message=".*self.log.*")

A = np.diag([0.9, 0.8, 0.7, 0.95])
B = np.array([[0.5, 0.0], [0.0, 0.5], [0.3, -0.3], [0.0, 0.0]])
NOISE = np.array([0.10, 0.20, 0.10, 0.15])  # process noise std per state dimension


def gaussian_system(episodes=400, length=12, seed=0):
    """s' = A s + B a + w, w ~ N(0, diag(NOISE²)), uniform actions: given s_0 and a_0..a_{t−1}, s_t is Gaussian
    with mean A^t s_0 + Σ_i A^{t−1−i} B a_i and (A diagonal) per-dimension variance Σ_{i<t} A^{2i} NOISE²."""
    rng = np.random.default_rng(seed)
    obs, act, nxt = [], [], []
    for _ in range(episodes):
        s = rng.uniform(-1, 1, 4)
        for _ in range(length):
            a = rng.uniform(-1, 1, 2)
            s2 = A @ s + B @ a + NOISE * rng.normal(size=4)
            obs.append(s), act.append(a), nxt.append(s2)
            s = s2
    n = episodes * length
    timeouts = np.zeros(n, bool)
    timeouts[length - 1 :: length] = True
    obs, act, nxt = (np.asarray(x, np.float32) for x in (obs, act, nxt))
    arrays = {"observations": obs, "actions": act, "rewards": obs[:, 0].copy(), "next_observations": nxt,
              "terminals": np.zeros(n, bool), "timeouts": timeouts}
    return OfflineDataset.from_arrays(arrays, "maze2d-umaze", "linear-gaussian")


def analytic(s0: np.ndarray, actions: np.ndarray):
    mean, var, s, v = [s0], [np.zeros(4)], s0.copy(), np.zeros(4)
    for a in actions:
        s, v = A @ s + B @ a, np.diag(A) ** 2 * v + NOISE**2
        mean.append(s), var.append(v)
    return np.stack(mean), np.stack(var)


def residual_module(w, mean_steps, **kw):
    return denoiser(w, "residual", mean_steps=mean_steps, **kw)


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    w = TrajectoryWindows(gaussian_system(), 4)
    module = residual_module(w, 800, batch_size=128, lr=2e-3)
    attach_windows(module, w)
    train(module, 1600)
    return w, module.model.eval()


def test_samples_have_the_analytic_conditional_mean_and_spread(trained):
    """A linear-Gaussian system: the residual model's samples for one (s_0, a) match the known conditional
    mean and per-dimension standard deviation at every step."""
    _, model = trained
    s0, actions = np.array([0.3, -0.5, 0.2, 0.6]), np.array([[0.8, -0.2], [-0.6, 0.4], [0.1, 0.9], [-0.9, -0.7]])
    mean, var = analytic(s0, actions)
    n = 4000
    x = model.sample(torch.tensor(s0, dtype=torch.float32).expand(n, 4),
                     torch.tensor(actions, dtype=torch.float32).expand(n, 4, 2),
                     torch.Generator().manual_seed(0), num_steps=18).double().numpy()
    true_std = np.sqrt(var[1:])
    assert (np.abs(x[:, 1:].mean(0) - mean[1:]) / true_std).max() < 0.5  # measured 0.34
    ratio = x[:, 1:].std(0) / true_std
    assert ((ratio > 0.85) & (ratio < 1.2)).all(), ratio  # measured 1.04-1.13
    # μ alone has no spread, and is further from the mean than the samples' mean (the EDM corrects it)
    mu = model.mean(model.conditions(torch.tensor(s0[None], dtype=torch.float32),
                                     torch.tensor(actions[None], dtype=torch.float32)))
    mu = model.denormalize(mu)[0, 1:, :4].detach().double().numpy()
    assert (np.abs(mu - mean[1:]) / true_std).max() < 1.0  # measured 0.67


def test_s0_and_the_conditions_are_exact_and_chunking_changes_nothing(trained):
    w, model = trained
    x, _ = w[torch.arange(10)]
    raw = w.normalizer.denormalize(x.double()).float()
    s0, actions = raw[:, 0, :4], raw[:, :-1, 4:]
    a = model.sample(s0, actions, torch.Generator().manual_seed(5), num_steps=6)
    b = model.sample(s0, actions, torch.Generator().manual_seed(5), num_steps=6, chunk=3)
    assert torch.equal(a[:, 0], s0) and torch.equal(b[:, 0], s0)
    assert torch.allclose(a, b, atol=1e-5)  # the same noise; batch shapes change only the GEMMs' rounding
    c = model.sample(s0, actions, torch.Generator().manual_seed(6), num_steps=6)
    assert not torch.allclose(a[:, 1:], c[:, 1:])  # fresh noise: a stochastic model
    mu = model.mean(x)
    z = model.to_residual(x, mu)
    mask = model.cond_mask.expand_as(x)
    assert torch.equal(z[mask], x[mask]) and torch.equal(model.from_residual(z, mu)[mask], x[mask])
    assert torch.allclose(model.from_residual(z, mu), x, atol=1e-5)
    avg = model.sample(s0, actions, torch.Generator().manual_seed(5), num_steps=6, average=2)
    first, second = a, model.sample(s0, actions, _second_draw(5, model, s0, actions), num_steps=6)
    assert torch.allclose(avg[:, 1:], (first[:, 1:] + second[:, 1:]) / 2, atol=1e-5)


def _second_draw(seed, model, s0, actions):
    g = torch.Generator().manual_seed(seed)
    model.sample(s0, actions, g, num_steps=6)  # the first sample's draws
    return g


def test_weights_only_reload_gives_identical_samples(trained, tmp_path):
    w, model = trained
    torch.save(model.state_dict(), tmp_path / "m.pt")
    other = TrajectoryModel(4, 2, 4, w.normalizer.center.tolist(), w.normalizer.scale.tolist(), kind="residual",
                            network="mlp", network_kwargs={"mlp": {"width": 128, "depth": 2}})
    other.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    x, _ = w[torch.arange(4)]
    raw = w.normalizer.denormalize(x.double()).float()
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert torch.equal(model.sample(raw[:, 0, :4], raw[:, :-1, 4:], g(), num_steps=5),
                       other.eval().sample(raw[:, 0, :4], raw[:, :-1, 4:], g(), num_steps=5))
    assert torch.equal(other.rho, model.rho) and not torch.equal(other.rho, torch.ones_like(other.rho))


def test_rho_is_the_residual_rms_per_entry_or_global():
    w = TrajectoryWindows(gaussian_system(episodes=20), 4)
    model = residual_module(w, 1).model
    x, valid = w[torch.arange(len(w))]
    model.mean = lambda c: torch.where(model.cond_mask.expand_as(c), c, 0.0)  # μ = 0 on the states
    model.fit_residual(x, valid)
    states = x[:, 1:, :4]
    assert torch.allclose(model.rho[1:, :4], states.pow(2).mean(0).sqrt(), atol=1e-6)
    assert torch.equal(model.rho[0], torch.ones(6)) and torch.equal(model.rho[:, 4:], torch.ones(5, 2))
    model.residual_scale = "global"
    model.fit_residual(x, valid)
    assert torch.allclose(model.rho[1:, :4], states.pow(2).mean().sqrt().expand(4, 4), atol=1e-6)


def test_phases_train_one_network_each_and_the_idle_one_never_moves():
    w = TrajectoryWindows(gaussian_system(episodes=20), 4)
    module = residual_module(w, 3)
    attach_windows(module, w)
    opt = module.configure_optimizers()
    snap = lambda net: [p.detach().clone() for p in net.parameters()]  # noqa: E731
    for step in range(6):
        mean_before, edm_before = snap(module.model.mean_net), snap(module.model.net)
        opt.zero_grad()
        module.training_step(step).backward()
        for p in module.parameters():  # as DDP may leave them: zeros where the graph did not reach
            p.grad = torch.zeros_like(p) if p.grad is None else p.grad
        module.on_before_optimizer_step(opt)
        opt.step()
        module.on_train_batch_end()
        mean_moved, edm_moved = (any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
                                 for before, net in ((mean_before, module.model.mean_net),
                                                     (edm_before, module.model.net)))
        assert (mean_moved, edm_moved) == ((True, False) if step < 3 else (False, True)), step
        if step == 2:
            assert torch.equal(module.model.rho, torch.ones_like(module.model.rho))
    assert not torch.equal(module.model.rho, torch.ones_like(module.model.rho))  # measured at update 3


def test_residual_needs_its_mean_phase():
    w = TrajectoryWindows(gaussian_system(episodes=5), 4)
    with pytest.raises(ValueError, match="mean_steps"):
        residual_module(w, 0)
    with pytest.raises(ValueError, match="residual_scale"):
        residual_module(w, 1, residual_scale="perdim")
