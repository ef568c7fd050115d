"""Plant known bugs in a copy of mcgen and check that the statistical tests catch each one.

Usage: python tools/planted_bugs.py [--list | --check] [--first] [bug ...]

``--check`` only confirms that every bug's pattern still occurs in its file (run it after a
refactor or a reformat: a pattern that no longer matches is a bug the harness silently stops
planting).  ``--first`` stops each bug's tests at the first failure (``pytest -x``): enough for
the verdict, and much faster when rerunning the whole list.

Each bug is a (file, old, new) substitution applied to a fresh copy of ``mcgen/``, ``tests/``
and ``benchmarks/`` (the reference models) in a temporary directory; pytest runs there, so the
planted copy shadows the installed package and **the working tree is never edited**.  (Plant new bugs by adding them
here, never by editing the shared sources: an experiment left behind gets committed.)  The
listed tests must FAIL with the bug in place.  Prints one line per bug: how many of the
selected tests failed, and which.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]

BUGS = {
    "flipped_ratio": (
        "mcgen/kernels/_proposal.py",
        "proposal_logdensity - logdensity, proposal_logdensity",
        "logdensity - proposal_logdensity, proposal_logdensity",
        "tests/kernels/test_metropolis.py -k 'rwmh or adaptive'",
    ),
    "tempered_ratio": (
        "mcgen/kernels/_proposal.py",
        "proposal_logdensity - logdensity, proposal_logdensity",
        "0.7 * (proposal_logdensity - logdensity), proposal_logdensity",
        "tests/kernels/test_metropolis.py -k 'rwmh or adaptive'",
    ),
    "asymmetric_proposal": (
        "mcgen/kernels/_proposal.py",
        "proposal = unravel(flat + perturb(noise))",
        "proposal = unravel(flat + perturb(noise + 0.3))",
        "tests/kernels/test_metropolis.py -k 'rwmh or adaptive'",
    ),
    # adaptive Metropolis that learns only the scales, not the correlations
    "adaptive_mh_diagonal_only": (
        "mcgen/kernels/adaptive_mh.py",
        "jnp.sqrt(2.38**2 / d) * jnp.linalg.cholesky(cov)",
        "jnp.sqrt(2.38**2 / d) * jnp.diag(jnp.sqrt(jnp.diag(cov)))",
        "tests/kernels/test_metropolis.py -k learns_covariance",
    ),
    "imh_no_q_correction": (
        "mcgen/kernels/independent_mh.py",
        "(logdensity_y - log_q_y) - (state.logdensity - state.proposal_logdensity)",
        "logdensity_y - state.logdensity",
        "tests/kernels/test_metropolis.py -k independent",
    ),
    # gradient kernels (issue 3)
    "hmc_kinetic_dropped": (
        "mcgen/kernels/_integrators.py",
        "h = -logdensity + kinetic_energy(p, velocity(inverse_mass, p), inverse_mass)",
        "h = -logdensity + 0.0 * kinetic_energy(p, velocity(inverse_mass, p), inverse_mass)",
        "tests/kernels/test_hmc.py -k 'invariance or moments or scales'",
    ),
    "leapfrog_full_first_kick": (
        "mcgen/kernels/_integrators.py",
        "    p = p + half * g\n    q = q",
        "    p = p + step_size * g\n    q = q",
        "tests/kernels/test_hmc.py -k 'invariance or moments or scales'",
    ),
    # the same bug, caught on the banana by the error bars of 32 independent runs
    "hmc_kinetic_dropped_banana": (
        "mcgen/kernels/_integrators.py",
        "h = -logdensity + kinetic_energy(p, velocity(inverse_mass, p), inverse_mass)",
        "h = -logdensity + 0.0 * kinetic_energy(p, velocity(inverse_mass, p), inverse_mass)",
        "tests/kernels/test_hmc_defaults.py -k banana",
    ),
    "mala_no_q_correction": (
        "mcgen/kernels/langevin.py",
        "log_ratio = logdensity_y - state.logdensity + log_q_reverse - log_q_forward",
        "log_ratio = logdensity_y - state.logdensity",
        "tests/kernels/test_langevin.py -k 'mala and (invariance or moments or scales)'",
    ),
    "mala_flipped_ratio": (
        "mcgen/kernels/langevin.py",
        "log_ratio = logdensity_y - state.logdensity + log_q_reverse - log_q_forward",
        "log_ratio = state.logdensity - logdensity_y + log_q_reverse - log_q_forward",
        "tests/kernels/test_langevin.py -k 'mala and (invariance or moments or scales)'",
    ),
    "nuts_kinetic_dropped": (
        "mcgen/kernels/_trajectory.py",
        "h1 = -logdensity1 + 0.5 * pv",
        "h1 = -logdensity1 + 0.0 * pv",
        "tests/kernels/test_nuts.py -k 'invariance or moments or scales'",
    ),
    "nuts_always_forward": (
        "mcgen/kernels/_trajectory.py",
        "eps = jnp.where(forward, c.step_size, -c.step_size)",
        "eps = c.step_size",
        "tests/kernels/test_nuts.py -k 'invariance or moments or scales'",
    ),
    "nuts_last_leaf_not_multinomial": (
        "mcgen/kernels/_trajectory.py",
        "take = opening | (dr.log_u_leaf < logw1 - sub_logw)",
        "take = opening | (dr.log_u_leaf < 0.0)",
        "tests/kernels/test_nuts.py -k 'invariance or moments or scales'",
    ),
    # (replacing min(1, W_S / W_T) by W_S / (W_T + W_S) would NOT be a bug: uniform progressive
    # sampling across subtrees is valid too, only less efficient)
    "nuts_merge_inverted": (
        "mcgen/kernels/_trajectory.py",
        "(row[2] < sub_logw - sc[LOGW])",
        "(row[2] < sc[LOGW] - sub_logw)",
        "tests/kernels/test_nuts.py -k 'invariance or moments or scales'",
    ),
    # deep trees test only the first few checkpoint slots (the others read as zero)
    # a leaf that closes more checkpoint slots than the window reads the window only (session 5:
    # replaces "nuts_deep_phase_skipped", the shallow/deep products it stood for are gone)
    "nuts_wide_window_skipped": (
        "mcgen/kernels/_trajectory.py",
        "branches = [products(size) for size in range(window + 1)] + [every]",
        "branches = [products(size) for size in range(window + 1)] + [products(window)]",
        "tests/kernels/test_nuts_uturn.py tests/kernels/test_nuts.py -k 'deep or depth or reference'",
    ),
    # the running sum M^-1 R_n of a low-rank or dense metric is not reset where a subtree opens
    # (session 27: the sum replaced a third metric product per leaf)
    "nuts_running_ar_not_reset": (
        "mcgen/kernels/_trajectory.py",
        "a_r = jnp.where(dr.opening, 0.0, t.vecs[SUB_AR]) + v1",
        "a_r = t.vecs[SUB_AR] + v1",
        "tests/test_low_rank_metric.py tests/kernels/test_dense_metric.py -k 'corrects_nothing or invariance'",
    ),
    # the fit of a short window from the buffer's newest slots (session 27): one slot off, the
    # level of the regularization taken over its own dimensions, a 31-draw window taken for short
    "low_rank_recent_slots_shifted": (
        "mcgen/adaptation/low_rank.py",
        "idx = (buf.collected - 1 - jnp.arange(min(rows, size)))",
        "idx = (buf.collected - 2 - jnp.arange(min(rows, size)))",
        "tests/test_low_rank_metric.py -k newest",
    ),
    "low_rank_recent_level_not_passed": (
        "mcgen/adaptation/window.py",
        "return fit(buffer_recent(buffer, _RECENT_ROWS), welford, scores, span)",
        "return fit(buffer_recent(buffer, _RECENT_ROWS), welford, scores)",
        "tests/test_low_rank_metric.py -k newest",
    ),
    "low_rank_recent_window_too_long": (
        "mcgen/adaptation/window.py",
        "(_foreground_rows(sched, early, buffer_size) <= _RECENT_ROWS)",
        "(_foreground_rows(sched, early, buffer_size) <= 2 * _RECENT_ROWS)",
        "tests/test_low_rank_metric.py -k newest",
    ),
    # the small fit program built where it does not repay its compile, and not where it does
    "low_rank_recent_fits_rule_inverted": (
        "mcgen/adaptation/window.py",
        "return (requested_chains() or 1) * dim >= _RECENT_MIN_WORK",
        "return (requested_chains() or 1) * dim < _RECENT_MIN_WORK",
        "tests/test_low_rank_metric.py -k newest_slot_fits_are_built",
    ),
    # the divergence warning names the chain with the fewest divergences (session 27)
    "divergence_warning_wrong_chain": (
        "mcgen/diagnostics.py",
        "worst = int(np.argmax(per_chain))",
        "worst = int(np.argmin(per_chain))",
        "tests/test_treedepth.py -k divergences",
    ),
    # nuts() on the early schedule targets Stan's 0.8, not its own 0.85 (session 17)
    "nuts_early_target_not_raised": (
        "mcgen/kernels/nuts.py",
        'target_accept = EARLY_TARGET_ACCEPT if warmup_schedule == "early" else STAN_TARGET_ACCEPT',
        "target_accept = STAN_TARGET_ACCEPT",
        "tests/kernels/test_nuts.py -k 'target_accept or higher_default'",
    ),
    # the fenced leaf decisions of many chains of a small target hand back a shifted energy
    "nuts_fenced_decisions_wrong": (
        "mcgen/kernels/_trajectory.py",
        "keep = lambda x: jax.lax.cond(any_growing, lambda y: y, zeros, x)",
        "keep = lambda x: jax.lax.cond(any_growing, lambda y: (*y[:-1], y[-1] + 1.0), zeros, x)",
        "tests/kernels/test_fence.py -k decisions",
    ),
    # many chains: the next stage gathers finished trees first, leaving growing ones unfinished
    "nuts_compact_gathers_finished": (
        "mcgen/kernels/_trajectory.py",
        "order = jnp.argsort(t.ints[:, DONE] != 0, stable=True)[:until]",
        "order = jnp.argsort(t.ints[:, DONE] == 0, stable=True)[:until]",
        "tests/kernels/test_fence.py -k gathering",
    ),
    # many chains: a batched closure is not gathered with the trees (the first chains' values)
    "nuts_compact_closure_not_gathered": (
        "mcgen/kernels/_trajectory.py",
        "consts = [x if a is None else jnp.take(x, order, axis=a) for x, a in zip(consts, const_axes)]",
        "consts = [x if a is None else x[: order.shape[0]] for x, a in zip(consts, const_axes)]",
        "tests/kernels/test_fence.py -k gathering",
    ),
    # many chains: the stages' trees are written back in the wrong order
    "nuts_compact_scatter_order": (
        "mcgen/kernels/_trajectory.py",
        "for parent, order in reversed(saved):",
        "for parent, order in saved:",
        "tests/kernels/test_fence.py -k gathering",
    ),
    # many chains: each stage splits the inner products' sums for its own batch size
    "nuts_compact_split_per_stage": (
        "mcgen/kernels/_trajectory.py",
        "ld_dtype, jax.vmap, size, it=it, until=until, split_batch=batch)",
        "ld_dtype, jax.vmap, size, it=it, until=until, split_batch=size)",
        "tests/kernels/test_fence.py -k gathering",
    ),
    # bench_many_chains counts NUTS's gradients as the whole batch at every iteration
    "bench_staged_gradients_whole_batch": (
        "benchmarks/bench_many_chains.py",
        "per_draw.append(int(np.asarray(sizes)[stage].sum()))",
        "per_draw.append(int(sizes[0] * len(stage)))",
        "tests/test_bench_many_chains.py",
    ),
    # the leaves between a subtree's first and last forget to store the subtree's candidate
    "nuts_leaf_rows_stale_candidate": (
        "mcgen/kernels/_trajectory.py",
        "return jax.lax.dynamic_update_slice_in_dim(out, sub_cand, SUB_Q, axis=0)",
        "return out",
        "tests/kernels/test_fence.py -k decisions",
    ),
    # the sampling program compiled ahead has another chunk length than the one run_chains asks for
    "run_sampling_ahead_wrong_chunk": (
        "mcgen/run.py",
        "static = (method, kernel, logdensity_fn, thin, transform, min(sample_size, num_samples))",
        "static = (method, kernel, logdensity_fn, thin, transform, min(sample_size, num_samples) + 1)",
        "tests/test_run.py -k ahead",
    ),
    # the step-size search on warmup transitions (issue 14, session 7): halving by 4 instead of
    # 2, and a search that runs one trial past the crossing
    # the search at the start of warmup, on transitions from far-off starts, lost chains on the
    # Gym's log-Gaussian Cox process (docs/gradient_kernels.md): the kernels start dual averaging instead
    "step_size_search_at_start": (
        "mcgen/adaptation/window.py",
        "find_initial: bool = False,",
        "find_initial: bool = True,",
        "tests/test_warmup_stats.py -k trace",
    ),
    "step_size_search_wrong_factor": (
        "mcgen/adaptation/window.py",
        "factor = jnp.where(direction > 0, 2.0, 0.5)",
        "factor = jnp.where(direction > 0, 2.0, 0.25)",
        "tests/test_warmup_stats.py -k 'trace or search'",
    ),
    "step_size_search_stops_late": (
        "mcgen/adaptation/window.py",
        "stop = crossed | (search.tries + 1 >= _MAX_SEARCH)",
        "stop = (crossed & (search.tries > 1)) | (search.tries + 1 >= _MAX_SEARCH)",
        "tests/test_warmup_stats.py -k trace",
    ),
    # an even leaf reads no slot: the left-half-plus-first-leaf check is never decided
    "nuts_even_leaf_window_empty": (
        "mcgen/kernels/_trajectory.py",
        "size = jnp.where(odd, closed, jnp.minimum(top, 1))",
        "size = jnp.where(odd, closed, 0)",
        "tests/kernels/test_nuts_uturn.py",
    ),
    # the trapezoid U-turn criterion (issue 14, session 4): each dropped or misplaced term moves
    # where some trajectories stop, against the recursive reference
    "nuts_trapezoid_slot_cross_term_dropped": (
        "mcgen/kernels/_trajectory.py",
        "whole = _turning(s_ar[0] - ck_sc[0] - 0.5 * c_s,",
        "whole = _turning(s_ar[0] - ck_sc[0],",
        "tests/kernels/test_nuts_uturn.py",
    ),
    "nuts_trapezoid_far_cross_term_dropped": (
        "mcgen/kernels/_trajectory.py",
        "ft + fr - 0.5 * (dr.far_pv + c_far)",
        "ft + fr - 0.5 * dr.far_pv",
        "tests/kernels/test_nuts_uturn.py",
    ),
    "nuts_trapezoid_near_end_not_halved": (
        "mcgen/kernels/_trajectory.py",
        "0.5 * (vn - pv) + vr",
        "vn - 0.5 * pv + vr",
        "tests/kernels/test_nuts_uturn.py",
    ),
    "nuts_trajectory_near_check_dropped": (
        "mcgen/kernels/_trajectory.py",
        "turning = _turning(far_a, far_b) | first_turning | _turning(near_a, near_b)",
        "turning = _turning(far_a, far_b) | first_turning",
        "tests/kernels/test_nuts_uturn.py",
    ),
    "momentum_wrong_covariance": (
        "mcgen/kernels/_metrics.py",
        "scale = jax.lax.rsqrt(inverse_mass)",
        "scale = jnp.sqrt(inverse_mass)",
        "tests/kernels/test_nuts.py -k 'moments or scales'",
    ),
    # checkpoints and progress (issue 17)
    "resume_step_off_by_one": (
        "mcgen/_driver/checkpoint.py",
        'phase, int(manifest["step"]), states,',
        'phase, int(manifest["step"]) - 1, states,',
        "tests/test_checkpoint.py -k 'full_disk or mid_sampling or read_back'",
    ),
    "draws_checksum_ignored": (
        "mcgen/_driver/store.py",
        "ok = i < len(sums) and zlib.crc32(block.tobytes()) == sums[i]",
        "ok = True",
        "tests/test_checkpoint.py -k corrupt",
    ),
    "progress_on_in_pipes": (
        "mcgen/_driver/progress.py",
        'return in_jupyter_kernel() or bool(getattr(sys.stderr, "isatty", lambda: False)())',
        "return True",
        "tests/test_progress.py",
    ),
    # ---- issue 19: the kinds the suite missed, and one bug in every weak area
    # driver: every chain gets the same random stream (chains become copies)
    "driver_same_stream": (
        "mcgen/_driver/steps.py",
        "chain = jax.vmap(lambda i: _random.fold_in(root, i))",
        "chain = jax.vmap(lambda i: _random.fold_in(root, 0 * i))",
        "tests/test_chains_independent.py",
    ),
    # driver/kernels: the kinetic energy summed by XLA in a batch-dependent order again
    "hmc_kinetic_batch_dependent": (
        "mcgen/kernels/_metrics.py",
        "return 0.5 * fixed_order_sum(terms)",
        "return 0.5 * jnp.dot(p, v)",
        "tests/test_determinism.py -k 'chain_count and hmc'",
    ),
    # driver: each device's loop gets the log-density's arrays as parameters (XLA then rounds
    # x / c differently than the one-device program, which folds the constant)
    "per_device_constants_as_parameters": (
        "mcgen/_driver/placement.py",
        'return np.dtype(aval.dtype).kind in "biuf"',
        "return False",
        "tests/test_determinism.py -k device_count",
    ),
    # driver: the sharded step is partitioned over all devices again (one loop across devices)
    "per_device_loop_dropped": (
        "mcgen/_driver/placement.py",
        "    return _each_device(mesh, fn, num_shared)",
        "    return fn",
        "tests/test_sharding.py -k identical_draws",
    ),
    # ensemble warmups split over devices: a pooled sum over the device's own chains only
    "pooled_sum_one_device_only": (
        "mcgen/adaptation/ensemble.py",
        "total = jax.lax.psum(total, context.split[0])",
        "total = total",
        "tests/test_ensemble.py -k devices",
    ),
    # several pooled means in one collective: a weighted one divided by the chain count
    "chain_means_weighted_by_count": (
        "mcgen/adaptation/ensemble.py",
        "total = num_chains() if weight is None else total_w",
        "total = num_chains()",
        "tests/test_ensemble.py -k chain_means",
    ),
    # the gathered chains' weights, known when tracing: padding counted as requested
    "chain_gather_padding_weighted": (
        "mcgen/adaptation/ensemble.py",
        "weights = (jnp.arange(total) < num_requested(total))",
        "weights = (jnp.arange(total) < total)",
        "tests/test_ensemble.py -k gather",
    ),
    # a default that silently resonates
    "hmc_default_no_jitter": (
        "mcgen/kernels/hmc.py",
        "jitter: float = 0.5,",
        "jitter: float = 0.0,",
        "tests/kernels/test_hmc_defaults.py",
    ),
    # testing helpers: a one-sided moment check, an invariance check against dependent draws,
    # a two-sample test without its Bonferroni correction
    "moments_one_sided": (
        "mcgen/testing/_checks.py",
        "zs = [np.abs(self.mean_z)] + ([np.abs(self.var_z)] if self.var_z is not None else [])",
        "zs = [self.mean_z] + ([self.var_z] if self.var_z is not None else [])",
        "tests/test_testing_calibration.py -k moments",
    ),
    "moments_runs_raw_t": (
        "mcgen/testing/_checks.py",
        "return np.sign(t) * sps.norm.isf(sps.t.sf(np.abs(t), dof))",
        "return t",
        "tests/test_testing_calibration.py -k runs",
    ),
    # the runs' standard error without the square root of the number of runs (every check lenient)
    "moments_runs_se_undivided": (
        "mcgen/testing/_checks.py",
        "per_run.std(axis=0, ddof=1) / np.sqrt(runs)",
        "per_run.std(axis=0, ddof=1)",
        "tests/test_testing_calibration.py -k runs",
    ),
    # the particle filter that checks the stochastic-volatility truth (benchmarks/sv_truth.py)
    "sv_filter_mu_update_halved": (
        "benchmarks/sv_truth.py",
        "            m = m + gain * (x - mean)",
        "            m = m + 0.5 * gain * (x - mean)",
        "tests/test_sv_truth.py",
    ),
    "sv_filter_start_not_stationary": (
        "benchmarks/sv_truth.py",
        "        s0sq = s**2 / (1.0 - phi**2)",
        "        s0sq = s**2",
        "tests/test_sv_truth.py",
    ),
    "sv_filter_variance_update_unscaled": (
        "benchmarks/sv_truth.py",
        "            var = var - gain * a * var",
        "            var = var - gain * var",
        "tests/test_sv_truth.py",
    ),
    "sv_filter_paths_not_traced": (
        "benchmarks/sv_truth.py",
        "return idx_t[lineage], x_t[lineage]",
        "return lineage, x_t[lineage]",
        "tests/test_sv_truth.py",
    ),
    "bench_segment_se_undivided": (
        "benchmarks/bench_chain_groups.py",
        "se = np.sqrt(means.var(axis=0, ddof=1) / n + target.truth_se**2)",
        "se = np.sqrt(means.var(axis=0, ddof=1) + target.truth_se**2)",
        "tests/test_bench_gym.py -k burn_in",
    ),
    "bench_segment_draws_not_stretches": (
        "benchmarks/bench_chain_groups.py",
        "x[:, : segments * stretch].reshape(n, segments, stretch, -1).mean(axis=2)",
        "x[:, : segments * stretch : stretch]",
        "tests/test_bench_gym.py -k burn_in",
    ),
    "bench_pooled_se_undivided": (
        "benchmarks/bench_chain_groups.py",
        "se = np.sqrt(means.var(axis=0, ddof=1) / runs + target.truth_se**2)",
        "se = np.sqrt(means.var(axis=0, ddof=1) + target.truth_se**2)",
        "tests/test_bench_gym.py -k pool",
    ),
    "bench_warned_ignores_divergences": (
        "benchmarks/bench_chain_groups.py",
        '{"is_divergent": np.asarray(div[chains])}',
        '{"is_divergent": np.zeros_like(np.asarray(div[chains]))}',
        "tests/test_bench_gym.py -k four",
    ),
    "bench_warned_ignores_energy": (
        "benchmarks/bench_chain_groups.py",
        'stats["energy"] = np.asarray(energy[chains])',
        "pass",
        "tests/test_bench_gym.py -k four",
    ),
    "bench_lost_chains_pooled": (
        "benchmarks/bench_chain_groups.py",
        "off = np.max(np.abs(x.mean(axis=1) - target.truth_mean) / target.truth_sd, axis=1)",
        "off = np.max(np.abs(x.mean(axis=(0, 1)) - target.truth_mean) / target.truth_sd) + 0 * x[:, 0, 0]",
        "tests/test_bench_gym.py -k four",
    ),
    "chain_summary_includes_own_chain": (
        "mcgen/diagnostics.py",
        "mean_other = (total - own) / n_other",
        "mean_other = total / (chains * draws)",
        "tests/test_treedepth.py -k summary",
    ),
    "chain_summary_own_spread": (
        "mcgen/diagnostics.py",
        "var_other = np.maximum((total_sq - own_sq) / n_other - np.square(mean_other), 0.0)",
        "var_other = np.maximum(own_sq / draws - np.square(own / draws), 0.0)",
        "tests/test_treedepth.py -k summary",
    ),
    "bench_warned_ignores_max_depth": (
        "benchmarks/bench_chain_groups.py",
        'stats["reached_max_treedepth"] = np.asarray(max_depth[chains])',
        "pass",
        "tests/test_bench_gym.py -k four",
    ),
    "invariance_dependent_draws": (
        "mcgen/testing/_checks.py",
        "fresh = exact_sampler(key_fresh, num_chains)",
        "fresh = exact_sampler(key_start, num_chains)",
        "tests/test_testing_calibration.py -k invariance",
    ),
    "two_sample_no_bonferroni": (
        "mcgen/testing/_report.py",
        "np.min(self.p_values) * self.p_values.size",
        "np.min(self.p_values)",
        "tests/test_testing_calibration.py -k two_sample",
    ),
    # direct samplers and Bayesian networks: right estimates, wrong error bars
    "is_log_normalizer_mcse_inflated": (
        "mcgen/direct/weighted.py",
        "math.log(n), jnp.sqrt(jnp.maximum(rel_var, 0)))",
        "math.log(n), 1.5 * jnp.sqrt(jnp.maximum(rel_var, 0)))",
        "tests/test_testing_calibration.py -k importance",
    ),
    "bn_query_mcse_inflated": (
        "mcgen/bayesnet/query.py",
        "return p, np.sqrt(np.maximum(var, 0.0))",
        "return p, 1.5 * np.sqrt(np.maximum(var, 0.0))",
        "tests/test_testing_calibration.py -k bayesnet",
    ),
    "bn_query_mcse_deflated": (
        "mcgen/bayesnet/query.py",
        "return p, np.sqrt(np.maximum(var, 0.0))",
        "return p, 0.7 * np.sqrt(np.maximum(var, 0.0))",
        "tests/test_testing_calibration.py -k bayesnet",
    ),
    # dense metrics: only wrong once the metric is not diagonal
    "dense_sqrt_transposed": (
        "mcgen/kernels/_metrics.py",
        "return lambda z: chol @ z",
        "return lambda z: chol.T @ z",
        "tests/kernels/test_dense_metric.py",
    ),
    "dense_momentum_wrong_factor": (
        "mcgen/kernels/_metrics.py",
        "return lambda z: solve_triangular(chol.T, z, lower=False)",
        "return lambda z: solve_triangular(chol, z, lower=True)",
        "tests/kernels/test_dense_metric.py",
    ),
    # adaptation: the dense Welford estimate keeps only the diagonal (a valid sampler, a wrong metric)
    "welford_dense_diagonal_only": (
        "mcgen/adaptation/welford.py",
        "m2 = state.m2 + jnp.outer(delta, x - mean)",
        "m2 = state.m2 + jnp.diag(delta * (x - mean))",
        "tests/kernels/test_dense_metric.py -k warmup",
    ),
    # mass-matrix estimators (issue 15): the Fisher diagonal without its square root (the
    # variance ratio itself), and a warmup that feeds it the draws in place of the gradients
    "fisher_diag_no_sqrt": (
        "mcgen/adaptation/welford.py",
        "ratio = jnp.sqrt(var_x / var_g)",
        "ratio = var_x / var_g",
        "tests/test_mass_estimators.py -k recover",
    ),
    "fisher_scores_are_draws": (
        "mcgen/adaptation/window.py",
        "welford_update(scores, grad.astype(flat.dtype))",
        "welford_update(scores, flat)",
        "tests/test_mass_estimators.py -k warmup",
    ),
    # the early schedule's switch hands the gradients' estimate over as the draws' (a typo that
    # mixes the two; an unfed background alone is benign: both halves still see the same law)
    "early_switch_swaps_estimates": (
        "mcgen/adaptation/window.py",
        "bg_draws if early else fresh, welford",
        "bg_scores if early else fresh, welford",
        "tests/test_mass_estimators.py -k early",
    ),
    # generative: the tempered rejection sampler ignores its temperature
    "flow_rejection_ignores_temperature": (
        "mcgen/generative/flows.py",
        "z = temperature * jax.random.normal(key, (num_samples,) + latent_shape)\n        x = jax.vmap(forward)(z)\n"
        "        return x, jax.vmap(log_prob)(x) >= threshold",
        "z = jax.random.normal(key, (num_samples,) + latent_shape)\n        x = jax.vmap(forward)(z)\n"
        "        return x, jax.vmap(log_prob)(x) >= threshold",
        "tests/generative/test_generative_flows.py",
    ),
    # the new helpers: SBC without its Bonferroni correction, Geweke's standard error without
    # the chains' part, the sequential invariance test without alpha spending
    "sbc_no_bonferroni": (
        "mcgen/testing/_report.py",
        "return float(min(1.0, np.min(self.p_values) * self.p_values.size))",
        "return float(min(1.0, np.min(self.p_values)))",
        "tests/test_sbc.py",
    ),
    "geweke_se_marginal_only": (
        "mcgen/testing/geweke.py",
        "se = np.sqrt(g_m.var(0, ddof=1) / num_marginal + g_s.var(0, ddof=1) / num_chains)",
        "se = np.sqrt(g_m.var(0, ddof=1) / num_marginal)",
        "tests/test_geweke.py",
    ),
    "exact_invariance_no_alpha_spending": (
        "mcgen/testing/exact_invariance.py",
        "report.levels.append(alpha / 2**k)",
        "report.levels.append(alpha)",
        "tests/test_exact_invariance.py",
    ),
    # ---- issue 19, second round: SBC of real models and its adapters, and kinds the list lacked
    # SBC adapters: weighted ranks that ignore the weights (the draws become the proposal's),
    # ties of discrete parameters put at the midpoint instead of broken at random, thinning
    # ignored (autocorrelated draws), a NumPyro truth left on the constrained scale
    "sbc_weighted_ranks_ignore_weights": (
        "mcgen/testing/sbc.py",
        "    w = np.exp(log_weights - top)\n",
        "    w = np.exp(0.0 * (log_weights - top))\n",
        "tests/test_sbc_models.py -k 'importance or bayesnet'",
    ),
    "sbc_ties_at_midpoint": (
        "mcgen/testing/sbc.py",
        "u = (w * below).sum(1) + rng.random(truth.shape) * (w * equal).sum(1)",
        "u = (w * below).sum(1) + 0.5 * (w * equal).sum(1)",
        "tests/test_sbc_models.py -k 'bayesnet or ties'",
    ),
    "sbc_thin_ignored": (
        "mcgen/testing/sbc.py",
        "st, jax.random.split(k, thin))",
        "st, jax.random.split(k, 1))",
        "tests/test_sbc.py tests/test_testing_calibration.py -k 'sbc_passes or gibbs or thins'",
    ),
    "sbc_numpyro_truth_constrained": (
        "mcgen/testing/sbc.py",
        'return unconstrain_fn(seeded, args, kwargs, {name: tr[name]["value"] for name in latent})',
        'return {name: tr[name]["value"] for name in latent}',
        "tests/test_sbc_models.py -k eight_schools_numpyro",
    ),
    # Bayesian network: likelihood weighting weights by the drawn value of an evidence variable
    # instead of its observed one (a wrong prior-times-likelihood)
    "lw_weight_of_drawn_value": (
        "mcgen/bayesnet/sampling.py",
        "logw = logw + jnp.where(clamped, flat.logp[row, value], jnp.float32(0.0))",
        "logw = logw + jnp.where(clamped, flat.logp[row, drawn], jnp.float32(0.0))",
        "tests/test_sbc_models.py -k bayesnet",
    ),
    # testing helpers: an MCSE of the mean that is inflated (every moment check lenient)
    "moments_mcse_inflated": (
        "mcgen/testing/_checks.py",
        'out[j] = float(az.mcse(x[..., j], method="mean"))',
        'out[j] = 1.6 * float(az.mcse(x[..., j], method="mean"))',
        "tests/test_testing_calibration.py -k moments",
    ),
    # reported error bars: the self-normalized estimate's MCSE without centering at the mean
    "snis_mcse_uncentered": (
        "mcgen/direct/weighted.py",
        "var = _blocked_sum(_weighted(w**2, (fx - mean) ** 2))",
        "var = _blocked_sum(_weighted(w**2, fx ** 2))",
        "tests/test_testing_calibration.py -k 'snis or importance'",
    ),
    # combinators: parallel tempering keeps the replicas' cached log-densities stale after a swap
    "tempering_cache_stale": (
        "mcgen/combinators/tempering.py",
        "new = inner._replace(logdensity=(lr + betas * ll).astype(inner.logdensity.dtype))",
        "new = inner",
        "tests/combinators/test_tempering.py",
    ),
    # ---- issue 16: ensemble adaptation and ChEES-HMC
    # the acceptance step: the kinetic energy left out, the ratio flipped
    "chees_accept_without_kinetic": (
        "mcgen/kernels/chees.py",
        "mh_accept(key_accept, h0 - h1, logdensity1)",
        "mh_accept(key_accept, logdensity1 - state.logdensity, logdensity1)",
        "tests/kernels/test_chees.py -k 'invariance or ensemble'",
    ),
    "chees_flipped_ratio": (
        "mcgen/kernels/chees.py",
        "mh_accept(key_accept, h0 - h1, logdensity1)",
        "mh_accept(key_accept, h1 - h0, logdensity1)",
        "tests/kernels/test_chees.py -k 'invariance or ensemble'",
    ),
    # the adaptation's use of cross-chain statistics: each chain adapts on its own statistic
    "chees_step_size_not_pooled": (
        "mcgen/kernels/chees.py",
        "harmonic = 1.0 / inverse_a",
        "harmonic = a",
        "tests/kernels/test_chees.py -k ensemble",
    ),
    "chees_metric_not_pooled": (
        "mcgen/kernels/chees.py",
        "grad, var = chain_means([jnp.where(a > 0, g_i, 0.0), (x - mean) ** 2], [a, None])",
        "grad, var = chain_mean(jnp.where(a > 0, g_i, 0.0), a), (x - mean) ** 2",
        "tests/kernels/test_chees.py -k ensemble",
    ),
    # the pooled statistics count the driver's padding chains
    "ensemble_counts_padding": (
        "mcgen/adaptation/ensemble.py",
        "return (index < num_real).astype(jnp.float32)",
        "return (index < 2**30).astype(jnp.float32)",
        "tests/test_ensemble.py -k 'requested or devices'",
    ),
    "mams_kinetic_dropped": (
        "mcgen/kernels/mams.py",
        "log_ratio = logdensity1 - state.logdensity - kinetic",
        "log_ratio = logdensity1 - state.logdensity",
        "tests/kernels/test_mams.py -k 'invariance or ensemble'",
    ),
    "mams_metric_not_pooled": (
        "mcgen/kernels/mams.py",
        "var = chain_mean((x - mean) ** 2)",
        "var = (x - mean) ** 2",
        "tests/kernels/test_mams.py -k ensemble",
    ),
    # ---- issue 19, third round: lenient helpers, each caught by a calibration or power test
    # SBC ranks the sampler's own last draw instead of the true parameter (any sampler passes)
    "sbc_ranks_a_draw_not_the_truth": (
        "mcgen/testing/sbc.py",
        "ranks = _ranks(truth, draws, np.random.default_rng(seed))",
        "ranks = _ranks(draws[:, -1], draws, np.random.default_rng(seed))",
        "tests/test_testing_calibration.py -k sbc_power",
    ),
    # the rank test pools ranks into 2 bins (halves): blind to posteriors too wide or too narrow
    "sbc_rank_test_two_bins": (
        "mcgen/testing/sbc.py",
        "return max(divisors)",
        "return min(divisors)",
        "tests/test_testing_calibration.py -k 'sbc_power or sbc_direct_weighted'",
    ),
    # the moment checks' MCSE ignores autocorrelation (sd / sqrt(N)): false alarms on MCMC draws
    "moments_mcse_iid_formula": (
        "mcgen/testing/_checks.py",
        'out[j] = float(az.mcse(x[..., j], method="mean"))',
        "out[j] = float(x[..., j].std() / np.sqrt(x[..., j].size))",
        "tests/test_testing_calibration.py -k autocorrelated",
    ),
    # weighted SBC ranks with the weights' square root (a posterior too wide for the ranks)
    "sbc_weighted_ranks_flattened": (
        "mcgen/testing/sbc.py",
        "    w = np.exp(log_weights - top)\n",
        "    w = np.exp(0.5 * (log_weights - top))\n",
        "tests/test_testing_calibration.py -k sbc_direct_weighted",
    ),
    # low-rank metric (issue 15, second half): the fit ignores the gradients (the draws' scaled
    # covariance in place of the Fisher-divergence geometric mean), and the O(dk) velocity
    # applies the inverse eigenvalues (the mass matrix, not its inverse, along the directions)
    "low_rank_fit_ignores_scores": (
        "mcgen/adaptation/low_rank.py",
        "metric = _geometric_mean(px, pg, gamma * level)",
        "metric = px.T @ px + gamma * level * jnp.eye(m, dtype=dtype)",
        "tests/test_low_rank_metric.py -k estimate",
    ),
    # the kernels' mass_gamma not passed on to the warmup's fit (session 29)
    "low_rank_mass_gamma_dropped": (
        "mcgen/kernels/_gradient.py",
        "min_draws=min_draws, holdout=holdout, gamma=float(gamma)",
        "min_draws=min_draws, holdout=holdout",
        "tests/test_low_rank_metric.py -k mass_gamma",
    ),
    # the two-ended choice of the corrections taken where it does not narrow the spectrum
    # (session 30)
    "low_rank_split_guard_inverted": (
        "mcgen/adaptation/low_rank.py",
        "first_range - ranges[top] > 2.0 * jnp.log(split)",
        "first_range - ranges[top] < 2.0 * jnp.log(split)",
        "tests/test_low_rank_metric.py -k 'both_ends or lopsided'",
    ),
    # the two-ended ranges one rung off at the bottom (the smallest uncorrected eigenvalue
    # misread)
    "low_rank_split_range_off_by_one": (
        "mcgen/adaptation/low_rank.py",
        "- jnp.minimum(ranked[used - t], 0.0)",
        "- jnp.minimum(ranked[jnp.maximum(used - t - 1, 0)], 0.0)",
        "tests/test_low_rank_metric.py -k 'both_ends or lopsided'",
    ),
    "low_rank_velocity_inverted": (
        "mcgen/kernels/_metrics.py",
        "return s * _low_rank_apply(m, m.vals - 1.0, s * p)",
        "return s * _low_rank_apply(m, 1.0 / m.vals - 1.0, s * p)",
        "tests/test_low_rank_metric.py -k 'operators or invariance'",
    ),
    # ---- issue 16 (session 3): MEADS
    # the acceptance step: slice variable not carried to the new state, no momentum flip on a
    # rejection, kinetic energy left out
    "meads_slice_not_rescaled": (
        "mcgen/kernels/meads.py",
        "new_slice = jnp.where(do_accept, s * jnp.exp(jnp.where(do_accept, delta, 0.0)), s)",
        "new_slice = s",
        "tests/kernels/test_meads.py -k 'invariance or extended'",
    ),
    "meads_no_flip_on_reject": (
        "mcgen/kernels/meads.py",
        "new_momentum = jnp.where(do_accept, p1, -p0)",
        "new_momentum = jnp.where(do_accept, p1, p0)",
        "tests/kernels/test_meads.py -k 'invariance or extended'",
    ),
    "meads_kinetic_dropped": (
        "mcgen/kernels/meads.py",
        "delta = h1 - h0",
        "delta = state.logdensity - logdensity1",
        "tests/kernels/test_meads.py -k 'invariance or ensemble'",
    ),
    # the adaptation's use of cross-chain statistics: a fold adapts from itself, no fold held
    # out, the eigenvalue estimate keeps the diagonal terms, padding chains counted
    "meads_fold_uses_itself": (
        "mcgen/kernels/meads.py",
        "source = (fold - 1) % num_folds",
        "source = fold",
        "tests/kernels/test_meads.py -k fold",
    ),
    "meads_no_held_out_fold": (
        "mcgen/kernels/meads.py",
        "held_out = fold == count % num_folds",
        "held_out = fold < 0",
        "tests/kernels/test_meads.py -k fold",
    ),
    "meads_eigenvalue_with_diagonal": (
        "mcgen/kernels/meads.py",
        "pairs = jnp.sum(gram**2, axis=(1, 2)) - jnp.sum(sq**2, axis=1)",
        "pairs = jnp.sum(gram**2, axis=(1, 2))",
        "tests/kernels/test_meads.py -k fold",
    ),
    "meads_counts_padding": (
        "mcgen/kernels/meads.py",
        "return _fold_parameters(xs, gs, w.astype(x.dtype), folds, step, rows), fold",
        "return _fold_parameters(xs, gs, jnp.ones_like(w, x.dtype), folds, step, rows), fold",
        "tests/kernels/test_meads.py -k fold",
    ),
    # ---- issue 16 follow-up (session 8): MEADS's step size not capped at 1 (from a tight start
    # at the mode the whitened gradients are ~sigma^2, the step size ~150: nothing ever moves)
    "meads_step_size_uncapped": (
        "mcgen/kernels/meads.py",
        "step_size = jnp.minimum(0.5 / jnp.sqrt(lam_grad), 1.0)",
        "step_size = 0.5 / jnp.sqrt(lam_grad)",
        "tests/kernels/test_meads.py -k tight",
    ),
    # the kept momentum p not shrunk where the ensemble is far too narrow: r = sigma p grows
    # with sigma at every step of the expansion, the chains overshoot and freeze (step size 1e-4)
    "meads_momentum_not_shrunk_while_expanding": (
        "mcgen/kernels/meads.py",
        "expanding = ok & flat_k[source]",
        "expanding = ok & ~ok",
        "tests/kernels/test_meads.py -k tight",
    ),
    # ---- issue 16 (session 4): MAMS warmup without its unadjusted start (chains started in a
    # funnel's neck reject every adjusted proposal for good: the gym eight-schools z of 4.6)
    "mams_no_unadjusted_start": (
        "mcgen/kernels/mams.py",
        "num_unadjusted = int(unadjusted_fraction * num_steps)",
        "num_unadjusted = 0",
        "tests/kernels/test_mams.py -k neck",
    ),
    # ---- issue 15 (session 4): the low-rank fit projects the unscaled draws and scores
    "low_rank_projection_unscaled": (
        "mcgen/adaptation/low_rank.py",
        "px, pg = xs / root_n, gs / root_n",
        "px, pg = dx / root_n, dg / root_n",
        "tests/test_low_rank_metric.py -k 'basis or estimate'",
    ),
    # ---- issue 16 (session 5): bench_many_chains's scoring of runs that have not converged
    # (BlackJAX ChEES on the Gym's ill-conditioned Gaussian: R-hat 3.6, its ESS/s taken at face value)
    "bench_second_moment_wrong_truth": (
        "benchmarks/bench_many_chains.py",
        "truth = target.gym.truth_mean**2 + target.gym.truth_sd**2",
        "truth = target.gym.truth_sd**2",
        "tests/test_bench_many_chains.py",
    ),
    "bench_unconverged_peer_unflagged": (
        "benchmarks/bench_many_chains.py",
        "if not converged(peer):",
        "if False:",
        "tests/test_bench_many_chains.py",
    ),
    # ---- issue 15 (session 6): the low-rank factor cut at run time to its kept columns: one
    # rung too few (a kept direction dropped), the first chain's need taken for the whole batch,
    # and the projection of the fit's QR branch (d > 2n) on the unscaled draws and scores
    "low_rank_cut_one_rung_short": (
        "mcgen/kernels/_metrics.py",
        "return jnp.sum(jnp.asarray(ladder[:-1], jnp.int32) < needed)",
        "return jnp.sum(jnp.asarray(ladder[:-1], jnp.int32) < needed - 1)",
        "tests/test_low_rank_metric.py -k 'operators or invariance'",
    ),
    "low_rank_cut_by_first_chain": (
        "mcgen/kernels/_metrics.py",
        "needed = jnp.max(jnp.where(vals != 1.0, jnp.arange(1, k + 1, dtype=jnp.int32), 0))",
        "needed = jnp.max(jnp.where(vals != 1.0, jnp.arange(1, k + 1, dtype=jnp.int32), 0), -1).reshape(-1)[0]",
        "tests/test_low_rank_metric.py -k operators",
    ),
    "low_rank_projection_unscaled_qr": (
        "mcgen/adaptation/low_rank.py",
        "px, pg = xs @ basis / root_n, gs @ basis / root_n",
        "px, pg = dx @ basis / root_n, dg @ basis / root_n",
        "tests/test_low_rank_metric.py -k basis",
    ),
    # ---- issue 16 (session 7): MAMS's trajectory-length criterion taken per chain, not pooled
    # across the ensemble (each chain's own noisy criterion sets its own L)
    "mams_length_not_pooled": (
        "mcgen/kernels/mams.py",
        "stats = pooled / spread**2",
        "stats = jnp.where(a > 0, stats, 0.0) / spread**2",
        "tests/kernels/test_mams.py -k rotated",
    ),
    # ---- issue 16 (session 10): b^2 of the second moments (time to accuracy) normalized by
    # E[x^2]^2 instead of Var[x^2], and its crossing taken at the first dip below the cutoff
    "bench_b2_wrong_normalization": (
        "benchmarks/bench_many_chains.py",
        "b2 = (running - ex2) ** 2 / var_x2",
        "b2 = (running - ex2) ** 2 / ex2**2",
        "tests/test_bench_many_chains.py",
    ),
    "bench_b2_first_dip": (
        "benchmarks/bench_many_chains.py",
        "above = np.flatnonzero(~(np.asarray(trace) < cutoff))",
        "above = np.flatnonzero(~(np.asarray(trace) < cutoff))[:1]",
        "tests/test_bench_many_chains.py",
    ),
    # ---- issue 16 (session 7): the benchmark's convergence rule ignores the known answer
    "bench_converged_ignores_truth": (
        "benchmarks/bench_many_chains.py",
        'within = all(z < r["threshold"] for z in known)',
        "within = True",
        "tests/test_bench_many_chains.py",
    ),
    # ---- issue 15 (session 7): the cheaper fit: the score factor's R on the wrong side of the
    # draws' stack (not a square root of C_g), and the CPU batching rule of the SVD mixing chains
    "low_rank_geomean_factor_side": (
        "mcgen/adaptation/low_rank.py",
        "s, v = _right_singular(jnp.concatenate([px, root]) @ r.T)",
        "s, v = _right_singular(jnp.concatenate([px, root]) @ r)",
        "tests/test_low_rank_metric.py -k 'estimate or basis'",
    ),
    "low_rank_svd_batch_mixed": (
        "mcgen/adaptation/low_rank.py",
        "cpu=lambda *xs: jax.lax.map(one, xs)",
        "cpu=lambda *xs: jax.lax.map(one, tuple(jnp.roll(x, 1, axis=0) for x in xs))",
        "tests/test_low_rank_metric.py -k under_vmap",
    ),
    # ---- issue 16 (session 8): MEADS's generator (both words of each Threefry block, log from the bits)
    # one word of each block feeds both halves of the noise (z_j = z_j+half); below 16
    # coordinates the uniform is the first normal's uniform; the fitted
    # logarithm's exponent read one bit off; MEADS's noise without the sqrt(2) of N(0, 1)
    "ghmc_draws_one_word_twice": (
        "mcgen/kernels/_random.py",
        "bits = jax.lax.optimization_barrier(jnp.concatenate(threefry2x32(k0, k1, jnp.zeros_like(count), count)))",
        "bits = jax.lax.optimization_barrier(jnp.concatenate([threefry2x32(k0, k1, jnp.zeros_like(count), count)[0]] * 2))",
        "tests/kernels/test_random.py -k ghmc",
    ),
    "ghmc_draws_uniform_reused": (
        "mcgen/kernels/_random.py",
        "u = 2.0 * open_uniform(threefry2x32(k0, k1, U32(1), U32(0))[0], dtype) - 1.0",
        "u = x[0]",
        "tests/kernels/test_random.py -k ghmc",
    ),
    "log_f32_exponent_off": (
        "mcgen/kernels/_random.py",
        "e = (i >> 23).astype(jnp.float32)",
        "e = (i >> 24).astype(jnp.float32)",
        "tests/kernels/test_random.py -k 'log or ghmc'",
    ),
    "ghmc_draws_variance_half": (
        "mcgen/kernels/_random.py",
        "return np.float32(np.sqrt(2)) * erfinv_fast_f32(x), u",
        "return erfinv_fast_f32(x), u",
        "tests/kernels/test_random.py -k ghmc",
    ),
    # bench_gym.py's per-chain diagnostics (issue 14, the Lorenz bridges)
    "bench_gym_per_chain_best_rhat_first": (
        "benchmarks/bench_gym.py",
        "np.argsort(-np.nan_to_num(rhat, nan=np.inf))[:coords]",
        "np.argsort(np.nan_to_num(rhat, nan=np.inf))[:coords]",
        "tests/test_bench_gym.py",
    ),
    # issue 15: mc.nuts()'s default metric and schedule
    "nuts_default_stan_windows": (
        "mcgen/kernels/nuts.py",
        'warmup_schedule = "early" if mass == "low_rank" else "stan"',
        'warmup_schedule = "stan"',
        "tests/test_low_rank_metric.py -k default",
    ),
    "nuts_default_diag": (
        "mcgen/kernels/nuts.py",
        '    mass: str = "low_rank",',
        '    mass: str = "diag",',
        "tests/test_low_rank_metric.py -k default",
    ),
    # issue 15: the early schedule waits out Stan's initial buffer, then feeds every draw
    # (repeats and divergent ones too: leaving them out cost the centered funnels)
    "early_no_initial_buffer": (
        "mcgen/adaptation/window.py",
        "initial_buffer = min(_INITIAL_BUFFER, int(0.15 * num_steps))",
        "initial_buffer = 0",
        "tests/test_mass_estimators.py -k early",
    ),
    "early_feeds_only_moved_draws": (
        "mcgen/adaptation/window.py",
        "in_slow, is_update, is_switch = collect[i], update_metric[i], switch[i]",
        "in_slow, is_update, is_switch = collect[i] & info.is_accepted, update_metric[i], switch[i]",
        "tests/test_mass_estimators.py -k initial_buffer",
    ),
    "early_drops_divergent_draws": (
        "mcgen/adaptation/window.py",
        "in_slow, is_update, is_switch = collect[i], update_metric[i], switch[i]",
        "in_slow, is_update, is_switch = collect[i] & ~info.is_divergent, update_metric[i], switch[i]",
        "tests/test_mass_estimators.py -k initial_buffer",
    ),
    # the late windows of the early schedule grow 1.5-fold (nutpie's growth): constant ones left
    # the final metric on 235 draws and cost the banana
    "early_constant_windows": (
        "mcgen/adaptation/window.py",
        "    window_growth: float = 1.5,",
        "    window_growth: float = 1.0,",
        "tests/test_mass_estimators.py -k early",
    ),
    "early_window_growth_ignores_fit": (
        "mcgen/adaptation/window.py",
        "switched = background >= freq and i + following <= final_start",
        "switched = background >= freq and i + freq <= final_start",
        "tests/test_mass_estimators.py -k early",
    ),
    # warmup and sampling as one program (session 13): it must draw what the two programs draw
    "whole_run_samples_from_the_warmup_state": (
        "mcgen/_driver/steps.py",
        "start = jax.lax.cond(warm, prepare, lambda _: state, ws)",
        "start = prepare(ws)",
        "tests/test_run.py -k whole_run",
    ),
    "whole_run_warmup_keys_in_sampling": (
        "mcgen/_driver/steps.py",
        "lambda: _random.fold_in(wkey, u), lambda: _random.fold_in(skey, s))",
        "lambda: _random.fold_in(wkey, u), lambda: _random.fold_in(wkey, s))",
        "tests/test_run.py -k whole_run",
    ),
    "whole_run_keeps_first_of_thin": (
        "mcgen/_driver/steps.py",
        "keep = jnp.logical_not(warm) & (s % thin == thin - 1)",
        "keep = jnp.logical_not(warm) & (s % thin == 0)",
        "tests/test_run.py -k whole_run",
    ),
    "whole_run_sampling_state_frozen": (
        "mcgen/_driver/steps.py",
        "state = jax.lax.cond(warm, lambda: w.finalize(jax.lax.optimization_barrier(ws)), lambda: new)",
        "state = jax.lax.cond(warm, lambda: w.finalize(jax.lax.optimization_barrier(ws)), lambda: state)",
        "tests/test_run.py -k whole_run",
    ),
    # E-BFMI (session 20): the estimator, the pooling of short chains, the MEADS exemption
    "ebfmi_absolute_changes": (
        "mcgen/diagnostics.py",
        "num = np.sum(np.square(np.diff(e, axis=1)), axis=1)",
        "num = np.sum(np.abs(np.diff(e, axis=1)), axis=1)",
        "tests/test_ebfmi.py -k 'arviz or ar1'",
    ),
    "ebfmi_pooled_within_chains": (
        "mcgen/diagnostics.py",
        "num, den = np.sum(num), np.sum(np.square(e - e.mean()))",
        "num, den = np.sum(num), np.sum(np.square(e - e.mean(axis=1, keepdims=True)))",
        "tests/test_ebfmi.py -k pools",
    ),
    "ebfmi_short_chains_judged_alone": (
        "mcgen/diagnostics.py",
        "if e.shape[1] >= EBFMI_MIN_DRAWS:",
        "if e.shape[1] >= 2:",
        "tests/test_ebfmi.py -k pools",
    ),
    "ebfmi_checks_persistent_momentum": (
        "mcgen/diagnostics.py",
        'if "energy" in stats and not any(k in stats for k in _PERSISTENT_MOMENTUM_STATS):',
        'if "energy" in stats:',
        "tests/test_ebfmi.py -k persistent",
    ),
    "ebfmi_never_warns": (
        "mcgen/diagnostics.py",
        "low = np.flatnonzero(per_chain < EBFMI_THRESHOLD)",
        "low = np.flatnonzero(per_chain < 0.0)",
        "tests/test_ebfmi.py -k 'names or funnel'",
    ),
    # NUTS's maximum tree depth (session 21): the stat and the after-run warning
    "treedepth_never_flagged": (
        "mcgen/kernels/nuts.py",
        "tree.depth >= max_tree_depth,",
        "tree.depth > max_tree_depth,",
        "tests/test_treedepth.py",
    ),
    "treedepth_off_by_one": (
        "mcgen/kernels/nuts.py",
        "tree.depth >= max_tree_depth,",
        "tree.depth >= max_tree_depth - 1,",
        "tests/test_treedepth.py -k 'stat or defaults'",
    ),
    "treedepth_not_checked": (
        "mcgen/diagnostics.py",
        'if "reached_max_treedepth" in stats:',
        'if "reached_max_treedepth" in stats and False:',
        "tests/test_treedepth.py -k 'warns or names'",
    ),
    "treedepth_counts_chains_not_transitions": (
        "mcgen/diagnostics.py",
        'f"{int(per_chain.sum())} of {hit.size} transitions',
        'f"{int(chains.size)} of {hit.size} transitions',
        "tests/test_treedepth.py -k names",
    ),
    # the low-rank fit waits for mass_min_draws draws in its window (session 23)
    "low_rank_min_draws_ignored": (
        "mcgen/adaptation/low_rank.py",
        "(n >= max(3, min_draws))",
        "(n >= 3)",
        "tests/test_low_rank_metric.py -k 'min_draws'",
    ),
    "low_rank_min_draws_not_passed": (
        "mcgen/adaptation/window.py",
        "min_draws=min(min_draws, buffer_size),",
        "min_draws=3,",
        "tests/test_low_rank_metric.py -k 'min_draws'",
    ),
    # the warmup's cap on NUTS trajectories (warmup_max_tree_depth, session 25)
    "warmup_depth_cap_not_set": (
        "mcgen/adaptation/window.py",
        "params = params._replace(depth_cap=jnp.full_like(params.depth_cap, depth_cap))",
        "params = params",
        "tests/test_treedepth.py -k 'warmup_cap'",
    ),
    "warmup_depth_cap_kept_in_sampling": (
        "mcgen/adaptation/window.py",
        "params = params._replace(depth_cap=ws.state.params.depth_cap)",
        "params = params",
        "tests/test_treedepth.py -k 'warmup_cap'",
    ),
    "depth_cap_ignored_by_trajectory": (
        "mcgen/kernels/_trajectory.py",
        "last = depth + 1 >= (max_depth if c.depth_limit is None else c.depth_limit)",
        "last = depth + 1 >= max_depth",
        "tests/test_treedepth.py -k 'warmup_cap'",
    ),
    # the low-rank fit checked on held-out draws (mass_holdout, session 24)
    "low_rank_holdout_not_passed": (
        "mcgen/adaptation/window.py",
        "holdout=older,",
        "holdout=None,",
        "tests/test_low_rank_metric.py -k 'holdout'",
    ),
    "low_rank_holdout_scored_in_sample": (
        "mcgen/adaptation/low_rank.py",
        "test = w * (1.0 - train)",
        "test = w * train",
        "tests/test_low_rank_metric.py -k 'holdout'",
    ),
    "low_rank_holdout_folds_not_split": (
        "mcgen/adaptation/window.py",
        "older = (buffer.stamp < (oldest + buffer.collected) // 2).astype(flat.dtype)",
        "older = (buffer.stamp >= 0).astype(flat.dtype)",
        "tests/test_low_rank_metric.py -k 'holdout'",
    ),
    "log_condition_not_whitened": (
        "mcgen/adaptation/low_rank.py",
        "xs = xs + ((xs @ vecs) * (vals**-0.5 - 1.0)) @ vecs.T",
        "xs = xs + ((xs @ vecs) * (vals**0.5 - 1.0)) @ vecs.T",
        "tests/test_low_rank_metric.py -k 'log_condition'",
    ),
    # the initial buffer's collapse guard (session 22)
    "collapse_guard_never_restarts": (
        "mcgen/adaptation/window.py",
        "restart = active & collapsed & (guard.restarts < limit)",
        "restart = active & collapsed & (guard.restarts < limit) & False",
        "tests/test_collapse_guard.py -k 'comes_back or bounded'",
    ),
    "collapse_guard_keeps_position": (
        "mcgen/adaptation/window.py",
        "state = _where(restart, start, state)",
        "state = _where(restart, state, state)",
        "tests/test_collapse_guard.py -k 'comes_back or puts_back'",
    ),
    "collapse_guard_keeps_step_size": (
        "mcgen/adaptation/window.py",
        "da = _where(restart, da_init(working), da)",
        "da = _where(restart, da, da)",
        "tests/test_collapse_guard.py -k 'comes_back or puts_back'",
    ),
    "collapse_guard_unbounded": (
        "mcgen/adaptation/window.py",
        "(guard.restarts < limit)",
        "(guard.restarts < limit + 10)",
        "tests/test_collapse_guard.py -k bounded",
    ),
    "collapse_guard_hair_trigger": (
        "mcgen/adaptation/window.py",
        "_COLLAPSE = 1e-4",
        "_COLLAPSE = 0.2",
        "tests/test_collapse_guard.py -k ordinary",
    ),
    # ---- the warmup pooled over the chains (session 31)
    # the pooled Welford estimate forgets the spread between the chains' means
    "pool_welford_no_between_chains": (
        "mcgen/adaptation/window.py",
        "m2 = m2 + n @ (dev * dev)",
        "m2 = m2 + 0.0 * (n @ (dev * dev))",
        "tests/test_pooled_warmup.py -k 'welford or covariance'",
    ),
    # a chain of weight 0 (padding) counted in the pooled estimate
    "pool_welford_counts_padding": (
        "mcgen/adaptation/window.py",
        "keep = weights > 0",
        "keep = weights > -1",
        "tests/test_pooled_warmup.py -k welford",
    ),
    # the pooled low-rank fit on the first chain's buffered rows only
    "pool_low_rank_one_chains_rows": (
        "mcgen/adaptation/window.py",
        "stamp=jnp.where(weights[:, None] > 0, buffer.stamp, -1).reshape(-1),",
        "stamp=jnp.where(jnp.arange(weights.shape[0])[:, None] == 0, buffer.stamp, -1).reshape(-1),",
        "tests/test_pooled_warmup.py -k low_rank",
    ),
    # pool="all" leaves each chain's dual averaging on its own acceptance statistic
    "pool_step_size_not_pooled": (
        "mcgen/adaptation/window.py",
        "accept_prob = chain_mean(jnp.nan_to_num(jnp.asarray(accept_prob, dtype), nan=0.0))",
        "accept_prob = jnp.nan_to_num(jnp.asarray(accept_prob, dtype), nan=0.0)",
        "tests/test_pooled_warmup.py -k mean_acceptance",
    ),
}


def run(name: str, first: bool = False) -> None:
    path, old, new, tests = BUGS[name]
    with tempfile.TemporaryDirectory() as tmp:
        for folder in ("mcgen", "tests", "benchmarks"):  # the tests import the reference models
            shutil.copytree(
                ROOT / folder, pathlib.Path(tmp) / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        target = pathlib.Path(tmp) / path
        text = target.read_text()
        assert old in text, f"{name}: pattern not found in {path}"
        target.write_text(text.replace(old, new))
        env = {**os.environ, "PYTHONPATH": tmp}
        # run from the temporary directory: `python -m` puts the working directory first on
        # sys.path, so the planted copy shadows the real package
        shutil.copy(ROOT / "pyproject.toml", pathlib.Path(tmp) / "pyproject.toml")
        stop = "-x " if first else ""
        # (pyproject's addopts already has -q: a second -q would drop the "N passed" summary)
        cmd = f"{sys.executable} -m pytest -rf {stop}-p no:cacheprovider --rootdir {tmp} {tests}"
        out = subprocess.run(cmd, shell=True, cwd=tmp, env=env, capture_output=True, text=True)
        failed = [
            line.split("::", 1)[-1].split(" ")[0] for line in out.stdout.splitlines() if line.startswith("FAILED")
        ]
        passed = re.search(r"(\d+) passed", out.stdout)
        verdict = "CAUGHT" if failed else "MISSED"
        print(f"{name}: {verdict} by {len(failed)} test(s), {passed.group(1) if passed else 0} passed", flush=True)
        for f in failed:
            print(f"    caught by {f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["--list"]:
        for name, (path, _, _, tests) in BUGS.items():
            print(f"{name:32s} {path:32s} {tests}")
    elif args == ["--check"]:
        stale = [name for name, (path, old, _, _) in BUGS.items() if old not in (ROOT / path).read_text()]
        for name in stale:
            print(f"{name}: pattern not found in {BUGS[name][0]}")
        print(f"{len(BUGS) - len(stale)} of {len(BUGS)} patterns found")
        sys.exit(1 if stale else 0)
    else:
        first = "--first" in args
        names = [a for a in args if a != "--first"]
        unknown = [n for n in names if n not in BUGS]
        if unknown:
            sys.exit(f"unknown bugs: {unknown} (see --list)")
        for bug in names or BUGS:
            run(bug, first)
