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

-- every file named must be readable before anything is built
local attachments = {}
for _, path in ipairs(opts.attach or {}) do
  local f, err = io.open(path, "rb")
  if not f then return args.fail("enqueue", "attachment " .. err, 1) end
  f:close()
  attachments[#attachments + 1] = { path = path }
end
local html
if opts.html then
  local f, err = io.open(opts.html, "rb")
  if not f then return args.fail("enqueue", "html body " .. err, 1) end
  html = f:read("a")
  f:close()
end

-- refuse before reading stdin when intake is off
local ok, err = intake.ready()
if not ok then return args.fail("enqueue", err, 1) end

local text = io.read("a") or ""
local id, info
id, err, info = intake.enqueue{
  to = opts.to, cc = opts.cc, bcc = opts.bcc, from = opts.from,
  subject = opts.subject or "", text = text, html = html,
  attachments = #attachments > 0 and attachments or nil,
}
if not id then return args.fail("enqueue", err, 1) end
print(id)
return 0
