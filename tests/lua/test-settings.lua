-- mailhook.settings: parsing, defaults, validation, atomic update, masking.
local tap = require "tap"
local settings = require "mailhook.settings"

local tmpconf = tap.tmpfile

local slurp = tap.slurp

tap.test("defaults when the file is missing", function(t)
  local cfg = assert(settings.load("/nonexistent/dir/mailhook.conf"))
  t:is(cfg.enabled, false, "enabled false")
  t:is(cfg.port, 25, "port 25")
  t:is(cfg.tls, "auto", "tls auto")
  t:is(cfg.tls_required, false, "tls_required false without auth")
  t:is(cfg.tls_min_version, "1.2", "tls_min_version 1.2")
  t:is(cfg.tls_verify, true, "tls_verify true")
  t:is(cfg.retry_interval, 30, "retry_interval 30 s")
  t:is(cfg.retry_max, 1800, "retry_max 30 min")
  t:is(cfg.max_queue_age, 5 * 86400, "max_queue_age 5 days")
  t:is(cfg.connect_timeout, 30, "connect_timeout")
  t:is(cfg.command_timeout, 300, "command_timeout")
  t:is(cfg.data_timeout, 600, "data_timeout")
  t:is(cfg.session_deadline, 900, "session_deadline")
  t:is(cfg.connections, 1, "connections")
  t:is(cfg.log_level, "info", "log_level")
  t:is(cfg.rules, "./rules", "rules")
  t:ok(type(cfg.helo_name) == "string" and #cfg.helo_name > 0, "helo_name defaults to the host name")
  t:is(cfg.server, nil, "no server")
  local ok, err = settings.ready(cfg)
  t:is(ok, nil, "not ready")
  t:like(err, "enabled=true", "names the setting to change")
end)

tap.test("parsing: line ends (LF, CRLF, none at the end), blanks and tabs around keys and values", function(t)
  local path = tmpconf("enabled = yes\r\n\t from =\t pbx@example.com \t\r\n\r\n# a comment\rwith a lone CR\n" ..
                       "server = h.example.com\r\r\n\v\f\n  username = \"  u  \"  \nport = 2525")
  local cfg, err = settings.load(path)
  t:ok(cfg, "loads", err)
  cfg = cfg or {}
  t:is(cfg.enabled, true, "CRLF line")
  t:is(cfg.from, "pbx@example.com", "tabs and blanks around key and value dropped")
  t:same(cfg.server, { "h.example.com" }, "a CR left before a CRLF is a blank too")
  t:is(cfg.username, "  u  ", "a quoted value keeps its blanks")
  t:is(cfg.port, 2525, "a last line without a line end")
  -- the line numbers in messages count LF-ended lines, a lone CR never ends one
  path = tmpconf("enabled = yes\r\n# x\rport = 1\n\nport = 99999\n")
  local _, e2 = settings.load(path)
  t:like(e2 or "", ":4: port: ", "an error names its line (lone CR inside line 2, blank line 3)")
  path = tmpconf("enabled = yes\n\n\n")
  t:ok(settings.load(path), "blank lines at the end")
  path = tmpconf("\n")
  t:ok(settings.load(path), "a file of one line end")
end)

tap.test("parsing: comments, quotes, lists, durations, booleans", function(t)
  local path = tmpconf([[
# comment line
   # indented comment
enabled = yes
server = a.example.com , 192.0.2.7,[2001:db8::1]
from = alerts@example.com
port = 587
retry_interval = 45s
retry_max = 2h
max_queue_age = 3d
connect_timeout = 0.5
helo_name = box.example.com
username = "  spaced \"user\"  "
tls_fingerprint = AB:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89
auth_mechanism = auto
]])
  local cfg, err = settings.load(path)
  t:ok(cfg, "loads", err)
  cfg = cfg or {}
  t:is(cfg.enabled, true, "yes is true")
  t:same(cfg.server, { "a.example.com", "192.0.2.7", "2001:db8::1" }, "server list, failover order (an IPv6 address without its brackets)")
  t:is(cfg.port, 587, "port number")
  t:is(cfg.retry_interval, 45, "45s")
  t:is(cfg.retry_max, 7200, "2h")
  t:is(cfg.max_queue_age, 3 * 86400, "3d")
  t:is(cfg.connect_timeout, 0.5, "fractional seconds")
  t:is(cfg.username, '  spaced "user"  ', "quoted value keeps spaces and escapes")
  t:is(cfg.tls_fingerprint, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
       "fingerprint normalised")
  t:is(cfg.auth_mechanism, nil, "auto mechanism is nil (strongest offered)")
  t:ok(settings.ready(cfg), "ready")
  os.remove(path)
end)

tap.test("implicit TLS defaults the port to 465; auth makes TLS required", function(t)
  local path = tmpconf("tls = implicit\nauth = true\nusername = u\npassword_command = echo pw\n")
  local cfg = assert(settings.load(path))
  t:is(cfg.port, 465, "port 465")
  t:is(cfg.tls_required, true, "tls_required true with auth")
  t:is(settings.password(cfg), "pw", "password_command's first line")
  os.remove(path)
end)

tap.test('a backslash in a "quoted value" is \\\\ or \\": another is refused, never dropped', function(t)
  -- password = "C:\temp\new" was read as C:tempnew: the login failed with a 535 and
  -- nothing said the file was misread (interop review)
  local path = tmpconf('username = "C:\\temp\\new"\n')
  local cfg, err = settings.load(path)
  t:is(cfg, nil, "a \\t in a quoted value is refused")
  t:like(err or "", ':1: username: a backslash inside a "quoted value" must be written \\\\', "naming FILE:LINE and the key")
  t:ok(err and not err:find("temp", 1, true), "without the value (it may be the password)")
  os.remove(path)
  path = tmpconf('username = "C:\\\\temp \\"x\\" \\\\"\npassword = C:\\temp\n')
  cfg, err = settings.load(path)
  t:is(cfg and cfg.username, 'C:\\temp "x" \\', '\\\\ and \\" are the escapes' .. (err and (": " .. err) or ""))
  os.remove(path)
  path = tmpconf('auth = true\nusername = u\npassword = "pa\\ss"\n')
  local _, ierr = settings.load_intake(path)
  t:ok(ierr == nil, "intake warns of it and queues (the password is not intake's)")
  os.remove(path)
end)

tap.test("malformed files name FILE:LINE", function(t)
  local cases = {
    { "port = 25\nthis is not a setting\n", ":2: expected 'key = value'" },
    { "\n\ncolour = blue\n", ":3: unknown setting 'colour'$" },
    { "sever = mx.example.com\n", ":1: unknown setting 'sever' %(did you mean 'server'%?%)$" },
    { "Port = 25\n", ":1: unknown setting 'Port' %(did you mean 'port'%?%)$" },
    -- a hyphen for the underscore (docs/settings.md names retry-max with sever and
    -- Port): the file said "expected 'key = value'", only update named the fix
    { "retry-max = 1h\n", ":1: unknown setting 'retry%-max' %(did you mean 'retry_max'%?%)$" },
    { "port = 25\nport = 26\n", ":2: 'port' set twice %(first on line 1%)" },
    { "port = 70000\n", ":1: port: must be a port number 1%-65535" },
    { "from = not an address\n", ":1: from: 'not an address' is not a valid address" },
    -- a From as a mail program writes it: the address alone is wanted, and said
    { "from = Zoë Müller <pbx@example.com>\n", ":1: from: .* this setting takes the address alone, " ..
      "without a display name %('pbx@example.com'%)" },
    { "admin_address = Root <root@example.com>\n", ":1: admin_address: .* without a display name" },
    { "tls = maybe\n", ":1: tls: must be one of auto, implicit, starttls, none" },
    { "tls_min_version = 1.4\n", ":1: tls_min_version: must be one of 1.0, 1.1, 1.2, 1.3" },
    { "auth_mechanism = digest-md5\n", ":1: auth_mechanism: must be one of" },
    { "enabled = perhaps\n", ":1: enabled: must be true or false" },
    { "retry_max = soon\n", ":1: retry_max: must be a positive duration" },
    { "data_timeout = 400d\n", ":1: data_timeout: must be at most 365d, the longest wait the SMTP engine takes" },
    { "server = ok.example.com,bad_host!\n", ":1: server: 'bad_host!' is not a valid host name" },
    { 'username = "open\n', ":1: username: unterminated" },
    { "x\nauth = true\n", ":1: expected" },
    { "# c\nauth = true\n", ":2: username: auth is true but username is not set" },
    { "auth = true\ntls = none\nusername = u\npassword = p\n", ":2: tls: tls = none but tls_required is true" },
    { "connections = 0\n", ":1: connections: must be a whole number 1%-64" },
    { "tls_ca_file = /nonexistent/ca.pem\n", ":1: tls_ca_file: cannot read" },
  }
  for _, c in ipairs(cases) do
    local path = tmpconf(c[1])
    local cfg, err = settings.load(path)
    t:is(cfg, nil, "rejects " .. string.format("%q", c[1]))
    t:like(err, "^" .. path:gsub("%p", "%%%0") .. c[2], "message for " .. string.format("%q", c[1]))
    os.remove(path)
  end
end)

-- The SMTP engine's four timeouts: what the settings take, the engine takes
-- (data_timeout = 400d was a valid setting, then every connection raised
-- "cfg.data_timeout must be seconds ... up to 31536000": an outage without end).
tap.test("SMTP timeouts: at most the engine's year; every one taken is one mh.smtp.connect takes", function(t)
  local smtp = require "mailhook.smtp"
  for _, k in ipairs { "connect_timeout", "command_timeout", "data_timeout", "session_deadline" } do
    local cfg, why, info = settings.validate({ [k] = "366d" })
    t:ok(cfg == nil and type(info) == "table" and info.key == k and
         tostring(why):match("^" .. k .. ": must be at most 365d, the longest wait the SMTP engine takes"),
         k .. " = 366d refused", why)
    cfg = settings.validate({ [k] = "365d" })
    t:is(cfg and cfg[k], 365 * 86400, k .. " = 365d taken")
    if cfg then
      local ok, err = pcall(smtp.check_cfg, "mh.smtp.connect", cfg, 1)
      t:ok(ok, k .. " = 365d: mh.smtp.connect's cfg check takes it", err)
    end
  end
end)

tap.test("server: IP literals checked as inet_pton would, host:port refused naming port, a root dot dropped", function(t)
  local good = { ["::1"] = "::1", ["[::1]"] = "::1", ["[2001:DB8::1]"] = "2001:DB8::1", ["2001:db8::1"] = "2001:db8::1",
                 ["::ffff:192.0.2.1"] = "::ffff:192.0.2.1", ["1:2:3:4:5:6:7:8"] = "1:2:3:4:5:6:7:8",
                 ["192.0.2.1"] = "192.0.2.1", ["mail.example.com."] = "mail.example.com",
                 ["MX1.Example.COM"] = "MX1.Example.COM", ["localhost"] = "localhost",
                 ["[192.0.2.1]"] = "192.0.2.1", ["[IPv6:2001:db8::1]"] = "2001:db8::1" }
  for v, want in pairs(good) do
    local cfg, err = settings.validate({ server = v })
    t:ok(cfg, "accepted: " .. v, err)
    if cfg then t:is(cfg.server[1], want, "as " .. want) end
  end
  local bad = { ["127.0.0.1:2525"] = "the port goes apart %(port = 2525%)",
                ["mail.example.com:587"] = "the port goes apart %(port = 587%)",
                ["[2001:db8::1]:2525"] = "the port goes apart %(port = 2525%)",
                ["::::"] = "not a valid host name or IP address$", ["1::2::3"] = "not a valid", ["12345::1"] = "not a valid",
                ["1:2:3:4:5:6:7:8:9:a"] = "not a valid", ["10.0.0"] = "not a valid", ["999.1.1.1"] = "not a valid",
                ["mail.example.com.."] = "not a valid", ["."] = "not a valid", ["[999.1.1.1]"] = "not a valid",
                ["[192.0.2]"] = "not a valid", ["[mail.example.com]"] = "not a valid" }
  for v, why in pairs(bad) do
    local cfg, err = settings.validate({ server = v })
    t:is(cfg, nil, "refused: " .. v)
    t:like(tostring(err), why, "why: " .. v)
  end
end)

tap.test("helo_name: a host name or an address literal, kept bracketed (docs/settings.md)", function(t)
  for _, v in ipairs { "box.example.com", "[192.0.2.1]", "[::1]", "[IPv6:2001:db8::1]" } do
    local cfg, err = settings.validate({ helo_name = v })
    t:ok(cfg, "accepted: " .. v, err)
  end
  local cfg = settings.validate({ helo_name = "[192.0.2.1]" })
  t:is(cfg and cfg.helo_name, "[192.0.2.1]", "an IPv4 literal keeps its brackets (it was refused)")
  for _, v in ipairs { "[999.1.1.1]", "[192.0.2.1", "box example" } do
    t:is((settings.validate({ helo_name = v })), nil, "refused: " .. v)
  end
end)

tap.test("intake: a hyphenated key is an unknown key, warned with its fix, not a line naming none", function(t)
  -- retry_max is no key intake uses: the message is queued, as for `sever`
  -- (it refused, as for `foo bar`, and said "expected 'key = value'")
  local path = tmpconf("from = pbx@example.com\nretry-max = 1h\n")
  local cfg, err = settings.load_intake(path)
  t:ok(cfg ~= nil, "intake takes the file" .. (err and (": " .. err) or ""))
  -- a hyphenated typo of a key intake uses still refuses, naming its fix
  path = tmpconf("from = pbx@example.com\nfrom-rewrite = always\n")
  cfg, err = settings.load_intake(path)
  t:is(cfg, nil, "from-rewrite: refused (a key intake uses)")
  t:like(tostring(err), ":2: unknown setting 'from%-rewrite' %(did you mean 'from_rewrite'%?%)", "naming its fix")
end)

tap.test("update names the key an unknown one is a typo of", function(t)
  local path = tmpconf("port = 25\n")
  local ok, err = settings.update({ ["retry-max"] = "1h" }, path)
  t:is(ok, nil, "refused")
  t:is(err, "unknown setting 'retry-max' (did you mean 'retry_max'?)", "with the near key")
  ok, err = settings.update({ colour = "blue" }, path)
  t:is(err, "unknown setting 'colour'", "none when nothing is near")
  os.remove(path)
end)

tap.test("a UTF-8 byte order mark before the first key is no part of it", function(t)
  local path = tmpconf("\239\187\191enabled = true\r\nserver = 127.0.0.1\r\nfrom = a@example.com\r\n")
  local cfg, err = settings.load(path)
  t:ok(cfg, "loads", err)
  t:is(cfg and cfg.enabled, true, "the first key read")
  t:ok(settings.update({ port = 2525 }, path), "update")
  t:is(slurp(path), "enabled = true\nserver = 127.0.0.1\nfrom = a@example.com\nport = 2525\n",
       "written without the mark")
  os.remove(path)
end)

tap.test("an unreadable file is an error naming it", function(t)
  local cfg, err = settings.load("/")  -- a folder: cannot be read as a file
  t:is(cfg, nil, "error")
  t:like(err, "^/", "names the file")
end)

tap.test("the password never appears in cfg or get()", function(t)
  local path = tmpconf("auth = true\nusername = bob\npassword = hunter2-SECRET\n")
  local cfg = assert(settings.load(path))
  for k, v in pairs(cfg) do
    t:ok(not tostring(v):find("hunter2", 1, true), "cfg." .. k .. " does not hold it")
  end
  t:is(cfg.password, nil, "cfg.password is nil")
  t:is(settings.password(cfg), "hunter2-SECRET", "password(cfg) gives it")
  local shown = assert(settings.get(path))
  t:is(shown.password, "********", "get() masks it")
  local text = table.concat(settings.format(cfg), "\n")
  t:ok(not text:find("hunter2", 1, true), "format() masks it")
  t:like(text, "password = %*%*%*%*%*%*%*%*", "and shows that one is set")
  os.remove(path)
end)

tap.test("password_command and oauth_token_command failures", function(t)
  local path = tmpconf("auth = true\nusername = u\npassword_command = exit 3\noauth_token_command = printf 'tok1\\ntok2'\n")
  local cfg = assert(settings.load(path))
  local pw, err = settings.password(cfg)
  t:is(pw, nil, "a failing password_command gives no password")
  t:like(err, "password_command failed", "and says so")
  t:is(settings.token(cfg), "tok1", "token is the first line")
  os.remove(path)
end)

tap.test("password_command runs off the loop: the service goes on while it runs", function(t)
  -- in a task (the service's delivery login, a console Test) the command runs in
  -- a child process: a ticker task keeps ticking meanwhile.  With io.popen in
  -- this process the loop stopped for the whole second: not one tick
  local core = require "mailhook.core"
  local mh = require "mailhook"
  local path = tmpconf("auth = true\nusername = u\npassword_command = sleep 1; echo slowpw\n" ..
                       "oauth_token_command = sleep 1; echo slowtok\n")
  local cfg = assert(settings.load(path))
  local ticks = 0
  local ticking = true   -- (ended by this flag, not by cancel: a cancelled sleep is logged as an error)
  local ticker = mh.spawn(function() while ticking do core.sleep(0.05); ticks = ticks + 1 end end)
  t:is(settings.password(cfg), "slowpw", "the password, from the child")
  t:ok(ticks >= 5, "the loop ran while password_command did (" .. ticks .. " ticks of 50 ms in 1 s)")
  ticks = 0
  t:is(settings.token(cfg), "slowtok", "the token, from the child")
  t:ok(ticks >= 5, "and while oauth_token_command did (" .. ticks .. " ticks)")
  ticking = false
  ticker:wait()
  -- the child keeps the parent's limits and wording
  local lim = settings.command_limits
  settings.command_limits = { seconds = 1, bytes = lim.bytes }
  local cfg2 = assert(settings.load(tmpconf("auth = true\nusername = u\npassword_command = sleep 5\n")))
  local pw, err = settings.password(cfg2)
  settings.command_limits = lim
  t:is(pw, nil, "a command over the limit gives no password")
  t:like(err, "password_command did not finish within 1 s", "and says so, with the parent's limit")
  os.remove(path)
end)

tap.test("update writes atomically, keeps mode, comments; invalid writes nothing", function(t)
  local path = tmpconf("# site settings\nport = 25\n\n# trailing comment\n")
  os.execute("chmod 0604 '" .. path .. "'")
  local cfg, err = settings.update({ server = "mx.example.com", port = 587, enabled = true,
                                     from = "a@example.com", retry_max = "1h" }, path)
  t:ok(cfg, "update ok", err)
  t:is(slurp(path), "# site settings\nport = 587\n\n# trailing comment\nenabled = true\n" ..
       "from = a@example.com\nserver = mx.example.com\nretry_max = 1h\n", "file content")
  local p = io.popen("stat -c %a '" .. path .. "'")
  t:is(p:read("l"), "604", "the file's own mode kept (a new one is 0644: tests/integration/settings.sh)")
  p:close()
  local before = slurp(path)
  local ok2, err2, info = settings.update({ port = 587, from = "bad@@x" }, path)
  t:is(ok2, nil, "invalid update fails")
  t:is(info.key, "from", "names the bad key")
  t:like(err2, "^from: ", "message starts with the key")
  t:is(slurp(path), before, "file byte-identical")
  local ok3, _, info3 = settings.update({ colour = "red" }, path)
  t:is(ok3, nil, "unknown key fails")
  t:is(info3.key, "colour", "names it")
  t:is(slurp(path), before, "file still byte-identical")
  local ok4, err4, info4 = settings.update({ auth = true }, path)
  t:is(ok4, nil, "a change breaking a rule between keys fails")
  t:is(info4.key, "username", "names the missing key")
  t:like(err4, "username is not set", "says why")
  t:is(slurp(path), before, "file still byte-identical")
  local cfg5 = assert(settings.update({ port = "" }, path))
  t:is(cfg5.port, 25, "'' unsets a key")
  t:ok(not slurp(path):find("port", 1, true), "and removes its line")
  local ok6, _, info6 = settings.update({ username = "a\nport = 1" }, path)
  t:is(ok6, nil, "a value with a line break is refused")
  t:is(info6.key, "username", "naming the key")
  os.remove(path)
end)

tap.test("update round-trips awkward values", function(t)
  local path = tmpconf("")
  local cfg = assert(settings.update({ username = ' "quoted" with spaces ', password = " p#w\\x ",
                                       auth = true, tls_min_version = 1.3, server = { "a.example", "b.example" } }, path))
  local again = assert(settings.load(path))
  t:is(again.username, ' "quoted" with spaces ', "username survives")
  t:is(settings.password(again), " p#w\\x ", "password survives")
  t:is(again.tls_min_version, "1.3", "number 1.3 is version 1.3")
  t:same(again.server, { "a.example", "b.example" }, "list survives")
  t:is(settings.password(cfg), " p#w\\x ", "cfg returned by update knows the password")
  os.remove(path)
end)

tap.test("validate() checks a table without a file", function(t)
  t:ok(settings.validate { port = 2525, server = "x.example" }, "valid")
  local v = assert(settings.validate { auth = true, username = "u", password = "pw" })
  t:is(v.password, nil, "validated cfg does not hold the password")
  t:is(settings.password(v), "pw", "but password() knows it")
  local ok, err, info = settings.validate { port = "25x" }
  t:is(ok, nil, "invalid")
  t:is(info.key, "port", "names the key")
  t:like(err, "^port:", "message")
end)

tap.test("a value of 60 KB (the console's body limit): refused at once, quoted short", function(t)
  -- the host parser's "absolute name" pattern and the list trims backtracked:
  -- quadratic, 60 000 bytes held the service's loop (the console's Save) for a minute
  local n = 60000
  for _, case in ipairs { { "helo_name", string.rep("a", n) }, { "server", string.rep("a", n) },
                          { "server", "x" .. string.rep(" ", n) .. "y" }, { "default_domain", string.rep("a", n) },
                          { "admin_address", "x" .. string.rep(" ", n) .. "y" }, { "port", string.rep("9", n) } } do
    local key, v = case[1], case[2]
    local t0 = os.clock()
    local ok, err = settings.validate { [key] = v }
    local dt = os.clock() - t0
    t:ok(not ok and dt < 1, string.format("%s of %d bytes: refused in %.2f s", key, #v, dt))
    t:ok(err and #err < 400, key .. ": the message quotes the value cut (" .. tostring(err and #err) .. " bytes)")
  end
end)

-- `settings` shows the EHLO name in effect: a short host name is not what is
-- sent (smtp.helo qualifies it), and the line said only "helo_name = vm".
tap.test("format: a short helo_name says EHLO sends the full name", function(t)
  local core = require "mailhook.core"
  local host = core.fsutil.hostname()
  local function line(cfg)
    for _, l in ipairs(settings.format(cfg)) do if l:match("^helo_name = ") then return l end end
  end
  local c = assert(settings.validate { helo_name = "box.example.com" })
  t:is(line(c), "helo_name = box.example.com", "a full name: as it is")
  if host and not host:find("[.%[]") then
    c = assert(settings.validate {})
    t:is(line(c), "helo_name = " .. host .. " (a short name: EHLO sends the full one, from /etc/hosts or DNS, else " ..
         host .. ".localdomain)", "the default, a short host name: said")
  else
    t:diag("host name " .. tostring(host) .. " is not short: its case not tried")
  end
end)

-- load(OTHER): the relative paths OTHER holds are from OTHER's folder, not
-- from the folder of the settings file in use (-c, $MAILHOOK_CONF): they
-- were, so tls_ca_file = ca.pem beside OTHER was refused ("cannot read"), and
-- its aliases, rules and admin token were looked for beside the other file.
tap.test("relative paths are from the folder of the file that names them", function(t)
  local core = require "mailhook.core"
  local function folder(name)
    local d = os.tmpname()
    os.remove(d)
    assert(core.rstate.mkdir(d .. name))
    return d .. name
  end
  local function put(path, text)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
  end
  local a, b = folder("-inuse"), folder("-other")
  local in_use = core.paths.conf
  core.paths.conf = a .. "/mailhook.conf"
  put(a .. "/mailhook.conf", "aliases = aliases\n")
  put(b .. "/other.conf", "tls_ca_file = ca.pem\naliases = aliases\nrules = myrules\ntemplates = ./tpl\n" ..
                          "admin_token_file = token\n")
  put(b .. "/ca.pem", "a certificate\n")
  put(b .. "/aliases", "ops: ops@b.example\n")
  local cfg, err = settings.load(b .. "/other.conf")
  t:ok(cfg, "the other file loads: its tls_ca_file is found beside it", err)
  cfg = cfg or {}
  t:is(cfg.tls_ca_file, b .. "/ca.pem", "tls_ca_file: from the other file's folder")
  t:is(require("mailhook.rules").default_paths(cfg), b .. "/myrules", "rules: from the other file's folder")
  local list = cfg.aliases and require("mailhook.submit").resolver(cfg)("ops")
  t:same(list, { "ops@b.example" }, "aliases: the other file's aliases file")
  t:is(settings.resolve(cfg, cfg.admin_token_file), b .. "/token", "admin_token_file: resolve() from its folder")
  t:is(settings.resolve(cfg, cfg.templates), b .. "/tpl", "templates: resolve() from its folder")
  t:is(settings.resolve(cfg, "/etc/x"), "/etc/x", "an absolute path is itself")
  local p = settings.preview({ tls_ca_file = "ca.pem" }, b .. "/other.conf")
  t:is(p and p.tls_ca_file, b .. "/ca.pem", "preview(changes, OTHER): from the other file's folder")
  -- the file in use, and a cfg no file was read for, are as before
  local mine = assert(settings.load())
  t:is(settings.resolve(mine, mine.aliases), a .. "/aliases", "the file in use: from its own folder")
  t:is(settings.resolve(assert(settings.validate {}), "x"), a .. "/x", "a cfg of no file: from the file in use's")
  core.paths.conf = in_use
  for _, f in ipairs { a .. "/mailhook.conf", b .. "/other.conf", b .. "/ca.pem", b .. "/aliases" } do
    os.remove(f)
  end
  os.remove(a)
  os.remove(b)
end)

return tap.done()
