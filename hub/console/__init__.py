"""The control room's own warnings: drafts, four-eyes approval, sending, follow-ups, preview, inbox and status.

Tables ``console_warnings`` (one row per version of an operator warning; ``thread`` names the incident across
versions) and ``console_events`` (what happened to each version, by whom). No HTTP here: the web layer calls these
functions on the store's writer thread (``AsyncStore.run``).

A version goes draft -> submitted -> approved -> sent, or ends rejected or withdrawn. Sending makes a CAP 1.2 alert,
checks it like any document (XSD and semantic checks, :func:`hub.intake.check_document`), stores it through the
normal path (:meth:`~hub.store.Store.add_record`, origin ``console``) and records its ``publish`` decision
(:func:`hub.decisions.record`) in **one transaction**: the operators decided, so the rules router never decides it
(it only decides versions without a decision). The pipeline then publishes it like any publish decision; call
``Pipeline.wake()`` after :func:`approve` or :func:`send` returns.

Enforced here, whatever a form says:

* permissions (compose, approve) and scope: every area must lie inside the acting user's regions (``check_area``
  for shapes, the ARS hierarchy for selected regions);
* four eyes: a severity in ``FourEyes.required_for`` needs an approver who neither wrote nor edited the version;
  only where the admin allows it may someone with approve permission send an Extreme or Immediate warning alone,
  with a written reason (audited as ``console.single_person``);
* a thread never changes status or audience: an exercise stays an exercise (every text marked, CAP status
  Exercise); a topic message goes to the push subscribers of its topic only, never to a public channel;
* sending needs the confirmation token of a preview of exactly this content, area, audience and channels.
* a public warning can always be ended: follow-ups start from the thread's newest sent version whatever happened
  to drafts begun before; sending a version withdraws the thread's other open versions; a Cancel or all-clear may
  be sent alone by an approver with a reason (``FourEyes.end_needs_two``, ``[console] four_eyes_end``, off by
  default; audited as ``console.end_alone``). ``ending`` does the same for ``warnhub cancel``.

Every operation is one transaction with its audit entry (``console.<action>``). Refusals raise
:class:`ConsoleForbidden` (an :class:`~hub.errors.AuthError`; audited as ``console.refused``), :class:`StalePreview`
or :class:`ConsoleError`; their messages are German, then English.

Modules: ``model`` (constants, user protocol, policy, config, errors, guards), ``tables`` (schema, rows,
reads), ``forms`` (validation), ``alert`` (templates, CAP), ``drafts`` (create, edit, submit, reject, withdraw,
follow-ups), ``targeting`` (plan, confirmation, preview), ``release`` (approve, send), ``overview`` (inbox,
status), ``ending`` (cancel without the console). This package re-exports their public names.
"""

from hub.console.alert import all_clear_template, build_alert, template_content
from hub.console.drafts import create_draft, edit_draft, follow_up, reject, submit, withdraw
from hub.console.model import (
    ALL_CLEAR_VALIDITY,
    CHANNELS,
    EXERCISE_PREFIX,
    LANGUAGES,
    MAX_VALIDITY,
    ORIGIN,
    PREVIEW_HOURS,
    SCOPE_TOLERANCE_M,
    AreaCheck,
    ConsoleConfig,
    ConsoleError,
    ConsoleForbidden,
    ConsoleUser,
    FourEyes,
    StalePreview,
    scope_check,
)
from hub.console.overview import inbox, status
from hub.console.release import Sent, approve, send
from hub.console.tables import OPEN_STATES, get, history, versions, warnings
from hub.console.targeting import confirmation, preview, preview_for, topic_subscribers

__all__ = [
    "ALL_CLEAR_VALIDITY", "AreaCheck", "CHANNELS", "ConsoleConfig", "ConsoleError", "ConsoleForbidden", "ConsoleUser",
    "EXERCISE_PREFIX", "FourEyes", "LANGUAGES", "MAX_VALIDITY", "OPEN_STATES", "ORIGIN", "PREVIEW_HOURS",
    "SCOPE_TOLERANCE_M", "Sent", "StalePreview", "all_clear_template", "approve", "build_alert", "confirmation",
    "create_draft", "edit_draft", "follow_up", "get", "history", "inbox", "preview", "preview_for",
    "reject", "scope_check", "send", "status", "submit", "template_content", "topic_subscribers", "versions",
    "warnings", "withdraw",
]
