-- mailhook.args: the CLI's getopt, and args.seconds, the one rule every
-- command's --timeout is read by (flush, status, test): mailhook.duration's.
local tap = require "tap"
local args = require "mailhook.args"

tap.test("parse: flags, strings, lists, --name=value, --", function(t)
  local o, rest = args.parse({ "--to", "a@b", "--to=c@d", "-t", "--subject", "s", "x", "--", "--y" },
                             { to = "list", subject = "string", t = "flag" })
  t:same(o, { to = { "a@b", "c@d" }, subject = "s", t = true }, "options")
  t:same(rest, { "x", "--y" }, "the rest, -- ends the options")
  local bad, err = args.parse({ "--nope" }, {})
  t:is(bad, nil, "an unknown option is refused")
  t:like(err, "unknown option '%-%-nope'", "naming it")
  bad, err = args.parse({ "--json=1" }, { json = "flag" })
  t:like(err, "takes no value", "a flag with a value")
  bad, err = args.parse({ "--to" }, { to = "string" })
  t:like(err, "needs a value", "a missing value")
  -- a one-value option given twice: refused, never the last taken unseen
  for _, argv in ipairs { { "--to", "a@x", "--to", "b@x" }, { "--to=a@x", "--to=b@x" }, { "--to", "a@x", "--to=a@x" } } do
    bad, err = args.parse(argv, { to = "string" })
    t:is(bad, nil, "refused: " .. table.concat(argv, " "))
    t:like(err, "^option '%-%-to' given twice", "naming the option (no value)")
  end
end)

tap.test("seconds: the duration rule, with the command's bound", function(t)
  t:is(args.seconds("--timeout", "30"), 30, "a number")
  t:is(args.seconds("--timeout", "2.5"), 2.5, "a fraction")
  t:is(args.seconds("--timeout", "2m"), 120, "a unit, as in the settings file")
  for _, bad in ipairs { "0", "-1", "abc", "", "1e3", "inf", "nan", "1e999", "0x10" } do
    local n, err = args.seconds("--timeout", bad)
    t:is(n, nil, "refused: '" .. bad .. "'")
    t:like(err, "^%-%-timeout needs a number of seconds, not '", "naming the option")
  end
  local n, err = args.seconds("--timeout", "61", 60)
  t:is(n, nil, "over the bound")
  t:like(err, "%(up to 60%)", "saying the bound")
  t:is(args.seconds("--timeout", "1m", 60), 60, "the bound itself")
end)

-- --json: a command that raises (not args.fail) still prints one JSON document
-- on stdout, {ok = false, error}, and the error goes on as before (it printed
-- nothing a script could parse)
tap.test("cli: --json, a command that raises: one JSON document, the error raised on", function(t)
  local cli = require "mailhook.cli"
  local saved_mod, saved_out = package.loaded["mailhook.cmd.status"], io.stdout
  package.loaded["mailhook.cmd.status"] = function() error("boom: the spool vanished", 0) end
  local f = io.tmpfile()
  io.stdout = f
  local ok, err = pcall(cli.main, "status", "--json")
  io.stdout = saved_out
  package.loaded["mailhook.cmd.status"] = saved_mod
  args.json = false
  f:seek("set")
  local out = f:read("a")
  f:close()
  t:is(ok, false, "the error is raised on (exit 1, stderr, as before)")
  t:like(tostring(err), "boom: the spool vanished", "the same error")
  t:like(out, '^{[^\n]*"ok":false[^\n]*}\n$', "one JSON document on stdout")
  t:like(out, '"error":"boom: the spool vanished"', "its error field")
end)

return tap.done()
