"""The command tests run against the template deployed into moto and the Twilio simulator: the
same fixtures as the integration tests, imported rather than copied."""

from tests.integration.conftest import aws, sim, stack, system

__all__ = ["aws", "sim", "stack", "system"]
