"""OpenFeature's OFREP provider for Python (openfeature-provider-ofrep 0.3.0 on openfeature-sdk)
against a real `flagstone serve`: `POST /ofrep/v1/evaluate/flags/{key}` with the environment key
as a bearer token, evaluated as Flagsmith's identities endpoint would (targeting key ->
identity, attributes -> transient traits), with the spec's reasons, variants and error codes."""

from __future__ import annotations

import unittest

import requests
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from openfeature.contrib.provider.ofrep import OFREPProvider

from common import (
    BANNER,
    CHECKOUT,
    COLOR,
    MAX_ITEMS,
    MV_IDENTIFIERS,
    PREMIUM,
    SERVER_ONLY,
    VIP_BANNER,
    shared,
    unique,
)


def reason(details) -> str:
    return details.reason.value if isinstance(details.reason, Reason) else details.reason


def ofrep_client(name: str, key: str, header: str = "bearer"):
    fixture = shared()[1]
    if header == "bearer":
        headers = {"Authorization": f"Bearer {key}"}
    else:
        headers = {"X-Environment-Key": key}
    api.set_provider(OFREPProvider(fixture.url, headers_factory=lambda: headers), name)
    return api.get_client(name)


class OfrepProvider(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.fixture = shared()[1]
        cls.client = ofrep_client("ofrep-client-key", cls.fixture.client_key)
        cls.server = ofrep_client("ofrep-server-key", cls.fixture.server_key, header="flagsmith")

    def ctx(self, prefix: str, **traits) -> EvaluationContext:
        return EvaluationContext(targeting_key=unique(prefix), attributes=traits)

    def test_values_of_every_type_with_static_reasons(self) -> None:
        c = self.ctx("ofrep-plain")
        banner = self.client.get_string_details(BANNER, "fallback", c)
        self.assertEqual(banner.value, "hello")
        self.assertEqual(reason(banner), "STATIC")
        self.assertEqual(banner.variant, "default")
        self.assertEqual(banner.flag_metadata["enabled"], True)
        self.assertEqual(self.client.get_integer_value(MAX_ITEMS, 0, c), 10)
        # A flag without a value is a boolean of its state.
        checkout = self.client.get_boolean_details(CHECKOUT, True, c)
        self.assertIs(checkout.value, False)
        self.assertEqual(reason(checkout), "DISABLED")

    def test_attributes_are_traits_and_match_segments(self) -> None:
        premium = self.client.get_string_details(PREMIUM, "x", self.ctx("ofrep-premium", plan="premium"))
        self.assertEqual(premium.value, "premium")
        self.assertEqual(reason(premium), "TARGETING_MATCH")
        self.assertEqual(premium.flag_metadata.get("segment"), "premium users")
        free = self.client.get_string_details(PREMIUM, "x", self.ctx("ofrep-free", plan="free"))
        self.assertEqual(free.value, "standard")
        self.assertEqual(reason(free), "DISABLED")

    def test_identity_overrides_apply_to_the_targeting_key(self) -> None:
        vip = EvaluationContext(targeting_key=self.fixture.vip_identifier)
        details = self.client.get_string_details(BANNER, "x", vip)
        self.assertEqual(details.value, VIP_BANNER)
        self.assertEqual(reason(details), "TARGETING_MATCH")
        self.assertEqual(details.flag_metadata.get("identityOverride"), True)

    def test_multivariate_split_matches_flagsmiths_identities_endpoint(self) -> None:
        seen = set()
        for identifier in MV_IDENTIFIERS[:30]:
            details = self.client.get_string_details(COLOR, "x", EvaluationContext(targeting_key=identifier))
            self.assertEqual(reason(details), "SPLIT")
            self.assertEqual(details.variant, self.fixture.color_variants[details.value])
            flagsmith = requests.get(
                f"{self.fixture.api_url}identities/",
                params={"identifier": identifier, "transient": "true"},
                headers={"X-Environment-Key": self.fixture.client_key},
                timeout=5,
            ).json()
            color = next(f for f in flagsmith["flags"] if f["feature"]["name"] == COLOR)
            self.assertEqual(details.value, color["feature_state_value"], identifier)
            seen.add(details.value)
        self.assertEqual(seen, {"red", "blue"})

    def test_errors_reach_the_application_as_openfeature_error_codes(self) -> None:
        c = self.ctx("ofrep-errors")
        missing = self.client.get_string_details("no_such_flag", "fallback", c)
        self.assertEqual((missing.value, missing.error_code), ("fallback", ErrorCode.FLAG_NOT_FOUND))
        # Targeted flags need a targeting key; untargeted ones do not.
        anonymous = EvaluationContext(attributes={"plan": "premium"})
        targeted = self.client.get_string_details(COLOR, "fallback", anonymous)
        self.assertEqual(targeted.error_code, ErrorCode.TARGETING_KEY_MISSING)
        self.assertEqual(self.client.get_integer_value(MAX_ITEMS, 0, anonymous), 10)
        mismatch = self.client.get_integer_details(BANNER, 0, c)
        self.assertEqual((mismatch.value, mismatch.error_code), (0, ErrorCode.TYPE_MISMATCH))
        bad = self.client.get_string_details(BANNER, "fallback", EvaluationContext(targeting_key="a\u202eb"))
        self.assertEqual(bad.error_code, ErrorCode.INVALID_CONTEXT)

    def test_keys_see_only_what_their_environment_serves_them(self) -> None:
        c = self.ctx("ofrep-keys")
        self.assertEqual(self.server.get_string_value(SERVER_ONLY, "x", c), "secret")
        hidden = self.client.get_string_details(SERVER_ONLY, "x", c)
        self.assertEqual(hidden.error_code, ErrorCode.FLAG_NOT_FOUND)
        unknown = ofrep_client("ofrep-unknown-key", "not-a-key")
        refused = unknown.get_string_details(BANNER, "fallback", c)
        self.assertEqual((refused.value, refused.error_code), ("fallback", ErrorCode.GENERAL))


if __name__ == "__main__":
    unittest.main()
