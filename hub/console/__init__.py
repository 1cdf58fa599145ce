"""The control room's own warnings: drafts, four-eyes approval, sending, follow-ups, preview, inbox and status.

No HTTP here: the web layer (hub/web/console.py, console_api.py) and ``warnhub cancel`` call these functions on the
store's writer thread (``AsyncStore.run``), each imported from the module that defines it (this package re-exports
nothing). Modules: ``model`` (constants, user protocol, policy, config, errors, guards; what is enforced whatever a
form says), ``tables`` (schema, rows, reads; a version's states), ``forms`` (validation), ``alert`` (templates,
CAP), ``drafts`` (create, edit, submit, reject, withdraw, follow-ups), ``targeting`` (plan, confirmation, preview),
``release`` (approve, send: stored through the intake with the operators' decision), ``overview`` (inbox, status),
``ending`` (cancel without the console).
"""
