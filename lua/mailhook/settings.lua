-- mailhook.settings — the settings file (the seed's "Shared Email Parameters"):
-- load, validate, display with the password masked, and update atomically.
--
-- File format (mailhook.conf): one `key = value` a line; blank lines and lines
-- whose first non-blank character is `#` are comments (a `#` after a value is
-- part of the value).  A value may be written in double quotes (`\"` and `\\`
-- inside) to keep leading or trailing spaces.  Booleans are true/false
-- (yes/no, on/off also read); lists (server) are comma-separated; durations
-- are seconds, or a number with a suffix s, m, h or d (`30m`, `5d`, `0.5s`).
-- `key =` with nothing after it is the same as not setting the key.
--
-- A loaded `cfg` is a plain table of every key (defaults filled) without the
-- password: settings.password(cfg) gives it, so printing cfg (the REPL does)
-- cannot reveal it.  Nothing here ever puts a password in a message.
--
-- Secrets apart (docs/settings.md, "Secrets"): the keys of SECRET live in
-- their own file beside the settings (mailhook.conf -> mailhook.secrets), mode
-- 0600, read by the service alone; the settings file itself holds nothing
-- secret and is written 0644, so any local user's `sendmail` can read what
-- intake needs (enabled, server, from, default_domain, aliases...).  A legacy
-- settings file holding a password still works, and the next update moves the
-- password out of it.
local core = require "mailhook.core"
local duration = require "mailhook.duration"

local M = {}

local MASK = "********"

-- ------------------------------------------------------------------ schema
-- The keys in display order.  kind decides parsing; default may be a function
-- of the other (already parsed) values.
local SCHEMA = {
  { "enabled", "bool", false },
  { "from", "address" },
  { "server", "hosts" },
  { "port", "port", function(c) return c.tls == "implicit" and 465 or 25 end },
  { "tls", "enum", "auto", { "auto", "implicit", "starttls", "none" } },
  { "tls_required", "bool", function(c) return c.auth == true end },
  { "tls_min_version", "enum", "1.2", { "1.0", "1.1", "1.2", "1.3" } },
  { "tls_verify", "bool", true },
  { "tls_ca_file", "file" },
  { "tls_fingerprint", "fingerprint" },
  { "auth", "bool", false },
  -- the one way credentials ever cross without TLS, whatever tls/tls_required say:
  -- an opt-in of its own, never a consequence of another setting (a demo's tls = none)
  { "allow_plaintext_auth", "bool", false },
  { "auth_mechanism", "enum", nil, { "auto", "plain", "login", "xoauth2", "oauthbearer" } },
  { "username", "string" },
  { "password", "secret" },
  { "password_command", "string" },
  { "oauth_token_command", "string" },
  { "helo_name", "host", function() return core.fsutil.hostname() end },
  { "retry_interval", "duration", 30 },
  { "retry_max", "duration", 30 * 60 },
  { "max_queue_age", "duration", 5 * 86400 },
  { "connect_timeout", "duration", 30 },
  { "command_timeout", "duration", 300 },
  { "data_timeout", "duration", 600 },
  { "session_deadline", "duration", 900 },
  { "connections", "count", 1, { 1, 64 } },
  { "rules", "string", "./rules" },
  { "templates", "string", "./templates" },
  { "rule_timeout", "duration", 10 },
  { "rule_memory", "count", 128, { 8, 65536 } },
  { "log_level", "enum", "info", { "debug", "info", "warn", "error" } },
  -- where the log goes (docs/service.md): stderr, syslog(3), or the journal's
  -- native protocol with structured fields (the per-message lines' MAILHOOK_*)
  { "log", "enum", "stderr", { "stderr", "syslog", "journal" } },
  { "syslog_facility", "enum", "mail", core.logsink.facilities },
  -- the admin console (docs/console.md): off while admin_listen is unset
  { "admin_listen", "listen" },
  { "admin_password", "admin_hash" },
  { "admin_token_file", "string" },
  -- local addresses and the sender of what `sendmail` takes in (docs/sendmail.md):
  -- a bare name (root, www-data) is qualified with default_domain, or sent to the
  -- aliases file's addresses, or to admin_address; from_rewrite says what becomes
  -- of a sender the server may refuse (never, envelope, always)
  { "default_domain", "host", function(c) return c.from and c.from:match("@([^@]+)$") or nil end },
  { "admin_address", "addresses" },
  { "aliases", "string" },
  { "from_rewrite", "enum", "envelope", { "never", "envelope", "always" } },
}

-- Keys kept in the secrets file (never in the world-readable settings file).
-- password_command and oauth_token_command are not secrets themselves, but a
-- command often carries one (`echo hunter2`, a token in a URL): they go there too.
local SECRET = { password = true, password_command = true, oauth_token_command = true,
                 admin_password = true }

local BY_NAME, ORDER = {}, {}
M.keys = {}
for i, s in ipairs(SCHEMA) do
  BY_NAME[s[1]] = s
  ORDER[s[1]] = i
  M.keys[i] = s[1]
end

-- Kinds written to the file in their normalised form; the others (strings,
-- durations such as "1h") are written as the user gave them.
local NORMALISE = { bool = true, enum = true, hosts = true, port = true, count = true, fingerprint = true,
                    listen = true, addresses = true }

-- Private per-cfg data (password, file path), weak so cfg tables die normally.
local private = setmetatable({}, { __mode = "k" })
local warned = {}           -- files already reported as readable by others
local admin_hashes = setmetatable({}, { __mode = "k" })  -- cfg -> admin_password hash (kept out of cfg)

-- ----------------------------------------------------------------- parsers
-- Each parser takes a Lua value (a string from the file or the CLI, or a typed
-- value from Lua) and returns the normalised value, or nil and a reason.

local function text(v)
  if type(v) == "number" then v = tostring(v) end
  if type(v) ~= "string" then return nil, "must be a string (got " .. type(v) .. ")" end
  if v:find("[%z\1-\31\127]") then return nil, "must not contain control characters (CR, LF, NUL, ...)" end
  return v
end

local function valid_host(h)
  if h:match("^%[[%x:.]+%]$") or (h:find(":", 1, true) and h:match("^[%x:.]+$")) then
    return true                                         -- IPv6 (bracketed or not)
  end
  if #h > 253 then return false end
  for label in (h .. "."):gmatch("([^.]*)%.") do
    if label == "" or #label > 63 or not label:match("^[%w-]+$")
       or label:sub(1, 1) == "-" or label:sub(-1) == "-" then
      return false
    end
  end
  return true
end

local parse = {}

function parse.bool(v)
  if type(v) == "boolean" then return v end
  if type(v) == "string" then
    local l = v:lower()
    if l == "true" or l == "yes" or l == "on" then return true end
    if l == "false" or l == "no" or l == "off" then return false end
  end
  return nil, "must be true or false (got '" .. tostring(v) .. "')"
end

function parse.string(v) return text(v) end
parse.secret = parse.string

function parse.address(v)
  local s, err = text(v)
  if not s then return nil, err end
  local ok, why = core.msg.valid_address(s)
  if not ok then return nil, "'" .. s .. "' is not a valid address: " .. why end
  return s
end

-- A comma-separated list of addresses (admin_address = a@x, b@y), each validated.
function parse.addresses(v)
  local list = {}
  if type(v) == "table" then
    for i, a in ipairs(v) do list[i] = a end
  else
    local s, err = text(v)
    if not s then return nil, err end
    for a in (s .. ","):gmatch("([^,]*),") do list[#list + 1] = a:match("^%s*(.-)%s*$") end
  end
  if #list == 0 then return nil, "needs at least one address" end
  for i, a in ipairs(list) do
    if a == "" then return nil, "empty address in the list" end
    local ok, err = parse.address(a)
    if not ok then return nil, err end
    list[i] = ok
  end
  return list
end

function parse.host(v)
  local s, err = text(v)
  if not s then return nil, err end
  if not valid_host(s) then return nil, "'" .. s .. "' is not a valid host name or IP address" end
  return s
end

function parse.hosts(v)
  local list = {}
  if type(v) == "table" then
    for i, h in ipairs(v) do list[i] = h end
  else
    local s, err = text(v)
    if not s then return nil, err end
    for h in (s .. ","):gmatch("([^,]*),") do list[#list + 1] = h:match("^%s*(.-)%s*$") end
  end
  if #list == 0 then return nil, "needs at least one host name" end
  for i, h in ipairs(list) do
    local ok, err = parse.host(h)
    if not ok then return nil, h == "" and "empty host name in the list" or err end
    list[i] = ok
  end
  return list
end

local function integer(v, lo, hi, what)
  -- a string is decimal digits only (math.tointeger alone takes "0x19", "1e1")
  local n
  if type(v) == "string" then
    n = v:match("^%s*(%d+)%s*$")
    n = n and math.tointeger(tonumber(n))
  elseif type(v) == "number" then
    n = math.tointeger(v)
  end
  if not n or n < lo or n > hi then
    return nil, "must be " .. what .. " " .. lo .. "-" .. hi .. " (got '" .. tostring(v) .. "')"
  end
  return n
end

function parse.port(v) return integer(v, 1, 65535, "a port number") end

function parse.count(v, s) return integer(v, s[4][1], s[4][2], "a whole number") end

-- durations: one rule for the whole layer (mailhook.duration)
parse.duration = duration.parse

function parse.enum(v, s)
  if type(v) == "number" then v = string.format("%.1f", v) end  -- tls_min_version = 1.2
  if type(v) == "string" then
    local l = v:lower()
    for _, allowed in ipairs(s[4]) do
      if l == allowed then return l end
    end
  end
  return nil, "must be one of " .. table.concat(s[4], ", ") .. " (got '" .. tostring(v) .. "')"
end

-- A file someone named: a readable regular file (checked without a blocking
-- open: a FIFO or a device is refused, never opened), links followed.
function parse.file(v)
  local s, err = text(v)
  if not s then return nil, err end
  local ok, ferr = core.fsutil.check(s, { follow = true, max = core.fsutil.limits.ca })
  if not ok then return nil, "cannot read " .. tostring(ferr) end
  return s
end

-- Checks made when a value is saved (update), beyond parsing: what a load
-- only needs to find again.  tls_ca_file must hold a PEM certificate OpenSSL
-- can load (a folder, /dev/zero, a FIFO or a text file is refused now, not at
-- the first connection).  nil, reason when refused.
local SAVE_CHECK = {
  tls_ca_file = function(path)
    local n, err = core.fsutil.check_ca_file(path)
    if not n then return nil, (tostring(err):gsub("^tls_ca_file ", "")) end
    return true
  end,
}

function parse.fingerprint(v)
  local s, err = text(v)
  if not s then return nil, err end
  local hex = s:lower():gsub("^sha256:", ""):gsub(":", "")
  if not hex:match("^" .. ("%x"):rep(64) .. "$") then
    return nil, "must be a SHA-256 fingerprint: 64 hex digits, colons allowed"
  end
  return hex
end

-- The console's address: "PORT" (127.0.0.1), "HOST:PORT", "[V6]:PORT"; HOST a
-- numeric address or localhost.  Normalised to "HOST:PORT" ("[::1]:PORT").
function parse.listen(v)
  local s, err = text(v)
  if not s then return nil, err end
  local host, port = s:match("^%[([%x:.]+)%]:(%d+)$")
  if not host then host, port = s:match("^([%d.]+):(%d+)$") end
  if not host then host, port = s:match("^(localhost):(%d+)$") end
  if not host and s:match("^%d+$") then host, port = "127.0.0.1", s end
  local n = port and integer(port, 1, 65535, "a port number")
  if not host or not n then
    return nil, "must be PORT or ADDRESS:PORT with a numeric address, e.g. 127.0.0.1:8025 or [::1]:8025 (got '" .. s .. "')"
  end
  if host == "localhost" then host = "127.0.0.1" end
  if host:find(":", 1, true) then return "[" .. host .. "]:" .. n end
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  for _, x in ipairs { a, b, c, d } do
    if tonumber(x) > 255 then return nil, "'" .. host .. "' is not an IPv4 address" end
  end
  if not a then return nil, "'" .. host .. "' is not an IPv4 address" end
  return host .. ":" .. n
end

-- admin_password holds only a salted hash (core.pwhash): `mailhook update
-- admin_password=-` hashes what it reads on stdin; a password itself is refused.
function parse.admin_hash(v)
  local s, err = text(v)
  if not s then return nil, err end
  if not core.pwhash.valid(s) then
    return nil, "must be a password hash as `mailhook update admin_password=-` writes it " ..
      "(the password itself is never stored)"
  end
  return s
end

-- Parses value for key: normalised value | nil, reason.  "" means "not set".
local function parse_value(key, value)
  local s = BY_NAME[key]
  if not s then return nil, "unknown setting" end
  if value == "" or value == nil then return nil end
  -- before any parser, which may quote the value in its message: a lone CR
  -- (old Mac line ends) makes the rest of the file, password included, one value
  if type(value) == "string" and value:find("[%z\1-\31\127]") then
    return nil, "must not contain control characters (CR, LF, NUL, ...)"
  end
  return parse[s[2]](value, s)
end

-- --------------------------------------------------------------- validation

-- values: key -> raw value (string or typed).  Returns cfg, secret (the
-- password or nil) on success, or nil, bad key, reason [, the key whose line
-- to name when the bad key is missing from the file].  Checks each value, fills defaults, then the rules between keys.
-- hidden: the secrets file exists but this user cannot read it (a local user's
-- sendmail): the rules about the password then cannot be checked, and are not.
local function validate(values, hidden)
  local cfg = {}
  for key, raw in pairs(values) do
    if not BY_NAME[key] then return nil, key, "unknown setting" end
    local v, err = parse_value(key, raw)
    if err then return nil, key, err end
    cfg[key] = v
  end
  for _, s in ipairs(SCHEMA) do
    if cfg[s[1]] == nil and s[3] ~= nil then
      local d = s[3]
      if type(d) == "function" then d = d(cfg) end
      cfg[s[1]] = d
    end
  end
  if cfg.auth_mechanism == "auto" then cfg.auth_mechanism = nil end
  local secret = cfg.password
  cfg.password = nil
  admin_hashes[cfg], cfg.admin_password = cfg.admin_password, nil   -- settings.admin_hash(cfg)
  -- rules between keys
  if cfg.tls == "none" and cfg.tls_required then
    return nil, "tls", "tls = none but tls_required is true" ..
      (values.tls_required == nil and " (the default when auth is on)" or "") ..
      "; set tls_required=false to allow plain text" ..
      (cfg.auth and " (credentials then also need allow_plaintext_auth=true)" or "")
  end
  if secret and cfg.password_command then
    return nil, "password_command", "set either password or password_command, not both", "password"
  end
  if cfg.auth then
    if not cfg.username then return nil, "username", "auth is true but username is not set", "auth" end
    local m = cfg.auth_mechanism
    if (m == "xoauth2" or m == "oauthbearer") and not cfg.oauth_token_command then
      return nil, "oauth_token_command", "auth_mechanism " .. m .. " needs oauth_token_command",
        "auth_mechanism"
    end
    if (m == "plain" or m == "login" or not cfg.oauth_token_command)
       and not secret and not cfg.password_command and not hidden then
      return nil, "password", "auth is true but neither password nor password_command is set", "auth"
    end
  end
  return cfg, secret
end

-- ------------------------------------------------------------------- files

-- The settings file in use: -c FILE, $MAILHOOK_CONF or the default.
function M.path() return core.paths.conf end

-- Parses the text of a settings file into {lines = {raw...}, values = {key = raw},
-- where = {key = line number}} or nil, "FILE:LINE: message".
local function parse_text(textv, file, secrets)
  local doc = { lines = {}, values = {}, where = {} }
  local n = 0
  if textv == "" then return doc end   -- no lines (not one empty line: update would keep it)
  for line in (textv:gsub("\r?\n$", "") .. "\n"):gmatch("(.-)\r?\n") do
    n = n + 1
    doc.lines[n] = line
    local body = line:match("^%s*(.-)%s*$")
    if body ~= "" and body:sub(1, 1) ~= "#" then
      local key, value = body:match("^([%w_]+)%s*=%s*(.-)$")
      if not key then
        return nil, string.format("%s:%d: expected 'key = value'", file, n)
      end
      if not BY_NAME[key] then
        return nil, string.format("%s:%d: unknown setting '%s'", file, n, key)
      end
      if secrets and not SECRET[key] then
        return nil, string.format("%s:%d: '%s' does not belong in the secrets file (only the password " ..
                                  "and admin_password; the rest goes in the settings file)", file, n, key)
      end
      if doc.where[key] then
        return nil, string.format("%s:%d: '%s' set twice (first on line %d)", file, n, key, doc.where[key])
      end
      if value:sub(1, 1) == '"' then
        local inner = value:match('^"(.*)"$')
        if not inner or inner:gsub("\\.", ""):find('"', 1, true) or inner:gsub("\\.", ""):find("\\", 1, true) then
          return nil, string.format('%s:%d: %s: unterminated or badly escaped "quoted value"', file, n, key)
        end
        value = inner:gsub("\\(.)", "%1")
      end
      doc.values[key] = value
      doc.where[key] = n
    end
  end
  return doc
end

-- Reads and parses path; a missing file is an empty document (missing = true).
-- Read by the core's rule for foreign files: a regular file (links followed),
-- at most limits.config bytes; a FIFO or a device is refused, never opened.
-- secrets: the secrets file, which this user may not be allowed to read (a
-- local user's sendmail): then a document marked hidden, not an error.
local function read_doc(path, secrets)
  local data, err, info = core.fsutil.read(path, { follow = true, max = core.fsutil.limits.config })
  if not data then
    if info and info.code == "ENOENT" then return { lines = {}, values = {}, where = {}, missing = true } end
    if secrets and info and info.code == "EACCES" then
      return { lines = {}, values = {}, where = {}, hidden = true }
    end
    return nil, path .. ": cannot read: " .. tostring(err):gsub("^" .. path:gsub("%p", "%%%0") .. ": ", "")
  end
  return parse_text(data, path, secrets)
end

-- The secrets file of the settings file path: mailhook.conf -> mailhook.secrets
-- (same folder), any other name + ".secrets".
function M.secrets_path(path)
  path = path or M.path()
  local base = path:match("^(.*)%.conf$")
  return (base or path) .. ".secrets"
end

-- Both files of path: the settings doc, the secrets doc, and the values of both
-- (a key of the secrets file wins: a settings file written before the split may
-- still hold an old copy of the password).  nil, err when either is unreadable
-- (the secrets file may be unreadable: sdoc.hidden) or malformed.
local function read_both(path)
  local doc, err = read_doc(path)
  if not doc then return nil, err end
  local sdoc
  sdoc, err = read_doc(M.secrets_path(path), true)
  if not sdoc then return nil, err end
  local values = {}
  for k, v in pairs(doc.values) do values[k] = v end
  for k, v in pairs(sdoc.values) do values[k] = v end
  return doc, sdoc, values
end

-- Settings a one-shot command holds (M.hold): path -> the cfg it read.
local held = {}

-- A copy of a held cfg, its tables too (a caller may change what it got).
local function copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = copy(x) end
  return c
end

-- hold(cfg): a one-shot command (enqueue, sendmail, hook) reads its settings
-- once: every later load() of the same file in this process returns a copy of
-- cfg instead of reading and validating both files again (`enqueue` read them
-- twice, `hook` three times: the command, the templates' folder, mh.enqueue).
-- A process that lives on (run, the REPL) never holds: it sees every change.
function M.hold(cfg)
  local p = private[cfg]
  if p and p.path then held[p.path] = cfg end
  return cfg
end

-- load([path]) -> cfg | nil, "FILE:LINE: message"
-- A missing file means the defaults, except the settings file named with -c or
-- $MAILHOOK_CONF (core.paths.conf_given): a typo there must not quietly run
-- with defaults.  update() creates that file.
function M.load(path)
  path = path or M.path()
  local h = held[path]
  if h then
    local c = copy(h)
    private[c], admin_hashes[c] = private[h], admin_hashes[h]
    return c
  end
  local doc, sdoc, values = read_both(path)
  if not doc then return nil, sdoc end
  if doc.missing and path == core.paths.conf and core.paths.conf_given then
    return nil, string.format("%s: no such settings file (named by %s; " ..
      "`mailhook update KEY=VALUE` creates it)", path, core.paths.conf_given)
  end
  local cfg, secret_or_key, reason, at = validate(values, sdoc.hidden)
  if not cfg then
    local key = secret_or_key
    local where = sdoc.where[key] and sdoc or doc
    local file = where == sdoc and M.secrets_path(path) or path
    local line = where.where[key] or where.where[at]
    return nil, line and string.format("%s:%d: %s: %s", file, line, key, reason)
                       or string.format("%s: %s: %s", file, key, reason)
  end
  private[cfg] = { password = secret_or_key, path = path, hidden = sdoc.hidden }
  if doc.values.password and not warned[path] then
    local mode = core.fsutil.mode(path)
    if mode and mode & 63 ~= 0 then       -- 0077: group or others may read the password
      warned[path] = true
      core.log("warn", string.format("%s holds a password and is readable by other users (chmod 600 %s, " ..
                                     "or `mailhook update` moves it to %s)", path, path, M.secrets_path(path)))
    end
  end
  return cfg
end

-- password(cfg) -> the password (from the file, or password_command's first line) | nil, err

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- What a command wrote on stderr, fit for a message or a log: its first
-- non-blank line, the secret it printed (when known) masked, control
-- characters dropped, at most 200 characters.  nil when it wrote nothing.
local function stderr_excerpt(text, secret)
  if not text then return nil end
  local line = text:match("([^\r\n]*%S[^\r\n]*)")
  if not line then return nil end
  if secret and #secret >= 1 then
    local i = 1
    while true do
      local a, b = line:find(secret, i, true)
      if not a then break end
      line = line:sub(1, a - 1) .. MASK .. line:sub(b + 1)
      i = a + #MASK
    end
  end
  line = line:gsub("[%z\1-\31\127]", "")
  if #line > 200 then line = line:sub(1, 200) .. "..." end
  return line
end

-- How long a secret command may run and how long its line may be.  It runs
-- where the password is needed -- inside the service's delivery loop -- and
-- nothing else moves meanwhile: `sleep 1000` (a vault waiting for a prompt)
-- froze `run` and `flush`, `cat /dev/zero` grew a 600 MB line.  Past these it
-- is ended (coreutils timeout: TERM to its process group, KILL 2 s later).
M.command_limits = { seconds = 10, bytes = 65536 }

-- The first line a command prints (a secret: password_command,
-- oauth_token_command).  Its stderr is captured in a private temporary file
-- (os.tmpname: mkstemp, 0600) and never passed through: a failure is named with
-- an excerpt of it (stderr_excerpt); on success it is logged at debug level,
-- masked.
local function run_first_line(cmd, what)
  -- no temporary file possible (a read-only /tmp): stderr is dropped instead
  local made, errfile = pcall(os.tmpname)
  if not made then errfile = nil end
  local lim, t0 = M.command_limits, os.time()
  local p = io.popen("exec 2>" .. shell_quote(errfile or "/dev/null") .. "\nexec timeout -k 2 " ..
                     string.format("%d", lim.seconds) .. " /bin/sh -c " .. shell_quote(cmd), "r")
  if not p then
    if errfile then os.remove(errfile) end
    return nil, what .. " could not be started"
  end
  -- the first line, at most lim.bytes: read(1) takes what the pipe holds
  -- (stdio's buffer), so a line is returned as soon as it is complete
  local buf, n, long = {}, 0, false
  while true do
    local c = p:read(1)
    if c == nil or c == "\n" then break end
    n = n + 1
    if n > lim.bytes then long = true break end
    buf[n] = c
  end
  local line = table.concat(buf)
  local ok, how, code = p:close()
  local ef = errfile and io.open(errfile, "rb")
  local errtext = ef and ef:read(4096)
  if ef then ef:close() end
  if errfile then os.remove(errfile) end
  if line then line = line:gsub("\r$", "") end
  local said = stderr_excerpt(errtext, line ~= "" and line or nil)
  if long then
    return nil, string.format("%s printed a line over %d bytes (a password or token is shorter; ended)",
                              what, lim.bytes)
  end
  -- 124: timeout ended it with TERM; KILL, 2 s later, ends timeout itself too
  if not ok and ((how == "exit" and code == 124) or
                 ((how == "signal" and code == 9 or how == "exit" and code == 137) and
                  os.time() - t0 >= lim.seconds)) then
    return nil, string.format("%s did not finish within %d s (ended)%s", what, lim.seconds,
                              said and (": " .. said) or "")
  end
  if not ok then
    return nil, string.format("%s failed (%s %s)%s", what, tostring(how), tostring(code),
                              said and (": " .. said) or "")
  end
  if not line or line == "" then return nil, what .. " printed nothing" .. (said and (": " .. said) or "") end
  if said then core.log("debug", what .. " wrote on stderr: " .. said) end
  return line
end

-- A command named by the settings runs with this process's rights (root's,
-- the service's): only when the settings file is one no other user could have
-- changed, owned by the running user or root and not writable by every user.
-- nil, err otherwise (a missing file: a command given directly, as preview).
local function command_allowed(cfg, what)
  local p = private[cfg]
  if not (p and p.path) then return true end
  local ok, err, info = core.fsutil.check(p.path, { follow = true, owned = true, what = "settings" })
  if ok or (info and info.code == "ENOENT") then return true end
  return nil, what .. " not run: " .. tostring(err)
end

function M.password(cfg)
  local p = private[cfg]
  if p and p.password then return p.password end
  if cfg.password_command then
    local ok, err = command_allowed(cfg, "password_command")
    if not ok then return nil, err end
    return run_first_line(cfg.password_command, "password_command")
  end
  if p and p.hidden then
    return nil, "the password is in " .. M.secrets_path(p.path) .. ", which this user cannot read " ..
      "(the service's user and root can)"
  end
  return nil, "no password is set (mailhook update password=... or password_command=...)"
end

-- stored_password(cfg) -> the password written in the settings file | nil; never
-- runs password_command (the console masks this value in whatever it sends).
function M.stored_password(cfg)
  local p = private[cfg]
  return p and p.password or nil
end

-- token(cfg) -> a fresh OAuth token from oauth_token_command | nil, err
function M.token(cfg)
  if not cfg.oauth_token_command then
    return nil, "no oauth_token_command is set (mailhook update oauth_token_command=...)"
  end
  local ok, err = command_allowed(cfg, "oauth_token_command")
  if not ok then return nil, err end
  return run_first_line(cfg.oauth_token_command, "oauth_token_command")
end

-- get([path]) -> cfg for display (password = "********" when one is set) | nil, err
function M.get(path)
  local cfg, err = M.load(path)
  if not cfg then return nil, err end
  local out = {}
  for k, v in pairs(cfg) do out[k] = v end
  if private[cfg].password then out.password = MASK end
  if admin_hashes[cfg] then out.admin_password = MASK end
  return out
end

-- admin_hash(cfg) -> the console's admin password hash | nil (never in cfg itself).
function M.admin_hash(cfg) return admin_hashes[cfg] end

-- preview(changes [, path]) -> cfg | nil, err, {key = bad key}: what update()
-- would save, validated the same way, without writing anything (the console's
-- Test of values not saved yet).  settings.password(cfg) works on the result.
function M.preview(changes, path)
  path = path or M.path()
  if type(changes) ~= "table" then error("settings.preview: changes must be a table", 2) end
  local doc, sdoc, values = read_both(path)
  if not doc then return nil, sdoc, {} end
  for key, value in pairs(changes) do
    if type(key) ~= "string" or not BY_NAME[key] then
      return nil, "unknown setting '" .. tostring(key) .. "'", { key = tostring(key) }
    end
    local _, perr = parse_value(key, value)
    if perr then return nil, key .. ": " .. perr, { key = key } end
    if value == "" then values[key] = nil else values[key] = value end
  end
  local cfg, secret_or_key, reason = validate(values, sdoc.hidden)
  if not cfg then return nil, secret_or_key .. ": " .. reason, { key = secret_or_key } end
  private[cfg] = { password = secret_or_key, path = path, hidden = sdoc.hidden }
  return cfg
end

-- ready(cfg) -> true | nil, reason: whether anything may be generated.
function M.ready(cfg)
  if not cfg.enabled then return nil, "outgoing mail is disabled (mailhook update enabled=true)" end
  if not cfg.server or #cfg.server == 0 then
    return nil, "no server is set (mailhook update server=HOST)"
  end
  return true
end

-- warnings(cfg) -> {text...}: what `update` and `test` say on stderr about
-- valid but risky settings (empty when there is nothing to say).
function M.warnings(cfg)
  local out = {}
  if cfg.allow_plaintext_auth then
    out[#out + 1] = "allow_plaintext_auth = true: the username and password cross the network " ..
      "in the clear whenever a session has no TLS (anyone on the path can read them); " ..
      "set allow_plaintext_auth=false once the server offers TLS"
  elseif cfg.auth and cfg.tls == "none" then
    out[#out + 1] = "auth = true with tls = none: mailhook will not send the credentials in plain " ..
      "text, so authentication fails; set tls=auto (or starttls/implicit), or, for a server " ..
      "that cannot do TLS, allow_plaintext_auth=true"
  end
  return out
end

-- validate(values) -> cfg | nil, err, {key = bad key}: checks a whole table of
-- raw values (as in the file) without touching any file.
function M.validate(values)
  local cfg, secret_or_key, reason = validate(values)
  if not cfg then return nil, secret_or_key .. ": " .. reason, { key = secret_or_key } end
  private[cfg] = { password = secret_or_key }
  return cfg
end

-- How a value is written in the file.
local function format_value(key, v)
  if type(v) == "table" then
    local parts = {}
    for i, h in ipairs(v) do parts[i] = tostring(h) end
    return table.concat(parts, ", ")
  end
  if type(v) == "number" then
    if math.tointeger(v) then return string.format("%d", v) end
    local s = string.format("%.17g", v)
    -- the file has no exponents (a duration of 1e-05 would read back as an error)
    if s:find("[eE]") and v > -1 and v < 1 then s = string.format("%.99f", v):gsub("0+$", "") end
    return s
  end
  v = tostring(v)
  if v:match("^%s") or v:match("%s$") or v:sub(1, 1) == '"' then
    return '"' .. v:gsub('[\\"]', "\\%0") .. '"'
  end
  return v
end

-- update(changes [, path]) -> cfg | nil, err, {key = bad key}
-- changes: key -> value (typed, or strings as on the command line; "" unsets).
-- Everything is validated first; then the file is rewritten atomically (mode
-- 0600) keeping its comments and the order of its lines.  On any error nothing
-- is written.
local update

function M.update(changes, path)
  path = path or M.path()
  if type(changes) ~= "table" then error("settings.update: changes must be a table", 2) end
  held[path] = nil   -- this process changes them: it reads them again from now on
  -- one update at a time per folder: two concurrent updates both take effect
  return core.fsutil.with_lock(path, update, changes, path)
end

-- The text of doc with the keys of `set` given their value (values, or its
-- normalised form in norm: changed lines in place, new ones appended), and the
-- keys of `drop` removed (unset, or moved to the other file).
local function rewrite(doc, set, values, norm, drop)
  local lines, gone = {}, {}
  for i, l in ipairs(doc.lines) do lines[i] = l end
  for _, key in ipairs(set) do
    local v = norm[key]
    if v == nil then v = values[key] end
    local line = v ~= nil and (key .. " = " .. format_value(key, v)) or nil
    if doc.where[key] then
      if line then lines[doc.where[key]] = line else gone[doc.where[key]] = true end
    elseif line then
      lines[#lines + 1] = line
    end
  end
  for key in pairs(drop) do
    if doc.where[key] then gone[doc.where[key]] = true end
  end
  local out = {}
  for i, l in ipairs(lines) do
    if not gone[i] then out[#out + 1] = l end
  end
  return #out > 0 and table.concat(out, "\n") .. "\n" or ""
end

function update(changes, path)
  local doc, sdoc, values = read_both(path)
  if not doc then return nil, sdoc, {} end
  local spath = M.secrets_path(path)
  if sdoc.hidden then
    return nil, spath .. ": cannot read: Permission denied (update the settings as root or as the " ..
      "service's user)", {}
  end
  local keys, norm = {}, {}
  for key, value in pairs(changes) do
    if type(key) ~= "string" or not BY_NAME[key] then
      return nil, "unknown setting '" .. tostring(key) .. "'", { key = tostring(key) }
    end
    local parsed, perr = parse_value(key, value)
    if perr then return nil, key .. ": " .. perr, { key = key } end
    if parsed ~= nil and SAVE_CHECK[key] then
      local ok, why = SAVE_CHECK[key](parsed)
      if not ok then return nil, key .. ": " .. why, { key = key } end
    end
    keys[#keys + 1] = key
    if NORMALISE[BY_NAME[key][2]] and parsed ~= nil then norm[key] = parsed end
  end
  table.sort(keys, function(a, b) return ORDER[a] < ORDER[b] end)
  -- the new set of values, validated as a whole
  for _, key in ipairs(keys) do
    local v = changes[key]
    if v == "" then values[key] = nil else values[key] = v end   -- false is a value, not "unset"
  end
  local cfg, secret_or_key, reason = validate(values)
  if not cfg then return nil, secret_or_key .. ": " .. reason, { key = secret_or_key } end
  -- the settings file gets the other keys and loses every secret one (a file
  -- written before the split had the password: it moves to the secrets file)
  local plain, secret, moved = {}, {}, {}
  for _, key in ipairs(keys) do
    if SECRET[key] then secret[#secret + 1] = key else plain[#plain + 1] = key end
  end
  for key in pairs(SECRET) do
    if doc.where[key] then
      moved[key] = true
      if changes[key] == nil and not sdoc.where[key] then secret[#secret + 1] = key end
    end
  end
  table.sort(secret, function(a, b) return ORDER[a] < ORDER[b] end)
  local textv = rewrite(doc, plain, values, norm, moved)
  local stext = (#secret > 0 or next(sdoc.where)) and rewrite(sdoc, secret, values, norm, {}) or nil
  -- what we write must read back, and load() must accept it
  local again, perr = parse_text(textv, path)
  if not again then return nil, perr, {} end
  local sagain = { values = {} }
  if stext then
    sagain, perr = parse_text(stext, spath, true)
    if not sagain then return nil, perr, {} end
  end
  local merged = {}
  for k, v in pairs(again.values) do merged[k] = v end
  for k, v in pairs(sagain.values) do merged[k] = v end
  local ok2, bad, why = validate(merged)
  if not ok2 then return nil, bad .. ": " .. why .. " (as it would be written)", { key = bad } end
  -- the secrets first: a crash in between leaves the password in both files
  -- (the secrets file wins on load), never in neither
  if stext and (#secret > 0 or next(moved)) then
    local ok, werr, info = core.fsutil.write_atomic(spath, stext, 384)  -- 0600
    if not ok then return nil, werr, info end
  end
  local ok, werr, info = core.fsutil.write_atomic(path, textv, 420)    -- 0644: intake reads it
  if not ok then return nil, werr, info end
  private[cfg] = { password = secret_or_key, path = path }
  return cfg
end

-- report(cfg [, path]) -> {path =, settings = {key = value, ...}, password_set =,
-- admin_password_set =}: the facts `mailhook settings` prints, as data (its
-- --json, update --json, the console).  Durations in seconds; the password and
-- the admin hash never appear, only whether they are set.
function M.report(cfg, path)
  local p = private[cfg]
  local out = { path = path or (p and p.path) or M.path(), settings = {},
                password_set = (p and p.password ~= nil) or cfg.password == MASK,
                admin_password_set = admin_hashes[cfg] ~= nil or cfg.admin_password == MASK }
  for _, sch in ipairs(SCHEMA) do
    local key = sch[1]
    if key ~= "password" and key ~= "admin_password" then out.settings[key] = cfg[key] end
  end
  return out
end

-- lines(cfg_or_display) -> {"key = value", ...} in display order, password masked.
function M.format(cfg)
  local out = {}
  local secret = private[cfg] and private[cfg].password or (cfg.password and MASK)
  for _, s in ipairs(SCHEMA) do
    local key, v = s[1], cfg[s[1]]
    if key == "password" then v = secret and MASK or nil end
    if key == "admin_password" then v = (admin_hashes[cfg] or cfg.admin_password) and MASK or nil end
    local shown
    if v == nil then
      shown = key == "auth_mechanism" and "auto (strongest offered)" or "(not set)"
    elseif s[2] == "duration" then
      shown = duration.format(v)
    else
      shown = format_value(key, v)
    end
    out[#out + 1] = key .. " = " .. shown
  end
  return out
end

return M
