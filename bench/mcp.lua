-- wrk script: N concurrent MCP clients, each on its own connection and with its own bearer token
-- (and, for the 2025-11-25 protocol with sessions, its own Mcp-Session-Id), alternating tools/list
-- and tools/call whoami. Run with one connection per thread: wrk -t N -c N.
--
--   BENCH_CLIENTS   file with one client per line: "<token> <session id or ->"
--                   (token "-" for the bare server, which checks none)
--   BENCH_PROTOCOL  2026-07-28 or 2025-11-25
--
-- A response counts as an error unless it is HTTP 200 with a JSON-RPC result that is not a tool
-- error; done() prints BENCH_RESULT with the counts and latency percentiles (microseconds).

local clients = {}
local threads = {}
local created = 0

local function load_clients()
  local path = os.getenv("BENCH_CLIENTS")
  for line in io.lines(path) do
    local token, session = line:match("^(%S+)%s+(%S+)$")
    if token then
      table.insert(clients, { token = token, session = session })
    end
  end
  assert(#clients > 0, "no clients in " .. path)
end

function setup(thread)
  if #clients == 0 then
    load_clients()
  end
  created = created + 1
  local c = clients[((created - 1) % #clients) + 1]
  thread:set("token", c.token)
  thread:set("session", c.session)
  table.insert(threads, thread)
end

-- Everything after the id; each request gets its own id, as a real client's do (with one id for
-- all, a 2025-11-25 session may route an answer to the previous request's stream).
local function body_rest(method, params, protocol)
  local meta = ""
  if protocol ~= "2025-11-25" then
    meta = '"_meta":{"io.modelcontextprotocol/protocolVersion":"' .. protocol
      .. '","io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"},'
      .. '"io.modelcontextprotocol/clientCapabilities":{}}'
    if params ~= "" then
      meta = "," .. meta
    end
  end
  return ',"method":"' .. method .. '","params":{' .. params .. meta .. "}}"
end

function init(args)
  local protocol = os.getenv("BENCH_PROTOCOL")
  local base = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["MCP-Protocol-Version"] = protocol,
  }
  if token ~= "-" then
    base["Authorization"] = "Bearer " .. token
  end
  if session ~= "-" then
    base["Mcp-Session-Id"] = session
  end
  list_headers, call_headers = {}, {}
  for k, v in pairs(base) do
    list_headers[k] = v
    call_headers[k] = v
  end
  if protocol ~= "2025-11-25" then
    list_headers["Mcp-Method"] = "tools/list"
    call_headers["Mcp-Method"] = "tools/call"
    call_headers["Mcp-Name"] = "whoami"
  end
  list_rest = body_rest("tools/list", "", protocol)
  call_rest = body_rest("tools/call", '"name":"whoami","arguments":{}', protocol)
  sent = 0
  errors = 0
  answered = 0
end

function request()
  sent = sent + 1
  local prefix = '{"jsonrpc":"2.0","id":' .. sent
  if sent % 2 == 1 then
    return wrk.format("POST", "/mcp", list_headers, prefix .. list_rest)
  end
  return wrk.format("POST", "/mcp", call_headers, prefix .. call_rest)
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 or not body:find('"result"', 1, true) or body:find('"isError":true', 1, true) then
    errors = errors + 1
    if errors == 1 then
      local h = ""
      for k, v in pairs(headers) do
        h = h .. k .. "=" .. v .. "; "
      end
      io.stderr:write("first bad response: " .. status .. " [" .. h .. "] len=" .. #body .. " " .. body:sub(1, 300) .. "\n")
    end
  end
end

function done(summary, latency, requests)
  local bad, total = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("errors")
    total = total + t:get("answered")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d answered=%d bad=%d socket_errors=%d mean_us=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, total, bad, e.connect + e.read + e.write + e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max
  ))
end
