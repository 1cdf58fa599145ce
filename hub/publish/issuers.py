"""Who issues a publication: each district publishes its own warnings (issue 19), in its own name.

An :class:`Issuer` is what the pipeline needs of one district to publish a decision of that district: its Kreis key
(targeting stays inside it), its CAP ``sender`` and ``senderName``, its signing key, its boards and webhooks, and the
names of its publication threads. :func:`of` builds them from the config; a hub with one district has one issuer
that publishes exactly as before (the same threads, identifiers, senders and outbox keys).

Threads: a single-district hub's thread of stored incident 12 is ``w12``. With several districts each district's
publications of that incident are a thread of their own: the first district keeps ``w12`` (a single-district hub that
becomes the first of several continues its threads), the others add their slug (``w12-uelzen``).

Push keys: with several districts, the outbox key of a push of a publication made from a stored alert version names
that version (``src<alert id>/push/<subscription>``), not the publication: the second district to fan the same
external alert out finds the first district's row (``INSERT OR IGNORE``), so a person whose places lie in both hears
it once, whichever district's fan-out runs first. A console warning is one district's own (decided for its district
alone), so its source version is published once and its keys are its own all the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.config.districts import District, Districts
from hub.config.load import LoadedConfig
from hub.config.sections import BoardConfig, WebhookConfig


@dataclass(frozen=True, slots=True)
class Issuer:
    ars: str
    """The district's Kreis key (publications carry it in ``district``)."""
    slug: str
    sender: str
    sender_name: str | None
    """``senderName`` of its publications; None: the source's (a single-district hub, as before)."""
    signing: tuple[bytes, bytes] | None
    """Its signing key and certificate (PEM), or None: unsigned."""
    boards: tuple[BoardConfig, ...]
    webhooks: tuple[WebhookConfig, ...]
    thread_suffix: str = ""
    """Added to its thread names (``-<slug>``; empty for the first district)."""
    shared_keys: bool = False
    """Several districts: push keys name the source version (see the module docstring)."""
    within: bool = False
    """Several districts: its publications reach push subscriptions inside the district only."""

    def thread(self, source_thread: int) -> str:
        return f"w{source_thread}{self.thread_suffix}"

    def push_prefix(self, identifier: str, source_alert: int | None) -> str:
        """The key prefix of a publication's push rows (see the module docstring)."""
        if self.shared_keys and source_alert is not None:
            return f"src{source_alert}/push/"
        return f"{identifier}/push/"


def board_district(districts: Districts, board: BoardConfig) -> District:
    """The district whose warnings a board shows: its ``district`` slug, else the one its ``ars`` lies in, else the
    first."""
    named = districts.by_slug(board.district) if board.district else None
    return named or districts.of_region(board.ars) or districts.first


def webhook_district(districts: Districts, hook: WebhookConfig) -> District:
    """The district whose warnings a webhook receives: its ``district`` slug, else the first."""
    return (districts.by_slug(hook.district) if hook.district else None) or districts.first


def of(loaded: LoadedConfig, *, sender: str | None = None) -> dict[str, Issuer]:
    """Every district's issuer by its Kreis key, the first first. ``sender``: the single-district hub's sender
    instead of ``[hub] sender`` (tests)."""
    districts = loaded.districts
    multi = districts.multi
    cfg = loaded.cfg
    out: dict[str, Issuer] = {}
    for d in districts:
        key, cert = d.signing_key, d.signing_cert
        signing = (key.read_bytes(), cert.read_bytes()) if key is not None and cert is not None else None
        boards = tuple(b for b in cfg.boards if not multi or board_district(districts, b).ars == d.ars)
        hooks = tuple(h for h in cfg.webhooks if not multi or webhook_district(districts, h).ars == d.ars)
        out[d.ars] = Issuer(d.ars, d.slug, d.sender if multi else (sender or d.sender),
                            d.sender_name if multi else None, signing, boards, hooks,
                            thread_suffix=f"-{d.slug}" if multi and d.index > 0 else "", shared_keys=multi,
                            within=multi)
    return out
