"""Benchmark, run by hand (never by the test suite): list 10,000 Okta users through the
`list_users` tool, page by page, against the sandbox Okta API answering every request after a fixed
latency. Reports the wall time against the sum of the upstream latencies (as the sandbox served them,
from each request's arrival to its response's start; the configured sum beside it), and the server's memory
(RSS of the daphne process, from /proc) before and at its peak while listing 2,000 and then
10,000 users: memory that stays flat as the number of users grows means nothing accumulates.

    .venv/bin/python -m bench.okta_list_users                       # 10,000 users, 50 ms, 200 a page
    .venv/bin/python -m bench.okta_list_users --users 10000 --latency 0.05 --page 200
    .venv/bin/python -m bench.okta_list_users --profile var/bench/server.prof --profile-clock cpu

Everything runs on loopback: a throwaway database (PostgreSQL 15 with its default durability where
scripts/services.sh can start one, else SQLite), the sandbox Okta API and IdP, and this
server under daphne with the production settings module. The token comes from the real flow (a
person logs in at the sandbox IdP and approves the consent page). The client is a plain HTTP
client speaking MCP 2026-07-28 (one request per page, no session), so that the wall time is the
server's and Okta's, not a client library's. Results: Markdown on stdout, numbers in
var/bench/okta_list_users.json."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import MODERN, cpu_seconds, free_port, mint_tokens, modern_params, result_of, rpc_headers, wait_http  # noqa: E402
from tests.clients import Browser  # noqa: E402

PY = sys.executable
WORK = ROOT / "var" / "bench"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak since the last reset) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs); False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def list_all(http: httpx.Client, url: str, token: str, *, users: int, page: int) -> dict[str, Any]:
    """Page through list_users until `users` users have been seen or the listing ends."""
    seen: set[str] = set()
    pages = 0
    cursor: str | None = None
    started = time.perf_counter()
    while len(seen) < users:
        arguments: dict[str, Any] = {"limit": page, **({"cursor": cursor} if cursor else {})}
        response = http.post(
            url + "/mcp",
            headers=rpc_headers(token, MODERN, method="tools/call", name="list_users"),
            json={"jsonrpc": "2.0", "id": pages + 1, "method": "tools/call", "params": modern_params({"name": "list_users", "arguments": arguments})},
        )
        result = result_of(response)
        if result.get("isError"):
            raise RuntimeError(f"list_users failed: {result['content']}")
        structured = result["structuredContent"]
        seen.update(item["id"] for item in structured["items"])
        pages += 1
        cursor = structured["next_cursor"]
        if not cursor:
            break
    return {"users": len(seen), "pages": pages, "wall_seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000, help="users in the org and to list (default 10000)")
    parser.add_argument("--small", type=int, default=2_000, help="users in the first, smaller pass (default 2000)")
    parser.add_argument("--latency", type=float, default=0.05, help="upstream latency per Okta request, s (default 0.05)")
    parser.add_argument("--page", type=int, default=200, help="page size (default 200, the tool's maximum)")
    parser.add_argument("--profile", metavar="FILE", help="run the server under cProfile and write its profile here")
    parser.add_argument(
        "--profile-clock",
        choices=("wall", "cpu"),
        default="wall",
        help="what --profile times: wall clock (default) or the main thread's CPU time (bench.cpu_profile), "
        "which leaves out waiting, including waiting for a CPU the other processes of the run hold",
    )
    parser.add_argument(
        "--database",
        choices=("postgres", "sqlite"),
        help="postgres (default where scripts/services.sh can start one): PostgreSQL 15 with its default "
        "durability, as in production; sqlite: a file, every commit synced",
    )
    args = parser.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="okta-list-bench-"))
    scratch.chmod(0o755)  # PostgreSQL runs as its own user and must reach its data directory
    procs: list[subprocess.Popen[bytes]] = []
    completed = False

    def start(name: str, cmd: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.Popen[bytes]:
        out = open(scratch / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    if args.database is None:
        available = subprocess.run([str(ROOT / "scripts" / "services.sh"), "available"], check=False).returncode == 0
        args.database = "postgres" if available else "sqlite"
    services = scratch / "services"
    database_env = {"DATABASE_URL": f"sqlite:///{scratch / 'bench.sqlite3'}"}
    if args.database == "postgres":
        subprocess.run(
            [str(ROOT / "scripts" / "services.sh"), "start", str(services)],
            env={**os.environ, "PG_DURABLE": "1", "PG_DB": "okta_mcp_bench"},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        database_env = dict(
            line.removeprefix("export ").split("=", 1) for line in (services / "env").read_text().splitlines()
        )
    server_port, idp_port, api_port = free_port(), free_port(), free_port()
    url, api_url = f"http://127.0.0.1:{server_port}", f"http://127.0.0.1:{api_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKTA_", "DJANGO_", "MCP_", "DATABASE_", "REDIS_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "okta_mcp.settings",
            "SECRET_KEY": secrets.token_urlsafe(50),
            **database_env,
            "PUBLIC_URL": url,
            "OKTA_ISSUER": f"http://127.0.0.1:{idp_port}/oauth2/default",
            "OKTA_CLIENT_ID": "okta-mcp-sandbox",
            "OKTA_CLIENT_SECRET": "sandbox-secret-change-me",
            "OKTA_ORG_URL": api_url,
            "OKTA_API_TOKEN": "sandbox-api-token",
            "LOG_FORMAT": "json",
            "DEBUG": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([".venv/bin/python -m bench.okta_list_users", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()},
        "settings": vars(args),
    }
    try:
        log(f"migrating and seeding a throwaway {args.database} database")
        subprocess.run([PY, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run([PY, "manage.py", "seed_demo"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)

        log(f"starting the sandbox Okta API ({args.users} users), the IdP and the server")
        api = start(
            "okta-api",
            [PY, "-m", "sandbox.okta_api", "--port", str(api_port), "--extra-users", str(max(0, args.users - 4))],
            {**os.environ, "OKTA_API_TOKEN": "sandbox-api-token"},
        )
        wait_http(api_url + "/__health", api)
        idp = start(
            "idp",
            ["node", "server.mjs"],
            {
                **os.environ,
                "IDP_PORT": str(idp_port),
                "IDP_CLIENT_ID": "okta-mcp-sandbox",
                "IDP_CLIENT_SECRET": "sandbox-secret-change-me",
                "IDP_REDIRECT_URIS": f"{url}/oidc/callback/",
                "OKTA_API_URL": api_url,
                "OKTA_API_TOKEN": "sandbox-api-token",
            },
            cwd=ROOT / "sandbox" / "idp",
        )
        wait_http(f"http://127.0.0.1:{idp_port}/__health", idp)
        profile: list[str] = []
        if args.profile:
            out = str(Path(args.profile).resolve())
            profile = ["-m", "bench.cpu_profile", out] if args.profile_clock == "cpu" else ["-m", "cProfile", "-o", out]
        server = start(
            "daphne",
            [PY, *profile, "-m", "daphne", "-v", "0", "-b", "127.0.0.1", "-p", str(server_port), "okta_mcp.asgi:application"],
            env,
        )
        wait_http(url + "/healthz", server)

        log("a token through the real flow (alice logs in and approves)")
        browser = Browser("alice")
        token = mint_tokens(browser, url, 1)[0]["access_token"]
        browser.close()

        with httpx.Client(timeout=60) as http:
            log("warming up (the okta SDK is imported on the first call)")
            list_all(http, url, token, users=2 * args.page, page=args.page)
            http.post(api_url + "/__sandbox/latency", json={"seconds": args.latency}).raise_for_status()
            passes = []
            for users in (args.small, args.users):
                http.delete(api_url + "/__sandbox/requests").raise_for_status()
                before = memory_kib(server.pid)
                peak_reset = reset_peak(server.pid)
                log(f"listing {users} users, {args.page} a page, {args.latency * 1000:.0f} ms upstream latency")
                cpu_before = (cpu_seconds([server.pid]), cpu_seconds([api.pid]), time.process_time())
                run = list_all(http, url, token, users=users, page=args.page)
                cpu_after = (cpu_seconds([server.pid]), cpu_seconds([api.pid]), time.process_time())
                after = memory_kib(server.pid)
                log_of_requests = http.get(api_url + "/__sandbox/requests").json()
                okta_requests = log_of_requests["count"]
                # What the stand-in actually took (arrival to response start, each request): its
                # timer wakes up to a millisecond late, and that is upstream time, not ours.
                latency_sum = log_of_requests["answer_seconds"]
                passes.append(
                    {
                        **run,
                        "okta_requests": okta_requests,
                        "upstream_latency_configured_seconds": okta_requests * args.latency,
                        "upstream_latency_sum_seconds": latency_sum,
                        "ratio": run["wall_seconds"] / latency_sum if latency_sum else None,
                        "ratio_to_configured": run["wall_seconds"] / (okta_requests * args.latency) if okta_requests else None,
                        "overhead_ms_per_page": (run["wall_seconds"] - latency_sum) / run["pages"] * 1000,
                        "rss_before_kib": before["VmRSS"],
                        "rss_after_kib": after["VmRSS"],
                        "peak_kib": after["VmHWM"],
                        "peak_growth_kib": after["VmHWM"] - before["VmRSS"] if peak_reset else None,
                        "peak_is_since": "this pass" if peak_reset else "process start",
                        "cpu_ms_per_page": {
                            name: (cpu_after[i] - cpu_before[i]) / run["pages"] * 1000
                            for i, name in enumerate(("server", "okta_api", "client"))
                        },
                        "loadavg_after": os.getloadavg()[0],
                    }
                )
            results["passes"] = passes
        completed = True
    finally:
        for proc in reversed(procs):
            # SIGINT: daphne exits cleanly, so cProfile (with --profile) writes its file.
            proc.send_signal(signal.SIGINT) if args.profile and proc is procs[-1] else proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.database == "postgres":
            subprocess.run([str(ROOT / "scripts" / "services.sh"), "stop", str(services)], check=False)
        if completed:
            shutil.rmtree(scratch, ignore_errors=True)  # ~50 MB of database and logs a run
        else:
            log(f"the logs of this run are in {scratch}")
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    (WORK / "okta_list_users.json").write_text(json.dumps(results, indent=1))
    print(markdown(results))


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [
        f"`{results['command']}` ({results['machine']['cpus']} CPUs, load {results['machine']['loadavg_at_start'][0]:.2f} at start)",
        "",
        f"Page size {s['page']}, upstream latency {s['latency'] * 1000:.0f} ms per Okta request, database {s['database']}.",
        "",
        "| users listed | pages | Okta requests | wall time | sum of upstream latencies (served; configured) | ratio (to served; to configured) | overhead per page | server CPU per page | RSS before | peak RSS | peak growth |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in results["passes"]:
        growth = f"{p['peak_growth_kib'] / 1024:.1f} MiB" if p["peak_growth_kib"] is not None else "n/a"
        lines.append(
            f"| {p['users']:,} | {p['pages']} | {p['okta_requests']} | {p['wall_seconds']:.2f} s | "
            f"{p['upstream_latency_sum_seconds']:.3f} s; {p['upstream_latency_configured_seconds']:.2f} s | "
            f"{p['ratio']:.3f}x; {p['ratio_to_configured']:.3f}x | {p['overhead_ms_per_page']:.1f} ms | "
            f"{p['cpu_ms_per_page']['server']:.1f} ms | "
            f"{p['rss_before_kib'] / 1024:.1f} MiB | {p['peak_kib'] / 1024:.1f} MiB | {growth} |"
        )
    cpu = results["passes"][-1]["cpu_ms_per_page"]
    lines += [
        "",
        f"CPU per page in the last pass: server {cpu['server']:.1f} ms, sandbox Okta API {cpu['okta_api']:.1f} ms, "
        f"client {cpu['client']:.1f} ms; load average {results['passes'][-1]['loadavg_after']:.2f} after it.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
