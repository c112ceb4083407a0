-- mailhook — the Lua face of the runtime.
-- `local mh = require "mailhook"` gives the scheduler (spawn, sleep, every,
-- resolve, log) at once; the larger parts (settings, queue, smtp, template,
-- rules, ...) are loaded on first use from lua/mailhook/<name>.lua, which
-- keeps start-up as cheap as plain Lua.
local core = require "mailhook.core"

local mh = {
  core = core,
  version = core.version,
  paths = core.paths,
  spawn = core.spawn,            -- spawn(fn, ...) -> task; task:wait() waits
  sleep = core.sleep,            -- sleep(seconds)            (waits)
  every = core.every,            -- every(seconds, fn) -> handle:stop()
  resolve = core.resolve,        -- resolve(host) -> {addr...} | nil, err, info (waits)
  now = core.now,
  monotonic = core.monotonic,
  current_task = core.current_task,
}

local function logger(level)
  return function(...) return core.log(level, ...) end
end

-- mh.enqueue{...} -> id | nil, err, info (waits until durable): lua/mailhook/enqueue.lua
mh.enqueue = function(...) return require("mailhook.enqueue").enqueue(...) end

mh.log = {
  debug = logger "debug", info = logger "info",
  warn = logger "warn", error = logger "error",
  level = core.log_level,        -- level() -> name; level "debug" sets it
  syslog = core.log_syslog,      -- syslog(true [, ident]) sends lines to syslog
}

-- Rules (lua/mailhook/rules.lua), loaded on first use.
function mh.on(event, fn, name) return require("mailhook.rules").on(event, fn, name) end
function mh.emit(event, fields) return require("mailhook.rules").emit(event, fields) end

-- Submodules load lazily: mh.settings -> require "mailhook.settings".
return setmetatable(mh, {
  __index = function(t, k)
    if type(k) ~= "string" then return nil end
    local ok, mod = pcall(require, "mailhook." .. k)
    if not ok then
      if tostring(mod):find("module 'mailhook." .. k .. "' not found", 1, true) then
        return nil
      end
      error(mod, 2)
    end
    rawset(t, k, mod)
    return mod
  end,
})
