"""Property: whatever a user types and an exception says, nothing secret is sent, and
every event is one Sentry takes whole."""

from __future__ import annotations

import string

from conftest import BOT_TOKEN, assert_sentry_accepts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_LOWER = st.text(string.ascii_lowercase, min_size=3, max_size=10)
_EMAILS = st.builds(lambda a, b: f"{a}@{b}.example.com", _LOWER, _LOWER)
_TOKENS = st.builds(
    lambda a, b, c: f"{a}.{b}.{c}",
    st.text(string.ascii_letters + string.digits, min_size=24, max_size=26),
    st.text(string.ascii_letters + string.digits + "_-", min_size=6, max_size=6),
    st.text(string.ascii_letters + string.digits + "_-", min_size=27, max_size=38),
)
_SNOWFLAKES = st.integers(10**17, 10**19 - 1).map(str)
# Any printable text, unicode included; no surrounding whitespace (the command strips it).
_NOISE = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=0, max_size=40
)
_HUGE = st.integers(0, 20_000).map(lambda n: "x" * n)


@st.composite
def _messages(draw):
    marker = "m" + draw(st.text(string.ascii_lowercase, min_size=11, max_size=11))
    email = draw(_EMAILS)
    token = draw(_TOKENS)
    parts = [marker, draw(_NOISE), email, draw(_SNOWFLAKES), token, draw(_NOISE), draw(_HUGE)]
    return marker, email, token, " ".join(p for p in parts if p).strip()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(example=_messages(), pii=st.booleans())
async def test_nothing_secret_in_any_envelope_byte(make_bot, sentry_flush, example, pii):
    harness = await make_bot(send_pii=pii)
    try:
        await _check_one(harness, sentry_flush, example, pii=pii)
    finally:
        # Also when the example fails: Hypothesis then runs more, each on a bot of its own,
        # and a cog left loaded would keep the client (and its hooks) for the next one.
        await harness.bot.unload_extension("tux_sentry_cog")


async def _check_one(harness, sentry_flush, example, *, pii):
    marker, email, token, text = example
    sentry_endpoint = harness.endpoint
    sentry_endpoint.clear()  # one bot per example; what earlier examples sent is gone
    await harness.message(f"!leak {text}")
    endpoint = sentry_flush()
    # The failure's event; late in a long test process the cog's own "High resource
    # usage" message can arrive too (the test process is over the memory threshold).
    events = [e for e in endpoint.events() if "exception" in e]
    assert len(events) == 1
    sent = endpoint.raw_bytes().decode("utf-8", errors="replace")
    assert BOT_TOKEN not in sent
    assert token not in sent  # token-shaped, never registered: removed by its shape
    assert token.upper() not in sent  # not in the message either: only the shape finds it
    if not pii:
        assert email not in sent
        assert email.upper() not in sent
        assert marker not in sent  # message content and the argument's words
    for event in [*endpoint.events(), *endpoint.transactions()]:
        assert_sentry_accepts(event)
