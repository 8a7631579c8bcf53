"""The release half of the status report: when and how each experiment was deployed or ended, active
alerts, interrupted operations, and time saved per month."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from . import deploy, gitcommit, journal, monitoring
from .errors import ExperimentError
from .files import read_regular
from .models import DURATION_UNITS, Experiment, parse_iso
from .outcomes import Alert, ReleaseInfo, ReleaseStatus
from .status import forced_label, forced_promotion

if TYPE_CHECKING:
    from .lifecycle import Lab

DAYS_PER_MONTH = 30.0
TIME_SAVED_BASIS = (
    "Estimated for promoted experiments whose primary metric is a duration: (control mean - treatment "
    "mean, in hours) x (trials recorded per day while the experiment ran, counting at least one day) "
    f"x {DAYS_PER_MONTH:g} days. It assumes usage continues at the rate recorded during the experiment."
)
OPERATION_EVENTS = ("recovered", "deploy_undone")


def time_saved_hours_per_month(lab: Lab, e: Experiment) -> float | None:
    metric = e.primary_metric
    if not metric.is_duration or metric.direction != "lower_is_better" or e.started_at is None:
        return None
    running = lab.store.running_stats(e.id)
    control, treatment = running.get(("control", metric.name)), running.get(("treatment", metric.name))
    if control is None or treatment is None or control.n == 0 or treatment.n == 0:
        return None
    hours_per_unit = DURATION_UNITS[metric.unit or "s"] / 3600.0
    saved_per_run = (control.mean - treatment.mean) * hours_per_unit
    end = parse_iso(e.ended_at) if e.ended_at else lab.clock()
    days = max(1.0, (end - parse_iso(e.started_at)) / 86400.0)
    return saved_per_run * (e.trials_recorded / days) * DAYS_PER_MONTH


def changed_since_promotion(lab: Lab, e: Experiment) -> list[str]:
    """Production paths whose content differs from what the promotion put there: the variant, or
    the version a commit hook made of it as the promotion was committed (`hook_version`)."""
    changed = []
    for f in e.files:
        try:
            content: bytes | None = read_regular(lab.project_root / f.production)
        except OSError:
            content = None  # deleted or unreadable
        now = None if content is None else hashlib.sha256(content).hexdigest()
        if now != f.treatment_sha256 and (content is None or not hook_version(lab, e, f.production, content)):
            changed.append(f.production + ("" if now else " (missing)"))
    return changed


def hook_version(lab: Lab, e: Experiment, production: str, content: bytes) -> bool:
    """Whether `content` (not the tested variant) is what a commit hook made of the variant as the
    promotion was committed (a formatter): the promotion's own commit holds it, or, when that
    commit failed (a formatter that fixes the file and refuses the commit, as pre-commit's do), it
    is what the hook left on disk, read at once (`operations._rewritten`). Content committed later
    under the promotion's message is not enough: the advised command commits whatever the file
    holds when the person runs it, their own edits too."""
    from . import gitcommit

    op = journal.latest(lab.store, e.id)
    if op is None or op.operation != "promote" or production not in op.paths:
        return False
    if op.git is not None and op.git.commit:
        if production in op.git.not_as_written:  # saved between the write and the commit: no hook's
            return False
        return gitcommit.committed_as(lab.project_root, op.git.commit, production, content)
    return hashlib.sha256(content).hexdigest() == rewritten_by_hook(lab, op).get(production)


def rewritten_by_hook(lab: Lab, op: journal.Operation) -> dict[str, str]:
    """{path: digest} of the files a refusing commit hook rewrote when `op` was committed."""
    for event in reversed(lab.events(op.experiment_id, kinds=["git"])):
        if event.data.get("operation_id") == op.id:
            found = event.data.get("rewritten_by_hook")
            return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
    return {}


def _git_now(lab: Lab, op: journal.Operation) -> str:
    """The operation's git outcome, as it stands now: a commit that failed (a commit hook refused
    it) and that the person made since, as the outcome advised, is no longer to be made."""
    assert op.git is not None
    if op.git.status != "failed":
        return op.git.detail
    from . import gitcommit

    # committed since: a commit after the operation gave each file what the operation wrote (not
    # merely a clean file: one put back with git checkout is clean too, and the change is then in
    # no commit); files git ignores are in none, and were left out of the advised command too
    unchanged = set(op.data.get("unchanged", ()))  # files that held the new content already
    for step in op.steps:
        if step.old_sha256 == step.new_sha256 or step.production in unchanged:
            continue  # not changed by the operation: no commit of it to look for
        content = lab.store.blob(step.new_sha256)
        if gitcommit.ignored(lab.project_root, step.production):
            continue
        if content is not None and gitcommit.committed_since(lab.project_root, step.production, content, op.created_at):
            continue
        # the advised command, made after a commit hook (a formatter) fixed the file: its version
        fixed = rewritten_by_hook(lab, op).get(step.production)
        fixed_content = None if fixed is None else lab.store.blob(fixed)
        if fixed_content is None or not gitcommit.committed_since(
            lab.project_root, step.production, fixed_content, op.created_at
        ):
            return op.git.detail
    return f"committed since, by hand (the {op.operation}'s own commit had failed: {op.git.detail.split('. ')[0]})"


def release_status(lab: Lab) -> ReleaseStatus:
    now = lab.clock()
    unfinished = journal.unfinished_ids(lab.store)
    running = False
    if unfinished:  # a process that holds the deploy lock is running them now: not interrupted
        with deploy.deploy_lock(lab.state_dir, wait=None) as free:
            running = not free or deploy.recover_starting(lab.state_dir)
    infos, total, finished, promoted = [], None, 0, 0
    for e in lab.experiments():
        info = ReleaseInfo(experiment_id=e.id)
        op = journal.latest(lab.store, e.id)
        if e.status == "promoted":  # (a rollback of it undone around an edit is its latest operation)
            op = journal.latest(lab.store, e.id, "promote")
        journaled = op is not None and op.operation == "promote"
        if e.status == "promoted":
            info.deployed_at = e.ended_at  # set when the promoted files and status were recorded
            if e.ended_at:
                info.days_in_production = round((now - parse_iso(e.ended_at)) / 86400.0, 1)
            info.time_saved_hours_per_month = time_saved_hours_per_month(lab, e)
            info.changed_since = changed_since_promotion(lab, e)
            if info.time_saved_hours_per_month is not None:
                total = (total or 0.0) + info.time_saved_hours_per_month
        if e.status == "promoted" and not journaled:  # promoted elsewhere and imported: its event log says
            said = lab.events(e.id, kinds=["promoted"])
            info.ended_by = str(said[-1].data.get("how", "manual")) if said else "import"
            commits = lab.events(e.id, kinds=["git"])
            if commits:  # "Promote: committed 6b554a6e5a6f" (in the repository it was made in)
                info.git = commits[-1].message.split(": ", 1)[-1] + " (where it was promoted; imported)"
            elif said:
                info.git = "not recorded (imported)"
        elif e.status == "promoted" and op is not None:
            info.ended_by = str(op.data.get("how", "manual"))
            if op.git:
                info.git = _git_now(lab, op)
            elif running:
                info.git = "git commit pending (made in the background)"
            elif gitcommit.index_lock(lab.project_root) is not None:
                info.git = "git commit " + gitcommit.LOCKED
            else:  # the process making it was stopped (killed, or the machine went down)
                info.git = (
                    "git commit not made yet: the process making it stopped; `meta-experiment recover` makes "
                    "it (as does the next start of the server or CLI)"
                )
        elif e.status in ("rolled_back", "expired"):
            ended = lab.events(e.id, kinds=["rolled_back", "expired"])
            if ended:
                info.ended_by = str(ended[-1].data.get("how", "manual"))
            elif lab.events(e.id, kinds=["imported"]):
                info.ended_by = "import"  # ended before it was imported here: not by hand, not by auto
            if op is not None and op.operation == "rollback" and op.git:
                info.git = _git_now(lab, op)
            elif op is None and (commits := lab.events(e.id, kinds=["git"])):  # imported: its event log says
                info.git = commits[-1].message.split(": ", 1)[-1] + " (where it was made; imported)"
        finished += e.status in ("promoted", "rolled_back", "expired")
        # as status's summary: a promotion forced against the policy's verdict is no success
        if journaled:
            assert op is not None
            forced = bool(op.data.get("forced")) and op.data.get("decision") != "promote"
        else:  # imported: its label says whether it was forced, its event what the policy said then
            forced = forced_label(e) and not _backed_by_the_data(lab, e)
        promoted += e.status == "promoted" and not forced
        infos.append(info)
    operations = [
        f"{ev.at} {ev.experiment_id}: {ev.message}" for ev in reversed(lab.events(kinds=list(OPERATION_EVENTS)))
    ]
    for operation_id in unfinished:
        op = journal.load(lab.store, operation_id)
        if op.phase == "applied" and op.actor == "hook":  # done but for its commit: the experiment's
            continue  # Git line says whether it is being made
        if running:
            line = f"{op.experiment_id}: {op.operation} in progress ({op.phase}) in another process"
        elif op.phase == "applied" and gitcommit.index_lock(lab.project_root) is not None:
            line = f"{op.experiment_id}: {op.operation} done but for its git commit, {gitcommit.LOCKED}"
        else:
            line = (
                f"{op.experiment_id}: {op.operation} unfinished ({op.phase}); it is finished or undone by the next "
                "promote or rollback, or at the next start of the server or CLI"
            )
        operations.insert(0, line)
    try:
        lab.settings()
        settings_problem = None
    except ExperimentError as exc:
        settings_problem = str(exc)
    return ReleaseStatus(
        settings_problem=settings_problem,
        experiments=infos,
        alerts=_alerts(lab),
        operations=operations[:20],
        success_rate_pct=round(100.0 * promoted / finished, 1) if finished else None,
        time_saved_hours_per_month=None if total is None else round(total, 1),
        time_saved_basis=TIME_SAVED_BASIS,
    )


def _backed_by_the_data(lab: Lab, e: Experiment) -> bool:
    """Whether the policy said promote when an imported promotion was forced: its promoted event's
    `decision` (recorded since 0007), else the analysis of the data it ended with, as status's
    summary counts it (a forced promotion the data backed is a success; from an export review:
    its label alone made it a failure after a round trip)."""
    said = lab.events(e.id, kinds=["promoted"])
    if said and said[-1].data.get("decision") is not None:
        return said[-1].data.get("decision") == "promote"
    try:
        return not forced_promotion(e, lab.analyze(e.id))
    except Exception:  # the analysis's failure is shown by status; the label alone decides here
        return False


def _alerts(lab: Lab) -> list[Alert]:
    """The active alerts, and those an experiment's end closed (its block lists them as closed):
    of each kind the end closed, the latest."""
    closed_by_end = {
        (ev.experiment_id, ev.data.get("alert"))
        for ev in lab.events(kinds=["alert_cleared"])
        if ev.message.startswith("Closed (")
    }
    latest: dict[tuple[str | None, str], Alert] = {}
    active = []
    for a in monitoring.alerts(lab):
        if a.cleared_at is None:
            active.append(a)
        elif (a.experiment_id, a.kind) in closed_by_end:
            latest[(a.experiment_id, a.kind)] = a  # in the order raised: the last one stays
    return sorted([*active, *latest.values()], key=lambda a: (a.raised_at, a.experiment_id or "", a.kind))
