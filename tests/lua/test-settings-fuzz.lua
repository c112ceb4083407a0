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

return tap.done()
