"""The OpenFeature Python provider for Flagsmith (openfeature-provider-flagsmith 1.0.0 on
openfeature-sdk) against a real `flagstone serve`: boolean and string resolution for an
identity (targeting key) with traits, remote and local evaluation."""

from __future__ import annotations

import unittest

from flagsmith import Flagsmith
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from openfeature_flagsmith.provider import FlagsmithProvider

from common import BANNER, CHECKOUT, COLOR, MAX_ITEMS, PREMIUM, VIP_BANNER, shared, unique


class OpenFeatureProvider(unittest.TestCase):
    local_evaluation = False

    @classmethod
    def setUpClass(cls) -> None:
        cls.fixture = shared()[1]
        if cls.local_evaluation:
            cls.flagsmith = Flagsmith(
                environment_key=cls.fixture.server_key,
                api_url=cls.fixture.api_url,
                enable_local_evaluation=True,
                environment_refresh_interval_seconds=3600,
            )
        else:
            cls.flagsmith = Flagsmith(environment_key=cls.fixture.client_key, api_url=cls.fixture.api_url)
        cls.domain = f"flagstone-{cls.__name__}"
        api.set_provider(FlagsmithProvider(client=cls.flagsmith), cls.domain)
        cls.client = api.get_client(cls.domain)

    @classmethod
    def tearDownClass(cls) -> None:
        t = getattr(cls.flagsmith, "environment_data_polling_manager_thread", None)
        if t is not None:
            t.stop()

    def ctx(self, prefix: str, **traits) -> EvaluationContext:
        return EvaluationContext(targeting_key=unique(prefix), attributes=traits)

    def test_boolean_for_an_identity_with_traits(self) -> None:
        premium = self.ctx("of-premium", plan="premium")
        details = self.client.get_boolean_details(PREMIUM, False, premium)
        self.assertIs(details.value, True)
        self.assertIsNone(details.error_code)
        reason = details.reason.value if isinstance(details.reason, Reason) else details.reason
        self.assertTrue(reason.startswith("TARGETING_MATCH"), reason)
        free = self.ctx("of-free", plan="free")
        self.assertIs(self.client.get_boolean_value(PREMIUM, True, free), False)
        self.assertIs(self.client.get_boolean_value(BANNER, False, free), True)
        self.assertIs(self.client.get_boolean_value(CHECKOUT, True, free), False)

    def test_string_for_an_identity_with_traits(self) -> None:
        premium = self.ctx("of-premium", plan="premium")
        self.assertEqual(self.client.get_string_value(PREMIUM, "fallback", premium), "premium")
        self.assertEqual(self.client.get_string_value(BANNER, "fallback", premium), "hello")
        # Nested traits (the provider's other spelling) work the same.
        nested = EvaluationContext(
            targeting_key=unique("of-nested"), attributes={"traits": {"plan": "premium"}}
        )
        self.assertEqual(self.client.get_string_value(PREMIUM, "fallback", nested), "premium")
        # A disabled flag's value is not served: the default comes back with an error.
        free = self.ctx("of-free", plan="free")
        details = self.client.get_string_details(PREMIUM, "fallback", free)
        self.assertEqual(details.value, "fallback")
        self.assertEqual(details.error_code, ErrorCode.GENERAL)

    def test_identity_override_and_multivariate(self) -> None:
        vip = EvaluationContext(targeting_key=self.fixture.vip_identifier)
        self.assertEqual(self.client.get_string_value(BANNER, "fallback", vip), VIP_BANNER)
        ctx = EvaluationContext(targeting_key="mv-user-1")
        details = self.client.get_string_details(COLOR, "fallback", ctx)
        self.assertIn(details.value, {"red", "blue"})
        self.assertEqual(details.variant, self.fixture.color_variants[details.value])
        self.assertEqual(self.client.get_string_value(COLOR, "fallback", ctx), details.value)

    def test_integer_type_and_mismatch(self) -> None:
        ctx = self.ctx("of-int")
        self.assertEqual(self.client.get_integer_value(MAX_ITEMS, 0, ctx), 10)
        details = self.client.get_string_details(MAX_ITEMS, "fallback", ctx)
        self.assertEqual(details.value, "fallback")
        self.assertEqual(details.error_code, ErrorCode.TYPE_MISMATCH)

    def test_unknown_flag_gives_the_default(self) -> None:
        details = self.client.get_boolean_details("no_such_flag", True, self.ctx("of-missing"))
        self.assertIs(details.value, True)
        self.assertEqual(details.error_code, ErrorCode.FLAG_NOT_FOUND)

    def test_environment_level_resolution(self) -> None:
        self.assertEqual(self.client.get_string_value(COLOR, "fallback"), "grey")
        self.assertIs(self.client.get_boolean_value(PREMIUM, True), False)


class OpenFeatureProviderLocal(OpenFeatureProvider):
    local_evaluation = True


class OpenFeatureUnknownKey(unittest.TestCase):
    def test_unknown_key_gives_defaults_with_an_error(self) -> None:
        fixture = shared()[1]
        flagsmith = Flagsmith(environment_key="not-a-real-key", api_url=fixture.api_url)
        api.set_provider(FlagsmithProvider(client=flagsmith), "flagstone-unknown")
        client = api.get_client("flagstone-unknown")
        details = client.get_boolean_details(BANNER, False, EvaluationContext(targeting_key="u1"))
        self.assertIs(details.value, False)
        self.assertEqual(details.error_code, ErrorCode.GENERAL)
        self.assertEqual(client.get_string_value(BANNER, "fallback"), "fallback")


if __name__ == "__main__":
    unittest.main()
