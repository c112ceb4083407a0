-- mailhook.console's decisions without a server (lua/mailhook/console.lua):
-- which Host names the console for each kind of bound address (DNS rebinding
-- is refused whatever admin_listen says: a loopback address, one of the
-- machine's, a wildcard), what the response scrubber masks, and how the
-- failed-login gate counts per client, in all, and checks in flight.  The HTTP
-- side is tests/integration/console-attack.sh.
local tap = require "tap"
local console = require "mailhook.console"

local function at(host, port)
  return setmetatable({ host = host, port = port or 8025, loopback = host == "::1" or host:match("^127%.") ~= nil },
                      { __index = console })
end

tap.test("Host on a loopback address", function(t)
  local c = at("127.0.0.1")
  for _, h in ipairs { "127.0.0.1:8025", "localhost:8025", "LocalHost:8025", "[::1]:8025", "127.0.0.2:8025" } do
    t:ok(c:host_ok(h), h .. " names it")
  end
  for _, h in ipairs { "127.0.0.1.evil.com:8025", "evil.com:8025", "localhost.:8025", "a.localhost:8025",
                       "127.0.0.1", "127.0.0.1:80", "127.0.0.1:08025x", "127.1:8025", "2130706433:8025",
                       "0x7f.0.0.1:8025", "127.000.0.1:8025", "[::ffff:127.0.0.1]:8025", "", "127.0.0.1:8025 ",
                       "user@127.0.0.1:8025", "192.168.1.5:8025" } do
    t:ok(not c:host_ok(h), ("%q is refused"):format(h))
  end
  t:ok(not c:host_ok(nil), "no Host at all is refused")
end)

tap.test("Host without a port: 80", function(t)
  local c = at("127.0.0.1", 80)
  t:ok(c:host_ok("127.0.0.1"), "127.0.0.1 (a browser omits :80)")
  t:ok(c:host_ok("localhost:80"), "localhost:80")
  t:ok(not c:host_ok("evil.com"), "a name without a port is still refused")
  t:ok(not at("127.0.0.1"):host_ok("127.0.0.1"), "on 8025, no port is port 80: refused")
end)

tap.test("Host on an IPv6 loopback", function(t)
  local c = at("::1")
  t:ok(c:host_ok("[::1]:8025"), "[::1]:8025")
  t:ok(c:host_ok("localhost:8025"), "localhost:8025")
  t:ok(not c:host_ok("[::2]:8025"), "another address")
  t:ok(not c:host_ok("evil.com:8025"), "a name")
end)

tap.test("Host on an address of the network (no loopback)", function(t)
  local c = at("192.0.2.10")
  t:ok(c:host_ok("192.0.2.10:8025"), "the address itself")
  t:ok(not c:host_ok("evil.com:8025"), "a name (DNS rebinding to the LAN address) is refused")
  t:ok(not c:host_ok("localhost:8025"), "localhost is not this address")
  t:ok(not c:host_ok("127.0.0.1:8025"), "nor is 127.0.0.1")
  t:ok(not c:host_ok("192.0.2.11:8025"), "nor another address")
end)

tap.test("Host on a wildcard address", function(t)
  local c = at("0.0.0.0")
  t:ok(c:host_ok("192.0.2.10:8025"), "any IPv4 literal (none can be rebound)")
  t:ok(c:host_ok("[2001:db8::1]:8025"), "any IPv6 literal")
  t:ok(not c:host_ok("mail.example.com:8025"), "a name is refused")
  t:ok(not c:host_ok("192.0.2.10:9999"), "another port is refused")
end)

tap.test("scrub masks secrets and paths in every string, in place", function(t)
  local c = setmetatable({ redact = { { "/etc/mailhook/mailhook.conf", "[settings file]" }, { "s3cret-pw", "********" } } },
                         { __index = console })
  local v = { error = "/etc/mailhook/mailhook.conf:3: port: bad", nested = { "reply 535 s3cret-pw", 5 },
              typed = "echo typed-pw-1" }
  local r = c:scrub(v, { "typed-pw-1" })
  t:is(r, v, "the same table")
  t:is(v.error, "[settings file]:3: port: bad", "a path")
  t:is(v.nested[1], "reply 535 ********", "a secret, deep")
  t:is(v.nested[2], 5, "numbers stay")
  t:is(v.typed, "echo ********", "a secret of the request itself")
  t:is(c:scrub("a%b s3cret-pw s3cret-pw"), "a%b ******** ********", "every occurrence, no pattern magic")
end)

tap.test("a password under 4 characters is masked too, where it stands alone", function(t)
  local settings = require "mailhook.settings"
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write("enabled = true\nserver = 127.0.0.1\nfrom = a@example.com\nauth = true\nusername = u\n",
          "allow_plaintext_auth = true\ntls = none\ntls_required = false\n")
  f:close()
  f = assert(io.open(settings.secrets_path(path), "w"))
  f:write("password = ab7\n")
  f:close()
  local cfg = assert(settings.load(path))
  os.remove(path); os.remove(settings.secrets_path(path))
  local c = setmetatable({}, { __index = console })
  c:build_redactions(cfg)
  t:is(c:scrub("535 5.7.8 pass=ab7 rejected"), "535 5.7.8 pass=******** rejected", "the stored password")
  t:is(c:scrub("'ab7' (xab7, ab7x: other words)"), "'********' (xab7, ab7x: other words)",
       "only where it stands alone")
  t:is(c:scrub("535 you typed q, quota"), "535 you typed q, quota", "(q is not this password)")
  t:is(c:scrub("535 you typed q, quota", { "q" }), "535 you typed ********, quota",
       "a one-character secret of the request itself")
end)

tap.test("a relative admin_token_file: its resolved path is masked, not the word", function(t)
  local core = require "mailhook.core"
  local was = core.paths.conf
  core.paths.conf = "/etc/mailhook-test/mailhook.conf"
  local c = setmetatable({}, { __index = console })
  c:build_redactions({ admin_token_file = "token" })
  core.paths.conf = was
  t:is(c:scrub("console: admin token login disabled"), "console: admin token login disabled",
       "the word the value is stays")
  t:is(c:scrub("cannot read /etc/mailhook-test/token"), "cannot read [admin_token_file]", "the file's path is masked")
end)

tap.test("the failed-login gate: per client, in all, in flight", function(t)
  local logged = {}
  local c = setmetatable({ fails = {}, pending = {}, pending_all = 0, limit_said = {},
                           log = { warn = function(s) logged[#logged + 1] = s end } }, { __index = console })
  for _ = 1, console.LOGIN_FAILS - 1 do c:auth_failed("127.0.0.5", "failed login") end
  t:is(c:auth_gate("127.0.0.5"), nil, "under the limit: go on")
  c.pending["127.0.0.5"], c.pending_all = 1, 1
  t:ok(c:auth_gate("127.0.0.5") ~= nil, "a check in flight counts: the next one waits")
  c.pending["127.0.0.5"], c.pending_all = nil, 0
  c:auth_failed("127.0.0.5", "failed login")
  local wait = c:auth_gate("127.0.0.5")
  t:ok(wait and wait > 1 and wait <= console.LOGIN_WINDOW, "at the limit: wait for the window (" .. tostring(wait) .. " s)")
  t:is(c:auth_gate("127.0.0.6"), nil, "another client goes on")
  t:ok(#logged >= 1 and logged[1]:find("127.0.0.5", 1, true), "the refusal is logged, naming the client")
  for i = 1, console.LOGIN_FAILS_ALL - console.LOGIN_FAILS do c:auth_failed("127.0.1." .. i, "failed login") end
  t:ok(c:auth_gate("127.0.9.9") ~= nil, "failures from many clients: everyone waits")
  c.fails = {}
  c.pending_all = console.LOGIN_WAITING + 1
  t:ok(c:auth_gate("127.0.0.7") ~= nil, "too many checks waiting: 429")
end)

tap.test("the settings version (a Save on values changed since is refused)", function(t)
  local function r(settings, pw) return { settings = settings, password_set = pw } end
  local base = { from = "a@example.com", port = 587, server = { "smtp.example.com" }, enabled = true }
  local v = console.version_of(r(base, true))
  t:like(v, "^%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x$", "16 hex digits")
  t:is(console.version_of(r({ enabled = true, server = { "smtp.example.com" }, port = 587, from = "a@example.com" }, true)),
       v, "the same values: the same version, whatever their order")
  for k, nv in pairs { from = "b@example.com", port = 25, server = { "smtp2.example.com" }, enabled = false } do
    local c = {}
    for kk, vv in pairs(base) do c[kk] = vv end
    c[k] = nv
    t:ok(console.version_of(r(c, true)) ~= v, k .. " changed: another version")
  end
  t:ok(console.version_of(r(base, false)) ~= v, "a password set or removed: another version")
  local with_cmd = { password_command = "echo hunter2" }
  for kk, vv in pairs(base) do with_cmd[kk] = vv end
  t:is(console.version_of(r(with_cmd, true)), v, "password_command is not in it (a hash of an inline secret)")
end)


-- A POST's Content-Type: JSON read as UTF-8, so a charset naming anything
-- else is refused (charset=utf-16 was taken and its body mis-decoded).
tap.test("Content-Type of a POST", function(t)
  for _, ct in ipairs { "application/json", "Application/JSON", "application/json; charset=utf-8",
                        "application/json;CHARSET=UTF-8", 'application/json; charset="utf-8"',
                        "application/json; charset=US-ASCII", "application/json;", "application/json ; a=b" } do
    t:is(console.json_type_error(ct), nil, ("%q is JSON in UTF-8"):format(ct))
  end
  -- (refused saying what is wrong, never quoting the header: no answer quotes the request)
  for _, c in ipairs { { "application/json; charset=utf-16", "that charset is not taken" },
                       { "application/json; charset=UTF-16", "that charset is not taken" },
                       { 'application/json; charset="utf-16"', "that charset is not taken" },
                       { 'application/json; charset="UTF-16LE"', "that charset is not taken" },
                       { "application/json; v=1; charset=iso-8859-1", "that charset is not taken" },
                       { "application/json; charset", "its parameters are malformed" },
                       { "application/jsonp", "got another Content-Type" },
                       { "text/plain", "got another Content-Type" },
                       { nil, "got no Content-Type" } } do
    local err = console.json_type_error(c[1])
    t:ok(err and err:find(c[2], 1, true), ("%q refused naming %s"):format(tostring(c[1]), c[2]), err)
    t:ok(not (c[1] and err and err:lower():find(c[1]:lower():match("[%w/-]+$") or "\0", 1, true)),
         ("  without quoting %q"):format(tostring(c[1])), err)
  end
end)

tap.test("/metrics label values are escaped as the text format says", function(t)
  t:is(console.label_value('a\\b"c\nd'), 'a\\\\b\\"c\\nd', "backslash, quote, line feed (never a raw line break)")
  t:is(console.label_value("idle"), "idle", "a plain value as it is")
end)

-- a console as far as metrics_text sees one: a report and the HTTP layer's stats
local function scraped(report)
  local c = setmetatable({ status_report = function() return report end,
                           server = { stats = function() return { requests = 0, limited = 0, connections = 0 } end } },
                         { __index = console })
  return c:metrics_text()
end

tap.test("/metrics: partly delivered messages and their recipients", function(t)
  local text = scraped { service = { running = true, since = 1 }, settings = { ready = true }, flowing = true,
    connection = { state = "idle" }, queue = { pickup = 0, failed = 1 },
    counters = { delivered = 0, deferred = 0, failed = 1, attempts = 1, partial = 1, partial_delivered = 121,
                 partial_recipients = 123 } }
  for _, m in ipairs { { "mailhook_partial_total", 1 }, { "mailhook_partial_delivered_total", 121 },
                       { "mailhook_partial_recipients_total", 123 } } do
    t:like(text, "\n# HELP " .. m[1] .. " [^\n]+\n# TYPE " .. m[1] .. " counter\n" .. m[1] .. " " .. m[2] .. "\n",
           m[1] .. ": HELP, TYPE counter, " .. m[2])
  end
end)

-- every figure of `status --json` a monitor alerts on has its sample: each
-- counter of the service's snapshot and each count of the queue, given a
-- value of its own, is the value of some sample (a counter added to one and
-- not the other was missing from /metrics: partial)
tap.test("/metrics has every counter and queue count of status --json", function(t)
  local status = require "mailhook.status"
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local d = { workers = {}, cfg = { server = { "smtp.example.com" }, port = 25, retry_interval = 30 },
              stats = { delivered = 1001, deferred = 1002, failed = 1003, attempts = 1004, errors = 0, partial = 1005,
                        partial_delivered = 1006, partial_recipients = 1007 } }
  local tr = status.tracker { delivery = d, spool_dir = dir }
  local k = tr:snapshot().counters
  tr:stop()
  os.execute("rm -rf " .. dir)
  local q = { pickup = 2001, failed = 2002, drop_ins = 2003, maildrop = 2004, corrupt = 2005, oldest_age = 2006 }
  local text = scraped { service = { running = true, since = 1 }, settings = { ready = true }, flowing = true,
    connection = { state = "idle" }, queue = q, counters = k }
  local function sample(v)
    for line in text:gmatch("[^\n]+") do
      local name, got = line:match("^(mailhook_[%w_]+) (%d+)$")
      if got and tonumber(got) == v then return name end
    end
  end
  local n = 0
  for key, v in pairs(k) do
    n = n + 1
    local name = sample(v)
    t:ok(name and name:match("_total$"), "counters." .. key .. ": a counter sample" .. (name and (" (" .. name .. ")") or ""))
  end
  t:ok(n >= 7, n .. " counters in the snapshot")
  for key, v in pairs(q) do
    t:ok(sample(v), "queue." .. key .. ": a sample" .. (sample(v) and (" (" .. sample(v) .. ")") or ""))
  end
end)

-- A console as dispatch sees one (no listener: requests are handed to it), and
-- a request as runtime/http.c gives one, its answer kept.
local function served(opts)
  local logged = {}
  local function keep(s) logged[#logged + 1] = s end
  local c = setmetatable({ host = "127.0.0.1", port = 8025, loopback = true, url = "http://127.0.0.1:8025",
    sessions = {}, subs = {}, busy = {}, waiting = {}, fails = {}, pending = {}, pending_all = 0, limit_said = {},
    cache = {}, server = { trust = function() end }, log = { info = keep, warn = keep, error = keep },
    delivery = { kick = function() end }, logged = logged }, { __index = console })
  for k, v in pairs(opts or {}) do c[k] = v end
  return c
end

local function request(c, method, path, o)
  o = o or {}
  local h = { host = "127.0.0.1:8025", cookie = o.cookie, ["content-type"] = o.ctype, origin = o.origin,
              ["x-csrf-token"] = o.csrf, ["sec-fetch-site"] = o.site }
  local r = {}
  function r.method() return method end
  function r.path() return path end
  function r.query() return o.query end
  function r.header(_, n) return h[n] end
  function r.body() return o.body end
  function r.peer() return o.peer or "127.0.0.1" end
  function r.alive() return true end
  function r.respond(_, status, headers, body)
    r.status, r.text, r.headers = status, body, {}
    for _, kv in ipairs(headers) do r.headers[kv[1]:lower()] = kv[2] end
    return true
  end
  c:dispatch(r)
  r.json = r.text and r.headers["content-type"] == "application/json" and require("mailhook.json").decode(r.text)
  return r
end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. d))
  return d
end

-- The service delivers a spool given by -s (or an embedder's): the console's
-- queue, its outage banner, Retry and Remove act on that one.  They read
-- core.paths.spool (mh.queue's default) while /api/status read the service's.
-- The queue page of a console whose spool_dir holds no spool (an embedder's,
-- or removed): "no spool at DIR", and nothing made there.  Before, its
-- spool_object() made the spool (mh.queue.spool made what it opened).
tap.test("the queue page on no spool: said, nothing made", function(t)
  local core = require "mailhook.core"
  local dir = tmpdir() .. "/nosuch"
  local c = served { spool_dir = dir }
  local id = c:new_session("127.0.0.1")
  local r = request(c, "GET", "/api/queue", { cookie = "mh_session=" .. id })
  t:is(r.status, 404, "GET /api/queue: 404")
  t:like(r.json and r.json.error or tostring(r.text), "no spool at " .. dir:gsub("%p", "%%%0"), "no spool at DIR")
  t:ok(not core.fsutil.mode(dir), "nothing made at " .. dir)
  os.execute("rm -rf " .. dir:match("^(.*)/nosuch$"))
end)

tap.test("the queue page, its outage, Retry and Remove: the service's spool, not the default", function(t)
  local core = require "mailhook.core"
  local dir, default = tmpdir(), tmpdir()
  local sp = assert(require("mailhook.spool").open(dir))
  local waiting = assert(sp:enqueue("Subject: waiting\r\n\r\nb\r\n", { from = "a@b.c", to = { "x@y.z" } }))
  local dead = assert(sp:enqueue("Subject: dead\r\n\r\nb\r\n", { from = "a@b.c", to = { "x@y.z" } }))
  assert(sp:fail(dead, { reason = "550 5.1.1 no such user" }))
  local f = assert(io.open(dir .. "/outage", "w"))
  f:write("since " .. os.time() .. "\nerror connect: connection refused\n")
  f:close()
  assert(require("mailhook.spool").open(default))      -- the default: an empty spool
  local saved = core.paths.spool
  core.paths.spool = default
  local ok, err = pcall(function()
    local c = served { spool = sp, spool_dir = dir }
    local id, s = c:new_session("127.0.0.1")
    local cookie = "mh_session=" .. id
    local r = request(c, "GET", "/api/queue", { cookie = cookie })
    t:is(r.status, 200, "GET /api/queue")
    local q = r.json or {}
    t:is(q.total, 1, "the service's pickup/ listed (the default spool's is empty)")
    t:is(q.entries and q.entries[1] and q.entries[1].id, waiting, "its waiting message")
    t:is(q.counts and q.counts.failed, 1, "its failed/ counted")
    t:is(q.outage and q.outage.error, "connect: connection refused", "its outage (the banner)")
    r = request(c, "GET", "/api/queue", { cookie = cookie, query = "folder=failed" })
    t:is(r.json and r.json.entries and r.json.entries[1] and r.json.entries[1].id, dead, "its failed/ listed")
    local post = { cookie = cookie, csrf = s.csrf, ctype = "application/json" }
    post.body = '{"id":"' .. dead .. '"}'
    r = request(c, "POST", "/api/queue/retry", post)
    t:is(r.status, 200, "Retry of the failed message: 200 " .. tostring(r.text))
    t:ok(core.fsutil.mode(dir .. "/pickup/" .. dead .. ".eml"), "it is back in the service's pickup/")
    post.body = '{"id":"' .. waiting .. '"}'
    r = request(c, "POST", "/api/queue/remove", post)
    t:is(r.status, 200, "Remove: 200 " .. tostring(r.text))
    t:ok(not core.fsutil.mode(dir .. "/pickup/" .. waiting .. ".eml"), "it is gone from the service's pickup/")
  end)
  core.paths.spool = saved
  t:ok(ok, "no error", err)
  os.execute("rm -rf " .. dir .. " " .. default)
end)

-- What local users handed over (maildrop/) and no service adopted yet is in
-- GET /api/queue's answer (`maildrop`, a list of its own: entries, total and
-- the paging stay pickup/'s), with who dropped it, the sender, the recipients
-- and the items left out, as `mailhook queue` lists it; Remove takes its name
-- (as `mailhook queue rm NAME`), Retry says it waits for the adoption.
-- Before, the page did not list it at all, and Remove/Retry of its name was a 400.
tap.test("the queue page lists maildrop/ files; Remove and Retry take their names", function(t)
  local core = require "mailhook.core"
  local dir, default = tmpdir(), tmpdir()
  local sp = assert(require("mailhook.spool").open(dir))
  assert(sp:enqueue("Subject: waiting\r\n\r\nb\r\n", { from = "a@b.c", to = { "x@y.z" } }))
  assert(os.execute("mkdir -m 1730 " .. dir .. "/maildrop"))
  local uid, gid = io.popen("id -u"):read("l"), io.popen("id -g"):read("l")
  local name = "0000000000000001.00000001"
  local f = assert(io.open(dir .. "/maildrop/" .. name, "w"))
  -- as mailhook-drop -l records it: the item sendmail kept escaped (a typed backslash
  -- \x5C), escaped once more for the record
  f:write("MAILHOOK-DROP 1\nuid " .. uid .. "\ngid " .. gid .. "\npid 1\ntime 1\nto ops@example.net\n" ..
          "leftout Some\\x5Cx5Cx07Name\twhy\n\nSubject: from a user\n\nbody\n")
  f:close()
  assert(require("mailhook.spool").open(default))      -- the default: an empty spool
  local saved = core.paths.spool
  core.paths.spool = default
  local ok, err = pcall(function()
    local c = served { spool = sp, spool_dir = dir }
    local id, s = c:new_session("127.0.0.1")
    local cookie = "mh_session=" .. id
    local r = request(c, "GET", "/api/queue", { cookie = cookie })
    t:is(r.status, 200, "GET /api/queue")
    local q = r.json or {}
    t:is(q.total, 1, "total: pickup/'s alone")
    t:is(q.maildrop_total, 1, "maildrop_total: the file waiting in the service's maildrop/")
    local e = q.maildrop and q.maildrop[1] or {}
    t:is(e.name, name, "listed by its name")
    t:is(e.state, "maildrop", "state maildrop")
    t:is(e.uid, tonumber(uid), "who dropped it: its uid")
    t:is(e.to and e.to[1], "ops@example.net", "its recipients")
    t:is(e.refused and e.refused[1] and e.refused[1].rcpt, "Some\\x5Cx07Name", "the item left out, as kept")
    t:is(e.subject, "from a user", "its subject")
    r = request(c, "GET", "/api/queue", { cookie = cookie, query = "folder=failed" })
    t:is(r.json and r.json.maildrop, nil, "not with failed/'s page")
    local post = { cookie = cookie, csrf = s.csrf, ctype = "application/json" }
    post.body = '{"id":"' .. name .. '"}'
    r = request(c, "POST", "/api/queue/retry", post)
    t:is(r.status, 200, "Retry of it: 200 " .. tostring(r.text))
    t:is(r.json and r.json.queued, false, "not queued")
    t:like(r.json and r.json.note or "", "waits in .*maildrop/ for the service to adopt it", "it waits for the adoption")
    t:ok(core.fsutil.mode(dir .. "/maildrop/" .. name), "and is still there")
    post.body = '{"id":"../maildrop/' .. name .. '"}'
    r = request(c, "POST", "/api/queue/remove", post)
    t:is(r.status, 400, "Remove of a path: 400")
    post.body = '{"id":"' .. name .. '"}'
    r = request(c, "POST", "/api/queue/remove", post)
    t:is(r.status, 200, "Remove of it: 200 " .. tostring(r.text))
    t:is(r.json and r.json.maildrop, name, "said as maildrop/'s")
    t:ok(not core.fsutil.mode(dir .. "/maildrop/" .. name), "it is gone from the service's maildrop/")
    r = request(c, "GET", "/api/queue", { cookie = cookie })
    t:is(r.json and r.json.maildrop and #r.json.maildrop, 0, "the list is empty ([])")
  end)
  core.paths.spool = saved
  t:ok(ok, "no error", err)
  os.execute("rm -rf " .. dir .. " " .. default)
end)

-- The stored SMTP password stays bound to how safely it travels, not only to
-- where: on a server without TLS (allow_plaintext_auth) a saved cram-md5 never
-- sends the password, plain or login send it readable by anyone on the path.
-- auth_mechanism was not among the fields that ask for the password again, so
-- a session (a stolen cookie, a script injected into the page) saved plain, or
-- pressed Test with it, and the password crossed the network in clear.
tap.test("auth_mechanism changed with the stored password kept: type it again", function(t)
  local core = require "mailhook.core"
  local dir = tmpdir()
  local f = assert(io.open(dir .. "/mailhook.conf", "w"))
  f:write("enabled = true\nserver = 127.0.0.1\nport = 2525\nfrom = pbx@example.com\ntls = none\n" ..
          "tls_required = false\nauth = true\nusername = u\nallow_plaintext_auth = true\n" ..
          "auth_mechanism = cram-md5\n")
  f:close()
  f = assert(io.open(dir .. "/mailhook.secrets", "w"))
  f:write("password = stored-Pw-77\n")
  f:close()
  os.execute("chmod 600 " .. dir .. "/mailhook.secrets")
  local saved = core.paths.conf
  core.paths.conf = dir .. "/mailhook.conf"
  local ok, err = pcall(function()
    local c = served()
    for _, m in ipairs { "plain", "login", "auto" } do
      local yes, why, key = c:credentials_guard({ auth_mechanism = m }, true)
      t:ok(not yes and key == "password", "Update cram-md5 -> " .. m .. ": refused beside the password", why)
      yes, why, key = c:credentials_guard({ auth_mechanism = m }, false)
      t:ok(not yes and key == "password", "Test with " .. m .. ": refused beside the password", why)
    end
    t:ok(c:credentials_guard({ auth_mechanism = "plain", password = "typed-again" }, true),
         "with the password typed again: allowed")
    t:ok(c:credentials_guard({ auth_mechanism = "cram-md5" }, true), "the saved mechanism again: allowed")
    t:ok(c:credentials_guard({ username = "v" }, true), "another field: no password asked")
    -- unset is auto: saving "auto" over it moves nothing
    f = assert(io.open(dir .. "/mailhook.conf", "w"))
    f:write("enabled = true\nserver = 127.0.0.1\nport = 2525\nfrom = pbx@example.com\ntls = none\n" ..
            "tls_required = false\nauth = true\nusername = u\nallow_plaintext_auth = true\n")
    f:close()
    t:ok(c:credentials_guard({ auth_mechanism = "auto" }, true), "unset -> auto: allowed (the same)")
    local yes, _, key = c:credentials_guard({ auth_mechanism = "plain" }, true)
    t:ok(not yes and key == "password", "unset (auto, cram-md5 first) -> plain: refused")
  end)
  core.paths.conf = saved
  t:ok(ok, "no error", err)
  os.execute("rm -rf " .. dir)
end)

return tap.done()
