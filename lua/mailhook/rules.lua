-- mailhook.rules — notification rules: handlers by event, rule files loaded
-- each in its own strict environment, and the runner that `mailhook hook`,
-- `mailhook run` and the embedding API share.
--
--   rules.on(event, fn [, name])      (mh.on)   "*" receives every event
--   rules.emit(event, fields) -> ok, failures  (mh.emit; waits for the handlers
--       when called from a task: each handler runs in its own task, under an
--       instruction/time budget; a handler that raises is logged with its
--       traceback and the others still run; failures = {{handler=, event=, error=}})
--   rules.load(paths) -> n_files, errors   a folder (its *.lua), a file, or a list
--   rules.start(paths) -> service handle   for `mailhook run`: loads the rules and
--       sends due summaries, digests and held mail every rules.sweep_interval s
--   rules.throttle / digest / period / hold / sweep   see mailhook.rule_state
local core = require "mailhook.core"

local rules = {
  budget = 50000000,        -- instructions one handler may run (an endless loop is stopped)
  time_budget = 10,         -- CPU seconds one handler may use
  sweep_interval = 5,       -- seconds between sweeps of due summaries in `run`
}

local handlers = {}         -- event -> {{fn=, name=, file=}, ...} in registration order
local loading = nil         -- the rule file being loaded (its handlers are tagged with it)
local file_timers = {}      -- every() timers made by rule files (stopped on reload)
local STEP = 10000          -- the count hook runs every STEP instructions

local function describe(fn)
  local info = debug.getinfo(fn, "S")
  local src = info.short_src or "?"
  src = src:match("[^/]+$") or src
  return src .. ":" .. (info.linedefined or 0)
end

-- on(event, fn [, name]): fn(ev) runs for every emit of event ("*": all events).
function rules.on(event, fn, name)
  if type(event) ~= "string" or event == "" then
    error("mh.on: event must be a non-empty string", 2)
  end
  if type(fn) ~= "function" then error("mh.on: handler must be a function", 2) end
  if name ~= nil and type(name) ~= "string" then error("mh.on: name must be a string", 2) end
  local list = handlers[event]
  if not list then list = {}; handlers[event] = list end
  list[#list + 1] = { fn = fn, name = name or (event .. "@" .. describe(fn)), file = loading }
end

-- handlers_for(event) -> the list that emit would run (a copy).
function rules.handlers_for(event)
  local out = {}
  for _, h in ipairs(handlers[event] or {}) do out[#out + 1] = h end
  if event ~= "*" then
    for _, h in ipairs(handlers["*"] or {}) do out[#out + 1] = h end
  end
  return out
end

-- clear(): forget every handler (reload, tests).
function rules.clear() handlers = {} end

local budget_tag = {}       -- marks the error raised by the budget hook

-- Runs one handler inside the calling task, under the budget.  Returns true,
-- or false and the message (with traceback).
local function run_one(h, ev)
  local count, limit = 0, rules.budget
  local clock0, tlimit = os.clock(), rules.time_budget
  local stopped
  local function over()
    -- once over budget, raise at every instruction, so that a pcall inside the
    -- handler cannot swallow the stop: the caller's next instruction raises too
    error(budget_tag, 2)
  end
  debug.sethook(function()
    count = count + STEP
    if count > limit or os.clock() - clock0 > tlimit then
      stopped = stopped or (count > limit and
        string.format("exceeded its budget of %d instructions", limit) or
        string.format("exceeded its budget of %g CPU seconds", tlimit))
      debug.sethook(over, "", 1)
      error(budget_tag, 2)
    end
  end, "", STEP)
  local ok, err = xpcall(h.fn, function(m)
    debug.sethook()
    if m == budget_tag then m = "stopped: " .. (stopped or "budget exceeded") .. " (an endless loop?)" end
    return debug.traceback(tostring(m), 2)
  end, ev)
  debug.sethook()
  if not ok and stopped and not tostring(err):find("stopped: ", 1, true) then
    err = "stopped: " .. stopped .. " (an endless loop?)\n" .. tostring(err)
  end
  return ok, err
end

local function copy_fields(event, fields)
  local ev = {}
  if fields ~= nil then
    if type(fields) ~= "table" then error("mh.emit: fields must be a table", 3) end
    for k, v in pairs(fields) do ev[k] = v end
  end
  if ev.event == nil then ev.event = event end
  return ev
end

-- emit(event, fields) -> ok, failures.  From a task it waits for every handler;
-- elsewhere the handlers are spawned and emit returns true, {} at once.
function rules.emit(event, fields)
  if type(event) ~= "string" or event == "" then
    error("mh.emit: event must be a non-empty string", 2)
  end
  if fields ~= nil and type(fields) ~= "table" then error("mh.emit: fields must be a table", 2) end
  local list = rules.handlers_for(event)
  local tasks, failures = {}, {}
  for i, h in ipairs(list) do
    local ev = copy_fields(event, fields)   -- a handler cannot change what the next one sees
    tasks[i] = core.spawn(function()
      local ok, err = run_one(h, ev)
      if not ok then
        core.log("error", string.format("rule %s for event '%s' failed: %s", h.name, event, err))
        failures[#failures + 1] = { handler = h.name, event = event,
                                    error = (tostring(err):match("^[^\n]*")) }
      end
    end)
  end
  if core.current_task() and coroutine.isyieldable() then
    for _, t in ipairs(tasks) do t:wait() end
  end
  return #failures == 0, failures, #list
end

-- The environment of a rule file: the standard globals and the rule API can be
-- read; reading or assigning any other global is an error (a typo in a rule
-- must not silently make a nil, nor leak state between files).
local function rule_env(path)
  local mh = require "mailhook"
  local function rs() return require "mailhook.rule_state" end
  local own = {
    mh = mh, on = rules.on, emit = rules.emit,
    enqueue = function(...) return mh.enqueue(...) end,
    RULE_FILE = path,
    SERVICE = rules.is_service(),   -- true under `mailhook run`: start timers only then
    -- every(seconds, fn): a periodic task for the service; it never keeps a
    -- process alive and is stopped when the rules are reloaded
    every = function(seconds, fn)
      local h = core.rstate.ticker(seconds, fn)
      file_timers[#file_timers + 1] = h
      return h
    end,
  }
  -- loaded on first use, so a hook whose rules need neither stays cheap
  local lazy = {
    template = function() return mh.template end,
    throttle = function() return rs().throttle end,
    digest = function() return rs().digest end,
    period = function() return rs().period end,
    hold = function() return rs().hold end,
  }
  return setmetatable({}, {
    __index = function(_, k)
      local v = own[k]
      if v == nil and lazy[k] then v = lazy[k](); own[k] = v end
      if v == nil then v = _G[k] end
      if v == nil then
        error(string.format("read of undeclared global '%s' (declare it with local)", tostring(k)), 2)
      end
      return v
    end,
    __newindex = function(_, k)
      error(string.format("assignment to undeclared global '%s' (declare it with local)", tostring(k)), 2)
    end,
  })
end

-- Expands a folder into its *.lua files (sorted), keeps files as they are.
local function expand(paths)
  if type(paths) == "string" then paths = { paths } end
  local files = {}
  for _, p in ipairs(paths) do
    if p:sub(1, 1) ~= "/" and not core.rstate.exists(p) then
      p = rules.default_paths({ rules = p })   -- the settings' `rules`: beside the settings file
    end
    local names = core.rstate.list(p)
    if names then
      for _, n in ipairs(names) do
        if n:match("%.lua$") then files[#files + 1] = p .. "/" .. n end
      end
    elseif p:match("%.lua$") or core.rstate.exists(p) then  -- a missing folder: no rules yet
      files[#files + 1] = p
    end
  end
  return files
end

-- load(paths) -> n_loaded, errors: each file runs in its own environment; a file
-- that fails to load or run is reported in errors ({file=, error=}) and the
-- others still load.  A missing folder is no error (no rules yet).
function rules.load(paths)
  local n, errors = 0, {}
  -- a reload (SIGHUP) replaces what the files registered before
  for _, h in ipairs(file_timers) do h:stop() end
  file_timers = {}
  for event, list in pairs(handlers) do
    local keep = {}
    for _, h in ipairs(list) do if not h.file then keep[#keep + 1] = h end end
    handlers[event] = keep
  end
  for _, file in ipairs(expand(paths)) do
    -- read by the core's rule for foreign files: a FIFO named *.lua cannot hang `hook`
    local src, err = core.fsutil.read(file, { follow = true, what = "rule file" })
    local chunk
    if src then chunk, err = load(src, "@" .. file, "t", rule_env(file)) end
    if chunk then
      loading = file
      local ok, e = xpcall(chunk, debug.traceback)
      loading = nil
      if ok then n = n + 1 else chunk, err = nil, e end
    end
    if not chunk then
      errors[#errors + 1] = { file = file, error = tostring(err) }
      core.log("error", "rule file " .. file .. ": " .. tostring(err))
    end
  end
  if rules.is_service() then rules.serve() end
  return n, errors
end

-- Names `hook` and mh_emit accept: an event, a field.
function rules.valid_event(name) return type(name) == "string" and name:match("^[%w_.:-]+$") ~= nil end
function rules.valid_field(name) return type(name) == "string" and name:match("^[%a_][%w_.-]*$") ~= nil end

-- dispatch(event, fields) -> status (0 ok, 1 a rule failed), {message...}:
-- what `mailhook hook` and mh_emit() do once the rules are loaded: run the
-- handlers (waits), then send mail owed by earlier events that fell due.
function rules.dispatch(event, fields)
  local ok, failures, n = rules.emit(event, fields)
  local msgs = {}
  for _, f in ipairs(failures) do msgs[#msgs + 1] = "rule " .. f.handler .. " failed: " .. f.error end
  if n == 0 then core.log("warn", "hook: no rule handles event '" .. event .. "'") end
  local loaded = package.loaded["mailhook.rule_state"]
  local dir = loaded and loaded.state_dir() or (core.paths.spool .. "/state/rules")
  if core.rstate.exists(dir) then
    local sok, serr = pcall(require("mailhook.rule_state").sweep)
    if not sok then core.log("warn", "hook: sweep: " .. tostring(serr)) end
  end
  return ok and 0 or 1, msgs
end

-- The rules folder of the settings (`rules`, default ./rules): a relative path
-- is taken from the settings file's folder (ROOT/rules in the repo).
function rules.default_paths(cfg)
  local folder = (cfg and cfg.rules) or "./rules"
  if folder:sub(1, 1) ~= "/" then
    local conf = core.paths.conf or "./mailhook.conf"
    local base = conf:match("^(.*)/[^/]*$") or "."
    folder = base .. "/" .. folder:gsub("^%./", "")
  end
  return folder
end

-- is_service() -> whether this process is `mailhook run` (the service owns
-- the timers: summaries, digests and held mail are sent by it).
function rules.is_service()
  local a = rawget(_G, "arg")
  return rules.serving or (type(a) == "table" and a[1] == "run")
end

-- serve(): starts (once) the sweep that sends due throttle summaries, digests
-- and held mail every rules.sweep_interval seconds, on a timer that does not keep
-- the process alive (the service's own handles do).  Returns the timer handle.
local sweeper
function rules.serve()
  if sweeper then return sweeper end
  rules.serving = true
  local rs = require "mailhook.rule_state"
  local function sweep()
    local ok, err = pcall(rs.sweep)
    if not ok then core.log("warn", "rules: sweep: " .. tostring(err)) end
  end
  core.spawn(sweep)
  sweeper = core.rstate.ticker(rules.sweep_interval, sweep)   -- never holds the process
  return sweeper
end

-- unserve(): stops the sweep (the service is exiting: no timer may keep it alive).
function rules.unserve()
  if sweeper then sweeper:stop(); sweeper = nil end
  rules.serving = false
end

-- start(paths) -> {loaded=, errors=, stop=}: loads the rules and serves.
function rules.start(paths)
  rules.serving = true
  local n, errors = rules.load(paths)
  local h = rules.serve()
  return { loaded = n, errors = errors, stop = function() h:stop(); sweeper = nil; rules.serving = false end }
end

return rules
