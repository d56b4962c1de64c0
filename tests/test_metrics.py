"""The metrics the warmup adapts (`sample(metric=...)`): each approximates the
covariance of a correlated Gaussian the way its estimator promises, the low-rank one
needs fewer gradients than the diagonal, and every metric keeps the loop's
properties (chunking, chain methods, the adaptation group)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import logdensity as ld

# a 4-d Gaussian: two strongly correlated coordinates, two of very different scales
COV = np.array(
    [
        [1.0, 0.95, 0.0, 0.0],
        [0.95, 1.0, 0.0, 0.0],
        [0.0, 0.0, 9.0, 0.0],
        [0.0, 0.0, 0.0, 0.01],
    ]
)
PRECISION = np.linalg.inv(COV)
RUN = {"num_warmup": 600, "num_samples": 600, "progress_bar": False}


def _gaussian():
    return ld.from_jax(lambda p: -0.5 * p["x"] @ PRECISION @ p["x"], {"x": jnp.zeros(4)})


def _low_rank_matrix(adaptation, chain):
    sigma = adaptation["sigma"].values[chain]
    u, lam = adaptation["U"].values[chain], adaptation["lam"].values[chain]
    inner = np.eye(len(sigma)) + u @ np.diag(lam - 1.0) @ u.T
    return np.diag(sigma) @ inner @ np.diag(sigma)


def _condition(inverse_mass_matrix):
    """The condition number of the target as HMC sees it through the metric: the
    spread of the eigenvalues of `M Σ` (1 for a metric equal to the covariance)."""
    w = np.linalg.eigvals(np.linalg.solve(inverse_mass_matrix, COV)).real
    return float(w.max() / w.min())


def _matrix(metric, adaptation, chain):
    if metric == "low_rank":
        return _low_rank_matrix(adaptation, chain)
    imm = adaptation["inverse_mass_matrix"].values[chain]
    return np.diag(imm) if imm.ndim == 1 else imm


@pytest.fixture(scope="module")
def runs():
    with jax.enable_x64(True):
        model = _gaussian()
        return {
            metric: ld.sample(model, jax.random.key(0), metric=metric, **RUN)
            for metric in ("diag", "dense", "low_rank", "fisher_diag")
        }


def test_each_metric_approximates_the_covariance(runs):
    """Measured on every chain: the identity leaves this target at condition 900; the
    best any diagonal can do is 39 (the correlation of 0.95: 1.95 / 0.05); the dense
    estimate reaches about 1.8 (a few hundred warmup draws) and the low-rank Fisher
    metric 1.0 (exact for a Gaussian once the draws outnumber the dimensions)."""
    assert _condition(np.eye(4)) > 800
    for chain in range(4):
        c = {m: _condition(_matrix(m, runs[m].adaptation, chain)) for m in runs}
        assert 30 < c["diag"] < 50, c
        assert 30 < c["fisher_diag"] < 50, c
        assert c["dense"] < 3, c
        assert c["low_rank"] < 1.5, c
        # the Fisher diagonal of a Gaussian: sqrt(marginal variance / precision), between
        # the conditional and the marginal variance of each coordinate
        fisher = runs["fisher_diag"].adaptation["inverse_mass_matrix"].values[chain]
        np.testing.assert_allclose(fisher, np.sqrt(np.diag(COV) / np.diag(PRECISION)), rtol=0.3)


def test_low_rank_needs_fewer_gradients_than_the_diagonal(runs):
    """Leapfrog steps per draw, the median over chains (measured: about 3 for the low
    rank, 5 dense, 15 diagonal). Before the kernel's extra U-turn checks, one low-rank
    chain of four here ran 26 steps a draw, missing U-turns on the target its metric
    whitens exactly; the median kept the test about the metrics."""
    steps = {
        k: float(np.median(v.sample_stats["n_steps"].mean("draw").values)) for k, v in runs.items()
    }
    assert steps["low_rank"] < 0.6 * steps["diag"], steps
    assert steps["dense"] < 0.6 * steps["diag"], steps


def test_every_metric_samples_the_target(runs):
    for metric, idata in runs.items():
        draws = idata.posterior["x"].values.reshape(-1, 4)
        np.testing.assert_allclose(np.std(draws, axis=0), np.sqrt(np.diag(COV)), rtol=0.15)
        assert idata.attrs["metric"] == metric


def test_the_adaptation_group_holds_what_continues_a_run(runs):
    low_rank = runs["low_rank"].adaptation
    assert set(low_rank.data_vars) == {"step_size", "sigma", "U", "lam"}
    assert low_rank["sigma"].dims == ("chain", "unconstrained")
    assert low_rank["U"].shape == (4, 4, 4)  # every direction of a 4-d model
    assert low_rank["lam"].dims == ("chain", "rank")
    # the low-rank step size in the draws is the adapted one
    np.testing.assert_allclose(
        runs["low_rank"].sample_stats["step_size"].values[:, 0], low_rank["step_size"].values
    )


@pytest.mark.parametrize("metric", ["low_rank", "fisher_diag"])
def test_staged_draws_do_not_depend_on_the_chunks_or_the_chain_method(x64, metric):
    model = _gaussian()
    short = {"num_warmup": 120, "num_samples": 30, "progress_bar": False, "metric": metric}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ld.SamplingWarning)
        a = ld.sample(model, jax.random.key(3), chunk_size=25, **short)
        b = ld.sample(model, jax.random.key(3), chunk_size=150, **short)
        c = ld.sample(model, jax.random.key(3), chain_method="sequential", **short)
    np.testing.assert_array_equal(a.posterior["x"].values, b.posterior["x"].values)
    # vectorized and sequential programs round apart in the last bit (see `sample`); on
    # this machine two draws near 1e-4 differ by 8e-12, so an absolute floor for O(1) draws
    np.testing.assert_allclose(
        a.posterior["x"].values, c.posterior["x"].values, rtol=1e-8, atol=1e-10
    )


def test_max_rank_caps_the_factors(x64):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ld.SamplingWarning)
        idata = ld.sample(_gaussian(), jax.random.key(0), metric="low_rank", max_rank=2, **RUN)
    assert idata.adaptation["U"].shape == (4, 4, 2)


def test_metric_arguments_are_checked():
    model = _gaussian()
    with pytest.raises(ValueError, match="metric must be one of"):
        ld.sample(model, jax.random.key(0), metric="full")
    with pytest.raises(ValueError, match="max_rank must be a positive integer"):
        ld.sample(model, jax.random.key(0), metric="low_rank", max_rank=0)
    quiet = {"num_warmup": 50, "num_samples": 10, "progress_bar": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ld.SamplingWarning)
        with pytest.warns(DeprecationWarning, match="metric='dense'"):
            idata = ld.sample(model, jax.random.key(0), dense_mass=True, **quiet)
    assert idata.adaptation["inverse_mass_matrix"].shape == (4, 4, 4)
    with (
        pytest.raises(ValueError, match="contradicts"),
        pytest.warns(DeprecationWarning, match="deprecated"),
    ):
        ld.sample(model, jax.random.key(0), dense_mass=True, metric="low_rank")


def test_a_draw_where_the_chain_did_not_move_stays_out_of_the_low_rank_buffer(x64):
    """nuts-rs keeps a draw for the low-rank metric only where NUTS moved the chain; a
    copy of the last draw (a trajectory that picked its start) is not added, so the
    draws' variance cannot collapse to zero on a chain's rejected steps."""
    from blackjax.adaptation.metric_recipes import _build_fisher_low_rank_accumulating_core

    from logdensity._sample._adaptation import _moved_draws_only

    core = _build_fisher_low_rank_accumulating_core(
        buffer_size=8, max_rank=2, gamma=1e-5, cutoff=2.0
    )
    update = jax.jit(_moved_draws_only(core.update))
    x = jnp.array([0.1, 0.2, 0.3])
    state = core.init(3)
    for position in (x, x, x + 1.0, x + 1.0, x):
        state = update(state, position, -position)
    assert int(state.buffer_idx) == 3  # x, x + 1, x: the two copies left out
    np.testing.assert_array_equal(state.draws_buffer[:3], np.stack([x, x + 1.0, x]))


@pytest.mark.slow
def test_no_low_rank_chain_freezes_in_warmup_on_rat_tumors(x64):
    """The run that showed the copies' harm: rat tumors, seed 0, threaded chains. With
    every draw in the buffer, chain 0 froze two coordinates (scale 1e-20) and took
    242,246 warmup leapfrog steps against ~13,500 for the others (min bulk ESS 7). Now
    every chain takes under twice the median."""
    from logdensity import zoo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ld.SamplingWarning)
        idata = ld.sample(zoo.build("rat_tumors", "jax"), jax.random.key(0), metric="low_rank",
                          chain_method="threaded", num_samples=200, save_warmup=True,
                          progress_bar=False)  # fmt: skip
    steps = idata.warmup_sample_stats["n_steps"].values.sum(axis=1)
    assert steps.max() < 2 * np.median(steps), steps


def test_the_low_rank_step_size_reaches_its_target_acceptance_rate(runs):
    """nutpie's dual averaging restarts at the first window end only. BlackJAX's engine
    restarts it at every one, and its average over the final window came out small:
    acceptance 0.87-0.90 in every chain here (the target is 0.8), 4.4-6.2 leapfrog
    steps a draw; now 0.82-0.84 and 3 steps. The bound 0.86 is what the dual
    averaging's own noise leaves (Stan's runs realise 0.80-0.85 for a target of 0.8)."""
    accept = runs["low_rank"].sample_stats["acceptance_rate"].mean("draw").values
    assert 0.75 < accept.mean() < 0.86, accept
    steps = runs["low_rank"].sample_stats["n_steps"].mean("draw").values
    assert steps.max() < 4, steps


@pytest.mark.parametrize("metric", ["diag", "dense", "low_rank"])
def test_nuts_without_the_extra_u_turn_checks_is_blackjaxs(metric, x64):
    """`_nuts.build_kernel(extra_checks=False)` draws what `blackjax.nuts` draws, bit for
    bit (300 transitions of a 4-d Gaussian, each metric's inverse mass matrix form), so
    that the extra checks are the only difference of the loop's kernel."""
    import blackjax
    from blackjax.mcmc.metrics import LowRankInverseMassMatrix

    from logdensity._sample import _nuts

    def logdensity_fn(p):
        return -0.5 * p["x"] @ PRECISION @ p["x"]

    imm = {
        "diag": jnp.asarray(np.diag(COV)),
        "dense": jnp.asarray(COV),
        "low_rank": LowRankInverseMassMatrix(
            jnp.asarray(np.sqrt(np.diag(COV))), jnp.eye(4)[:, :2], jnp.array([1.9, 0.1])
        ),
    }[metric]
    state = blackjax.nuts.init({"x": jnp.ones(4)}, logdensity_fn)

    def draws(kernel):
        def step(s, key):
            s, info = kernel(key, s, logdensity_fn, 0.6, imm, 10)
            return s, (s.position["x"], info.num_integration_steps, info.acceptance_rate)

        return jax.jit(lambda k: jax.lax.scan(step, state, jax.random.split(k, 300))[1])(
            jax.random.key(1)
        )

    ours, theirs = (
        draws(_nuts.build_kernel(extra_checks=False)),
        draws(blackjax.nuts.build_kernel()),
    )
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    robust = draws(_nuts.build_kernel())  # never longer trajectories
    assert float(robust[1].mean()) <= float(theirs[1].mean())


def test_the_extra_u_turn_checks_stop_where_a_whitened_gaussian_turns(x64):
    """The case the checks were made for (stan-dev/stan#2800): a standard normal seen
    through its exact metric, at step size 0.9. Without them NUTS misses U-turns across
    the halves of its trajectory and runs to the next doubling: 4.9 leapfrog steps a
    draw against 3.9 (1,000 transitions), with the same target (mean and variance
    within 5 MCSE of 0 and 1; the draws are nearly independent)."""
    import blackjax

    from logdensity._sample import _nuts

    def logdensity_fn(x):
        return -0.5 * x @ x

    def run(kernel):
        def step(s, key):
            s, info = kernel(key, s, logdensity_fn, 0.9, jnp.ones(4), 10)
            return s, (s.position, info.num_integration_steps)

        state = blackjax.nuts.init(jnp.zeros(4), logdensity_fn)
        keys = jax.random.split(jax.random.key(1), 1000)
        return jax.jit(lambda k: jax.lax.scan(step, state, k)[1])(keys)

    (_, plain), (draws, robust) = run(blackjax.nuts.build_kernel()), run(_nuts.build_kernel())
    assert float(robust.mean()) < 0.85 * float(plain.mean()), (robust.mean(), plain.mean())
    mcse = 5 / np.sqrt(len(draws))
    np.testing.assert_allclose(np.mean(draws, axis=0), 0.0, atol=mcse)
    np.testing.assert_allclose(np.var(draws, axis=0), 1.0, atol=mcse * np.sqrt(2))


def test_the_low_rank_metric_is_recomputed_at_nutpies_cadence(x64):
    """nutpie recomputes its low-rank metric at each window switch and 10 draws after
    the last recompute (nuts-rs's `mass_matrix_update_freq = 10`): the metric changes at
    a window end, or 10 moved draws after its last change, and nowhere else; beyond
    `RECOMPUTE_IN_WINDOWS_UP_TO` dimensions only at window ends."""
    from types import SimpleNamespace

    import blackjax

    from logdensity._sample._adaptation import adaptation
    from logdensity._sample._settings import (
        LOW_RANK_RECOMPUTE_EVERY,
        RECOMPUTE_IN_WINDOWS_UP_TO,
        Settings,
    )

    def config(dim):
        common = dict(num_chains=1, num_warmup=300, num_samples=10, chain_method="sequential")
        fixed = dict(target_acceptance_rate=0.8, max_tree_depth=10, init_jitter=2.0)
        rest = dict(max_init_tries=20, chunk_size=None, progress_bar=False, save_warmup=False)
        return Settings.checked(
            dim=dim, metric="low_rank", max_rank=None, **common, **fixed, **rest
        ).config

    assert config(4).recompute_every == LOW_RANK_RECOMPUTE_EVERY == 10
    big = config(RECOMPUTE_IN_WINDOWS_UP_TO + 1)
    assert big.recompute_every == big.buffer_size  # no window is longer: never mid-window

    adapt = adaptation(config(4))
    schedule = adapt.schedule(300)
    logdensity_fn = _gaussian()
    start = blackjax.nuts.init({"x": jnp.ones(4)}, logdensity_fn)
    state = adapt.init(jax.random.key(0), start, logdensity_fn)
    update = jax.jit(
        lambda s, row, k, a: adapt.update(s, row, k, SimpleNamespace(acceptance_rate=a))
    )
    draws = jax.random.normal(jax.random.key(1), (300, 2, 4))  # every draw moves
    sigmas = []
    for step in range(300):
        moved = start._replace(
            position={"x": draws[step, 0]}, logdensity_grad={"x": draws[step, 1]}
        )
        state = update(state, jnp.asarray(schedule[step]), moved, 0.8)
        sigmas.append(np.asarray(adapt.parameters(state).inverse_mass_matrix.sigma))
    changed = np.flatnonzero(np.any(np.diff(np.stack(sigmas), axis=0) != 0, axis=1)) + 1
    ends = set(np.flatnonzero(schedule[:, 1] > 0))
    assert changed.size > 10
    last = None
    for step in changed:
        assert step in ends or (last is not None and step - last == 10), (step, last)
        last = step
    slow = np.flatnonzero(schedule[:, 0] == 1)
    assert changed.max() <= slow.max()  # none in the final step-size-only phase


def test_blackjaxs_schedules_are_kept_as_read_only_host_arrays():
    """BlackJAX builds Stan's and nutpie's schedules as device arrays (a small program
    to compile); the loop builds each length once, as a read-only int32 NumPy array
    equal to BlackJAX's, and nutpie's low-rank windows mark their first end on a copy."""
    from blackjax.adaptation import window_adaptation
    from blackjax.adaptation.low_rank_adaptation import build_growing_window_schedule

    from logdensity._sample._adaptation import nutpie_schedule, stan_schedule
    from logdensity._sample._settings import low_rank_schedule

    for ours, blackjax_schedule in (
        (stan_schedule, window_adaptation.build_schedule),
        (low_rank_schedule, build_growing_window_schedule),
    ):
        schedule = ours(150)
        assert ours(150) is schedule
        assert isinstance(schedule, np.ndarray)
        assert schedule.dtype == np.int32
        assert not schedule.flags.writeable
        np.testing.assert_array_equal(schedule, np.asarray(blackjax_schedule(150)))
        assert ours(0).shape == (0, 2)
    marked = nutpie_schedule(150)
    assert np.sum(marked[:, 1] == 2) == 1
    assert np.sum(low_rank_schedule(150)[:, 1] == 2) == 0


def test_nutpies_diagonal_windows():
    """nuts-rs's `GlobalStrategy` at nutpie's defaults, 1000 warmup draws: the estimators
    switch after 10 background draws in the first 300, after 80 later, never where a
    switch would reach into the final 150 draws, which adapt the step size only."""
    from logdensity._sample._adaptation import nutpie_diag_schedule

    schedule = nutpie_diag_schedule(1000)
    assert schedule.shape == (1000, 2)
    assert schedule.dtype == np.int32
    np.testing.assert_array_equal(schedule[:300, 0], 10)
    np.testing.assert_array_equal(schedule[300:771, 0], 80)  # 770 + 80 = 850, the last
    np.testing.assert_array_equal(schedule[771:, 0], 0)
    np.testing.assert_array_equal(schedule[:850, 1], 1)
    np.testing.assert_array_equal(schedule[850:, 1], 0)
    assert nutpie_diag_schedule(0).shape == (0, 2)


def test_nutpies_diagonal_starts_from_the_gradient_and_switches_its_estimators(x64):
    """The start is `1 / |∇ log p|`; a draw enters both estimators unless the chain did
    not move; after `schedule[:, 0]` background draws the background becomes the
    foreground and a new background starts; the metric is the foreground's Fisher
    diagonal `sqrt(var(x) / var(∇ log p))` from its third draw on."""
    import blackjax

    from logdensity._sample._adaptation import nutpie_diag
    from logdensity._sample._kernel import zero_stats
    from logdensity._sample._settings import Config

    def logdensity_fn(x):
        return -0.5 * jnp.sum((x / jnp.array([0.1, 10.0])) ** 2)

    adapt = nutpie_diag(Config(metric="fisher_diag"))
    start = jnp.array([1.0, 1.0])

    def kernel_state(x):
        return blackjax.nuts.init(x, logdensity_fn)

    state = adapt.init(jax.random.key(0), kernel_state(start), logdensity_fn)
    np.testing.assert_allclose(state.inverse_mass_matrix, [0.01, 100.0])  # 1 / |(-100, -0.01)|
    update = jax.jit(adapt.update)
    stats = zero_stats(jnp.float64)._replace(acceptance_rate=jnp.asarray(0.8))
    rng = np.random.default_rng(0)
    draws = [start]
    for i in range(12):
        x = draws[-1] if i == 4 else jnp.asarray(rng.normal(size=2) * [0.1, 10.0])
        if i != 4:
            draws.append(x)
        state = update(state, jnp.array([5, 1], jnp.int32), kernel_state(x), stats)
    # the start and 11 moved draws, a switch at 5 background draws (after the 4th moved
    # draw, then the 9th): the foreground holds the last 7 moved draws, the background 2
    assert int(state.foreground.count) == 7, state.foreground.count
    assert int(state.background.count) == 2, state.background.count
    window = np.stack(draws[-7:])
    grads = window / -np.array([0.01, 100.0])
    expected = np.sqrt(np.var(window, axis=0) / np.var(grads, axis=0))
    np.testing.assert_allclose(state.inverse_mass_matrix, expected, rtol=1e-10)
    # the final window: neither estimator takes the draw, the metric stays
    final = update(state, jnp.array([0, 0], jnp.int32), kernel_state(start + 3.0), stats)
    assert int(final.foreground.count) == 7
    np.testing.assert_array_equal(final.inverse_mass_matrix, state.inverse_mass_matrix)


def test_nutpies_diagonal_leaves_deep_trees_early_where_stans_windows_wait(x64):
    """A 200-d Gaussian with scales from 1/30 to 30: Stan's windows keep the identity
    metric for the first 75 warmup draws, which run near the maximum tree depth here;
    nutpie's diagonal starts from the gradient and re-estimates from its third draw.
    Measured (seed 0, 4 chains): leapfrog steps over the first 75 warmup draws, 923 a
    draw for `"diag"` (the maximum tree depth's 1023 at most), 13 for `"fisher_diag"`;
    both sample the scales."""
    scales = jnp.logspace(-1.5, 1.5, 200)
    model = ld.from_jax(lambda p: -0.5 * jnp.sum((p["x"] / scales) ** 2), {"x": jnp.zeros(200)})
    kw = {"num_warmup": 300, "num_samples": 300, "progress_bar": False, "save_warmup": True}
    with warnings.catch_warnings():  # 300 draws of 200 scalars: R-hat near 1.01 by chance
        warnings.simplefilter("ignore", ld.SamplingWarning)
        runs = {
            m: ld.sample(model, jax.random.key(0), metric=m, **kw) for m in ("diag", "fisher_diag")
        }
    early = {m: float(r.warmup_sample_stats["n_steps"][:, :75].mean()) for m, r in runs.items()}
    assert early["fisher_diag"] < 0.2 * early["diag"], early
    for idata in runs.values():
        sd = idata.posterior["x"].values.reshape(-1, 200).std(axis=0)
        np.testing.assert_allclose(sd / scales, 1.0, rtol=0.25)
        assert float(idata.sample_stats.attrs["max_rhat"]) < 1.05
