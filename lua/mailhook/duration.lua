-- mailhook.duration — the one rule for a duration, wherever one is read: the
-- settings file and `mailhook update` (mailhook.settings), the deliverer's
-- settings (mailhook.delivery), the status report (mailhook.status).
--
--   duration.parse("30m") -> 1800          duration.parse("soon") -> nil, reason
--   duration.seconds(v, default) -> parse(v), or default when v is nil or not a duration
--   duration.format(1800) -> "30m"         (the largest whole unit; settings display)
--
-- A duration is a positive number of seconds, written as a number or as a
-- decimal number with one of the suffixes s, m, h, d (any case, blanks
-- around): 30, "30", "0.5s", "30m", " 2 h ", "5D", "1.5h".  Nothing else: no
-- exponent ("1e3"), no sign, no word ("30 min", "5 days"), no zero, nothing
-- over ten years.  A settings file that says more than that is refused with
-- the reason, never read as something else.
local M = {}

M.UNITS = { s = 1, m = 60, h = 3600, d = 86400 }
M.MAX = 10 * 365 * 86400

-- parse(v) -> seconds (an integer when whole) | nil, reason
function M.parse(v)
  local n
  if type(v) == "number" then
    n = v
  elseif type(v) == "string" then
    local num, unit = v:lower():match("^%s*(%d+%.?%d*)%s*([smhd]?)%s*$")
    if num then n = tonumber(num) * (M.UNITS[unit] or 1) end
  end
  if not n or n ~= n or n <= 0 or n > M.MAX then
    return nil, "must be a positive duration such as 30, 30s, 30m, 2h or 5d (got '" .. (#tostring(v) > 120 and (tostring(v):sub(1, 80) .. "...") or tostring(v)) .. "')"
  end
  return math.tointeger(n) or n
end

-- seconds(v, default) -> parse(v) | default: a value read again where the
-- settings already checked it (a cfg table given by a test or a host).
function M.seconds(v, default)
  return (M.parse(v)) or default
end

-- format(n) -> "30m", "2h", "5d", "45s", "0.5s": the largest unit that divides n.
function M.format(n)
  for _, u in ipairs { { "d", 86400 }, { "h", 3600 }, { "m", 60 } } do
    if n >= u[2] and n % u[2] == 0 then return string.format("%d%s", n // u[2], u[1]) end
  end
  return (math.tointeger(n) and string.format("%d", n) or tostring(n)) .. "s"
end

return M
