from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from oauth2_provider.models import Application

from audit.services import RequestMeta
from consent import services


def user_by_login(login: str) -> Any:
    users = list(get_user_model().objects.filter(okta_login__iexact=login)[:2])
    if not users:
        raise CommandError(f"no user with Okta login {login!r}")
    if len(users) > 1:
        raise CommandError(f"more than one user has Okta login {login!r}")
    return users[0]


def client_by_id(client_id: str) -> Application:
    application = Application.objects.filter(client_id=client_id).first()
    if application is None:
        raise CommandError(f"no client with client_id {client_id!r}")
    return application


class Command(BaseCommand):
    help = (
        "Revoke consents, and every access token, refresh token and login session of the (user, client) "
        "pairs they cover, taking effect at the client's next request. Name a user, a client, both (that "
        "pair), or --all. Safe to run twice: the second run revokes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", metavar="LOGIN", help="the user's Okta login")
        parser.add_argument("--client", metavar="CLIENT_ID", help="the client's client_id")
        parser.add_argument("--all", action="store_true", help="every consent and token of every user")
        parser.add_argument("--reason", default="", help="recorded in the audit trail")

    def handle(self, *args: Any, **options: Any) -> None:
        login, client_id, everything = options["user"], options["client"], options["all"]
        if everything and (login or client_id):
            raise CommandError("--all cannot be combined with --user or --client")
        if not (everything or login or client_id):
            raise CommandError("name what to revoke: --user LOGIN, --client CLIENT_ID (or both), or --all")
        user = user_by_login(login) if login else None
        application = client_by_id(client_id) if client_id else None
        summary = services.consent_revoke(
            user=user,
            application=application,
            everything=everything,
            reason=options["reason"] or "revoked with manage.py revoke_consent",
            actor=None,
            meta=RequestMeta.for_command("revoke_consent"),
        )
        scope = " and ".join(filter(None, [f"user {user}" if user else "", f"client {client_id}" if client_id else ""]))
        self.stdout.write(f"{scope or 'all users and clients'}: {summary}")
