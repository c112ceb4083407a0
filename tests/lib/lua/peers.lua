-- tests/lib/lua/peers.lua — the test peers for a Lua test (run by the runtime),
-- as tests/lib/peers.sh gives them to the shell tests: the scripted fault peer
-- (tests/peers/fault.lua, lua5.4 on LuaSocket) and a wait on a condition.
--
--   local peers = require "peers"
--   local f = peers.fault(SCRIPT_TEXT [, {idle = 10, cert =, key =}])
--   f.port  f.rec (the bytes it received)  f.out() (its stdout so far)  f.stop()
--   peers.poll(seconds, fn) -> true once fn() is, false after the time (waits)
--   peers.free_port() -> a port nobody listens on (bound, then released)
local tap = require "tap"
local mh = require "mailhook"

local M = {}

local ROOT = os.getenv("ROOT") or "."
M.FAULT = ROOT .. "/tests/peers/fault.lua"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- fault(script [, opts]) -> {port, rec, out(), stop()}: the peer runs SCRIPT for
-- every connection; it is started with its stdout in a file, and fault() returns
-- once it prints "PORT n" (or it died: port nil).
function M.fault(script, opts)
  opts = opts or {}
  local path = tap.tmpfile(script)
  local rec, out = path .. ".rec", path .. ".out"
  local args = { "--port", "0", "--idle", tostring(opts.idle or 10), "--script", q(path), "--record", q(rec) }
  if opts.cert then args[#args + 1] = "--cert " .. q(opts.cert) .. " --key " .. q(opts.key) end
  local p = io.popen("lua5.4 " .. q(M.FAULT) .. " " .. table.concat(args, " ") .. " >" .. q(out) ..
                     " 2>&1 & echo $!")
  local pid = p:read("l")
  p:close()
  local port
  M.poll(10, function()
    port = tonumber(((tap.slurp(out) or ""):match("^PORT (%d+)")))
    return port ~= nil or not os.execute("kill -0 " .. pid .. " 2>/dev/null")
  end)
  return { port = port, rec = rec, pid = pid,
    out = function() return tap.slurp(out) or "" end,
    stop = function()
      os.execute("kill " .. pid .. " 2>/dev/null")
      os.remove(path); os.remove(rec); os.remove(out)
    end }
end

-- poll(seconds, fn): true once fn() is true, false after the time (waits; a
-- condition checked every 50 ms, never a fixed sleep standing for one).
function M.poll(seconds, fn)
  local limit = mh.monotonic() + seconds
  repeat
    if fn() then return true end
    mh.sleep(0.05)
  until mh.monotonic() > limit
  return fn() and true or false
end

-- free_port(): a port on 127.0.0.1 that was free a moment ago (for a refused connection).
function M.free_port()
  local p = io.popen("lua5.4 -e 'local s = require(\"socket\").bind(\"127.0.0.1\", 0); " ..
                     "local _, port = s:getsockname(); print(port); s:close()'")
  local port = tonumber(p:read("l"))
  p:close()
  return port
end

return M
