"""`python -m sandbox.okta_api --port 9500`: serve the stand-in on 127.0.0.1."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvicorn

from .app import DEFAULT_API_TOKEN, SandboxConfig, create_app
from .recordings import default_reference_dir
from .seed import DEFAULT_ORG_FILE, SeedOptions, iter_seed_summary

HOST = "127.0.0.1"  # loopback only: the control API relies on it


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox.okta_api", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("OKTA_SANDBOX_PORT", "9500")))
    parser.add_argument("--api-token", default=os.environ.get("OKTA_API_TOKEN", DEFAULT_API_TOKEN),
                        help="the SSWS token clients must send (env OKTA_API_TOKEN)")
    parser.add_argument("--extra-users", type=int, default=0, help="add N synthetic ACTIVE users")
    parser.add_argument("--org-file", type=Path, default=DEFAULT_ORG_FILE)
    parser.add_argument("--reference-dir", type=Path, default=None,
                        help="Okta reference data (env OKTA_REFERENCE_DIR, default <repo>/../shared/okta-reference)")
    parser.add_argument("--public-url", default=os.environ.get("OKTA_SANDBOX_PUBLIC_URL"),
                        help="base URL to put in links, when clients reach the stand-in through a proxy")
    parser.add_argument("--rate-limit", type=int, default=0,
                        help="enforce N requests/minute per endpoint bucket (0: headers only, never 429)")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    if args.extra_users < 0 or args.rate_limit < 0:
        parser.error("--extra-users and --rate-limit must be >= 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    seed = SeedOptions(
        org_file=args.org_file,
        reference_dir=args.reference_dir or default_reference_dir(),
        extra_users=args.extra_users,
    )
    app = create_app(SandboxConfig(api_token=args.api_token, seed=seed, public_url=args.public_url,
                                   rate_limit=args.rate_limit))
    state = app.state.sandbox.state
    print(f"sandbox.okta_api: {state.org_name} on http://{HOST}:{args.port}", file=sys.stderr)
    for line in iter_seed_summary(state):
        print(f"sandbox.okta_api: {line}", file=sys.stderr)
    # Date is added by the app itself, so that a "bare" 503 fault can go without one.
    uvicorn.run(app, host=HOST, port=args.port, log_level=args.log_level, access_log=False,
                date_header=False, server_header=False)


if __name__ == "__main__":
    main()
