import sentry_sdk
from conftest import assert_sentry_accepts


async def test_prefix_error(make_bot, sentry_flush):
    harness = await make_bot()
    await harness.message("!boom hello there")
    endpoint = sentry_flush()
    events = endpoint.events()
    print(events)
    assert len(events) == 1
    assert_sentry_accepts(events[0])


async def test_slash(make_bot, sentry_flush):
    harness = await make_bot()
    res = await harness.slash("slash-ok", {"text": "hi"})
    print(res)
    res = await harness.slash("slash-boom", {"text": "hi"})
    endpoint = sentry_flush()
    print(endpoint.events(), endpoint.transactions())
    assert len(endpoint.events()) == 1
