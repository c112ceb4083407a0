-- mailhook.smtp — the SMTP client as the rest of mailhook uses it: the security
-- policy (tls = auto | implicit | starttls | none, never a silent downgrade),
-- failover over the server list, authentication (PLAIN, LOGIN, CRAM-MD5,
-- XOAUTH2, OAUTHBEARER), and the Test button (smtp.test).  The protocol itself is the C
-- client behind core.smtp (runtime/client.c: smtp.c's session on transport.c's
-- TCP and TLS; l_smtp.c).
--
--   local s, err, info = smtp.connect(cfg)          (waits)
--   s:info()  s:send{from=, to={...}, data= | path=, offset=}  (waits)
--   s:submit{...} (never waits)  s:result() (waits: the oldest submission's outcome)
--   s:check_sender(from [, rcpt]) (waits)  s:alive()  s:quit() (waits)  s:close()
--   smtp.test{to = nil [, cfg = cfg]} -> report | nil, err, info   (waits)
--
-- Expected failures return nil, message, info with info = {class, stage, smtp,
-- enhanced, text, connection, code, why}; why names a cause an administrator can
-- act on: "tls_version" (no TLS version in common), "tls_closed" (the server hung
-- up in the handshake) — both given by the C engine as codes, never found in
-- its words — and "requires_tls" (smtp.test: refused in plain text).
local core = require "mailhook.core"

local M = {}

-- ------------------------------------------------------------ secrets

-- Secrets come from mailhook.settings only (password_command, oauth_token_command,
-- the masked password of a loaded file): one place runs those commands.
-- (cfg: connect's normalised copy; origin, below: the table it was made from)
local origin
local function password(cfg) return require("mailhook.settings").password(origin[cfg] or cfg) end
-- the password written in the settings, never a command run for it: masked
-- in every reply from the greeting on (c:mask), where a server that got it in
-- an earlier session could quote it, into the log and `mailhook test`
local function stored_password(cfg) return require("mailhook.settings").stored_password(origin[cfg] or cfg) end
local function token(cfg) return require("mailhook.settings").token(origin[cfg] or cfg) end

-- ----------------------------------------------- servers seen with TLS

-- A small file in the spool: one "host:port mode" a line (mode implicit or
-- starttls) for every server once reached with TLS.  Plain text is refused for
-- those from then on, and auto goes straight to the mode that worked.
function M.tls_seen_path()
  return (core.paths and core.paths.spool or "./spool") .. "/state/tls-seen"
end

-- Read by the core's rule for spool files (a regular file, no link followed,
-- at most limits.config bytes): a FIFO or a link planted there is no list.
local function seen_set()
  local set = {}
  local text = core.fsutil.read(M.tls_seen_path())
  for line in (text or ""):gmatch("[^\n]+") do
    local key, mode = line:match("^(%S+)%s*(%S*)")
    if key then set[key] = mode ~= "" and mode or "starttls" end
  end
  return set
end

-- Written as every spool file: the spool opened (created 0700 with its state/
-- folder, its owner and modes checked), then the file replaced atomically and
-- durably (O_EXCL temporary file, fsync, rename, folder fsync), mode 0600.
local function mark_seen(key, mode)
  local set = seen_set()
  if set[key] == mode then return end
  set[key] = mode
  local path = M.tls_seen_path()
  local sp, err = core.spool.open(core.paths and core.paths.spool or "./spool")
  if sp then sp:close() end
  local keys = {}
  for k, m in pairs(set) do keys[#keys + 1] = k .. " " .. m end
  table.sort(keys)
  local ok, werr
  if sp then ok, werr = core.fsutil.write_atomic(path, table.concat(keys, "\n") .. "\n", 384) end  -- 0600
  if not ok then
    core.log("warn", "cannot record that " .. key .. " uses TLS in " .. path .. ": " .. tostring(werr or err))
  end
end

-- ------------------------------------- servers that greet late, in plain text

-- tls = auto listens greeting_wait (1.5 s) for a greeting, then takes silence for
-- implicit TLS and sends a ClientHello.  A plain server that delays its greeting
-- on purpose (Exim's connect ACL `delay`, anti-spam greet pauses) sees input
-- before its banner: Exim calls it a synchronisation error and hangs up, and
-- fail2ban may ban the client; mailhook then connects again in plain text.  So
-- such a server is remembered, apart from tls-seen (plain text is no TLS seen,
-- and tls-seen's "TLS or nothing" must not be weakened), in
-- SPOOL/state/greeting-late: one "host:port seconds" a line, the seconds its
-- greeting took.  Its later sessions wait for the greeting (up to the greeting
-- timeout) without probing.  A remembered server that then sends nothing at all
-- is forgotten (it may have become an implicit-TLS port): the next session
-- probes again.
function M.greeting_late_path()
  return (core.paths and core.paths.spool or "./spool") .. "/state/greeting-late"
end

local function late_set()
  local set = {}
  local text = core.fsutil.read(M.greeting_late_path())
  for line in (text or ""):gmatch("[^\n]+") do
    local key, secs = line:match("^(%S+)%s+([%d.]+)")
    if key then set[key] = tonumber(secs) end
  end
  return set
end

-- Writes set (key -> seconds, nil: removed) as tls-seen is written.
local function write_late(set, what)
  local path = M.greeting_late_path()
  local sp, err = core.spool.open(core.paths and core.paths.spool or "./spool")
  if sp then sp:close() end
  local lines = {}
  for k, v in pairs(set) do lines[#lines + 1] = string.format("%s %.1f", k, v) end
  table.sort(lines)
  local ok, werr
  if sp then ok, werr = core.fsutil.write_atomic(path, table.concat(lines, "\n") .. (#lines > 0 and "\n" or ""), 384) end
  if not ok then
    core.log("warn", "cannot record that " .. what .. " in " .. path .. ": " .. tostring(werr or err))
  end
end

local function mark_late(key, secs)
  local set = late_set()
  if set[key] and math.abs(set[key] - secs) < 0.5 then return end
  set[key] = secs
  write_late(set, key .. " greets late in plain text")
  core.log("info", string.format("smtp: %s greets in plain text after %.1f s (over greeting_wait): " ..
    "remembered in %s, later sessions wait for its greeting without a TLS probe", key, secs, M.greeting_late_path()))
end

local function forget_late(key)
  local set = late_set()
  if not set[key] then return end
  set[key] = nil
  write_late(set, key .. " no longer greets")
end

-- ----------------------------------------------------------- policy

local function servers_of(cfg)
  local s = cfg.server
  if type(s) == "string" then
    local list = {}
    for name in s:gmatch("[^,%s]+") do list[#list + 1] = name end
    return list
  end
  return s or {}
end

local function tls_required(cfg)
  if cfg.tls_required ~= nil then return cfg.tls_required end
  return cfg.auth == true
end

-- The engine mode for one server:
--   tls = implicit            -> implicit
--   tls = starttls            -> starttls (required)
--   tls = none                -> none (refused when tls_required)
--   tls = auto, port 465      -> implicit
--   tls = auto, seen before   -> the mode that worked then (implicit or starttls)
--   tls = auto, greets late   -> (late: greeting-late's set) no probe: "starttls" when
--                                tls_required, else "opportunistic"; the greeting is
--                                waited for up to the greeting timeout
--   tls = auto, otherwise     -> "auto": the engine waits briefly for a greeting;
--                                none means implicit TLS, a plain 220 means STARTTLS
--                                (required when tls_required, else when offered)
function M.mode_for(cfg, host, port, seen, late)
  local tls = cfg.tls or "auto"
  if tls == "implicit" or tls == "starttls" then return tls end
  if tls == "none" then
    if tls_required(cfg) then
      return nil, "tls = none but tls_required is true: refusing to send in plain text"
    end
    if seen[host .. ":" .. port] then
      return nil, host .. ":" .. port .. " was seen with TLS before; refusing plain text (tls = none)"
    end
    return "none"
  end
  local known = seen[host .. ":" .. port]
  if known == "implicit" or known == "starttls" then return known end
  if port == 465 then return "implicit" end
  if late and late[host .. ":" .. port] then
    return tls_required(cfg) and "starttls" or "opportunistic"
  end
  return "auto"
end

-- After an automatic implicit attempt met a plain greeting: STARTTLS instead.
local function fallback_mode(cfg, host, port, seen)
  if tls_required(cfg) or seen[host .. ":" .. port] then return "starttls" end
  return "opportunistic"
end

local function fail_info(code, stage, msg, extra)
  local info = { code = code, class = "transient", stage = stage }
  for k, v in pairs(extra or {}) do info[k] = v end
  return nil, msg, info
end

-- A TLS handshake that failed because client and server share no TLS version
-- (the engine's info.why = "tls_version": the server's protocol_version alert,
-- or a ServerHello below tls_min_version), said for an administrator; how it
-- showed (info.tls_reason, the engine's name for OpenSSL's reason) is kept in
-- parentheses.  Returns the message, or nil when info is about something else.
function M.version_refusal(info, min)
  if type(info) ~= "table" or info.why ~= "tls_version" then return nil end
  min = min or "1.2"
  local where = info.server and (info.server .. ":" .. tostring(info.port) .. ": ") or ""
  local need = min == "1.3" and "TLS 1.3" or ("TLS " .. min .. " or later")
  return string.format("%sno TLS version in common: mailhook requires %s (tls_min_version = %s) " ..
    "and the server offers only older versions (OpenSSL: %s)", where, need, min, info.tls_reason or "unknown")
end

-- ----------------------------------------------------------- auth

-- Order when auth_mechanism is not set (msmtp's rule): the OAuth mechanisms
-- when a token command is configured; else, under TLS, PLAIN (one round trip,
-- and the server may keep its passwords in any form: hashed, LDAP, PAM), then
-- LOGIN, then CRAM-MD5 (a server that offers only that); without TLS (only
-- with allow_plaintext_auth, below) CRAM-MD5 first, so that the password
-- itself never crosses in the clear when the server offers it.
-- offered: the mechanisms mailhook speaks that the server offers; caps: the
-- server's capability lines, to name the ones it offers that mailhook does not
-- speak (a server offering only DIGEST-MD5 read "the server offers: none")
M.MECHS = { "plain", "login", "cram-md5", "xoauth2", "oauthbearer" }
local ORDER_TLS = { "plain", "login", "cram-md5" }
local ORDER_CLEAR = { "cram-md5", "plain", "login" }
local function offered_text(offered, caps)
  local known, other = {}, {}
  for _, m in ipairs(offered) do known[m] = true end
  for _, c in ipairs(caps or {}) do
    local list = tostring(c):upper():match("^AUTH[%s,=](.*)$")
    for m in (list or ""):gmatch("[%w_-]+") do
      if not known[m:lower()] then other[#other + 1] = m; known[m:lower()] = true end
    end
  end
  local s = #offered > 0 and table.concat(offered, ", ") or "none"
  if #other > 0 then
    s = s .. "; also " .. table.concat(other, ", ") .. ", which mailhook does not speak (it speaks " ..
        table.concat(M.MECHS, ", ") .. ")"
  end
  return s
end

-- choose_mech(cfg, offered, caps, tls) -> mechanism | nil, why.  tls: the session
-- has TLS (implicit or after STARTTLS).
local function choose_mech(cfg, offered, caps, tls)
  local set = {}
  for _, m in ipairs(offered) do set[m] = true end
  local want = cfg.auth_mechanism
  if want and want ~= "" and want ~= "auto" then
    want = want:lower()
    if not set[want] then
      return nil, "the server does not offer AUTH " .. want:upper() .. " (it offers: " ..
        offered_text(offered, caps) .. ")"
    end
    return want
  end
  local order = tls and ORDER_TLS or ORDER_CLEAR
  if cfg.oauth_token_command then
    order = { "oauthbearer", "xoauth2", table.unpack(order) }
  end
  for _, m in ipairs(order) do if set[m] then return m end end
  return nil, "no usable authentication mechanism (the server offers: " .. offered_text(offered, caps) .. ")"
end
M.choose_mech = choose_mech

-- Credentials never cross in the clear by accident: a session without TLS gets
-- no AUTH unless allow_plaintext_auth = true, an opt-in of its own that no other
-- setting implies (tls = none, tls_required = false, a server without STARTTLS
-- all leave it false).  The refusal names the setting; nothing was sent.
M.PLAINTEXT_AUTH_REFUSED = "refusing to send the username and password in plain text: this session " ..
  "has no TLS (allow_plaintext_auth is false)"

local function offers_starttls(info)
  for _, cap in ipairs(info.capabilities or {}) do
    if cap:upper():match("^STARTTLS") then return true end
  end
  return false
end

local function authenticate(c, cfg, security)
  local info = c:info()
  if security == "none" and (tls_required(cfg) or cfg.allow_plaintext_auth ~= true) then
    local starttls = offers_starttls(info)
    return fail_info("EPLAINAUTH", "auth", M.PLAINTEXT_AUTH_REFUSED ..
      (starttls and "; the server offers STARTTLS: set tls = auto (or starttls)"
                or "; use TLS (tls = auto, starttls or implicit; port 465 or 587), or set " ..
                   "allow_plaintext_auth = true for a server that cannot do TLS"),
      { class = "permanent", why = "plaintext_auth", starttls_offered = starttls })
  end
  local mech, why = choose_mech(cfg, info.auth_offered or {}, info.capabilities, security ~= "none")
  if not mech then return fail_info("ENOAUTH", "auth", why, { class = "permanent" }) end
  local oauth = mech == "xoauth2" or mech == "oauthbearer"
  local secret, err
  if oauth then secret, err = token(cfg) else secret, err = password(cfg) end
  if not secret or secret == "" then
    -- said exactly: the commonest mistake after an upgrade or a fresh install
    local what = oauth and "auth = true but the OAuth token is empty" or "auth = true but the password is empty"
    return fail_info("EAUTH", "auth", what .. (err and (" (" .. err .. ")") or ""), { class = "permanent" })
  end
  local ok, msg, i = c:auth(mech, cfg.username or "", secret)
  if not ok and oauth and not i.connection and i.smtp and i.smtp >= 500 then
    -- an expired token: ask for a fresh one, once
    secret = token(cfg)
    if secret and secret ~= "" then ok, msg, i = c:auth(mech, cfg.username or "", secret) end
  end
  secret = nil
  if not ok then return nil, msg, i end
  return mech
end

-- ----------------------------------------------------------- session

local Session = {}
Session.__index = Session
-- (the deliverer calls a session's client directly for release and result, the
-- two pass-throughs below, once it knows the session is one of these, and
-- submits its spool entries through M.submit_entry)
M.Session = Session
local NONE = {}   -- (no options: core.check_options counts the arguments)

function Session:info(...)
  core.check_options("session:info", NONE, NONE, select("#", ...), 0)
  local i = self.c:info()
  i.auth_mechanism = self.auth_mechanism
  i.helo = self.helo
  i.greeting_late = self.greeting_late
  return i
end

local function rcpts_of(m)
  local to = m.to
  if type(to) == "string" then to = { to } end
  return to or {}
end

-- The RFC 3461 parameters of m (from_params = "RET=HDRS", to_params =
-- {[rcpt] = "NOTIFY=..."}, as a spool entry carries them) for its next send:
-- sent only where the server offers DSN.  Set for every message that has any
-- and for the one after it, so a message without any never inherits another's
-- (when neither had any there is nothing to set: the per-message call skipped).
local function set_dsn(s, m, rcpts)
  local c = s.c
  if not c.set_dsn then return end
  local has = m.from_params ~= nil or m.to_params ~= nil
  if not has and not s.dsn_set then return end
  s.dsn_set = has
  local list
  if m.to_params then
    list = {}
    for i, r in ipairs(rcpts) do list[i] = m.to_params[r] or false end
  end
  c:set_dsn(m.from_params, list)
end

-- The fields of a message as send and submit take it (m):
--   from, to (an address or a list), data (the message) or path (a spool file,
--   read from offset; size: its size as loaded, a file renamed over it is
--   refused), from_params, to_params (DSN parameters: see set_dsn).
-- Any other key raises, naming it: s:send{..., bodi = text} read no data and
-- said "data or path required", s:send{..., data = d, ofset = 5} sent from
-- byte 0.  The deliverer's spool entries carry many more fields (id, attempts,
-- done, refused, reason, ...: runtime/l_spool.c push_entry, and the
-- deliverer's own): it goes through submit_entry, below, never checked.
local MESSAGE = { "from", "to", "data", "path", "offset", "size", "from_params", "to_params" }

-- The types of m's fields (its keys the method checks first); raised at the
-- line of the method's caller.
local function check_message(fn, m)
  local function bad(name, want, v, value)
    -- (value: a number is shown, "got number" saying nothing of 5.5)
    local got = value and type(v) == "number" and tostring(v) or type(v)
    error(string.format("%s: %s must be %s (got %s)", fn, name, want, got), 4)   -- (bad, check_message, the method)
  end
  if type(m.from) ~= "string" then bad("from", "an address (a string; \"\" the null sender)", m.from) end
  local to = m.to
  if type(to) == "table" then
    for i, r in ipairs(to) do
      if type(r) ~= "string" then bad("to[" .. i .. "]", "an address (a string)", r) end
    end
  elseif type(to) ~= "string" then
    bad("to", "an address or a list of addresses", to)
  end
  -- (data: a string, or the handle of a spool entry loaded with {buffer = true})
  if m.data ~= nil and type(m.data) ~= "string" and type(m.data) ~= "userdata" then
    bad("data", "a string (the message)", m.data)
  end
  if m.path ~= nil and type(m.path) ~= "string" then bad("path", "a string (a file)", m.path) end
  if m.data == nil and m.path == nil then error(fn .. ": data or path required", 3) end
  -- (a whole number: 5.0, from JSON or a division, is 5, as the engine takes it)
  local function whole(v) return type(v) == "number" and math.tointeger(v) ~= nil end
  if m.offset ~= nil and not whole(m.offset) then bad("offset", "a whole number", m.offset, true) end
  if m.size ~= nil and not whole(m.size) then bad("size", "a whole number", m.size, true) end
  if m.from_params ~= nil and type(m.from_params) ~= "string" then bad("from_params", "a string", m.from_params) end
  if m.to_params ~= nil and type(m.to_params) ~= "table" then
    bad("to_params", "a table {[rcpt] = parameters}", m.to_params)
  end
end

-- submit_entry(s, e) -> as submit: e a message or a spool entry (whatever
-- fields it carries; nothing checked).  Never waits.  For the deliverer
-- (delivery.lua, a real session's), not part of the API: a Lua script calls
-- s:submit, which checks its table.
local function submit_entry(self, m)
  local rcpts, data = m.to, m.data
  if type(rcpts) ~= "table" then rcpts = rcpts_of(m) end
  -- (set_dsn is skipped for the usual message without DSN parameters after another: per message)
  if (data or m.path) and (m.from_params or m.to_params or self.dsn_set) then set_dsn(self, m, rcpts) end
  if data then return self.c:submit(m.from, rcpts, data) end
  if not m.path then error("session:submit: data or path required", 2) end
  -- (m.size: the file as loaded; another one renamed over its name is refused)
  local ok, err, info = self.c:submit_file(m.from, rcpts, m.path, m.offset or 0, m.size)
  if not ok and info then info.class = "transient" end
  return ok, err, info
end
M.submit_entry = submit_entry

-- send{from=, to={...}, data=} or {path=, offset=} (a spool file from offset,
-- read piece by piece as it is sent: memory does not grow with its size);
-- from_params, to_params: DSN parameters (see set_dsn).  Waits.
function Session:send(m, ...)
  if type(m) ~= "table" then
    error("session:send: message must be a table {from =, to =, data = | path =} (got " .. type(m) .. ")", 2)
  end
  core.check_options("session:send", m, MESSAGE, select("#", ...) + 1, 1)
  check_message("session:send", m)
  if m.data then
    set_dsn(self, m, rcpts_of(m))
    return self.c:send(m.from, rcpts_of(m), m.data)
  end
  local ok, err, info = submit_entry(self, m)
  if not ok then return nil, err, info end
  return self.c:result()
end

-- submit{...} (as send) -> true | nil, err, info (the message could not be
-- read: nothing was submitted).  Never waits.  With one message in flight a
-- second may be submitted, and its commands leave with the first one's final
-- dot (one round trip per message).  result() -> what send returns, for the
-- oldest submission (waits).  Settle that message before asking for the next
-- result (or calling release()): the next message's data leaves only then.
function Session:submit(m, ...)
  if type(m) ~= "table" then
    error("session:submit: message must be a table {from =, to =, data = | path =} (got " .. type(m) .. ")", 2)
  end
  core.check_options("session:submit", m, MESSAGE, select("#", ...) + 1, 1)
  check_message("session:submit", m)
  return submit_entry(self, m)
end

-- The other methods take what they say and no more: an argument too many
-- raises, naming the method (s:quit(true), s:result(1) were ignored).  Each
-- passes its arguments on to the engine's method of the same name.
for name, max in pairs { result = 0, release = 0, pending = 0, alive = 0, quit = 0, close = 0,
                         check_sender = 2 } do
  local label = "session:" .. name
  Session[name] = function(self, ...)
    core.check_options(label, NONE, NONE, select("#", ...), max)
    local c = self.c
    return c[name](c, ...)
  end
end
-- (a to-be-closed variable's __close gets the error too: not an argument)
function Session:__close() return self.c:close() end
function Session:__tostring() return "mailhook.smtp session " .. tostring(self.c) end

-- A stage of smtp.test passed: listed in report.stages, its time (ms since the
-- test began) in report.stage_at, and told to report.on_stage(name, report) when
-- a caller follows the test as it goes (the console shows each stage at once).
local function passed(report, name)
  if not report.stages then return end          -- not a test (delivery's sessions)
  report.stages[#report.stages + 1] = name
  report.stage_at[name] = math.floor((core.monotonic() - report.t0) * 1000 + 0.5)
  if report.on_stage then
    local ok, err = pcall(report.on_stage, name, report)
    if not ok then core.log("warn", "smtp.test: on_stage: " .. tostring(err)) end
  end
end

-- helo(cfg) -> the name EHLO gives.  helo_name when the settings set it;
-- its default, the host name, fully qualified when it is short (Debian's
-- /etc/hostname holds "pbx01", /etc/hosts its full name): RFC 5321 4.1.1.1
-- wants a domain, and Postfix's common reject_non_fqdn_helo_hostname refused
-- every message of a short one for good (504 5.5.2 ... need fully-qualified
-- hostname).  The resolver's canonical name (AI_CANONNAME: /etc/hosts first),
-- else NAME.localdomain as Postfix's own client does.  Once per process, in
-- the task that connects (intake never asks the resolver).
local qualified
function M.helo(cfg)
  local h = cfg.helo_name
  local host = core.fsutil.hostname()
  if not h or h:find(".", 1, true) or h:sub(1, 1) == "[" or h ~= host then return h end
  if not qualified then
    local ok, r = pcall(core.resolve, host)
    local canon = ok and type(r) == "table" and r.canonical
    qualified = (type(canon) == "string" and canon:find("%.") and canon:match("^[%w.-]+$")) and canon:lower()
                or (host .. ".localdomain")
  end
  return qualified
end

-- ------------------------------------------------------- the cfg table

-- The keys a cfg given to connect or test may hold: every setting
-- (mh.settings.keys: a table of settings.load, preview or mh.settings.get,
-- its masked password too) and CFG_ONLY, the engine's keys no settings file
-- sets.  Those are all a caller adds (grep of lua/, scripts/, tests/, bench/,
-- examples/): greeting_wait (tls = auto: seconds a plain greeting may take,
-- 1.5; tests shorten it).  Any other key raises, naming it with the closest
-- known one (or listing them all): {sever = ...} connected to no server and
-- said "no server is set", {prot = 587} went to port 25.
local CFG_ONLY = { "greeting_wait" }
M.CFG_ONLY = CFG_ONLY
local cfg_names, cfg_known   -- (built at the first check: settings loaded then)

-- Each value is read by the settings' own parser for its key
-- (settings.parse_value), so a cfg takes exactly what the settings file and
-- `mailhook update` take, as they take it: port = "587", auth = "yes",
-- connect_timeout = "30s", server = "a.example, b.example" (a rule copies
-- values from the settings file, an event's KEY=VALUE, a form: strings), and
-- refuses the rest with update's words ("cfg.port: must be a port number
-- 1-65535 (got 'abc')"; port = "587" was refused, tls = true read as auto).
-- "" is "not set", as in the file.  Three values pass as they are, being what
-- the settings give: helo_name the host name (load's default, never parsed),
-- a masked password or admin_password (get's).  tls_ca_file is a string
-- here: a file missing now is the TLS stage's failure, returned, not raised
-- (the service's connect would raise on a file removed after its load).
-- greeting_wait (no setting) is a duration up to the engine's year.
local GREETING_WAIT = { "greeting_wait", "duration", 1.5 }
local CA_FILE = { "tls_ca_file", "string" }

-- The cfg a normalised copy was made from: its password and token are
-- settings.password/token of that table (a loaded cfg's are private to it).
origin = setmetatable({}, { __mode = "k" })

-- check_cfg(fn, cfg, level) -> cfg normalised (a new table; settings.password
-- of it is the given cfg's): raises at `level` (the caller of connect or test)
-- on a key cfg may not hold or a value its setting does not take; fn names
-- the function ("mh.smtp.connect", "mh.smtp.test").
local function check_cfg(fn, cfg, level)
  level = level + 1
  local settings = require "mailhook.settings"
  if not cfg_known then
    cfg_names, cfg_known = {}, {}
    for _, k in ipairs(settings.keys) do cfg_names[#cfg_names + 1] = k end
    for _, k in ipairs(CFG_ONLY) do cfg_names[#cfg_names + 1] = k end
    for _, k in ipairs(cfg_names) do cfg_known[k] = true end
    GREETING_WAIT[4] = settings.SMTP_WAIT_MAX
  end
  for k in pairs(cfg) do
    if not cfg_known[k] then
      local shown = type(k) == "string" and ("'" .. k .. "'") or ("[" .. tostring(k) .. "]")
      local near = type(k) == "string" and settings.near_key(k, cfg_names) or ""
      if near == "" then near = " (known: " .. table.concat(cfg_names, ", ") .. ")" end
      error(string.format("%s: unknown key %s in cfg%s", fn, shown, near), level)
    end
  end
  local out = {}
  for _, k in ipairs(cfg_names) do   -- in the settings' order: the first bad one named
    local v = cfg[k]
    if v ~= nil then
      local n, why
      if k == "password" and v ~= settings.MASK and v ~= "" then
        -- a hand-built cfg's password was taken and then never used to log in (the
        -- login read "the password is empty"); the value is never quoted
        error(string.format("%s: cfg.password: a cfg never holds the password: set it with `mailhook update " ..
                            "password=-` (or password_command) and pass mh.settings.load()'s cfg", fn), level)
      end
      if (k == "helo_name" and v == core.fsutil.hostname()) or
         ((k == "password" or k == "admin_password") and v == settings.MASK) then
        n = v
      else
        n, why = settings.parse_value(k, v, (k == "greeting_wait" and GREETING_WAIT) or
                                            (k == "tls_ca_file" and CA_FILE) or nil)
      end
      if why then error(string.format("%s: cfg.%s: %s", fn, k, why), level) end
      out[k] = n
    end
  end
  origin[out] = origin[cfg] or cfg
  return out
end
M.check_cfg = check_cfg

-- connect(cfg [, report [, limits]]) -> session | nil, err, info.  Waits: DNS, every
-- address of every server in order, TLS, EHLO, AUTH.  report (a table) receives
-- what was learned even on failure (tests and `mailhook test`); limits overrides
-- cfg's connect_timeout, command_timeout, data_timeout, session_deadline (test's bound).
local LIMITS = { "connect_timeout", "command_timeout", "data_timeout", "session_deadline" }
function M.connect(cfg, report, limits, ...)
  -- misuse raises, naming it (a string was read as a table with no server)
  if type(cfg) ~= "table" then
    error("mh.smtp.connect: expects the settings table (mh.settings.get() or settings.load()), got a " .. type(cfg), 2)
  end
  cfg = check_cfg("mh.smtp.connect", cfg, 2)
  if report ~= nil and type(report) ~= "table" then
    error("mh.smtp.connect: report must be a table (got " .. type(report) .. ")", 2)
  end
  if limits ~= nil and type(limits) ~= "table" then
    error("mh.smtp.connect: limits must be a table (got " .. type(limits) .. ")", 2)
  end
  core.check_options("mh.smtp.connect", limits or {}, LIMITS, select("#", ...) + 3, 3)
  report = report or {}
  local list = servers_of(cfg)
  if #list == 0 then
    return fail_info("EINVAL", "connect", "no server is set (mailhook update server=smtp.example.com)",
      { class = "permanent", why = "not_set" })   -- no server was asked: no hint about one
  end
  local seen = seen_set()
  local late = late_set()
  local helo = M.helo(cfg)
  local port = tonumber(cfg.port) or ((cfg.tls == "implicit") and 465 or 25)
  local last_err, last_info
  report.attempts = {}
  for _, host in ipairs(list) do
    local mode, why = M.mode_for(cfg, host, port, seen, late)
    local key = host .. ":" .. port
    local remembered = (cfg.tls or "auto") == "auto" and mode ~= "auto" and late[key] and not seen[key]
    if not mode then return fail_info("EDOWNGRADE", "tls", why, { class = "permanent" }) end
    local c, ok, err, info
    local function attempt()
      c = core.smtp.new {
      host = host, port = port, tls = mode, tls_required = tls_required(cfg), helo = helo,
      greeting_wait = cfg.greeting_wait,
      verify = cfg.tls_verify ~= false, ca_file = cfg.tls_ca_file, fingerprint = cfg.tls_fingerprint,
      min_version = cfg.tls_min_version and tostring(cfg.tls_min_version) or "1.2",
      connect_timeout = limits and limits.connect_timeout or cfg.connect_timeout,
      command_timeout = limits and limits.command_timeout or cfg.command_timeout,
      data_timeout = limits and limits.data_timeout or cfg.data_timeout,
      session_deadline = limits and limits.session_deadline or cfg.session_deadline,
      }
      local known = cfg.auth and stored_password(cfg)
      if known and known ~= "" then c:mask(cfg.username or "", known) end
      ok, err, info = c:open()
    end
    attempt()
    local probed = false
    if not ok and info.plain_smtp and (cfg.tls or "auto") == "auto" then
      c:close()
      mode = fallback_mode(cfg, host, port, seen)
      probed = true
      attempt()
    end
    local ci = c:info()
    -- a plain greeting later than greeting_wait: the probe cost a connection (and,
    -- with Exim, a synchronisation error); remembered so that it is not repeated
    if probed and ci.greeting_after then
      mark_late(key, ci.greeting_after)
      ci.greeting_late = "probed"
    elseif remembered then
      if ci.greeting_after then ci.greeting_late = "remembered"
      elseif not ok and info.code == "ETIMEDOUT" and info.waited == "greeting" then
        forget_late(key)   -- not one byte: perhaps an implicit-TLS port now; probe next time
      end
    end
    report.info = ci
    report.attempts[#report.attempts + 1] = { server = host, port = port, mode = mode, error = err }
    if ok then
      if ci.security ~= "none" then mark_seen(key, ci.security)
      elseif seen[key] then
        c:close()
        return fail_info("EDOWNGRADE", "tls", key .. " was seen with TLS before and now offers none; " ..
          "refusing plain text (a downgrade attack, or a server misconfiguration)")
      end
      local s = setmetatable({ c = c, server = host, helo = helo, greeting_late = ci.greeting_late }, Session)
      passed(report, "connect")
      if ci.security ~= "none" then passed(report, "tls") end
      if cfg.auth then
        local mech, aerr, ainfo = authenticate(c, cfg, ci.security)
        if not mech then
          report.info = c:info()
          report.info.greeting_late = ci.greeting_late
          c:quit()
          c:close()
          return nil, aerr, ainfo
        end
        s.auth_mechanism = mech
        if report.info then report.info.auth_mechanism = mech end
        passed(report, "auth")
      end
      return s
    end
    c:close()
    if info.stage == "tls" and seen[host .. ":" .. port] and info.code == "ENOTLS" then
      err = err .. " (" .. host .. ":" .. port .. " was seen with TLS before: a downgrade attack, " ..
            "or a server misconfiguration)"
      info.why = info.why or "downgrade"   -- mailhook test's hint: the tls-seen line
    end
    if info.why == "tls_version" or info.why == "tls_closed" then   -- codes from the engine
      info.tls_min_version = cfg.tls_min_version and tostring(cfg.tls_min_version) or "1.2"
      err = M.version_refusal(info, info.tls_min_version) or err   -- tls_closed: often a version
    end                                                              -- or cipher mismatch too
    last_err, last_info = err, info
    -- (a server that refuses at the greeting or EHLO: the next one may not)
    if info.class == "permanent" and not ({ dns = 1, connect = 1, greeting = 1, ehlo = 1, helo = 1 })[info.stage] then
      break
    end
    if #list > 1 then core.log("warn", "smtp: " .. err .. (host ~= list[#list] and "; trying the next server" or "")) end
  end
  return nil, last_err, last_info
end

-- ----------------------------------------------------------- test

-- The stages `mailhook test` names.
local TEST_STAGE = { dns = "dns", connect = "connect", greeting = "connect", ehlo = "connect", helo = "connect",
                     tls = "tls", auth = "auth", mail = "sender", rcpt = "recipient", data = "recipient",
                     quit = "connect" }

-- The message `mailhook test --to` sends, built by the core's message builder
-- (runtime/msg.c: its Date, its Message-ID), as every other message is.
local function test_message(cfg, to)
  local msg, err, info = require("mailhook.message")({ from = cfg.from, to = { to }, subject = "mailhook test message",
    text = "This is a test message sent by `mailhook test` from " .. (cfg.helo_name or "mailhook") ..
           ".\nIf you can read it, outgoing mail works.\n" })
  if not msg then
    -- refused before the server is asked: named by the address at fault
    info = info or {}
    info.stage = info.field == "from" and "mail" or "rcpt"
    return nil, err, info
  end
  return msg:bytes()
end

-- A session in plain text refused because the server wants TLS first (RFC 3207's
-- "530 Must issue a STARTTLS command first", or 5.7.x naming TLS or encryption):
-- the message that says so, or nil.  ci is the session's info, info the failure's.
-- A 530 about authentication (RFC 4954) is not this: the text must name TLS.
function M.requires_tls(ci, info)
  if not ci or ci.security ~= "none" or not info or not info.smtp or info.stage == "tls" then return nil end
  local text = tostring(info.text or "")
  local low = text:lower()
  local tlsish = low:find("tls", 1, true) or low:find("encrypt", 1, true) or low:find("ssl", 1, true)
  if not tlsish or not (info.smtp == 530 or info.smtp == 538 or tostring(info.enhanced or ""):match("^5%.7%.")) then
    return nil
  end
  local offers = false
  for _, cap in ipairs(ci.capabilities or {}) do if cap:upper() == "STARTTLS" then offers = true end end
  local reply = tostring(info.smtp) .. " " .. text:gsub("\n", " ")   -- text starts with the enhanced code
  return "the server requires TLS before it accepts mail, and this session is in plain text " ..
    "(it answered: " .. reply .. ")" .. (offers and "; it offers STARTTLS" or "")
end

-- The Test button answers within a short bound: every wait of `test` (DNS, the
-- connection, the greeting, a TLS handshake, each command's reply) is capped by
-- it, whatever the service's own (longer, RFC 5321) timeouts say.
M.TEST_TIMEOUT = 30

-- The timeouts a test runs with: cfg's, each at most `bound` seconds (given to
-- connect() apart from cfg, which stays the loaded table its password belongs to).
local function bounded(cfg, bound)
  local t = {}
  for _, k in ipairs { "connect_timeout", "command_timeout", "data_timeout", "session_deadline" } do
    local v = tonumber(cfg[k])
    t[k] = (v and v > 0 and v < bound) and v or bound
  end
  return t
end

-- What a timeout interrupted (info.waited, from the engine), in words, with how
-- long it was waited for: "127.0.0.1 port 2525: connected, but the server sent no
-- greeting (timed out after 30 s)".  nil when info is not a timeout the engine named.
local WAITED = {
  dns = "%s: no answer from DNS (timed out after %s)",
  connect = "%s: could not connect (timed out after %s)",
  greeting = "%s: connected, but the server sent no greeting (timed out after %s)",
  tls = "%s: connected, but the TLS handshake got no answer (timed out after %s)",
}
function M.waited_message(info, where, secs)
  if not info or info.code ~= "ETIMEDOUT" or not info.waited then return nil end
  local after = string.format("%d s", math.max(1, math.floor((secs or 0) + 0.5)))
  local fmt = WAITED[info.waited]
  local msg
  if fmt then
    msg = fmt:format(where, after)
    if info.waited == "greeting" and info.tls_probe then
      msg = msg .. "; nor did it answer a TLS handshake: not an SMTP server, or a stuck one"
    end
  else
    msg = string.format("%s: the server did not answer %s (timed out after %s)", where, info.waited, after)
  end
  return msg
end

-- test{to = nil [, cfg = cfg] [, timeout = seconds] [, on_stage = fn(name, report)]}
-- -> report | nil, err, info (info.report).  Waits, at most `timeout` (M.TEST_TIMEOUT,
-- 30 s) for each step.  report.stages lists the stages passed (connect, tls, auth,
-- sender, recipient) and report.stage_at their time in ms from the start; on_stage
-- is called as each one passes.
local TEST_OPTIONS = { "to", "cfg", "timeout", "on_stage" }
-- unset(cfg) -> nil | error, {key...}: the settings a test needs and cfg
-- leaves unset (server, from: a fresh install), named with the command that
-- sets them.  A settings problem, as an invalid file is (stage "settings"):
-- it was "FAILED at stage connect", a server's stage, for a server nobody named.
function M.unset(cfg)
  local keys, set = {}, {}
  if not servers_of(cfg)[1] then keys[#keys + 1], set[#set + 1] = "server", "server=smtp.example.com" end
  if cfg.from == nil or cfg.from == "" then keys[#keys + 1], set[#set + 1] = "from", "from=notify@example.com" end
  if #keys == 0 then return nil end
  return string.format("%s %s not set (mailhook update %s)", table.concat(keys, " and "),
                       #keys > 1 and "are" or "is", table.concat(set, " ")), keys
end

function M.test(opts, ...)
  -- misuse raises, naming it: mh.smtp.test("ops@example.com") used to index the
  -- string, find no `to`, and pass a test that sent nothing
  if opts ~= nil and type(opts) ~= "table" then
    error("mh.smtp.test: expects a table {to =, cfg =, timeout =} or nothing, got a " .. type(opts), 2)
  end
  -- a misspelt option ({timout = 5}, {hots = ...}) or an extra argument was
  -- silently ignored: the test ran with the default instead
  core.check_options("mh.smtp.test", opts or {}, TEST_OPTIONS, select("#", ...) + 1, 1)
  opts = opts or {}
  local cfg = opts.cfg
  if cfg ~= nil and type(cfg) ~= "table" then   -- {cfg = 5}: "attempt to index a number value" deep inside
    error("mh.smtp.test: cfg must be a table (settings; got " .. type(cfg) .. ")", 2)
  end
  if cfg then cfg = check_cfg("mh.smtp.test", cfg, 2) end
  if opts.on_stage ~= nil and type(opts.on_stage) ~= "function" then
    error("mh.smtp.test: on_stage must be a function (got " .. type(opts.on_stage) .. ")", 2)
  end
  if not cfg then
    local err
    cfg, err = require("mailhook.settings").load()
    if not cfg then return fail_info("EINVAL", "connect", err, { class = "permanent" }) end
  end
  -- checked before anything connects: timeout = "abc" was the default, NaN no
  -- bound at all, and to = 5 failed only after the whole session
  if opts.to ~= nil and type(opts.to) ~= "string" then
    error("mh.smtp.test: to must be an address (a string), got a " .. type(opts.to), 2)
  end
  local bound = opts.timeout == nil and M.TEST_TIMEOUT or tonumber(opts.timeout)
  if not bound or not (bound > 0 and bound <= 86400) then
    error("mh.smtp.test: timeout must be seconds, more than 0 and at most 86400 (got " .. tostring(opts.timeout) .. ")", 2)
  end
  local limits = bounded(cfg, bound)
  local report = { from = cfg.from, to = opts.to, stages = {}, stage_at = {}, t0 = core.monotonic(),
                   on_stage = opts.on_stage, timeout = bound }
  local now = core.monotonic
  local step_started = now()
  local function failed(err, info)
    info = info or {}
    local where = report.info and report.info.address and report.info.address ~= "" and
      (report.info.address .. " port " .. tostring(report.info.port or cfg.port)) or
      (tostring(servers_of(cfg)[1] or "?") .. " port " .. tostring(cfg.port or "?"))
    local said = M.waited_message(info, where, now() - step_started)
    if said then
      err = said
      if info.waited == "greeting" or info.waited == "connect" then info.stage = "connect"
      elseif info.waited == "dns" then info.stage = "dns"
      elseif info.waited == "tls" or info.waited == "STARTTLS" or
             info.waited == "the TLS handshake after STARTTLS" then info.stage = "tls" end
    end
    info.stage = TEST_STAGE[info.stage] or info.stage or "connect"
    local clear = M.requires_tls(report.info, info)
    if clear then err, info.why = clear, "requires_tls" end
    report.failed_stage = info.stage
    report.error = err
    report.reply = info.smtp and (info.smtp .. " " .. (info.text or "")) or nil
    info.report = report
    return nil, err, info
  end
  local unset, keys = M.unset(cfg)
  if unset then   -- nothing to connect to, or nobody to send as: no stage begun
    return failed(unset, { stage = "settings", why = "not_set", class = "permanent", keys = keys })
  end
  local s, err, info = M.connect(cfg, report, limits)
  if not s then return failed(err, info) end
  step_started = now()
  report.info = s:info()
  local ok
  -- without --to, a RCPT too: to postmaster@ of the From's domain (RFC 5321
  -- 4.5.1: it exists wherever mail is taken), then RSET, no message.  Postfix
  -- decides its HELO, sender and relay checks at RCPT (smtpd_delay_reject):
  -- MAIL alone passed for sessions whose every message it refuses
  local probe = not opts.to and cfg.from:match("@([^@]+)$") or nil
  probe = probe and ("postmaster@" .. probe:gsub("%.$", "")) or nil
  ok, err, info = s:check_sender(cfg.from, probe)
  if not ok and probe and type(info) == "table" and info.stage == "rcpt" then
    report.from_accepted = true
    passed(report, "sender")
    err = "the server takes the From address, then refuses mail after it (" ..
          (require("mailhook.outcome").reply_text(info) or tostring(err)) .. " to RCPT TO:<" .. probe ..
          ">): it would refuse every message " ..
          "the same way"
    info.probe = probe
  end
  if not ok then s:quit(); s:close(); return failed(err, info) end
  report.probe = probe
  report.from_accepted = true
  passed(report, "sender")
  step_started = now()
  if opts.to then
    local r, data
    data, err, info = test_message(cfg, opts.to)
    -- RCPT TO without the root's dot of a domain written absolute (the
    -- console's Test recipient ops@example.com.); the message's To as typed
    if data then r, err, info = s:send { from = cfg.from, to = { core.msg.envelope_address(opts.to) }, data = data } end
    if not r then s:quit(); s:close(); return failed(err, info) end
    report.sent = true
    report.reply = r.reply.smtp .. " " .. r.reply.text
    passed(report, "recipient")
  end
  s:quit()
  s:close()
  return report
end

return M
