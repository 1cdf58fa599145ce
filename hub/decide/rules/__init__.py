"""Operators' rules: load and check ``rules/*.toml`` and ``rules/templates/*.toml``, evaluate alerts and sensor
readings against them, replay saved inputs. rules/README.md is the operators' description; the semantics are in
:mod:`hub.decide.rules.engine`.

For the daemon (:class:`~hub.decide.rules.engine.LiveRules`, :class:`~hub.decide.rules.sensors.SensorWatch`)::

    live = LiveRules.open(loaded.base / "rules", sensors=sensor_ids)   # RulesError: refuse to start
    decision = live.current.evaluate(alert, origin=source_name, previous=prev_alert,
                                     district=cfg.hub.district_ars)
    watch = SensorWatch(live.current, units=sensor_units)
    events = watch.feed(sensor_id, ts, value) + watch.tick(now)        # SensorEvent.draft: the draft to approve
    if live.reload():            # SIGHUP; or live.reload_if_changed() on a timer
        watch.swap(live.current)
    live.health()                # {"rules", "templates", "loaded_at", "refused": {"at", "errors"} | None}

The modules, in the order a rules folder is read: :mod:`~hub.decide.rules.problems` (file, line and field of every
problem), :mod:`~hub.decide.rules.values` (value checks), :mod:`~hub.decide.rules.model` (what a rule becomes),
:mod:`~hub.decide.rules.conditions` and :mod:`~hub.decide.rules.actions` (a rule's ``when``/``unless`` and
``then``), :mod:`~hub.decide.rules.templates` and :mod:`~hub.decide.rules.template_checks` (templates and drafts),
:mod:`~hub.decide.rules.load` (a whole folder); then :mod:`~hub.decide.rules.matching` and
:mod:`~hub.decide.rules.engine` (evaluating an alert), :mod:`~hub.decide.rules.sensors` (readings),
:mod:`~hub.decide.rules.replay` (saved inputs). This package re-exports nothing.
"""
