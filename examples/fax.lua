-- examples/fax.lua — an incoming fax becomes a mail with the document
-- attached (PDF or TIFF).  The fax server runs:
--
--   mailhook hook fax sender=+33198765432 sender_name="ACME" pages=3 \
--                 file=/var/spool/fax/in/fax0042.pdf to=accounts@example.com

local DEFAULT_TO = "fax@example.com"
local TYPES = { pdf = "application/pdf", tif = "image/tiff", tiff = "image/tiff" }
local tpl = mh.template.default("fax")

on("fax", function(ev)
  local ctx = {}
  for k, v in pairs(ev) do ctx[k] = v end
  local ext = ev.file and ev.file:match("%.(%w+)$")
  local ctype = ext and TYPES[ext:lower()]
  -- the core's rule for files mailhook did not create (what mh.enqueue applies):
  -- a folder or a FIFO named *.pdf, or a file over the limit, is not attached and
  -- the fax still told (io.open said yes to a folder and hung on a FIFO)
  local fsutil = mh.core.fsutil
  local size, why
  if ev.file and ctype then
    size, why = fsutil.check(ev.file, { max = fsutil.limits.attachment, follow = true, what = "fax document" })
    if not size then mh.log.warn("fax: " .. tostring(why)) end
  end
  ctx.attached = size ~= nil
  ctx.file_name = ev.file and ev.file:match("[^/]+$")
  ctx.plural = tonumber(ev.pages) ~= 1
  -- (an empty to= is none: a fax script passes its variable even when unset)
  local to = ev.to ~= nil and ev.to ~= "" and ev.to or DEFAULT_TO
  ctx.recipient = to
  ctx.time = ctx.time or os.date("%Y-%m-%d %H:%M")
  if ev.file and not ctype then mh.log.warn("fax: " .. ev.file .. " is neither PDF nor TIFF; not attached") end
  local m = mh.template.message(tpl, ctx)
  assert(mh.enqueue {
    to = to,
    subject = m.subject, text = m.text,
    attachments = ctx.attached and { { path = ev.file, type = ctype, name = ctx.file_name } } or nil,
  })
end)
