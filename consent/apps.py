from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Consent and tokens"

    def ready(self) -> None:
        from consent.principal_cache import authz_watch_oauth_models

        authz_watch_oauth_models()
