-- mh.enqueue{...}: settings.ready + mh.message + spool:enqueue, durable on return.
local tap = require "tap"
local mh = require "mailhook"
local spool = require "mailhook.spool"
local intake = require "mailhook.enqueue"
local settings = require "mailhook.settings"

local dir = io.popen("mktemp -d ${TMPDIR:-/tmp}/mh-lua-enq.XXXXXX"):read("l")
local conf = dir .. "/mailhook.conf"
local sp = assert(spool.open(dir .. "/spool"))

local function files()
  local n = 0
  for name in io.popen("ls '" .. dir .. "/spool/pickup'"):lines() do
    if name:match("%.eml$") then n = n + 1 end
  end
  return n
end

tap.test("refused while disabled, naming the setting; nothing written", function(t)
  local id, err, info = intake.enqueue({ to = { "a@ex.org" }, subject = "x", text = "y" },
                                       { spool = sp, conf = conf })
  t:is(id, nil, "no id")
  t:like(err, "enabled", "names enabled")
  t:is(info and info.code, "EDISABLED", "code EDISABLED")
  t:is(files(), 0, "nothing in pickup/")
end)

-- Settings with no `from` (enabled, a server): "from: no From address" alone
-- did not say that the settings lack one, nor how to set it.
tap.test("no from in the settings nor the message: refused, naming the setting and its fix", function(t)
  local c2 = dir .. "/nofrom.conf"
  assert(settings.update({ enabled = "true", server = "127.0.0.1" }, c2))
  local id, err, info = intake.enqueue({ to = "a@ex.org", subject = "x", text = "y" }, { spool = sp, conf = c2 })
  t:is(id, nil, "no id")
  t:like(err, "^from: no From address: the settings %(.*nofrom%.conf%) have no `from` %(mailhook update from=ADDRESS%)",
         "names the settings file and the command: " .. tostring(err))
  t:is(info and info.field, "from", "field from")
  t:is(info and info.code, "EINVAL", "code EINVAL")
  t:is(files(), 0, "nothing in pickup/")
  t:ok(intake.enqueue({ from = "me@ex.org", to = "a@ex.org", subject = "x", text = "y" }, { spool = sp, conf = c2,
                                                                                          check = true }),
       "a message that gives its from is fine")
end)

tap.test("queued durably once enabled, with the settings' sender", function(t)
  assert(settings.update({ enabled = "true", server = "127.0.0.1", from = "noreply@ex.org" }, conf))
  local id, err = intake.enqueue({ to = { "Ann <ann@ex.org>" }, bcc = { "b@ex.org" }, subject = "Voicemail",
                                   text = "You have a message." }, { spool = sp, conf = conf })
  t:ok(spool.is_id(id), "an id: " .. tostring(id or err))
  local e = sp:load(id)
  t:is(e.from, "noreply@ex.org", "envelope sender from the settings")
  t:same(e.to, { "ann@ex.org", "b@ex.org" }, "recipients, Bcc included")
  local f = io.open(e.path, "rb"); local s = f:read("a"); f:close()
  local sent = s:sub(e.offset + 1)
  t:like(sent, "Subject: Voicemail", "the built message")
  -- (the Message-ID's random part may end in "b" before "@ex.org": look for the address alone)
  t:ok(not sent:find("[^%w%.%-]b@ex%.org") and not sent:find("\nBcc:"), "Bcc not in the sent copy")
  t:like(sent, "\r\nMessage%-ID: <", "Message-ID fixed at enqueue")
end)

tap.test("the submitter is this process's uid: neither a field nor a header sets it", function(t)
  local me = require("mailhook.core").maildrop.whoami().uid
  local ok, why = pcall(intake.enqueue, { to = { "a@ex.org" }, subject = "u", text = "x", uid = 4242 },
                        { spool = sp, conf = conf })
  t:ok(not ok and tostring(why):find("unknown field 'uid'", 1, true), "a uid field is refused: " .. tostring(why))
  local id, err = intake.enqueue({ to = { "a@ex.org" }, subject = "u", text = "x",
                                   headers = { ["X-Submitter-Uid"] = "4243", ["X-Receiver"] = "victim@ex.org" } },
                                 { spool = sp, conf = conf })
  t:ok(spool.is_id(id), "queued: " .. tostring(id or err))
  local e = sp:load(id)
  t:is(e.uid, me, "uid: the real uid of the process")
  t:same(e.all, { "a@ex.org" }, "the header is no recipient")
end)

tap.test("a builder error (bad address, CR/LF in subject) queues nothing", function(t)
  local before = files()
  local id, err = intake.enqueue({ to = { "not an address" }, text = "x" }, { spool = sp, conf = conf })
  t:is(id, nil, "bad address refused")
  t:like(err, "not an address", "named")
  id, err = intake.enqueue({ to = { "a@ex.org" }, subject = "a\r\nBcc: evil@ex.org", text = "x" },
                           { spool = sp, conf = conf })
  t:is(id, nil, "CR/LF in subject refused")
  id, err = intake.enqueue({ to = { "a@ex.org" }, text = "x", attachments = { { path = dir .. "/nope.wav" } } },
                           { spool = sp, conf = conf })
  t:is(id, nil, "missing attachment refused")
  t:like(err, "nope.wav", "named")
  t:is(files(), before, "nothing written")
end)

tap.test("a bare local name (root, www-data) goes where sendmail sends it", function(t)
  assert(settings.update({ default_domain = "corp.example" }, conf))
  local id, err = intake.enqueue({ to = "root", cc = { "www-data", "ops@ex.org" }, subject = "l", text = "x" },
                                 { spool = sp, conf = conf })
  t:ok(spool.is_id(id), "queued (it was refused: 'no @'): " .. tostring(id or err))
  local e = id and sp:load(id)
  t:same(e and e.to, { "root@corp.example", "www-data@corp.example", "ops@ex.org" }, "qualified with default_domain")
  assert(settings.update({ admin_address = "admin@corp.example" }, conf))
  id, err = intake.enqueue({ to = { "root" }, subject = "l", text = "x" }, { spool = sp, conf = conf })
  e = id and sp:load(id)
  t:same(e and e.to, { "admin@corp.example" }, "to admin_address when it is set, as sendmail: " .. tostring(id or err))
  local f = id and io.open(e.path, "rb"); local s = f and f:read("a") or ""; if f then f:close() end
  t:like(s, "\r\nTo: admin@corp%.example\r\n", "the header names the same address")
  assert(settings.update({ admin_address = "", default_domain = "" }, conf))
end)

tap.test("mh.enqueue is reachable from the mailhook table", function(t)
  t:is(type(mh.enqueue), "function", "mh.enqueue")
  t:is(type(mh.queue.list), "function", "mh.queue.list")
end)

tap.test("mh.queue.flush on a spool that cannot be opened: nil, err (it returned a success table)", function(t)
  local bad = os.tmpname()
  os.remove(bad)
  os.execute("mkdir -p '" .. bad .. "' && chmod 777 '" .. bad .. "'")
  local s, err, summary = require("mailhook.flush").queue { spool_dir = bad }
  t:is(s, nil, "nil")
  t:like(err, "writable by other users", "the spool's error")
  t:ok(type(summary) == "table" and summary.spool_error, "and the summary, marked spool_error")
  os.execute("rm -rf '" .. bad .. "'")
end)

local status = tap.done()
sp:close()
os.execute("rm -rf '" .. dir .. "'")
return status
