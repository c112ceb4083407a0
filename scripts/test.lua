-- mailhook test [--to ADDR] [--timeout SECONDS] — the Test button: connect,
-- negotiate TLS, authenticate, check that the From address is accepted (MAIL
-- FROM + RSET), QUIT; with --to also send a real test message.  Prints what an
-- administrator needs to act on (mailhook.testreport: the REPL's test() shows the
-- same report); never the password.  Every wait (DNS, connection, greeting, TLS,
-- each reply) is bounded by --timeout (30 s), so the answer comes quickly and
-- names what never came.
-- Exit 0 when everything passed, 1 when a stage failed (named), 2 on bad usage.
-- --json: the same facts as one JSON document (mailhook.testreport.data, docs/console.md).
-- The console runs this same script with a table instead of arguments,
-- {to =, cfg =, on_stage = fn(name, report)}, and gets that result table back.
local args = require "mailhook.args"

local USAGE = "usage: mailhook test [--to ADDR] [--timeout SECONDS] [--json]\n"

local api = type((...)) == "table" and (...) or nil
local opts, rest
if api then
  opts, rest = { to = api.to, timeout = api.timeout and tostring(api.timeout), json = true }, {}
else
  opts, rest = args.parse({ ... }, { to = "string", timeout = "string", help = "flag", json = "flag" })
end
if not opts then return args.fail("test", rest) end
if opts.help then
  io.write(USAGE, "  connect, negotiate TLS, authenticate, check the From address and report;\n",
           "  --to also sends a test message; every step waits at most --timeout seconds (30);\n",
           "  --json prints the same facts as one JSON document\n")
  return 0
end
if #rest > 0 then return args.fail("test", "unexpected argument '" .. rest[1] .. "'") end
-- --to is checked here, by the builder's rule: a malformed address is the
-- administrator's typo, not the server's refusal (it used to connect, then
-- report "FAILED at stage recipient ... the server refused the test recipient"
-- and exit 1), and a CR or LF in it never reaches the terminal raw.
if not api and opts.to then
  local ok, why = require("mailhook.core").msg.valid_address(opts.to)
  if not ok then
    local shown = opts.to:gsub("[%c\127]", function(c) return string.format("\\x%02x", c:byte()) end)
    return args.fail("test", "--to: '" .. shown .. "' is not a valid address: " .. why)
  end
end
local timeout
if opts.timeout then
  local terr
  timeout, terr = args.seconds("--timeout", opts.timeout, 86400)
  if not timeout then return args.fail("test", terr) end
end

local settings = require "mailhook.settings"
local cfg, err
local linfo
if api and api.cfg then cfg = api.cfg else cfg, err, linfo = settings.load() end
if not cfg then
  -- what the test needs and the file does not set, in the same error: every
  -- missing or invalid setting at once, not one per run
  local set = type(linfo) == "table" and linfo.set
  if set then
    local missing = {}
    if not set.server then missing[#missing + 1] = "server: not set (mailhook update server=smtp.example.com)" end
    if not set.from then missing[#missing + 1] = "from: not set (mailhook update from=notify@example.com)" end
    if #missing > 0 then err = err .. "; " .. table.concat(missing, "; ") end
  end
  if api then return { ok = false, failed_stage = "settings", error = err } end
  if opts.json then
    io.write(require("mailhook.json").encode { ok = false, failed_stage = "settings", error = err }, "\n")
    return 1
  end
  return args.fail("test", err, 1)
end

-- risky settings first (allow_plaintext_auth = true, ...), on stderr (in --json: in the document)
if not opts.json then
  for _, w in ipairs(require("mailhook.testreport").warnings(cfg)) do io.stderr:write("mailhook test: warning: ", w, "\n") end
end

local r = require("mailhook.testreport").run {
  cfg = cfg, to = opts.to, timeout = timeout, on_stage = api and api.on_stage,
  started = not opts.json and function(header)
    io.write(header, "\n")
    io.stdout:flush()
  end or nil,
}
if api then return r.data end
if opts.json then
  io.write(require("mailhook.json").encode(r.data), "\n")
  return r.ok and 0 or 1
end
io.write(r.body)
return r.ok and 0 or 1
