-- mailhook.maildrop — the service's side of unprivileged submission
-- (docs/sendmail.md): the files the setgid drop program (runtime/drop.c)
-- left in SPOOL/maildrop/ are adopted into pickup/ by whoever holds the
-- spool lock (`mailhook run`, `mailhook flush` / `sendmail -q` without a
-- service), at each scan (lua/mailhook/spool.lua wraps Spool:scan).
--
-- Nothing the caller wrote is believed beyond what the drop program vouches
-- for (runtime/maildrop.c checks the file): the caller is the uid of its
-- record, which must own the file; the recipients are the record's "to" lines
-- (never the message's headers, nor X-Sender/X-Receiver lines it may start
-- with); the sender is decided here by the rule for an unprivileged caller
-- (from_rewrite: its own login, or the settings' from); the header block gets
-- the same treatment as any sendmail intake (From, Date, Message-ID added when
-- missing, Bcc removed) and a Received line naming the uid; the uid is also the
-- spool file's X-Submitter-Uid (docs/spool.md); the recipient items sendmail
-- left out (the record's "leftout" lines) are recorded refused with the copy,
-- as the privileged sendmail records them, never made recipients.  The adopted copy
-- is durable in pickup/ before the maildrop file is removed, and the adoption
-- is idempotent across a kill: before the copy is made, the file is renamed
-- to maildrop/ID.adopted, ID being the id its copy takes (sp:new_id, then
-- sp:enqueue with env.id); a kill after the copy leaves that name, which the
-- next adopter removes (sp:has_copy(ID)), and one before it is adopted under
-- ID.  Before, the copy was queued and then the file unlinked: a kill in
-- between queued it twice (the same order as pickup/, spool.c's adopt_one,
-- which says why the original is never removed before the copy is durable).
-- A file that is not what
-- the drop program writes goes to corrupt/ with a log line saying why.
local core = require "mailhook.core"
local submit = require "mailhook.submit"

local M = {}

local said = {}   -- name .. error already logged (a failure is said once, not at every scan)
-- The files this process tried to adopt and had to leave in maildrop/ (a
-- temporary failure: unreadable, its owner unseen, a failed write), by name:
-- {name =, reason =, since =}.  Each is logged once (when first met, or when
-- its reason changes), tried again quietly at every scan (a mode or an owner
-- may be fixed), and reported by M.stuck() (the service's status snapshot:
-- `mailhook status` names them; before, they showed there as waiting for the
-- service, and only the log said that the service could not take them).
local waiting = {}
local listeners = setmetatable({}, { __mode = "k" })   -- key -> fn(): told when waiting changes

-- on_change(key, fn): fn() is called when the files left in maildrop/ change
-- (one more, one gone, a reason changed); key (weak) owns it: the service's
-- status tracker, so that SPOOL/status.json names them for `mailhook queue`.
function M.on_change(key, fn) listeners[key] = fn end
local function changed() for _, fn in pairs(listeners) do pcall(fn) end end

local function log(level, msg)
  local ok, mh = pcall(require, "mailhook")
  if ok and mh.log and mh.log[level] then mh.log[level](msg) else core.log(level, msg) end
end

-- mark(name, msg) -> true when it changed: name is left in maildrop/ for msg.
local function mark(name, msg)
  local w = waiting[name]
  if w and w.reason == msg then return false end
  waiting[name] = { name = name, reason = msg, since = w and w.since or os.time() }
  return true
end

-- Logs msg once per name (again when it changes), and marks the file as left
-- in maildrop/.  "(settings)" is no file (the key of the settings' failure):
-- it was listed by status as a file of maildrop/ named "(settings)".
local function once(name, level, msg)
  if name ~= "(settings)" and mark(name, msg) then changed() end
  if said[name] == msg then return end
  said[name] = msg
  log(level, msg)
end

-- A file taken (adopted, moved to corrupt/) or gone: forgotten, so that a
-- later failure under its name is said again.
local function forget(name)
  local was = waiting[name]
  said[name], waiting[name] = nil, nil
  if was then changed() end
end

-- What the spool refuses in a message itself (sp:enqueue's info.code), as
-- against a full disk or a failed write: such a file goes to corrupt/.
local REFUSED = { EBADADDR = true, EBADHDR = true, EINVAL = true, ETOOLONG = true, ECORRUPT = true }

-- One file: adopted (true), moved to corrupt/ ("corrupt"), or left for a
-- later scan (nil: a temporary failure, logged once).
local function adopt_one(sp, cfg, dir, name)
  local orig = name   -- the name it came under (logs, corrupt/): name is its aside's once renamed
  -- the original of an adoption a kill stopped: removed when its copy is queued
  local given = name:match("^(%x+)%.adopted$")
  if given and not core.spool.is_id(given) then given = nil end
  if given and sp:has_copy(given) then
    local ok, err = core.maildrop.done(dir, name)
    if ok then
      log("info", "maildrop: " .. name .. ", the original of " .. given .. " left by an adoption that was stopped "
          .. "after its copy was queued, removed: the message is queued once, as " .. given)
    else
      once(name, "warn", "maildrop: " .. name .. " (queued as " .. given .. ") cannot be removed: " .. tostring(err))
    end
    return nil
  end
  local rec, fd, info = core.maildrop.open(dir, name)
  if not rec then
    local why = fd
    if info and info.code == "ENOTFOUND" then return nil end
    if info and info.code == "ECORRUPT" then
      local ok, err = core.maildrop.done(dir, name, true)
      if ok then forget(name) log("warn", "maildrop: " .. why .. ": moved to corrupt/maildrop." .. name) return "corrupt" end
      once(name, "warn", "maildrop: " .. why .. ", but it cannot be moved to corrupt/: " .. tostring(err))
      return nil
    end
    if info and info.code == "EUNSAFE" then   -- its owner cannot be seen from here: it waits, said as an error
      once(name, "error", "maildrop: " .. tostring(why) .. " (tried again at the next scan)")
      return nil
    end
    once(name, "warn", "maildrop: cannot read " .. name .. ": " .. tostring(why) .. " (tried again at the next scan)")
    return nil
  end
  local login = core.maildrop.login(rec.uid)
  local caller = { uid = rec.uid, login = login, privileged = false }
  local stream = core.spool.stream(fd, { dot = false })
  local function corrupt(why)
    stream:close()
    core.maildrop.close(fd)
    local ok, err = core.maildrop.done(dir, name, true, orig)
    if ok then
      forget(orig); forget(name)
      log("warn", string.format("maildrop: %s from uid %d: %s: moved to corrupt/maildrop.%s", orig, rec.uid, why, orig))
      return "corrupt"
    end
    once(name, "warn", "maildrop: " .. name .. ": " .. why .. ", but it cannot be moved to corrupt/: " .. tostring(err))
    return nil
  end
  local head, empty, hinfo = stream:head()
  if not head then
    if hinfo and hinfo.code == "ECORRUPT" then return corrupt(tostring(empty)) end
    stream:close()
    core.maildrop.close(fd)
    once(name, "warn", "maildrop: reading " .. name .. ": " .. tostring(empty))
    return nil
  end
  if empty then return corrupt("no message") end
  local envid = rec.envid
  if envid and (#envid > 100 or envid:find("%c")) then envid = nil end
  local env, newhead, why = submit.prepare({
    cfg = cfg, caller = caller, rcpts = rec.to, from = rec.from, notify = rec.notify and submit.dsn_notify(rec.notify),
    ret = rec.ret and submit.dsn_ret(rec.ret), envid = envid, time = rec.time, received = true,
    max_items = core.maildrop.MAX_RCPT }, head)   -- what mailhook-drop allows: more is no drop of sendmail's
  if not env then
    if newhead == submit.EX.TEMPFAIL then
      stream:close()
      core.maildrop.close(fd)
      once(name, "warn", "maildrop: " .. name .. " waits: " .. tostring(why))
      return nil
    end
    return corrupt(tostring(why))
  end
  -- a recipient the record named that is no address: left out, said in the
  -- log; at most submit.BAD_SAID named, the rest counted (one line each flooded it)
  for _, b in ipairs(submit.bad_lines(env.bad)) do
    log("warn", string.format("maildrop: %s from uid %d: %s", name, rec.uid, b))
  end
  -- the items left out, recorded refused with the message (the mail log's
  -- failed line, failed/ once the others got it): those sendmail left out
  -- (the record's "leftout" lines: the caller's word, about its own message
  -- only; never a recipient), then any the record's recipients lost here
  local left = {}
  -- (each part as given to mailhook-drop -l, decoded by the core: what sendmail
  -- kept, escaped already (a typed backslash \x5C); a control character in it
  -- (mailhook-drop run by hand) is escaped, \x0A, as intake escapes one, but a
  -- backslash is not escaped again: submit.printable here turned the kept
  -- "Ops\x5Cx1bName" into "Ops\x5Cx5Cx1bName" at adoption, where the listing
  -- of the same file before it showed the first)
  local function controls(s)
    return (s:gsub("%c", function(c) return string.format("\\x%02X", c:byte()) end))
  end
  for _, l in ipairs(rec.left or {}) do
    left[#left + 1] = { item = controls(l.item), why = controls(l.why) }
  end
  for _, l in ipairs(env.left or {}) do
    left[#left + 1] = { item = l.item, why = "maildrop/" .. orig .. ": " .. l.why }
  end
  env.refused = submit.left_out(left, "mailhook sendmail")
  stream:set_head(newhead)
  env.uid = rec.uid        -- the submitter, as the drop program proved it (X-Submitter-Uid)
  -- the original goes aside first, under the id its copy takes (see the top)
  if not given then
    local nid, ierr = sp:new_id()
    local aside, aerr, ainfo
    if nid then aside, aerr, ainfo = core.maildrop.aside(dir, name, nid, fd) end
    if not aside then
      stream:close()
      core.maildrop.close(fd)
      -- gone since it was opened: removed (`mailhook queue rm NAME`), which
      -- wins; nothing to try again (it said "tried again at the next scan")
      if type(ainfo) == "table" and ainfo.code == "ENOTFOUND" then
        forget(name)
        log("info", "maildrop: " .. name .. " was removed before its adoption (`mailhook queue rm`?): not queued")
        return nil
      end
      once(name, "warn", "maildrop: cannot adopt " .. name .. ": " .. tostring(ierr or aerr) .. " (tried again at the next scan)")
      return nil
    end
    forget(name)
    given, name = nid, aside
  end
  env.id = given
  local id, err, info = sp:enqueue(stream, env)
  -- refused for what it holds: no later scan would take it (it stayed in
  -- maildrop/ for ever, unseen by `queue`, its warning at every scan)
  if not id and type(info) == "table" and REFUSED[info.code] then return corrupt(tostring(err)) end
  core.maildrop.close(fd)
  if not id then
    once(name, "warn", "maildrop: cannot queue " .. name .. ": " .. tostring(err) .. " (tried again at the next scan)")
    return nil
  end
  local ok, derr = core.maildrop.done(dir, name)
  if not ok then
    -- queued, but the original stays: said loudly, it would be adopted twice
    log("error", "maildrop: " .. name .. " queued as " .. id .. " but not removed: " .. tostring(derr))
  end
  forget(name)
  log("info", string.format("maildrop: %s from uid %d (%s) queued as %s, from <%s> to %s", name, rec.uid,
                            login or "?", id, env.from, table.concat(env.to, ",")))
  return true
end

-- adopt(sp, dir) -> how many were adopted (waits): the spool sp (whose lock
-- is held) in folder dir.  Temporary files of drop programs killed more than a
-- day ago (where O_TMPFILE is missing) go too.
-- The names of files no longer in maildrop/ (removed: `mailhook queue rm`;
-- adopted, or moved to corrupt/), present the set of those there: forgotten
-- (the tables held every name that ever failed).
local function forget_gone(present)
  for name in pairs(said) do if not present[name] and name ~= "(settings)" then forget(name) end end
  for name in pairs(waiting) do if not present[name] then forget(name) end end
end

function M.adopt(sp, dir)
  local names, stale = core.maildrop.list(dir)
  if names == false then forget_gone({}) end   -- no maildrop/: no file is left there
  if not names then return 0 end           -- no maildrop/ (false), or unreadable (nil, err)
  for _, s in ipairs(stale or {}) do core.maildrop.done(dir, s) end
  -- empty: the last file left there was removed, so it is no longer listed
  -- (status named it as one the service cannot adopt until the next drop)
  if #names == 0 then forget_gone({}) return 0 end
  local cfg, err = require("mailhook.settings").load_intake()   -- as the sendmail that dropped them
  if not cfg then
    -- (logged once; no file is marked: the settings are at fault, not one of
    -- them, and `status` says the settings' error on its own line)
    once("(settings)", "error", "maildrop: " .. #names .. " message(s) wait: the settings cannot be read: " .. tostring(err))
    return 0
  end
  said["(settings)"] = nil
  local n, present = 0, {}
  for _, name in ipairs(names) do
    present[name] = true
    if adopt_one(sp, cfg, dir, name) == true then n = n + 1 end
  end
  forget_gone(present)
  return n
end

-- stuck([limit]) -> {{name =, reason =, since =}...}, total: the files of
-- maildrop/ this process's adoption had to leave there at its last scan (it
-- tries them again at each scan), the oldest first, at most limit (10) of
-- them; total counts them all.  For the service's status (mailhook.status).
function M.stuck(limit)
  local l = {}
  for _, w in pairs(waiting) do l[#l + 1] = w end
  table.sort(l, function(a, b) return a.name < b.name end)
  local total = #l
  for i = (limit or 10) + 1, total do l[i] = nil end
  return l, total
end

-- count(dir [, sp]) -> how many messages wait in maildrop/ (0 when there is
-- none or it cannot be read).  Waits.  With the spool sp, the original a
-- killed adoption left (ID.adopted) whose copy ID is queued already is not
-- counted: the copy is (until the next adopter removes it, `queue` and
-- `flush` counted that message twice).
function M.count(dir, sp)
  local names = core.maildrop.list(dir)
  if type(names) ~= "table" then return 0 end
  local n = #names
  for _, name in ipairs(names) do
    local given = sp and name:match("^(%x+)%.adopted$")
    if given and core.spool.is_id(given) and sp:has_copy(given) then n = n - 1 end
  end
  return n
end

return M
