-- mailhook.cmd.run — `mailhook run [--connections N] [RULES.lua ...]`: the service.
--
-- Takes the spool lock (one deliverer per spool), starts the rules worker, watches
-- pickup/ and delivers the queue through mailhook.delivery until SIGTERM or
-- SIGINT (the message in flight is finished, then exit 0).  SIGHUP reloads the
-- settings and the rules; SIGUSR1 is a flush request (what `mailhook flush`
-- sends while a service runs): backoff is ignored for one pass, and when the
-- pass is over SPOOL/flush.done says "TIME LEFT [ERROR]" and when the last
-- request it covers was asked (flush.write_done).  SIGUSR2 is `mailhook
-- status` asking: SPOOL/status.json is written at once (mailhook.status).  With
-- admin_listen set, the console is served on this loop (mailhook.console).  Under systemd
-- (Type=notify) it reports ready, reloading and stopping, and where the log
-- goes follows the settings (mailhook.service, docs/service.md).
local mh = require "mailhook"
local core = require "mailhook.core"
local args = require "mailhook.args"
local delivery = require "mailhook.delivery"
local service = require "mailhook.service"   -- the log sink, systemd's notify protocol
local flush = require "mailhook.flush"       -- flush.done, the answer to `mailhook flush`

-- Rules: the named files, else the settings' rules folder, run in a separate
-- process (mailhook.rule_worker) that the service starts, feeds with its
-- events and restarts: a rule stuck in a C call, a finalizer that never
-- returns or a heap that grows can never hold delivery, and SIGTERM is never
-- kept waiting by a rule.  A broken rule file is logged by the worker and never
-- stops the queue (deliveries matter more than alerts).
local function start_rules(files, cfg)
  return require("mailhook.rule_worker").start { files = files, cfg = cfg }
end

return function(...)
  local opts, files = args.parse({ ... }, { connections = "string", help = "flag", h = "flag" })
  if not opts then return args.fail("run", files) end
  if opts.help or opts.h then
    io.stdout:write("usage: mailhook run [--connections N] [RULES.lua ...]\n",
                    "  deliver the spool until SIGTERM/SIGINT; SIGHUP reloads settings and rules,\n",
                    "  SIGUSR1 flushes (backoff ignored for one pass)\n")
    return 0
  end
  local connections
  if opts.connections then
    connections = tonumber(opts.connections)
    if not connections or connections < 1 or connections ~= math.floor(connections) or connections > 64 then
      return args.fail("run", "--connections must be a whole number from 1 to 64, not '" .. opts.connections .. "'")
    end
  end

  local settings = require "mailhook.settings"
  local stamp = settings.stamp(core.paths.conf)   -- (before the load: a write in between is seen as a change)
  local cfg, err = settings.load(core.paths.conf)
  if not cfg then return args.fail("run", err) end
  service.setup(cfg)

  -- A named rule file that is not there is a typo: the service ran on without
  -- its rules, saying so only in its log (hook's --rules: the same test, the
  -- same exit 2). Relative: as the rules worker takes it, from here or the
  -- settings' folder. One that is there but does not load stays the worker's
  -- to log: delivery must not wait for a rule to be fixed.
  local rules = require "mailhook.rules"
  for _, f in ipairs(files) do
    if core.rstate.exists(f) == false and (f:sub(1, 1) == "/" or
                                           core.rstate.exists(rules.default_paths({ rules = f })) == false) then
      return args.fail("run", rules.shown(f) .. ": no such rule file")
    end
  end

  local dir = core.paths.spool
  local sp, serr, sinfo = require("mailhook.spool").open(dir)
  if not sp then return args.fail("run", require("mailhook.spool").why(dir, serr, sinfo), 1) end
  local locked, lerr, linfo = sp:lock()
  if not locked then
    -- the hint about another service only when another holds it: a full disk
    -- or a read-only spool (no lock file can be made) got it too
    if type(linfo) == "table" and linfo.code ~= "ELOCKED" and linfo.code ~= "EAGAIN" and linfo.code ~= "EWOULDBLOCK" then
      return args.fail("run", require("mailhook.spool").why(dir, lerr, linfo), 1)
    end
    local holder = require("mailhook.core").admin.lock_holder(dir)
    local what = holder and require("mailhook.status").holder(holder)
    return args.fail("run", tostring(lerr) .. (what and (": " .. what) or
                     " (one service per spool; stop it first, or use `mailhook flush`)"), 1)
  end

  local worker = start_rules(files, cfg)

  local d = delivery.new{ spool = sp, cfg = cfg, connections = connections or cfg.connections,
                          outage_file = dir .. "/outage",
                          emit = function(event, fields) return worker:emit(event, fields) end }
  d.on_flushed = function(_, ferr, asked)
    local ok, werr = flush.write_done(dir, flush.count(sp), ferr, asked)
    if not ok then mh.log.error("mailhook run: cannot write flush.done: " .. tostring(werr)) end
    -- said in status.json too: a waiting `mailhook flush` asks it when nothing
    -- moves (it waited for ever for an answer the service could not write)
    d.flush_error = (not ok) and ("cannot write " .. flush.done_path(dir) .. ": " .. tostring(werr)) or nil
  end

  -- status: SPOOL/status.json follows the deliverer; SIGUSR2 asks for it now
  local status = require("mailhook.status").tracker{ delivery = d, spool_dir = dir, conf = core.paths.conf,
                                                     settings_stamp = stamp }
  local usr2 = core.signal.on("USR2", function() status:answer() end)
  local console
  local function console_start(c)
    if not c.admin_listen then return end
    local con, cerr = require("mailhook.console").start{ cfg = c, delivery = d, status = status, spool = sp,
                                                               spool_dir = dir }
    if con then console = con; status.console = con.url
    else mh.log.error("mailhook run: console not started: " .. tostring(cerr) ..
                      " (delivery goes on; SIGHUP tries again)") end
  end
  console_start(cfg)

  local svc        -- the service manager's view (READY=1 below, once the rules are loaded)
  local stops = 0
  local function stop(name)
    stops = stops + 1
    if stops == 1 then
      if svc then svc:stopping() end
      mh.log.info("mailhook run: SIG" .. name .. ": finishing the message in flight, then exiting")
      d:stop()
    else
      mh.log.warn("mailhook run: SIG" .. name .. " again: exiting now (the message in flight stays queued)")
      io.stderr:flush()
      os.exit(1)
    end
  end
  local handles = {
    core.signal.on("TERM", stop),
    core.signal.on("INT", stop),
    core.signal.on("HUP", function()
      if svc then svc:reloading() end
      local st = settings.stamp(core.paths.conf)
      local c, e = settings.load(core.paths.conf)
      if not c then
        mh.log.error("mailhook run: SIGHUP: settings not reloaded, keeping the old ones: " .. tostring(e))
        -- said where the administrator looks, not only in the log: systemctl
        -- status (STATUS=), mailhook status and the console (status.json)
        status.reload_error = { at = os.time(), error = tostring(e) }
        status.dirty = true
        if svc then svc.reload_error = tostring(e) end
      else
        status.reload_error = nil
        if svc then svc.reload_error = nil end
        cfg = c
        status.settings_stamp = st
        service.apply_log(c)
        d:reload(c)
        mh.log.info("mailhook run: SIGHUP: settings reloaded")
        if console then console:reload(c) else console_start(c) end
      end
      worker:reload(cfg)
      if svc then svc:reloaded() end
    end),
    core.signal.on("USR1", function()
      mh.log.info("mailhook run: flush requested")
      d:flush_request()
    end),
  }

  -- libuv fs events on pickup/ so a new message moves at once; the idle scan
  -- every few seconds is the safety net (1 s when the spool cannot watch).
  local watch
  if type(sp.watch) == "function" then
    local ok, w = pcall(sp.watch, sp, function() d:kick() end)
    if ok and w then watch = w else mh.log.warn("mailhook run: cannot watch pickup/ (" .. tostring(w) .. "); scanning every second") end
  end
  if not watch then d.scan_interval = 1 end

  mh.log.info(string.format("mailhook run: delivering %s (%d queued, %s)", dir, flush.count(sp),
                            (connections or cfg.connections or 1) == 1 and "1 connection"
                            or (connections or cfg.connections) .. " connections"))
  -- READY=1 once the rules worker has loaded the rules (bounded); delivery starts at once
  local ready_task = mh.spawn(function()
    local bound = 3 * (tonumber(cfg.rule_timeout) or 10)
    if not worker:wait_ready(bound) then
      mh.log.warn(string.format("mailhook run: the rules are not loaded after %d s; ready anyway", bound))
    end
    if stops == 0 then svc = service.start{ spool = sp, delivery = d } end
  end)
  local st = d:run()
  ready_task:cancel()
  if svc then svc:close() end
  if console then console:stop() end
  status:stop()
  usr2:stop()
  if watch and watch.stop then watch:stop() end
  for _, h in ipairs(handles) do h:stop() end
  worker:stop()
  mh.log.info(string.format("mailhook run: stopped (delivered %d, deferred %d, failed %d, %d left)",
                            st.delivered, st.deferred, st.failed, flush.count(sp)))
  sp:close()
  return 0
end
