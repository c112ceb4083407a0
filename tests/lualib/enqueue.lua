-- enqueue.lua — a durable enqueue from a stock lua5.4 (no task, no mh.run):
-- mh.enqueue blocks until the message is fsynced in the spool, prints
-- "ID <id>", then waits on stdin so that tests/integration/lualib.sh can
-- SIGKILL the process the moment the id is out.  Settings and spool come from
-- $MAILHOOK_CONF and $MAILHOOK_SPOOL.
--   lua5.4 enqueue.lua SUBJECT [ATTACHMENT]
local mh = require "mailhook"
local subject = assert(arg[1], "usage: enqueue.lua SUBJECT [ATTACHMENT]")
local id, err = mh.enqueue {
  to = "owner@example.com", subject = subject, text = "body of " .. subject,
  attachments = arg[2] and { { path = arg[2] } } or nil,
}
if not id then
  io.stderr:write("enqueue failed: ", tostring(err), "\n")
  os.exit(1)
end
io.write("ID ", id, "\n")
io.flush()
io.read("l")   -- killed here
