-- mailhook.rule_worker — `mailhook run` keeps its rules in a separate process,
-- the rules worker (`mailhook rules-worker`, started by the service itself), so
-- that nothing a rule does can hold delivery: not a loop inside one C call (a
-- backtracking string pattern), not a __gc finalizer that never returns, not a
-- heap that grows without end.  The service hands it events (`failed`,
-- `queue_stuck`) and never waits for it; the worker runs the rules under their
-- budgets, with its own watchdog, and the service kills and restarts it when
-- it stops answering.  docs/rules.md ("How a rule is stopped") says why.
--
-- The service side:
--   local w = rule_worker.start{files = {...}}   starts the worker (and restarts it)
--   w:emit(event, fields)     queued; sent once the worker is ready; never waits
--   w:reload(cfg)             SIGHUP: the worker reloads settings and rules
--   w:stop()                  closes the channel, waits up to stop_grace s, then
--                             SIGKILL (waits)
-- The worker side: rule_worker.serve(argv) (lua/mailhook/cmd/rules_worker.lua).
--
-- Messages, one per frame of core.proc's channel, are Lua tables written as
-- Lua literals: {op = "event", n =, event =, fields =}, {op = "reload"} to the
-- worker; {op = "loading", file =}, {op = "ready", loaded =, errors =},
-- {op = "rule", label =}, {op = "start", n =}, {op = "hb"} from it.
local core = require "mailhook.core"
local luaval = require "mailhook.luaval"

local W = {
  stop_grace = 2,          -- seconds a stopping worker gets before SIGKILL
  heartbeat = 1,           -- seconds between the worker's signs of life
  silence = nil,           -- seconds without a sign of life before SIGKILL
                           -- (nil: the settings' rule_timeout + 6)
  max_pending = 1000,      -- events kept while no worker runs (the oldest go first)
  backoff_max = 60,        -- seconds between restarts of a worker that keeps dying
}

-- ------------------------------------------------------------------ frames

-- encode(table) -> string; decode(string) -> table | nil (mailhook.luaval)
W.encode = luaval.encode
function W.decode(s) return (luaval.decode(s)) end   -- a literal, never run

-- --------------------------------------------------------- the service side

local S = {}
S.__index = S

local function mh() return require "mailhook" end

local function log(level, msg) core.log(level, "mailhook run: " .. msg) end

-- start{files = {...}, cfg = settings [, conf =, spool =]} -> supervisor
function W.start(o)
  local s = setmetatable({
    files = o and o.files or {},
    cfg = o and o.cfg or {},
    conf = o and o.conf or core.paths.conf,
    spool = o and o.spool or core.paths.spool,
    skip = {},            -- rule files that stopped a worker while loading (until reload)
    pending = {},         -- events not yet started by a worker: {n=, data=, gen=}
    n = 0, gen = 0,       -- event numbers; worker generations
    backoff = 1,
  }, S)
  s.task = mh().spawn(function() s:supervise() end)
  return s
end

function S:args()
  local a = { "-c", self.conf, "-s", self.spool, "rules-worker", "--log-level", core.log_level() }
  for f in pairs(self.skip) do a[#a + 1] = "--skip"; a[#a + 1] = f end
  a[#a + 1] = "--"
  for _, f in ipairs(self.files) do a[#a + 1] = f end
  return a
end

function S:send_pending()
  for _, e in ipairs(self.pending) do
    if e.gen ~= self.gen then
      e.gen = self.gen
      self.chan:send(e.data)
    end
  end
end

function S:read_loop(chan)
  while true do
    local frame = chan:recv()
    if not frame then return end
    self.heard = core.monotonic()
    local m = W.decode(frame) or {}
    if m.op == "rule" then
      self.rule = m.label
    elseif m.op == "start" then
      for i, e in ipairs(self.pending) do
        if e.n == m.n then table.remove(self.pending, i) break end
      end
    elseif m.op == "loading" then
      self.loading = m.file
    elseif m.op == "ready" then
      self.ready, self.loading = true, nil
      self:send_pending()
    end
  end
end

-- wait_ready(seconds) -> true once a worker has loaded the rules (its first
-- "ready"), false after `seconds` (waits).  The service tells its manager it
-- is ready (READY=1) only then, so `systemctl start` returns with the rules in
-- place; a worker that never gets there delays that by the bound, never
-- delivery.  A start-up wait, polled: no condition is worth a primitive here.
function S:wait_ready(seconds)
  local deadline = core.monotonic() + seconds
  while not self.ready do
    if core.monotonic() >= deadline then return false end
    mh().sleep(0.01)
  end
  return true
end

-- Kills a worker that gave no sign of life for too long: its own watchdog
-- should have ended it first; this is the service's own guarantee.  That
-- watchdog ends a rule whose loop thread burns no CPU (blocked in one C call,
-- or starved on a busy machine) only STARVE_GRACES (10) graces past its budget
-- (runtime/l_sched.c): the guard waits longer, or it killed the worker first
-- (it was rule_timeout + 6 s) and the log lost the watchdog's line naming what
-- the rule was doing (CI: rules-guard-run.sh under ASan on a loaded machine).
W.STARVE_GRACES = 10
function S:guard_loop(proc)
  local grace = tonumber(require("mailhook.rules").grace) or 1
  local limit = W.silence or ((tonumber(self.cfg.rule_timeout) or 10) + W.STARVE_GRACES * grace + 3)
  while true do
    if not pcall(core.sleep, W.heartbeat) then return end
    local quiet = core.monotonic() - self.heard
    if quiet > limit then
      log("error", string.format("the rules worker (pid %d) gave no sign of life for %.0f s%s: killed",
        proc:pid(), quiet, self.loading and (" while loading rule file " .. self.loading)
          or self.rule and (" (last started: " .. self.rule .. ")") or ""))
      proc:kill("KILL")
      return
    end
  end
end

function S:supervise()
  local m = mh()
  while not self.stopping do
    local proc, chan = core.proc.spawn(self:args())
    if not proc then
      log("error", "cannot start the rules worker: " .. tostring(chan))
    else
      self.gen = self.gen + 1
      self.proc, self.chan, self.ready = proc, chan, false
      self.heard, self.rule, self.loading = core.monotonic(), nil, nil
      local started = core.monotonic()
      local reader = m.spawn(function() self:read_loop(chan) end)
      local guard = m.spawn(function() self:guard_loop(proc) end)
      local status, sig = proc:wait()
      chan:close()
      guard:cancel()
      reader:wait()
      self.proc, self.chan, self.ready = nil, nil, false
      if self.stopping then break end
      local why = sig ~= 0 and ("was killed by signal " .. sig) or ("exited with status " .. status)
      if self.loading and not self.skip[self.loading] then
        self.skip[self.loading] = true
        why = why .. " while loading " .. self.loading ..
              "; that file is skipped until the next reload (SIGHUP)"
      end
      if core.monotonic() - started > 30 then self.backoff = 1 end
      log("error", string.format("the rules worker (pid %d) %s; %d event(s) waiting; restarting in %g s",
                                 proc:pid(), why, #self.pending, self.backoff))
    end
    if self.stopping then break end
    self.sleeping = true
    pcall(core.sleep, self.backoff)
    self.sleeping = false
    self.backoff = math.min(self.backoff * 2, W.backoff_max)
  end
end

-- emit(event, fields) -> true: queued for the worker, never waits.
function S:emit(event, fields)
  self.n = self.n + 1
  if #self.pending >= W.max_pending then
    local old = table.remove(self.pending, 1)
    log("error", "rules worker unavailable: event #" .. old.n .. " dropped (" .. W.max_pending .. " waiting)")
  end
  local e = { n = self.n, data = W.encode { op = "event", n = self.n, event = event, fields = fields } }
  self.pending[#self.pending + 1] = e
  if self.chan and self.ready then
    e.gen = self.gen
    self.chan:send(e.data)
  end
  return true, {}
end

-- reload([cfg]): SIGHUP.  Files skipped after a stuck load are tried again.
function S:reload(cfg)
  if cfg then self.cfg = cfg end
  self.skip = {}
  if self.chan and self.ready then self.chan:send(W.encode { op = "reload" }) end
end

-- stop(): the worker sees the end of its channel and exits; after stop_grace
-- seconds it is killed (a rule stuck in a C call).  Waits (at most stop_grace
-- and the kill).
function S:stop()
  if self.stopping then return end
  self.stopping = true
  local m = mh()
  if self.chan then self.chan:close() end
  if self.sleeping then self.task:cancel() end
  local killer = m.spawn(function()
    if pcall(core.sleep, W.stop_grace) and self.proc then
      log("warn", "the rules worker did not exit within " .. W.stop_grace .. " s: killed")
      self.proc:kill("KILL")
    end
  end)
  self.task:wait()
  killer:cancel()
end

-- ---------------------------------------------------------- the worker side

-- serve(argv) -> exit status: `mailhook rules-worker [--skip FILE]...
-- [--log-level L] -- [RULES.lua ...]`, started by W.start only.
function W.serve(argv)
  local skip, files, level = {}, {}, nil
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--skip" then skip[argv[i + 1] or ""] = true; i = i + 1
    elseif a == "--log-level" then level = argv[i + 1]; i = i + 1
    elseif a == "--" then
      for j = i + 1, #argv do files[#files + 1] = argv[j] end
      break
    else files[#files + 1] = a end
    i = i + 1
  end
  local ch, err = core.proc.channel()
  if not ch then
    io.stderr:write("mailhook rules-worker: ", tostring(err), "\n")
    return 2
  end
  core.proc.die_with_parent()
  -- a signal to the whole group (systemctl stop, Ctrl-C, a terminal's hangup)
  -- is the service's to act on: it stops this worker by closing its channel.
  -- Killed by it first, the worker made the service log at every clean stop
  -- "the rules worker was killed by signal 15 ... restarting" (an error)
  -- (the handles kept: a collected one stops its watch, and the signal kills again)
  local group_signals = {}
  for _, name in ipairs { "TERM", "INT", "HUP" } do group_signals[name] = core.signal.on(name, function() end) end
  if level then pcall(core.log_level, level) end
  local m = mh()
  local rules = require "mailhook.rules"
  local settings = require "mailhook.settings"
  local function send(t) ch:send(W.encode(t)) end
  local last_cfg          -- the settings of the last load that read them
  local function load_all()
    local cfg, serr = settings.load()
    if not cfg and last_cfg then
      -- a SIGHUP with a broken file: as the service does, keep the previous
      -- settings and reload the rule files with them (a rule file fixed in the
      -- same change still loads; the others keep running)
      core.log("error", "rules worker: settings: " .. tostring(serr) .. " (keeping the previous ones)")
      cfg = last_cfg
    elseif not cfg then
      core.log("error", "rules worker: settings: " .. tostring(serr) .. " (rules not loaded)")
      return 0, {}
    end
    last_cfg = cfg
    rules.configure(cfg)
    -- its lines, and the rules' mh.log, where the service's go (the `log`
    -- setting: syslog, the journal); they always went to stderr, so rule errors
    -- never reached mail.log.  A sink not possible here was said by the service.
    if not pcall(core.logsink.set, cfg.log or "stderr", { facility = cfg.syslog_facility }) then
      pcall(core.logsink.set, "stderr")
    end
    -- the process's own limits: the rules' heap (enforced by the allocator)
    -- plus room for the runtime; no core files
    core.proc.limit { data = rules.memory_limit + 512 * 1048576, core = 0 }
    core.watchdog { stall = rules.time_budget + rules.grace, exit = 1 }
    local paths = #files > 0 and files or { rules.default_paths(cfg) }
    local n, errors = rules.load(paths, { skip = skip })
    core.log("info", string.format("rules worker: %d rule file(s) loaded from %s%s", n,
      table.concat(paths, ", "), #errors > 0 and (", " .. #errors .. " failed (see above)") or ""))
    return n, errors
  end
  core.watchdog { stall = rules.time_budget + rules.grace, exit = 1 }   -- before any rule runs
  rules.on_rule = function(label) send { op = "rule", label = label } end
  rules.on_loading = function(file) send { op = "loading", file = file } end
  rules.serving = true
  local n, errors = load_all()
  rules.serve()
  send { op = "ready", loaded = n, errors = #errors }
  local hb = m.every(W.heartbeat, function() send { op = "hb" } end)
  while true do
    local frame = ch:recv()
    if not frame then break end
    local msg = W.decode(frame)
    if msg and msg.op == "event" and type(msg.event) == "string" then
      send { op = "start", n = msg.n }
      m.spawn(function() rules.emit(msg.event, type(msg.fields) == "table" and msg.fields or {}) end)
    elseif msg and msg.op == "reload" then
      skip = {}
      n, errors = load_all()
      send { op = "ready", loaded = n, errors = #errors }
    end
  end
  -- the service stops: handlers still running end by their deadline
  hb:stop()
  for _, h in pairs(group_signals) do h:stop() end
  rules.unserve()
  rules.load({})   -- stops the rule files' timers
  return 0
end

return W
