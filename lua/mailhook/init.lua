-- mailhook — the Lua face of the runtime.
-- `local mh = require "mailhook"` gives the scheduler (spawn, sleep, every,
-- resolve, log) at once; the larger parts (settings, queue, smtp, template,
-- rules, ...) are loaded on first use from lua/mailhook/<name>.lua, which
-- keeps start-up as cheap as plain Lua.
--
-- The same module serves the mailhook binary and any Lua 5.4 that loads it
-- (docs/lua-library.md).  In the binary everything runs in tasks on a loop
-- main.c runs.  In another interpreter nothing runs the loop: a call that
-- waits, made outside a task, runs it until it is over (it blocks, as
-- LuaSocket's calls do); mh.run(fn) runs fn as a task until all is done; a
-- host with a loop of its own drives ours with mh.pollfd/timeout/step.
if _VERSION ~= "Lua 5.4" then
  error("mailhook needs Lua 5.4 (its C module is built for it), and this is " .. _VERSION, 2)
end
-- The C module: the binary's own (preloaded), else wherever package.cpath finds
-- core.so (an install, a rock tree, LUA_CPATH).  In a checkout found through
-- LUA_PATH alone (LUA_PATH="lua/?.lua;lua/?/init.lua;;"), the one `make` built
-- beside it, build/lua/mailhook/core.so.  Else an error that says what to do.
local function load_core()
  if package.loaded["mailhook.core"] or package.preload["mailhook.core"]
     or package.searchpath("mailhook.core", package.cpath) then
    return require "mailhook.core"
  end
  local src = debug.getinfo(1, "S").source
  local dir = src:sub(1, 1) == "@" and src:sub(2):match("^(.*)/mailhook/init%.lua$")
  local built = dir and dir .. "/../build/lua/mailhook/core.so"
  local f = built and io.open(built, "rb")
  if f then
    f:close()
    local open, err = package.loadlib(built, "luaopen_mailhook_core")
    if not open then error("mailhook: cannot load " .. built .. ": " .. tostring(err), 3) end
    local core = open("mailhook.core", built)
    package.loaded["mailhook.core"] = core
    return core
  end
  local ok, err = pcall(require, "mailhook.core")   -- the standard message, with where it looked
  if ok then return err end
  error("mailhook: its C module mailhook/core.so was not found: run `make` (it builds build/lua/mailhook/core.so)"
        .. " and set LUA_CPATH=\"$PWD/build/lua/?.so;;\", or `make install`, or"
        .. " `luarocks --lua-version 5.4 make rockspecs/mailhook-scm-1.rockspec` (docs/lua-library.md)\n"
        .. tostring(err), 3)
end
local core = load_core()

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
  -- Driving the loop from a program that is not mailhook:
  run = core.run,                -- run(fn, ...) -> fn's results: fn as a task, the loop until done
  step = core.step,              -- step() -> busy: what is ready runs, never blocks
  pollfd = core.pollfd,          -- pollfd() -> fd readable when the loop has I/O to handle
  timeout = core.timeout,        -- timeout() -> ms until step() has work (0 now, -1 none)
  wait_mode = core.wait_mode,    -- wait_mode() -> "task" | "block" | nil (cannot wait here)
}

-- Loaded by another program: `lua` is the folder this file was loaded from (the
-- shipped templates are under it), and the paths may be set here.
if core.paths and core.paths.library and not core.paths.lua then
  local src = debug.getinfo(1, "S").source
  local dir = src:sub(1, 1) == "@" and src:sub(2):match("^(.*)/mailhook/init%.lua$")
  core.paths.lua = dir or "."
end

-- configure{conf =, spool =} -> paths: the settings file and the spool this
-- program uses (by default $MAILHOOK_CONF and $MAILHOOK_SPOOL, else those of
-- the installed service).  A settings file named here must exist when loaded.
function mh.configure(t, ...)
  if type(t) ~= "table" then error("mh.configure: expects a table {conf =, spool =}", 2) end
  core.check_options("mh.configure", t, { "conf", "spool" }, select("#", ...) + 1, 1)
  for k, v in pairs(t) do
    if type(v) ~= "string" or v == "" then error("mh.configure: " .. k .. " must be a path", 2) end
  end
  if t.conf then core.paths.conf = t.conf; core.paths.conf_given = "mh.configure" end
  if t.spool then core.paths.spool = t.spool end
  return core.paths
end

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
-- (an argument too many raises here: rules.on takes the three)
function mh.on(event, fn, name, ...)
  core.check_options("mh.on", {}, {}, select("#", ...) + 3, 3)
  return require("mailhook.rules").on(event, fn, name)
end

-- emit(event, fields) -> ok, failures, n.  In a task it waits for every
-- handler.  Outside the loop (a plain script) nothing would run the handlers:
-- there it runs the emit as a task and blocks until the handlers are done.
function mh.emit(event, fields, ...)
  core.check_options("mh.emit", {}, {}, select("#", ...) + 2, 2)
  local rules = require "mailhook.rules"
  if core.wait_mode() ~= "block" then return rules.emit(event, fields) end
  if type(event) ~= "string" or event == "" then error("mh.emit: event must be a non-empty string", 2) end
  if fields ~= nil and type(fields) ~= "table" then error("mh.emit: fields must be a table", 2) end
  local ok, a, b, c = core.spawn(rules.emit, event, fields):wait()
  if not ok then error(a, 2) end
  return a, b, c
end

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
