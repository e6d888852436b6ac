"""A keyrot reporter in Python, built from keyrot's WIT alone (wit/reporter/).

It logs the run's counts and one line per user it is told about: enough to
see, in keyrot's report, exactly what a reporter receives. Copy it to start
a reporter of your own (add wasi:http to send the lines somewhere).
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import store
from wit_world.imports.logging import Level, log
from wit_world.imports.types import PluginInfo, RunReport, Setting


def word(value) -> str:
    """A WIT enum case as keyrot spells it: NEEDS_ATTENTION -> needs-attention."""
    return value.name.lower().replace("_", "-")


class Reporter(exports.Reporter):
    def describe(self) -> PluginInfo:
        prefix = Setting("prefix", "Word to start each line with, e.g. keyrot", False, False)
        return PluginInfo("python-report", "0.1.0", "Logs what it is told (a demo).", [prefix])

    def report(self, run: RunReport) -> None:
        try:
            prefix = store.get("prefix") or "keyrot"
        except Err as e:  # raising Err(message) returns the error to keyrot
            raise Err(f"cannot read settings: {e.value}")
        s = run.summary
        log(Level.INFO, "summary",
            f"{prefix}: {s.users} users, {s.rotated} rotated, {s.failed} failed, "
            f"exit {s.exit_code}, dry run {run.dry_run}")
        for user in run.users:
            events = ",".join(word(e) for e in user.events)
            new_key = user.new_key.access_key_id if user.new_key else "-"
            log(Level.INFO, "user",
                f"{prefix}: {user.account or '?'}/{user.user} {word(user.outcome)} "
                f"events={events} new={new_key} old={len(user.old_keys)} "
                f"warnings={len(user.warnings)}")
