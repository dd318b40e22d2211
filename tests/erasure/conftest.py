from tests.samples.conftest import any_service, cli_env, service, speech

__all__ = ["any_service", "cli_env", "service", "speech"]
