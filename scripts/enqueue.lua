-- mailhook enqueue --to A [--cc A] [--bcc A] [--from A] [--subject S]
--                  [--attach FILE]... [--html FILE]  < body
-- Builds a message (text body from stdin) and queues it durably; prints its id
-- only once the spool file and its folder are fsynced.  Exit 0 queued, 1 not
-- queued (the reason on stderr), 2 bad usage.  An admin action: sites may edit it.
local args = require "mailhook.args"
local intake = require "mailhook.enqueue"

local opts, rest = args.parse({ ... }, {
  to = "list", cc = "list", bcc = "list", from = "string", subject = "string",
  attach = "list", html = "string", help = "flag",
})
if not opts then return args.fail("enqueue", rest) end
if opts.help then
  io.write("usage: mailhook enqueue --to A [--cc A] [--bcc A] [--from A] [--subject S] ",
           "[--attach FILE]... [--html FILE]  < body\n")
  return 0
end
if #rest > 0 then return args.fail("enqueue", "unexpected argument '" .. rest[1] .. "'") end
if not opts.to and not opts.cc and not opts.bcc then
  return args.fail("enqueue", "no recipient: give --to, --cc or --bcc")
end

-- every file named must be readable before anything is built, by the core's
-- rule for files we did not create: regular files only (a FIFO or /dev/zero
-- is refused, never opened), each within its limit (docs/spool.md, "Limits")
local fsutil = require("mailhook.core").fsutil
local attachments = {}
for _, path in ipairs(opts.attach or {}) do
  local ok, err = fsutil.check(path, { follow = true, max = fsutil.limits.attachment, what = "attachment" })
  if not ok then return args.fail("enqueue", err, 1) end
  attachments[#attachments + 1] = { path = path }
end
local html
if opts.html then
  local err
  html, err = fsutil.read(opts.html, { follow = true, max = fsutil.limits.body, what = "--html" })
  if not html then return args.fail("enqueue", err, 1) end
end

-- refuse before reading stdin when intake is off
local ok, err = intake.ready()
if not ok then return args.fail("enqueue", err, 1) end
require("mailhook.settings").hold(ok)   -- read once: intake.enqueue below uses these

-- the body, at most limits.body (an endless stdin is refused, not read forever)
local text, rinfo
text, err, rinfo = fsutil.read(0, { max = fsutil.limits.body, what = "the body on stdin" })
if not text and rinfo and rinfo.code == "EBADF" then text = "" end   -- no stdin at all: no body
if not text then return args.fail("enqueue", err, 1) end
local id, info
id, err, info = intake.enqueue{
  to = opts.to, cc = opts.cc, bcc = opts.bcc, from = opts.from,
  subject = opts.subject or "", text = text, html = html,
  attachments = #attachments > 0 and attachments or nil,
}
if not id then return args.fail("enqueue", err, 1) end
print(id)
return 0
