"""Operators' rules: load and check ``rules/*.toml`` and ``rules/templates/*.toml``, evaluate alerts and sensor
readings against them, replay saved inputs. rules/README.md is the operators' description; the semantics are in
:mod:`hub.rules.engine`.

For the daemon::

    live = LiveRules.open(loaded.base / "rules", sensors=sensor_ids)   # RulesError: refuse to start
    decision = live.current.evaluate(alert, origin=source_name, previous=prev_alert,
                                     district=cfg.hub.district_ars)
    watch = SensorWatch(live.current, units=sensor_units)
    events = watch.feed(sensor_id, ts, value) + watch.tick(now)        # SensorEvent.draft: the draft to approve
    if live.reload():            # SIGHUP; or live.reload_if_changed() on a timer
        watch.swap(live.current)
    live.health()                # {"rules", "templates", "loaded_at", "refused": {"at", "errors"} | None}
"""

from hub.decide.rules.engine import Decision, LiveRules, Refusal, RuleSet, fingerprint, provider
from hub.decide.rules.load import DEFAULT_CHANNELS, Problem, Rule, RulesError
from hub.decide.rules.sensors import SensorEvent, SensorWatch
from hub.decide.rules.templates import Draft, Template

__all__ = ["DEFAULT_CHANNELS", "Decision", "Draft", "LiveRules", "Problem", "Refusal", "Rule", "RuleSet",
           "RulesError", "SensorEvent", "SensorWatch", "Template", "fingerprint", "provider"]
