"""Networks of the offline RL algorithms: MLPs, twin critics, a tanh-Gaussian actor and a diffusion actor."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def mlp(d_in: int, d_out: int, hidden: int = 256, layers: int = 2, act=nn.ReLU, orthogonal: bool = False,
        small_last: bool = False):
    """An MLP. ``orthogonal``: CORL's orthogonal initialisation (gain √2, the last layer 1e-2); ``small_last``:
    CORL's default otherwise, PyTorch's init with the last layer Xavier-uniform at gain 1e-2."""
    dims = [d_in] + [hidden] * layers
    mods = [m for a, b in zip(dims[:-1], dims[1:], strict=True) for m in (nn.Linear(a, b), act())]
    net = nn.Sequential(*mods, nn.Linear(dims[-1], d_out))
    if orthogonal:  # CORL's CQL initialisation
        for m in net:
            if isinstance(m, nn.Linear):
                nn.init.orthogonal_(m.weight, gain=math.sqrt(2))
                nn.init.zeros_(m.bias)
        nn.init.orthogonal_(net[-1].weight, gain=1e-2)
    elif small_last:
        nn.init.xavier_uniform_(net[-1].weight, gain=1e-2)
        nn.init.zeros_(net[-1].bias)
    return net


class Stacked(nn.Module):
    """n MLPs made by ``mlp`` with their parameters stacked, run as one batched GEMM chain (``baddbmm``):
    (B, in) for every member or (n, B, in) one input per member → (n, B, out). Member i keeps the initial
    weights ``nets[i]`` was given, so it computes what ``nets[i]`` computes up to float rounding. A twin critic is
    n = 2; K seeds' actors are n = K and their twin critics n = 2K (seed k's are members 2k, 2k + 1).

    ``legacy``: the key prefix of each member in a checkpoint of separate ``nn.Sequential`` MLPs (e.g.
    ``["q1.", "q2."]``); such checkpoints load into the stacked layout."""

    def __init__(self, nets: list[nn.Sequential], out_act: nn.Module | None = None, legacy: list[str] = ()):
        super().__init__()
        linears = [[m for m in net if isinstance(m, nn.Linear)] for net in nets]
        self.weights = nn.ParameterList(nn.Parameter(torch.stack([ls[i].weight.detach().T for ls in linears]))
                                        for i in range(len(linears[0])))  # (n, in, out)
        self.biases = nn.ParameterList(nn.Parameter(torch.stack([ls[i].bias.detach()[None] for ls in linears]))
                                       for i in range(len(linears[0])))  # (n, 1, out)
        self.act = next(m for m in nets[0] if not isinstance(m, nn.Linear))
        self.out_act = out_act
        self.legacy = list(legacy)
        if self.legacy:
            self._register_load_state_dict_pre_hook(self._stack_legacy)

    def forward(self, x: torch.Tensor, members: slice = slice(None)) -> torch.Tensor:
        w0 = self.weights[0][members]
        h = x.expand(len(w0), *x.shape) if x.dim() == 2 else x
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b[members], h, w[members])
            if i < len(self.weights) - 1:
                h = self.act(h)
        return self.out_act(h) if self.out_act is not None else h

    def _stack_legacy(self, state_dict, prefix, *args):
        first = f"{prefix}{self.legacy[0]}"
        index = sorted({int(k[len(first):].split(".")[0]) for k in state_dict
                        if k.startswith(first) and k.endswith(".weight")})
        for i, j in enumerate(index):
            w = [state_dict.pop(f"{prefix}{m}{j}.weight").T for m in self.legacy]
            b = [state_dict.pop(f"{prefix}{m}{j}.bias")[None] for m in self.legacy]
            state_dict[f"{prefix}weights.{i}"], state_dict[f"{prefix}biases.{i}"] = torch.stack(w), torch.stack(b)


class TwinQ(Stacked):
    """Twin critics Q₁, Q₂ as one ``Stacked`` network, from one batched GEMM chain: (obs, act) of (B, ·) →
    (Q₁, Q₂), each (B,); ``both`` takes K seeds' (K, B, ·) when the twins of K seeds are stacked (2K members,
    seed k's are 2k, 2k + 1) → (K, 2, B). Initialised as two ``mlp`` critics built one after the other;
    checkpoints of that earlier layout (``q1.*``, ``q2.*``) load."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, layers: int = 2, act=nn.ReLU,
                 orthogonal: bool = False):
        super().__init__([mlp(obs_dim + act_dim, 1, hidden, layers, act, orthogonal) for _ in range(2)],
                         legacy=["q1.", "q2."])

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = super().forward(torch.cat([obs, act], -1))[..., 0]
        return q[0], q[1]

    def both(self, obs: torch.Tensor, act: torch.Tensor, seeds: slice = slice(None)) -> torch.Tensor:
        """``seeds``: which seeds' twins (a contiguous slice; by default all), one (B, ·) batch each."""
        x = torch.cat([obs, act], -1)
        twins = seeds if seeds == slice(None) else slice(2 * seeds.start, 2 * seeds.stop)
        return super().forward(x.repeat_interleave(2, 0), twins)[..., 0].view(len(x), 2, -1)

    def q1(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Every seed's Q₁ alone on its own (K, B, ·) batch: (K, B)."""
        return super().forward(torch.cat([obs, act], -1), slice(0, None, 2))[..., 0]


def load_scalars_as(module: nn.Module, names: tuple[str, ...], shape: tuple[int, ...]) -> None:
    """Checkpoints of the layout before seeds stacked hold ``names`` (parameters of ``module``) as 0-dim tensors:
    reshape them to ``shape`` when such a state_dict loads."""
    def hook(state_dict, prefix, *args):
        for name in names:
            if (v := state_dict.get(prefix + name)) is not None and v.dim() == 0:
                state_dict[prefix + name] = v.reshape(shape)

    module._register_load_state_dict_pre_hook(hook)


def normal(shape: tuple, generator, device) -> torch.Tensor:
    """Standard normal draws of ``shape``; with a list of K generators (one per seed), (K, *shape[1:]) with member
    k's drawn from generator k, as its single-seed run draws them."""
    if isinstance(generator, list | tuple):
        return torch.stack([torch.randn(shape[1:], generator=g, device=device) for g in generator])
    return torch.randn(shape, generator=generator, device=device)


class TanhGaussianActor(nn.Module):
    """SAC's actor: a = tanh(μ + σ·ε); log-probabilities with the tanh change of variables. The network is
    ``Stacked``: observations (B, ·) run one member (``members``: which), (K, B, ·) each of K stacked members
    (K seeds' actors) on its own batch; ``generator`` may then be a list of K (each seed's noise)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, layers: int = 2, orthogonal: bool = False,
                 log_std_min: float = -20.0, log_std_max: float = 2.0, log_std_affine: bool = False,
                 small_last: bool = False):
        """``log_std_affine``: CORL's CQL actor, log σ = m·net + b with a learnable m (from 1) and b (from −1), one
        (1, 1, 1) pair per member. Checkpoints of the earlier layout (``net`` an MLP, m and b scalars) load."""
        super().__init__()
        self.net = Stacked([mlp(obs_dim, 2 * act_dim, hidden, layers, orthogonal=orthogonal, small_last=small_last)],
                           legacy=[""])
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        if log_std_affine:
            self.log_std_multiplier = nn.Parameter(torch.ones(1, 1, 1))
            self.log_std_offset = nn.Parameter(torch.full((1, 1, 1), -1.0))
            load_scalars_as(self, ("log_std_multiplier", "log_std_offset"), (1, 1, 1))

    def mean_log_std(self, obs: torch.Tensor, members: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        flat = obs.dim() == 2
        mean, log_std = self.net(obs[None] if flat else obs, members).chunk(2, -1)
        if hasattr(self, "log_std_offset"):
            log_std = self.log_std_multiplier[members] * log_std + self.log_std_offset[members]
        log_std = log_std.clamp(self.log_std_min, self.log_std_max)
        return (mean[0], log_std[0]) if flat else (mean, log_std)

    def forward(self, obs: torch.Tensor, generator=None, deterministic: bool = False, members: slice = slice(None),
                eps: torch.Tensor | None = None):
        """(action, log π(action|obs)); the deterministic action is tanh(μ). ``eps``: the standard normal draws,
        drawn beforehand (``generator`` is then unused), so that the call is a pure function for torch.compile."""
        mean, log_std = self.mean_log_std(obs, members)
        if deterministic:
            return torch.tanh(mean), None
        eps = (normal(mean.shape, generator, mean.device) if eps is None else eps).to(mean.dtype)
        pre = mean + log_std.exp() * eps
        log_prob = (-0.5 * eps**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - pre - F.softplus(-2 * pre))).sum(-1)
        return torch.tanh(pre), log_prob

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        mean, log_std = self.mean_log_std(obs)
        pre = torch.atanh(action.clamp(-1 + 1e-6, 1 - 1e-6))
        lp = (-0.5 * ((pre - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        return lp - (2 * (math.log(2) - pre - F.softplus(-2 * pre))).sum(-1)


def vp_betas(steps: int, b_min: float = 0.1, b_max: float = 10.0) -> torch.Tensor:
    """Diffusion-QL's variance-preserving schedule, discretised to ``steps`` steps."""
    t = torch.arange(1, steps + 1, dtype=torch.float64)
    alpha = torch.exp(-b_min / steps - 0.5 * (b_max - b_min) * (2 * t - 1) / steps**2)
    return (1 - alpha).float()


class DiffusionActor(nn.Module):
    """Diffusion-QL's actor: a DDPM over actions conditioned on the state; ε-prediction MLP (3×256 Mish). Its time
    embedding and ε network are ``Stacked``: observations (B, ·) run one member (``members``), (K, B, ·) each of K
    stacked members (K seeds' actors) on its own batch, with ``generator`` a list of K (each seed's draws)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, steps: int = 5, t_dim: int = 16):
        super().__init__()
        self.act_dim, self.steps = act_dim, steps
        half = t_dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000) * torch.arange(half) / (half - 1)))
        self.time = Stacked([nn.Sequential(nn.Linear(t_dim, t_dim * 2), nn.Mish(), nn.Linear(t_dim * 2, t_dim))],
                            legacy=[""])
        self.net = Stacked([mlp(obs_dim + act_dim + t_dim, act_dim, hidden, 3, act=nn.Mish)], legacy=[""])
        betas = vp_betas(steps)
        alphas_bar = torch.cumprod(1 - betas, 0)
        self.register_buffer("betas", betas)
        self.register_buffer("alphas_bar", alphas_bar)
        prev = torch.cat([torch.ones(1), alphas_bar[:-1]])
        self.register_buffer("post_var", betas * (1 - prev) / (1 - alphas_bar))
        self.register_buffer("coef_x0", betas * prev.sqrt() / (1 - alphas_bar))
        self.register_buffer("coef_xt", (1 - prev) * (1 - betas).sqrt() / (1 - alphas_bar))

    def eps(self, a: torch.Tensor, t: torch.Tensor, obs: torch.Tensor, members: slice = slice(None)) -> torch.Tensor:
        """ε_θ(a_t, t, s) on (K, B, ·) inputs, t (K, B)."""
        emb = t.float()[..., None] * self.freqs
        return self.net(torch.cat([a, self.time(torch.cat([emb.sin(), emb.cos()], -1), members), obs], -1), members)

    def loss_draws(self, g: torch.Generator, batch: int) -> list[torch.Tensor]:
        """One member's draws of ``loss`` from generator ``g``, in its order: the steps t (B,), the noise ε (B, a)."""
        return [torch.randint(self.steps, (batch,), generator=g, device=self.freqs.device),
                torch.randn(batch, self.act_dim, generator=g, device=self.freqs.device)]

    def sample_draws(self, g: torch.Generator, batch: int) -> list[torch.Tensor]:
        """One member's draws of ``forward`` from generator ``g``, in its order: a_T, then one per step > 0."""
        return [torch.randn(batch, self.act_dim, generator=g, device=self.freqs.device) for _ in range(self.steps)]

    def loss(self, obs: torch.Tensor, action: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The behaviour-cloning term ‖ε − ε_θ(√ᾱ_t·a + √(1−ᾱ_t)·ε, t, s)‖², per member (K,) for (K, B, ·) inputs
        (a scalar for one member's (B, ·)); t and ε drawn beforehand (``loss_draws``), (K, B) and (K, B, a)."""
        flat = obs.dim() == 2
        obs, action, t, noise = (x[None] for x in (obs, action, t, noise)) if flat else (obs, action, t, noise)
        noise = noise.to(action.dtype)
        ab = self.alphas_bar[t][..., None]
        loss = (self.eps(ab.sqrt() * action + (1 - ab).sqrt() * noise, t, obs) - noise).pow(2).mean((1, 2))
        return loss[0] if flat else loss

    def forward(self, obs: torch.Tensor, generator=None, members: slice = slice(None), noise=None) -> torch.Tensor:
        """Sample actions by the reverse process (differentiable: Diffusion-QL backpropagates Q through it).
        ``noise``: its ``steps`` standard normal draws (each (K, B, a), ``sample_draws``' order), drawn beforehand."""
        flat = obs.dim() == 2
        obs = obs[None] if flat else obs
        shape = (*obs.shape[:2], self.act_dim)
        draw = (lambda j: normal(shape, generator, obs.device)) if noise is None else noise.__getitem__  # noqa: E731
        a = draw(0).to(obs.dtype)
        for i in reversed(range(self.steps)):
            t = torch.full(shape[:2], i, device=obs.device, dtype=torch.long)
            ab = self.alphas_bar[i]
            x0 = ((a - (1 - ab).sqrt() * self.eps(a, t, obs, members)) / ab.sqrt()).clamp(-1, 1)
            a = self.coef_x0[i] * x0 + self.coef_xt[i] * a
            if i > 0:
                a = a + self.post_var[i].sqrt() * draw(self.steps - i).to(a.dtype)
        a = a.clamp(-1, 1)
        return a[0] if flat else a
