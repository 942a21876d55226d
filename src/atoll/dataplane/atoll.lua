-- Atoll's per-request logic inside HAProxy (loaded by the rendered haproxy.cfg).
--
-- txn.route holds what the maps say of the alias or node the request names:
--   "<public 0|1>|<project id>|<hold ms>|<backend>:<weight>,<backend>:<weight>,..."
-- atoll_route picks a backend by weight among those with an instance up (a node with none
-- gives its share to the others); when none has one, it holds the request up to <hold ms> for
-- one to come up (scale from zero) instead of answering 503 at once. It also takes Atoll's own
-- credentials off the request: its cookies (atoll_*) and an Authorization with an Atoll token.

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
  return be ~= nil and be:get_srv_act() > 0
end

local function pick(choices)
  local total = 0
  local up = {}
  for _, c in ipairs(choices) do
    if c.weight > 0 and active(c.backend) then
      up[#up + 1] = c
      total = total + c.weight
    end
  end
  if total == 0 then
    return nil
  end
  local r = math.random() * total
  for _, c in ipairs(up) do
    r = r - c.weight
    if r < 0 then
      return c.backend
    end
  end
  return up[#up].backend
end

-- Atoll's own cookies (session, CSRF, flash) under the names a browser may keep them as.
local function atoll_cookie(name)
  return name:sub(1, 6) == "atoll_" or name:sub(1, 12) == "__Host-atoll" or name:sub(1, 14) == "__Secure-atoll"
end

local function strip_credentials(txn, public)
  local headers = txn.http:req_get_headers()
  local kept = {}
  for _, value in ipairs(values(headers["cookie"])) do
    for piece in string.gmatch(value, "([^;]+)") do
      local trimmed = piece:gsub("^%s+", "")
      if trimmed ~= "" and not atoll_cookie(trimmed) then
        kept[#kept + 1] = trimmed
      end
    end
  end
  if headers["cookie"] ~= nil then
    txn.http:req_del_header("cookie")
    if #kept > 0 then
      txn.http:req_set_header("cookie", table.concat(kept, "; "))
    end
  end
  for _, value in ipairs(values(headers["authorization"])) do
    -- A private route consumed it; an Atoll token (a word starting atl_, whatever the scheme)
    -- never reaches tenant code.
    if public == "0" or (" " .. value):find("%satl_") then
      txn.http:req_del_header("authorization")
      break
    end
  end
  -- Routing and credentials meant for the gateway itself.
  txn.http:req_del_header("x-node-alias")
  txn.http:req_del_header("x-node-id")
  txn.http:req_del_header("proxy-authorization")
end

core.register_action("atoll_route", {"http-req"}, function(txn)
  local route = txn:get_var("txn.route")
  if route == nil then
    return
  end
  local fields = split(route, "|")
  local public, hold_ms = fields[1], tonumber(fields[3]) or 0
  local choices = {}
  for _, entry in ipairs(split(fields[4] or "", ",")) do
    local backend, weight = entry:match("^([^:]+):(%d+)$")
    if backend ~= nil then
      choices[#choices + 1] = {backend = backend, weight = tonumber(weight)}
    end
  end
  strip_credentials(txn, public)
  local chosen = pick(choices)
  local waited = 0
  while chosen == nil and waited < hold_ms do
    core.msleep(50)
    waited = waited + 50
    chosen = pick(choices)
  end
  if chosen == nil and #choices > 0 then
    chosen = choices[1].backend -- none came up: that node answers 503
  end
  if chosen ~= nil then
    txn:set_var("txn.be", chosen)
  end
end, 0)

-- An instance never sets one of Atoll's cookies in the browser (the gateway shares its host).
core.register_action("atoll_response", {"http-res"}, function(txn)
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
