"""Samplers of generative models: diffusion, flows, VAE/GAN latents, autoregressive; metrics.

Each module holds one family; see its docstring for the algorithm.  Everything is jit-compiled
and batched over samples.
"""

from mcgen.generative.autoregressive import sample_autoregressive, sample_token, top_k_filter, top_p_filter
from mcgen.generative.diffusion import METHODS, sample_diffusion, time_grid
from mcgen.generative.dpm_solver import dpm_solver_multistep
from mcgen.generative.flows import flow_log_prob, sample_flow, sample_flow_rejection
from mcgen.generative.gmm import gmm_eps_fn, gmm_log_prob, gmm_noised_score_fn, gmm_sample, gmm_score
from mcgen.generative.latents import interpolate, lerp, sample_prior, slerp, truncated_prior, truncation_trick
from mcgen.generative.metrics import energy_distance, knn_precision_recall, median_bandwidth, mmd_rbf
from mcgen.generative.parameterization import (
    eps_fn_to_score_fn,
    eps_fn_to_x0_fn,
    eps_to_score,
    eps_to_x0,
    score_fn_to_eps_fn,
    score_to_eps,
    x0_fn_to_eps_fn,
    x0_to_eps,
)
from mcgen.generative.schedules import NoiseSchedule, cosine_schedule, linear_schedule

__all__ = [
    # diffusion
    "METHODS",
    "sample_diffusion",
    "time_grid",
    "dpm_solver_multistep",
    "NoiseSchedule",
    "linear_schedule",
    "cosine_schedule",
    "eps_to_x0",
    "x0_to_eps",
    "eps_to_score",
    "score_to_eps",
    "score_fn_to_eps_fn",
    "x0_fn_to_eps_fn",
    "eps_fn_to_score_fn",
    "eps_fn_to_x0_fn",
    # analytic Gaussian mixtures
    "gmm_eps_fn",
    "gmm_noised_score_fn",
    "gmm_log_prob",
    "gmm_score",
    "gmm_sample",
    # flows
    "sample_flow",
    "sample_flow_rejection",
    "flow_log_prob",
    # VAE / GAN latents
    "sample_prior",
    "lerp",
    "slerp",
    "interpolate",
    "truncation_trick",
    "truncated_prior",
    # autoregressive
    "sample_autoregressive",
    "sample_token",
    "top_k_filter",
    "top_p_filter",
    # metrics
    "mmd_rbf",
    "energy_distance",
    "knn_precision_recall",
    "median_bandwidth",
]
