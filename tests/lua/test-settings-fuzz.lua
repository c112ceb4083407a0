-- mailhook.settings: regressions found by fuzzing, then a deterministic
-- property test (fixed seeds).
local tap = require "tap"
local settings = require "mailhook.settings"

local slurp = tap.slurp

-- ------------------------------------------------------------ regressions

tap.test("update: a boolean false is saved, not dropped", function(t)
  local path = tap.tmpfile("tls_required = true\n")
  local cfg, err = settings.update({ tls_verify = false, tls_required = false }, path)
  t:ok(cfg, "update ok", err)
  t:is(cfg and cfg.tls_verify, false, "returned cfg has tls_verify false")
  t:is(slurp(path), "tls_required = false\ntls_verify = false\n", "both written, in place and appended")
  local back = assert(settings.load(path))
  t:is(back.tls_verify, false, "load gives tls_verify false")
  t:ok(settings.update({ tls = "none", auth = true, username = "u", password = "p", tls_required = false }, path),
       "tls = none with auth and tls_required = false is accepted")
  t:ok(settings.update({ tls_required = "OFF" }, path), "OFF")
  t:like(slurp(path), "^tls_required = false\n", "a string boolean is written normalised")
  os.remove(path)
end)

tap.test("load: a value error never shows the password (lone CR line ends)", function(t)
  for _, text in ipairs {
    "port = 25\rpassword = s3cret\n",
    "enabled = yes\rauth = true\rpassword = s3cret\r",
    "tls_verify = no\r#password = s3cret\n",
    "connect_timeout = 16\rpassword = s3cret\1\n",
  } do
    local path = tap.tmpfile(text)
    local cfg, err = settings.load(path)
    t:is(cfg, nil, string.format("%q refused", text))
    t:like(err, "^" .. path:gsub("%p", "%%%0") .. ":1: [%w_]+: must not contain control characters", "names FILE:1 and the key")
    t:ok(not tostring(err):find("s3cret", 1, true), "message does not show the password", err)
    os.remove(path)
  end
  local cfg, err, info = settings.update({ port = "25\r" }, "/nonexistent/dir/mailhook.conf")
  t:is(cfg, nil, "update refuses a CR in a port")
  t:is(info and info.key, "port", "naming the key")
  t:like(err, "control characters", "saying why")
end)

tap.test("update: a tiny numeric duration is written so that load() reads it back", function(t)
  local path = tap.tmpfile("")
  local cfg, err = settings.update({ session_deadline = 1e-5, retry_interval = 0.00012 }, path)
  t:ok(cfg, "update ok", err)
  t:ok(not slurp(path):find("e-", 1, true), "no exponent in the file", slurp(path))
  local back, lerr = settings.load(path)
  t:ok(back, "load() accepts what update() wrote", lerr)
  t:is(back and back.session_deadline, 1e-5, "1e-5 s back")
  t:is(back and back.retry_interval, 0.00012, "0.00012 s back")
  -- smaller than the file can hold: refused, naming the key, nothing written
  local before = slurp(path)
  local ok, err2, info = settings.update({ data_timeout = 1e-300 }, path)
  t:is(ok, nil, "1e-300 refused")
  t:is(info and info.key, "data_timeout", "naming the key")
  t:like(err2, "^data_timeout: ", "message starts with the key")
  t:is(slurp(path), before, "file byte-identical")
  os.remove(path)
end)

tap.test("port and connections: decimal digits only", function(t)
  for _, v in ipairs { "0x19", "1e1", "25.0", "0x1", "99999999999999999999" } do
    local ok, err, info = settings.validate { port = v }
    t:is(ok, nil, string.format("port %q refused", v))
    t:is(info and info.key, "port", "naming the key")
    t:is((settings.validate { connections = v }), nil, string.format("connections %q refused", v))
  end
  t:is(settings.validate { port = " 587 " }.port, 587, "spaces around digits are fine")
  t:is(settings.validate { port = 25.0 }.port, 25, "a whole float from Lua is fine")
  t:is(settings.validate { connections = "064" }.connections, 64, "leading zeros are decimal")
end)

return tap.done()
