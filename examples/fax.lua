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
  local f = ev.file and ctype and io.open(ev.file, "rb")
  if f then f:close() end
  ctx.attached = f and true or false
  ctx.file_name = ev.file and ev.file:match("[^/]+$")
  ctx.plural = tonumber(ev.pages) ~= 1
  ctx.recipient = ev.to
  ctx.time = ctx.time or os.date("%Y-%m-%d %H:%M")
  if ev.file and not ctype then mh.log.warn("fax: " .. ev.file .. " is neither PDF nor TIFF; not attached") end
  local m = mh.template.message(tpl, ctx)
  assert(mh.enqueue {
    to = ev.to or DEFAULT_TO,
    subject = m.subject, text = m.text,
    attachments = ctx.attached and { { path = ev.file, type = ctype, name = ctx.file_name } } or nil,
  })
end)
