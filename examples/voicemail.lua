-- examples/voicemail.lua — a new voicemail becomes a mail to the mailbox's
-- owner, with the recording attached.  The PBX runs, per message:
--
--   mailhook hook voicemail mailbox=200 caller=+33123456789 caller_name="J. Doe" \
--                 duration=42 file=/var/spool/pbx/vm/200/msg0001.wav
--
-- Copy into the rules folder (settings `rules`, default ./rules) and edit OWNERS.

-- mailbox -> owner address (and the name used in the greeting)
local OWNERS = {
  ["200"] = { to = "alice@example.com", name = "Alice" },
  ["201"] = { to = "bob@example.com", name = "Bob" },
}
local FALLBACK = { to = "reception@example.com", name = "reception" }

local tpl = mh.template.default("voicemail")   -- lua/mailhook/templates/voicemail.*

-- Whether the recording can be attached, by the core's rule for files mailhook
-- did not create (the one mh.enqueue applies): a regular file within the
-- attachment limit. io.open would say yes to a folder (mh.enqueue then failed
-- and no mail went) and wait for ever on a FIFO (the rule was stopped, no mail).
local fsutil = mh.core.fsutil
local function readable(path)
  if not path then return false end
  local size, why = fsutil.check(path, { max = fsutil.limits.attachment, follow = true, what = "recording" })
  if not size then mh.log.warn("voicemail: " .. tostring(why)) end
  return size ~= nil
end

on("voicemail", function(ev)
  local owner = OWNERS[tostring(ev.mailbox)] or FALLBACK
  local ctx = {}
  for k, v in pairs(ev) do ctx[k] = v end
  ctx.owner = owner.name
  ctx.attached = readable(ev.file)
  ctx.file_name = ev.file and ev.file:match("[^/]+$")
  ctx.time = ctx.time or os.date("%Y-%m-%d %H:%M")
  local m, missing = mh.template.message(tpl, ctx)
  if #missing > 0 then mh.log.debug("voicemail: no value for " .. table.concat(missing, ", ")) end
  if ev.file and not ctx.attached then
    mh.log.warn("voicemail: recording " .. ev.file .. " is not readable; sending without it")
  end
  local id = assert(mh.enqueue {
    to = owner.to,
    subject = m.subject, text = m.text, html = m.html,
    attachments = ctx.attached and { { path = ev.file, type = "audio/wav", name = ctx.file_name } } or nil,
  })
  mh.log.info("voicemail for mailbox " .. tostring(ev.mailbox) .. " queued as " .. id)
end)
