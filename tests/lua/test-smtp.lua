-- core.smtp and mailhook.smtp without a real server: argument checks, DNS and
-- connect failures named, the tls policy table, a session closed while another
-- task waits on it, and no handle left open afterwards (tap checks that).
local tap = require "tap"
local peers = require "peers"   -- tests/peers/fault.lua, the scripted peer
local mh = require "mailhook"
local smtp = require "mailhook.smtp"
local core = mh.core

tap.test("misuse raises, clearly", function(t)
  local ok, err = pcall(core.smtp.new, { port = 25 })
  t:ok(not ok and err:find("host missing"), "host required")
  ok, err = pcall(core.smtp.new, { host = "x", tls = "maybe" })
  t:ok(not ok and err:find("tls must be"), "tls mode checked")
  ok, err = pcall(core.smtp.new, { host = "x", port = 70000 })
  t:ok(not ok and err:find("port"), "port range checked")
end)

tap.test("mh.smtp.test with server or from unset fails at stage settings, naming the keys", function(t)
  local r, err, info = smtp.test { cfg = { port = 25, tls = "none", tls_required = false } }
  t:is(r, nil, "no report")
  t:is(info and info.stage, "settings", "stage settings, not connect (no server was asked)")
  t:is(info and info.keys and table.concat(info.keys, ","), "server,from", "both keys named")
  t:like(err, "mailhook update server=", "the command that sets them")
  r, err, info = smtp.test { cfg = { server = { "127.0.0.1" }, port = 25, tls = "none", tls_required = false } }
  t:is(info and info.stage, "settings", "from unset: stage settings, not sender")
  t:is(info and info.keys and table.concat(info.keys, ","), "from", "from named")
  r, err, info = smtp.test { cfg = { from = "a@example.com", port = 25, tls = "none", tls_required = false } }
  t:is(info and info.stage, "settings", "server unset: stage settings, not connect")
  t:like(err, "^server is not set", "server named")
end)

tap.test("dns and connect failures name the stage, the host and every address", function(t)
  local s, err, info = smtp.connect { server = { "no-such-host.invalid" }, port = 25, tls = "none",
                                      tls_required = false }
  t:is(s, nil, "unknown host")
  t:is(info.stage, "dns", "stage dns")
  t:like(err, "no%-such%-host%.invalid", "names the host")
  -- a port nobody listens on (bound, then released)
  local port = peers.free_port()
  s, err, info = smtp.connect { server = { "127.0.0.1" }, port = port, tls = "none", tls_required = false }
  t:is(info and info.stage, "connect", "stage connect")
  t:like(err, "127%.0%.0%.1: connection refused", "address and reason")
  t:is(info and info.class, "transient", "transient")
end)

tap.test("a failed connect says its cause by errno name, for code to read (not the English)", function(t)
  local port = peers.free_port()
  local s, _, info = smtp.connect { server = { "127.0.0.1" }, port = port, tls = "none", tls_required = false }
  t:is(s, nil, "refused")
  t:is(info and info.errno, "ECONNREFUSED", "info.errno: ECONNREFUSED")
  t:is(info and info.errors and info.errors[1] and info.errors[1].address, "127.0.0.1", "info.errors names the address")
  t:is(info and info.errors and info.errors[1] and info.errors[1].errno, "ECONNREFUSED", "and its cause")
  -- a listener whose accept queue is full: the kernel drops the next SYN, so the
  -- connect neither succeeds nor is refused, and times out
  local socket = require "socket"
  local srv = socket.tcp()
  assert(srv:bind("127.0.0.1", 0))
  assert(srv:listen(0))
  local _, lport = srv:getsockname()
  local filler = socket.tcp()
  filler:settimeout(5)
  assert(filler:connect("127.0.0.1", lport))   -- established, never accepted: the queue is full
  local c = core.smtp.new { host = "127.0.0.1", port = tonumber(lport), tls = "none", connect_timeout = 1 }
  local ok, err2, info2 = c:open()
  t:is(ok, nil, "a connect nobody answers fails")
  t:is(info2 and info2.errno, "ETIMEDOUT", "info.errno: ETIMEDOUT (" .. tostring(err2) .. ")")
  t:is(info2 and info2.errors and info2.errors[1] and info2.errors[1].errno, "ETIMEDOUT", "per address too")
  c:close()
  filler:close()
  srv:close()
end)

tap.test("auth mechanism order: under TLS PLAIN, LOGIN, CRAM-MD5; without TLS CRAM-MD5 first", function(t)
  local all = { "login", "cram-md5", "plain" }
  t:is(smtp.choose_mech({}, all, nil, true), "plain", "TLS: PLAIN first")
  t:is(smtp.choose_mech({}, { "cram-md5", "login" }, nil, true), "login", "TLS: LOGIN before CRAM-MD5")
  t:is(smtp.choose_mech({}, { "cram-md5" }, nil, true), "cram-md5", "TLS: CRAM-MD5 when it is all there is")
  t:is(smtp.choose_mech({}, all, nil, false), "cram-md5", "no TLS: CRAM-MD5 first")
  t:is(smtp.choose_mech({}, { "login", "plain" }, nil, false), "plain", "no TLS, no CRAM-MD5: PLAIN")
  t:is(smtp.choose_mech({ auth_mechanism = "cram-md5" }, all, nil, true), "cram-md5", "auth_mechanism = cram-md5")
  t:is(smtp.choose_mech({ oauth_token_command = "x" }, { "xoauth2", "cram-md5" }, nil, false), "xoauth2",
       "a token command: OAuth first")
  local m, why = smtp.choose_mech({}, {}, { "AUTH,DIGEST-MD5" }, true)
  t:is(m, nil, "nothing in common")
  t:like(why, "also DIGEST%-MD5, which mailhook does not speak %(it speaks plain, login, cram%-md5", "named")
end)

tap.test("tls policy", function(t)
  local seen = { ["a:25"] = "starttls", ["b:2525"] = "implicit" }
  t:is(smtp.mode_for({ tls = "auto" }, "x", 465, {}), "implicit", "auto on 465: implicit")
  t:is(smtp.mode_for({ tls = "auto" }, "x", 587, {}), "auto", "auto elsewhere: detect")
  t:is(smtp.mode_for({ tls = "auto" }, "a", 25, seen), "starttls", "seen with STARTTLS: required")
  t:is(smtp.mode_for({ tls = "auto" }, "b", 2525, seen), "implicit", "seen with implicit TLS")
  t:is(smtp.mode_for({ tls = "none", tls_required = true }, "x", 25, {}), nil, "none + required refused")
  t:is(smtp.mode_for({ tls = "none", auth = true }, "x", 25, {}), nil, "none + auth refused (required by default)")
  t:is(smtp.mode_for({ tls = "none", tls_required = false }, "a", 25, seen), nil, "none for a server seen with TLS")
  t:is(smtp.mode_for({ tls = "none", tls_required = false }, "x", 25, {}), "none", "none otherwise")
  -- a plain server remembered as greeting late (state/greeting-late): no probe
  local late = { ["x:25"] = 3.0, ["a:25"] = 3.0, ["y:465"] = 3.0 }
  t:is(smtp.mode_for({ tls = "auto", tls_required = false }, "x", 25, {}, late), "opportunistic",
       "greets late: wait for the greeting, STARTTLS when offered")
  t:is(smtp.mode_for({ tls = "auto", tls_required = true }, "x", 25, {}, late), "starttls",
       "greets late, tls_required: STARTTLS required")
  t:is(smtp.mode_for({ tls = "auto" }, "a", 25, seen, late), "starttls", "tls-seen wins")
  t:is(smtp.mode_for({ tls = "auto" }, "y", 465, {}, late), "implicit", "465 stays implicit")
  t:is(smtp.mode_for({ tls = "starttls" }, "x", 25, {}, late), "starttls", "a forced mode stays")
end)

tap.test("a server remembered as greeting late is not probed; one that then sends nothing is forgotten", function(t)
  local dir = os.tmpname()
  os.remove(dir)
  local saved = core.paths.spool
  core.paths.spool = dir
  local sp = assert(core.spool.open(dir))
  sp:close()
  local f = peers.fault("stall\n")
  local key = "127.0.0.1:" .. f.port
  local fh = assert(io.open(smtp.greeting_late_path(), "w"))
  fh:write("other.example:25 4.0\n", key, " 3.0\n")
  fh:close()
  local s, err, info = smtp.connect { server = { "127.0.0.1" }, port = f.port, tls = "auto", tls_required = false,
                                      command_timeout = 0.3, greeting_wait = 0.2 }
  t:is(s, nil, "a silent server: fails")
  t:is(info and info.waited, "greeting", "waiting for the greeting (" .. tostring(err) .. ")")
  t:ok(info and not info.tls_probe, "and no ClientHello was sent")
  local text = core.fsutil.read(smtp.greeting_late_path()) or ""
  t:is(text, "other.example:25 4.0\n", "its line is gone (the next session probes), the others stay")
  f.stop()
  core.paths.spool = saved
  os.execute("rm -rf '" .. dir .. "'")
end)

-- The waiter gets the library's failure, naming what it waited in and the
-- stage: it raised "interrupted", which said neither.
tap.test("closing a session another task waits on ends that wait with nil, message, info", function(t)
  -- a peer that stays silent until it is killed (however slow the machine, it never closes first)
  local f = peers.fault("stall\n")
  local port = f.port
  local c = core.smtp.new { host = "127.0.0.1", port = port, tls = "none", connect_timeout = 5 }
  local waiter = mh.spawn(function() return c:open() end)
  mh.sleep(0.1)
  t:is(waiter:status(), "waiting", "open waits for a greeting that never comes")
  c:close()
  local ok, res, err, info = waiter:wait()
  t:is(ok, true, "the waiter returned (did not raise)")
  t:is(res, nil, "nil")
  t:is(err, "smtp open: session closed (c:close() while this task waited)", "the message says what happened")
  t:is(info and info.stage, "connect", "info.stage names the stage")
  t:is(info and info.code, "ECANCELED", "info.code")
  t:is(info and info.class, "transient", "info.class")
  t:ok(not pcall(c.alive, c), "a closed session raises on use")
  c:close()   -- idempotent
  f.stop()
end)

tap.test("a silent server: the implicit TLS handshake has a timeout too", function(t)
  -- The peer accepts and stays silent until it is killed: only the timeout can end the handshake
  -- (a close would read "closed", not "timed out"), however slow the machine.
  local f = peers.fault("stall\n")
  local port = f.port
  for _, mode in ipairs { "implicit", "auto" } do
    local t0 = mh.monotonic()
    local s, err, info = smtp.connect { server = { "127.0.0.1" }, port = port, tls = mode, tls_required = true,
                                        command_timeout = 0.3, greeting_wait = 0.2 }
    t:is(s, nil, mode .. ": fails")
    if mode == "implicit" then
      t:is(info and info.stage, "tls", mode .. ": stage tls")
      t:like(err, "handshake timed out", mode .. ": says so")
    else   -- no greeting, and no answer to the ClientHello sent then: no SMTP server, not a TLS problem
      t:is(info and info.stage, "connect", mode .. ": stage connect")
      t:like(err, "connected, but the server sent no greeting, nor answered a TLS handshake", mode .. ": says so")
    end
    -- waited its command_timeout, and not the 300 s default (loose: ASan and a loaded machine)
    t:ok(mh.monotonic() - t0 >= 0.29, mode .. ": after waiting its command_timeout")
    t:ok(mh.monotonic() - t0 < 10, mode .. ": promptly")
  end
  f.stop()
end)

-- The values as a settings file, an event's KEY=VALUE or a form give them,
-- strings (port = "587" was refused: "cfg.port must be a whole number"): read
-- by the settings' parsers, they reach the engine as numbers and modes.
tap.test("cfg values written as the settings file writes them reach the engine", function(t)
  local f = peers.fault("stall\n")
  local t0 = mh.monotonic()
  local ok, s, err, info = pcall(smtp.connect, { server = "127.0.0.1", port = tostring(f.port), tls = "Implicit",
                                                 tls_required = "yes", command_timeout = "0.3s", helo_name = "" })
  t:ok(ok, "taken", not ok and s or nil)
  t:is(s, nil, "fails (a silent server)")
  t:is(info and info.stage, "tls", "at the implicit TLS handshake: tls = 'Implicit' read as implicit")
  t:like(err, "handshake timed out", "timed out: the port string was the peer's")
  t:ok(mh.monotonic() - t0 < 10, "after command_timeout = '0.3s', not 300 s")
  f.stop()
end)

return tap.done()
