-- The public Lua API refuses what it cannot mean (docs/lua-library.md, "Bad
-- input"): an unknown option, an argument too many or a wrong type raises,
-- naming the function and the option or argument.  They were silently
-- accepted (mh.sleep(0, 1), task:wait(1), mh.queue.flush{timout = 1} waited
-- with no bound, mh.template(src, {htlm = true}) was a template with no HTML
-- escaping) or failed inside the library ("attempt to index a number value").
-- One case per public function and kind of misuse; the wording is the one
-- helper's (mh_l_check_options / core.check_options, mh_l_arg_error).
local tap = require "tap"
local mh = require "mailhook"
local core = mh.core
local rs = require "mailhook.rule_state"

-- a spool of its own: before the fix some of these calls went ahead (a flush)
local spool_dir = io.popen("mktemp -d " .. (os.getenv("TMPDIR") or "/tmp") .. "/mh-api-misuse.XXXXXX"):read("l")
mh.configure { spool = spool_dir }

local m = assert(mh.message { from = "a@example.com", to = "b@example.com", subject = "s", text = "t" })
local period = rs.period { weekdays = "mon", times = "22:00-07:00", tz = "UTC" }
local render = mh.template("x")
local smtp_conn = core.smtp.new { host = "127.0.0.1" }

-- {name, function, arguments, the error (exact)}
local cases = {
  -- an argument too many
  { "mh.sleep", mh.sleep, { 0, 1 }, "mh.sleep: takes at most 1 argument (got 2)" },
  { "mh.every", mh.every, { 1, print, 5 }, "mh.every: takes at most 2 arguments (got 3)" },
  { "mh.resolve", mh.resolve, { "x", "y" }, "mh.resolve: takes at most 1 argument (got 2)" },
  { "mh.now", mh.now, { 1 }, "mh.now: takes no arguments (got 1)" },
  { "mh.monotonic", mh.monotonic, { 1 }, "mh.monotonic: takes no arguments (got 1)" },
  { "mh.current_task", mh.current_task, { 1 }, "mh.current_task: takes no arguments (got 1)" },
  { "mh.step", mh.step, { 1 }, "mh.step: takes no arguments (got 1)" },
  { "mh.pollfd", mh.pollfd, { 1 }, "mh.pollfd: takes no arguments (got 1)" },
  { "mh.timeout", mh.timeout, { 1 }, "mh.timeout: takes no arguments (got 1)" },
  { "mh.wait_mode", mh.wait_mode, { 1 }, "mh.wait_mode: takes no arguments (got 1)" },
  { "mh.log.level extra", mh.log.level, { "info", 1 }, "mh.log.level: takes at most 1 argument (got 2)" },
  { "mh.log.syslog extra", mh.log.syslog, { false, "x", 1 }, "mh.log.syslog: takes at most 2 arguments (got 3)" },
  { "mh.configure extra", mh.configure, { {}, {} }, "mh.configure: takes at most 1 argument (got 2)" },
  { "mh.on extra", mh.on, { "e", print, "n", 1 }, "mh.on: takes at most 3 arguments (got 4)" },
  { "mh.emit extra", mh.emit, { "e", {}, 1 }, "mh.emit: takes at most 2 arguments (got 3)" },
  { "mh.message extra", mh.message, { {}, {} }, "mh.message: takes at most 1 argument (got 2)" },
  { "msg:bytes", m.bytes, { m, 1 }, "msg:bytes: takes no arguments (got 1)" },
  { "msg:envelope", m.envelope, { m, 1 }, "msg:envelope: takes no arguments (got 1)" },
  { "msg:id", m.id, { m, 1 }, "msg:id: takes no arguments (got 1)" },
  { "msg:save", m.save, { m, "/nonexistent/x", 1 }, "msg:save: takes at most 1 argument (got 2)" },
  { "mh.enqueue extra", mh.enqueue, { {}, {}, 1 }, "mh.enqueue: takes at most 2 arguments (got 3)" },
  { "mh.template extra", mh.template, { "x", {}, 1 }, "mh.template: takes at most 2 arguments (got 3)" },
  { "render extra", render, { {}, 1 }, "mh.template: a render takes at most 1 argument (got 2)" },
  { "mh.template.file extra", mh.template.file, { "/nonexistent", {}, 1 }, "mh.template.file: takes at most 2 arguments (got 3)" },
  { "mh.template.default extra", mh.template.default, { "alarm", 1 }, "mh.template.default: takes at most 1 argument (got 2)" },
  { "mh.template.message extra", mh.template.message, { "alarm", {}, 1 }, "mh.template.message: takes at most 2 arguments (got 3)" },
  { "mh.template.dirs extra", mh.template.dirs, { 1 }, "mh.template.dirs: takes no arguments (got 1)" },
  { "mh.queue.list extra", mh.queue.list, { "failed", 1 }, "mh.queue.list: takes at most 1 argument (got 2)" },
  { "mh.queue.show extra", mh.queue.show, { "0123456789abcdef", 1 }, "mh.queue.show: takes at most 1 argument (got 2)" },
  { "mh.queue.remove extra", mh.queue.remove, { "0123456789abcdef", "/nonexistent", 1 }, "mh.queue.remove: takes at most 2 arguments (got 3)" },
  { "mh.queue.retry extra", mh.queue.retry, { "0123456789abcdef", "/nonexistent", 1 }, "mh.queue.retry: takes at most 2 arguments (got 3)" },
  { "mh.queue.remove dir", mh.queue.remove, { "0123456789abcdef", 1 }, "mh.queue.remove: dir must be a string (got number)" },
  { "mh.queue.retry dir", mh.queue.retry, { "0123456789abcdef", 1 }, "mh.queue.retry: dir must be a string (got number)" },
  { "mh.queue.maildrop extra", mh.queue.maildrop, { "/nonexistent", 1, 1 }, "mh.queue.maildrop: takes at most 2 arguments (got 3)" },
  { "mh.queue.maildrop dir", mh.queue.maildrop, { 1 }, "mh.queue.maildrop: dir must be a string (got number)" },
  { "mh.queue.maildrop limit", mh.queue.maildrop, { "/nonexistent", "1" }, "mh.queue.maildrop: limit must be an integer (got string)" },
  { "mh.queue.outage extra", mh.queue.outage, { "/nonexistent", 1 }, "mh.queue.outage: takes at most 1 argument (got 2)" },
  { "mh.queue.flush extra", mh.queue.flush, { {}, 1 }, "mh.queue.flush: takes at most 1 argument (got 2)" },
  { "mh.settings.load extra", mh.settings.load, { "/nonexistent", 1 }, "mh.settings.load: takes at most 1 argument (got 2)" },
  { "mh.settings.get extra", mh.settings.get, { "/nonexistent", 1 }, "mh.settings.get: takes at most 1 argument (got 2)" },
  { "mh.settings.ready extra", mh.settings.ready, { {}, 1 }, "mh.settings.ready: takes at most 1 argument (got 2)" },
  { "mh.settings.password extra", mh.settings.password, { {}, 1 }, "mh.settings.password: takes at most 1 argument (got 2)" },
  { "mh.settings.warnings extra", mh.settings.warnings, { {}, 1 }, "mh.settings.warnings: takes at most 1 argument (got 2)" },
  { "mh.settings.secrets_path extra", mh.settings.secrets_path, { "x.conf", 1 },
    "mh.settings.secrets_path: takes at most 1 argument (got 2)" },
  { "mh.smtp.connect extra", mh.smtp.connect, { {}, {}, {}, 1 }, "mh.smtp.connect: takes at most 3 arguments (got 4)" },
  { "throttle extra", rs.throttle, { { key = "k", max = 1, per = 60 }, 1 }, "throttle: takes at most 1 argument (got 2)" },
  { "digest extra", rs.digest, { { key = "k", window = 60 }, 1 }, "digest: takes at most 1 argument (got 2)" },
  { "period extra", rs.period, { { weekdays = "mon" }, 1 }, "period: takes at most 1 argument (got 2)" },
  { "hold extra", rs.hold, { {}, 0, "why", 1 }, "hold: takes at most 3 arguments (got 4)" },
  { "period:contains extra", period.contains, { period, 0, 1 }, "period:contains: takes at most 1 argument (got 2)" },
  { "period:ends extra", period.ends, { period, 0, 1 }, "period:ends: takes at most 1 argument (got 2)" },
  { "period:route extra", period.route, { period, {}, {}, 1 }, "period:route: takes at most 2 arguments (got 3)" },
  { "msg.type_for extra", core.msg.type_for, { "x.pdf", 1 }, "msg.type_for: takes at most 1 argument (got 2)" },
  { "msg.valid_address extra", core.msg.valid_address, { "a@b", 1 }, "msg.valid_address: takes at most 1 argument (got 2)" },
  { "msg.utf8 extra", core.msg.utf8, { "x", 1 }, "msg.utf8: takes at most 1 argument (got 2)" },
  -- an unknown option
  { "mh.template htlm", mh.template, { "x", { htlm = true } }, "mh.template: unknown option 'htlm' (known: html, header, name)" },
  { "mh.template.file htm", mh.template.file, { "/nonexistent", { htm = true } },
    "mh.template.file: unknown option 'htm' (known: html, header, name)" },
  { "mh.template.message set key", mh.template.message, { { subjct = render } },
    "mh.template.message: unknown option 'subjct' (known: subject, text, html)" },
  { "mh.enqueue foo", mh.enqueue, { {}, { foo = 1 } }, "mh.enqueue: unknown option 'foo' (known: spool, conf, note, check)" },
  { "mh.queue.flush timout", mh.queue.flush, { { timout = 1 } },
    "mh.queue.flush: unknown option 'timout' (known: timeout, progress, spool, spool_dir, cfg, connect, emit, ready)" },
  { "mh.smtp.connect limits", mh.smtp.connect, { {}, nil, { conect_timeout = 1 } },
    "mh.smtp.connect: unknown option 'conect_timeout' (known: connect_timeout, command_timeout, data_timeout, session_deadline)" },
  { "period:route critcal", period.route, { period, {}, { critcal = true } },
    "period:route: unknown option 'critcal' (known: critical, elsewhere, reason)" },
  -- a wrong type, or a missing argument
  { "mh.enqueue 5", mh.enqueue, { {}, 5 }, "mh.enqueue: options must be a table (got number)" },
  { "mh.enqueue note", mh.enqueue, { {}, { note = "no" } }, "mh.enqueue: note must be a boolean (got string)" },
  { "mh.enqueue nothing", mh.enqueue, {}, "mh.enqueue: expects a table of message fields (got nil)" },
  { "mh.template 5", mh.template, { "x", 5 }, "mh.template: options must be a table (got number)" },
  { "mh.template html 1", mh.template, { "x", { html = 1 } }, "mh.template: html must be a boolean (got number)" },
  { "mh.template source", mh.template, { 5 }, "mh.template: source must be a string (got number)" },
  { "render context", render, { 5 }, "mh.template: context must be a table (got number)" },
  { "mh.template.default 5", mh.template.default, { 5 }, "mh.template.default: name must be a string (got number)" },
  { "mh.template.message nil", mh.template.message, { nil, n = 1 },
    "mh.template.message: name_or_set must be a template name or a set of mh.template.default (got nil)" },
  { "mh.template.message 5", mh.template.message, { 5 },
    "mh.template.message: name_or_set must be a template name or a set of mh.template.default (got number)" },
  { "mh.template.message subject string", mh.template.message, { { subject = "S" } },
    "mh.template.message: subject must be a function (a render of mh.template; got string)" },
  { "mh.template.message context", mh.template.message, { { subject = render }, "ctx" },
    "mh.template.message: context must be a table (got string)" },
  { "mh.settings.get 5", mh.settings.get, { 5 }, "mh.settings.get: path must be a string (got number)" },
  { "mh.settings.load 5", mh.settings.load, { 5 }, "mh.settings.load: path must be a string (got number)" },
  { "mh.settings.load_intake needs", mh.settings.load_intake, { nil, 5, n = 2 },
    "mh.settings.load_intake: needs must be a table {key = true} of setting names (got number)" },
  -- a need that names no setting was taken and meant nothing (a problem in
  -- `rules` still only warned): named, with the settings it may name
  { "mh.settings.load_intake needs rulez", mh.settings.load_intake, { nil, { rulez = true }, n = 2 },
    "mh.settings.load_intake: needs: 'rulez' is not a setting (did you mean 'rules'?) (needs is a set " ..
    "{key = true} of: " .. table.concat(mh.settings.keys, ", ") .. ")" },
  { "mh.settings.load_intake needs list", mh.settings.load_intake, { nil, { "rules" }, n = 2 },
    "mh.settings.load_intake: needs: [1] is not a setting (needs is a set {key = true} of: " ..
    table.concat(mh.settings.keys, ", ") .. ")" },
  -- intake's own (sendmail, maildrop): a misspelt ctx key ({recieved = true})
  -- was no Received line
  { "submit.prepare recieved", require("mailhook.submit").prepare, { { recieved = true }, "" },
    "submit.prepare: unknown option 'recieved' (known: cfg, caller, rcpts, t, from, fullname, notify, ret, " ..
    "envid, rcpt_params, from_params, time, received, max_items, resolver)" },
  { "submit.prepare extra", require("mailhook.submit").prepare, { {}, "", 1 },
    "submit.prepare: takes at most 2 arguments (got 3)" },
  { "submit.prepare head", require("mailhook.submit").prepare, { {}, nil, n = 2 },
    "submit.prepare: head must be a string (got nil)" },
  { "mh.settings.ready 5", mh.settings.ready, { 5 }, "mh.settings.ready: cfg must be a table (settings) (got number)" },
  { "mh.settings.update path", mh.settings.update, { {}, 5 }, "mh.settings.update: path must be a string (got number)" },
  { "mh.smtp.test cfg", mh.smtp.test, { { cfg = 5 } }, "mh.smtp.test: cfg must be a table (settings; got number)" },
  { "mh.smtp.test on_stage", mh.smtp.test, { { cfg = {}, on_stage = 1 } }, "mh.smtp.test: on_stage must be a function (got number)" },
  { "mh.smtp.connect report", mh.smtp.connect, { {}, 5 }, "mh.smtp.connect: report must be a table (got number)" },
  { "period:contains now", period.contains, { period, "now" },
    "period:contains: t must be an epoch time (a finite number; got string)" },
  { "period tz", rs.period, { { tz = "Mars/X" } }, "period: tz: unknown time zone 'Mars/X'" },
  { "hold reason", rs.hold, { {}, 0, 5 }, "hold: reason must be a string (got number)" },
  -- L2: a missing argument is "no value" (it said "string", the type of the
  -- function's own name pushed above the arguments)
  { "mh.sleep()", mh.sleep, {}, "mh.sleep: seconds must be a number (got no value)" },
  { "smtp.new()", core.smtp.new, {}, "smtp.new: options must be a table (got no value)" },
  { "mh.every()", mh.every, {}, "mh.every: fn must be a function (got no value)" },
  -- mh.log.level names itself so (it said mh.log_level), and a number as it is
  { "mh.log.level 5", mh.log.level, { 5 }, "mh.log.level: level must be debug, info, warn or error (got 5)" },
  { "mh.log.syslog ident", mh.log.syslog, { true, {} }, "mh.log.syslog: ident must be a string (got table)" },
}

tap.test("misuse of the public API raises, naming the function and what is wrong", function(t)
  for _, c in ipairs(cases) do
    local ok, err = pcall(c[2], table.unpack(c[3], 1, c[3].n or #c[3]))
    t:ok(not ok, c[1] .. ": raises")
    t:is(err, c[4], c[1])
  end
end)

-- The cfg of mh.smtp.connect and mh.smtp.test: a misspelt key ({sever = ...},
-- {prot = 587}) was silently ignored (no server, or port 25), a value of the
-- wrong type read as its default.  An unknown key raises naming it with the
-- closest known one, else listing them; the keys that are no settings
-- (greeting_wait) are known, and what settings.load and get give passes.
tap.test("mh.smtp.connect / mh.smtp.test: cfg's unknown keys and wrong types raise, naming them", function(t)
  for _, c in ipairs {
    { "connect sever", mh.smtp.connect, { { sever = "smtp.example.com" } },
      "mh.smtp.connect: unknown key 'sever' in cfg (did you mean 'server'?)" },
    { "connect prot", mh.smtp.connect, { { server = "127.0.0.1", prot = 587 } },
      "mh.smtp.connect: unknown key 'prot' in cfg (did you mean 'port'?)" },
    { "test cfg greting_wait", mh.smtp.test, { { cfg = { server = "127.0.0.1", greting_wait = 1 } } },
      "mh.smtp.test: unknown key 'greting_wait' in cfg (did you mean 'greeting_wait'?)" },
    { "test cfg tsl", mh.smtp.test, { { cfg = { tsl = "none" } } },
      "mh.smtp.test: unknown key 'tsl' in cfg (did you mean 'tls'?)" },
    { "connect port abc", mh.smtp.connect, { { server = "127.0.0.1", port = "abc" } },
      "mh.smtp.connect: cfg.port: must be a port number 1-65535 (got 'abc')" },
    { "connect tls true", mh.smtp.connect, { { server = "127.0.0.1", tls = true } },
      "mh.smtp.connect: cfg.tls: must be one of auto, implicit, starttls, none (got 'true')" },
    { "connect auth maybe", mh.smtp.connect, { { server = "127.0.0.1", auth = "maybe" } },
      "mh.smtp.connect: cfg.auth: must be true or false (got 'maybe')" },
    { "connect server 5", mh.smtp.connect, { { server = { "a.example", 5 } } },
      "mh.smtp.connect: cfg.server: '5' is not a valid host name or IP address" },
    { "test greeting_wait -1", mh.smtp.test, { { cfg = { server = "127.0.0.1", greeting_wait = -1 } } },
      "mh.smtp.test: cfg.greeting_wait: must be a positive duration such as 30, 30s, 30m, 2h or 5d (got '-1')" },
  } do
    local ok, err = pcall(c[2], table.unpack(c[3]))
    t:ok(not ok, c[1] .. ": raises")
    t:is(err, c[4], c[1])
  end
  -- nothing near: every known key listed, the settings' and greeting_wait
  local ok, err = pcall(mh.smtp.connect, { xyzzy = 1 })
  t:ok(not ok, "a key near none raises")
  t:like(err, "^mh%.smtp%.connect: unknown key 'xyzzy' in cfg %(known: enabled, from, server, port, .*, greeting_wait%)$",
         "listing the known keys")
  -- at the caller's line
  ok, err = pcall(function() local s = mh.smtp.connect { sever = "x" }; return s end)
  t:like(err, "^[^:]*test%-api%-misuse%.lua:%d+: mh%.smtp%.connect: unknown key 'sever'", "at the caller's line")
  ok, err = pcall(function() local s = mh.smtp.connect { server = "x", port = 0 }; return s end)
  t:like(err, "^[^:]*test%-api%-misuse%.lua:%d+: mh%.smtp%.connect: cfg%.port: must be", "a value at the caller's line")
  -- what the library's callers pass: a loaded cfg, mh.settings.get()'s (its
  -- masked password too), the engine's greeting_wait; nothing listens there
  local conf = spool_dir .. "/cfg.conf"
  assert(mh.settings.update({ server = "127.0.0.1", port = 9, from = "a@example.com", tls = "none",
                              tls_required = false, auth = true, username = "u", password = "p",
                              allow_plaintext_auth = true }, conf))
  for name, cfg in pairs { loaded = assert(mh.settings.load(conf)), get = assert(mh.settings.get(conf)) } do
    cfg.greeting_wait, cfg.connect_timeout = 0.5, 2
    local ok2, s, cerr = pcall(mh.smtp.connect, cfg)
    t:ok(ok2 and s == nil and type(cerr) == "string", name .. ": taken (a connection error, not a raise): " ..
         tostring(s) .. " " .. tostring(cerr))
  end
end)

-- A cfg takes what the settings file and `mailhook update` take for the same
-- key, as they take it: a rule copies a value from the settings file, an
-- event's KEY=VALUE or a form, a string (port = "587" was refused, `update
-- port=587` took it).  Each value goes through the settings' parser: the
-- same normalised value, the same refusal in update's words.
tap.test("mh.smtp.connect / mh.smtp.test: cfg takes each value as the settings file does", function(t)
  local smtp = require "mailhook.smtp"
  local good = {
    { "port", "587", 587 }, { "port", " 465 ", 465 }, { "port", 2525, 2525 },
    { "auth", "yes", true }, { "auth", "off", false }, { "tls_verify", "FALSE", false }, { "enabled", true, true },
    { "tls", "STARTTLS", "starttls" }, { "tls_min_version", 1.3, "1.3" }, { "auth_mechanism", "Login", "login" },
    { "connect_timeout", "30s", 30 }, { "command_timeout", "5m", 300 }, { "data_timeout", 0.5, 0.5 },
    { "session_deadline", "1h", 3600 }, { "from", "a@example.com.", "a@example.com" },
    { "helo_name", "mx.example.com", "mx.example.com" }, { "username", 42, "42" },
    { "tls_fingerprint", ("AB:"):rep(31) .. "AB", ("ab"):rep(32) },
  }
  for _, c in ipairs(good) do
    local k, v, want = c[1], c[2], c[3]
    local ok, out = pcall(smtp.check_cfg, "mh.smtp.connect", { [k] = v }, 1)
    t:ok(ok, string.format("%s = %q taken", k, tostring(v)), not ok and out or nil)
    t:is(ok and out[k], want, string.format("%s = %q read as %s", k, tostring(v), tostring(want)))
    local values = { username = "u", password = "p" }   -- (auth = true needs them)
    values[k] = v
    local cfg = mh.settings.validate(values)
    t:is(cfg and cfg[k], want, string.format("%s = %q: the settings read it so too", k, tostring(v)))
  end
  -- a list, the string form the file writes; "" is "not set", as in the file
  local ok, out = pcall(smtp.check_cfg, "mh.smtp.test", { server = "a.example, [192.0.2.1]", helo_name = "" }, 1)
  t:ok(ok and out.server[1] == "a.example" and out.server[2] == "192.0.2.1" and out.helo_name == nil,
       "server = 'a.example, [192.0.2.1]' read as the list; helo_name = '' not set", not ok and out or nil)
  ok, out = pcall(smtp.check_cfg, "mh.smtp.test", { greeting_wait = "1.5s" }, 1)
  t:is(ok and out.greeting_wait, 1.5, "greeting_wait = '1.5s' (no setting: a duration too)")
  -- what settings.get gives: its masked secrets pass
  ok = pcall(smtp.check_cfg, "mh.smtp.test", { password = "********", admin_password = "********" }, 1)
  t:ok(ok, "get()'s masked password and admin_password pass")
  -- a hand-built cfg's own password was taken, then never used to log in ("the
  -- password is empty" at the server): refused, the value never quoted
  local perr
  ok, perr = pcall(smtp.check_cfg, "mh.smtp.test", { password = "s3cret-9" }, 1)
  t:ok(not ok and tostring(perr):find("cfg.password: a cfg never holds the password", 1, true) ~= nil,
       "a password in a hand-built cfg is refused: " .. tostring(perr))
  t:ok(not tostring(perr):find("s3cret-9", 1, true), "and the refusal does not quote it")
  -- refused, in update's words: "KEY: reason", as `mailhook update KEY=bad` says
  for _, c in ipairs {
    { "port", "587x" }, { "port", "0x19" }, { "port", 70000 }, { "auth", "maybe" }, { "tls_verify", 1 },
    { "connect_timeout", "30 min" }, { "connect_timeout", "400d" }, { "command_timeout", 0 },
    { "tls", "ssl" }, { "from", "nobody" }, { "server", "mail.example.com:587" }, { "helo_name", "a b" },
    { "tls_fingerprint", "abc" }, { "username", "a\nb" }, { "server", {} },
  } do
    local k, v = c[1], c[2]
    local _, why = mh.settings.validate { [k] = v }
    local ok2, err = pcall(mh.smtp.connect, { [k] = v })
    t:ok(not ok2, string.format("%s = %q refused", k, tostring(v)))
    t:is(err, "mh.smtp.connect: cfg." .. tostring(why), string.format("%s = %q: update's words", k, tostring(v)))
  end
end)

tap.test("methods of tasks and timers: an argument too many raises", function(t)
  local task = mh.spawn(function() return 1 end)
  local h = mh.every(60, print)
  for _, c in ipairs {
    { "task:wait", task.wait, { task, 1 }, "task:wait: takes no arguments (got 1)" },
    { "task:status", task.status, { task, 1 }, "task:status: takes no arguments (got 1)" },
    { "task:cancel", task.cancel, { task, 1 }, "task:cancel: takes no arguments (got 1)" },
    { "timer:stop", h.stop, { h, 1 }, "timer:stop: takes no arguments (got 1)" },
  } do
    local ok, err = pcall(c[2], table.unpack(c[3]))
    t:ok(not ok, c[1] .. ": raises")
    t:is(err, c[4], c[1])
  end
  h:stop()
  t:ok(select(1, task:wait()), "the task still ends well")
end)

-- From Lua code the error is at the caller's line, not inside the library.
tap.test("the caller's line", function(t)
  for _, f in ipairs {
    function() local r = mh.template("x", { htlm = true }); return r end,   -- (no tail call: its line)
    function() local r = mh.enqueue({}, { foo = 1 }); return r end,
    function() local r = mh.queue.flush { timout = 1 }; return r end,
    function() local r = mh.settings.get(5); return r end,
    function() local r = mh.template.message(5); return r end,
  } do
    local ok, err = pcall(f)
    t:ok(not ok, "raised")
    t:like(err, "^[^:]*test%-api%-misuse%.lua:%d+: ", tostring(err))
  end
end)

-- What callers inside mailhook pass is still taken.
tap.test("what the library's own callers pass still works", function(t)
  t:ok(mh.template("{{x}}", { html = true, name = "n" })({ x = "<" }) == "&lt;", "html and name")
  t:ok(mh.template("{{x}}", nil)({ x = "a" }) == "a", "opts nil given")
  t:ok(mh.template.message("alarm", { message = "m" }).subject, "a shipped template by name")
  t:is(mh.settings.secrets_path("/x/mailhook.conf"), "/x/mailhook.secrets", "secrets_path")
  t:ok(pcall(mh.settings.load_intake, spool_dir .. "/none.conf", { rules = true, templates = true,
                                                                  rule_timeout = true, rule_memory = true }),
       "load_intake with hook's needs")
  t:ok(mh.log.level() ~= nil, "mh.log.level()")
  t:ok(period:contains(0) ~= nil, "period:contains(t)")
  local ok, yes = pcall(require("mailhook.enqueue").enqueue, { to = "a@example.com", text = "x" }, { check = true })
  t:ok(ok and yes, "enqueue {check = true}: " .. tostring(yes))
  smtp_conn:close()
  os.execute("rm -rf '" .. spool_dir .. "'")
end)

-- A value a template cannot show as text (a function, a coroutine, a
-- userdata) rendered as its address, "function: 0x55...": now "" and named in
-- `missing`, as a missing value is.  NaN and the infinities are written as
-- JavaScript writes them (the template's rule for numbers), in a template and
-- in mh.message alike (they were "-nan"/"nan" and "inf").
tap.test("template values with no text, NaN and infinities", function(t)
  local text, missing = mh.template("[{{f}}|{{co}}|{{u}}|{{g|none}}|{{n}}]")
    { f = print, co = coroutine.create(print), u = io.stdout, g = print, n = 1 }
  t:is(text, "[|||none|1]", "no address rendered; a default is used")
  t:is(table.concat(missing, ","), "f,co,u", "reported as missing")
  t:is((mh.template("{{a}} {{b}} {{c}}")({ a = 0 / 0, b = math.huge, c = -math.huge })), "NaN Infinity -Infinity",
       "NaN and the infinities in a template")
  local msg = assert(mh.message { from = "a@example.com", to = "b@example.com", subject = 0 / 0, text = "t",
                                  headers = { ["X-Inf"] = -math.huge } })
  local bytes = msg:bytes()
  t:like(bytes, "\r\nSubject: NaN\r\n", "mh.message writes NaN as a template does")
  t:like(bytes, "\r\nX%-Inf: %-Infinity\r\n", "and -Infinity")
end)

return tap.done()
