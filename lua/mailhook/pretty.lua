-- mailhook.pretty — Lua values as readable text, for the REPL and for logs.
--
--   local pretty = require "mailhook.pretty"
--   print(pretty.format({b = 1, a = {1, 2, 3}}))   --> { a = { 1, 2, 3 }, b = 1 }
--
-- Tables are printed nested, keys sorted (numbers, then strings, then the
-- rest), the array part without keys.  A table that contains itself (on the
-- path from the root) prints as <cycle>; past max_depth a non-empty table
-- prints as {...}; past max_items entries "..." ends it.  Short tables stay on
-- one line, longer ones get one entry per line.  A string value under a key
-- named like a secret (password, secret, token) prints as "********": the REPL
-- must never show a password, even one that reached a table by mistake.
local M = {}

local DEFAULTS = {
  max_depth = 5,     -- tables nested deeper print as {...}
  max_items = 200,   -- entries shown per table, then "..."
  width = 78,        -- a table that fits in this many columns stays on one line
  indent = "  ",
  mask = true,       -- mask string values of secret-looking keys
}

local SECRET_KEYS = { password = true, secret = true, token = true, passwd = true }

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in
            local nil not or repeat return then true until while]]):gmatch("%a+") do
  KEYWORDS[w] = true
end

local ESCAPES = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\r"] = "\\r",
                  ["\t"] = "\\t", ["\a"] = "\\a", ["\b"] = "\\b", ["\f"] = "\\f",
                  ["\v"] = "\\v" }

-- quote(s) -> s as a Lua string literal on one line (control bytes escaped,
-- and the C1 controls written in UTF-8, U+0080-U+009F: U+009B is a CSI to
-- xterm, and a queued message's subject or address may hold one).
function M.quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or string.format("\\%03d", c:byte())
  end):gsub("\194[\128-\159]", function(c)
    return string.format("\\%03d\\%03d", c:byte(1, 2))
  end) .. '"'
end

local function is_identifier(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil and not KEYWORDS[k]
end

local TYPE_ORDER = { number = 1, string = 2, boolean = 3 }

-- Keys in a stable order: numbers ascending, strings alphabetically, then
-- booleans, then everything else by its tostring().
local function key_less(a, b)
  local ta, tb = type(a), type(b)
  local oa, ob = TYPE_ORDER[ta] or 4, TYPE_ORDER[tb] or 4
  if oa ~= ob then return oa < ob end
  if ta == "number" or ta == "string" then
    if ta == tb then return a < b end
  end
  return tostring(a) < tostring(b)
end

-- tostring(v) for a value with its own text (__tostring, __name): a metamethod
-- that raises is shown as such (the REPL exited on printing it), and what it
-- returns has its control bytes but line ends and tabs escaped (a "\27[2J"
-- cleared the terminal).
local function own_text(v)
  local ok, s = pcall(tostring, v)
  if not ok then return "<" .. type(v) .. ": __tostring raised: " .. tostring(s):gsub("%c", "?") .. ">" end
  -- (line ends and tabs kept: a report's own text is several lines, test()'s)
  return (tostring(s):gsub("[%z\1-\8\11-\31\127]", function(c) return string.format("\\%03d", c:byte()) end))
end

-- A scalar (anything but a plain table) as text.
local function scalar(v)
  local t = type(v)
  if t == "string" then return M.quote(v) end
  if t == "number" then
    if math.type(v) == "float" and v == math.floor(v) and v > -1e15 and v < 1e15 then
      return string.format("%.1f", v)   -- 1.0, so a float stays visibly a float
    end
    return tostring(v)
  end
  return own_text(v)  -- nil, booleans, functions, threads, userdata (__tostring honoured)
end

-- Does the table have its own text (a __tostring metamethod)?
local function has_tostring(t)
  local mt = getmetatable(t)
  return type(mt) == "table" and mt.__tostring ~= nil
end

local function sorted_keys(t, max)
  local keys, n, more = {}, 0, false
  for k in next, t do
    n = n + 1
    keys[n] = k
  end
  table.sort(keys, key_less)
  if n > max then
    for i = max + 1, n do keys[i] = nil end
    more = true
  end
  return keys, more
end

-- Renders v; `path` holds the tables from the root to here (cycle detection).
local function render(v, o, depth, path, col)
  if type(v) ~= "table" or has_tostring(v) then
    return type(v) == "table" and own_text(v) or scalar(v)
  end
  if path[v] then return "<cycle>" end
  if next(v) == nil then return "{}" end
  if depth >= o.max_depth then return "{...}" end
  path[v] = true
  local keys, more = sorted_keys(v, o.max_items)
  local n = #v  -- the array part prints without keys
  local parts = {}
  for i, k in ipairs(keys) do
    local val = v[k]
    local text
    if o.mask and type(k) == "string" and SECRET_KEYS[k:lower()] and type(val) == "string"
       and val ~= "" then
      text = '"********"'
    else
      text = render(val, o, depth + 1, path, col + #o.indent)
    end
    if math.type(k) == "integer" and k >= 1 and k <= n then
      parts[i] = text
    elseif is_identifier(k) then
      parts[i] = k .. " = " .. text
    else
      parts[i] = "[" .. render(k, o, depth + 1, path, col) .. "] = " .. text
    end
  end
  if more then parts[#parts + 1] = "..." end
  path[v] = nil
  local flat = "{ " .. table.concat(parts, ", ") .. " }"
  if col + #flat <= o.width and not flat:find("\n", 1, true) then return flat end
  local pad = o.indent:rep(depth + 1)
  return "{\n" .. pad .. table.concat(parts, ",\n" .. pad) .. "\n" .. o.indent:rep(depth) .. "}"
end

-- format(value [, opts]) -> text.  opts may override max_depth, max_items,
-- width, indent, mask (see DEFAULTS).
function M.format(v, opts)
  local o = DEFAULTS
  if opts then
    o = setmetatable({}, { __index = DEFAULTS })
    for k, val in pairs(opts) do
      if DEFAULTS[k] == nil then error("pretty.format: unknown option '" .. tostring(k) .. "'", 2) end
      o[k] = val
    end
  end
  return render(v, o, 0, {}, 0)
end

return M
