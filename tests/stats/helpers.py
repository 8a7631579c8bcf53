"""Building AnalysisInputs from plain value lists, and dense reference computations, for tests."""

import math

import numpy as np

from meta_experiment.models import ARMS, MetricSpec, Targets
from meta_experiment.stats.analysis import AnalysisInputs, analyze
from meta_experiment.stats.summary import Summary

DAY = 86400.0
T0 = 1_700_000_000.0


def inputs(
    control,
    treatment,
    *,
    spec=None,
    targets=None,
    required=10,
    days=3.0,
    secondary=(),
    extra=None,
    raw=False,
    assigned=None,
    successes=None,
    max_days=14.0,
    log_summaries=None,
):
    spec = spec or MetricSpec(name="time", direction="lower_is_better", unit="min")
    summaries = {("control", spec.name): Summary.of(control), ("treatment", spec.name): Summary.of(treatment)}
    raw_values = {("control", spec.name): list(control), ("treatment", spec.name): list(treatment)}
    for name, (c, t) in (extra or {}).items():
        summaries[("control", name)], summaries[("treatment", name)] = Summary.of(c), Summary.of(t)
        raw_values[("control", name)], raw_values[("treatment", name)] = list(c), list(t)
    recorded = {"control": len(control), "treatment": len(treatment)}
    return AnalysisInputs(
        primary=spec,
        targets=targets or Targets(),
        summaries=summaries,
        assigned=assigned or recorded,
        recorded=recorded,
        sample_size_required=required,
        now=T0 + days * DAY,
        started_at=T0,
        max_duration_days=max_days,
        secondary=tuple(secondary),
        successes=successes,
        raw_values=raw_values if raw else None,
        log_summaries=log_summaries,
    )


def policy_analyses(arm, x, setting, n_required, log_scale, treatment_percent=50, success=None):
    """analyze (with policy.decide) after every trial of one simulated experiment from
    stats.simulate.generate, from the n_required-th trial on: the Analysis at each look."""
    kind = "binary" if setting == "binary" else "continuous"
    direction = "higher_is_better" if kind == "binary" else "lower_is_better"
    spec = MetricSpec(name="m", direction=direction, kind=kind, log_scale=log_scale)
    for n in range(n_required, x.size + 1):
        arms = {a: x[:n][arm[:n] == i] for i, a in enumerate(ARMS)}
        logs = {(a, "m"): Summary.of(np.log(v)) for a, v in arms.items()} if log_scale else None
        yield analyze(
            AnalysisInputs(
                primary=spec,
                targets=Targets(),
                summaries={(a, "m"): Summary.of(v) for a, v in arms.items()},
                assigned={a: v.size for a, v in arms.items()},
                recorded={a: v.size for a, v in arms.items()},
                successes=None
                if success is None
                else {a: int(success[:n][arm[:n] == i].sum()) for i, a in enumerate(ARMS)},
                sample_size_required=n_required,
                now=0.0,
                started_at=0.0,
                max_duration_days=1e3,
                log_summaries=logs,
                control_share=1 - treatment_percent / 100,
            )
        )


def look_actions(promote, rollback):
    """The action at each look of stats.simulate.looks's (promote, rollback) rows."""
    return ["promote" if p else "rollback" if r else "continue" for p, r in zip(promote, rollback, strict=True)]


def cr2_dense(values_c, units_c, values_t, units_t, rho):
    """(se of the treatment coefficient by CR2, Bell-McCaffrey df under the working model
    sigma_arm^2 ((1 - rho) I + rho J_g)), from the full matrices."""
    y = np.concatenate([values_c, values_t])
    arm = np.r_[np.zeros(len(values_c)), np.ones(len(values_t))]
    # a value without a unit is a cluster of its own
    groups = [("c", u if u is not None else i) for i, u in enumerate(units_c)]
    groups += [("t", u if u is not None else i) for i, u in enumerate(units_t)]
    labels = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    gid = np.array([labels[g] for g in groups])
    x = np.column_stack([np.ones_like(y), arm])
    bread = np.linalg.inv(x.T @ x)
    h = x @ bread @ x.T
    e = y - h @ y
    n = len(y)
    ell = np.array([0.0, 1.0])
    meat = np.zeros((2, 2))
    g_columns = []
    for g in range(len(labels)):
        idx = np.flatnonzero(gid == g)
        vals, vecs = np.linalg.eigh(np.eye(len(idx)) - h[np.ix_(idx, idx)])
        a_g = vecs @ np.diag(vals**-0.5) @ vecs.T
        score = x[idx].T @ a_g @ e[idx]
        meat += np.outer(score, score)
        # column g of G: (I - H)' restricted to the rows of g, times A_g X_g (X'X)^-1 ell
        column = (np.eye(n) - h)[idx].T @ (a_g @ x[idx] @ bread @ ell)
        g_columns.append(column)
    v = bread @ meat @ bread
    sigma2 = np.where(arm == 0, np.var(values_c, ddof=1), np.var(values_t, ddof=1))
    omega = np.zeros((n, n))
    for g in range(len(labels)):
        idx = np.flatnonzero(gid == g)
        block = (1 - rho) * np.eye(len(idx)) + rho * np.ones((len(idx), len(idx)))
        omega[np.ix_(idx, idx)] = block * sigma2[idx][:, None] ** 0.5 * sigma2[idx][None, :] ** 0.5
    gm = np.column_stack(g_columns)
    lam = np.linalg.eigvalsh(gm.T @ omega @ gm)
    return math.sqrt(v[1, 1]), lam.sum() ** 2 / (lam**2).sum()


def anova_icc(arms):
    """The ANOVA estimate of the intra-unit correlation from raw (values, units) per arm, each arm
    with its own mean, by the textbook one-way formulas (a value without a unit is its own group)."""
    ssb = ssw = 0.0
    n_total, groups, n0_sum = 0, 0, 0.0
    for values, units in arms:
        values = np.asarray(values, float)
        keys = [("trial", i) if u is None else u for i, u in enumerate(units)]
        names = list(dict.fromkeys(keys))
        arm_mean = values.mean()
        for name in names:
            member = values[[k == name for k in keys]]
            ssb += len(member) * (member.mean() - arm_mean) ** 2
            ssw += ((member - member.mean()) ** 2).sum()
            n0_sum += len(member) ** 2 / len(values)
        n_total += len(values)
        groups += len(names)
    msb, msw = ssb / (groups - len(arms)), ssw / (n_total - groups)
    n0 = (n_total - n0_sum) / (groups - len(arms))
    return (msb - msw) / (msb + (n0 - 1) * msw)
