"""Scrubbing of everything the SDK sends, by value and by place.

Three kinds of text must not leave the process (with PII off):

- **known secrets** (the bot token, the DSN keys, the running interaction's token):
  removed by exact match wherever they occur;
- **secret shapes** (anything shaped like a Discord bot token, a DSN with a key, the
  token segment of an interaction or webhook URL, an ``Authorization`` credential):
  removed wherever they occur, the rest of a URL left readable;
- **personal text**: e-mail addresses (a shape), and the current run's *values* (the
  message content, argument values in any form, option values, a context-menu target's
  content, the unknown word of a mistyped command). These are removed from free text
  only: exception values and notes, log and breadcrumb messages, frame variables, span
  descriptions and data, custom contexts, extra data, dict keys as well as values.

Structure is only ever searched for known secrets and secret shapes, which no user word
can be equal to: the tags the cog sets, transaction names, ops and statuses, the
fingerprint, frames' module, function, file and line, the cog's own breadcrumbs and
messages. A user who types ``error`` or ``ext`` therefore cannot blank a tag, rename a
transaction or rewrite a frame, and cannot split an issue group.

Where a run value is also text of the program itself (a string constant of code on the
exception's traceback, as in ``raise RuntimeError("database error")`` for a user who
typed ``error``), that occurrence is the program's and stays; see :func:`scrub_message`.
"""

from __future__ import annotations

import dis
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tux_sentry_cog.core.limits import MAX_EVENT_STRING, MAX_NAME, clamp_tags, cut, fit_event
from tux_sentry_cog.core.runs import current_run

__all__ = [
    "COG_TAG_KEYS",
    "FILTERED",
    "MIN_SENSITIVE_CHARS",
    "OWN_FINGERPRINTS",
    "Scrubber",
    "program_text",
]

FILTERED = "[Filtered]"

#: Shorter run values ("1", "ok") are left alone: they protect nothing and would only
#: blank free text.
MIN_SENSITIVE_CHARS = 3

#: Tags the cog sets: structure. A bot's own tags are free text.
COG_TAG_KEYS = frozenset({
    "command.name", "command.type", "cog", "guild.id", "correlation_id", "shard.id",
    "error.category", "error.severity", "error.related", "error.spike",
    "performance.anomaly",
})

#: First fingerprint parts of the messages the cog raises itself; their text is built
#: from command names, never from what a user typed.
OWN_FINGERPRINTS = frozenset({
    "error-spike", "performance-anomaly", "high-resource-usage", "interaction-deadline",
    "discord-global-rate-limit",
})

# How much of the rules a part of an event gets.
_STRUCT = 0  # known secrets and secret shapes
_DATA = 1  # and e-mail addresses
_FREE = 2  # and the run's values

# Secret shapes. Each costs a scan of the text, and Python's engine only scans fast for
# a pattern that starts with a literal, so every shape has a cheap gate ("@" in text, a
# literal-led hint, a substring) and the full pattern runs only past it.
_TOKEN_HINT = re.compile(r"\.[\w-]{6,7}\.[\w-]{27}")
_TOKEN = re.compile(r"(?<![\w-])[\w-]{23,28}\.[\w-]{6,7}\.[\w-]{27,}")  # Discord bot token
_DSN_KEY = re.compile(r"(://)[0-9a-f]{32}(?::[0-9a-f]{32})?(?=@)", re.IGNORECASE)
# discord.py's REST routes put interaction and webhook tokens in the path:
# /interactions/{id}/{token}/callback, /webhooks/{id}/{token}[/messages/...].
_URL_TOKEN = re.compile(r"(/(?:interactions|webhooks)/\d{15,21}/)[^/?#\s\"'<>]+")
# An Authorization header written out ("Authorization: xyz"), and bearer/basic
# credentials anywhere. Gated by _may_hold_auth.
_AUTH_HEADER = re.compile(
    r"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)(?:(?:bot|bearer|basic)\s+)?"
    r"[^\s\"',;}]+"
)
_AUTH_SCHEME = re.compile(r"(?i)(\b(?:bearer|basic)\s+)[\w.~+/=-]{8,}")
#: Keys whose value is a credential, whatever it looks like (compared lower-cased, with
#: ``_`` for ``-``).
_SECRET_KEYS = frozenset({
    "authorization", "proxy_authorization", "x_api_key", "cookie", "set_cookie",
})

_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]{1,64}@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}")
# The e-mail pattern is not literal-led, so the engine would try it at every position
# (~300 µs on a 6 KB event). Every address has an "@" with a local-part character
# before it and a domain character after it; that is checked at each "@" only, and
# source lines full of decorators ("    @functools.wraps") never pass it.
_EMAIL_AT = re.compile(r"[\w.%+-]@[\w-]")

# Top-level parts that are the SDK's own facts, or identifiers: never searched. The
# trace's dynamic sampling context carries the DSN's public key by protocol (Sentry finds
# the trace root's project by it; the same key is in every request's auth header).
_SKIP = frozenset({"event_id", "timestamp", "start_timestamp", "sdk", "platform", "level",
                   "type", "_meta", "modules", "debug_meta", "measurements"})
_NESTED_SKIP = frozenset({"trace_id", "span_id", "parent_span_id",
                          "dynamic_sampling_context", "timestamp", "start_timestamp"})
_SDK_CONTEXTS = frozenset({"runtime", "os", "device", "cloud_resource"})
_STRUCT_TOP = frozenset({"transaction", "transaction_info", "fingerprint", "server_name",
                         "environment", "release", "dist", "logger", "culprit",
                         "monitor_slug", "status", "monitor_config", "check_in_id",
                         "duration", "user"})
#: Contexts the cog builds from names, ids and figures.
_COG_CONTEXTS = frozenset({"command", "discord_user", "system", "performance", "correlation",
                           "error_spike", "performance_anomaly", "resources", "noise",
                           "interaction_deadline", "rate_limit", "trace", "response"})
#: Contexts the cog reads from Discord: names a guild or channel chose.
_DISCORD_CONTEXTS = frozenset({"guild", "channel"})
#: Frame fields that are code, not data.
_FRAME_STRUCT = frozenset({"filename", "abs_path", "module", "function", "lineno",
                           "colno", "in_app", "platform", "package", "instruction_addr"})
_FRAME_SOURCE = frozenset({"context_line", "pre_context", "post_context"})
#: Span data the cog's own helpers set from the bot's code, not from user input.
_SPAN_STRUCT_DATA = frozenset({"db.operation", "db.collection.name", "db.system", "service",
                               "endpoint", "correlation_id", "thread.id", "thread.name",
                               "http.method", "http.request.method",
                               "http.response.status_code", "reason", "server.address"})
_SPAN_STRUCT = frozenset({"op", "status", "origin", "same_process_as_parent", "hash",
                          "exclusive_time"})
_CRUMB_STRUCT = frozenset({"category", "type", "level"})
_LOG_STRUCT_PREFIXES = ("sentry.", "code.", "logger.", "server.", "os.", "process.")
_LOG_FREE_ATTRIBUTES_PREFIX = "sentry.message."

_CONTAINERS = (dict, list, tuple)
_WALKED = (str, dict, list, tuple)
_RAISE = dis.opmap["RAISE_VARARGS"]
_MAX_CHAIN = 8


def _may_hold_auth(text: str) -> bool:
    """False when ``text`` holds none of the spellings of a credential's header or scheme.

    Written out rather than lower-cased: this runs for every metric and transaction.
    The fragments match Authorization, authorization, AUTHORIZATION and the same for
    Bearer and Basic (a mixed-case spelling is not looked for).
    """
    return (
        "uthoriz" in text
        or "UTHORIZ" in text
        or "earer" in text
        or "EARER" in text
        or "asic" in text
        or "ASIC" in text
    )


def _may_hold_email(text: str) -> bool:
    """False only when ``text`` certainly holds no match of the e-mail pattern."""
    at = text.find("@", 1)  # an "@" at 0 has no local part before it
    while at != -1:
        if _EMAIL_AT.match(text, at - 1):
            return True
        at = text.find("@", at + 1)
    return False


def _chain(error: BaseException | None) -> list[BaseException]:
    """``error`` and the exceptions it was raised from, in the SDK's order."""
    found: list[BaseException] = []
    while error is not None and len(found) < _MAX_CHAIN:
        found.append(error)
        if error.__cause__ is not None:
            error = error.__cause__
        elif error.__context__ is not None and not error.__suppress_context__:
            error = error.__context__
        else:
            error = None
    return found


def program_text(error: BaseException | None) -> tuple[str, ...]:
    """The string constants of the code on the tracebacks of ``error`` and its chain.

    Literals in the code, and module-level strings the code names (``raise
    RuntimeError(MESSAGE)``). A word that is in these is the program's own text
    ("database error" in ``raise RuntimeError("database error")``), whatever a user typed.
    """
    found: list[str] = []
    for exc in _chain(error):
        tb = exc.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            code = frame.f_code
            found.extend(c for c in code.co_consts if type(c) is str)
            names = frame.f_globals
            found.extend(v for v in map(names.get, code.co_names) if type(v) is str)
            tb = tb.tb_next
    return tuple(found)


def _raised_by_python(error: BaseException) -> bool:
    """True when a ``raise`` statement built the error (its message is the code's).

    An error raised by C code (``1 / 0``, ``int("x")``, ``d[key]``) has a message of
    CPython's own; such messages quote what they echo (``'x'``), so only quoted
    occurrences of a run value are the user's there.
    """
    tb = error.__traceback__
    if tb is None:
        return True
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code.co_code
    return 0 <= tb.tb_lasti < len(code) and code[tb.tb_lasti] == _RAISE


class _Rules:
    """The needles of one scrub: secrets, run values, and the PII setting."""

    __slots__ = ("pii", "secrets", "values")

    def __init__(self, secrets: tuple[str, ...], values: tuple[str, ...], pii: bool) -> None:
        self.secrets = secrets
        self.values = () if pii else values
        self.pii = pii

    def text(self, text: str, mode: int, protected: tuple[str, ...] = ()) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, FILTERED)
        if mode == _FREE:
            for value in self.values:
                if value in text and not any(value in p for p in protected):
                    text = text.replace(value, FILTERED)
        return self.shapes(text, mode)

    def shapes(self, text: str, mode: int) -> str:
        if "@" in text:
            if "://" in text:
                text = _DSN_KEY.sub(rf"\1{FILTERED}", text)
            if mode != _STRUCT and not self.pii and _may_hold_email(text):
                text = _EMAIL.sub(FILTERED, text)
        if _TOKEN_HINT.search(text):
            text = _TOKEN.sub(FILTERED, text)
        if "/interactions/" in text or "/webhooks/" in text:
            text = _URL_TOKEN.sub(rf"\1{FILTERED}", text)
        if _may_hold_auth(text):
            text = _AUTH_HEADER.sub(rf"\1{FILTERED}", text)
            text = _AUTH_SCHEME.sub(rf"\1{FILTERED}", text)
        return text

    def clean(self, text: str) -> bool:
        """True when ``text`` certainly holds nothing any rule would change."""
        for needle in self.secrets:
            if needle in text:
                return False
        for needle in self.values:
            if needle in text:
                return False
        if _TOKEN_HINT.search(text) is not None:
            return False
        if "@" in text and (
            ("://" in text and _DSN_KEY.search(text)) or (not self.pii and _may_hold_email(text))
        ):
            return False
        if "/interactions/" in text or "/webhooks/" in text:
            return False
        return not _may_hold_auth(text)

    def walk(self, node: Any, mode: int, protected: tuple[str, ...] = ()) -> Any:
        """Scrub every string under ``node``, dict keys included, with ``mode``'s rules."""
        if isinstance(node, str):
            return cut(self.text(node, mode, protected), MAX_EVENT_STRING)
        if isinstance(node, dict):
            return self._walk_dict(node, mode, protected)
        if isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, _WALKED):
                    node[index] = self.walk(value, mode, protected)
            return node
        if isinstance(node, tuple):
            return [self.walk(value, mode, protected) for value in node]
        return node

    def _walk_dict(
        self, node: dict[Any, Any], mode: int, protected: tuple[str, ...]
    ) -> dict[Any, Any]:
        scrubbed: dict[Any, Any] = {}
        for key, value in node.items():
            if key in _NESTED_SKIP or not isinstance(key, str):
                scrubbed[key] = value
                continue
            new_key = cut(self.text(key, mode), MAX_EVENT_STRING)
            while new_key in scrubbed:  # two keys scrubbed to one: both kept
                new_key += "'"
            if _is_secret_key(key) and value is not None:
                scrubbed[new_key] = FILTERED
            elif isinstance(value, _WALKED):
                scrubbed[new_key] = self.walk(value, mode, protected)
            else:
                scrubbed[new_key] = value
        # In place: the event's own dict stays the one the SDK and other hooks hold.
        node.clear()
        node.update(scrubbed)
        return node


def _is_secret_key(key: str) -> bool:
    return key.lower().replace("-", "_") in _SECRET_KEYS


def _gather(node: Any, texts: list[str]) -> None:
    """Append every string under ``node``, dict keys included (skipped keys excepted)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _NESTED_SKIP:
                continue
            if isinstance(key, str):
                texts.append(key)
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, _CONTAINERS):
                _gather(value, texts)
        return
    for value in node:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, _CONTAINERS):
            _gather(value, texts)


def _searched_texts(event: Mapping[str, Any]) -> list[str]:
    """Every string of ``event`` any rule applies to, keys included."""
    texts: list[str] = []
    for key, value in event.items():
        if key in _SKIP:
            continue
        if key == "contexts" and isinstance(value, dict):
            for name, context in value.items():
                if name not in _SDK_CONTEXTS and isinstance(context, _CONTAINERS):
                    _gather(context, texts)
        elif isinstance(value, str):
            texts.append(value)
        elif isinstance(value, _CONTAINERS):
            _gather(value, texts)
    return texts


class Scrubber:
    """Removes secrets and personal data from what the SDK sends, in place.

    Args:
        secrets: Returns the exact strings that must never leave (the bot token, DSN
            keys). Called per event so a token set after load is covered.
        send_pii: With PII on, e-mail addresses and the run's values stay; secrets and
            secret shapes never do.
    """

    __slots__ = ("_prepared", "_secrets", "_send_pii")

    def __init__(self, secrets: Callable[[], Iterable[str]], send_pii: bool = False) -> None:
        """Keep the secret source and the PII setting."""
        self._secrets = secrets
        self._send_pii = send_pii
        # The secrets as last read, and sorted: they change once a process, if ever.
        self._prepared: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())

    def _rules(self) -> _Rules:
        read = tuple(s for s in self._secrets() if s)
        values: tuple[str, ...] = ()
        run = current_run.get()
        if run is not None and run.secrets:
            read += tuple(s for s in run.secrets if s)
        if read != self._prepared[0]:
            self._prepared = (read, _longest_first(read))
        secrets = self._prepared[1]
        if run is not None and not self._send_pii:
            cached = run.needles
            if cached is not None:
                values = cached
            else:
                values = _longest_first(
                    form
                    for v in run.sensitive_values()
                    if len(v) >= MIN_SENSITIVE_CHARS
                    for form in _forms(v)
                )
                if run.ended:  # final: every later event of the run reuses them
                    run.needles = values
        return _Rules(secrets, values, self._send_pii)

    # free-standing text ----------------------------------------------------------------

    def scrub_text(self, text: str) -> str:
        """Return free ``text`` with every rule applied (secrets, shapes, run values)."""
        return self._rules().text(text, _FREE)

    def scrub_message(self, text: str, error: BaseException | None = None) -> str:
        """Scrub the message of ``error`` (or a text derived from it, a fingerprint part).

        Secrets and shapes go everywhere. A run value goes unless it is the program's
        own text: part of a string constant of the code on the error's traceback, or,
        for an error CPython raised itself (whose message is CPython's own text), not
        quoted. So ``!remind error`` leaves ``raise RuntimeError("database error")``
        whole and its fingerprint the same as anyone else's, while
        ``raise ValueError(f"cannot echo {text}")`` loses the text.
        """
        rules = self._rules()
        if not rules.values or not any(v in text for v in rules.values):
            return rules.text(text, _STRUCT if self._send_pii else _DATA)
        return _scrub_error_text(rules, text, error)

    # events ----------------------------------------------------------------------------

    def scrub_event(self, event: dict[str, Any], hint: Any = None) -> dict[str, Any]:
        """Scrub an event, transaction or check-in in place and return it.

        Strings are also cut to Sentry's limits (tags, names, any string), so what
        Sentry stores is what left the process, with no silent trimming at ingestion.
        """
        rules = self._rules()
        texts = _searched_texts(event)
        if (texts and max(map(len, texts)) > MAX_EVENT_STRING) or not rules.clean(
            "\n".join(texts)
        ):
            _scrub_parts(rules, event, hint)
        tags = event.get("tags")
        if isinstance(tags, dict):
            event["tags"] = clamp_tags(tags)
        for key in ("transaction", "culprit"):
            value = event.get(key)
            if isinstance(value, str):
                event[key] = cut(value, MAX_NAME)
        if event.get("type") not in ("transaction", "check_in"):
            fit_event(event)
        return event

    def scrub_log(self, log: dict[str, Any]) -> dict[str, Any]:
        """Scrub a Sentry Logs record in place: its body and attributes are free text.

        The SDK's own attributes (``sentry.*`` other than the message template and its
        parameters, ``code.*``, ``logger.*``...) are structure.
        """
        rules = self._rules()
        body = log.get("body")
        attributes = log.get("attributes")
        texts = [body] if isinstance(body, str) else []
        if isinstance(attributes, dict):
            _gather(attributes, texts)
        if rules.clean("\n".join(texts)):
            return log
        if isinstance(body, str):
            log["body"] = rules.text(body, _FREE)
        if isinstance(attributes, dict):
            for key, value in list(attributes.items()):
                structural = key.startswith(_LOG_STRUCT_PREFIXES) and not key.startswith(
                    _LOG_FREE_ATTRIBUTES_PREFIX
                )
                attributes[key] = rules.walk(value, _STRUCT if structural else _FREE)
        return log

    def scrub_span(self, span: dict[str, Any]) -> dict[str, Any]:
        """Scrub a streamed span (``trace_lifecycle="stream"``) in place and return it.

        The same rules as a transaction's span, its name being the description and its
        attributes the data. A run's own span (the segment) is named after the command
        and carries the cog's tags as attributes: those are structure, as on a
        transaction; the SDK's ``sentry.*`` attributes too.
        """
        rules = self._rules()
        name = span.get("name")
        attributes = span.get("attributes")
        if not isinstance(attributes, dict):
            attributes = {}
        texts = [name] if isinstance(name, str) else []
        _gather(attributes, texts)
        if rules.clean("\n".join(texts)):
            return span
        if span.get("is_segment"):
            if isinstance(name, str):
                span["name"] = rules.text(name, _STRUCT)
            for key, value in list(attributes.items()):
                own = key in COG_TAG_KEYS or str(key).startswith("sentry.")
                attributes[key] = rules.walk(value, _STRUCT if own else _FREE)
            return span
        legacy = {"description": name, "data": attributes}
        _scrub_span(rules, legacy)
        span["name"] = legacy["description"]
        return span

    def scrub_attributes(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """Scrub a metric's attributes in place (secrets, shapes and e-mails)."""
        rules = self._rules()
        texts = [key for key in attributes if type(key) is str]
        for value in attributes.values():
            if type(value) is str:
                texts.append(value)
            elif isinstance(value, _CONTAINERS):  # rare: the plain case costs no walk
                _gather(value, texts)
        if not rules.clean("\n".join(texts)):
            rules.walk(attributes, _DATA)
        return attributes


def _forms(value: str) -> tuple[str, ...]:
    """``value``, and the way ``repr`` writes it inside its quotes.

    Frame variables and CPython's messages are reprs: a backslash or a quote in a value
    comes out escaped there.
    """
    written = repr(value)[1:-1]
    return (value,) if written == value else (value, written)


# A quoted span of a message, as repr writes it.
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")


def _longest_first(needles: Iterable[str]) -> tuple[str, ...]:
    # Longest first, so a needle that contains another is removed whole.
    unique = set(needles)
    if len(unique) <= 1:
        return tuple(unique)
    return tuple(sorted(unique, key=len, reverse=True))


def _scrub_error_text(rules: _Rules, text: str, error: BaseException | None) -> str:
    """:meth:`Scrubber.scrub_message` once a run value was found in ``text``."""
    protected = program_text(error)
    for secret in rules.secrets:
        if secret in text:
            text = text.replace(secret, FILTERED)
    values = [v for v in rules.values if v in text and not any(v in p for p in protected)]
    if error is None or _raised_by_python(error):
        for value in values:
            text = text.replace(value, FILTERED)
    elif values:
        # CPython's own message: what it echoes it quotes (repr), the rest is its text.
        def quoted(match: re.Match[str]) -> str:
            span = match.group(0)
            for value in values:
                span = span.replace(value, FILTERED)
            return span

        text = _QUOTED.sub(quoted, text)
    return rules.shapes(text, _DATA)


def _error_of(hint: Any) -> BaseException | None:
    exc_info = hint.get("exc_info") if isinstance(hint, Mapping) else None
    if isinstance(exc_info, tuple) and len(exc_info) >= 2:  # noqa: PLR2004 - (type, value, tb)
        error = exc_info[1]
        return error if isinstance(error, BaseException) else None
    return None


def _scrub_parts(rules: _Rules, event: dict[str, Any], hint: Any) -> None:
    """Scrub each part of ``event`` with the rules its place calls for."""
    fingerprint = event.get("fingerprint")
    own = (
        isinstance(fingerprint, list) and bool(fingerprint) and fingerprint[0] in OWN_FINGERPRINTS
    )
    for key, value in list(event.items()):
        if key in _SKIP or not isinstance(value, _WALKED):
            continue
        part = _PARTS.get(key)
        if part is not None:
            part(rules, value, hint, own)
        elif key in _STRUCT_TOP or (own and key == "message"):
            event[key] = rules.walk(value, _STRUCT)
        else:  # message, extra, request, and whatever a bot's processor added
            event[key] = rules.walk(value, _FREE)


def _scrub_exceptions(rules: _Rules, exception: Any, error: BaseException | None) -> None:
    values = exception.get("values") if isinstance(exception, dict) else None
    if not isinstance(values, list):
        return
    # The SDK lists the chain oldest first: the raised error is the last value.
    chain = _chain(error)
    for position, item in enumerate(reversed(values)):
        if not isinstance(item, dict):
            continue
        own = chain[position] if position < len(chain) else None
        if own is not None and type(own).__name__ != item.get("type"):
            own = None
        text = item.get("value")
        if isinstance(text, str):
            item["value"] = cut(_scrub_value(rules, text, own, error), MAX_EVENT_STRING)
        _scrub_stacktrace(rules, item.get("stacktrace"))
        mechanism = item.get("mechanism")
        if isinstance(mechanism, dict):
            item["mechanism"] = rules.walk(mechanism, _STRUCT)


def _scrub_value(
    rules: _Rules, text: str, own: BaseException | None, raised: BaseException | None
) -> str:
    """An exception value: the message, then the notes the SDK appended to it."""
    notes = getattr(own, "__notes__", None)
    if isinstance(notes, list) and notes:
        written = "\n" + "\n".join(n for n in notes if isinstance(n, str))
        if text.endswith(written):
            message = text[: -len(written)]
            # Notes are added by Python code: a value is the user's unless it is code's.
            return _scrub_error_text(rules, message, own) + rules.text(
                written, _FREE, program_text(own)
            )
    if own is None:
        # Not matched to an exception object: code's text still protected, nothing else.
        return rules.text(text, _FREE, program_text(raised))
    return _scrub_error_text(rules, text, own)


def _scrub_stacktrace(rules: _Rules, stacktrace: Any) -> None:
    frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
    if not isinstance(frames, list):
        return
    for frame in frames:
        if not isinstance(frame, dict):
            continue
        for key, value in frame.items():
            if key in _NESTED_SKIP or not isinstance(value, _WALKED):
                continue
            if key in _FRAME_STRUCT:
                frame[key] = rules.walk(value, _STRUCT)
            elif key in _FRAME_SOURCE:
                frame[key] = rules.walk(value, _DATA)
            else:  # vars
                frame[key] = rules.walk(value, _FREE)


def _scrub_threads(rules: _Rules, threads: Any) -> None:
    values = threads.get("values") if isinstance(threads, dict) else None
    for thread in values if isinstance(values, list) else ():
        if isinstance(thread, dict):
            _scrub_stacktrace(rules, thread.get("stacktrace"))
            name = thread.get("name")
            if isinstance(name, str):
                thread["name"] = rules.text(name, _STRUCT)


def _is_own_crumb(crumb: Mapping[str, Any]) -> bool:
    # Imported here: payload imports nothing of the scrubber, and this runs per crumb.
    from tux_sentry_cog.core.payload import OwnCrumbData  # noqa: PLC0415

    return type(crumb.get("data")) is OwnCrumbData


def _scrub_breadcrumbs(rules: _Rules, breadcrumbs: Any) -> None:
    values = breadcrumbs.get("values") if isinstance(breadcrumbs, dict) else breadcrumbs
    for crumb in values if isinstance(values, list) else ():
        if not isinstance(crumb, dict):
            continue
        mode = _STRUCT if _is_own_crumb(crumb) else _FREE
        for key, value in crumb.items():
            if key in _NESTED_SKIP or not isinstance(value, _WALKED):
                continue
            crumb[key] = rules.walk(value, _STRUCT if key in _CRUMB_STRUCT else mode)


def _scrub_contexts(rules: _Rules, contexts: Any, error: BaseException | None) -> None:
    if not isinstance(contexts, dict):
        return
    for name, context in contexts.items():
        if name in _SDK_CONTEXTS or not isinstance(context, dict):
            continue
        if name == "error":
            for key, value in context.items():
                if key in _NESTED_SKIP:
                    continue  # as the fast check skips it
                if key == "message" and isinstance(value, str):
                    # As the exception's value: the program's own words stay.
                    context[key] = _scrub_error_text(rules, value, error)
                elif isinstance(value, _WALKED):
                    context[key] = rules.walk(value, _FREE if key == "custom_context" else _DATA)
        elif name in _COG_CONTEXTS or name in _DISCORD_CONTEXTS:
            # Names, ids and figures: never a user's words, but an e-mail a guild put in
            # its name, say, still goes.
            rules.walk(context, _DATA)
        else:  # a context the bot set itself
            rules.walk(context, _FREE)


def _scrub_tags(rules: _Rules, tags: Any) -> None:
    if not isinstance(tags, dict):
        return
    for key, value in list(tags.items()):
        if key not in _NESTED_SKIP and isinstance(value, str):
            tags[key] = rules.text(value, _STRUCT if key in COG_TAG_KEYS else _FREE)


def _own_span_description(span: Mapping[str, Any]) -> bool:
    """True for a span the cog's tracking helpers named from their own arguments."""
    data = span.get("data")
    if not isinstance(data, dict) or "correlation_id" not in data:
        return False
    description = span.get("description")
    return description in (
        f"{data.get('db.operation')} {data.get('db.collection.name')}",
        f"{data.get('service')} {data.get('endpoint')}",
    )


def _scrub_span(rules: _Rules, span: dict[str, Any]) -> None:
    own_description = _own_span_description(span)
    for key, value in span.items():
        if key in _NESTED_SKIP or not isinstance(value, _WALKED):
            continue
        if key in _SPAN_STRUCT or (key == "description" and own_description):
            span[key] = rules.walk(value, _STRUCT)
        elif key == "data" and isinstance(value, dict):
            for data_key, item in value.items():
                if data_key not in _NESTED_SKIP and isinstance(item, _WALKED):
                    mode = _STRUCT if data_key in _SPAN_STRUCT_DATA else _FREE
                    value[data_key] = rules.walk(item, mode)
        elif key == "tags":
            _scrub_tags(rules, value)
        else:
            span[key] = rules.walk(value, _FREE)


def _scrub_logentry(rules: _Rules, logentry: Any, own: bool) -> None:
    if not isinstance(logentry, dict):
        return
    params = logentry.get("params")
    for key, value in logentry.items():
        if key in _NESTED_SKIP or not isinstance(value, _WALKED):
            continue
        if own:
            mode = _STRUCT
        elif key == "message" and params:
            mode = _DATA  # a template written in the code, its values in params
        else:
            mode = _FREE
        logentry[key] = rules.walk(value, mode)


def _spans(rules: _Rules, spans: Any, _hint: Any, _own: bool) -> None:
    for span in spans if isinstance(spans, list) else ():
        if isinstance(span, dict):
            _scrub_span(rules, span)


_PARTS: dict[str, Callable[[_Rules, Any, Any, bool], None]] = {
    "exception": lambda rules, value, hint, _own: _scrub_exceptions(rules, value, _error_of(hint)),
    "threads": lambda rules, value, _hint, _own: _scrub_threads(rules, value),
    "breadcrumbs": lambda rules, value, _hint, _own: _scrub_breadcrumbs(rules, value),
    "contexts": lambda rules, value, hint, _own: _scrub_contexts(rules, value, _error_of(hint)),
    "tags": lambda rules, value, _hint, _own: _scrub_tags(rules, value),
    "spans": _spans,
    "logentry": lambda rules, value, _hint, own: _scrub_logentry(rules, value, own),
}
