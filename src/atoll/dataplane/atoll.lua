-- Atoll's per-request logic inside HAProxy (loaded by the rendered haproxy.cfg).
--
-- txn.route holds what the maps say of the alias or node the request names:
--   "<public 0|1>|<project id>|<hold ms>|<backend>:<weight>,<backend>:<weight>,...|..."
-- (the config routes on its own a request that has only one node to go to: see plan.py)
-- atoll_route picks a backend by weight among those with an instance up (a node with none
-- gives its share to the others); when none has one, it holds the request up to <hold ms> for
-- one to come up (scale from zero) instead of answering 503 at once, and counts it as held for
-- the node it would go to: `atoll held` on the runtime API tells Atoll which nodes requests wait
-- for, so their first instance starts (the node controller reads it). atoll_cookies and
-- atoll_set_cookies take Atoll's own cookies off requests and responses (the config calls them
-- only when a header may hold one; everything else about credentials is native rules).

local function split(s, sep)
  local out = {}
  for part in string.gmatch(s, "([^" .. sep .. "]+)") do
    out[#out + 1] = part
  end
  return out
end

local function values(t) -- HAProxy's header tables count from 0
  local out, i = {}, 0
  while t ~= nil and t[i] ~= nil do
    out[#out + 1] = t[i]
    i = i + 1
  end
  return out
end

local function active(name)
  local be = core.backends[name]
  if be == nil then
    return false
  end
  if be.get_srv_act ~= nil then
    return be:get_srv_act() > 0
  end
  return (tonumber(be:get_stats()["act"]) or 0) > 0 -- HAProxy before 2.8 (a setting may name 2.6)
end

-- A backend by weight among the choices `eligible` keeps (nil when none with a weight is).
local function weighted(choices, eligible)
  local total, kept = 0, {}
  for _, c in ipairs(choices) do
    if c.weight > 0 and eligible(c.backend) then
      kept[#kept + 1] = c
      total = total + c.weight
    end
  end
  if total == 0 then
    return nil
  end
  local r = math.random() * total
  for _, c in ipairs(kept) do
    r = r - c.weight
    if r < 0 then
      return c.backend
    end
  end
  return kept[#kept].backend
end

local function pick(choices)
  return weighted(choices, active)
end

-- The node a request would go to by weight alone, instances or not: the one it waits for.
local function pick_any(choices)
  return weighted(choices, function() return true end) or choices[1].backend
end

-- Requests held right now, by backend (scale from zero).
local held = {}

core.register_cli({"atoll", "held"}, "requests waiting for a node's first instance", function(applet)
  for backend, n in pairs(held) do
    if n > 0 then
      applet:send(backend .. " " .. n .. "\n")
    end
  end
end)

-- Atoll's own cookies (session, CSRF, flash) under the names a browser may keep them as.
local function atoll_cookie(name)
  return name:sub(1, 6) == "atoll_" or name:sub(1, 12) == "__Host-atoll" or name:sub(1, 14) == "__Secure-atoll"
end

-- Atoll's cookies out of Cookie (the config calls this only when one may be there).
core.register_action("atoll_cookies", {"http-req"}, function(txn)
  local kept = {}
  for _, value in ipairs(values(txn.http:req_get_headers()["cookie"])) do
    for piece in string.gmatch(value, "([^;]+)") do
      local trimmed = piece:gsub("^%s+", "")
      if trimmed ~= "" and not atoll_cookie(trimmed) then
        kept[#kept + 1] = trimmed
      end
    end
  end
  txn.http:req_del_header("cookie")
  if #kept > 0 then
    txn.http:req_set_header("cookie", table.concat(kept, "; "))
  end
end, 0)

-- A route's choices, parsed once per distinct map value.
local parsed, parsed_count = {}, 0

local function choices_of(route)
  local found = parsed[route]
  if found ~= nil then
    return found
  end
  local fields = split(route, "|")
  found = {hold_ms = tonumber(fields[3]) or 0, choices = {}}
  for _, entry in ipairs(split(fields[4] or "", ",")) do
    local backend, weight = entry:match("^([^:]+):(%d+)$")
    if backend ~= nil then
      found.choices[#found.choices + 1] = {backend = backend, weight = tonumber(weight)}
    end
  end
  if parsed_count > 10000 then
    parsed, parsed_count = {}, 0
  end
  parsed[route], parsed_count = found, parsed_count + 1
  return found
end

core.register_action("atoll_route", {"http-req"}, function(txn)
  local route = txn:get_var("txn.route")
  if route == nil then
    return
  end
  local r = choices_of(route)
  local chosen = pick(r.choices)
  if chosen == nil and r.hold_ms > 0 and #r.choices > 0 then
    local wanted = pick_any(r.choices)
    held[wanted] = (held[wanted] or 0) + 1
    local waited = 0
    while chosen == nil and waited < r.hold_ms do
      core.msleep(50)
      waited = waited + 50
      chosen = pick(r.choices)
    end
    held[wanted] = held[wanted] - 1
  end
  if chosen == nil and #r.choices > 0 then
    chosen = r.choices[1].backend -- none came up: that node answers 503
  end
  if chosen ~= nil then
    -- A model node's gRPC face is a backend of its own (KServe v2 over HTTP/2).
    local ctype = txn.f:req_hdr("content-type")
    if ctype ~= nil and ctype:sub(1, 16) == "application/grpc" and core.backends[chosen .. "_grpc"] ~= nil then
      chosen = chosen .. "_grpc"
    end
    txn:set_var("txn.be", chosen)
  end
end, 0)

-- An instance never sets one of Atoll's cookies in the browser (the gateway shares its host).
core.register_action("atoll_set_cookies", {"http-res"}, function(txn)
  local set = txn.http:res_get_headers()["set-cookie"]
  if set == nil then
    return
  end
  local kept = {}
  for _, value in ipairs(values(set)) do
    local name = value:gsub("^%s+", "")
    if not atoll_cookie(name) then
      kept[#kept + 1] = value
    end
  end
  txn.http:res_del_header("set-cookie")
  for _, value in ipairs(kept) do
    txn.http:res_add_header("set-cookie", value)
  end
end, 0)
