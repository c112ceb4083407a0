-- mailhook.cmd.run — `mailhook run [--connections N] [RULES.lua ...]`: the service.
--
-- Takes the spool lock (one deliverer per spool), loads the rules, watches
-- pickup/ and delivers the queue through mailhook.delivery until SIGTERM or
-- SIGINT (the message in flight is finished, then exit 0).  SIGHUP reloads the
-- settings and the rules; SIGUSR1 is a flush request (what `mailhook flush`
-- sends while a service runs): backoff is ignored for one pass, and when the
-- pass is over SPOOL/flush.done says "TIME LEFT [ERROR]".  SIGUSR2 is `mailhook
-- status` asking: SPOOL/status.json is written at once (mailhook.status).  With
-- admin_listen set, the console is served on this loop (mailhook.console).  Under systemd
-- (Type=notify) it reports ready, reloading and stopping, and where the log
-- goes follows the settings (mailhook.service, docs/service.md).
local mh = require "mailhook"
local core = require "mailhook.core"
local args = require "mailhook.args"
local delivery = require "mailhook.delivery"
local service = require "mailhook.service"   -- the log sink, systemd's notify protocol

-- How many messages wait in pickup/ (scan(1): only one id crosses into Lua).
local function count(sp)
  local ids, total = sp:scan(1)
  if type(total) == "number" then return total end
  return type(ids) == "table" and #ids or 0
end

-- Written by rename, so `mailhook flush` never reads half a line: the core's
-- atomic write (an O_EXCL temporary file: never through a link planted in
-- the spool), mode 0600.
local function write_flush_done(dir, left, err)
  local path = delivery.flush_done_path(dir)
  return core.fsutil.write_atomic(path, string.format("%.3f %d %s\n", mh.now(), left,
                                                      err and tostring(err):gsub("\n", " ") or ""), 384)
end

-- Rules: the named files, else the settings' rules folder.  The rules module is
-- optional (guarded): without it the service still delivers.  A broken rule file
-- is logged and never stops the queue (deliveries matter more than alerts).
-- The first load starts the rules' service (sweeps of summaries, digests, held
-- mail); returns a stop function, or nil.
local function load_rules(files, cfg, first)
  local ok, rules = pcall(require, "mailhook.rules")
  if not ok or type(rules) ~= "table" or type(rules.load) ~= "function" then
    if #files > 0 then
      mh.log.warn("mailhook run: rules named but the rules module is not available: " ..
                  (ok and "no rules.load" or tostring(rules):match("[^\n]*")))
    end
    return nil
  end
  local paths = files
  if #paths == 0 then
    paths = rules.default_paths and { rules.default_paths(cfg) } or { cfg.rules or "./rules" }
  end
  local n, errors, stop
  if first and rules.start then
    local h = rules.start(paths)
    n, errors, stop = h.loaded, h.errors, h.stop
  else
    n, errors = rules.load(paths)
  end
  if type(errors) == "table" and #errors > 0 then
    mh.log.error(string.format("mailhook run: %d rule file(s) failed to load (see above); delivery goes on", #errors))
  end
  mh.log.info(string.format("mailhook run: %s rule file(s) loaded from %s", tostring(n), table.concat(paths, ", ")))
  return stop
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
  local cfg, err = settings.load(core.paths.conf)
  if not cfg then return args.fail("run", err) end
  service.setup(cfg)

  local dir = core.paths.spool
  local sp, serr = require("mailhook.spool").open(dir)
  if not sp then return args.fail("run", "spool " .. dir .. ": " .. tostring(serr), 1) end
  local locked, lerr = sp:lock()
  if not locked then
    return args.fail("run", tostring(lerr) .. " (one service per spool; stop it first, or use `mailhook flush`)", 1)
  end

  local stop_rules = load_rules(files, cfg, true)

  local d = delivery.new{ spool = sp, cfg = cfg, connections = connections or cfg.connections }
  d.on_flushed = function(_, ferr)
    local ok, werr = write_flush_done(dir, count(sp), ferr)
    if not ok then mh.log.error("mailhook run: cannot write flush.done: " .. tostring(werr)) end
  end

  -- status: SPOOL/status.json follows the deliverer; SIGUSR2 asks for it now
  local status = require("mailhook.status").tracker{ delivery = d, spool_dir = dir, conf = core.paths.conf }
  local usr2 = core.signal.on("USR2", function() status:answer() end)
  local console
  local function console_start(c)
    if not c.admin_listen then return end
    local con, cerr = require("mailhook.console").start{ cfg = c, delivery = d, status = status, spool = sp }
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
      local c, e = settings.load(core.paths.conf)
      if not c then
        mh.log.error("mailhook run: SIGHUP: settings not reloaded, keeping the old ones: " .. tostring(e))
      else
        cfg = c
        service.apply_log(c)
        d:reload(c)
        mh.log.info("mailhook run: SIGHUP: settings reloaded")
        if console then console:reload(c) else console_start(c) end
      end
      load_rules(files, cfg, false)
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

  mh.log.info(string.format("mailhook run: delivering %s (%d queued, %s)", dir, count(sp),
                            (connections or cfg.connections or 1) == 1 and "1 connection"
                            or (connections or cfg.connections) .. " connections"))
  svc = service.start{ spool = sp, delivery = d }
  local st = d:run()
  svc:close()
  if console then console:stop() end
  status:stop()
  usr2:stop()
  if watch and watch.stop then watch:stop() end
  for _, h in ipairs(handles) do h:stop() end
  if stop_rules then pcall(stop_rules) end
  local rok, rules = pcall(require, "mailhook.rules")
  if rok and type(rules) == "table" and rules.unserve then rules.unserve() end
  mh.log.info(string.format("mailhook run: stopped (delivered %d, deferred %d, failed %d, %d left)",
                            st.delivered, st.deferred, st.failed, count(sp)))
  sp:close()
  return 0
end
