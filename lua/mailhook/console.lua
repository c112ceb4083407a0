-- mailhook.console — the admin console of `mailhook run`: HTTP on the service's
-- own loop (core.http: h2o, runtime/http.c), handlers in Lua on top of the same
-- admin actions as the CLI (scripts/test.lua, scripts/update.lua, mh.queue,
-- mailhook.status), static pages from the share folder.  See docs/console.md.
--
--   local con, err = console.start{cfg = cfg, delivery = d, status = tracker, spool = sp}
--   con.url        con:reload(cfg)      con:stop()  (waits: every connection closed)
--
-- Safe by default (docs/console.md, "Security"):
--  - listens where admin_listen says, 127.0.0.1 when only a port is given; while
--    bound to a loopback address, a request must name it in Host (a page of
--    another site reaching 127.0.0.1 by DNS rebinding is refused);
--  - a login with the admin password (its salted scrypt hash in the settings,
--    checked on the thread pool) gives a session cookie (HttpOnly,
--    SameSite=Strict); or a bearer token from admin_token_file (mode 0600) for
--    scripts and Prometheus;
--  - every change (POST) needs the session's CSRF token in X-CSRF-Token, a
--    JSON body, and an Origin (when the browser sends one) equal to the console's;
--  - repeated failed logins get 429; the HTTP layer limits body size (413),
--    request rate and connections (429), slow or non-reading clients;
--  - the SMTP password is never sent: the settings carry only whether one is set.
local core = require "mailhook.core"
local json = require "mailhook.json"

local M = {}

-- Limits of the HTTP layer (runtime/http.c), seconds and bytes.
M.LIMITS = { max_body = 64 * 1024, max_conns = 32, rate = 20, burst = 100, req_timeout = 10,
             stall = 30, max_stream_buffer = 1024 * 1024 }
M.SESSION_IDLE = 30 * 60          -- a session unused this long is gone
M.SESSION_MAX = 12 * 3600         -- and none lives longer than this
M.SESSIONS = 16                   -- at most this many at once (the oldest goes)
M.LOGIN_FAILS = 5                 -- failed logins per LOGIN_WINDOW before 429
M.LOGIN_WINDOW = 60
M.LOG_LINES = 500                 -- recent log lines kept for the page
M.HEARTBEAT = 15                  -- seconds between SSE keep-alive comments
M.STATUS_EVERY = 1                -- at most one status event a second per page
M.PAGE_SIZE = 50

local COOKIE = "mh_session"

local SECURITY_HEADERS = {
  { "Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " ..
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'" },
  { "X-Content-Type-Options", "nosniff" },
  { "X-Frame-Options", "DENY" },
  { "Referrer-Policy", "no-referrer" },
  { "Cache-Control", "no-store" },
}

local TYPES = { html = "text/html; charset=utf-8", js = "text/javascript; charset=utf-8",
                css = "text/css; charset=utf-8", svg = "image/svg+xml", png = "image/png",
                ico = "image/x-icon", json = "application/json", txt = "text/plain; charset=utf-8" }

-- --------------------------------------------------------------- helpers

local function headers(extra)
  local h = {}
  for i, kv in ipairs(SECURITY_HEADERS) do h[i] = kv end
  for k, v in pairs(extra or {}) do
    if type(k) == "number" then h[#h + 1] = v else h[#h + 1] = { k, v } end
  end
  return h
end

local function send(req, status, ctype, body, extra)
  local h = headers(extra)
  h[#h + 1] = { "Content-Type", ctype }
  return req:respond(status, h, body or "")
end

local function send_json(req, status, value, extra)
  return send(req, status, TYPES.json, json.encode(value) .. "\n", extra)
end

local function fail(req, status, message, extra)
  local body = { ok = false, error = message }
  for k, v in pairs(extra or {}) do body[k] = v end
  return send_json(req, status, body)
end

-- "a=1&b=x%20y" -> {a = "1", b = "x y"}
local function parse_query(q)
  local out = {}
  for pair in (q or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    local function unesc(s) return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)) end
    out[unesc(k)] = unesc(v)
  end
  return out
end

local function cookies_of(req)
  local out = {}
  for k, v in (req:header("cookie") or ""):gmatch("([^=;%s]+)=([^;]*)") do out[k] = v end
  return out
end

-- The pages and the token file, by the core's rule for a file someone named:
-- a regular file (a FIFO is never opened), links followed, at most 1 MiB.
local function read_file(path) return (core.fsutil.read(path, { follow = true })) end

-- The share folder with the pages (a site may edit them): PREFIX/share/mailhook/console
-- when installed, ROOT/console in the build tree.
function M.assets_dir()
  local p = core.paths
  return p.installed and (p.root .. "/share/mailhook/console") or (p.root .. "/console")
end

-- "HOST:PORT" / "[V6]:PORT" -> host, port
local function split_listen(s)
  local h, p = tostring(s):match("^%[(.-)%]:(%d+)$")
  if not h then h, p = tostring(s):match("^(.-):(%d+)$") end
  return h, tonumber(p)
end

local LOOPBACK = { ["127.0.0.1"] = true, ["::1"] = true }
local function loopback(host) return LOOPBACK[host] or host:match("^127%.") ~= nil end

-- --------------------------------------------------------------- the log

-- Recent log lines for the page.  The Lua layer writes its lines through two
-- calls, both wrapped while a console runs, so every line is kept as written
-- (lines never hold a password: log.h's contract): core.log (delivery, rules,
-- settings) and core.logsink.entry (the per-recipient mail log lines of
-- mailhook.maillog, which carry journal fields).
local LEVELS = { debug = 1, info = 2, warn = 3, error = 4 }

function M:tap_log()
  local orig, orig_entry = core.log, core.logsink.entry
  self.orig_log, self.orig_entry = orig, orig_entry
  local ring, n, max = {}, 0, M.LOG_LINES
  self.ring = ring
  local function keep(level, text)
    n = n + 1
    ring[n] = { seq = n, at = core.now(), level = level, text = text }
    ring[n - max] = nil
    self.log_seq = n
    for sub in pairs(self.subs) do sub.cond:notify() end
  end
  core.log = function(level, ...)
    orig(level, ...)
    local want = LEVELS[core.log_level()] or 2
    if (LEVELS[level] or 2) < want then return end
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    keep(level, table.concat(parts, " "))
  end
  core.logsink.entry = function(level, msg, fields)
    local written = orig_entry(level, msg, fields)
    if written then keep(level, tostring(msg)) end   -- false: the level drops it
    return written
  end
end

function M:log_since(seq)
  local out = {}
  for i = math.max(seq + 1, (self.log_seq or 0) - M.LOG_LINES + 1), self.log_seq or 0 do
    if self.ring[i] then out[#out + 1] = self.ring[i] end
  end
  return out
end

-- --------------------------------------------------------------- auth

-- The bearer token of admin_token_file, refused unless only its owner may read it.
local function load_token(cfg, log)
  local path = cfg.admin_token_file
  if not path then return nil end
  local mode = core.fsutil.mode(path)
  if not mode then log.error("console: admin_token_file " .. path .. " cannot be read; token login disabled"); return nil end
  if mode & 63 ~= 0 then
    log.error(string.format("console: admin_token_file %s is readable by others (mode %o): token login " ..
                            "disabled until `chmod 600 %s`", path, mode & 511, path))
    return nil
  end
  local t = (read_file(path) or ""):match("^%s*(%S+)")
  if not t or #t < 16 then
    log.error("console: admin_token_file " .. path .. " holds no token of 16 characters or more; token login disabled")
    return nil
  end
  return t
end

function M:new_session(peer)
  local now = core.now()
  local n, oldest = 0, nil
  for id, s in pairs(self.sessions) do
    n = n + 1
    if not oldest or s.created < self.sessions[oldest].created then oldest = id end
  end
  if n >= M.SESSIONS and oldest then self.sessions[oldest] = nil end
  local id = core.pwhash.random(32)
  self.sessions[id] = { created = now, seen = now, csrf = core.pwhash.random(32), peer = peer }
  return id, self.sessions[id]
end

-- The session of req (from its cookie), or nil; refreshes its idle timer.
function M:session_of(req)
  local id = cookies_of(req)[COOKIE]
  if not id or not id:match("^%x+$") then return nil end
  local s = self.sessions[id]
  if not s then return nil end
  local now = core.now()
  if now - s.seen > M.SESSION_IDLE or now - s.created > M.SESSION_MAX then
    self.sessions[id] = nil
    return nil
  end
  s.seen = now
  return s, id
end

-- Bearer token (scripts, Prometheus): true when it matches admin_token_file's.
function M:token_ok(req)
  local auth = req:header("authorization")
  local given = auth and auth:match("^[Bb]earer%s+(%S+)%s*$")
  return given ~= nil and self.token ~= nil and core.pwhash.equal(given, self.token)
end

-- The Origin a browser sends with a POST must be this console (when present).
function M:same_origin(req)
  local origin = req:header("origin")
  if not origin or origin == "" then return true end
  return origin == "http://" .. tostring(req:header("host"))
end

-- -------------------------------------------------------------- routing

local ROUTES = {}      -- "METHOD path" -> handler(self, req, ctx)
local PUBLIC = {}      -- routes served without a session
local NO_CSRF = {}     -- POST routes without a session to carry a token (login)

local function route(method, path, fn, opts)
  ROUTES[method .. " " .. path] = fn
  if opts and opts.public then PUBLIC[method .. " " .. path] = true end
  if opts and opts.no_csrf then NO_CSRF[method .. " " .. path] = true end
end

function M:dispatch(req)
  local method, path = req:method(), req:path()
  -- DNS rebinding: while bound to loopback, Host must name it
  if self.loopback then
    local host = (req:header("host") or ""):lower()
    local h = host:match("^%[(.-)%]:%d+$") or host:match("^(.-):%d+$") or host
    local port = tonumber(host:match(":(%d+)$"))
    if not (h == "localhost" or LOOPBACK[h] or h:match("^127%.%d+%.%d+%.%d+$")) or port ~= self.port then
      return fail(req, 421, "this console answers to http://" .. self.host_text .. " only (Host: " .. host .. ")")
    end
  end
  if method == "HEAD" then method = "GET" end
  local key = method .. " " .. path
  local fn = ROUTES[key]
  if not fn then
    if path:match("^/assets/") and method == "GET" then return self:asset(req, path:sub(9)) end
    for k in pairs(ROUTES) do
      if k:match("^%S+ (.*)$") == path then return fail(req, 405, "method not allowed", nil) end
    end
    return fail(req, 404, "no such page: " .. path)
  end
  local ctx = {}
  if not PUBLIC[key] then
    local s, id = self:session_of(req)
    if s then ctx.session, ctx.session_id = s, id
    elseif self:token_ok(req) then ctx.token = true
    elseif method == "GET" and not path:match("^/api/") and path ~= "/metrics" then
      return send(req, 303, TYPES.txt, "log in first\n", { Location = "/login" })
    else
      return fail(req, 401, "log in first", nil)
    end
  end
  if method == "POST" then
    if not self:same_origin(req) then return fail(req, 403, "cross-site request refused (Origin)") end
    local ctype = (req:header("content-type") or ""):lower()
    if not ctype:match("^application/json") then
      return fail(req, 415, "send the request as application/json")
    end
    if ctx.session and not NO_CSRF[key] then
      local given = req:header("x-csrf-token") or ""
      if not core.pwhash.equal(given, ctx.session.csrf) then
        return fail(req, 403, "missing or wrong CSRF token (reload the page)")
      end
    end
    local body = req:body() or ""
    local v, err = json.decode(body ~= "" and body or "{}")
    if type(v) ~= "table" then return fail(req, 400, "bad JSON body: " .. tostring(err or "not an object")) end
    ctx.body = v
  end
  return fn(self, req, ctx)
end

-- Every request runs here, in its own task.  A handler that raises is logged
-- and answered 500 (never a hang).
function M:handle(req)
  local ok, err = xpcall(self.dispatch, debug.traceback, self, req)
  if not ok then
    self.log.error("console: " .. tostring(req:method()) .. " " .. tostring(req:path()) .. ": " .. tostring(err))
    if req:alive() then pcall(fail, req, 500, "internal error (see the service's log)") end
  end
end

-- --------------------------------------------------------------- assets

function M:asset(req, name)
  if not name:match("^[%w][%w%-_.]*%.(%w+)$") or name:find("..", 1, true) then
    return fail(req, 404, "no such file")
  end
  local ext = name:match("%.(%w+)$")
  if not TYPES[ext] then return fail(req, 404, "no such file") end
  local body = self.cache[name]
  if not body then
    body = read_file(self.assets .. "/" .. name)
    if not body then return fail(req, 404, "no such file: " .. name) end
    self.cache[name] = body
  end
  return send(req, 200, TYPES[ext], body)
end

local function page(name)
  return function(self, req, ctx)
    return self:asset(req, name)
  end
end

route("GET", "/", page("index.html"))
route("GET", "/login", function(self, req)
  if self:session_of(req) then return send(req, 303, TYPES.txt, "logged in\n", { Location = "/" }) end
  return self:asset(req, "login.html")
end, { public = true })

-- --------------------------------------------------------------- login

route("POST", "/api/login", function(self, req, ctx)
  local now = core.now()
  self.fails = self.fails or {}
  local recent = {}
  for _, t in ipairs(self.fails) do if now - t < M.LOGIN_WINDOW then recent[#recent + 1] = t end end
  self.fails = recent
  if #recent >= M.LOGIN_FAILS then
    return fail(req, 429, "too many failed logins: wait a minute", nil)
  end
  local hash = self.admin_hash
  if not hash then
    return fail(req, 401, "no admin password is set: set one with `mailhook update admin_password=-`, then SIGHUP the service")
  end
  local pw = ctx.body.password
  local ok = type(pw) == "string" and pw ~= "" and core.pwhash.check(pw, hash)
  if not ok then
    self.fails[#self.fails + 1] = now
    self.log.warn("console: failed login from " .. tostring(req:peer()))
    return fail(req, 401, "wrong password")
  end
  local id, s = self:new_session(req:peer())
  self.log.info("console: login from " .. tostring(req:peer()))
  return send_json(req, 200, { ok = true, csrf = s.csrf },
    { { "Set-Cookie", COOKIE .. "=" .. id .. "; Path=/; HttpOnly; SameSite=Strict" } })
end, { public = true, no_csrf = true })

route("POST", "/api/logout", function(self, req, ctx)
  if ctx.session_id then self.sessions[ctx.session_id] = nil end
  return send_json(req, 200, { ok = true },
    { { "Set-Cookie", COOKIE .. "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0" } })
end)

route("GET", "/api/session", function(self, req, ctx)
  return send_json(req, 200, { ok = true, csrf = ctx.session and ctx.session.csrf or nil,
    version = core.version, token = ctx.token or nil })
end)

-- --------------------------------------------------------------- settings

local function run_script(name, arg)
  local path = core.paths.scripts .. "/" .. name .. ".lua"
  local chunk, err = loadfile(path)
  if not chunk then return nil, "cannot load " .. path .. ": " .. tostring(err) end
  local ok, res = pcall(chunk, arg)
  if not ok then return nil, name .. ".lua raised: " .. tostring(res) end
  if type(res) ~= "table" then return nil, name .. ".lua did not return a result (exit status " .. tostring(res) .. ")" end
  return res
end

-- What the form needs besides the values: the choices of each enumerated key.
local FORM = {
  tls = { "auto", "implicit", "starttls", "none" },
  tls_min_version = { "1.0", "1.1", "1.2", "1.3" },
  auth_mechanism = { "auto", "plain", "login", "xoauth2", "oauthbearer" },
}

route("GET", "/api/settings", function(self, req)
  local settings = require "mailhook.settings"
  local cfg, err = settings.load()
  if not cfg then return fail(req, 500, err) end
  local r = settings.report(cfg)
  r.ok, r.choices = true, FORM
  return send_json(req, 200, r)
end)

-- Values from the form: strings, booleans and numbers only (what `update` takes).
local function changes_of(body)
  local c = body.changes
  if type(c) ~= "table" then return nil, "changes must be an object" end
  local out = {}
  for k, v in pairs(c) do
    if type(k) ~= "string" then return nil, "bad setting name" end
    local t = type(v)
    if t ~= "string" and t ~= "boolean" and t ~= "number" then return nil, k .. ": bad value" end
    out[k] = v
  end
  return out
end

route("POST", "/api/settings", function(self, req, ctx)
  local changes, err = changes_of(ctx.body)
  if not changes then return fail(req, 400, err) end
  if next(changes) == nil then return fail(req, 400, "nothing to save") end
  local result, serr = run_script("update", { changes = changes })
  if not result then return fail(req, 500, serr) end
  if result.ok then
    local cfg = require("mailhook.settings").load()
    if cfg then
      self.delivery:reload(cfg)          -- as SIGHUP does: the next message uses them
      self:reload(cfg)
    end
    local keys = {}
    for k in pairs(changes) do keys[#keys + 1] = k end
    table.sort(keys)
    self.log.info("console: settings saved (" .. table.concat(keys, ", ") .. ")")
  end
  result.choices = FORM
  return send_json(req, result.ok and 200 or 422, result)
end)

-- Test: the values of the form (saved or not) through scripts/test.lua, each
-- stage sent as it passes (one JSON object a line), then the whole result.
route("POST", "/api/test", function(self, req, ctx)
  if self.testing then return fail(req, 409, "a test is already running") end
  local changes, err = changes_of(ctx.body)
  if not changes then return fail(req, 400, err) end
  local to = ctx.body.to
  if to ~= nil and (type(to) ~= "string" or to == "") then to = nil end
  local settings = require "mailhook.settings"
  local cfg, perr, pinfo = settings.preview(changes)
  local ok = req:stream(200, headers { { "Content-Type", "application/x-ndjson" } })
  if not ok then return end
  if not cfg then
    req:write(json.encode { event = "result", result = { ok = false, failed_stage = "settings", error = perr,
                                                          key = pinfo and pinfo.key } } .. "\n")
    return req:finish()
  end
  self.testing = true
  local done, result, rerr = false, nil, nil
  local ok2, e = pcall(function()
    result, rerr = run_script("test", { to = to, cfg = cfg, on_stage = function(name, report)
      local i = report.info or {}
      req:write(json.encode { event = "stage", name = name, at_ms = report.stage_at and report.stage_at[name],
        security = i.security, tls_version = i.tls_version, auth_mechanism = i.auth_mechanism } .. "\n")
    end })
    done = true
  end)
  self.testing = false
  if not ok2 then rerr = tostring(e) end
  if not result then result = { ok = false, failed_stage = "test", error = rerr } end
  req:write(json.encode { event = "result", result = result } .. "\n")
  self.log.info("console: test " .. (result.ok and "passed" or ("failed at " .. tostring(result.failed_stage))))
  return req:finish()
end)

-- --------------------------------------------------------------- queue

local function subject_of(path, offset)
  local f = path and core.fsutil.open(path)   -- a spool file: never a FIFO
  if not f then return nil end
  if offset then f:seek("set", offset) end
  local head = f:read(16384) or ""
  f:close()
  head = head:match("^(.-)\r?\n\r?\n") or head
  local s = ("\n" .. head):match("\n[Ss][Uu][Bb][Jj][Ee][Cc][Tt]:[ \t]*([^\r\n]*)")
  return s
end

local function entry_json(e, now)
  return {
    id = e.id, state = e.state, size = e.size, queued_at = e.queued_at,
    age = e.queued_at and math.max(0, math.floor(now - e.queued_at)) or nil,
    attempts = e.attempts or 0, next_attempt = (e.next_attempt or 0) > 0 and e.next_attempt or nil,
    last_reply = e.last_reply, reason = e.reason, failed_at = e.failed_at,
    from = e.from, to = json.array(e.to or {}), done = json.array(e.done or {}),
    subject = subject_of(e.path, e.offset),
  }
end

-- GET /api/queue?folder=pickup|failed[&after=ID|&before=ID][&last=1][&limit=N]:
-- one page, oldest first, read without loading the rest (core.admin.page reads
-- the folder's names only; then the page's files).
route("GET", "/api/queue", function(self, req)
  local q = parse_query(req:query())
  local folder = q.folder == "failed" and "failed" or "pickup"
  local limit = math.tointeger(tonumber(q.limit)) or M.PAGE_SIZE
  if limit < 1 or limit > 200 then return fail(req, 400, "limit must be 1-200") end
  local spool = require "mailhook.spool"
  for _, k in ipairs { "after", "before" } do
    if q[k] and q[k] ~= "" and not spool.is_id(q[k]) then return fail(req, 400, k .. " must be a message id") end
    if q[k] == "" then q[k] = nil end
  end
  local dir = core.paths.spool .. "/" .. folder
  local ids, total, skipped, others = core.admin.page(dir, { after = q.after, before = q.before,
    last = q.last == "1", limit = limit })
  if not ids then return fail(req, 500, total) end
  local sp = require("mailhook.queue").spool()
  local now = core.now()
  local entries = {}
  for _, id in ipairs(ids) do
    local e = sp:load(id)
    if e then entries[#entries + 1] = entry_json(e, now) end
  end
  local _, ptotal = core.admin.page(core.paths.spool .. "/pickup", { limit = 0 })
  local _, ftotal = core.admin.page(core.paths.spool .. "/failed", { limit = 0 })
  return send_json(req, 200, { ok = true, folder = folder, total = total, first = skipped + 1,
    last = skipped + #ids, entries = json.array(entries), drop_ins = others,
    counts = { pickup = ptotal, failed = ftotal } })
end)

local function id_of(ctx)
  local id = ctx.body.id
  if not require("mailhook.spool").is_id(id) then return nil end
  return id
end

route("POST", "/api/queue/retry", function(self, req, ctx)
  local id = id_of(ctx)
  if not id then return fail(req, 400, "id must be a message id") end
  local ok, err = require("mailhook.queue").retry(id)
  if not ok then return fail(req, 404, err) end
  self.log.info("console: " .. id .. " queued for delivery (retry)")
  self.delivery:kick()
  return send_json(req, 200, { ok = true, id = id })
end)

route("POST", "/api/queue/remove", function(self, req, ctx)
  local id = id_of(ctx)
  if not id then return fail(req, 400, "id must be a message id") end
  local ok, err = require("mailhook.queue").remove(id)
  if not ok then return fail(req, 404, err) end
  self.log.info("console: " .. id .. " removed")
  return send_json(req, 200, { ok = true, id = id })
end)

route("POST", "/api/queue/flush", function(self, req)
  self.log.info("console: flush requested")
  self.delivery:flush_request()
  return send_json(req, 200, { ok = true })
end)

-- --------------------------------------------------------------- status

-- The status report, shared by every page and the SSE streams: computed again
-- when the deliverer changed something (at most 5 times a second), else once a
-- second (the queue may also change from outside: enqueues).
function M:status_report()
  local now = core.monotonic()
  if self.report_cache then
    local age = now - self.report_at
    -- during a drain every message is a change: 0.2 s bounds the work to 5 reports a second
    if age < 0.2 or (age < M.STATUS_EVERY and not self.report_dirty) then return self.report_cache end
  end
  if self.report_task then
    local ok, r = self.report_task:wait()
    if ok and r then return r end
  end
  local status = require "mailhook.status"
  self.report_dirty = false          -- a change from now on makes this report old again
  self.report_task = require("mailhook").spawn(function() return status.collect { tracker = self.status } end)
  local ok, r = self.report_task:wait()
  self.report_task = nil
  if not ok then error(r, 0) end
  self.report_cache, self.report_at = r, core.monotonic()
  return r
end

route("GET", "/api/status", function(self, req)
  local r = self:status_report()
  return send_json(req, 200, r)
end)

route("GET", "/api/log", function(self, req)
  return send_json(req, 200, { ok = true, lines = json.array(self:log_since(0)) })
end)

-- GET /api/events: server-sent events: `status` (the report, at most once a
-- second, when something changed) and `log` (each new line).
route("GET", "/api/events", function(self, req)
  local status = require "mailhook.status"
  local ok = req:stream(200, headers { { "Content-Type", "text/event-stream" } })
  if not ok then return end
  local sub = { cond = status.cond(), status_dirty = true, log_seq = self.log_seq or 0, last_status = -1e9 }
  self.subs[sub] = true
  local function event(name, value)
    return "event: " .. name .. "\ndata: " .. json.encode(value) .. "\n\n"
  end
  local alive = req:write("retry: 3000\n\n")
  while alive and not self.stopping do
    local out = {}
    local now = core.monotonic()
    if sub.status_dirty and now - sub.last_status >= M.STATUS_EVERY then
      sub.status_dirty, sub.last_status = false, now
      out[#out + 1] = event("status", self:status_report())
    end
    local lines = self:log_since(sub.log_seq)
    for _, l in ipairs(lines) do
      out[#out + 1] = event("log", l)
      sub.log_seq = l.seq
    end
    if #out > 0 then alive = req:write(table.concat(out)) end
    if not alive then break end
    local wait = M.HEARTBEAT
    if sub.status_dirty then wait = math.max(0.05, M.STATUS_EVERY - (core.monotonic() - sub.last_status)) end
    if not sub.cond:wait(wait) and not sub.status_dirty and #self:log_since(sub.log_seq) == 0 then
      alive = req:write(": keep-alive\n\n")
    end
  end
  self.subs[sub] = nil
  if req:alive() then req:finish() end
end)

-- --------------------------------------------------------------- metrics

local function metric(out, name, kind, help, samples)
  out[#out + 1] = "# HELP " .. name .. " " .. help
  out[#out + 1] = "# TYPE " .. name .. " " .. kind
  for _, s in ipairs(samples) do
    local labels = ""
    if s[2] then
      local parts = {}
      for k, v in pairs(s[2]) do parts[#parts + 1] = k .. '="' .. tostring(v):gsub('[\\"\n]', "\\%0") .. '"' end
      table.sort(parts)
      labels = "{" .. table.concat(parts, ",") .. "}"
    end
    local v = s[1]
    out[#out + 1] = name .. labels .. " " .. (math.type(v) == "integer" and string.format("%d", v)
      or string.format("%.17g", v))
  end
end

-- The Prometheus text exposition format (version 0.0.4).
function M:metrics_text()
  local r = self:status_report()
  local out = {}
  local q, k, c = r.queue or {}, r.counters or {}, r.connection or {}
  metric(out, "mailhook_up", "gauge", "1 while the service answers.", { { r.service.running and 1 or 0 } })
  metric(out, "mailhook_flowing", "gauge", "1 when mail is flowing (the exit status of `mailhook status` is 0).",
    { { r.flowing and 1 or 0 } })
  metric(out, "mailhook_settings_ready", "gauge", "1 when the settings allow delivery.",
    { { r.settings.ready and 1 or 0 } })
  metric(out, "mailhook_queue_messages", "gauge", "Messages waiting in pickup/.", { { q.pickup or 0 } })
  metric(out, "mailhook_queue_oldest_age_seconds", "gauge", "Age of the oldest message in pickup/ (0 when empty).",
    { { q.oldest_age or 0 } })
  metric(out, "mailhook_failed_messages", "gauge", "Dead letters in failed/.", { { q.failed or 0 } })
  metric(out, "mailhook_delivered_total", "counter", "Messages delivered since the service started.",
    { { k.delivered or 0 } })
  metric(out, "mailhook_deferred_total", "counter", "Deferrals (4xx) since the service started.",
    { { k.deferred or 0 } })
  metric(out, "mailhook_failed_total", "counter", "Messages moved to failed/ since the service started.",
    { { k.failed or 0 } })
  metric(out, "mailhook_delivery_attempts_total", "counter", "Messages submitted to the server since start.",
    { { k.attempts or 0 } })
  local states = {}
  for _, s in ipairs(require("mailhook.status").STATES) do
    states[#states + 1] = { c.state == s and 1 or 0, { state = s } }
  end
  metric(out, "mailhook_connection_state", "gauge", "The connection's state (1 for the current one).", states)
  metric(out, "mailhook_last_success_timestamp_seconds", "gauge",
    "Unix time of the last message delivered (0: none since start).", { { c.last_success or 0 } })
  metric(out, "mailhook_start_time_seconds", "gauge", "Unix time the service started.", { { r.service.since or 0 } })
  local st = self.server:stats()
  metric(out, "mailhook_console_requests_total", "counter", "Console requests served.", { { st.requests } })
  metric(out, "mailhook_console_limited_total", "counter", "Console requests refused with 429.", { { st.limited } })
  metric(out, "mailhook_console_connections", "gauge", "Open console connections.", { { st.connections } })
  return table.concat(out, "\n") .. "\n"
end

route("GET", "/metrics", function(self, req)
  return send(req, 200, "text/plain; version=0.0.4; charset=utf-8", self:metrics_text())
end)

-- --------------------------------------------------------------- lifecycle

function M:reload(cfg)
  local settings = require "mailhook.settings"
  self.cfg = cfg
  self.admin_hash = settings.admin_hash(cfg)
  self.token = load_token(cfg, self.log)
  self.cache = {}                      -- pages edited on disk are read again
  if cfg.admin_listen ~= self.listen then
    self.log.warn("console: admin_listen changed to " .. tostring(cfg.admin_listen) ..
                  "; restart the service to move the console (it stays on " .. self.url .. ")")
  end
  if not self.admin_hash and not self.token then
    self.log.warn("console: no admin_password and no admin_token_file: nobody can log in " ..
                  "(mailhook update admin_password=-, then SIGHUP)")
  end
end

-- start{cfg =, delivery =, status = tracker, spool =, assets =} -> console | nil, err
function M.start(opts)
  local mh = require "mailhook"
  local cfg = assert(opts.cfg)
  local host, port = split_listen(cfg.admin_listen)
  if not host then return nil, "admin_listen '" .. tostring(cfg.admin_listen) .. "' is not HOST:PORT" end
  local self = setmetatable({
    cfg = cfg, delivery = opts.delivery, status = opts.status, spool = opts.spool,
    log = mh.log, sessions = {}, subs = {}, cache = {}, listen = cfg.admin_listen,
    assets = opts.assets or M.assets_dir(), host = host, loopback = loopback(host),
  }, { __index = M })
  self.port = port
  local limits = {}
  for k, v in pairs(M.LIMITS) do limits[k] = v end
  limits.host, limits.port = host, port
  limits.handler = function(req) self:handle(req) end
  local srv, err = core.http.listen(limits)
  if not srv then return nil, err end
  self.server = srv
  local _, bound = srv:address()
  self.port = bound
  self.host_text = (host:find(":", 1, true) and ("[" .. host .. "]") or host) .. ":" .. bound
  self.url = "http://" .. self.host_text
  self:tap_log()
  self:reload(cfg)
  if self.status then
    self.status.listeners[self] = function()
      self.report_dirty = true           -- the next report is computed afresh (see status_report)
      for sub in pairs(self.subs) do sub.status_dirty = true; sub.cond:notify() end
    end
  end
  self.log.info("console: " .. self.url .. " (" .. (self.loopback and "this machine only" or
                "reachable from the network: admin_listen = " .. cfg.admin_listen) .. ")")
  return self
end

-- stop(): waits until every console connection is closed.
function M:stop()
  if self.stopping then return end
  self.stopping = true
  for sub in pairs(self.subs) do sub.cond:notify() end
  if self.status then self.status.listeners[self] = nil end
  self.server:close()
  if self.orig_log then core.log = self.orig_log end
  if self.orig_entry then core.logsink.entry = self.orig_entry end
end

return M
