-- mailhook.literal — reading back the Lua literals mailhook writes itself
-- ("return {...}": rule state files in SPOOL/state/rules/, the frames between
-- `mailhook run` and its rules worker) without ever running code.
--
--   literal.decode(text) -> value | nil, why
--
-- A text is loaded only once it is proven to be a literal: outside its
-- double-quoted strings it may hold nothing but table constructors
-- ({ } [ ] = , ;), numbers, true, false, nil and the leading `return`.  No
-- name, call, parenthesis, operator but a sign, comment or long bracket
-- survives that check, so a planted or corrupted state file, or a frame
-- forged by a rule (a rule can write on the worker's channel), can neither
-- loop, nor call, nor allocate more than its own size: before, `while true do
-- end` in a state file ended every `hook` by the watchdog, and the same as a
-- frame froze the service itself (docs/rules.md).
local M = {}

local WORDS = { ["return"] = true, ["true"] = true, ["false"] = true, ["nil"] = true,
                inf = true, nan = true }   -- %.17g of a float may say inf / nan

-- The text outside its double-quoted strings (each string becomes a space),
-- or nil when a string is left open.
local function outside_strings(s)
  local out, i, n = {}, 1, #s
  while i <= n do
    local q = s:find('"', i, true)
    if not q then out[#out + 1] = s:sub(i); break end
    out[#out + 1] = s:sub(i, q - 1)
    local j = q + 1
    while true do
      local c = s:byte(j)
      if not c then return nil end
      if c == 92 then j = j + 2          -- a backslash: the next byte is escaped
      elseif c == 34 then break          -- the closing quote
      else j = j + 1 end
    end
    out[#out + 1] = " "
    i = j + 1
  end
  return table.concat(out)
end

-- check(text) -> true | nil, why: whether text is a literal (see above).
function M.check(s)
  if type(s) ~= "string" then return nil, "not a string" end
  local code = outside_strings(s)
  if not code then return nil, "a string is not closed" end
  local bad = code:find("[^%w%s{}%[%]=,;%.%+%-]")
  if bad then return nil, string.format("'%s' at byte %d: not a literal", code:sub(bad, bad), bad) end
  if code:find("--", 1, true) then return nil, "a comment: not a literal" end
  if code:find("%[[%[=]") then return nil, "a long bracket: not a literal" end
  code = code:gsub("%d[%w%.]*", " ")      -- numbers (1, -5, 1.5e+20, 0x1p4)
  for w in code:gmatch("[%a_][%w_]*") do
    if not WORDS[w] then return nil, "'" .. w .. "': not a literal" end
  end
  return true
end

-- decode(text) -> value | nil, why: the value of "return <literal>".
function M.decode(s)
  local ok, why = M.check(s)
  if not ok then return nil, why end
  local chunk, err = load(s, "=literal", "t", {})
  if not chunk then return nil, err end
  local done, v = pcall(chunk)
  if not done then return nil, tostring(v) end
  return v
end

return M
