"""The unchanged Python `flagsmith` SDK (6.3.0) against a real `flagstone serve`: remote
evaluation, local evaluation from the environment document, real-time mode, unknown keys."""

from __future__ import annotations

import json
import time
import unittest
import uuid

import requests
from flagsmith import Flagsmith
from flagsmith.exceptions import FlagsmithAPIError, FlagsmithFeatureDoesNotExistError
from flagsmith.models import DefaultFlag

from common import (
    BANNER,
    CHECKOUT,
    COLOR,
    LIVE,
    MAX_ITEMS,
    MV_IDENTIFIERS,
    PREMIUM,
    SERVER_ONLY,
    STABLE_FEATURES,
    VIP_BANNER,
    poll,
    set_state,
    shared,
    unique,
)


def remote_client(key: str | None = None, **kw) -> Flagsmith:
    server, fixture = shared()
    return Flagsmith(
        environment_key=key or fixture.client_key,
        api_url=fixture.api_url,
        request_timeout_seconds=5,
        **kw,
    )


def local_client(**kw) -> Flagsmith:
    server, fixture = shared()
    kw.setdefault("environment_refresh_interval_seconds", 3600)
    return Flagsmith(
        environment_key=fixture.server_key,
        api_url=fixture.api_url,
        enable_local_evaluation=True,
        request_timeout_seconds=5,
        **kw,
    )


def snapshot(flags, names=STABLE_FEATURES) -> dict:
    """name -> (enabled, value, variant) for the features compared across clients."""
    out = {}
    for name in names:
        f = flags.get_flag(name)
        out[name] = (f.enabled, f.value, getattr(f, "variant", None))
    return out


def close(client: Flagsmith) -> None:
    for attr in ("event_stream_thread", "environment_data_polling_manager_thread"):
        t = getattr(client, attr, None)
        if t is not None:
            t.stop()


class RemoteEvaluation(unittest.TestCase):
    """`Flagsmith(environment_key=<client key>)`: every call goes to /flags/ or /identities/."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.fixture = shared()[1]
        cls.client = remote_client()

    def test_environment_flags(self) -> None:
        flags = self.client.get_environment_flags()
        self.assertTrue(flags.is_feature_enabled(BANNER))
        self.assertEqual(flags.get_feature_value(BANNER), "hello")
        self.assertFalse(flags.is_feature_enabled(CHECKOUT))
        self.assertIsNone(flags.get_feature_value(CHECKOUT))
        self.assertEqual(flags.get_feature_value(MAX_ITEMS), 10)
        self.assertIsInstance(flags.get_feature_value(MAX_ITEMS), int)
        # Environment flags carry the default value, never a multivariate split.
        self.assertEqual(flags.get_feature_value(COLOR), "grey")
        self.assertFalse(flags.is_feature_enabled(PREMIUM))
        self.assertEqual(flags.get_feature_value(PREMIUM), "standard")
        banner = flags.get_flag(BANNER)
        self.assertEqual(banner.feature_id, self.fixture.features[BANNER]["id"])
        self.assertFalse(banner.is_default)
        with self.assertRaises(FlagsmithFeatureDoesNotExistError):
            flags.get_flag("no_such_feature")

    def test_identity_with_traits_matching_the_segment(self) -> None:
        premium = self.client.get_identity_flags(unique("premium"), traits={"plan": "premium"})
        self.assertTrue(premium.is_feature_enabled(PREMIUM))
        self.assertEqual(premium.get_feature_value(PREMIUM), "premium")
        self.assertEqual(premium.get_feature_value(BANNER), "hello")
        free = self.client.get_identity_flags(unique("free"), traits={"plan": "free"})
        self.assertFalse(free.is_feature_enabled(PREMIUM))
        self.assertEqual(free.get_feature_value(PREMIUM), "standard")

    def test_traits_are_persisted_unless_transient(self) -> None:
        ident = unique("persisted")
        self.client.get_identity_flags(ident, traits={"plan": "premium"})
        # Stored behind the request: a later call without traits sees the segment.
        got = poll(
            lambda: self.client.get_identity_flags(ident).get_feature_value(PREMIUM) == "premium",
            timeout=3,
            interval=0.05,
        )
        self.assertTrue(got, "the trait sent with the first call was not persisted")

        transient = unique("transient")
        flags = self.client.get_identity_flags(
            transient, traits={"plan": "premium"}, transient=True
        )
        self.assertEqual(flags.get_feature_value(PREMIUM), "premium")
        time.sleep(0.3)  # give a (wrong) background write the chance to land
        self.assertEqual(
            self.client.get_identity_flags(transient).get_feature_value(PREMIUM), "standard"
        )

        per_trait = unique("per-trait")
        flags = self.client.get_identity_flags(
            per_trait, traits={"plan": {"value": "premium", "transient": True}}
        )
        self.assertEqual(flags.get_feature_value(PREMIUM), "premium")
        time.sleep(0.3)
        self.assertEqual(
            self.client.get_identity_flags(per_trait).get_feature_value(PREMIUM), "standard"
        )

    def test_a_null_trait_value_deletes_the_trait(self) -> None:
        ident = unique("deleted")
        self.client.get_identity_flags(ident, traits={"plan": "premium"})
        self.assertTrue(
            poll(
                lambda: self.client.get_identity_flags(ident).get_feature_value(PREMIUM)
                == "premium",
                timeout=3,
                interval=0.05,
            )
        )
        flags = self.client.get_identity_flags(ident, traits={"plan": None})
        self.assertEqual(flags.get_feature_value(PREMIUM), "standard")
        self.assertTrue(
            poll(
                lambda: self.client.get_identity_flags(ident).get_feature_value(PREMIUM)
                == "standard",
                timeout=3,
                interval=0.05,
            ),
            "the trait deleted with a null value came back",
        )

    def test_multivariate_split(self) -> None:
        first = {i: self.client.get_identity_flags(i).get_flag(COLOR) for i in MV_IDENTIFIERS}
        values = {f.value for f in first.values()}
        self.assertEqual(values, {"red", "blue"}, "both variants at 50/50 over 80 identities")
        variants = {f.variant for f in first.values()}
        self.assertEqual(variants, set(self.fixture.color_variants.values()))
        for f in first.values():
            self.assertEqual(f.variant, self.fixture.color_variants[f.value])
        counts = {v: sum(1 for f in first.values() if f.value == v) for v in values}
        self.assertTrue(all(c >= 20 for c in counts.values()), counts)
        for ident in MV_IDENTIFIERS[:20]:
            again = self.client.get_identity_flags(ident).get_flag(COLOR)
            self.assertEqual((again.value, again.variant), (first[ident].value, first[ident].variant))
        # Non-multivariate flags have no variant.
        self.assertIsNone(self.client.get_identity_flags(MV_IDENTIFIERS[0]).get_flag(BANNER).variant)

    def test_identity_override(self) -> None:
        flags = self.client.get_identity_flags(self.fixture.vip_identifier)
        self.assertTrue(flags.is_feature_enabled(BANNER))
        self.assertEqual(flags.get_feature_value(BANNER), VIP_BANNER)
        # The override beats the segment override too, and other features keep defaults.
        flags = self.client.get_identity_flags(
            self.fixture.vip_identifier, traits={"plan": "premium"}, transient=True
        )
        self.assertEqual(flags.get_feature_value(BANNER), VIP_BANNER)
        self.assertEqual(flags.get_feature_value(PREMIUM), "premium")
        self.assertEqual(flags.get_feature_value(MAX_ITEMS), 10)

    def test_admin_change_is_visible_within_a_second(self) -> None:
        value = f"remote-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        set_state(LIVE, value)
        seen = poll(
            lambda: self.client.get_environment_flags().get_feature_value(LIVE) == value,
            timeout=1.0,
            interval=0.01,
        )
        elapsed = time.monotonic() - started
        self.assertTrue(seen, f"/flags/ did not serve {value!r} within 1 s")
        identity_seen = poll(
            lambda: self.client.get_identity_flags(unique("live")).get_feature_value(LIVE) == value,
            timeout=1.0,
            interval=0.01,
        )
        self.assertTrue(identity_seen)
        print(f"  remote propagation: {elapsed * 1000:.0f} ms", flush=True)

        set_state(LIVE, value, enabled=False)
        self.assertTrue(
            poll(lambda: not self.client.get_environment_flags().is_feature_enabled(LIVE), 1.0, 0.01)
        )


class ServerKeyOnlyFeature(unittest.TestCase):
    def test_hidden_from_client_keys_served_to_server_keys(self) -> None:
        _, fixture = shared()
        client = remote_client()
        for flags in (client.get_environment_flags(), client.get_identity_flags(unique("c"))):
            with self.assertRaises(FlagsmithFeatureDoesNotExistError):
                flags.get_flag(SERVER_ONLY)
        server = remote_client(fixture.server_key)
        for flags in (server.get_environment_flags(), server.get_identity_flags(unique("s"))):
            self.assertEqual(flags.get_feature_value(SERVER_ONLY), "secret")
        local = local_client()
        try:
            self.assertEqual(local.get_environment_flags().get_feature_value(SERVER_ONLY), "secret")
        finally:
            close(local)


class UnknownKey(unittest.TestCase):
    def test_remote_unknown_key_raises_the_sdk_error(self) -> None:
        client = remote_client("not-a-real-key")
        with self.assertRaises(FlagsmithAPIError):
            client.get_environment_flags()
        with self.assertRaises(FlagsmithAPIError):
            client.get_identity_flags("someone", traits={"plan": "premium"})

    def test_remote_unknown_key_falls_back_to_the_default_flag_handler(self) -> None:
        client = remote_client(
            "not-a-real-key",
            default_flag_handler=lambda name: DefaultFlag(enabled=True, value=f"default-{name}"),
        )
        flag = client.get_environment_flags().get_flag(BANNER)
        self.assertTrue(flag.is_default)
        self.assertEqual(flag.value, f"default-{BANNER}")
        flag = client.get_identity_flags("someone").get_flag(BANNER)
        self.assertTrue(flag.is_default)

    def test_http_shape_is_flagsmiths(self) -> None:
        _, fixture = shared()
        for path in ("flags/", "identities/?identifier=x", "environment-document/"):
            r = requests.get(
                fixture.api_url + path, headers={"X-Environment-Key": "not-a-real-key"}, timeout=5
            )
            self.assertEqual(r.status_code, 403, path)
            self.assertIn("detail", r.json(), path)
        r = requests.get(fixture.api_url + "flags/", timeout=5)
        self.assertEqual(r.status_code, 403)
        # A client key cannot read the environment document.
        r = requests.get(
            fixture.api_url + "environment-document/",
            headers={"X-Environment-Key": fixture.client_key},
            timeout=5,
        )
        self.assertEqual(r.status_code, 403)

    def test_a_revoked_server_key_stops_working_within_a_second(self) -> None:
        server, fixture = shared()
        created = server.admin(
            "POST", f"environments/{fixture.client_key}/api-keys/", {"name": "revoked-soon"}
        )
        client = remote_client(created["key"])
        self.assertEqual(client.get_environment_flags().get_feature_value(BANNER), "hello")
        server.admin("DELETE", f"environments/{fixture.client_key}/api-keys/{created['id']}/")

        def refused() -> bool:
            try:
                client.get_environment_flags()
            except FlagsmithAPIError:
                return True
            return False

        self.assertTrue(poll(refused, timeout=1.0, interval=0.02), "revoked key still served")

    def test_local_evaluation_with_an_unknown_server_key(self) -> None:
        _, fixture = shared()
        client = Flagsmith(
            environment_key="ser.not-a-real-key",
            api_url=fixture.api_url,
            enable_local_evaluation=True,
            environment_refresh_interval_seconds=3600,
            request_timeout_seconds=5,
        )
        try:
            # No document could be fetched, so the SDK falls back to the API, which refuses.
            with self.assertRaises(FlagsmithAPIError):
                client.get_environment_flags()
        finally:
            close(client)

    def test_local_evaluation_needs_a_server_key(self) -> None:
        _, fixture = shared()
        with self.assertRaises(ValueError):
            Flagsmith(
                environment_key=fixture.client_key,
                api_url=fixture.api_url,
                enable_local_evaluation=True,
            )


class LocalEvaluation(unittest.TestCase):
    """`enable_local_evaluation=True` with a `ser.` key: the SDK fetches the environment
    document and evaluates itself; results must equal the server's."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.fixture = shared()[1]
        cls.remote = remote_client()
        cls.local = local_client()
        assert cls.local._evaluation_context is not None, "no environment document was loaded"

    @classmethod
    def tearDownClass(cls) -> None:
        close(cls.local)

    def test_environment_flags_equal_remote(self) -> None:
        local = snapshot(self.local.get_environment_flags())
        self.assertEqual(local, snapshot(self.remote.get_environment_flags()))
        self.assertEqual(local[BANNER][:2], (True, "hello"))
        self.assertEqual(local[MAX_ITEMS][:2], (True, 10))
        self.assertEqual(local[COLOR][:2], (True, "grey"))

    def test_identity_with_traits_equal_remote(self) -> None:
        for traits in ({"plan": "premium"}, {"plan": "free"}, {}):
            ident = unique("local")
            local = snapshot(self.local.get_identity_flags(ident, traits=traits))
            remote = snapshot(self.remote.get_identity_flags(ident, traits=traits))
            self.assertEqual(local, remote, traits)
            expected = "premium" if traits.get("plan") == "premium" else "standard"
            self.assertEqual(local[PREMIUM][1], expected)
        segments = self.local.get_identity_segments(unique("seg"), traits={"plan": "premium"})
        self.assertEqual([s.name for s in segments], ["premium users"])
        self.assertEqual(segments[0].id, self.fixture.segment_id)
        self.assertEqual(self.local.get_identity_segments(unique("seg"), traits={"plan": "x"}), [])

    def test_multivariate_split_equals_remote(self) -> None:
        local = {i: self.local.get_identity_flags(i).get_flag(COLOR) for i in MV_IDENTIFIERS}
        remote = {i: self.remote.get_identity_flags(i).get_flag(COLOR) for i in MV_IDENTIFIERS}
        self.assertEqual({f.value for f in local.values()}, {"red", "blue"})
        mismatched = [
            (i, (local[i].value, local[i].variant), (remote[i].value, remote[i].variant))
            for i in MV_IDENTIFIERS
            if (local[i].value, local[i].variant) != (remote[i].value, remote[i].variant)
        ]
        self.assertEqual(mismatched, [], "local (document) vs remote (server) split")

    def test_identity_override_from_the_document(self) -> None:
        local = self.local.get_identity_flags(self.fixture.vip_identifier)
        self.assertEqual(local.get_feature_value(BANNER), VIP_BANNER)
        self.assertEqual(
            snapshot(local), snapshot(self.remote.get_identity_flags(self.fixture.vip_identifier))
        )

    def test_document_is_the_published_environment(self) -> None:
        r = requests.get(
            self.fixture.api_url + "environment-document/",
            headers={"X-Environment-Key": self.fixture.server_key},
            timeout=5,
        )
        self.assertEqual(r.status_code, 200)
        doc = r.json()
        self.assertEqual(doc["api_key"], self.fixture.client_key)
        self.assertIn("X-Flagsmith-Document-Updated-At", r.headers)
        etag = r.headers.get("ETag")
        if etag:
            again = requests.get(
                self.fixture.api_url + "environment-document/",
                headers={"X-Environment-Key": self.fixture.server_key, "If-None-Match": etag},
                timeout=5,
            )
            self.assertEqual(again.status_code, 304)
        json.dumps(doc)  # plain JSON


class RealTime(unittest.TestCase):
    """`enable_realtime_updates=True`: no polling (the refresh interval is an hour); the SDK
    re-fetches the document when the server's SSE stream says it changed."""

    def test_change_arrives_through_sse(self) -> None:
        server, fixture = shared()
        client = local_client(enable_realtime_updates=True, realtime_api_url=fixture.url)
        try:
            self.assertTrue(client.event_stream_thread.is_alive())
            self.assertTrue(
                client.event_stream_thread.stream_url.startswith(
                    f"{fixture.url}/sse/environments/{fixture.client_key}/stream"
                )
            )
            for round_ in range(2):
                value = f"realtime-{round_}-{uuid.uuid4().hex[:8]}"
                started = time.monotonic()
                set_state(LIVE, value)
                # Local evaluation: get_environment_flags makes no request, so only the
                # SSE-triggered document refresh can make the new value appear.
                seen = poll(
                    lambda: client.get_environment_flags().get_feature_value(LIVE) == value,
                    timeout=5.0,
                    interval=0.02,
                )
                elapsed = time.monotonic() - started
                self.assertTrue(seen, f"real-time client did not see {value!r} within 5 s")
                print(f"  real-time propagation (round {round_}): {elapsed * 1000:.0f} ms", flush=True)
            # Identities evaluated locally from the refreshed document see it too.
            self.assertEqual(
                client.get_identity_flags(unique("rt"), {"plan": "premium"}).get_feature_value(LIVE),
                value,
            )
        finally:
            close(client)

    def test_sse_stream_sends_updated_at(self) -> None:
        server, fixture = shared()
        with requests.get(
            f"{fixture.url}/sse/environments/{fixture.client_key}/stream",
            stream=True,
            headers={"Accept": "text/event-stream"},
            timeout=5,
        ) as r:
            self.assertEqual(r.status_code, 200)
            self.assertTrue(r.headers["content-type"].startswith("text/event-stream"))
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    data = json.loads(line[len("data:"):])
                    self.assertIsInstance(data["updated_at"], (int, float))
                    self.assertGreater(data["updated_at"], 1.6e9)
                    break


if __name__ == "__main__":
    unittest.main()
