"""Gymnasium's planar locomotion envs (Hopper, Walker2d, HalfCheetah; v5) stepped from B states at once.

The oracle (``synth=real_env``) steps B_r = 2048 starts × L = 64 steps a round. One ``env.step`` at a time costs
about twice the physics; ``step_many`` makes the physics of all B one call of MuJoCo's rollout (``frame_skip``
substeps each, the control held) and the rest of Gymnasium's step array expressions
(gymnasium/envs/mujoco/{hopper,walker2d,half_cheetah}_v5.py, with the env's own weights and ranges):

    x_velocity = (qpos'[0] − qpos[0]) / dt
    healthy    = z ∈ healthy_z_range ∧ angle ∈ healthy_angle_range [∧ (qpos' ‖ qvel')[2:] ∈ healthy_state_range]
    reward     = forward_reward_weight · x_velocity + healthy_reward · healthy − ctrl_cost_weight · ‖a‖²
    terminated = terminate_when_unhealthy ∧ ¬healthy            (HalfCheetah: no health, never terminates)
    obs        = qpos'[1:] ‖ clip(qvel', ±velocity_clip)        (HalfCheetah: unclipped)

Only the constraint solver's warm start differs: zero at every step here, the last substep's in ``env.step``. A state
moves by ~1e-13 a step; 64 steps of contact amplify that to ~1e-12 on Hopper and Walker2d, ~1e-4 on HalfCheetah.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import mujoco.rollout
import numpy as np

ENVS = ("HopperEnv", "Walker2dEnv", "HalfCheetahEnv")


def supports(env: gym.Env) -> bool:
    """Whether ``step_many`` reproduces ``env``'s step: one of ``ENVS`` whose observation drops the x position."""
    u = env.unwrapped
    return type(u).__name__ in ENVS and bool(getattr(u, "_exclude_current_positions_from_observation", False))


def step_many(env: gym.Env, qpos: np.ndarray, qvel: np.ndarray, action: np.ndarray, velocity_clip: float | None):
    """One ``env.step`` from each of B states (qpos (B, nq), qvel (B, nv)) with actions (B, nu): the next qpos, qvel,
    observation, reward and termination, each with B rows (float64 / bool). ``env`` itself is not moved."""
    u, b = env.unwrapped, len(qpos)
    m = u.model
    nq, nv = m.nq, m.nv
    state = np.zeros((b, mujoco.mj_stateSize(m, mujoco.mjtState.mjSTATE_FULLPHYSICS)))  # time, qpos, qvel, act
    state[:, 1 : 1 + nq], state[:, 1 + nq : 1 + nq + nv] = qpos, qvel
    a = np.asarray(action, np.float64)
    out, _ = mujoco.rollout.rollout(m, mujoco.MjData(m), state, np.repeat(a[:, None], u.frame_skip, 1),
                                    initial_warmstart=np.zeros((1, nv)))
    q, v = out[:, -1, 1 : 1 + nq], out[:, -1, 1 + nq : 1 + nq + nv]
    obs = np.concatenate([q[:, 1:], v if velocity_clip is None else np.clip(v, -velocity_clip, velocity_clip)], 1)
    reward = u._forward_reward_weight * (q[:, 0] - qpos[:, 0]) / u.dt - u._ctrl_cost_weight * np.square(a).sum(1)
    if not hasattr(u, "_healthy_z_range"):  # HalfCheetah
        return q, v, obs, reward, np.zeros(b, bool)
    (z0, z1), (a0, a1) = u._healthy_z_range, u._healthy_angle_range
    healthy = (z0 < q[:, 1]) & (q[:, 1] < z1) & (a0 < q[:, 2]) & (q[:, 2] < a1)
    if hasattr(u, "_healthy_state_range"):  # Hopper
        s0, s1 = u._healthy_state_range
        rest = np.concatenate([q, v], 1)[:, 2:]
        healthy &= np.all((s0 < rest) & (rest < s1), 1)
    return q, v, obs, reward + u._healthy_reward * healthy, ~healthy & bool(u._terminate_when_unhealthy)
