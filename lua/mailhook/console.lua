-- mailhook.console — the admin console of `mailhook run`: HTTP on the service's
-- own loop (core.http: runtime/http.c), handlers in Lua on top of the same
-- admin actions as the CLI (scripts/test.lua, scripts/update.lua, mh.queue,
-- mailhook.status), static pages from the share folder.  See docs/console.md.
--
--   local con, err = console.start{cfg = cfg, delivery = d, status = tracker, spool = sp, spool_dir = dir}
--   con.url        con:reload(cfg)      con:stop()  (waits: every connection closed)
--
-- Safe by default (docs/console.md, "Security"; each point has its test):
--  - listens where admin_listen says, 127.0.0.1 when only a port is given; a
--    request must name the console in Host: its own address (or localhost on a
--    loopback address), its port; a name a page of another site could make
--    resolve to it (DNS rebinding) gets 421, whatever the address;
--  - a login with the admin password (its salted scrypt hash in the settings,
--    checked on the thread pool, one check at a time) gives a fresh session
--    cookie (HttpOnly, SameSite=Strict), ended by logout, 30 min unused or 12 h;
--    or a bearer token from admin_token_file (mode 0600) for scripts and
--    Prometheus;  failed logins and wrong tokens are limited per client and in
--    all, and answered after a delay;
--  - every change (POST) needs the session's CSRF token in X-CSRF-Token, a
--    JSON body, an Origin (when the browser sends one) equal to the console's
--    and no Sec-Fetch-Site other than same-origin; GET changes nothing; the
--    login form a browser posts itself (POST /login, no JavaScript) must show
--    it is the console's own (M:form_from_console);
--  - the console edits the seed's settings only (never a command, a path, or
--    its own access), and never sends the stored SMTP password to a server
--    other than the one it was saved for: changing where it goes needs the
--    password typed again;
--  - no response carries a secret (SMTP password, admin hash, token) or where
--    the settings, the spool or the token file live: every JSON value, event
--    and text leaving the console is scrubbed (M:scrub);
--  - no response quotes what the request sent (its path, Host, Content-Type,
--    a field, key or value): the scrubber would mask a secret in it, so the
--    answer would tell whether a guess was the password (a path holding 600
--    guesses, answered without a session, told which one in 10 requests);
--    errors name the field, never its value (settings.quote_values);
--  - the HTTP layer limits head and body size (431, 413), request rate and
--    connections (429), slow or non-reading clients, and ambiguous framing (400).
local core = require "mailhook.core"
local json = require "mailhook.json"

local M = {}

-- Limits of the HTTP layer (runtime/http.c), seconds and bytes.
M.LIMITS = { max_body = 64 * 1024, max_head = 8 * 1024, max_conns = 32, rate = 20, burst = 100,
             req_timeout = 10, stall = 30, max_stream_buffer = 1024 * 1024,
             -- the HTTP layer's own errors (413, 431, 429...) to the API: JSON, the shape of M:fail
             json_prefix = "/api/" }
-- The way in, never rate-limited by the HTTP layer (http.h: open): what an
-- administrator not logged in yet needs, each no dearer to answer than a 429
-- (a page or an asset from memory, a redirect, a fixed JSON), and the login
-- itself, whose failures the console counts (LOGIN_FAILS, LOGIN_FAILS_ALL).
-- Before, a flood of requests without a session (anyone on this machine)
-- spent the common bucket, and the login page, its script and the login were
-- answered 429 for as long as it lasted: the administrator could not log in.
M.OPEN = { "GET /", "GET /login", "GET /api/login", "GET /assets/*", "GET /favicon.ico",
           "POST /login", "POST /api/login" }
M.SESSION_IDLE = 30 * 60          -- a session unused this long is gone
M.SESSION_MAX = 12 * 3600         -- and none lives longer than this
M.SESSIONS = 16                   -- at most this many at once (the oldest goes)
M.LOGIN_WINDOW = 60               -- failed logins (and wrong tokens) are counted over this
M.LOGIN_FAILS = 5                 -- per client address in LOGIN_WINDOW, then 429
M.LOGIN_FAILS_ALL = 20            -- from all addresses together (127.0.0.0/8 is 16M clients)
M.LOGIN_WAITING = 4               -- password checks waiting for the one running; more: 429
M.LOGIN_DELAY = 1                 -- seconds before a failed login is answered
M.LOGIN_BODY_MAX = 16 * 1024      -- bytes of a login's body (POST /login, /api/login); more: 413
M.PASSWORD_MIN = 8                -- characters of a console password set from the console
M.SETTINGS_LOCK_WAIT = 10         -- seconds a Save waits for another process's settings lock, then 503
M.SETTINGS_LOCK_RETRY = 0.2       -- how often it tries the lock meanwhile
M.LOG_LINES = 500                 -- recent log lines kept for the page
M.HEARTBEAT = 15                  -- seconds between SSE keep-alive comments
M.STATUS_EVERY = 1                -- at most one status event a second per page
M.PAGE_SIZE = 50
-- GET /api/queue lists at most this many files of maildrop/ (the oldest; the
-- answer's maildrop_total counts them all): a flood of drops costs a page
-- one readdir and these reads
M.MAILDROP_LIST = 100

local COOKIE = "mh_session"
local MASK = "********"

-- What every answer of the console carries.  script-src 'self' and no inline
-- script anywhere: a value that reached a page as markup still could not run;
-- require-trusted-types-for makes the browser refuse any string given to an
-- HTML sink (innerHTML, insertAdjacentHTML, document.write, a javascript: URL),
-- so a future edit of console.js that used one fails loudly instead of opening
-- a hole.  CORP/COOP keep other sites from loading or opening these responses.
M.CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " ..
  "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; " ..
  "form-action 'self'; require-trusted-types-for 'script'; trusted-types 'none'"
local SECURITY_HEADERS = {
  { "Content-Security-Policy", M.CSP },
  { "X-Content-Type-Options", "nosniff" },
  { "X-Frame-Options", "DENY" },
  { "Referrer-Policy", "no-referrer" },
  { "Cache-Control", "no-store" },
  { "Cross-Origin-Opener-Policy", "same-origin" },
  { "Cross-Origin-Resource-Policy", "same-origin" },
}

local TYPES = { html = "text/html; charset=utf-8", js = "text/javascript; charset=utf-8",
                css = "text/css; charset=utf-8", svg = "image/svg+xml", png = "image/png",
                ico = "image/x-icon", json = "application/json", txt = "text/plain; charset=utf-8" }
-- Every text type names its charset: an event stream is UTF-8 by definition, and
-- now says so (it was the one text answer without it).  JSON has no charset
-- parameter (RFC 8259 8.1: always UTF-8).  Not in TYPES: no asset is a stream.
local EVENT_STREAM = "text/event-stream; charset=utf-8"

-- The settings the console may change: the seed's form and what tunes delivery.
-- Not: commands (password_command, oauth_token_command: a session would run a
-- program as the service), paths on the server (tls_ca_file, aliases, templates,
-- rules: it would read files), the log's destination, and the console's own
-- access (admin_listen, admin_password: POST /api/password, admin_token_file).
M.EDITABLE = {}
for _, k in ipairs { "enabled", "from", "server", "port", "tls", "tls_required", "tls_min_version",
                     "tls_verify", "tls_fingerprint", "auth", "allow_plaintext_auth", "auth_mechanism",
                     "username", "password", "helo_name", "retry_interval", "retry_max", "max_queue_age",
                     "connect_timeout", "command_timeout", "data_timeout", "session_deadline",
                     "connections", "default_domain", "admin_address", "from_rewrite", "log_level" } do
  M.EDITABLE[k] = true
end
-- Where the SMTP password goes and how well it is protected on the way: a
-- change of any of these with the stored password kept would let whoever holds
-- a session (or a script injected into it) send the password to a server of
-- their own.  So a change needs the password typed again.  auth_mechanism is
-- one: on a session without TLS (allow_plaintext_auth) CRAM-MD5 never sends
-- the password, PLAIN and LOGIN send it readable by anyone on the path; it was
-- left out, and a session turned a saved cram-md5 into plain and pressed Test.
M.DESTINATION = { "server", "port", "tls", "tls_required", "tls_min_version", "tls_verify",
                  "tls_fingerprint", "allow_plaintext_auth", "auth_mechanism" }

-- --------------------------------------------------------------- helpers

local function headers(extra)
  local h = {}
  for i, kv in ipairs(SECURITY_HEADERS) do h[i] = kv end
  for k, v in pairs(extra or {}) do
    if type(k) == "number" then h[#h + 1] = v else h[#h + 1] = { k, v } end
  end
  return h
end

-- Every string of v (in place: tables are fresh or idempotently scrubbed
-- caches, and json.array marks stay) with the console's secrets and paths
-- replaced (M:reload builds the list), and the request's own secrets.
-- A secret under 4 bytes (a password "ab7") is replaced only where it stands
-- alone, not flanked by an ASCII letter or digit: masked whatever its length
-- (it was not masked at all), without turning "disabled" into "dis********led".
local function replace_plain(s, from, to)
  local i, out, short = 1, nil, #from < 4
  while true do
    local a, b = s:find(from, i, true)
    if not a then break end
    while a and short and (s:sub(a - 1, a - 1):match("^%w$") or s:sub(b + 1, b + 1):match("^%w$")) do
      a, b = s:find(from, a + 1, true)
    end
    if not a then break end
    out = out or {}
    out[#out + 1] = s:sub(i, a - 1)
    out[#out + 1] = to
    i = b + 1
  end
  if not out then return s end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

function M:scrub(v, extra, depth)
  local t = type(v)
  if t == "string" then
    for _, r in ipairs(self.redact or {}) do v = replace_plain(v, r[1], r[2]) end
    for _, secret in ipairs(extra or {}) do v = replace_plain(v, secret, MASK) end
    return v
  end
  if t ~= "table" or (depth or 0) > 32 then return v end
  for k, x in pairs(v) do
    if type(x) == "string" or type(x) == "table" then v[k] = self:scrub(x, extra, (depth or 0) + 1) end
  end
  return v
end

-- What a request itself says is secret (a password typed in the form, a
-- login's password): masked if a server's reply or an error echoes it.
local function secrets_of(body)
  local out = {}
  local function add(s) if type(s) == "string" and s ~= "" then out[#out + 1] = s end end
  if type(body) == "table" then
    add(body.password); add(body.current); add(body.new)
    if type(body.changes) == "table" then add(body.changes.password) end
  end
  return out
end

function M:send(req, status, ctype, body, extra)
  local h = headers(extra)
  h[#h + 1] = { "Content-Type", ctype }
  return req:respond(status, h, body or "")
end

function M:send_json(req, status, value, extra, secrets)
  return self:send(req, status, TYPES.json, json.encode(self:scrub(value, secrets)) .. "\n", extra)
end

function M:fail(req, status, message, fields, extra)
  local body = { ok = false, error = message }
  for k, v in pairs(fields or {}) do body[k] = v end
  return self:send_json(req, status, body, extra)
end

-- "a=1&b=x%20y" -> {a = "1", b = "x y"}, and the first name given twice (nil: none)
local function parse_query(q)
  local out, twice = {}, nil
  for pair in (q or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    local function unesc(s) return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)) end
    k = unesc(k)
    if out[k] ~= nil then twice = twice or k end
    out[k] = unesc(v)
  end
  return out, twice
end

-- What a JSON value is, in words, for an error that says what came instead.
local function json_kind(v)
  if v == json.null then return "null" end
  if type(v) == "table" then return json.is_array(v) and "an array" or "an object" end
  return "a " .. type(v)
end

local function sorted_keys(t)
  local l = {}
  for k in pairs(t) do l[#l + 1] = tostring(k) end
  table.sort(l)
  return l
end

-- Why a POST's Content-Type is not JSON as the console reads it (nil when it
-- is): application/json, its parameters well formed, and a charset (if one is
-- named) that reads as UTF-8.  The body is decoded as UTF-8 whatever the
-- header says: "charset=utf-16" was accepted and its body read as mojibake.
local function media_type_error(ctype, want)
  local given = ctype or ""
  local lc = given:lower()
  local rest = lc:sub(1, #want) == want and lc:sub(#want + 1):match("^[ \t]*(.*)$")
  if not rest or (rest ~= "" and rest:sub(1, 1) ~= ";") then
    return "send the request as " .. want .. " (got " .. (given == "" and "no Content-Type" or
           "another Content-Type") .. ")"
  end
  local TOKEN = "[%w!#$%%&'*+%-.^_`|~]+"
  while rest ~= "" do
    local p = rest:match("^;[ \t]*(.*)$")            -- RFC 9110 5.6.6: OWS ";" OWS [ parameter ]
    if not p then return "send the request as " .. want .. ": its parameters are malformed" end
    rest = p
    if p ~= "" and p:sub(1, 1) ~= ";" then
      local name, value, after = p:match("^(" .. TOKEN .. ')=("[^"\\]*")[ \t]*(.*)$')
      if name then value = value:sub(2, -2)
      else name, value, after = p:match("^(" .. TOKEN .. ")=(" .. TOKEN .. ")[ \t]*(.*)$") end
      if not name then
        return "send the request as " .. want .. ": its parameters are malformed"
      end
      if name == "charset" and value ~= "utf-8" and value ~= "us-ascii" then
        return "that charset is not taken: send " .. want .. " in UTF-8 (charset=utf-8, or none)"
      end
      rest = after
    end
  end
  return nil
end
function M.json_type_error(ctype) return media_type_error(ctype, "application/json") end
-- The same for the login form a browser submits itself (POST /login).
function M.form_type_error(ctype) return media_type_error(ctype, "application/x-www-form-urlencoded") end

-- The one check of a POST body against the fields its route declares
-- (route's opts.fields: name -> "string" (required), "string?" (may be left
-- out), "any" (the route checks it: changes, version, to)).  A field the route
-- does not read (a typo: "change" for "changes", "pasword") was ignored
-- silently: a Save went through without the check its sender asked for, a
-- login with a misspelt field counted as a wrong password.  A field of the
-- wrong type (a password as a number, an id as a list) is refused the same
-- way: 400 naming it, and what it takes; never its value (it may be a
-- password).  -> nil | message, key.
local function body_error(body, fields)
  local names = {}
  for k in pairs(body) do if fields[k] == nil then names[#names + 1] = tostring(k) end end
  if #names > 0 then
    table.sort(names)
    local known = sorted_keys(fields)
    return "a field this request does not take (it takes " ..
      (#known > 0 and table.concat(known, ", ") or "none: send {}") .. ")"
  end
  for _, k in ipairs(sorted_keys(fields)) do
    local kind, v = fields[k], body[k]
    if kind ~= "any" then
      if v == nil then
        if kind == "string" then return k .. ": missing (a string)", k end
      elseif type(v) ~= "string" then
        return k .. ": must be a string (got " .. json_kind(v) .. ")", k
      end
    end
  end
  return nil
end

-- Every value of the session cookie the browser sent: a page of another
-- service on this host (cookies are not kept apart by port) may have set one
-- more of the same name; the one that names a live session is used.
local function session_cookies(req)
  local out = {}
  for k, v in (req:header("cookie") or ""):gmatch("([^=;%s]+)=([^;]*)") do
    -- trimmed in one pass: "^%s*(.-)%s*$" is quadratic, and a header of 8 KiB of
    -- blanks (no login needed) held the service's loop 0.2 s a request
    local first = v:find("%S")
    if k == COOKIE then out[#out + 1] = first and v:match("^.*%S", first) or "" end
  end
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

local function loopback(host) return host == "::1" or host:match("^127%.") ~= nil end
local function wildcard(host) return host == "0.0.0.0" or host == "::" end

-- An IPv4 literal in its dotted-quad form only (no 127.1, no 2130706433).
local function ipv4(h)
  local a, b, c, d = h:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return false end
  for _, x in ipairs { a, b, c, d } do
    if #x > 3 or tonumber(x) > 255 or (#x > 1 and x:sub(1, 1) == "0") then return false end
  end
  return true
end

-- Whether Host (the request's authority) names this console: its port, and an
-- address no DNS answer can stand for: the bound address itself, any loopback
-- literal and localhost while bound to loopback (browsers resolve localhost
-- themselves), any IPv4/IPv6 literal while bound to a wildcard.  A name never:
-- it is what DNS rebinding uses to reach 127.0.0.1 from another site's page.
function M:host_ok(host)
  host = (host or ""):lower()
  local name, port = host:match("^%[([%x:.]+)%]:(%d+)$")
  local v6 = name ~= nil
  if not name then name, port = host:match("^([^:%[%]]+):(%d+)$") end
  if not name then                      -- no port: 80 (what a browser sends for :80)
    name = host:match("^%[([%x:.]+)%]$")
    v6 = name ~= nil
    if not name then name = host:match("^([^:%[%]]+)$") end
    port = "80"
  end
  if not name then return false end
  if tonumber(port) ~= self.port or #port > 5 then return false end
  if v6 then
    if wildcard(self.host) then return true end
    return name == self.host or (self.loopback and (name == "::1" or name == "0:0:0:0:0:0:0:1"))
  end
  if name == "localhost" then return self.loopback end
  if not ipv4(name) then return false end
  if wildcard(self.host) then return true end
  return name == self.host or (self.loopback and name:match("^127%.") ~= nil)
end

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

-- The bearer token of admin_token_file, refused unless only its owner may read
-- it (read without a blocking open: a FIFO there cannot stall the service).
-- token_path(cfg) -> the admin_token_file's path | nil: relative, from the
-- folder of the settings file that names it, as aliases, rules, templates and
-- tls_ca_file are (it was from the service's working folder: / under systemd)
local function token_path(cfg)
  local path = cfg.admin_token_file
  if type(path) ~= "string" or path == "" then return nil end
  return require("mailhook.settings").resolve(cfg, path)
end

local function load_token(cfg, log)
  local path = token_path(cfg)
  if not path then return nil end
  local mode = core.fsutil.mode(path)
  if not mode then log.error("console: admin_token_file " .. path .. " cannot be read; token login disabled"); return nil end
  if mode & 63 ~= 0 then
    log.error(string.format("console: admin_token_file %s is readable by others (mode %o): token login " ..
                            "disabled until `chmod 600 %s`", path, mode & 511, path))
    return nil
  end
  local text, err = core.fsutil.read(path, { follow = true, max = 4096, what = "admin_token_file" })
  if not text then log.error("console: " .. tostring(err) .. "; token login disabled"); return nil end
  local t = text:match("^%s*(%S+)")
  if not t or #t < 16 then
    log.error("console: admin_token_file " .. path .. " holds no token of 16 characters or more; token login disabled")
    return nil
  end
  return t
end

local function expired(s, now)
  return now - s.seen > M.SESSION_IDLE or now - s.created > M.SESSION_MAX
end

-- Seconds until session s ends unless used again.
local function expires_in(s, now)
  return math.min(s.seen + M.SESSION_IDLE, s.created + M.SESSION_MAX) - now
end

function M:new_session(peer)
  local now = core.now()
  local n, oldest = 0, nil
  for id, s in pairs(self.sessions) do
    if expired(s, now) then
      self:end_session(id)
    else
      n = n + 1
      if not oldest or s.created < self.sessions[oldest].created then oldest = id end
    end
  end
  if n >= M.SESSIONS and oldest then self:end_session(oldest) end
  local id = core.pwhash.random(32)
  self.sessions[id] = { id = id, created = now, seen = now, csrf = core.pwhash.random(32), peer = peer }
  -- its requests are rate-limited apart from anyone else's (http.h: trust): a
  -- flood needing no login emptied the one bucket and the page got only 429s
  self.server:trust(id, true)
  return id, self.sessions[id]
end

-- Ends a session on the server: its id no longer logs in, and the live
-- streams it opened end now (not at their next heartbeat).
function M:end_session(id)
  local s = self.sessions[id]
  if not s then return end
  self.sessions[id] = nil
  self.server:trust(id, false)
  s.ended = true
  for sub in pairs(self.subs) do
    if sub.session == s then sub.cond:notify() end
  end
end

function M:end_all_sessions()
  local ids = {}
  for id in pairs(self.sessions) do ids[#ids + 1] = id end
  for _, id in ipairs(ids) do self:end_session(id) end
  return #ids
end

-- The session of req (from its cookie), or nil; refreshes its idle timer.
function M:session_of(req)
  local now = core.now()
  for _, id in ipairs(session_cookies(req)) do
    if #id == 64 and id:match("^%x+$") then
      local s = self.sessions[id]
      if s and expired(s, now) then
        self:end_session(id)
      elseif s then
        -- a page's own poll (X-Mailhook-Poll: the Queue page's outage banner) is
        -- not a use: a tab left open must still end its session when unused
        if req:header("x-mailhook-poll") ~= "1" then s.seen = now end
        return s, id
      end
    end
  end
  return nil
end

-- Whether a session is still alive (a stream checks it; not a use of it).
function M:session_live(s)
  return not s.ended and self.sessions[s.id] == s and not expired(s, core.now())
end

-- ------------------------------------------------------- failed logins

-- Failed logins and wrong tokens, per client address and in all, over
-- LOGIN_WINDOW; checks in flight count as failures until they pass, so a burst
-- of concurrent guesses gets no more checks than the limit.  nil when a new
-- attempt from peer may go on, else the seconds to wait.
function M:auth_gate(peer)
  local now = core.monotonic()
  local keep, mine, oldest_mine = {}, 0, nil
  for _, f in ipairs(self.fails) do
    if now - f.at < M.LOGIN_WINDOW then
      keep[#keep + 1] = f
      if f.peer == peer then mine = mine + 1; oldest_mine = oldest_mine or f.at end
    end
  end
  self.fails = keep
  local wait
  if mine + (self.pending[peer] or 0) >= M.LOGIN_FAILS then
    wait = oldest_mine and M.LOGIN_WINDOW - (now - oldest_mine) or M.LOGIN_DELAY
  elseif #keep + self.pending_all >= M.LOGIN_FAILS_ALL then
    wait = keep[1] and M.LOGIN_WINDOW - (now - keep[1].at) or M.LOGIN_DELAY
  elseif self.pending_all > M.LOGIN_WAITING then
    wait = M.LOGIN_DELAY
  end
  if not wait then return nil end
  wait = math.max(1, math.ceil(wait))
  -- one log line per refused client and window; refusals for the total or the
  -- waiting line are one entry ("*"), so a client cycling through 127.0.0.0/8
  -- cannot grow the table (it never holds more than LOGIN_FAILS_ALL clients)
  local key = mine + (self.pending[peer] or 0) >= M.LOGIN_FAILS and peer or "*"
  local said = self.limit_said[key]
  if not said or now - said >= M.LOGIN_WINDOW then
    for k, t in pairs(self.limit_said) do
      if now - t >= M.LOGIN_WINDOW then self.limit_said[k] = nil end
    end
    self.limit_said[key] = now
    self.log.warn(string.format("console: logins from %s refused for %d s: too many failed attempts " ..
                                "(%d from it, %d in all in the last %d s, %d being checked)",
                                key == "*" and "every client" or tostring(peer), wait, mine, #keep,
                                M.LOGIN_WINDOW, self.pending_all))
  end
  return wait
end

function M:auth_failed(peer, what)
  self.fails[#self.fails + 1] = { at = core.monotonic(), peer = peer }
  self.auth_failures = (self.auth_failures or 0) + 1
  self.log.warn("console: " .. what .. " from " .. tostring(peer))
end

-- fn(...) run when no other work of the same kind runs (waiting for it in
-- turn): what the console puts on libuv's thread pool (4 workers, shared with
-- delivery's disk work) takes one worker at most, however many clients ask at
-- once.  Returns fn's results; raises what it raises.
function M:one_at_a_time(kind, fn, ...)
  local status = require "mailhook.status"
  local busy, q = self.busy, self.waiting[kind]
  if not q then q = {}; self.waiting[kind] = q end
  if busy[kind] then
    local me = status.cond()
    q[#q + 1] = me
    while busy[kind] do me:wait(1) end       -- woken when the one before ends
    for i, c in ipairs(q) do if c == me then table.remove(q, i); break end end
  end
  busy[kind] = true
  local res = table.pack(pcall(fn, ...))
  busy[kind] = false
  if q[1] then q[1]:notify() end
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- One scrypt check at a time: each costs 32 MiB and tens of milliseconds of a
-- thread-pool worker.  Before: 30 concurrent logins ran 30 checks and held all
-- 4 workers for ~24 s.  (The gate bounds how many wait.)
function M:scrypt_check(pw, hash)
  local ok, r, err = pcall(self.one_at_a_time, self, "scrypt", core.pwhash.check, pw, hash)
  if not ok then return nil, tostring(r) end
  return r, err
end

-- verify_password(pw, peer) -> true | false | nil, wait (429): the admin
-- password, through the gate; a failure is counted, and answered after
-- LOGIN_DELAY (the caller sleeps: no thread is held).
function M:verify_password(pw, peer, what)
  local wait = self:auth_gate(peer)
  if wait then return nil, wait end
  local hash = self.admin_hash
  local ok = false
  if type(pw) == "string" and pw ~= "" and #pw <= 4096 and hash then
    self.pending[peer] = (self.pending[peer] or 0) + 1
    self.pending_all = self.pending_all + 1
    local r, err = self:scrypt_check(pw, hash)
    self.pending[peer] = self.pending[peer] - 1
    if self.pending[peer] <= 0 then self.pending[peer] = nil end
    self.pending_all = self.pending_all - 1
    if r == nil then self.log.error("console: password check: " .. tostring(err)) end
    ok = r == true and hash == self.admin_hash     -- the hash did not change meanwhile (SIGHUP)
  end
  if not ok then
    self:auth_failed(peer, what or "failed login")
    require("mailhook").sleep(M.LOGIN_DELAY)
  end
  return ok
end

-- Bearer token (scripts, Prometheus): "ok" when it matches admin_token_file's,
-- "wrong" (counted like a failed login), "limited", or nil when none is given.
function M:token_check(req)
  local auth = req:header("authorization")
  if not auth then return nil end
  local given = auth:match("^[Bb]earer%s+(%S+)%s*$")
  if not given then return nil end
  local peer = req:peer() or "?"
  if self:auth_gate(peer) then return "limited" end
  if self.token ~= nil and core.pwhash.equal(given, self.token) then return "ok" end
  self:auth_failed(peer, "wrong bearer token")
  return "wrong"
end

-- A POST from a browser must come from this console's own page: its Origin
-- (sent by every browser with a POST) names the console exactly, and its
-- Sec-Fetch-Site (sent by current browsers) says same-origin.  Clients that
-- send neither (curl, scripts) are judged by the CSRF token or the bearer token.
local function without_80(hostport) return (hostport:gsub(":80$", "")) end

function M:same_origin(req)
  local site = req:header("sec-fetch-site")
  if site and site ~= "" and site ~= "same-origin" then return false end
  local origin = req:header("origin")
  if not origin or origin == "" then return true end
  return without_80(origin:lower()) == "http://" .. without_80(tostring(req:header("host")):lower())
end

-- Whether a form post (POST /login) is the console's own page's.  A page of
-- another site can post a form (application/x-www-form-urlencoded) where it
-- cannot post JSON, so a form must prove where it comes from, not only not
-- say it comes from elsewhere: Sec-Fetch-Site: same-origin (with an Origin
-- that is the console's, or "null": Chromium sends null from a page whose
-- Referrer-Policy is no-referrer, as every console page's is), or, from a
-- browser that sends no Sec-Fetch-Site, an Origin naming the console.  Neither
-- (curl without -H Origin, a script): refused; scripts use POST /api/login.
function M:form_from_console(req)
  local site, origin = req:header("sec-fetch-site"), req:header("origin")
  local mine = origin ~= nil and origin ~= "" and
    without_80(origin:lower()) == "http://" .. without_80(tostring(req:header("host")):lower())
  if site and site ~= "" then
    return site == "same-origin" and (mine or origin == nil or origin == "" or origin == "null")
  end
  return mine
end

-- -------------------------------------------------------------- routing

local ROUTES = {}      -- "METHOD path" -> handler(self, req, ctx)
local FIELDS = {}      -- "POST path" -> the fields its body may hold (body_error)
local PUBLIC = {}      -- routes served without a session
local NO_CSRF = {}     -- POST routes without a session to carry a token (login)
local ALLOW = {}       -- path -> "GET, HEAD, POST" (for 405's Allow)

local function route(method, path, fn, opts)
  -- every POST route says what its body holds: one left out would take anything again
  assert(method ~= "POST" or (opts and opts.fields), "POST " .. path .. ": no fields declared")
  ROUTES[method .. " " .. path] = fn
  if opts and opts.fields then FIELDS[method .. " " .. path] = opts.fields end
  if opts and opts.public then PUBLIC[method .. " " .. path] = true end
  if opts and opts.no_csrf then NO_CSRF[method .. " " .. path] = true end
  local methods = {}
  for k in pairs(ROUTES) do
    local m, p = k:match("^(%S+) (.*)$")
    if p == path then methods[#methods + 1] = m; if m == "GET" then methods[#methods + 1] = "HEAD" end end
  end
  table.sort(methods)
  ALLOW[path] = table.concat(methods, ", ")
end

local NEEDS_LOGIN = "log in first"

function M:dispatch(req)
  local method, path = req:method(), req:path()
  -- DNS rebinding: Host must name this console (M:host_ok)
  local host = req:header("host")
  if not self:host_ok(host) then
    return self:fail(req, 421, "this console answers to " .. self.url .. " only (the request named " ..
                     (host and "another host" or "no host") .. ")")
  end
  local head = method == "HEAD"
  if head then method = "GET" end
  local key = method .. " " .. path
  local fn = ROUTES[key]
  -- the login form sent by the browser itself (JavaScript off, login.js not
  -- loaded yet): a login as a form post (M:form_login; it was a raw JSON 405,
  -- then a redirect to the login page that logged nobody in)
  -- the logins take no rate token (M.OPEN): their bodies are bounded before any
  -- Lua reads them (a password is at most 4096 bytes; 16 KiB hold it escaped),
  -- so a flood of 64 KiB bodies costs no more than one of 429s
  if (key == "POST /login" or key == "POST /api/login") and #(req:body() or "") > M.LOGIN_BODY_MAX then
    if key == "POST /login" then return self:send(req, 413, TYPES.txt, "the login form is too large\n") end
    return self:fail(req, 413, "a login body is at most " .. M.LOGIN_BODY_MAX .. " bytes")
  end
  if key == "POST /login" then return self:form_login(req) end
  if not fn then
    if path:match("^/assets/") and method == "GET" then return self:asset(req, path:sub(9)) end
    if ALLOW[path] or path:match("^/assets/") then
      return self:fail(req, 405, "method not allowed", nil, { Allow = ALLOW[path] or "GET, HEAD" })
    end
    return self:fail(req, 404, "no such page")
  end
  local ctx = { secrets = {} }
  if not PUBLIC[key] then
    local s, id = self:session_of(req)
    if s then ctx.session, ctx.session_id = s, id
    else
      local t = self:token_check(req)
      if t == "ok" then ctx.token = true
      elseif t == "limited" then
        return self:fail(req, 429, "too many failed attempts: wait a minute", nil, { ["Retry-After"] = "60" })
      elseif method == "GET" and not path:match("^/api/") and path ~= "/metrics" and not t then
        return self:send(req, 303, TYPES.txt, "log in first\n", { Location = "/login" })
      else
        return self:fail(req, 401, NEEDS_LOGIN, nil, { ["WWW-Authenticate"] = 'Bearer realm="mailhook console"' })
      end
    end
  end
  if method == "POST" then
    if not self:same_origin(req) then return self:fail(req, 403, "cross-site request refused (Origin)") end
    local cterr = M.json_type_error(req:header("content-type"))
    if cterr then return self:fail(req, 415, cterr) end
    if ctx.session and not NO_CSRF[key] then
      local given = req:header("x-csrf-token") or ""
      if not core.pwhash.equal(given, ctx.session.csrf) then
        return self:fail(req, 403, "missing or wrong CSRF token (reload the page; a script sends the " ..
                         "csrf its login answered in the header X-CSRF-Token)")
      end
    end
    local body = req:body() or ""
    local v, err = json.decode(body ~= "" and body or "{}")
    -- an object only: null decodes to a table too (json.null), and [] to an empty one
    if type(v) ~= "table" or v == json.null or json.is_array(v) then
      -- (where, never what: a key given twice is not quoted back; see the top of the file)
      return self:fail(req, 400, "bad JSON body: " .. tostring(err and tostring(err):gsub("duplicate key '.*'$",
                                                                                          "duplicate key") or
                                                                 "not an object (send {...})"))
    end
    local ferr, fkey = body_error(v, FIELDS[key])
    if ferr then return self:fail(req, 400, ferr, { key = fkey }) end
    ctx.body = v
    ctx.secrets = secrets_of(v)
  end
  ctx.head = head
  return fn(self, req, ctx)
end

-- Every request runs here, in its own task.  A handler that raises is logged
-- and answered 500 (never a hang, never the traceback).
function M:handle(req)
  local ok, err = xpcall(self.dispatch, debug.traceback, self, req)
  if not ok then
    local what = (tostring(req:method()) .. " " .. tostring(req:path())):gsub("%c", "?")
    self.log.error("console: " .. what .. ": " .. tostring(err))
    if req:alive() then pcall(self.fail, self, req, 500, "internal error (see the service's log)") end
  end
end

-- --------------------------------------------------------------- assets

-- A file of the share folder: a plain name with a known extension, a regular
-- file (a symbolic link, a FIFO or a device is never opened: a link could
-- point out of the folder), read once and kept until the next reload.
function M:asset(req, name)
  if not name:match("^[%w][%w%-_.]*%.(%w+)$") or name:find("..", 1, true) then
    return self:fail(req, 404, "no such file")
  end
  local ext = name:match("%.(%w+)$")
  if not TYPES[ext] then return self:fail(req, 404, "no such file") end
  local body = self.cache[name]
  if not body then
    body = core.fsutil.read(self.assets .. "/" .. name, { max = 4 * 1024 * 1024 })
    if not body then return self:fail(req, 404, "no such file") end
    self.cache[name] = body
  end
  return self:send(req, 200, TYPES[ext], body)
end

local function page(name)
  return function(self, req, ctx)
    return self:asset(req, name)
  end
end

route("GET", "/", page("index.html"))

-- What the login page says after a form login failed (POST /login sends the
-- browser back to /login?error=CODE): fixed texts, never the request's.
M.LOGIN_ERRORS = {
  wrong = "wrong password",
  limited = "too many failed logins: wait a minute, then try again",
  form = "the login form was not sent as expected (one field, password): reload the page and try again",
}

local function html_escape(s)
  return (s:gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }))
end

route("GET", "/login", function(self, req)
  if self:session_of(req) then return self:send(req, 303, TYPES.txt, "logged in\n", { Location = "/" }) end
  local code = parse_query(req:query()).error
  local msg = code == "nopassword" and M.NO_PASSWORD or M.LOGIN_ERRORS[code or ""]
  if not msg then return self:asset(req, "login.html") end
  -- the error written into the page (no script needed to show it): in its
  -- error line, else (a page a site edited) before </body>
  local body = self.cache["login.html"] or core.fsutil.read(self.assets .. "/login.html", { max = 4 * 1024 * 1024 })
  if not body then return self:fail(req, 404, "no such file") end
  self.cache["login.html"] = body
  local p = '<p class="error" role="alert">' .. html_escape(msg) .. "</p>"
  local n
  body, n = body:gsub('(<p id="login%-error"[^>]*>)(</p>)', function(a, b) return a .. html_escape(msg) .. b end, 1)
  if n == 0 then
    body, n = body:gsub("</body>", function() return p .. "\n</body>" end, 1)
    if n == 0 then body = body .. p end
  end
  return self:send(req, 200, TYPES.html, body)
end, { public = true })

-- --------------------------------------------------------------- login

M.NO_PASSWORD = "no admin password is set: on the server run `mailhook update admin_password=-` " ..
  "(it reads the password on stdin), then reload the service (SIGHUP)"

-- What the login page says before anyone types: whether a password can log in.
route("GET", "/api/login", function(self, req)
  return self:send_json(req, 200, { ok = true, password_set = self.admin_hash ~= nil,
    message = not self.admin_hash and M.NO_PASSWORD or nil })
end, { public = true })

local function session_cookie(id)
  return { "Set-Cookie", COOKIE .. "=" .. id .. "; Path=/; HttpOnly; SameSite=Strict" }
end

route("POST", "/api/login", function(self, req, ctx)
  local peer = req:peer() or "?"
  if not self.admin_hash then return self:fail(req, 401, M.NO_PASSWORD, { password_set = false }) end
  local ok, wait = self:verify_password(ctx.body.password, peer, "failed login")
  if ok == nil then
    return self:fail(req, 429, "too many failed logins: wait " .. wait .. " s", nil, { ["Retry-After"] = tostring(wait) })
  end
  if not ok then return self:fail(req, 401, "wrong password") end
  -- a fresh id, whatever the browser had: a session id planted before the
  -- login (session fixation) is ended, not promoted
  for _, old in ipairs(session_cookies(req)) do self:end_session(old) end
  local id, s = self:new_session(peer)
  self.log.info("console: login from " .. tostring(peer))
  return self:send_json(req, 200, { ok = true, csrf = s.csrf }, { session_cookie(id) })
end, { public = true, no_csrf = true, fields = { password = "string" } })

-- POST /login: the login form as the browser submits it itself (JavaScript
-- off, Enter before login.js ran): application/x-www-form-urlencoded holding
-- one field, password.  The same gate, delay, log line and session as POST
-- /api/login, answered with a redirect: 303 to / with the session cookie, or
-- back to /login?error=CODE, where the page says why (M.LOGIN_ERRORS).  Only
-- from the console's own page (M:form_from_console: 403 otherwise).
function M:form_login(req)
  local peer = req:peer() or "?"
  if not self:form_from_console(req) then
    return self:send(req, 403, TYPES.txt, "cross-site request refused (Origin)\n")
  end
  local function back(code, extra)
    local h = { Location = "/login?error=" .. code }
    for k, v in pairs(extra or {}) do h[k] = v end
    return self:send(req, 303, TYPES.txt, "not logged in: see /login\n", h)
  end
  if M.form_type_error(req:header("content-type")) then return back("form") end
  local fields, twice = parse_query(req:body() or "")
  for k in pairs(fields) do if k ~= "password" then twice = twice or k end end
  if twice or not fields.password then return back("form") end
  if not self.admin_hash then return back("nopassword") end
  local ok, wait = self:verify_password(fields.password, peer, "failed login")
  if ok == nil then return back("limited", { ["Retry-After"] = tostring(wait) }) end
  if not ok then return back("wrong") end
  for _, old in ipairs(session_cookies(req)) do self:end_session(old) end    -- as POST /api/login
  local id = self:new_session(peer)
  self.log.info("console: login from " .. tostring(peer) .. " (the login form, without JavaScript)")
  return self:send(req, 303, TYPES.txt, "logged in\n", { Location = "/", session_cookie(id) })
end

route("POST", "/api/logout", function(self, req, ctx)
  if ctx.session_id then self:end_session(ctx.session_id) end
  return self:send_json(req, 200, { ok = true },
    { { "Set-Cookie", COOKIE .. "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0" } })
end, { fields = {} })

route("GET", "/api/session", function(self, req, ctx)
  return self:send_json(req, 200, { ok = true, csrf = ctx.session and ctx.session.csrf or nil,
    version = core.version, token = ctx.token or nil,
    expires_in = ctx.session and math.floor(expires_in(ctx.session, core.now())) or nil })
end)

local function run_script(name, arg)
  local path = core.paths.scripts .. "/" .. name .. ".lua"
  local chunk, err = loadfile(path)
  if not chunk then return nil, "cannot load " .. path .. ": " .. tostring(err) end
  local ok, res = pcall(chunk, arg)
  if not ok then return nil, name .. ".lua raised: " .. tostring(res) end
  if type(res) ~= "table" then return nil, name .. ".lua did not return a result (exit status " .. tostring(res) .. ")" end
  return res
end

-- update(arg) -> result | nil, err: scripts/update.lua under the settings
-- lock, taken without waiting (the lock is a flock between processes: taken
-- blocking, a `mailhook update` stuck on a slow disk or a script's `flock` on
-- the folder froze the whole service -- no delivery, no console, no signal);
-- while another process holds it the request sleeps and tries again every
-- SETTINGS_LOCK_RETRY for SETTINGS_LOCK_WAIT seconds (the loop runs on), then
-- the result says locked: answered 503 by the caller.
local function update(log, arg)
  arg.nowait = true
  local deadline = core.now() + M.SETTINGS_LOCK_WAIT
  local said
  while true do
    local result, err = run_script("update", arg)
    if not (result and result.locked) or core.now() >= deadline then return result, err end
    if not said then
      said = true
      log.info("console: a save waits for the settings lock on " .. tostring(result.lock) ..
               ": another process holds it (at most " .. M.SETTINGS_LOCK_WAIT .. " s)")
    end
    require("mailhook").sleep(M.SETTINGS_LOCK_RETRY)
  end
end

-- The 503 for a Save that found the settings lock held SETTINGS_LOCK_WAIT seconds.
function M:fail_locked(req, result)
  local lock = tostring(result.lock)
  self.log.warn("console: a save waited " .. M.SETTINGS_LOCK_WAIT .. " s for the settings lock on " .. lock ..
                " and gave up: another process holds it")
  return self:fail(req, 503, "not saved: the settings lock (a flock on the folder " .. lock .. ") has been held by " ..
    "another process for " .. M.SETTINGS_LOCK_WAIT .. " s: a `mailhook update` still running, or a script or editor " ..
    "wrapper holding flock on that folder (see `fuser -v " .. lock .. "` or /proc/locks); nothing was changed: " ..
    "try again once it is done", nil, { ["Retry-After"] = "5" })
end

-- POST /api/password {current, new}: the console's own password.  The current
-- one is checked (through the same gate as a login); the new one is stored as
-- `mailhook update admin_password=-` stores it; every session ends, and this
-- browser gets a new one.
route("POST", "/api/password", function(self, req, ctx)
  local peer = req:peer() or "?"
  local cur, new = ctx.body.current, ctx.body.new
  if type(new) ~= "string" or utf8.len(new) == nil or utf8.len(new) < M.PASSWORD_MIN then
    return self:fail(req, 422, "the new password needs " .. M.PASSWORD_MIN .. " characters or more", { key = "new" })
  end
  if #new > 1024 then return self:fail(req, 422, "the new password is over 1024 bytes", { key = "new" }) end
  if new:find("[%z\1-\31\127]") then
    return self:fail(req, 422, "the new password must not contain control characters", { key = "new" })
  end
  if self.admin_hash then
    local ok, wait = self:verify_password(cur, peer, "wrong current password")
    if ok == nil then
      return self:fail(req, 429, "too many failed attempts: wait " .. wait .. " s", nil, { ["Retry-After"] = tostring(wait) })
    end
    if not ok then return self:fail(req, 403, "the current password is wrong", { key = "current" }) end
  end
  local result, serr = update(self.log, { changes = { admin_password = new } })
  if not result then return self:fail(req, 500, serr) end
  if result.locked then return self:fail_locked(req, result) end
  if not result.ok then return self:fail(req, 500, "not saved: " .. tostring(result.error)) end
  local cfg = require("mailhook.settings").load()
  if cfg then self:reload(cfg) end     -- a new hash: every session ends
  self:end_all_sessions()
  self.log.info("console: the admin password was changed from " .. tostring(peer) .. "; every session ended")
  local id, s = self:new_session(peer)
  return self:send_json(req, 200, { ok = true, csrf = s.csrf }, { session_cookie(id) })
end, { fields = { current = "string?", new = "string" } })

-- --------------------------------------------------------------- settings

-- What the form needs besides the values: the choices of each enumerated key
-- the console may change, taken from the settings' schema (docs/console.md).  A
-- list of its own here lacked cram-md5 (which update takes), from_rewrite and
-- log_level: a script or page offering `choices` could not pick them.
-- Made at the first request (the console loads mailhook.settings only then).
local FORM
local function form()
  if not FORM then
    local settings = require "mailhook.settings"
    FORM = {}
    for k in pairs(M.EDITABLE) do FORM[k] = settings.choices(k) end
  end
  return FORM
end

-- The keys the console may change, sorted (the form, and errors that list them).
local function editable_list()
  local l = {}
  for k in pairs(M.EDITABLE) do l[#l + 1] = k end
  table.sort(l)
  return l
end

-- settings.report without what the page has no need of and no business with:
-- where the file lives, the token file's path, the commands (they may hold a
-- secret inline); whether each is set instead.
local function public_report(r)
  r.path = nil
  local st = r.settings or {}
  for _, k in ipairs { "password_command", "oauth_token_command", "admin_token_file" } do
    r[k .. "_set"] = st[k] ~= nil
    st[k] = nil
  end
  r.editable = editable_list()
  r.destination = M.DESTINATION
  return r
end

-- The version of the settings a page shows: a hash (FNV-1a, 64 bits) of the
-- values of a report, whether a password is set included, the password never,
-- nor the commands (they may hold a secret inline, and a hash of a short
-- secret can be searched; the page cannot change them anyway).
-- A Save carries the version its page loaded; another tab's Save, or
-- `mailhook update`, in between makes it differ, and the Save is refused (409)
-- instead of silently putting back values its page never showed.
function M.version_of(report)
  local shown = {}
  for k, v in pairs(report.settings or {}) do
    if k ~= "password_command" and k ~= "oauth_token_command" then shown[k] = v end
  end
  local text = json.encode(shown) .. (report.password_set and "+pw" or "-pw")
  local h = -3750763034362895579          -- 0xcbf29ce484222325
  for i = 1, #text do h = (h ~ text:byte(i)) * 1099511628211 end
  return string.format("%016x", h)
end

route("GET", "/api/settings", function(self, req)
  local settings = require "mailhook.settings"
  local cfg, err = settings.load()
  if not cfg then return self:fail(req, 500, err) end
  local full = settings.report(cfg)
  local version = M.version_of(full)
  local r = public_report(full)
  r.ok, r.choices, r.version = true, form(), version
  return self:send_json(req, 200, r)
end)

-- Values from the form: strings, booleans and numbers only (what `update`
-- takes), of the keys the console may change.  nil, status, message, key.
local function changes_of(body)
  local c = body.changes
  if c == nil then return nil, 400, "changes: missing: send {\"changes\": {\"KEY\": VALUE, ...}}", "changes" end
  if type(c) ~= "table" or c == json.null or json.is_array(c) then
    return nil, 400, "changes: must be an object {\"KEY\": VALUE, ...} (got " .. json_kind(c) .. ")", "changes"
  end
  local settings = require "mailhook.settings"
  local known = {}
  for _, k in ipairs(settings.keys) do known[k] = true end
  local keys = {}
  for k in pairs(c) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)                      -- the same field named first, whatever the order of pairs
  local out = {}
  for _, k in ipairs(keys) do
    local v = c[k]
    if not known[k] then
      return nil, 422, "a key that is no setting (the console changes " .. table.concat(editable_list(), ", ") .. ")"
    end
    if not M.EDITABLE[k] then
      return nil, 422, k .. ": not changed from the console (it names a command, a file on the server, " ..
        "or the console's own access): use `mailhook update " .. k .. "=...` on the server", k
    end
    local t = type(v)
    if t ~= "string" and t ~= "boolean" and t ~= "number" then
      return nil, 400, k .. ": must be a string, a number or true/false (got " .. json_kind(v) ..
        "; \"\" unsets it)", k
    end
    out[k] = v
  end
  return out
end

-- fn(...), settings' error messages saying "that value" where they quoted
-- the value (no answer quotes the request: see the top of this file).
local function unquoted(fn, ...)
  local settings = require "mailhook.settings"
  local was = settings.quote_values      -- (nested: a Save's guard previews too)
  settings.quote_values = false
  local r = table.pack(pcall(fn, ...))
  settings.quote_values = was
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

local function same(a, b)
  if type(a) == "table" and type(b) == "table" then return table.concat(a, ",") == table.concat(b, ",") end
  return a == b
end

-- The stored password goes only where it went when it was saved: a change of
-- where (or how safely) it is sent, with credentials kept and no password typed
-- in the same change, is refused.  For an Update (save) that holds whatever
-- auth says: the password saved stays bound to the destination saved, so it
-- cannot be moved in steps (auth off, server changed, auth on again: before,
-- three requests sent it to any server).  A Test saves nothing and sends the
-- credentials only while auth is on.  true | nil, message, key.
function M:credentials_guard(changes, save)
  if type(changes.password) == "string" and changes.password ~= "" then return true end
  local settings = require "mailhook.settings"
  local cur = settings.load()
  local new = unquoted(settings.preview, changes)
  if not cur or not new then return true end                    -- invalid: validation says why
  if not save and not new.auth then return true end             -- a Test without AUTH sends none
  local kept = settings.stored_password(new) or new.password_command or new.oauth_token_command
  if not kept then return true end                              -- nothing secret would travel
  local changed = {}
  for _, k in ipairs(M.DESTINATION) do
    -- tls_required's default follows auth (true when on): a change of auth
    -- alone moves it, never the destination, and turns it on with auth.
    -- auth_mechanism unset is auto: "auto" saved over it changes nothing.
    local a, b = cur[k], new[k]
    if k == "auth_mechanism" then a, b = a or "auto", b or "auto" end
    if not same(a, b) and (k ~= "tls_required" or changes[k] ~= nil) then
      changed[#changed + 1] = k
    end
  end
  if #changed == 0 then return true end
  if new.password_command or new.oauth_token_command then
    return nil, changed[1] .. ": the credentials come from password_command or oauth_token_command: change " ..
      table.concat(changed, ", ") .. " with `mailhook update` on the server", changed[1]
  end
  return nil, "password: " .. table.concat(changed, ", ") .. " changed: type the password again, or remove " ..
    "it (the stored password is only sent to the server it was saved for)", "password"
end

-- The version check and the credentials check run inside the settings update's
-- own lock (settings.update's guard), not before it: checked first, written
-- after, two Saves of the same version both passed (and so did a Save racing a
-- `mailhook update`), the later one silently undoing what the earlier saved.
-- A Save without version (a script: `curl -d '{"changes": {...}}'`) is not
-- checked: it applies its keys to whatever is saved; its answer carries the
-- version it wrote, for the next Save to send (docs/console.md).
route("POST", "/api/settings", function(self, req, ctx)
  local base = ctx.body.version
  if base == json.null then base = nil end     -- a page with no settings loaded sends null: as absent
  if base ~= nil and (type(base) ~= "string" or not base:match("^%x+$") or #base ~= 16) then
    return self:fail(req, 400, "version: must be the \"version\" string (16 hex digits) that GET /api/settings " ..
      "or the last Save answered, or left out (then the Save is not checked against other changes); got " ..
      json_kind(base), { key = "version" })
  end
  local changes, st, err, key = changes_of(ctx.body)
  if not changes then return self:fail(req, st, err, { key = key }) end
  if next(changes) == nil then return self:fail(req, 400, "changes: nothing to save (an empty object)", { key = "changes" }) end
  local settings = require "mailhook.settings"
  local conflict, refused
  local function guard(path)                   -- under the lock; must not yield (nor sleep)
    if base then
      -- the settings this page was shown must still be the saved ones
      local cfg, lerr = settings.load(path)
      if not cfg then refused = { 500, lerr }; return nil, lerr end
      local full = settings.report(cfg)
      local now = M.version_of(full)
      if base ~= now then
        conflict = { full = full, now = now }
        return nil, "conflict", { conflict = true }
      end
    end
    local gok, gerr, gkey = self:credentials_guard(changes, true)
    if not gok then refused = { 422, gerr, gkey }; return nil, gerr, { key = gkey } end
    return true
  end
  local result, serr = unquoted(update, self.log, { changes = changes, guard = guard })
  if result and result.locked then return self:fail_locked(req, result) end
  if conflict then
    local cur = public_report(conflict.full)
    cur.ok, cur.choices, cur.version = true, form(), conflict.now
    self.log.warn("console: a save refused: the settings were changed elsewhere since its page loaded them")
    return self:send_json(req, 409, { ok = false, conflict = true, current = cur,
      error = "not saved: the settings were changed elsewhere (another browser tab, or `mailhook update` " ..
              "on the server) since this page loaded them; the page now shows the saved values and " ..
              "keeps what you typed: check them, then press Update again" }, nil, ctx.secrets)
  end
  if refused then return self:fail(req, refused[1], refused[2], { key = refused[3] }) end
  if not result then return self:fail(req, 500, serr) end
  if result.ok then
    result.version = M.version_of(result)
    local cfg = settings.load()
    if cfg then
      self.delivery:reload(cfg)          -- as SIGHUP does: the next message uses them
      self:reload(cfg)
    end
    local keys = {}
    for k in pairs(changes) do keys[#keys + 1] = k end
    table.sort(keys)
    self.log.info("console: settings saved (" .. table.concat(keys, ", ") .. ")")
    result = public_report(result)
    -- the keys this Save wrote, by name (the page names them; "password" for a
    -- password set or removed, never its value)
    result.saved = json.array(keys)
  end
  result.path = nil
  result.choices = form()
  return self:send_json(req, result.ok and 200 or 422, result, nil, ctx.secrets)
end, { fields = { changes = "any", version = "any" } })

-- Test: the values of the form (saved or not) through scripts/test.lua, each
-- stage sent as it passes (one JSON object a line), then the whole result.
route("POST", "/api/test", function(self, req, ctx)
  if self.testing then return self:fail(req, 409, "a test is already running") end
  local changes, st, err, key = changes_of(ctx.body)
  if not changes then return self:fail(req, st, err, { key = key }) end
  local to = ctx.body.to
  if to == json.null or to == "" then to = nil end      -- the page sends null: no test message
  if to ~= nil and type(to) ~= "string" then
    return self:fail(req, 400, "to: must be an address as a string, or null for no test message (got " ..
                     json_kind(to) .. ")", { key = "test_to" })
  end
  if to then
    local valid, why = core.msg.valid_address(to)
    if not valid or to:find("[%z\1-\31\127]") then
      -- not quoted (no answer quotes the request: M:scrub); the page shows it beside the field
      return self:fail(req, 422, "test_to: not an address a test message can go to: " ..
                       tostring(why or "control characters"), { key = "test_to" })
    end
  end
  local settings = require "mailhook.settings"
  local cfg, perr, pinfo = unquoted(settings.preview, changes)
  local gok, gerr, gkey = true, nil, nil
  if cfg then gok, gerr, gkey = self:credentials_guard(changes) end
  local ok = req:stream(200, headers { { "Content-Type", "application/x-ndjson" } })
  if not ok then return end
  local function emit(ev) return req:write(json.encode(self:scrub(ev, ctx.secrets)) .. "\n") end
  if not cfg or not gok then
    emit { event = "result", result = { ok = false, failed_stage = "settings", error = cfg and gerr or perr,
                                        key = cfg and gkey or (pinfo and pinfo.key) } }
    return req:finish()
  end
  self.testing = true
  local result, rerr = nil, nil
  local ok2, e = pcall(function()
    result, rerr = run_script("test", { to = to, cfg = cfg, on_stage = function(name, report)
      local i = report.info or {}
      emit { event = "stage", name = name, at_ms = report.stage_at and report.stage_at[name],
        security = i.security, tls_version = i.tls_version, auth_mechanism = i.auth_mechanism }
    end })
  end)
  self.testing = false
  if not ok2 then rerr = tostring(e) end
  if not result then result = { ok = false, failed_stage = "test", error = rerr } end
  -- valid but risky values tested (tls_verify = false, ...): what `mailhook test` says on stderr
  result.warnings = json.array(require("mailhook.testreport").warnings(cfg))
  emit { event = "result", result = result }
  self.log.info("console: test " .. (result.ok and "passed" or ("failed at " .. tostring(result.failed_stage))))
  return req:finish()
end, { fields = { changes = "any", to = "any" } })   -- "To" for "to" ran a Test that sent nothing, and passed

-- --------------------------------------------------------------- queue

-- RFC 2047 encoded words, decoded for display: base64 ("B") and
-- quoted-printable-like ("Q") text in UTF-8, US-ASCII or ISO-8859-1 (turned
-- into UTF-8); a word in another charset, or malformed, stays as written.
local B64 = {}
for i = 1, 64 do B64[("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"):byte(i)] = i - 1 end

local function unbase64(t)
  local out, acc, bits = {}, 0, 0
  for i = 1, #t do
    local v = B64[t:byte(i)]
    if v then
      acc, bits = ((acc << 6) | v) & 0xFFFF, bits + 6
      if bits >= 8 then
        bits = bits - 8
        out[#out + 1] = string.char((acc >> bits) & 255)
      end
    elseif t:sub(i, i) ~= "=" then
      return nil
    end
  end
  return table.concat(out)
end

local function decode_word(charset, enc, text)
  charset = charset:lower():gsub("%*.*$", "")        -- RFC 2231 adds *LANGUAGE
  local bytes
  if enc == "b" or enc == "B" then
    bytes = unbase64(text)
  else
    bytes = text:gsub("_", " "):gsub("=(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  if not bytes then return nil end
  if charset == "utf-8" or charset == "us-ascii" then return bytes end
  if charset == "iso-8859-1" or charset == "latin1" then
    return (bytes:gsub("[\128-\255]", function(c) return utf8.char(c:byte()) end))
  end
  return nil
end

-- "=?UTF-8?B?...?= =?UTF-8?B?...?=" -> the text; the blanks between two
-- encoded words are not part of the text (RFC 2047 section 6.2).
function M.decode_words(v)
  local out, i, prev_end = {}, 1, nil
  while true do
    local a, b, cs, enc, text = v:find("=%?([^?%s]+)%?([BbQq])%?([^?%s]*)%?=", i)
    if not a then break end
    local gap = v:sub(i, a - 1)
    local word = decode_word(cs, enc, text)
    if not (prev_end and word and gap:match("^[ \t]*$")) then out[#out + 1] = gap end
    out[#out + 1] = word or v:sub(a, b)
    prev_end = word and b or nil
    i = b + 1
  end
  out[#out + 1] = v:sub(i)
  return table.concat(out)
end

-- The Subject as a person reads it: its folded lines joined (a long subject
-- is folded at 78 columns: mailhook's own enqueue does it) and its encoded
-- words decoded (any non-ASCII subject is one).  Before, the queue page showed
-- the first line only, and =?UTF-8?B?...?= for a subject like "Voicemail from
-- Jürgen".  The text reaches the page as text only (JSON, textContent).
function M.subject_of_head(head)
  head = head:match("^(.-)\r?\n\r?\n") or head
  local lines, found = {}, false
  for line in (head .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("\r$", "")
    if found then
      if not line:match("^[ \t]") then break end
      lines[#lines + 1] = line
    elseif line:match("^[Ss][Uu][Bb][Jj][Ee][Cc][Tt]:") then
      found = true
      lines[1] = line:match("^[^:]*:[ \t]*(.*)$")
    end
  end
  if not found then return nil end
  return M.decode_words(table.concat(lines))
end

local function subject_of(path, offset)
  local f = path and core.fsutil.open(path)   -- a spool file: never a FIFO
  if not f then return nil end
  if offset then f:seek("set", offset) end
  local head = f:read(16384) or ""
  f:close()
  return M.subject_of_head(head)
end

-- The server outage the spool's last deliverer met and has not seen end
-- (DIR/outage: the running service's, a flush's, a run before a restart's),
-- as `mailhook queue` shows it: {since, age, error ("stage: reason")} | nil.
local function outage_json(now, dir)
  local o = require("mailhook.queue").outage(dir)
  if not o then return nil end
  return { since = o.since, age = math.max(0, math.floor(now - o.since)), error = o.error }
end

-- waits: the outage's error, the reason of every waiting message (as the
-- `outage` of `mailhook queue --json`); the page shows it where the message
-- has no reply of its own (only the one tried got one).
local function entry_json(e, now, waits)
  return {
    outage = e.state ~= "failed" and waits or nil,
    id = e.id, state = e.state, size = e.size, queued_at = e.queued_at,
    age = e.queued_at and math.max(0, math.floor(now - e.queued_at)) or nil,
    attempts = e.attempts or 0, next_attempt = (e.next_attempt or 0) > 0 and e.next_attempt or nil,
    last_reply = e.last_reply, reason = e.reason, failed_at = e.failed_at,
    from = e.from, to = json.array(e.to or {}), done = json.array(e.done or {}),
    subject = subject_of(e.path, e.offset),
  }
end

-- A file of maildrop/ (mh.queue.maildrop's entry: local users' mail the
-- service has not adopted yet) as GET /api/queue's `maildrop` lists it: who
-- dropped it (uid, login), the sender adoption gives it, the recipients as
-- given, the items sendmail left out ({rcpt, reply}: kept escaped, as the
-- spool keeps them), its subject; or, for a file that is no drop, its reason.
-- name: what Retry and Remove take (the id is only its name's first part).
-- stuck: the reason the service's adoption left it there (mh.queue.maildrop's
-- `stuck`, for a drop readable here); for one unreadable here too (its owner
-- unseen from the service's user namespace, where the console runs as well)
-- the listing has only its own `reason`, so this process's adoption says
-- (left: mailhook.maildrop.stuck's, by name): the page showed such a file as
-- one waiting for the service, its reason under "Left out".
local function maildrop_json(e, now, left)
  local stuck = e.stuck or (e.reason and left[e.name])
  local refused = {}
  for i, r in ipairs(e.refused or {}) do refused[i] = { rcpt = r.rcpt, reply = r.reply } end
  return {
    id = e.id, name = e.name, state = "maildrop", size = e.size, queued_at = e.queued_at,
    age = (e.queued_at or 0) > 0 and math.max(0, math.floor(now - e.queued_at)) or nil,
    uid = e.uid and math.tointeger(e.uid) or nil, login = e.login, from = e.from, to = json.array(e.to or {}),
    refused = json.array(refused), reason = e.reason, stuck = stuck and (stuck:gsub("^maildrop: ", "")) or nil,
    subject = not e.reason and subject_of(e.path, e.offset) or nil,
  }
end

-- GET /api/queue's parameters: what each takes.  A value outside it is a 400
-- naming the parameter: limit=abc, limit=1.5, folder=../x, a misspelt name
-- fell back to the defaults silently (a script asking limit=500 read 50 and
-- took them for all; folder=faild listed pickup/).
local QUEUE_PARAMS = {
  folder = { "pickup or failed (pickup when left out)", function(v) return v == "pickup" or v == "failed" end },
  limit = { "a whole number 1-200 (" .. M.PAGE_SIZE .. " when left out)", function(v)
    local n = v:match("^%d+$") and #v <= 9 and tonumber(v)
    return n and n >= 1 and n <= 200 end },
  after = { "a message id (16 lowercase hex digits), or empty", function(v)
    return v == "" or require("mailhook.spool").is_id(v) end },
  before = { "a message id (16 lowercase hex digits), or empty", function(v)
    return v == "" or require("mailhook.spool").is_id(v) end },
  last = { "1 (the last page) or 0", function(v) return v == "1" or v == "0" end },
}

-- The query of GET /api/queue -> {folder, limit, after, before, last} | nil, message, key.
function M.queue_query(query)
  local q, twice = parse_query(query)
  if twice then
    if QUEUE_PARAMS[twice] then return nil, twice .. ": given twice (give it once)", twice end
    return nil, "a parameter given twice (give it once)"
  end
  for _, k in ipairs(sorted_keys(q)) do
    local p = QUEUE_PARAMS[k]
    if not p then
      return nil, "a parameter /api/queue does not take (it takes " ..
        table.concat(sorted_keys(QUEUE_PARAMS), ", ") .. ")"
    end
    if not p[2](q[k]) then
      return nil, k .. ": must be " .. p[1], k
    end
  end
  local after, before = q.after ~= "" and q.after or nil, q.before ~= "" and q.before or nil
  if after and before then return nil, "before: give after or before, not both", "before" end
  return { folder = q.folder or "pickup", limit = tonumber(q.limit) or M.PAGE_SIZE, after = after, before = before,
           last = q.last == "1" }
end

-- GET /api/queue?folder=pickup|failed[&after=ID|&before=ID][&last=1][&limit=N]:
-- one page, oldest first, read without loading the rest (core.admin.page reads
-- the folder's names only, on the thread pool; then the page's files).
route("GET", "/api/queue", function(self, req)
  local q, qerr, qkey = M.queue_query(req:query())
  if not q then return self:fail(req, 400, qerr, { key = qkey }) end
  local folder, limit = q.folder, q.limit
  local dir = self.spool_dir .. "/" .. folder         -- the service's spool (M.start), not core.paths'
  -- one folder read at a time (each reads every name of the folder on the thread pool)
  local ids, total, skipped, others = self:one_at_a_time("page", core.admin.page, dir, { after = q.after,
    before = q.before, last = q.last, limit = limit })
  -- no spool there (removed under the service, an embedder's spool_dir): said,
  -- never made (spool_object opens it read-only: mh.queue.spool)
  local sp, serr, sinfo = self:spool_object()
  if not sp and require("mailhook.spool").no_spool(sinfo) then
    return self:fail(req, 404, require("mailhook.queue").why(serr, sinfo, self.spool_dir))
  end
  if not ids then return self:fail(req, 500, total) end
  if not sp then return self:fail(req, 500, serr) end
  local now = core.now()
  local outage = outage_json(now, self.spool_dir)
  local entries = {}
  for _, id in ipairs(ids) do
    local e = sp:load(id)
    if e then entries[#entries + 1] = entry_json(e, now, outage and outage.error) end
  end
  local other = folder == "pickup" and "failed" or "pickup"
  local _, ototal = self:one_at_a_time("page", core.admin.page, self.spool_dir .. "/" .. other, { limit = 0 })
  local counts = { [folder] = total, [other] = ototal }
  -- what waits in maildrop/ (local users' mail, not adopted yet: `mailhook
  -- queue` and mailq list it too), with the waiting messages: a list of its
  -- own, so `entries`, `total` and the paging stay pickup/'s
  local maildrop, mtotal
  if folder == "pickup" then
    local ok, list, n = pcall(require("mailhook.queue").maildrop, self.spool_dir, M.MAILDROP_LIST)
    maildrop, mtotal = {}, ok and n or 0
    local left = {}
    for _, w in ipairs(require("mailhook.maildrop").stuck(1 << 30)) do left[w.name] = w.reason end
    for _, e in ipairs(ok and list or {}) do maildrop[#maildrop + 1] = maildrop_json(e, now, left) end
    maildrop = json.array(maildrop)
    if not ok then self.log.warn("console: maildrop/ cannot be listed: " .. tostring(list)) end
  end
  return self:send_json(req, 200, { ok = true, folder = folder, total = total, first = skipped + 1,
    last = skipped + #ids, entries = json.array(entries), drop_ins = others, counts = counts, outage = outage,
    maildrop = maildrop, maildrop_total = mtotal })
end)

-- The id of a retry or remove (a string: body_error checked): a message id,
-- or the name of a file in the spool's maildrop/ as GET /api/queue's
-- `maildrop` lists it (true second: mh.queue takes it as `mailhook queue rm
-- NAME` does); nil for anything else (never a path nor a guess).  Waits.
local function id_of(self, ctx)
  local id = ctx.body.id
  if require("mailhook.spool").is_id(id) then return id end
  if not require("mailhook.queue").check_id(id) then return nil end
  local names = core.maildrop.list(self.spool_dir)
  for _, name in ipairs(type(names) == "table" and names or {}) do
    if name == id then return id, true end
  end
  return nil
end

local BAD_ID = "id: not a message id (16 lowercase hex digits) nor a file of maildrop/, as GET /api/queue lists them"

route("POST", "/api/queue/retry", function(self, req, ctx)
  local id = id_of(self, ctx)
  if not id then return self:fail(req, 400, BAD_ID, { key = "id" }) end
  local ok, err, info = require("mailhook.queue").retry(id, self.spool_dir)
  -- a file of maildrop/ is not queued yet: it goes once adopted (as `mailhook
  -- queue retry NAME` says, exit 0): nothing is wrong, nothing to do
  if not ok and type(info) == "table" and info.code == "EMAILDROP" and not info.stuck then
    return self:send_json(req, 200, { ok = true, id = id, queued = false, maildrop = info.maildrop, note = err })
  end
  -- one this service has tried and cannot adopt: a retry changes nothing (409,
  -- the message saying why and the way out)
  if not ok and type(info) == "table" and info.stuck then return self:fail(req, 409, err) end
  if not ok then return self:fail(req, 404, err) end
  self.log.info("console: " .. id .. " queued for delivery (retry)")
  self.delivery:kick()
  return self:send_json(req, 200, { ok = true, id = id, queued = true })
end, { fields = { id = "string" } })

route("POST", "/api/queue/remove", function(self, req, ctx)
  local id = id_of(self, ctx)
  if not id then return self:fail(req, 400, BAD_ID, { key = "id" }) end
  local ok, err, info = require("mailhook.queue").remove(id, self.spool_dir)
  if not ok then return self:fail(req, 404, err) end
  local md = type(info) == "table" and info.maildrop or nil   -- a file of maildrop/, never adopted
  self.log.info("console: " .. (md and ("maildrop/" .. md .. " removed (never adopted: never queued, never sent)")
                                 or (id .. " removed")))
  return self:send_json(req, 200, { ok = true, id = id, maildrop = md })
end, { fields = { id = "string" } })

route("POST", "/api/queue/flush", function(self, req)
  self.log.info("console: flush requested")
  self.delivery:flush_request()
  return self:send_json(req, 200, { ok = true })
end, { fields = {} })

-- --------------------------------------------------------------- status

-- The status report, shared by every page and the SSE streams: computed again
-- when the deliverer changed something (at most 5 times a second), else once a
-- second (the queue may also change from outside: enqueues).  Without where
-- the settings and the spool live (the page needs neither).
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
  -- (its outage: SPOOL/outage, also one a flush met, or a run before a restart, as
  -- `mailhook queue` shows it: status.collect gives it, for `mailhook status` too)
  self.report_task = require("mailhook").spawn(function() return status.collect { tracker = self.status } end)
  local ok, r = self.report_task:wait()
  self.report_task = nil
  if not ok then error(r, 0) end
  r.spool = nil
  if type(r.settings) == "table" then r.settings.path = nil end
  self.report_cache, self.report_at = r, core.monotonic()
  return r
end

route("GET", "/api/status", function(self, req)
  local r = self:status_report()
  return self:send_json(req, 200, r)
end)

route("GET", "/api/log", function(self, req)
  return self:send_json(req, 200, { ok = true, lines = json.array(self:log_since(0)) })
end)

-- GET /api/events: server-sent events: `status` (the report, at most once a
-- second, when something changed) and `log` (each new line).  The stream ends
-- when its session does (logout, expiry, a password change): a last `logout`
-- event tells the page.
route("GET", "/api/events", function(self, req, ctx)
  if ctx.head then return self:send(req, 200, EVENT_STREAM, "") end
  local status = require "mailhook.status"
  local ok = req:stream(200, headers { { "Content-Type", EVENT_STREAM } })
  if not ok then return end
  local sub = { cond = status.cond(), status_dirty = true, log_seq = self.log_seq or 0, last_status = -1e9,
                session = ctx.session }
  self.subs[sub] = true
  local function event(name, value)
    return "event: " .. name .. "\ndata: " .. json.encode(self:scrub(value)) .. "\n\n"
  end
  local alive = req:write("retry: 3000\n\n")
  while alive and not self.stopping do
    if sub.session and not self:session_live(sub.session) then
      req:write(event("logout", { reason = "the session ended: log in again" }))
      break
    end
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
    if sub.session then wait = math.max(0.05, math.min(wait, expires_in(sub.session, core.now()) + 0.05)) end
    if not sub.cond:wait(wait) and not sub.status_dirty and #self:log_since(sub.log_seq) == 0
       and not (sub.session and not self:session_live(sub.session)) then
      alive = req:write(": keep-alive\n\n")
    end
  end
  self.subs[sub] = nil
  if req:alive() then req:finish() end
end)

-- --------------------------------------------------------------- metrics

-- A label value in the text format: backslash, double quote and line feed
-- escaped as \\, \" and \n.  (A line feed was written as a backslash and a
-- real line break: the sample split in two lines and the scrape failed.)
local LABEL_ESC = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }
function M.label_value(v) return (tostring(v):gsub('[\\"\n]', LABEL_ESC)) end

local function metric(out, name, kind, help, samples)
  out[#out + 1] = "# HELP " .. name .. " " .. help
  out[#out + 1] = "# TYPE " .. name .. " " .. kind
  for _, s in ipairs(samples) do
    local labels = ""
    if s[2] then
      local parts = {}
      for k, v in pairs(s[2]) do parts[#parts + 1] = k .. '="' .. M.label_value(v) .. '"' end
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
  -- the "flowing, but" cases (status.flowing's third value): mailhook_flowing
  -- is 0 there, as the exit status is 1, and an alert on it alone could not tell
  -- them from an outage (the console's amber "flowing, but" pill): 1 for the
  -- reason that holds, 0 for the other, both always there
  metric(out, "mailhook_attention", "gauge", "1 when mail is flowing but `mailhook status` exits 1 for this " ..
    "reason (old_settings: the settings file is not ready, the service delivers with the ones it loaded " ..
    "before; maildrop_stuck: a file of maildrop/ the service cannot adopt).",
    { { r.old_settings and 1 or 0, { reason = "old_settings" } },
      { r.maildrop_stuck and 1 or 0, { reason = "maildrop_stuck" } } })
  metric(out, "mailhook_settings_ready", "gauge", "1 when the settings allow delivery.",
    { { r.settings.ready and 1 or 0 } })
  metric(out, "mailhook_queue_messages", "gauge", "Messages waiting in pickup/.", { { q.pickup or 0 } })
  metric(out, "mailhook_queue_oldest_age_seconds", "gauge", "Age of the oldest message in pickup/ (0 when empty).",
    { { q.oldest_age or 0 } })
  metric(out, "mailhook_failed_messages", "gauge", "Dead letters in failed/.", { { q.failed or 0 } })
  -- the rest of the queue `status --json` reports (queue.drop_ins, maildrop, corrupt)
  metric(out, "mailhook_queue_drop_ins", "gauge", "Files dropped into pickup/ by other programs, not adopted yet.",
    { { q.drop_ins or 0 } })
  metric(out, "mailhook_maildrop_messages", "gauge", "Messages from local users waiting in maildrop/ for the service.",
    { { q.maildrop or 0 } })
  metric(out, "mailhook_corrupt_files", "gauge", "Files set aside in corrupt/ as unusable: never sent.",
    { { q.corrupt or 0 } })
  metric(out, "mailhook_delivered_total", "counter", "Messages delivered since the service started.",
    { { k.delivered or 0 } })
  metric(out, "mailhook_deferred_total", "counter", "Deferrals (4xx) since the service started.",
    { { k.deferred or 0 } })
  metric(out, "mailhook_failed_total", "counter", "Messages moved to failed/ since the service started.",
    { { k.failed or 0 } })
  metric(out, "mailhook_delivery_attempts_total", "counter", "Messages submitted to the server since start.",
    { { k.attempts or 0 } })
  -- partly delivered: failed, but some recipients got it (the counters of
  -- `status --json`, `mailhook flush`'s "partly delivered: N of M recipients")
  metric(out, "mailhook_partial_total", "counter",
    "Messages moved to failed/ since the service started that some of their recipients got (partly delivered; " ..
    "counted in mailhook_failed_total too).", { { k.partial or 0 } })
  metric(out, "mailhook_partial_delivered_total", "counter",
    "Recipients that got a partly delivered message, since the service started.", { { k.partial_delivered or 0 } })
  metric(out, "mailhook_partial_recipients_total", "counter",
    "Recipients of the partly delivered messages in all (those that got them and those refused), since the " ..
    "service started.", { { k.partial_recipients or 0 } })
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
  -- the connection limits at work (runtime/http.c): a rising evicted count is
  -- a client holding connections open without sending requests (slowloris),
  -- refused one opening them faster than they are ended, stalled one not reading
  metric(out, "mailhook_console_evicted_total", "counter",
    "Console connections waiting for a request, ended at the connection limit to make room for a new one.",
    { { st.evicted or 0 } })
  metric(out, "mailhook_console_refused_total", "counter",
    "Console connections closed at accept (over twice the connection limit).", { { st.refused or 0 } })
  metric(out, "mailhook_console_stalled_total", "counter",
    "Console connections dropped because the client stopped reading its answer.", { { st.stalled or 0 } })
  metric(out, "mailhook_console_malformed_total", "counter",
    "Console requests refused by the HTTP parser (400, 411, 413, 417, 431, 501, 505).", { { st.malformed or 0 } })
  metric(out, "mailhook_console_auth_failures_total", "counter",
    "Failed console logins and wrong bearer tokens.", { { self.auth_failures or 0 } })
  metric(out, "mailhook_console_connections", "gauge", "Open console connections.", { { st.connections } })
  return table.concat(out, "\n") .. "\n"
end

route("GET", "/metrics", function(self, req)
  return self:send(req, 200, "text/plain; version=0.0.4; charset=utf-8", self:scrub(self:metrics_text()))
end)

-- --------------------------------------------------------------- lifecycle

-- What no response may carry (M:scrub): the secrets, longest first, and where
-- the settings, the spool, the token file and the share folders live.
function M:build_redactions(cfg)
  local settings = require "mailhook.settings"
  local list = {}
  local function secret(s) if type(s) == "string" and s ~= "" then list[#list + 1] = { s, MASK } end end
  local function path(p, name) if type(p) == "string" and #p > 1 then list[#list + 1] = { p, name } end end
  secret(settings.stored_password and settings.stored_password(cfg))
  secret(self.token)
  secret(self.admin_hash)
  -- the file's path as resolved, never the value as written: `admin_token_file
  -- = token` masked the word "token" in every answer (the settings page's own
  -- field names, a log line's "token login disabled")
  path(token_path(cfg), "[admin_token_file]")
  path(core.paths.conf, "[settings file]")
  if core.paths.conf then path(settings.secrets_path(core.paths.conf), "[secrets file]") end
  path(core.paths.spool, "[spool]")
  path(self.spool_dir, "[spool]")
  path(core.paths.scripts, "[scripts]")
  path(self.assets, "[console folder]")
  table.sort(list, function(a, b) return #a[1] > #b[1] end)
  self.redact = list
end

function M:reload(cfg)
  local settings = require "mailhook.settings"
  local old_hash = self.admin_hash
  self.cfg = cfg
  self.admin_hash = settings.admin_hash(cfg)
  local old_token = self.token
  self.token = load_token(cfg, self.log)
  if old_token ~= self.token then           -- a script's scrapes are not starved either (new_session)
    if old_token then self.server:trust(old_token, false) end
    if self.token then self.server:trust(self.token, true) end
  end
  self.cache = {}                      -- pages edited on disk are read again
  self:build_redactions(cfg)
  if self.started and old_hash ~= self.admin_hash then
    local n = self:end_all_sessions()
    if n > 0 then self.log.info("console: the admin password changed: " .. n .. " session(s) ended") end
  end
  if cfg.admin_listen ~= self.listen then
    self.log.warn("console: admin_listen changed to " .. tostring(cfg.admin_listen) ..
                  "; restart the service to move the console (it stays on " .. self.url .. ")")
  end
  if not self.admin_hash and not self.token then
    self.log.warn("console: no admin_password and no admin_token_file: nobody can log in " ..
                  "(mailhook update admin_password=-, then SIGHUP)")
  end
end

-- The spool the console serves (/api/queue, its outage banner, Retry and
-- Remove): the one its service delivers, M.start's spool_dir (else its status
-- tracker's folder), never core.paths.spool as such: a service's spool need not
-- be the process's default (an embedder's, a program that set core.paths after;
-- before, those read the default spool while /api/status read the service's).
function M:spool_object()
  if self.spool then return self.spool end
  return require("mailhook.queue").spool(self.spool_dir)
end

-- start{cfg =, delivery =, status = tracker, spool = Spool, spool_dir = its folder, assets =}
--   -> console | nil, err
function M.start(opts)
  local mh = require "mailhook"
  local cfg = assert(opts.cfg)
  local host, port = split_listen(cfg.admin_listen)
  if not host then return nil, "admin_listen '" .. tostring(cfg.admin_listen) .. "' is not HOST:PORT" end
  local self = setmetatable({
    cfg = cfg, delivery = opts.delivery, status = opts.status, spool = opts.spool,
    spool_dir = opts.spool_dir or (opts.status and opts.status.dir) or core.paths.spool,
    log = mh.log, sessions = {}, subs = {}, cache = {}, listen = cfg.admin_listen,
    assets = opts.assets or M.assets_dir(), host = host, loopback = loopback(host),
    fails = {}, pending = {}, pending_all = 0, limit_said = {}, busy = {}, waiting = {},
  }, { __index = M })
  self.port = port
  local limits = {}
  for k, v in pairs(M.LIMITS) do limits[k] = v end
  limits.host, limits.port = host, port
  limits.trust_cookie = COOKIE
  limits.open = M.OPEN
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
  self.started = true
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
