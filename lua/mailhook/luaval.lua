-- mailhook.luaval — plain Lua values written as Lua source and read back in
-- an empty environment: the rule state files in the spool (mailhook.rule_state)
-- and the frames between the service and its rules worker (mailhook.rule_worker).
--
--   luaval.encode(v) -> "return {...}\n"
--   luaval.decode(text) -> table | nil, why          (a literal, never run: mailhook.literal)
--
-- Strings, numbers (integers kept integers, floats to 17 digits), booleans and
-- tables of them, keys strings or numbers; anything else (a function, a
-- userdata, a coroutine, a table nested 20 deep or more) is written as nil, so
-- what is read back is data and never code that runs.
local M = {}

M.MAX_DEPTH = 20

local function ser(v, out, depth)
  local t = type(v)
  if t == "string" then out[#out + 1] = string.format("%q", v)
  elseif t == "number" then
    out[#out + 1] = math.type(v) == "integer" and tostring(v) or string.format("%.17g", v)
  elseif t == "boolean" then out[#out + 1] = tostring(v)
  elseif t == "table" and depth < M.MAX_DEPTH then
    out[#out + 1] = "{"
    for k, x in pairs(v) do
      local kt, xt = type(k), type(x)
      if (kt == "string" or kt == "number") and xt ~= "function" and xt ~= "userdata" and xt ~= "thread" then
        out[#out + 1] = "["; ser(k, out, depth); out[#out + 1] = "]="; ser(x, out, depth + 1); out[#out + 1] = ","
      end
    end
    out[#out + 1] = "}"
  else
    out[#out + 1] = "nil"
  end
  return out
end

function M.encode(v) return "return " .. table.concat(ser(v, {}, 0)) .. "\n" end

-- decode(text) -> the table text holds, or nil and why when it is not a
-- literal table.  Read as a literal, never run (mailhook.literal): rule state
-- files and the rules worker's frames come back through here, and a planted
-- or damaged one that were code ("while true do end") would stop every rule
-- reading it, or the service itself.
function M.decode(text)
  local v, why = require("mailhook.literal").decode(text)
  if type(v) ~= "table" then return nil, why or "not a table" end
  return v
end

return M
