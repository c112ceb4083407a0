-- mailhook.cmd.status — `mailhook status [--json] [--timeout S]`: the one command
-- for 3 a.m.  Is a service running on this spool (pid, since when), are the
-- settings ready (or which one is missing), how is the connection (connected,
-- or waiting to retry since when, with the last error's stage and server reply
-- and the next attempt), the queue (depth, oldest message, failed/), and what
-- was delivered, deferred and failed since the service started.
-- Exit 0 when mail is flowing, 1 otherwise, a file of maildrop/ the service
-- cannot adopt included (status.flowing; 2 on bad usage).  --json prints the
-- same report as one JSON document (mailhook.status.collect).
local args = require "mailhook.args"
local status = require "mailhook.status"

return function(...)
  local opts, rest = args.parse({ ... }, { json = "flag", timeout = "string", help = "flag", h = "flag" })
  if not opts then return args.fail("status", rest) end
  if opts.help or opts.h then
    io.stdout:write("usage: mailhook status [--json] [--timeout SECONDS]\n",
                    "  is mail flowing, and if not why; exit 0 when it flows, 1 otherwise\n")
    return 0
  end
  if #rest > 0 then return args.fail("status", "unexpected argument '" .. rest[1] .. "'") end
  local timeout, terr
  if opts.timeout then
    timeout, terr = args.seconds("--timeout", opts.timeout, 60)
    if not timeout then return args.fail("status", terr) end
  end
  local report = status.collect { timeout = timeout }
  if opts.json then
    io.stdout:write(require("mailhook.json").encode(report), "\n")
  else
    io.stdout:write(status.text(report))
  end
  return report.flowing and 0 or 1
end
