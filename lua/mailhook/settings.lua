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
-- secret and is made 0644 (an existing one keeps its mode, owner and group:
-- settings_edit.lua write_kept), so any local user's `sendmail` can read what
-- intake needs (enabled, server, from, default_domain, aliases...).  A legacy
-- settings file holding a password still works, and the next update moves the
-- password out of it.
--
-- Two files: this one reads (load, hold, ready, the schema and its parsers);
-- mailhook/settings_edit.lua holds the rest (update, preview, password,
-- token, get, format, report, validate, warnings, command_limits), loaded the
-- first time one of those is used.  An intake (enqueue, sendmail, hook) only
-- reads: loading and running the editing half too was a quarter of the 1.0 M
-- instructions this module cost it (docs/perf-hook.md).
local core = require "mailhook.core"
local duration = require "mailhook.duration"

local M = {}

local MASK = "********"

-- ------------------------------------------------------------------ schema
-- The longest wait the SMTP engine takes (runtime/l_smtp.c MAX_SECONDS: a
-- year; mh.smtp's cfg check too): its four timeouts are bounded by it here, so
-- a settings file never holds one the service cannot use (data_timeout = 400d
-- was taken, then every connection raised: an outage without end).
M.SMTP_WAIT_MAX = 365 * 86400
local SMTP_WAIT_MAX = M.SMTP_WAIT_MAX

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
  { "auth_mechanism", "enum", nil, { "auto", "plain", "login", "cram-md5", "xoauth2", "oauthbearer" } },
  { "username", "string" },
  { "password", "secret" },
  { "password_command", "string" },
  { "oauth_token_command", "string" },
  { "helo_name", "host", function() return core.fsutil.hostname() end },
  { "retry_interval", "duration", 30 },
  { "retry_max", "duration", 30 * 60 },
  { "max_queue_age", "duration", 5 * 86400 },
  { "connect_timeout", "duration", 30, SMTP_WAIT_MAX },
  { "command_timeout", "duration", 300, SMTP_WAIT_MAX },
  { "data_timeout", "duration", 600, SMTP_WAIT_MAX },
  { "session_deadline", "duration", 900, SMTP_WAIT_MAX },
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
  -- default: the domain of `from`, else the machine's mail name (/etc/mailname,
  -- M.mailname), else nil: the host name (submit.lua, spool.c dropin_sender)
  { "default_domain", "host", function(c) return c.from and c.from:match("@([^@]+)$") or M.mailname() end },
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

-- The values an enumerated key takes (a fresh list, in the schema's order), nil
-- for another key: the console's form offers these, so it cannot drift from what
-- update accepts (its own copy lacked cram-md5, from_rewrite and log_level).
function M.choices(key)
  local s = BY_NAME[key]
  if not s or s[2] ~= "enum" then return nil end
  return table.move(s[4], 1, #s[4], 1, {})
end

-- Private per-cfg data (password, file path), weak so cfg tables die normally.
local private = setmetatable({}, { __mode = "k" })
local warned = {}           -- files already reported as readable by others; `key =` lines warned about
local quiet_empty = false   -- load_intake's load(): no warning about `key =` lines
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

-- s without its blanks at either end, in one pass: "^%s*(.-)%s*$" tried the
-- tail at every character, quadratic (a 60 KB value from the console's Save
-- held the service's loop for seconds).
local function trim(s)
  local first = s:find("%S")
  return first and s:match("^.*%S", first) or ""
end

-- A value as an error message quotes it: a long one cut (the message goes to
-- the log and to the page; the value was sent by whoever made the mistake).
-- Not while M.quote_values is false: the console's answers never quote a
-- request (console.lua: its scrubber would mask a secret in the value, and so
-- tell whether the value was the password); it sets it around its calls.
M.quote_values = true
local function quoted(v)
  if not M.quote_values then return "that value" end
  v = tostring(v)
  if #v <= 120 then return "'" .. v .. "'" end
  return string.format("'%s...' (%d bytes)", v:sub(1, 80):gsub("[\128-\255]+$", ""), #v)
end

-- A "quoted value" read: \" and \\ are its only escapes.  Another backslash
-- was dropped silently (password = "C:\temp" read as "C:temp": the login then
-- failed with a 535 and nothing said why): refused, as an unescaped quote is.
-- The value is never shown (it may be the password).
local function unquote(value)
  local inner = value:match('^"(.*)"$')
  if not inner then return nil, 'unterminated "quoted value"' end
  local rest = inner:gsub('\\[\\"]', "")
  if rest:find('"', 1, true) then return nil, 'a " inside a "quoted value" must be written \\"' end
  if rest:find("\\", 1, true) then
    return nil, 'a backslash inside a "quoted value" must be written \\\\ (\\" and \\\\ are its only escapes)'
  end
  return (inner:gsub('\\([\\"])', "%1"))
end

local function valid_ipv4(s)
  local parts = { s:match("^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$") }
  if #parts ~= 4 then return false end
  for _, x in ipairs(parts) do if tonumber(x) > 255 then return false end end
  return true
end

-- An IPv6 address as inet_pton reads it (bracketed or not): 8 groups of 1-4
-- hex digits, one "::" for a run of zeros, an IPv4 tail.  The old test (hex
-- digits, colons and dots) took "127.0.0.1:2525" and "::::" for addresses,
-- which no connection could use: the mail waited on a lookup error.
local function valid_ipv6(s)
  s = s:match("^%[(.*)%]$") or s
  if not s:find(":", 1, true) or s:find(":::", 1, true) then return false end
  local head, tail = s:match("^(.-)::(.*)$")
  if head and tail:find("::", 1, true) then return false end
  local function groups(part, v4_last)
    if part == "" then return 0 end
    local items, n = {}, 0
    for g in (part .. ":"):gmatch("([^:]*):") do items[#items + 1] = g end
    for i, g in ipairs(items) do
      if i == #items and v4_last and g:find(".", 1, true) then
        if not valid_ipv4(g) then return nil end
        n = n + 2
      elseif g:match("^%x%x?%x?%x?$") then
        n = n + 1
      else
        return nil
      end
    end
    return n
  end
  if head then
    local a, b = groups(head, false), groups(tail, true)
    return a ~= nil and b ~= nil and a + b <= 7
  end
  return groups(s, true) == 8
end

local function valid_host(h)
  -- an IPv4 address literal ("[192.0.2.1]": an EHLO name, a server as Postfix's relayhost writes it)
  local v4 = h:match("^%[([%d.]+)%]$")
  if v4 then return valid_ipv4(v4) end
  -- and RFC 5321's IPv6 one ("[IPv6:2001:db8::1]", the form an EHLO name takes)
  local v6 = h:match("^%[[Ii][Pp][Vv]6:(.+)%]$")
  if v6 then return valid_ipv6(v6) end
  if h:find(":", 1, true) or h:find("[", 1, true) then return valid_ipv6(h) end
  if #h > 253 then return false end
  -- no top-level domain is all digits: a dotted number is an IPv4 address or nothing
  -- ("10.0.0" would reach inet_aton as 10.0.0.0, "999.1.1.1" a lookup that fails)
  if h:match("^[%d.]+$") then return valid_ipv4(h) end
  for label in (h .. "."):gmatch("([^.]*)%.") do
    if label == "" or #label > 63 or not label:match("^[%w-]+$")
       or label:sub(1, 1) == "-" or label:sub(-1) == "-" then
      return false
    end
  end
  return true
end

local parse = {}

-- mailname() -> the machine's mail domain | nil: the first line of /etc/mailname
-- (core.paths.mailname: $MAILHOOK_MAILNAME overrides it, runtime/instpaths.h),
-- Debian policy 11.6's "visible mail name of the system", which Postfix
-- (myorigin), Exim (qualify domain) and nullmailer qualify bare names with.
-- Read only when `from` names no domain (default_domain's default): `from` is
-- this program's own statement of the domain its mail belongs to, and the one
-- its server is known to take (docs/settings.md).  A missing file is no
-- error (most machines without an MTA have none: a debug line); one whose
-- first line is not a host name (a typo, a path, a binary) is ignored with a
-- warning naming it, once per process, and the host name is used.
local mailname_warned = {}
function M.mailname()
  local path = core.paths.mailname
  if not path or path == "" then return nil end
  local text, err, info = core.fsutil.read(path, { max = 4096, follow = true })
  if not text then
    if not mailname_warned[path] then
      mailname_warned[path] = true
      core.log(info and info.code == "ENOENT" and "debug" or "warn",
               tostring(err) .. ": no mail name (default_domain falls back to the host name)")
    end
    return nil
  end
  local first = trim(text:match("^[^\n]*"))
  local host = first ~= "" and not first:find("[%c\128-\255]") and parse.host(first)
  -- a name, not an IP address: root@192.0.2.1 is no address
  if host and not host:find("[:%[]") and not host:match("^[%d.]+$") then return host end
  if not mailname_warned[path] then
    mailname_warned[path] = true
    core.log("warn", string.format("%s: first line %s is not a domain: ignored (default_domain falls back " ..
      "to the host name; write the domain alone, as mail.example.com)", path, quoted((first:gsub("[%c\128-\255]", "?")))))
  end
  return nil
end

function parse.bool(v)
  if type(v) == "boolean" then return v end
  if type(v) == "string" then
    local l = v:lower()
    if l == "true" or l == "yes" or l == "on" then return true end
    if l == "false" or l == "no" or l == "off" then return false end
  end
  return nil, "must be true or false (got " .. quoted(v) .. ")"
end

function parse.string(v) return text(v) end
parse.secret = parse.string

function parse.address(v)
  local s, err = text(v)
  if not s then return nil, err end
  local ok, why = core.msg.valid_address(s)
  if not ok then
    -- "Name <addr>", as a mail program's From is written: the setting is the
    -- address alone (it said "non-ASCII local part" of "Zoë Müller <pbx@...>")
    local inner = s:match("^[^<>]*<([^<>]+)>%s*$")
    if inner and core.msg.valid_address(inner) then
      return nil, quoted(s) .. " is not a valid address: this setting takes the address alone, without a " ..
                  "display name (" .. quoted(inner) .. ")"
    end
    return nil, quoted(s) .. " is not a valid address: " .. why
  end
  -- a domain written absolute (noreply@example.com.): kept without the root's
  -- dot, as `server` is, and as the envelope carries it (runtime/msg.c
  -- mh_msg_addr_unroot); it is the envelope sender and the default From
  return core.msg.envelope_address(s)
end

-- A comma-separated list of addresses (admin_address = a@x, b@y), each validated.
function parse.addresses(v)
  local list = {}
  if type(v) == "table" then
    for i, a in ipairs(v) do list[i] = a end
  else
    local s, err = text(v)
    if not s then return nil, err end
    for a in (s .. ","):gmatch("([^,]*),") do list[#list + 1] = trim(a) end
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
  -- 253 characters at most (a bracketed IPv6 address is shorter): said before
  -- any pattern runs over a value of any length (the "absolute name" one
  -- backtracks: quadratic in the length)
  if #s > 255 then return nil, quoted(s) .. " is not a valid host name or IP address: over 253 characters" end
  -- an absolute name ("mail.example.com.", as in a zone file): the same host; written
  -- without its dot (a certificate and SNI name the host without it)
  local bare = s:match("^(.*[%a%-][%w%-]*)%.$")
  if bare and valid_host(bare) and not bare:find(":", 1, true) then return bare end
  if not valid_host(s) then
    local host, port = s:match("^(.+):(%d+)$")
    if host and (valid_host(host) or valid_ipv6(host)) and not valid_ipv6(s) then
      return nil, quoted(s) .. " is not a valid host name or IP address: the port goes apart (port = " ..
        port .. ")"
    end
    return nil, quoted(s) .. " is not a valid host name or IP address"
  end
  return s
end

function parse.hosts(v)
  local list = {}
  if type(v) == "table" then
    for i, h in ipairs(v) do list[i] = h end
  else
    local s, err = text(v)
    if not s then return nil, err end
    for h in (s .. ","):gmatch("([^,]*),") do list[#list + 1] = trim(h) end
  end
  if #list == 0 then return nil, "needs at least one host name" end
  for i, h in ipairs(list) do
    local ok, err = parse.host(h)
    if not ok then return nil, h == "" and "empty host name in the list" or err end
    -- a server in brackets (as in a URL or Postfix's relayhost): the address; kept
    -- bracketed it reached getaddrinfo so, and every delivery failed at dns.  (An
    -- EHLO name, helo_name, keeps its brackets: an address literal.)
    list[i] = ok:match("^%[[Ii][Pp][Vv]6:(.*)%]$") or ok:match("^%[(.*)%]$") or ok
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
    return nil, "must be " .. what .. " " .. lo .. "-" .. hi .. " (got " .. quoted(v) .. ")"
  end
  return n
end

function parse.port(v) return integer(v, 1, 65535, "a port number") end

function parse.count(v, s) return integer(v, s[4][1], s[4][2], "a whole number") end

-- durations: one rule for the whole layer (mailhook.duration); s[4], when
-- set, a lower bound than duration.MAX (the SMTP engine's waits)
function parse.duration(v, s)
  local n, why = duration.parse(v)
  if n and s and s[4] and n > s[4] then
    return nil, "must be at most " .. duration.format(s[4]) .. ", the longest wait the SMTP engine takes (got " ..
                quoted(v) .. ")"
  end
  return n, why
end

function parse.enum(v, s)
  if type(v) == "number" then v = string.format("%.1f", v) end  -- tls_min_version = 1.2
  if type(v) == "string" then
    local l = v:lower()
    for _, allowed in ipairs(s[4]) do
      if l == allowed then return l end
    end
  end
  return nil, "must be one of " .. table.concat(s[4], ", ") .. " (got " .. quoted(v) .. ")"
end

-- relative(file, p) -> p, a relative one taken from the folder of file (the
-- settings file that names it; by default the one in use): every path a
-- settings file holds is relative to that file's folder, as nginx's include or
-- ssh's Include are, whichever file the process was started with.
local function relative(file, p)
  if type(p) ~= "string" or p == "" or p:sub(1, 1) == "/" then return p end
  return ((file or M.path() or "./mailhook.conf"):match("^(.*)/[^/]*$") or ".") .. "/" .. p:gsub("^%./", "")
end

-- resolve(cfg, p) -> p, a relative one taken from the folder of the file cfg
-- was read from (load, load_intake, preview, update), else of the settings
-- file in use (a cfg built by hand: settings.validate's).
function M.resolve(cfg, p)
  local own = type(cfg) == "table" and private[cfg]
  return relative(own and own.path, p)
end

-- A file someone named: a readable regular file (checked without a blocking
-- open: a FIFO or a device is refused, never opened), links followed.  A
-- relative path is from the folder of the settings file that names it, as
-- aliases, rules and templates are (it was from the current folder: `update
-- tls_ca_file=ca.pem` run beside the file saved it, and every command run
-- elsewhere, the service under systemd too, then refused the settings); the
-- value is that path.  file: the settings file being read.
function parse.file(v, _, file)
  local s, err = text(v)
  if not s then return nil, err end
  s = relative(file, s)
  local ok, ferr = core.fsutil.check(s, { follow = true, max = core.fsutil.limits.ca })
  if not ok then return nil, "cannot read " .. tostring(ferr) end
  return s
end

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
    return nil, "must be PORT or ADDRESS:PORT with a numeric address, e.g. 127.0.0.1:8025 or [::1]:8025 (got " .. quoted(s) .. ")"
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

-- " (did you mean 'server'?)" for a key one or two edits from a known one
-- (sever, Port, retry-max), "" otherwise: a typo at 3 a.m. named with its fix.
-- names: the keys to look among (default: the settings'; mh.smtp.connect's
-- cfg check passes the settings' and its own).
local function near_key(key, names)
  key = tostring(key)
  local function dist(a, b)
    if math.abs(#a - #b) > 2 then return 3 end
    local prev, before = {}, nil
    for j = 0, #b do prev[j] = j end
    for i = 1, #a do
      local cur = { [0] = i }
      for j = 1, #b do
        cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a:byte(i) == b:byte(j) and 0 or 1))
        -- two letters swapped is one edit (prot: port, not from)
        if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
          cur[j] = math.min(cur[j], before[j - 2] + 1)
        end
      end
      before, prev = prev, cur
    end
    return prev[#b]
  end
  local k = key:lower():gsub("-", "_")
  local best, bd = nil, 3
  for _, name in ipairs(names or M.keys) do
    local d = dist(k, name)
    if d < bd then best, bd = name, d end
  end
  return best and (" (did you mean '" .. best .. "'?)") or ""
end
M.near_key = near_key

-- Parses value for key: normalised value | nil, reason.  "" means "not set".
-- entry: a schema entry of its own ({key, kind, default, bound}) for a key no
-- settings file holds (mh.smtp's cfg: greeting_wait, a duration).  M.parse_value:
-- mh.smtp.connect's cfg check reads its values with it.
local function parse_value(key, value, entry, file)
  local s = entry or BY_NAME[key]
  if not s then return nil, "unknown setting" end
  if value == "" or value == nil then return nil end
  -- before any parser, which may quote the value in its message: a lone CR
  -- (old Mac line ends) makes the rest of the file, password included, one value
  if type(value) == "string" and value:find("[%z\1-\31\127]") then
    return nil, "must not contain control characters (CR, LF, NUL, ...)"
  end
  return parse[s[2]](value, s, file)
end
M.parse_value = parse_value
M.MASK = MASK

-- --------------------------------------------------------------- validation

-- values: key -> raw value (string or typed).  Returns cfg, secret (the
-- password or nil) on success, or nil, bad key, reason [, the key whose line
-- to name when the bad key is missing from the file], problems: every problem
-- found, {{key, reason, at}...}, the first one first (the first three values
-- are problems[1]).  Every value is checked, then the rules between keys whose
-- keys all parsed, so that one error names every bad setting (an
-- administrator fixing them one run at a time found the next at each run).
-- hidden: the secrets file exists but this user cannot read it (a local user's
-- sendmail): the rules about the password then cannot be checked, and are not.
-- file: the settings file the values were read from (relative paths are from
-- its folder), else the one in use.
local function validate(values, hidden, file)
  local cfg, problems, bad = {}, {}, {}
  local function problem(key, reason, at) problems[#problems + 1] = { key, reason, at } end
  for key, raw in pairs(values) do
    if not BY_NAME[key] then
      problem(key, "unknown setting")
      bad[key] = true
    else
      local v, err = parse_value(key, raw, nil, file)
      if err then problem(key, err); bad[key] = true end
      cfg[key] = v
    end
  end
  for _, s in ipairs(SCHEMA) do
    if cfg[s[1]] == nil and s[3] ~= nil and not bad[s[1]] then
      local d = s[3]
      if type(d) == "function" then d = d(cfg) end
      cfg[s[1]] = d
    end
  end
  if cfg.auth_mechanism == "auto" then cfg.auth_mechanism = nil end
  local secret = cfg.password
  cfg.password = nil
  admin_hashes[cfg], cfg.admin_password = cfg.admin_password, nil   -- settings.admin_hash(cfg)
  -- rules between keys (each only when the keys it reads parsed: a bad value
  -- is no value to judge another key by)
  local function good(...)
    for _, k in ipairs { ... } do if bad[k] then return false end end
    return true
  end
  if good("tls", "tls_required", "auth") and cfg.tls == "none" and cfg.tls_required then
    problem("tls", "tls = none but tls_required is true" ..
      (values.tls_required == nil and " (the default when auth is on)" or "") ..
      "; set tls_required=false to allow plain text" ..
      (cfg.auth and " (credentials then also need allow_plaintext_auth=true)" or ""))
  end
  if good("password", "password_command") and secret and cfg.password_command then
    problem("password_command", "set either password or password_command, not both", "password")
  end
  if cfg.auth and good("auth") then
    if not cfg.username and good("username") then
      problem("username", "auth is true but username is not set", "auth")
    end
    local m = cfg.auth_mechanism
    if good("auth_mechanism", "oauth_token_command") and (m == "xoauth2" or m == "oauthbearer") and
       not cfg.oauth_token_command then
      problem("oauth_token_command", "auth_mechanism " .. m .. " needs oauth_token_command", "auth_mechanism")
    end
    if good("auth_mechanism", "oauth_token_command", "password", "password_command") and
       (m == "plain" or m == "login" or not cfg.oauth_token_command)
       and not secret and not cfg.password_command and not hidden then
      problem("password", "auth is true but neither password nor password_command is set", "auth")
    end
  end
  if #problems > 0 then
    local p = problems[1]
    return nil, p[1], p[2], p[3], problems
  end
  return cfg, secret
end

-- ------------------------------------------------------------------- files

-- The settings file in use: -c FILE, $MAILHOOK_CONF or the default.
function M.path() return core.paths.conf end

-- Parses the text of a settings file into {lines = {raw...}, values = {key = raw},
-- where = {key = line number}} or nil, "FILE:LINE: message".
local function parse_text(textv, file, secrets)
  local doc = { lines = {}, values = {}, where = {}, empty = {} }
  local n = 0
  -- A UTF-8 byte order mark (a Windows editor's, an administrator's at 3 a.m.)
  -- is no part of the first key: it made line 1 "expected 'key = value'" and
  -- every intake refuse to run.  Dropped; an update writes the file without it.
  if textv:sub(1, 3) == "\239\187\191" then textv = textv:sub(4) end
  if textv == "" then return doc end   -- no lines (not one empty line: update would keep it)
  -- The lines: split at each LF, one CR before it dropped (a lone CR stays in
  -- the line); the file's last line end ends the last line, it does not start
  -- an empty one.  Plain finds and anchored greedy patterns: the lazy patterns
  -- they replace ("(.-)\r?\n", "^%s*(.-)%s*$", "(.-)$") tried a match at every
  -- character, 0.1 M instructions for a six-line file at every intake.
  local len = #textv
  if textv:byte(len) == 10 then len = len - (textv:byte(len - 1) == 13 and 2 or 1) end
  local pos = 1
  while true do
    local nl = textv:find("\n", pos, true)
    if nl and nl > len then nl = nil end
    local line = textv:sub(pos, (nl or len + 1) - 1)
    if line:byte(-1) == 13 then line = line:sub(1, -2) end
    n = n + 1
    doc.lines[n] = line
    local first = line:find("%S")
    local body = first and line:match("^.*%S", first) or ""
    if body ~= "" and body:sub(1, 1) ~= "#" then
      -- a key as typed may hold a hyphen (retry-max): an unknown key, named with
      -- its fix below, not a line that is no `key = value`
      local key, value = body:match("^([%w_%-]+)%s*=%s*(.*)$")
      if not key then
        return nil, string.format("%s:%d: expected 'key = value'", file, n)
      end
      if not BY_NAME[key] then
        return nil, string.format("%s:%d: unknown setting '%s'%s", file, n, key, near_key(key))
      end
      if secrets and not SECRET[key] then
        return nil, string.format("%s:%d: '%s' does not belong in the secrets file (only the password " ..
                                  "and admin_password; the rest goes in the settings file)", file, n, key)
      end
      if doc.where[key] then
        return nil, string.format("%s:%d: '%s' set twice (first on line %d)", file, n, key, doc.where[key])
      end
      if value:sub(1, 1) == '"' then
        local why
        value, why = unquote(value)
        if not value then return nil, string.format("%s:%d: %s: %s", file, n, key, why) end
      end
      doc.values[key] = value
      doc.where[key] = n
      -- `port =`, `from = ""`: unset, as if the line were not there (docs/settings.md);
      -- noted, so that load() warns naming the line (it was taken without a word)
      if value == "" then doc.empty[#doc.empty + 1] = { key = key, line = n } end
    end
    if not nl then break end
    pos = nl + 1
  end
  return doc
end

-- empty_warnings(doc, file, cfg) -> {text...}: one warning for each line of doc
-- that names a key with no value (`port =`, `from = ""`): such a key is unset,
-- as if the line were not there, and the warning names the file, the line, the
-- key and what it is then (its default, or unset).  An administrator who blanked
-- a value meaning to fill it in got port 25 without a word.
local function empty_warnings(doc, file, cfg)
  local out = {}
  for _, e in ipairs(doc.empty or {}) do
    local s, v = BY_NAME[e.key], cfg and cfg[e.key]
    local now
    if e.key == "password" or e.key == "admin_password" or v == nil then
      now = "it has no default"
    else
      if s[2] == "duration" and type(v) == "number" then v = duration.format(v)
      elseif type(v) == "table" then v = table.concat(v, ", ") end
      now = "the default applies: " .. e.key .. " = " .. tostring(v)
    end
    out[#out + 1] = string.format("%s:%d: %s has no value: taken as unset (%s); give it a value, or delete " ..
                                  "the line (`mailhook update %s=` does)", file, e.line, e.key, now, e.key)
  end
  return out
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
    -- info.code: the disk's or the system's refusal, not the file's words (update exits 1, not 2)
    return nil, path .. ": cannot read: " .. tostring(err):gsub("^" .. path:gsub("%p", "%%%0") .. ": ", ""),
           { code = info and info.code or "EIO" }
  end
  return parse_text(data, path, secrets)
end

-- stamp([path]) -> a string that changes whenever the settings file or its
-- secrets file is written (each one's inode, size and modification time;
-- "-" for one that is not there): the service keeps the one it loaded, and
-- `mailhook status` names a file changed since (a fix saved, not reloaded).
function M.stamp(path)
  path = path or M.path()
  local parts = {}
  for i, p in ipairs { path, M.secrets_path(path) } do
    local o = core.fsutil.owner(p)
    parts[i] = o and string.format("%d/%d/%d", o.ino, o.size, o.mtime_ns) or "-"
  end
  return table.concat(parts, " ")
end

-- arg(fn, name, v, want): v, an argument of the public function fn, must be
-- of type want ("string": a path, nil allowed; "table": a cfg): else raises
-- "FN: NAME must be a WANT (got TYPE)" at the caller of fn (level 3).
-- settings.get(5) was "attempt to index a number value" inside read_doc.
local function arg(fn, name, v, want)
  if want == "string" and v == nil then return end
  if type(v) ~= want then
    error(string.format("%s: %s must be a %s (got %s)", fn, name, want == "table" and "table (settings)" or "string",
                        type(v)), 3)
  end
end
M.check_arg = arg

-- The secrets file of the settings file path: mailhook.conf -> mailhook.secrets
-- (same folder), any other name + ".secrets".
function M.secrets_path(path, ...)
  core.check_options("mh.settings.secrets_path", {}, {}, select("#", ...) + 1, 1)
  arg("mh.settings.secrets_path", "path", path, "string")
  path = path or M.path()
  local base = path:match("^(.*)%.conf$")
  return (base or path) .. ".secrets"
end

-- Both files of path: the settings doc, the secrets doc, and the values of both
-- (a key of the secrets file wins: a settings file written before the split may
-- still hold an old copy of the password).  nil, err when either is unreadable
-- (the secrets file may be unreadable: sdoc.hidden) or malformed.
-- read_both(path) -> doc, sdoc, values | nil, err, info (info.code when a file could not be read)
local function read_both(path)
  local doc, err, info = read_doc(path)
  if not doc then return nil, err, info end
  local sdoc
  sdoc, err, info = read_doc(M.secrets_path(path), true)
  if not sdoc then return nil, err, info end
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
  arg("mh.settings.hold", "cfg", cfg, "table")
  local p = private[cfg]
  if p and p.path then held[p.path] = cfg end
  return cfg
end

-- unsafe(path) -> why | nil: a settings file this process must not believe.
-- It says where the password is sent (server, auth, tls): one any user may
-- write, or one owned by a user who is neither root, this process's user nor
-- the spool's owner (the service's user), lets that user send the password
-- to a server of theirs (it was loaded without a word).  Rule files and
-- password_command get the same rule (docs/rules.md).
local function unsafe(path)
  local o = core.fsutil.owner(path)
  if not o or not o.regular then return nil end
  if o.mode & 2 ~= 0 then
    return string.format("%s: any user may write it (mode %04o), and it decides where the password is sent: " ..
                         "refused (chmod o-w %s)", path, o.mode, path)
  end
  if o.uid == 0 then return nil end
  local me = core.maildrop.whoami()
  if me and o.uid == me.euid then return nil end
  local sp = core.fsutil.owner(core.paths.spool)
  if sp and o.uid == sp.uid then return nil end
  return string.format("%s: owned by %s, who is neither root, this user nor the spool's owner, and it decides " ..
                       "where the password is sent: refused (chown root %s)", path, o.user, path)
end
M.unsafe = unsafe

-- load([path]) -> cfg | nil, "FILE:LINE: message[; FILE:LINE: message...]", info
-- (every bad setting named, in the file's order; info.keys the bad keys,
-- info.set the names of the keys the files set, when the values were read)
-- A missing file means the defaults, except the settings file named with -c or
-- $MAILHOOK_CONF (core.paths.conf_given): a typo there must not quietly run
-- with defaults.  update() creates that file.
function M.load(path, ...)
  core.check_options("mh.settings.load", {}, {}, select("#", ...) + 1, 1)
  arg("mh.settings.load", "path", path, "string")
  path = path or M.path()
  local h = held[path]
  if h then
    local c = copy(h)
    private[c], admin_hashes[c] = private[h], admin_hashes[h]
    return c
  end
  local doc, sdoc, values = read_both(path)
  if not doc then return nil, sdoc end
  local why = not doc.missing and unsafe(path)
  if why then return nil, why end
  if doc.missing and path == core.paths.conf and core.paths.conf_given then
    return nil, string.format("%s: no such settings file (named by %s; " ..
      "`mailhook update KEY=VALUE` creates it)", path, core.paths.conf_given)
  end
  local cfg, secret_or_key, _, _, problems = validate(values, sdoc.hidden, path)
  if not cfg then
    -- every problem, in the file's order (the settings file's lines, then the
    -- secrets file's, then those of keys on no line), in one message
    local said = {}
    for i, p in ipairs(problems) do
      local key, reason, at = p[1], p[2], p[3]
      local where = sdoc.where[key] and sdoc or doc
      local file = where == sdoc and M.secrets_path(path) or path
      local line = where.where[key] or where.where[at]
      said[i] = { order = (where == sdoc and 1e9 or 0) + (line or 2e9), i = i,
                  text = line and string.format("%s:%d: %s: %s", file, line, key, reason)
                              or string.format("%s: %s: %s", file, key, reason) }
    end
    table.sort(said, function(a, b) return a.order < b.order or (a.order == b.order and a.i < b.i) end)
    for i, s in ipairs(said) do said[i] = s.text end
    -- info: the keys found bad, and the names of the keys the files set (no
    -- value: `mailhook test` names a missing from or server in the same error)
    local keys, set = {}, {}
    for i, p in ipairs(problems) do keys[i] = p[1] end
    for k, v in pairs(values) do if v ~= "" then set[k] = true end end
    return nil, table.concat(said, "; "), { keys = keys, set = set }
  end
  private[cfg] = { password = secret_or_key, path = path, hidden = sdoc.hidden }
  -- each `key =` line said once per process (the service: at start, and at a
  -- reload that finds a new one); not by an intake (sendmail, hook: their
  -- callers' stderr is mailed by cron at every call, and nothing is wrong with
  -- the message): `settings`, `test`, `status`, `update` and the service say it
  if not quiet_empty then
    local w = empty_warnings(doc, path, cfg)
    for _, t in ipairs(empty_warnings(sdoc, M.secrets_path(path), cfg)) do w[#w + 1] = t end
    for _, t in ipairs(w) do
      if not warned[t] then
        warned[t] = true
        core.log("warn", t)
      end
    end
  end
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

-- ------------------------------------------------------------------ intake
-- "Intake accepts, delivery decides" (DESIGN.md): cron, PHP's mail() and
-- mdadm never read sendmail's exit status, so a settings file that the
-- service must refuse (a typo'd key, a bad tls value) must not make intake
-- refuse too: the message is stored, the service (`run`, `status`, `test`)
-- still refuses the file loudly, and the mail leaves once it is fixed.
-- Intake needs only these keys; a problem in one of them, or a line naming no
-- key at all, still refuses (guessing the envelope's sender or a local name's
-- domain would send mail somewhere the administrator never said):
local INTAKE_KEYS = { enabled = true, from = true, default_domain = true, admin_address = true,
                      aliases = true, from_rewrite = true }
M.intake_keys = INTAKE_KEYS
local intake_warned = {}   -- path -> true: its problems already said by this process

-- The settings file's lines, read leniently: values (the good lines), where
-- (key -> line), bad ({line =, key =, msg =}: each broken line, key the one it
-- names or nil when it names none).
local function parse_lenient(textv, file)
  local values, where, bad = {}, {}, {}
  if textv:sub(1, 3) == "\239\187\191" then textv = textv:sub(4) end
  local n, twice = 0, {}
  for line in (textv .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("\r$", "")
    local body = line:match("^%s*(.-)%s*$")
    if body ~= "" and body:sub(1, 1) ~= "#" then
      local key, value = body:match("^([%w_%-]+)%s*=%s*(.*)$")   -- retry-max: parse_text's
      local function problem(k, msg) bad[#bad + 1] = { line = n, key = k, msg = string.format("%s:%d: %s", file, n, msg) } end
      if not key then
        -- "enabled true", "server: x": the line of the key it starts with
        local first = body:match("^([%w_]+)")
        problem(first and BY_NAME[first] and first or nil, "expected 'key = value'")
      elseif not BY_NAME[key] then
        -- `sever = x`, `enable = true`: counted as the line of the key it
        -- is nearest to (an intake key's typo still refuses)
        local near = near_key(key):match("'([%w_]+)'")
        problem(near or key, string.format("unknown setting '%s'%s", key, near_key(key)))
        bad[#bad].near = near ~= nil
      elseif where[key] or twice[key] then
        problem(key, string.format("'%s' set twice (first on line %d)", key, where[key] or twice[key]))
        twice[key] = twice[key] or where[key]
        values[key], where[key] = nil, nil
      else
        if value:sub(1, 1) == '"' then
          local why
          value, why = unquote(value)
          if not value then problem(key, key .. ": " .. why) end
        end
        if value then values[key], where[key] = value, n end
      end
    end
  end
  return values, where, bad
end

-- load_intake([path [, needs]]) -> cfg | nil, "FILE:LINE: message"
-- The settings as an intake (sendmail, enqueue, hook, mh.enqueue, the
-- adoption of maildrop/) takes them: load()'s, when the file is good; else the
-- file's good lines, when every problem is in a key intake does not use (each
-- warned once, on stderr and in the log, naming FILE:LINE and the key, the
-- key then at its default).  Still nil, err: a file that cannot be read (the
-- spool it names may not be the one the service reads), a line that names no
-- key (`foo bar`), a problem in a key of INTAKE_KEYS or of needs ({key = true}:
-- the keys this intake also uses, hook's rules and their budgets; a key that
-- names no setting raises, listing the settings).  A broken `server` line
-- (a bad value, `sevrer = x`) counts as set: the administrator did set one.
function M.load_intake(path, needs, ...)
  core.check_options("mh.settings.load_intake", {}, {}, select("#", ...) + 2, 2)
  arg("mh.settings.load_intake", "path", path, "string")
  if needs ~= nil then
    if type(needs) ~= "table" then
      error("mh.settings.load_intake: needs must be a table {key = true} of setting names (got " .. type(needs) ..
            ")", 2)
    end
    -- a need that names no setting ({rulez = true}, a list {"rules"}) was
    -- taken and meant nothing: that key's problems still only warned
    for k in next, needs do
      if type(k) ~= "string" or not BY_NAME[k] then
        local shown = type(k) == "string" and ("'" .. k .. "'") or ("[" .. tostring(k) .. "]")
        error(string.format("mh.settings.load_intake: needs: %s is not a setting%s (needs is a set {key = true} " ..
                            "of: %s)", shown, type(k) == "string" and near_key(k) or "",
                            table.concat(M.keys, ", ")), 2)
      end
    end
  end
  path = path or M.path()
  needs = needs or {}
  quiet_empty = true
  local lok, cfg, err = pcall(M.load, path)
  quiet_empty = false
  if not lok then error(cfg, 0) end
  if cfg then return cfg end
  local data = core.fsutil.read(path, { follow = true, max = core.fsutil.limits.config })
  if not data then return nil, err end        -- unreadable, or the named file is missing: as load() said
  local values, where, bad = parse_lenient(data, path)
  local server_broken = false
  -- a file the service refuses as unsafe: the message is still queued (intake
  -- accepts), warned; nothing leaves until it is fixed
  local why = unsafe(path)
  if why then bad[#bad + 1] = { key = "(file)", msg = why } end
  local function refuse(msg)
    return nil, msg .. " (a setting intake needs: nothing queued; fix it, `mailhook status` checks it)"
  end
  for _, b in ipairs(bad) do
    -- a typo's nearest key that a good line sets anyway is not the one it meant
    if b.near and values[b.key] ~= nil then b.key = "?" end
    if not b.key then return nil, b.msg .. " (the file cannot be read as settings: nothing queued)" end
    if INTAKE_KEYS[b.key] or needs[b.key] then return refuse(b.msg) end
    if b.key == "server" then server_broken = true end
  end
  -- the secrets file: only the password lives there; intake never needs it
  local sdoc, serr = read_doc(M.secrets_path(path), true)
  local hidden = sdoc and sdoc.hidden
  if sdoc then for k, v in pairs(sdoc.values) do if values[k] == nil then values[k] = v end end
  else
    bad[#bad + 1] = { key = "password", msg = tostring(serr) }
    hidden = true
  end
  -- each value, then the rules between keys: a bad one left at its default
  for _ = 1, #SCHEMA + 4 do
    local c, key, reason, at = validate(values, hidden, path)
    if c then cfg = c break end
    local line = where[key] or where[at]
    local msg = line and string.format("%s:%d: %s: %s", path, line, key, reason)
                      or string.format("%s: %s: %s", path, key, reason)
    if INTAKE_KEYS[key] or needs[key] then return refuse(msg) end
    if key == "server" then server_broken = true end
    bad[#bad + 1] = { key = key, msg = msg }
    if values[key] ~= nil then values[key] = nil
    elseif at and values[at] ~= nil then values[at] = nil
    else return nil, err end
  end
  if not cfg then return nil, err end
  private[cfg] = { path = path, hidden = hidden, server_broken = server_broken }
  if not intake_warned[path] then
    intake_warned[path] = true
    -- said where the caller sees it (stderr, which cron mails) and in the log:
    -- the service's sink when this runs inside it; in a sendmail process, the
    -- sink the settings name (syslog, the journal) for these lines alone
    local sink = core.logsink.get()
    -- (set says nil, err when nothing listens there: then stderr alone, not twice)
    local other = false
    if sink == "stderr" and cfg.log and cfg.log ~= "stderr" then
      local ok, set = pcall(core.logsink.set, cfg.log, { facility = cfg.syslog_facility })
      other = ok and set == true
      if not other then pcall(core.logsink.set, "stderr") end
    end
    -- bounded: a file of thousands of bad lines says ten, then counts the rest
    local said = {}
    for i = 1, math.min(#bad, 10) do said[i] = bad[i] end
    if #bad > 10 then said[11] = { msg = path .. ": and " .. (#bad - 10) .. " more problems" } end
    for _, b in ipairs(said) do
      local line = "warning: " .. b.msg .. ": ignored by intake, the message is queued " ..
        "(a running service keeps the settings it loaded; it refuses this file at its next " ..
        "reload or start: mailhook status)"
      if sink == "stderr" then io.stderr:write("mailhook: ", line, "\n") end
      if sink ~= "stderr" or other then core.logsink.entry("warn", line) end
    end
    if other then core.logsink.set("stderr") end
  end
  return cfg
end

-- admin_hash(cfg) -> the console's admin password hash | nil (never in cfg itself).
function M.admin_hash(cfg) return admin_hashes[cfg] end

-- ready(cfg) -> true | nil, reason: whether anything may be generated.
-- A cfg of load_intake whose `server` line is broken counts as one with a
-- server: the administrator set one (the service says what is wrong with it).
function M.ready(cfg, ...)
  core.check_options("mh.settings.ready", {}, {}, select("#", ...) + 1, 1)
  arg("mh.settings.ready", "cfg", cfg, "table")
  if not cfg.enabled then return nil, "outgoing mail is disabled (mailhook update enabled=true)" end
  if (not cfg.server or #cfg.server == 0) and not (private[cfg] and private[cfg].server_broken) then
    return nil, "no server is set (mailhook update server=HOST)"
  end
  return true
end

-- ------------------------------------------------------------ editing half
-- The names mailhook/settings_edit.lua adds to M.  Reading any of them loads
-- it (once); every other missing name stays nil without loading anything.
local EDIT = { password = true, stored_password = true, token = true, get = true, preview = true,
               warnings = true, saved_warnings = true, file_warnings = true, validate = true, update = true, report = true, format = true,
               command_limits = true, run_first_line = true }

-- What the editing half shares with this one: the same tables, so a cfg this
-- half loaded is known there (its password, its file) and an update there
-- ends what this half holds.
local shared = { near_key = near_key, MASK = MASK, SCHEMA = SCHEMA, SECRET = SECRET, BY_NAME = BY_NAME, ORDER = ORDER,
                 private = private, admin_hashes = admin_hashes, held = held,
                 parse_value = parse_value, validate = validate, parse_text = parse_text,
                 read_both = read_both, arg = arg, empty_warnings = empty_warnings }

-- (the metatable goes only once the half is in: a load that failed, a rule's
-- memory budget refusing it, is tried again at the next use)
setmetatable(M, { __index = function(_, k)
  if not EDIT[k] then return nil end
  require("mailhook.settings_edit")(M, shared)
  setmetatable(M, nil)
  return rawget(M, k)
end })

return M
