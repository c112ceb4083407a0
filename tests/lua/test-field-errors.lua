-- Misuse of a table field (or a list item) raises naming the function, the
-- field, what was expected and what came: "smtp.new: port must be an integer
-- (got string)", through the one helper of l_sched.h (mh_l_field_*).  The
-- bindings raised "bad argument #-1 to '?'" (luaL_check*(L, -1) on a field),
-- which names neither; msg.date named the function '?' through pcall.
local tap = require "tap"
local core = require("mailhook").core

local tmp = os.getenv("TMPDIR") or "/tmp"
-- an object whose methods the cases call (never opened)
local conn = core.smtp.new { host = "127.0.0.1" }
local long = string.rep("a", 300)
local spdir = io.popen("mktemp -d " .. tmp .. "/mh-field-errors.XXXXXX"):read("l")
local sp = assert(core.spool.open(spdir))
local id = "0123456789abcdef"
local closed_sp = assert(core.spool.open(spdir))
closed_sp:close()
local m = assert(core.msg.build { from = "a@example.com", to = "b@example.com", subject = "s", text = "t" })

-- {name, function, args, exact message}
local cases = {
  { "smtp.new port string", core.smtp.new, { { host = "x", port = "abc" } }, "smtp.new: port must be an integer (got string)" },
  { "smtp.new port 2.5", core.smtp.new, { { host = "x", port = 2.5 } }, "smtp.new: port must be an integer (got 2.5)" },
  { "smtp.new port range", core.smtp.new, { { host = "x", port = 70000 } }, "smtp.new: port must be 1-65535 (got 70000)" },
  { "smtp.new host table", core.smtp.new, { { host = {} } }, "smtp.new: host must be a string (got table)" },
  { "smtp.new helo boolean", core.smtp.new, { { host = "x", helo = true } }, "smtp.new: helo must be a string (got boolean)" },
  { "smtp.new timeout string", core.smtp.new, { { host = "x", connect_timeout = "soon" } },
    "smtp.new: connect_timeout must be a number (got string)" },
  { "smtp.new host missing", core.smtp.new, { { port = 25 } }, "smtp.new: host missing (a host name or address is required)" },
  { "smtp.new tls", core.smtp.new, { { host = "x", tls = "yes" } },
    "smtp.new: tls must be auto, implicit, starttls, opportunistic or none (got 'yes')" },
  -- each names the option and the value given (one message named all four)
  { "http.listen rate", core.http.listen, { { handler = print, rate = 0 } },
    "http.listen: rate must be above 0 up to 1e9 (requests a second) (got 0)" },
  { "http.listen max_conns 0", core.http.listen, { { handler = print, max_conns = 0 } },
    "http.listen: max_conns must be 1 up to 1048576 (got 0)" },
  { "http.listen max_conns 0.5", core.http.listen, { { handler = print, max_conns = 0.5 } },
    "http.listen: max_conns must be 1 up to 1048576 (got 0.5)" },
  { "http.listen burst", core.http.listen, { { handler = print, burst = 0.5 } },
    "http.listen: burst must be 1 up to 1e9 (got 0.5)" },
  { "http.listen req_timeout", core.http.listen, { { handler = print, req_timeout = 0.0001 } },
    "http.listen: req_timeout must be 0.001 up to 86400 (seconds) (got 0.0001)" },
  { "http.listen req_timeout negative", core.http.listen, { { handler = print, req_timeout = -1 } },
    "http.listen: req_timeout must be 0.001 up to 86400 (seconds) (got -1)" },
  { "spool.stream max range", core.spool.stream, { 0, { max = -1 } }, "spool.stream: max must be 0 up to limits.message (got -1)" },
  { "maildrop.submit item", core.maildrop.submit, { { "/bin/true", {} }, "x" },
    "maildrop.submit: arguments[2] must be a string (got table)" },
  { "notify.send key", core.notify.send, { { [5] = "x" } }, "notify.send: a key must be a string (got 5)" },
  { "notify.send value", core.notify.send, { { STATUS = {} } },
    "notify.send: STATUS must be a string, a number or a boolean (got table)" },
  { "notify.send name", core.notify.send, { { status = "x" } },
    "notify.send: 'status' is not a notification variable (upper-case letters, digits and _)" },
  { "logsink.entry value", core.logsink.entry, { "info", "m", { CODE = {} } },
    "logsink.entry: CODE must be a string or a number (got table)" },
  { "logsink.entry name", core.logsink.entry, { "info", "m", { code = 1 } },
    "logsink.entry: field names are upper-case letters, digits and _ (not first; got code)" },
  { "http.listen port", core.http.listen, { { handler = print, port = "x" } }, "http.listen: port must be a number (got string)" },
  { "http.listen port range", core.http.listen, { { handler = print, port = 70000 } }, "http.listen: port must be 0-65535" },
  -- range-checked before the cast: (int)(2^32 + 8080) listened on 8080
  { "http.listen port 2^32", core.http.listen, { { handler = print, port = (1 << 32) + 0 } }, "http.listen: port must be 0-65535" },
  { "http.listen max_body 1e300", core.http.listen, { { handler = print, port = 0, max_body = 1e300 } },
    "http.listen: max_body must be 0 up to 1099511627776 (got 1e+300)" },
  { "http.listen max_conns 2^40", core.http.listen, { { handler = print, port = 0, max_conns = 1 << 40 } },
    "http.listen: max_conns must be 1 up to 1048576 (got 1099511627776)" },
  { "http.listen stall inf", core.http.listen, { { handler = print, port = 0, stall = math.huge } },
    "http.listen: stall must be 0 up to 86400 (got inf)" },
  { "http.listen json_prefix", core.http.listen, { { handler = print, json_prefix = {} } },
    "http.listen: json_prefix must be a string (got table)" },
  { "http.listen json_prefix long", core.http.listen, { { handler = print, json_prefix = long } },
    "http.listen: json_prefix must be at most 63 bytes (got 300)" },
  { "http.listen host", core.http.listen, { { handler = print, host = {} } }, "http.listen: host must be a string (got table)" },
  { "http.listen max_body", core.http.listen, { { handler = print, max_body = false } },
    "http.listen: max_body must be a number (got boolean)" },
  { "proc.spawn item", core.proc.spawn, { { "a", {} } }, "proc.spawn: arguments[2] must be a string (got table)" },
  { "logsink.set ident", core.logsink.set, { "stderr", { ident = {} } }, "logsink.set: ident must be a string (got table)" },
  { "logsink.set facility type", core.logsink.set, { "stderr", { facility = {} } },
    "logsink.set: facility must be a string (got table)" },
  { "logsink.set facility name", core.logsink.set, { "stderr", { facility = "nope" } },
    "logsink.set: facility must be a syslog facility such as daemon or local0 (got 'nope')" },
  { "fsutil.read max", core.fsutil.read, { "/dev/null", { max = "x" } }, "fsutil.read: max must be an integer (got string)" },
  { "fsutil.read max 0", core.fsutil.read, { "/dev/null", { max = 0 } }, "fsutil.read: max must be > 0 (got 0)" },
  { "fsutil.check what", core.fsutil.check, { "/dev/null", { what = {} } }, "fsutil.check: what must be a string (got table)" },
  { "fsutil.open max", core.fsutil.open, { "/dev/null", { max = 1.5 } }, "fsutil.open: max must be an integer (got 1.5)" },
  { "fsutil.write_atomic uid", core.fsutil.write_atomic, { tmp .. "/mh-field-errors-x", "d", 384, { uid = "root" } },
    "fsutil.write_atomic: uid must be an integer (got string)" },
  { "fsutil.write_atomic gid", core.fsutil.write_atomic, { tmp .. "/mh-field-errors-x", "d", 384, { gid = {} } },
    "fsutil.write_atomic: gid must be an integer (got table)" },
  { "admin.page limit", core.admin.page, { tmp, { limit = "x" } }, "admin.page: limit must be an integer (got string)" },
  { "admin.page limit range", core.admin.page, { tmp, { limit = 5000 } }, "admin.page: limit must be 0-1000 (got 5000)" },
  { "admin.page after type", core.admin.page, { tmp, { after = true } }, "admin.page: after must be a string (got boolean)" },
  { "admin.page before id", core.admin.page, { tmp, { before = "zz" } }, "admin.page: before must be a spool id (got string)" },
  { "spool.stream max", core.spool.stream, { 0, { max = "x" } }, "spool.stream: max must be an integer (got string)" },
  { "budget_limits seconds", core.budget_limits, { { seconds = "x" } }, "budget_limits: seconds must be a number (got string)" },
  { "budget_limits memory", core.budget_limits, { { memory = 10 } }, "budget_limits: memory must be at least 1 MB (got 10)" },
  -- too long for its C buffer: refused, not cut (a cut host is another host,
  -- a cut ca_file another file); a NUL would cut it the same way
  { "smtp.new host long", core.smtp.new, { { host = long } }, "smtp.new: host must be at most 255 bytes (got 300)" },
  { "smtp.new host NUL", core.smtp.new, { { host = "127.0.0.1\0evil" } }, "smtp.new: host must hold no NUL byte" },
  { "smtp.new helo long", core.smtp.new, { { host = "x", helo = long } }, "smtp.new: helo must be at most 255 bytes (got 300)" },
  { "smtp.new ca_file long", core.smtp.new, { { host = "x", ca_file = "/" .. string.rep("d/", 600) .. "ca.pem" } },
    "smtp.new: ca_file must be at most 1023 bytes (got 1207)" },
  { "smtp.new fingerprint long", core.smtp.new, { { host = "x", fingerprint = long } },
    "smtp.new: fingerprint must be at most 127 bytes (got 300)" },
  { "smtp.new min_version long", core.smtp.new, { { host = "x", min_version = "1.3.0.0.0" } },
    "smtp.new: min_version must be at most 7 bytes (got 9)" },
  { "smtp.new tls NUL", core.smtp.new, { { host = "x", tls = "none\0x" } },
    "smtp.new: tls must be auto, implicit, starttls, opportunistic or none (got 'none')" },
  { "smtp.new timeout negative", core.smtp.new, { { host = "x", connect_timeout = -1 } },
    "smtp.new: connect_timeout must be seconds from 0 (the default) up to 31536000 (a year) (got -1)" },
  { "smtp.new timeout huge", core.smtp.new, { { host = "x", session_deadline = 1e300 } },
    "smtp.new: session_deadline must be seconds from 0 (the default) up to 31536000 (a year) (got 1e+300)" },
  { "smtp.new timeout inf", core.smtp.new, { { host = "x", data_timeout = math.huge } },
    "smtp.new: data_timeout must be seconds from 0 (the default) up to 31536000 (a year) (got inf)" },
  { "smtp.new port -1", core.smtp.new, { { host = "x", port = -1 } }, "smtp.new: port must be 1-65535 (got -1)" },
  { "smtp.new port 65536", core.smtp.new, { { host = "x", port = 65536 } }, "smtp.new: port must be 1-65535 (got 65536)" },
  { "smtp.new port 2^63", core.smtp.new, { { host = "x", port = math.mininteger } },
    "smtp.new: port must be 1-65535 (got -9223372036854775808)" },
  { "resolve long", core.resolve, { long }, "mh.resolve: host must be at most 255 bytes (got 300)" },
  { "fsutil.with_lock long", core.fsutil.with_lock, { string.rep("d/", 2100) .. "f", print },
    "fsutil.with_lock: path must be at most 4095 bytes (got 4201)" },
  { "fsutil.try_lock long", core.fsutil.try_lock, { string.rep("d/", 2100) .. "f", print },
    "fsutil.try_lock: path must be at most 4095 bytes (got 4201)" },
  -- methods: through pcall lauxlib named them '?' ("bad argument #2 to '?'")
  { "smtp auth mechanism", conn.auth, { conn, "cram", "u", "p" },
    "smtp auth: mechanism must be plain, login, cram-md5, xoauth2 or oauthbearer (got 'cram')" },
  { "smtp auth user", conn.auth, { conn, "plain", {}, "p" }, "smtp auth: user must be a string (got table)" },
  { "smtp auth secret", conn.auth, { conn, "plain", "u" }, "smtp auth: secret must be a string (got no value)" },
  { "smtp submit sender", conn.submit, { conn, nil, {}, "d", n = 4 }, "smtp submit: sender must be a string (got nil)" },
  { "smtp submit recipients", conn.submit, { conn, "a@x", "b@x", "d" }, "smtp submit: recipients must be a table (got string)" },
  { "smtp submit data", conn.submit, { conn, "a@x", {}, false }, "smtp submit: data must be a string (got boolean)" },
  { "smtp send recipients", conn.send, { conn, "a@x", nil, "d", n = 4 }, "smtp send: recipients must be a table (got nil)" },
  { "smtp submit_file path", conn.submit_file, { conn, "a@x", {}, {} }, "smtp submit_file: path must be a string (got table)" },
  { "smtp submit_file offset", conn.submit_file, { conn, "a@x", {}, "/dev/null", -1 },
    "smtp submit_file: offset must be >= 0 (got -1)" },
  { "smtp submit_file recipients", conn.submit_file, { conn, "a@x", 7, "/dev/null" },
    "smtp submit_file: recipients must be a table (got 7)" },
  { "smtp set_dsn mail", conn.set_dsn, { conn, {} }, "smtp set_dsn: mail must be a string (got table)" },
  { "smtp set_dsn params", conn.set_dsn, { conn, "RET=HDRS", 5 }, "smtp set_dsn: recipient parameters must be a table (got 5)" },
  { "smtp check_sender", conn.check_sender, { conn, {} }, "smtp check_sender: sender must be a string (got table)" },
  { "spool:load id", sp.load, { sp, "../etc/passwd" }, "spool:load: id must be a message id (got string)" },
  { "spool:retry id", sp.retry, { sp, {} }, "spool:retry: id must be a string (got table)" },
  { "spool:delivered options", sp.delivered, { sp, id, "sync" }, "spool:delivered: options must be a table (got string)" },
  { "spool:defer options", sp.defer, { sp, id, 5 }, "spool:defer: options must be a table (got 5)" },
  { "spool:defer done", sp.defer, { sp, id, { done = { "a@x", 7 } } }, "spool:defer: done[2] must be a string (got 7)" },
  { "spool:defer next_attempt", sp.defer, { sp, id, { next_attempt = "soon" } },
    "spool:defer: next_attempt must be a number (got string)" },
  { "spool:defer next_attempt nan", sp.defer, { sp, id, { next_attempt = 0 / 0 } },
    "spool:defer: next_attempt must be seconds since 1970 (got " .. tostring(0 / 0) .. ")" },
  { "spool:defer attempts 2^40", sp.defer, { sp, id, { attempts = 1 << 40 } },
    "spool:defer: attempts must be an integer 0-2147483647 (got 1099511627776)" },
  { "spool:defer reply", sp.defer, { sp, id, { reply = {} } }, "spool:defer: reply must be a string (got table)" },
  { "spool:defer refused rcpt", sp.defer, { sp, id, { refused = { { reply = "550" } } } },
    "spool:defer: refused[1].rcpt must be a string (got nil)" },
  { "spool:fail attempts", sp.fail, { sp, id, { attempts = 1.5 } }, "spool:fail: attempts must be an integer 0-2147483647 (got 1.5)" },
  { "spool:fail refused", sp.fail, { sp, id, { refused = "x" } },
    "spool:fail: refused must be a list of {rcpt =, reply =} (got string)" },
  { "spool:scan limit", sp.scan, { sp, -1 }, "spool:scan: limit must be >= 0 (got -1)" },
  { "spool:list which", sp.list, { sp, "new" }, "spool:list: which must be all, pickup or failed (got 'new')" },
  { "spool:enqueue_many none", sp.enqueue_many, { sp, {} }, "spool:enqueue_many: messages must be a list of 1 to 1024 (got 0)" },
  { "spool:enqueue_many item", sp.enqueue_many, { sp, { "x" } },
    "spool:enqueue_many: messages[1] must be {data, envelope} (got string)" },
  { "spool closed", closed_sp.scan, { closed_sp }, "the spool is closed (Spool:close() was called)" },
  { "every 0.0001", core.every, { 0.0001, print }, "mh.every: seconds must be at least 0.001 (got 0.0001)" },
  -- mh.smtp.test (Lua): checked before it connects (timeout "abc" was the
  -- default, NaN no bound, to = 5 an error after the whole session)
  { "smtp.test to", require("mailhook").smtp.test, { { to = 5 } }, "mh.smtp.test: to must be an address (a string), got a number" },
  { "smtp.test timeout", require("mailhook").smtp.test, { { timeout = "abc" } },
    "mh.smtp.test: timeout must be seconds, more than 0 and at most 86400 (got abc)" },
  { "smtp.test timeout inf", require("mailhook").smtp.test, { { timeout = math.huge } },
    "mh.smtp.test: timeout must be seconds, more than 0 and at most 86400 (got inf)" },
  { "msg:save path", m.save, { m, {} }, "msg:save: path must be a string (got table)" },
  { "msg.date 1.5", core.msg.date, { 1.5 }, "msg.date: t must be whole seconds since 1970 (got 1.5)" },
  { "msg.date string", core.msg.date, { "noon" }, "msg.date: t must be whole seconds since 1970 (got string)" },
  { "msg.date 1e300", core.msg.date, { 1e300 },
    "msg.date: t is out of range (seconds since 1970, up to the year 9999; got 1e+300)" },
}

tap.test("a wrong field names the function, the field, what was expected and what came", function(t)
  for _, c in ipairs(cases) do
    local ok, err = pcall(c[2], table.unpack(c[3], 1, c[3].n or #c[3]))
    t:ok(not ok, c[1] .. ": raises")
    t:is(err, c[4], c[1])
  end
  conn:close()
  sp:close()
  os.execute("rm -rf " .. spdir)
end)

-- An unknown option key, or an argument too many, raises naming it: a misspelt
-- option ({timout = 5}, {hots = ...}) or a second table was silently ignored,
-- the default used instead.  One wording (mh_l_check_options, l_core.c; the
-- Lua modules through core.check_options).  Every public function that takes
-- a table of options is here.
local mhl = require "mailhook"
local rs = require "mailhook.rule_state"
local option_cases = {
  { "smtp.new", core.smtp.new, { { host = "x", hots = "y" } }, "^smtp%.new: unknown option 'hots' %(known: host, port, " },
  { "smtp.new extra", core.smtp.new, { { host = "x" }, { port = 25 } }, "^smtp%.new: takes at most 1 argument %(got 2%)$" },
  { "smtp.new key 1", core.smtp.new, { { "x", host = "x" } }, "^smtp%.new: unknown option %[1%] %(known: " },
  { "http.listen", core.http.listen, { { handler = print, prot = 0 } }, "^http%.listen: unknown option 'prot' " },
  { "logsink.set", core.logsink.set, { "stderr", { ident = "x", facilty = "daemon" } },
    "^logsink%.set: unknown option 'facilty' %(known: ident, facility%)$" },
  { "fsutil.read", core.fsutil.read, { "/dev/null", { maxx = 1 } }, "^fsutil%.read: unknown option 'maxx' %(known: max, follow, owned, what%)$" },
  { "fsutil.read extra", core.fsutil.read, { "/dev/null", {}, {} }, "^fsutil%.read: takes at most 2 arguments %(got 3%)$" },
  { "fsutil.check", core.fsutil.check, { "/dev/null", { owner = true } }, "^fsutil%.check: unknown option 'owner' " },
  { "fsutil.open", core.fsutil.open, { "/dev/null", { follows = true } }, "^fsutil%.open: unknown option 'follows' " },
  { "fsutil.write_atomic", core.fsutil.write_atomic, { tmp .. "/mh-field-errors-x", "d", 384, { synk = false } },
    "^fsutil%.write_atomic: unknown option 'synk' %(known: sync, uid, gid%)$" },
  { "admin.page", core.admin.page, { tmp, { limt = 5 } }, "^admin%.page: unknown option 'limt' " },
  { "budget_limits", core.budget_limits, { { second = 5 } }, "^budget_limits: unknown option 'second' " },
  { "proc.limit", core.proc.limit, { { nice = 1, cores = 0 } }, "^proc%.limit: unknown option 'cores' " },
  { "spool.stream", core.spool.stream, { 0, { dots = false } }, "^spool%.stream: unknown option 'dots' %(known: dot, max%)$" },
  { "spool:load", sp.load, { sp, id, { dat = 10 } }, "^spool:load: unknown option 'dat' " },
  { "spool:delivered", sp.delivered, { sp, id, { synch = false } }, "^spool:delivered: unknown option 'synch' " },
  { "spool:defer", sp.defer, { sp, id, { next = 5 } }, "^spool:defer: unknown option 'next' " },
  { "spool:fail", sp.fail, { sp, id, { reasons = "x" } }, "^spool:fail: unknown option 'reasons' " },
  { "mh.smtp.test timout", mhl.smtp.test, { { timout = 5 } }, "^mh%.smtp%.test: unknown option 'timout' %(known: to, cfg, timeout, on_stage%)$" },
  { "mh.smtp.test hots", mhl.smtp.test, { { hots = "x" } }, "^mh%.smtp%.test: unknown option 'hots' " },
  { "mh.smtp.test extra", mhl.smtp.test, { {}, { to = "x@y" } }, "^mh%.smtp%.test: takes at most 1 argument %(got 2%)$" },
  { "mh.configure", mhl.configure, { { spol = "x" } }, "^mh%.configure: unknown option 'spol' %(known: conf, spool%)$" },
  { "throttle", rs.throttle, { { key = "k", max = 1, pre = 60 } }, "^throttle: unknown option 'pre' " },
  { "digest", rs.digest, { { key = "k", window = 60, itme = "x" } }, "^digest: unknown option 'itme' " },
  { "rstate.mktime", core.rstate.mktime, { { year = 2026, month = 1, day = 1, hours = 3 } },
    "^rstate%.mktime: unknown option 'hours' " },
  { "period", rs.period, { { weekdays = "mon", tzz = "UTC" } }, "^period: unknown option 'tzz' %(known: weekdays, times, tz%)$" },
}

tap.test("an unknown option or an extra argument raises, naming it", function(t)
  local dir2 = io.popen("mktemp -d " .. tmp .. "/mh-field-errors.XXXXXX"):read("l")
  local sp2 = assert(core.spool.open(dir2))
  for _, c in ipairs(option_cases) do
    local args = c[3]
    for i, a in ipairs(args) do if a == sp then args[i] = sp2 end end
    local ok, err = pcall(c[2], table.unpack(args, 1, #args))
    t:ok(not ok, c[1] .. ": raises")
    t:like(err, c[4], c[1] .. ": " .. tostring(err))
  end
  sp2:close()
  os.execute("rm -rf " .. dir2)
  -- from Lua code, the position is the caller's line (error(msg, 2))
  local ok, err = pcall(function() local r = mhl.smtp.test { timout = 5 }; return r end)
  t:like(err, "^[^:]*test%-field%-errors%.lua:%d+: mh%.smtp%.test: unknown option 'timout'", "the caller's line: " .. tostring(err))
  t:ok(not ok, "raised")
end)

-- A C binding remembers the options tables it found sound (mh_l_check_options:
-- the deliverer's per-message options are checked once): a remembered table is
-- still checked against another function's list, and a fresh table with a
-- misspelt key raises however many sound ones went before it.
tap.test("options checked once per table are still checked per function", function(t)
  local dir3 = io.popen("mktemp -d " .. tmp .. "/mh-field-errors.XXXXXX"):read("l")
  local sp3 = assert(core.spool.open(dir3))
  local id3 = assert(sp3:enqueue("From: a@b.example\r\n\r\nx\r\n", { from = "a@b.example", to = { "c@d.example" } }))
  local opts = { now = true, keep = false }
  for _ = 1, 3 do t:ok(sp3:load(id3, opts), "spool:load with a sound table, again") end
  local ok, err = pcall(sp3.delivered, sp3, id3, opts)
  t:ok(not ok, "the same table, sound for spool:load, raises in spool:delivered")
  t:like(err, "^spool:delivered: unknown option '[a-z]+' %(known: sync, now, journal%)$", tostring(err))
  for i = 1, 200 do
    local o = i % 2 == 0 and { now = true } or { nwo = true }
    ok, err = pcall(sp3.load, sp3, id3, o)
    if (i % 2 == 0) ~= (ok and true or false) then t:ok(false, "round " .. i .. ": " .. tostring(err)); break end
    if i % 40 == 0 then collectgarbage() end
  end
  t:ok(true, "200 fresh tables, sound and misspelt in turn, each judged by its own keys")
  sp3:close()
  os.execute("rm -rf " .. dir3)
end)

-- The methods of a child process and its channel (a real child: this binary).
tap.test("proc and channel methods name the argument", function(t)
  local p, ch = assert(core.proc.spawn { "-e", "require('mailhook').core.proc.channel():recv()" })
  local ok, err = pcall(p.kill, p, "NOPE")
  t:is(err, "proc:kill: signal must be a signal name such as TERM (got 'NOPE')", "proc:kill signal")
  ok, err = pcall(ch.send, ch, {})
  t:is(err, "channel:send: data must be a string (got table)", "channel:send data")
  t:ok(not ok, "raised")
  ch:close()   -- the child's recv ends: it exits
  t:ok(p:wait() ~= nil, "the child ended")
end)

-- What luaL_check* accepted is still accepted: a numeric string for a number.
tap.test("convertible values still pass", function(t)
  local c = core.smtp.new { host = "127.0.0.1", port = "2525", connect_timeout = "5" }
  t:ok(c, "smtp.new with port \"2525\"")
  if c then c:close() end
  local path = tap.tmpfile("abc")
  local s = core.fsutil.read(path, { max = "10", what = 7 })
  os.remove(path)
  t:is(s, "abc", "fsutil.read with max \"10\", what = 7")
  local _, err = core.fsutil.read("/dev/null", { what = 7 })
  t:like(err, "^7 /dev/null: ", "what = 7 names the file as 7")
end)

-- A wrong positional argument of a module function names the public
-- function and the argument, as a field does: lauxlib's wording named the
-- internal C function and no argument ("bad argument #1 to
-- 'mailhook.core.spool.stream' (not a file descriptor)"), and through pcall
-- with no module in package.loaded it said '?'.  The name is found once, by
-- mh_l_arg_error (l_core.c), however the function is reached.
tap.test("a wrong positional argument names the public function and the argument", function(t)
  local stream = core.spool.stream   -- a local alias: no call-site name
  for _, c in ipairs {
    { "spool.stream fd", stream, { -1 }, "spool.stream: fd must be a file descriptor (got -1)" },
    { "spool.stream fd type", core.spool.stream, { "x" }, "spool.stream: fd must be an integer (got string)" },
    { "spool.stream options", core.spool.stream, { 0, 5 }, "spool.stream: options must be a table (got 5)" },
    { "smtp.new", core.smtp.new, { 5 }, "smtp.new: options must be a table (got 5)" },
    { "msg.valid_address", core.msg.valid_address, { {} }, "msg.valid_address: address must be a string (got table)" },
    { "fsutil.mode", core.fsutil.mode, { nil, n = 1 }, "fsutil.mode: path must be a string (got nil)" },
    { "fsutil.mode NUL", core.fsutil.mode, { "/etc/passwd\0x" }, "fsutil.mode: path must hold no NUL byte" },
    { "fsutil.write_atomic mode", core.fsutil.write_atomic, { tmp .. "/x", "d", 99999 },
      "fsutil.write_atomic: mode must be permission bits 0-07777 (got 99999)" },
    { "fsutil.read fd", core.fsutil.read, { -5 }, "fsutil.read: fd must be a file descriptor (got -5)" },
    { "spool.open dir", core.spool.open, { {} }, "spool.open: dir must be a string (got table)" },
    { "rstate.ticker", core.rstate.ticker, { 0, print }, "rstate.ticker: seconds must be more than 0, below 1e9 (got 0)" },
    { "rstate.mkdir empty", core.rstate.mkdir, { "" }, "rstate.mkdir: path must be a path, not an empty string (got string)" },
    { "rstate.lock path", core.rstate.lock, { {} }, "rstate.lock: path must be a string (got table)" },
    { "logsink.set sink", core.logsink.set, { "file" }, "logsink.set: sink must be stderr, syslog or journal (got string)" },
    { "pwhash.random", core.pwhash.random, { 100 }, "pwhash.random: bytes must be 1-64 (got 100)" },
    { "signal.kill pid", core.signal.kill, { 0, "TERM" }, "signal.kill: pid must be > 0 (got 0)" },
    { "mh.spawn", core.spawn, { 5 }, "mh.spawn: fn must be a function (got 5)" },
    { "mh.sleep", core.sleep, { "soon" }, "mh.sleep: seconds must be a number (got string)" },
    { "mh.every fn", core.every, { 1, 5 }, "mh.every: fn must be a function (got 5)" },
    { "mh.log level", core.log, { "loud", "x" }, "mh.log: level must be debug, info, warn or error (got string)" },
    { "maildrop.close", core.maildrop.close, { 1 }, "maildrop.close: fd must be a descriptor of core.maildrop.open (got 1)" },
  } do
    local ok, err = pcall(c[2], table.unpack(c[3], 1, c[3].n or #c[3]))
    t:ok(not ok, c[1] .. ": raises")
    t:is(err, c[4], c[1])
  end
end)

-- The class: no module function of the bindings keeps lauxlib's positional
-- checks (luaL_check*, luaL_opt*, luaL_argcheck, luaL_argerror): each is an
-- mh_l_arg_* call.  Methods (check_* of their object first) and the REPL's
-- internals are not module functions; a file's remaining ones are listed here.
tap.test("no lauxlib argument check left in the module functions", function(t)
  local root = assert(os.getenv("ROOT"), "ROOT")
  local allowed = {   -- file -> number of lauxlib checks that are not in module functions
    ["l_core.c"] = 3,   -- core.check_options's own arguments (a helper for the Lua modules)
    ["l_sched.c"] = 1,  -- mh_task_spawn's, after l_spawn checked
    ["l_spool.c"] = 3,  -- methods: set_dropin_from, enqueue, defer's stack slot
    ["l_watch.c"] = 1,  -- the watch helper shared by a method (spool:watch)
  }
  local p = assert(io.popen("ls " .. root .. "/runtime/l_*.c"))
  for path in p:lines() do
    local name = path:match("([^/]+)$")
    if name ~= "l_repl.c" and name ~= "l_embed.c" then
      local n = 0
      for line in tap.slurp(path):gmatch("[^\n]+") do
        if not line:find("^%s*/?%*") and (line:find("luaL_check%a+%(") or line:find("luaL_opt%a+%(")
           or line:find("luaL_arg%a+%(")) and not line:find("luaL_checkudata") and not line:find("luaL_checkstack")
           and not line:find("luaL_checkversion") then
          n = n + 1
        end
      end
      t:is(n, allowed[name] or 0, name .. ": lauxlib argument checks outside the allowed ones")
    end
  end
  p:close()
end)

-- A method called on something that is not its object says so as
-- luaL_checkudata does (mh_l_checkself: the deliverer's hot methods compare
-- the metatable with their upvalue first), whatever the object is: another
-- class's userdata, a file, a table, nothing; the right object still works.
tap.test("a method on the wrong object: luaL_checkudata's error", function(t)
  local cases = {
    { sp.load, conn, "mailhook.Spool", "mailhook.SmtpConn" },
    { sp.delivered, io.stdout, "mailhook.Spool", "FILE*" },
    { sp.scan, {}, "mailhook.Spool", "table" },
    { sp.load, nil, "mailhook.Spool", "nil" },
    { conn.release, sp, "mailhook.SmtpConn", "mailhook.Spool" },
    { conn.result, m, "mailhook.SmtpConn", nil },
    { conn.submit, "x", "mailhook.SmtpConn", "string" },
  }
  for i, c in ipairs(cases) do
    local ok, err = pcall(c[1], c[2], id)
    t:ok(not ok, "case " .. i .. " raised")
    t:like(tostring(err), "^bad argument #1 to '[^']*' %(" .. c[3]:gsub("%p", "%%%0") .. " expected, got "
           .. (c[4] and c[4]:gsub("%p", "%%%0") or "[^)]+") .. "%)$", "case " .. i .. ": " .. tostring(err))
  end
  local sp2 = assert(core.spool.open(spdir))
  local ok, e, err = pcall(sp2.load, sp2, id, { now = true })
  sp2:close()
  t:ok(ok and e == nil and tostring(err):find(id, 1, true), "the spool itself passes: no such message, " ..
       tostring(ok and err or e))
end)

-- The class: no binding reads a field with luaL_check*/luaL_opt* at -1
-- (their error is "bad argument #-1 to '?'").
tap.test("no luaL_check*(L, -1) left in the bindings", function(t)
  local root = assert(os.getenv("ROOT"), "ROOT")
  local p = assert(io.popen("ls " .. root .. "/runtime/l_*.c"))
  local n = 0
  for path in p:lines() do
    local text = tap.slurp(path)
    n = n + 1
    for line in text:gmatch("[^\n]+") do
      if line:find("luaL_check%a*%(%a+, %-%d") or line:find("luaL_opt%a*%(%a+, %-%d") then
        t:ok(false, path .. ": " .. line)
      end
    end
  end
  p:close()
  t:ok(n > 10, "read " .. n .. " binding files")
end)

return tap.done()
