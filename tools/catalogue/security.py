"""Security configuration tools: network zones, authenticators, devices, device assurance policies,
identity providers, authorization servers and trusted origins (list and get each)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from tools.catalogue.common import (
    Expression,
    FullField,
    GetInput,
    Keyword,
    ListInput,
    OktaId,
    Page,
    checked_identifier,
    dig,
    okta_object,
    okta_page,
    page_of,
    text,
    whole,
)
from tools.context import ToolContext
from tools.registry import register


def _values(items: Any, limit: int = 20) -> list[str]:
    if not isinstance(items, list):
        return []
    return [str(i.get("value")) for i in items[:limit] if isinstance(i, dict) and i.get("value") is not None]


# --- network zones --------------------------------------------------------------------------------
class ZoneSummary(BaseModel):
    id: str
    name: str | None = None
    type: str | None = Field(default=None, description="IP, DYNAMIC or DYNAMIC_V2")
    status: str | None = None
    usage: str | None = Field(default=None, description="POLICY or BLOCKLIST")
    system: bool | None = None
    gateways: list[str] = Field(default_factory=list, description="IP ranges/CIDRs of an IP zone (first 20)")
    full: dict[str, Any] | None = FullField


def zone_summary(zone: dict[str, Any], full: bool = False) -> ZoneSummary:
    return ZoneSummary(
        id=str(zone.get("id") or ""),
        name=text(zone, "name"),
        type=text(zone, "type"),
        status=text(zone, "status"),
        usage=text(zone, "usage"),
        system=zone.get("system"),
        gateways=_values(zone.get("gateways")),
        full=whole(zone, full),
    )


class ZonePage(Page[ZoneSummary]):
    pass


class ListZonesInput(ListInput):
    filter: Expression | None = Field(default=None, description='Okta filter on id, usage or system, e.g. usage eq "BLOCKLIST"')


ZONES_READ = ("okta.networkZones.read",)


@register(
    name="list_network_zones", title="List network zones", access="read",
    input_model=ListZonesInput, output_model=ZonePage, okta_scopes=ZONES_READ,
)
async def list_network_zones(ctx: ToolContext, args: ListZonesInput) -> ZonePage:
    """Okta network zones (IP allow/block lists and dynamic zones) used by sign-on policies."""
    raw = await okta_page(
        ctx, tool="list_network_zones", path="/api/v1/zones", query={"filter": args.filter},
        cursor=args.cursor, limit=args.limit,
    )
    return page_of(ZonePage, raw, zone_summary, args.full)


class ZoneInput(GetInput):
    zone_id: OktaId = Field(description="Okta network zone id (nzo...)")


@register(
    name="get_network_zone", title="Get a network zone", access="read",
    input_model=ZoneInput, output_model=ZoneSummary, okta_scopes=ZONES_READ,
)
async def get_network_zone(ctx: ToolContext, args: ZoneInput) -> ZoneSummary:
    """One Okta network zone by id: type, usage, status and its IP ranges."""
    ident = checked_identifier(args.zone_id, "zone id")
    return zone_summary(await okta_object(ctx, "/api/v1/zones/{}", ident, what="network zone", ident=ident), args.full)


# --- authenticators -------------------------------------------------------------------------------
class AuthenticatorSummary(BaseModel):
    id: str
    key: str | None = Field(default=None, description="e.g. okta_password, okta_verify, webauthn, phone_number")
    name: str | None = None
    type: str | None = None
    status: str | None = None
    created: datetime | None = None
    last_updated: datetime | None = None
    full: dict[str, Any] | None = FullField


def authenticator_summary(item: dict[str, Any], full: bool = False) -> AuthenticatorSummary:
    return AuthenticatorSummary(
        id=str(item.get("id") or ""),
        key=text(item, "key"),
        name=text(item, "name"),
        type=text(item, "type"),
        status=text(item, "status"),
        created=item.get("created"),
        last_updated=item.get("lastUpdated"),
        full=whole(item, full),
    )


class AuthenticatorPage(Page[AuthenticatorSummary]):
    pass


AUTHENTICATORS_READ = ("okta.authenticators.read",)


@register(
    name="list_authenticators", title="List authenticators", access="read",
    input_model=ListInput, output_model=AuthenticatorPage, okta_scopes=AUTHENTICATORS_READ,
)
async def list_authenticators(ctx: ToolContext, args: ListInput) -> AuthenticatorPage:
    """The org's authenticators (password, email, phone, Okta Verify, security keys, ...) and whether each is active."""
    raw = await okta_page(
        ctx, tool="list_authenticators", path="/api/v1/authenticators",
        cursor=args.cursor, limit=args.limit, okta_paged=False,
    )
    return page_of(AuthenticatorPage, raw, authenticator_summary, args.full)


class AuthenticatorInput(GetInput):
    authenticator_id: OktaId = Field(description="Okta authenticator id (aut...)")


@register(
    name="get_authenticator", title="Get an authenticator", access="read",
    input_model=AuthenticatorInput, output_model=AuthenticatorSummary, okta_scopes=AUTHENTICATORS_READ,
)
async def get_authenticator(ctx: ToolContext, args: AuthenticatorInput) -> AuthenticatorSummary:
    """One Okta authenticator by id (full=true for its settings)."""
    ident = checked_identifier(args.authenticator_id, "authenticator id")
    return authenticator_summary(await okta_object(ctx, "/api/v1/authenticators/{}", ident, what="authenticator", ident=ident), args.full)


# --- devices --------------------------------------------------------------------------------------
class DeviceSummary(BaseModel):
    id: str
    status: str | None = None
    display_name: str | None = None
    platform: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    os_version: str | None = None
    registered: bool | None = None
    created: datetime | None = None
    last_updated: datetime | None = None
    full: dict[str, Any] | None = FullField


def device_summary(device: dict[str, Any], full: bool = False) -> DeviceSummary:
    return DeviceSummary(
        id=str(device.get("id") or ""),
        status=text(device, "status"),
        display_name=text(device, "profile.displayName"),
        platform=text(device, "profile.platform"),
        manufacturer=text(device, "profile.manufacturer"),
        model=text(device, "profile.model"),
        os_version=text(device, "profile.osVersion"),
        registered=dig(device, "profile.registered"),
        created=device.get("created"),
        last_updated=device.get("lastUpdated"),
        full=whole(device, full),
    )


class DevicePage(Page[DeviceSummary]):
    pass


class ListDevicesInput(ListInput):
    search: Expression | None = Field(
        default=None, description='Okta search expression, e.g. status eq "ACTIVE" and profile.platform eq "IOS"'
    )


DEVICES_READ = ("okta.devices.read",)


@register(
    name="list_devices", title="List devices", access="read",
    input_model=ListDevicesInput, output_model=DevicePage, okta_scopes=DEVICES_READ,
)
async def list_devices(ctx: ToolContext, args: ListDevicesInput) -> DevicePage:
    """Devices registered with Okta (Okta Verify), with platform, model and status; narrow with an Okta search expression."""
    raw = await okta_page(
        ctx, tool="list_devices", path="/api/v1/devices", query={"search": args.search},
        cursor=args.cursor, limit=args.limit,
    )
    return page_of(DevicePage, raw, device_summary, args.full)


class DeviceInput(GetInput):
    device_id: OktaId = Field(description="Okta device id (guo...)")


@register(
    name="get_device", title="Get a device", access="read",
    input_model=DeviceInput, output_model=DeviceSummary, okta_scopes=DEVICES_READ,
)
async def get_device(ctx: ToolContext, args: DeviceInput) -> DeviceSummary:
    """One device registered with Okta, by id."""
    ident = checked_identifier(args.device_id, "device id")
    return device_summary(await okta_object(ctx, "/api/v1/devices/{}", ident, what="device", ident=ident), args.full)


# --- device assurance policies --------------------------------------------------------------------
class DeviceAssuranceSummary(BaseModel):
    id: str
    name: str | None = None
    platform: str | None = None
    created: datetime | None = None
    last_updated: datetime | None = None
    full: dict[str, Any] | None = FullField


def device_assurance_summary(policy: dict[str, Any], full: bool = False) -> DeviceAssuranceSummary:
    return DeviceAssuranceSummary(
        id=str(policy.get("id") or ""),
        name=text(policy, "name"),
        platform=text(policy, "platform"),
        created=policy.get("createdDate"),
        last_updated=policy.get("lastUpdate"),
        full=whole(policy, full),
    )


class DeviceAssurancePage(Page[DeviceAssuranceSummary]):
    pass


DEVICE_ASSURANCE_READ = ("okta.deviceAssurance.read",)


@register(
    name="list_device_assurance_policies", title="List device assurance policies", access="read",
    input_model=ListInput, output_model=DeviceAssurancePage, okta_scopes=DEVICE_ASSURANCE_READ,
)
async def list_device_assurance_policies(ctx: ToolContext, args: ListInput) -> DeviceAssurancePage:
    """Device assurance policies (minimum OS version, disk encryption, screen lock, ...) per platform."""
    raw = await okta_page(
        ctx, tool="list_device_assurance_policies", path="/api/v1/device-assurances",
        cursor=args.cursor, limit=args.limit, okta_paged=False,
    )
    return page_of(DeviceAssurancePage, raw, device_assurance_summary, args.full)


class DeviceAssuranceInput(GetInput):
    policy_id: OktaId = Field(description="Okta device assurance policy id (dae...)")


@register(
    name="get_device_assurance_policy", title="Get a device assurance policy", access="read",
    input_model=DeviceAssuranceInput, output_model=DeviceAssuranceSummary, okta_scopes=DEVICE_ASSURANCE_READ,
)
async def get_device_assurance_policy(ctx: ToolContext, args: DeviceAssuranceInput) -> DeviceAssuranceSummary:
    """One device assurance policy by id (full=true for its requirements)."""
    ident = checked_identifier(args.policy_id, "policy id")
    policy = await okta_object(ctx, "/api/v1/device-assurances/{}", ident, what="device assurance policy", ident=ident)
    return device_assurance_summary(policy, args.full)


# --- identity providers ---------------------------------------------------------------------------
class IdpSummary(BaseModel):
    id: str
    name: str | None = None
    type: str | None = Field(default=None, description="e.g. SAML2, OIDC, GOOGLE, MICROSOFT, FACEBOOK")
    status: str | None = None
    protocol: str | None = None
    issuer_mode: str | None = None
    created: datetime | None = None
    last_updated: datetime | None = None
    full: dict[str, Any] | None = FullField


def idp_summary(idp: dict[str, Any], full: bool = False) -> IdpSummary:
    return IdpSummary(
        id=str(idp.get("id") or ""),
        name=text(idp, "name"),
        type=text(idp, "type"),
        status=text(idp, "status"),
        protocol=text(idp, "protocol.type"),
        issuer_mode=text(idp, "issuerMode"),
        created=idp.get("created"),
        last_updated=idp.get("lastUpdated"),
        full=whole(idp, full),
    )


class IdpPage(Page[IdpSummary]):
    pass


class ListIdpsInput(ListInput):
    q: Keyword | None = Field(default=None, description="Starts-with match on the name")
    type: Literal["SAML2", "OIDC", "GOOGLE", "MICROSOFT", "FACEBOOK", "LINKEDIN", "APPLE", "X509", "AMAZON", "PAYPAL"] | None = None


IDPS_READ = ("okta.idps.read",)


@register(
    name="list_identity_providers", title="List identity providers", access="read",
    input_model=ListIdpsInput, output_model=IdpPage, okta_scopes=IDPS_READ,
)
async def list_identity_providers(ctx: ToolContext, args: ListIdpsInput) -> IdpPage:
    """External identity providers Okta federates with (SAML, OIDC, social), and their status."""
    raw = await okta_page(
        ctx, tool="list_identity_providers", path="/api/v1/idps", query={"q": args.q, "type": args.type},
        cursor=args.cursor, limit=args.limit,
    )
    return page_of(IdpPage, raw, idp_summary, args.full)


class IdpInput(GetInput):
    idp_id: OktaId = Field(description="Okta identity provider id (0oa...)")


@register(
    name="get_identity_provider", title="Get an identity provider", access="read",
    input_model=IdpInput, output_model=IdpSummary, okta_scopes=IDPS_READ,
)
async def get_identity_provider(ctx: ToolContext, args: IdpInput) -> IdpSummary:
    """One external identity provider by id (full=true for its protocol and provisioning settings)."""
    ident = checked_identifier(args.idp_id, "identity provider id")
    return idp_summary(await okta_object(ctx, "/api/v1/idps/{}", ident, what="identity provider", ident=ident), args.full)


# --- authorization servers ------------------------------------------------------------------------
class AuthServerSummary(BaseModel):
    id: str
    name: str | None = None
    description: str | None = None
    audiences: list[str] = Field(default_factory=list)
    issuer: str | None = None
    status: str | None = None
    created: datetime | None = None
    last_updated: datetime | None = None
    full: dict[str, Any] | None = FullField


def auth_server_summary(server: dict[str, Any], full: bool = False) -> AuthServerSummary:
    audiences = server.get("audiences")
    return AuthServerSummary(
        id=str(server.get("id") or ""),
        name=text(server, "name"),
        description=text(server, "description"),
        audiences=[str(a) for a in audiences] if isinstance(audiences, list) else [],
        issuer=text(server, "issuer"),
        status=text(server, "status"),
        created=server.get("created"),
        last_updated=server.get("lastUpdated"),
        full=whole(server, full),
    )


class AuthServerPage(Page[AuthServerSummary]):
    pass


class ListAuthServersInput(ListInput):
    q: Keyword | None = Field(default=None, description="Starts-with match on the name or audience")


AUTH_SERVERS_READ = ("okta.authorizationServers.read",)


@register(
    name="list_authorization_servers", title="List authorization servers", access="read",
    input_model=ListAuthServersInput, output_model=AuthServerPage, okta_scopes=AUTH_SERVERS_READ,
)
async def list_authorization_servers(ctx: ToolContext, args: ListAuthServersInput) -> AuthServerPage:
    """Okta custom authorization servers: name, audiences, issuer and status."""
    raw = await okta_page(
        ctx, tool="list_authorization_servers", path="/api/v1/authorizationServers", query={"q": args.q},
        cursor=args.cursor, limit=args.limit,
    )
    return page_of(AuthServerPage, raw, auth_server_summary, args.full)


class AuthServerInput(GetInput):
    server_id: OktaId = Field(description="Okta authorization server id (aus... or default)")


@register(
    name="get_authorization_server", title="Get an authorization server", access="read",
    input_model=AuthServerInput, output_model=AuthServerSummary, okta_scopes=AUTH_SERVERS_READ,
)
async def get_authorization_server(ctx: ToolContext, args: AuthServerInput) -> AuthServerSummary:
    """One Okta authorization server by id (or "default")."""
    ident = checked_identifier(args.server_id, "authorization server id")
    server = await okta_object(ctx, "/api/v1/authorizationServers/{}", ident, what="authorization server", ident=ident)
    return auth_server_summary(server, args.full)


# --- trusted origins ------------------------------------------------------------------------------
class TrustedOriginSummary(BaseModel):
    id: str
    name: str | None = None
    origin: str | None = None
    status: str | None = None
    scopes: list[str] = Field(default_factory=list, description="CORS, REDIRECT and/or IFRAME_EMBED")
    created: datetime | None = None
    last_updated: datetime | None = None
    full: dict[str, Any] | None = FullField


def trusted_origin_summary(item: dict[str, Any], full: bool = False) -> TrustedOriginSummary:
    scopes = item.get("scopes")
    return TrustedOriginSummary(
        id=str(item.get("id") or ""),
        name=text(item, "name"),
        origin=text(item, "origin"),
        status=text(item, "status"),
        scopes=[str(s.get("type")) for s in scopes if isinstance(s, dict) and s.get("type")] if isinstance(scopes, list) else [],
        created=item.get("created"),
        last_updated=item.get("lastUpdated"),
        full=whole(item, full),
    )


class TrustedOriginPage(Page[TrustedOriginSummary]):
    pass


class ListTrustedOriginsInput(ListInput):
    q: Keyword | None = Field(default=None, description="Starts-with match on the name or origin")
    filter: Expression | None = Field(default=None, description='Okta filter, e.g. status eq "ACTIVE"')


TRUSTED_ORIGINS_READ = ("okta.trustedOrigins.read",)


@register(
    name="list_trusted_origins", title="List trusted origins", access="read",
    input_model=ListTrustedOriginsInput, output_model=TrustedOriginPage, okta_scopes=TRUSTED_ORIGINS_READ,
)
async def list_trusted_origins(ctx: ToolContext, args: ListTrustedOriginsInput) -> TrustedOriginPage:
    """Origins Okta trusts for CORS, redirects or iframe embedding."""
    raw = await okta_page(
        ctx, tool="list_trusted_origins", path="/api/v1/trustedOrigins", query={"q": args.q, "filter": args.filter},
        cursor=args.cursor, limit=args.limit,
    )
    return page_of(TrustedOriginPage, raw, trusted_origin_summary, args.full)


class TrustedOriginInput(GetInput):
    origin_id: OktaId = Field(description="Okta trusted origin id (tos...)")


@register(
    name="get_trusted_origin", title="Get a trusted origin", access="read",
    input_model=TrustedOriginInput, output_model=TrustedOriginSummary, okta_scopes=TRUSTED_ORIGINS_READ,
)
async def get_trusted_origin(ctx: ToolContext, args: TrustedOriginInput) -> TrustedOriginSummary:
    """One trusted origin by id: its URL, scopes and status."""
    ident = checked_identifier(args.origin_id, "trusted origin id")
    item = await okta_object(ctx, "/api/v1/trustedOrigins/{}", ident, what="trusted origin", ident=ident)
    return trusted_origin_summary(item, args.full)
