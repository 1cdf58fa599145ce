"""The settings of config.toml as strict msgspec Structs: one per section, source type, board and webhook.

Unknown fields, wrong types and bad values are refused by msgspec with the path inside the file (see
:mod:`hub.config.load`)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
Ars = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{12}$")]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=86400)]
Policy = Literal["require", "verify", "ignore"]
Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")]
Colour = Annotated[str, msgspec.Meta(pattern=r"^#[0-9a-fA-F]{6}$")]
HostName = Annotated[str, msgspec.Meta(pattern=r"^$|^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                                               r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")]
"""A DNS host name without port or scheme (``warnung.uelzen.de``), or empty."""
Severity4 = Literal["Extreme", "Severe", "Moderate", "Minor"]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class HubSection(_Strict, frozen=True):
    name: str
    """The district's name, as citizens and operators read it (many districts: the provider's hub's name)."""
    district_ars: Annotated[str, msgspec.Meta(pattern=r"^([0-9]{12})?$")] = ""
    """Amtlicher Regionalschlüssel of the Kreis (12 digits). Required unless ``[[districts]]`` lists the Kreise; then
    it is the first district's (and may be left out)."""
    db: str = "var/warnhub.db"
    sender: str = "warnhub@example.invalid"
    """CAP ``sender`` of the warnings the hub issues: the authority's address (e.g. leitstelle@kreis.de)."""
    signing_key: str | None = None
    """PEM private key (EC P-256 or RSA) to sign the hub's own CAP messages with XML-DSig; None: unsigned."""
    signing_cert: str | None = None
    """PEM certificate (chain) matching ``signing_key``, carried in each signature."""
    public_url: str = ""
    """Where citizens reach this hub (``https://warnung.kreis.de``): links in pushes and feeds; empty: relative."""
    rules: str = "rules"
    """The operators' rules folder (``*.toml``, ``templates/*.toml``); see rules/README.md."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class StoreSection(_Strict, frozen=True):
    url: str | None = None
    """``postgresql://user@host:port/db``: the store in PostgreSQL (several hub nodes can share it); None: the SQLite
    file ``[hub] db`` (the default, right for one district). The password goes in ``password``, not here."""
    password: str | None = None
    """The PostgreSQL user's password (use ``env:NAME``); None: none, or libpq's own (``PGPASSWORD``, ``.pgpass``)."""
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    """SQLite durability: NORMAL survives a crash of the hub (a power cut may lose the last commits, never corrupts);
    FULL puts every commit on disk, at one fsync per write. Either way, commits after which a sender is told
    "stored" (a file moved to done/, the console's "sent") are durable (``Store.transaction(durable=True)``)."""
    max_age_without_expires_h: Annotated[float, msgspec.Meta(ge=0)] = 48
    """A warning that states no ``expires`` ends this many hours after it was sent (0: never)."""
    sweep_interval_s: Seconds = 60


Days = Annotated[float, msgspec.Meta(ge=0, le=36500)]


class RetentionSection(_Strict, frozen=True):
    """What the store deletes on schedule, so it stops growing (0 days: keep forever). Nothing still needed goes:
    no queued or in-flight delivery, nothing of an incident that is still current, no version of any alert."""

    interval_h: Annotated[float, msgspec.Meta(gt=0, le=168)] = 6.0
    """How often the retention job runs (first a minute after start)."""
    outbox_days: Days = 30.0
    """Finished delivery rows, once the hub's incident has ended (cancelled, expired) this long ago."""
    rejections_days: Days = 90.0
    """Records of refused documents (time, origin, reason, hash)."""
    raw_days: Days = 90.0
    """The documents as received, of incidents ended this long ago: the parsed alert, its verdict and the audit
    stay; only the original bytes go."""
    readings_days: Days = 30.0
    """Readings of sensors no configured ``mqtt`` source owns any more (an mqtt source prunes its own sensors'
    readings after its ``retention_days``)."""
    audit_days: Days = 0.0
    """Archive audit entries older than this into ``audit_dir`` (as ``warnhub audit archive``); 0: never."""
    audit_dir: str = "var/audit"


class ValidationSection(_Strict, frozen=True):
    max_bytes: Annotated[int, msgspec.Meta(ge=1024, le=100 * 1024 * 1024)] = 10 * 1024 * 1024
    trust_store: str | None = None
    """Folder of PEM certificates trusted to sign CAP."""
    signature_policy: Policy = "verify"
    """Default for sources that do not set their own."""
    allow_sha1: bool = False
    """Count SHA-1 signatures (signature or digest method) as ``valid``; otherwise they are ``weak``."""
    workers: Annotated[int, msgspec.Meta(ge=0, le=64)] = 0
    """Processes that validate in parallel: 0 one per CPU, 1 none (validate on the store's thread)."""


class WebSection(_Strict, frozen=True):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8080
    trusted_proxies: list[str] = []
    """Reverse proxies (addresses or CIDR networks) whose ``X-Forwarded-For`` names the client; empty: none."""
    subscribe_per_address_per_hour: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 60
    """``POST /api/v1/subscriptions`` per client address (IPv6: per /64) and hour; 0: no limit."""
    nina_per_address_per_minute: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 120
    """Requests to the NINA-compatible API (``/api31``) per client address (IPv6: per /64) and minute; 0: no limit."""
    max_streams: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 5000
    """Open ``/api/v1/stream`` connections in total."""
    max_streams_per_address: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 20
    """Open ``/api/v1/stream`` connections per client address (IPv6: per /64)."""
    fd_reserve: Annotated[int, msgspec.Meta(ge=8, le=100_000)] = 64
    """File descriptors kept free for intake and the store: below it no new web connection is taken; a new stream
    needs twice as many free."""


class DirectorySourceConfig(_Strict, tag="directory", tag_field="type", kw_only=True, frozen=True):
    """CAP files dropped into a folder (as MoWaS receivers hand them over); moved to done/ or rejected/."""

    name: Name
    path: str
    interval_s: Seconds = 1.0
    signature: Policy | None = None
    done_dir: str | None = None
    """Default: ``<path>/done``."""
    rejected_dir: str | None = None
    """Default: ``<path>/rejected``."""


Url = Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s]+$")]
Warncell = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{9}$")]
Bytes = Annotated[int, msgspec.Meta(ge=1024, le=512 * 1024 * 1024)]
NinaFeed = Literal["mowas", "katwarn", "biwapp", "dwd", "lhp", "police"]


class HttpSourceConfig(_Strict, frozen=True):
    """What every polled HTTP source shares (GUIDE.md section 4)."""

    name: Name
    interval_s: Seconds = 60.0
    timeout_s: Seconds = 20.0
    """For one whole request, connect to last byte."""
    max_bytes: Bytes = 20 * 1024 * 1024
    """A response larger than this is refused (the source is marked down, nothing is read)."""
    backoff_max_s: Seconds = 600.0
    """While failing, polls are spaced out exponentially (with jitter) up to this."""
    signature: Policy | None = None


class CapFeedSourceConfig(HttpSourceConfig, tag="cap-feed", tag_field="type", kw_only=True, frozen=True):
    """A CAP Atom or RSS feed: entries that embed CAP or link to it."""

    url: Url
    max_entries: Annotated[int, msgspec.Meta(ge=1, le=10000)] = 500
    complete: bool = False
    """The feed lists every current warning (an index): ones missing from ``missing_fetches_to_end`` complete
    fetches in a row end, if they state no ``expires``."""
    missing_fetches_to_end: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    link_hosts: list[str] = []
    """Hosts whose CAP documents the feed may link to; default: only the feed's own host (a feed must not make
    the hub fetch from internal addresses)."""


class DwdSourceConfig(HttpSourceConfig, tag="dwd", tag_field="type", kw_only=True, frozen=True):
    """DWD's opendata CAP zips, filtered to the district's warncells."""

    warncells: Annotated[list[Warncell], msgspec.Meta(min_length=1)]
    base_url: Url = "https://opendata.dwd.de/weather/alerts/cap"
    region: Literal["COMMUNEUNION", "DISTRICT"] = "COMMUNEUNION"
    product: Literal["DWD", "CELLS", "EVENT"] = "DWD"
    mode: Literal["STAT", "DIFF"] = "STAT"
    """STAT: the one zip of all current warnings; DIFF: every new zip of changes in the folder."""
    language: Literal["MUL", "DE", "EN"] = "MUL"
    interval_s: Seconds = 120.0


class NinaSourceConfig(HttpSourceConfig, tag="nina", tag_field="type", kw_only=True, frozen=True):
    """The BBK's NINA API (warnung.bund.de): MoWaS, KATWARN, BIWAPP, DWD, LHP and police, converted to CAP."""

    base_url: Url = "https://warnung.bund.de/api31"
    feeds: list[NinaFeed] = msgspec.field(default_factory=lambda: ["mowas", "katwarn", "biwapp", "dwd", "lhp",
                                                                      "police"])
    """``{feed}/mapData.json`` lists, Germany-wide, filtered to the district by each warning's ARS keys."""
    dashboard_ars: list[Ars] | None = None
    """``dashboard/{ARS}.json`` lists; default: the hub's district."""
    legacy_urls: list[Url] = []
    """Older ``bbk.*`` lists (a JSON array of whole warnings), e.g.
    ``https://warnung.bund.de/bbk.mowas/gefahrendurchsagen.json``."""
    geojson: bool = True
    """Also fetch ``warnings/{id}.geojson`` for the polygons of warnings whose JSON carries none."""
    missing_fetches_to_end: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    """A listed warning without ``expires`` ends after it is missing from this many complete fetches in a row."""
    interval_s: Seconds = 60.0


class SensorConfig(_Strict, frozen=True):
    """One sensor behind an MQTT topic."""

    id: Name
    topic: str
    """MQTT topic filter; ``+`` and ``#`` wildcards allowed: every topic matching it belongs to this sensor."""
    kind: Literal["water_level", "air_quality", "wind", "temperature", "precipitation", "other"]
    unit: str
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    ars: Ars | None = None
    interval_s: Seconds = 900.0
    """Silent for longer than this: the sensor is stale (a stale gauge is not a calm river)."""
    value_path: str = "value"
    """Where the value sits in a JSON payload, dotted (``data.level``); a bare number payload needs none."""
    time_path: str = "ts"
    unit_path: str = "unit"


class MqttSourceConfig(_Strict, tag="mqtt", tag_field="type", kw_only=True, frozen=True):
    """Local sensors over MQTT (QoS 1, persistent session)."""

    name: Name
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 1883
    client_id: str | None = None
    """Fixed id for the persistent session; default ``warnhub-<hub name>-<random suffix>-<name>``, the suffix made
    once and kept in ``mqtt-client-id`` beside the database (two hubs never share an id by default)."""
    username: str | None = None
    password: str | None = None
    """Use ``env:NAME``."""
    tls: bool = False
    keepalive_s: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 30
    retention_days: Annotated[float, msgspec.Meta(gt=0, le=3650)] = 30.0
    sensors: Annotated[list[SensorConfig], msgspec.Meta(min_length=1)]


SourceConfig = DirectorySourceConfig | CapFeedSourceConfig | DwdSourceConfig | NinaSourceConfig | MqttSourceConfig


class GeoSection(_Strict, frozen=True):
    boundaries: list[str] = []
    """GeoJSON files (RFC 7946, [lon, lat]) with finer boundaries than the bundled Kreise: Gemeinden, Ortsteile.
    Each feature names its region (``ars``, ``WARNCELLID`` or ``ags`` in ``properties``)."""
    bundled_gemeinden: bool = True
    """Use the bundled Gemeinde and Samtgemeinde boundaries (BKG VG250); false: only the DWD Kreis cells and the
    files in ``boundaries`` (a district that maintains its own, more current shapes). A region without a boundary
    is never silently widened: the console asks the sender to confirm that it warns the whole Kreis."""


class PushSection(_Strict, frozen=True):
    """Web Push (RFC 8030/8291/8292) to browsers and UnifiedPush distributors."""

    vapid_key: str = "var/vapid.pem"
    """The hub's VAPID private key (PEM, P-256); created on first start with mode 0600."""
    vapid_subject: str = "mailto:leitstelle@example.invalid"
    """Contact push services may use (``mailto:`` or ``https:``); set the control room's address."""
    allow_http_endpoints: bool = False
    """Accept ``http://`` endpoints on loopback addresses (local test receivers only; never in production)."""
    workers: Annotated[int, msgspec.Meta(ge=0, le=64)] = 0
    """Processes that encrypt in bulk: 0 one per CPU."""
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 64
    """Requests to push services in flight at once."""
    per_host_concurrency: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 32
    """Requests in flight to one push host at most (FCM, Mozilla, Apple or a distributor): a flood of endpoints on
    one slow host cannot take every slot or hammer that host."""
    timeout_s: Seconds = 10.0
    max_subscriptions: Annotated[int, msgspec.Meta(ge=1, le=100_000_000)] = 500_000
    """Subscriptions the hub holds at most; beyond it new ones are refused (503), existing ones can still change."""
    budget_window_min: Annotated[float, msgspec.Meta(gt=0, le=1440)] = 10.0
    """The push budget's window (hub.deliver.budget): a subscription gets at most ``budget_pushes`` warning pushes
    within it; what would exceed it is coalesced into one summary push at the window's end."""
    budget_pushes: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    """Warning pushes per subscription and window; one of them is kept for an Extreme (which always gets through)."""
    lease_s: Annotated[float, msgspec.Meta(ge=3, le=600)] = 30.0
    """How long a delivery node holds the outbox rows it claimed (every channel) while it does not renew them: its
    workers renew the rows they are sending every third of it, so a slow push service is not sent to twice, and a
    node that dies leaves its rows to the others after one lease."""


class ConsoleSection(_Strict, frozen=True):
    """The control-room console (``/console``): sessions, login throttling, four eyes, the map."""

    idle_timeout_min: Annotated[int, msgspec.Meta(ge=1, le=480)] = 30
    """A session without a request for this long ends."""
    max_session_h: Annotated[int, msgspec.Meta(ge=1, le=24)] = 12
    """A session ends after this long whatever happens (a shift)."""
    secure_cookie: Literal["auto", "always"] = "auto"
    """``auto``: the cookie is Secure when the request came over TLS; ``always``: also behind a TLS proxy."""
    login_free_failures: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    """Failed logins of one user name from one client address before each further attempt of that pair waits."""
    login_first_delay_s: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 2
    """The first wait; it doubles with each further failure of the pair, up to ``login_max_delay_s``."""
    login_max_delay_s: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 600
    max_failures_per_address: Annotated[int, msgspec.Meta(ge=1, le=10000)] = 30
    """Failed logins from one address (all names) within ``failure_window_min``; beyond, that address waits."""
    failure_window_min: Annotated[int, msgspec.Meta(ge=1, le=1440)] = 15
    """A pair's failures are forgotten after this much quiet; also the window of the address brake and of the
    aggregated ``login.failed`` audit entries."""
    failed_login_retention_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 7
    """Client addresses of failed logins are deleted after this many days (they never enter the audit log)."""
    max_failures_per_name: int | None = None
    """Removed: logins are no longer locked (see ``__post_init__``)."""
    lockout_min: int | None = None
    """Removed, as ``max_failures_per_name``."""
    four_eyes: list[Literal["Extreme", "Severe", "Moderate", "Minor"]] = msgspec.field(
        default_factory=lambda: ["Extreme", "Severe", "Moderate", "Minor"])
    """Severities a second person (an approver who is not the author) must approve before anything is sent."""
    single_person_extreme: bool = False
    """Allow an approver to send an Extreme or Immediate warning alone, with a mandatory reason (audited)."""
    four_eyes_end: bool = False
    """Cancels and all-clears need a second person like any warning (``four_eyes``). False (default): an approver
    may end a public warning alone with a written reason (audited): ending must never wait for a second person."""
    languages_require_review: bool = False
    """Send only languages whose template text a native speaker has confirmed (``reviewed_by``/``reviewed_on`` per
    language of a compose template); unreviewed ones are left out of the CAP and the console says so. German is
    always sent. False (default): every language the warning has is sent, its review state shown."""
    tile_url: str = ""
    """A tile server for the console map (``https://.../{z}/{x}/{y}.png``); empty: district boundaries only."""
    tile_attribution: str = ""

    def __post_init__(self) -> None:
        for old, new in (("max_failures_per_name", "login_free_failures"), ("lockout_min", "login_max_delay_s")):
            if getattr(self, old) is not None:
                raise ValueError(f"{old} gibt es nicht mehr: Anmeldungen werden nicht mehr gesperrt, sondern je Name "
                                 f"und Adresse verzögert; bitte {new} verwenden / {old} was removed: logins are no "
                                 f"longer locked but delayed per name and address; use {new} (see README, Console)")
        if self.login_max_delay_s < self.login_first_delay_s:
            raise ValueError("login_max_delay_s < login_first_delay_s")


class BoardConfig(_Strict, kw_only=True, frozen=True):
    """A display board: a street screen, an LED board or a kiosk page."""

    id: Name
    name: str
    ars: Ars
    """The region the board stands in: it shows warnings that cover it."""
    district: Slug | None = None
    """Many districts: the ``slug`` of the district whose warnings it shows; None: the district its ``ars`` lies in."""
    kind: Literal["mqtt", "http", "kiosk"]
    lines: Annotated[int, msgspec.Meta(ge=1, le=40)] = 4
    chars: Annotated[int, msgspec.Meta(ge=8, le=400)] = 40
    """Text budget: lines x characters per line."""
    charset: Literal["utf-8", "latin-1", "ascii"] = "utf-8"
    """What the board can display; ``ascii`` LED boards get ä -> ae, ß -> ss."""
    language: str = "de-DE"
    """The board's language, any of the hub's nine (``de``, ``de-x-ls``, ``en``, ``ar``, ``es``, ``fr``, ``pl``, ``ru``,
    ``tr``, or a tag such as ``pl-PL``): the warning's text in it when the warning carries it (else German), the fixed
    words (severity, ``Entwarnung``, ``bis``, ``ÜBUNG``) always. Arabic and Russian need ``charset = "utf-8"``."""
    exercise: bool = False
    """Also show exercises (a board in a training room); public boards never do."""
    canary: bool = False
    """A test board of the control room (kinds mqtt and http): it gets the canary (``[canary]``) and its controller
    acknowledges it by POSTing to the ``receipt`` URL in the board state; a PUBACK or 2xx alone only says the broker
    or controller took it."""
    token: str | None = None
    """kind kiosk with ``exercise``: the secret its page and stream need (``/boards/{id}?token=``; use
    ``env:NAME``, at least 16 characters); required there, since whoever knows a board's id could watch exercises."""
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 1883
    topic: str | None = None
    """kind mqtt: the retained topic the board subscribes to."""
    url: str | None = None
    """kind http: the controller's endpoint for signed POSTs."""
    secret: str | None = None
    """kind http: HMAC-SHA256 key (use ``env:NAME``)."""
    timeout_s: Seconds = 10.0


class WebhookConfig(_Strict, kw_only=True, frozen=True):
    """A multiplier (news portal, taxi dispatch) that receives every published warning for its regions."""

    id: Name
    url: str
    district: Slug | None = None
    """Many districts: the ``slug`` of the district whose warnings it receives; None: the first district."""
    format: Literal["cap", "json"] = "json"
    secret: str
    """HMAC-SHA256 key for the signature header (use ``env:NAME``)."""
    regions: list[Ars] = []
    """Only warnings touching these regions; empty: the whole district."""
    min_severity: Literal["Minor", "Moderate", "Severe", "Extreme"] = "Minor"
    exercise: bool = False
    canary: bool = False
    """A control room's test receiver: gets the canary (``[canary]``) and acknowledges it by POSTing to the
    ``receipt`` URL in the body; a 2xx alone only says the receiver took it."""
    audiences: list[Name] = msgspec.field(default_factory=lambda: ["public"])
    """Whom it serves: ``public`` (every public warning), and/or audiences of the rules' ``[district] audiences``
    (e.g. ``einsatzkraefte``): a warning the rules send only to such an audience reaches only webhooks naming it."""
    timeout_s: Seconds = 10.0


class CanarySection(_Strict, frozen=True):
    """Delivery assurance per channel (issue 17 section 2): a synthetic Test alert through the real intake, router
    and publish step to the operator's canary endpoints every ``interval_s`` (hub.publish.canary); each endpoint's
    time from the intake's acceptance to the receipt is measured, and one whose receipt comes after its SLO is
    ``late``, one without a receipt for a whole interval ``silent`` (/healthz, console)."""

    enabled: bool = False
    """Off unless configured."""
    interval_s: Annotated[float, msgspec.Meta(ge=0.5, le=86400)] = 300.0
    slo_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """Receipt within this many seconds, per endpoint (``channel_slo_s`` overrides it for a channel)."""
    channel_slo_s: dict[str, Annotated[float, msgspec.Meta(gt=0)]] = {}
    """Per channel: ``push``, ``webhooks``, ``boards-mqtt``, ``boards-http``, ``sse``."""
    push_subscriptions: list[str] = []
    """Ids of push subscriptions on control-room devices (see README, Canaries): they get the canary push."""
    sse: bool = True
    """The web node's own stream: an internal subscriber counts the canary event."""

    def slo_for(self, channel: str) -> float:
        return self.channel_slo_s.get(channel, self.slo_s)


class DistrictConfig(_Strict, frozen=True):
    """One Kreis of a hub that serves several (``[[districts]]``): its authority alone decides, drafts and sends its
    warnings, its users see only its own, its citizens get its pages. Unset values fall back to ``[hub]`` and
    ``[console]``."""

    ars: Ars
    """The Kreis's Amtlicher Regionalschlüssel (12 digits, the last 7 zero)."""
    slug: Slug
    """Its path on the hub's web (``/{slug}/``, e.g. ``luechow-dannenberg``) and its name in logs and the CLI."""
    name: str
    """As citizens and operators read it (``Landkreis Uelzen``); CAP ``senderName`` of its warnings."""
    sender: str
    """CAP ``sender`` of its warnings: its authority's address (``leitstelle@uelzen.example``)."""
    rules: list[str] = []
    """Its rules folders (``*.toml``; the first one's ``templates/`` are its own templates). Empty: ``[hub] rules``
    (allowed for the first district only; a second one without rules decides nothing: every alert is unrouted)."""
    templates: str | None = None
    """A folder of its own compose templates (``*.toml``); a name it does not define falls back to the shared ones of
    ``[hub] rules``/templates."""
    host: HostName = ""
    """Its own host name (``warnung.uelzen.de``): requests for it get its pages at ``/`` as a single hub would."""
    public_url: str = ""
    """Where its citizens reach it (links in pushes and feeds); empty: ``[hub] public_url`` + ``/{slug}``."""
    signing_key: str | None = None
    """PEM private key to sign its CAP messages; None: ``[hub] signing_key``."""
    signing_cert: str | None = None
    logo: str | None = None
    """An image file (PNG, SVG, JPEG; at most 256 kB) shown on its pages."""
    colour: Colour | None = None
    """Its pages' main colour (``#005ca9``)."""
    four_eyes: list[Severity4] | None = None
    """As ``[console] four_eyes``, for this district; None: the hub's."""
    single_person_extreme: bool | None = None
    four_eyes_end: bool | None = None


class DebugSection(_Strict, frozen=True):
    """For test and staging systems."""

    history: str = ""
    """A file the hub appends its history to (ingest, decide, publish, queue and every delivery outcome, one JSON line
    each; see hub/history.py), for the fault suite's invariant checker. Empty: none (the default)."""


class Config(_Strict, frozen=True):
    hub: HubSection
    store: StoreSection = StoreSection()
    retention: RetentionSection = RetentionSection()
    validation: ValidationSection = ValidationSection()
    web: WebSection = WebSection()
    geo: GeoSection = GeoSection()
    push: PushSection = PushSection()
    console: ConsoleSection = ConsoleSection()
    sources: list[SourceConfig] = []
    boards: list[BoardConfig] = []
    webhooks: list[WebhookConfig] = []
    districts: list[DistrictConfig] = []
    """Several Kreise in one hub (hub.config.districts); empty: the one of ``[hub] district_ars``."""
    canary: CanarySection = CanarySection()
    debug: DebugSection = DebugSection()
