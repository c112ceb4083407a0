-- mailhook.queue — the queue as administrators and rules see it (mh.queue):
-- list, show, remove, retry.  Every function waits on the disk (run it in a
-- task: a script, a handler, the REPL).
--
--   for e in mh.queue.list() do print(e.id, e.state, #e.to) end   -- streams
--   mh.queue.show(id) -> entry | nil, err, info      -- a malformed id: nil, err (check_id)
--   mh.queue.maildrop([dir [, limit]]) -> {entry...}, total  -- local users' mail the service has not adopted yet
--   (entries of list and show: uid, the submitter, and its login when known)
--   mh.queue.remove(id [, dir]) -> true | nil, err, info
--   mh.queue.retry(id [, dir])  -> true | nil, err, info     -- failed/ back to pickup/, due now
--   (dir: the spool folder, default -s / $MAILHOOK_SPOOL: the console passes the
--   spool its service delivers)
--   mh.queue.outage() -> {since =, error =} | nil   -- the server outage every waiting message waits on
--   mh.queue.flush(opts) -> summary | nil, err, summary   -- mailhook.flush (waits)
local spool = require "mailhook.spool"
local core = require "mailhook.core"

local M = {}

-- spool([dir]) -> the Spool object of dir (default: -s / $MAILHOOK_SPOOL), opened once,
-- never making the spool nor any of its folders (spool.existing): nil, "no
-- spool at DIR", {code = "ENOENT"} when there is none.  Intake (mh.enqueue,
-- sendmail) makes it: spool.shared.
M.spool = spool.existing

-- why(err, info [, dir]) -> what an administrator is told when the spool
-- cannot be opened: for no spool at all, that nothing is queued there.
function M.why(err, info, dir)
  dir = dir or core.paths.spool
  if not spool.no_spool(info) then return err end   -- (spool.why's fix is the service's: no admin's look)
  return tostring(err) .. ": nothing is queued there (the service, `mailhook sendmail` and `mailhook enqueue` " ..
         "make it; is -s or $MAILHOOK_SPOOL right?)"
end

-- list([which]) -> iterator of entries ("pickup", "failed" or both), oldest first
-- (enqueue order), drop-ins not adopted yet last; the ids are read once (8
-- bytes each), then one batch of files at a time, so memory stays small.
-- Each entry's submitter: uid (the spool file's X-Submitter-Uid; nil for a
-- file written before it was kept) and login, its name in the password
-- database when it has one (looked up once per uid and listing).
local function with_login(e, logins)
  if e and e.uid then
    local l = logins[e.uid]
    if l == nil then l = core.maildrop.login(e.uid) or false; logins[e.uid] = l end
    e.login = l or nil
  end
  return e
end

function M.list(which, ...)
  core.check_options("mh.queue.list", {}, {}, select("#", ...) + 1, 1)   -- an argument too many raises
  local sp, err, info = M.spool()
  if not sp then error(M.why(err, info), 2) end
  local it, logins = sp:list(which), {}
  return function() return with_login(it(), logins) end
end

-- maildrop() -> {entry...}: the files local users handed over through
-- mailhook-drop (SPOOL/maildrop/, docs/sendmail.md) that no service has
-- adopted yet, oldest first, as list's entries are (what is known before
-- adoption): state "maildrop", id (the id part of its name; the message gets
-- its own id when adopted), name, size, queued_at (when it was dropped),
-- attempts 0, uid and login (the submitter the drop program proved), from
-- (the sender adoption gives it, by the settings sendmail's intake reads;
-- nil when they cannot be read), to (the recipients as given: aliases and
-- local names are resolved at adoption), refused ({rcpt =, reply =}: the
-- items sendmail left out of the envelope, never recipients).  A file there
-- that is no drop of mailhook-drop's, or one that cannot be read (its owner
-- unseen from a user namespace, a file made unreadable): id, name, state,
-- reason (why; the service moves a non-drop to corrupt/, leaves the others).
-- One whose copy is queued already (an adoption stopped between the copy and
-- the removal: ID.adopted) is not listed: list has it.  stuck: for one this
-- user can read but the running service cannot (it left it there, its log
-- says why once), that reason (SPOOL/status.json's maildrop_stuck).  Waits on the disk (each file's record is read).
-- One file of maildrop/ as maildrop() lists it (nil: gone, or adopted); ctx
-- caches the logins and the settings over a listing.
local function maildrop_entry(sp, dir, name, ctx)
  local id = name:match("^(%x+)%.") or name
  local given = name:match("^(%x+)%.adopted$")
  if given and core.spool.is_id(given) and sp:has_copy(given) then return nil end
  local rec, fd, info = core.maildrop.open(dir, name)
  if rec then
    core.maildrop.close(fd)
    if ctx.cfg == nil then
      local ok, c = pcall(require("mailhook.settings").load_intake)
      ctx.cfg = ok and c or false
    end
    local submit = require "mailhook.submit"
    local e = with_login({ id = id, name = name, state = "maildrop", size = rec.size, queued_at = rec.time,
                           attempts = 0, uid = rec.uid, to = rec.to, path = dir .. "/maildrop/" .. name,
                           offset = rec.offset, done = {} }, ctx.logins)
    if ctx.cfg then e.from = submit.unprivileged_sender(ctx.cfg, { uid = rec.uid, login = e.login }, rec.from) end
    -- readable here, but not by the running service (a file its owner made
    -- unreadable, read by root): what the service logged, so that the listing
    -- does not say "waits for the service" of a file it cannot take
    if ctx.stuck == nil then ctx.stuck = require("mailhook.status").maildrop_stuck(dir) or false end
    local why = ctx.stuck and ctx.stuck[name]
    if why then e.stuck = (why:gsub("^maildrop: ", "")) end
    e.refused = submit.left_out(rec.left, "mailhook sendmail") or {}
    return e
  elseif info and info.code ~= "ENOTFOUND" then
    -- no drop (corrupt/ takes it), or one that cannot be read here: its owner
    -- unseen from a user namespace (EUNSAFE: the error says it is left in
    -- maildrop/), a file its owner made unreadable (EACCES); those wait for
    -- good, tried again at each scan: listed with why, to be seen and removed
    local after = info.code == "ECORRUPT" and " (the service moves it to corrupt/)"
                  or info.code ~= "EUNSAFE" and " (the service cannot adopt it: it stays in maildrop/)" or ""
    return { id = id, name = name, state = "maildrop", size = 0, queued_at = 0, attempts = 0, to = {}, done = {},
             refused = {}, reason = tostring(fd) .. after }
  end
  return nil
end

-- maildrop([dir [, limit]]) -> {entry...}, total: dir the spool folder
-- (default -s / $MAILHOOK_SPOOL: the console passes the spool its service
-- delivers); limit: at most that many files read, the oldest (the console's
-- page: a flood of drops costs it one readdir and limit reads); total: how
-- many names maildrop/ holds (an upper bound of what is listed: a name may
-- be an adoption's leftover, or gone meanwhile).
function M.maildrop(dir, limit, ...)
  core.check_options("mh.queue.maildrop", {}, {}, select("#", ...) + 2, 2)
  if dir ~= nil and type(dir) ~= "string" then error("mh.queue.maildrop: dir must be a string (got " .. type(dir) .. ")", 2) end
  if limit ~= nil and math.type(limit) ~= "integer" then
    error("mh.queue.maildrop: limit must be an integer (got " .. type(limit) .. ")", 2)
  end
  local sp, err, info = M.spool(dir)
  if not sp then error(M.why(err, info, dir), 2) end
  dir = dir or core.paths.spool
  local names = core.maildrop.list(dir)
  names = type(names) == "table" and names or {}
  local out, ctx = {}, { logins = {} }
  for _, name in ipairs(names) do   -- limit: entries listed (a name listed as nothing counts not)
    if limit and #out >= limit then break end
    out[#out + 1] = maildrop_entry(sp, dir, name, ctx)
  end
  return out, #names
end

-- The name in dir's maildrop/ that id names: the file's name, or the id part
-- the listing shows in its ID column ("0000000000000001" of
-- "0000000000000001.00004d2"); nil when none (an id part that two names
-- share: nil, and an error naming them).
local function maildrop_name(dir, id)
  local names = core.maildrop.list(dir)
  local found = {}
  for _, name in ipairs(type(names) == "table" and names or {}) do
    if name == id then return name end
    if name:match("^(%x+)%.") == id then found[#found + 1] = name end
  end
  if #found > 1 then
    return nil, id .. " names " .. #found .. " files in maildrop/ (" .. table.concat(found, ", ") ..
                "): give the whole name, as `mailhook queue --json` lists it"
  end
  return found[1]
end

-- outage([dir]) -> {since =, error =} | nil: the outage the last deliverer of
-- the spool met and has not seen end (SPOOL/outage, written by
-- mailhook.delivery, a running service or a `flush`): why every waiting
-- message waits, not only the one that was tried.
function M.outage(dir, ...)
  core.check_options("mh.queue.outage", {}, {}, select("#", ...) + 1, 1)
  if dir ~= nil and type(dir) ~= "string" then error("mh.queue.outage: dir must be a string (got " .. type(dir) .. ")", 2) end
  return M.outage_at((dir or core.paths.spool) .. "/outage")
end

-- outage_server(cfg) -> "HOST,HOST:PORT": the server an outage is about, as
-- its file records it (an outage of another server is not this one's).
function M.outage_server(cfg)
  local s = type(cfg.server) == "table" and table.concat(cfg.server, ",") or tostring(cfg.server or "")
  return s .. ":" .. tostring(cfg.port or 25)
end

-- outage_at(path) -> {since =, error =, server =} | nil: the outage file at
-- path (a deliverer loads its spool's at start: mailhook.delivery load_outage;
-- server: "HOST,...:PORT" it was about, nil in a file written before it was kept).
function M.outage_at(path)
  local text = core.fsutil.read(path)
  local since = text and tonumber(text:match("^since (%d+)\n"))
  local err = text and text:match("\nerror ([^\n]*)")
  if not (since and err) then return nil end
  return { since = since, error = err, server = text:match("\nserver ([^\n]*)") }
end

-- An id as a message shows it: by the display rule for local users' text
-- (mailhook.display: control bytes, C1 controls, bytes no UTF-8 as \xNN,
-- direction overrides as \u202e), a long one cut on a character boundary.
local function shown(id)
  local text = require("mailhook.core").text
  local s = text.visible(text.cut(id, 60))
  if #id > 60 then s = s .. "..." .. " (" .. #id .. " bytes)" end
  return "'" .. s .. "'"
end

-- check_id(id) -> id | nil, message, info: whether id names a message the way
-- `mailhook queue` lists them: a spool id (16 hex digits; "ID.eml", the file's
-- name, is taken for it) or the file name of a drop-in.  Never a path (no "/",
-- no leading "."), an empty string, a control byte (NUL), a sidecar
-- ("ID.state") or a name longer than a file name can be: such input is refused
-- here, with a message naming it, before it reaches the spool.
function M.check_id(id)
  local function bad(why)
    return nil, (type(id) == "string" and shown(id) or tostring(id)) .. " is not a message id (" .. why ..
      "; ids are as `mailhook queue` lists them)", { class = "permanent", stage = "queue", code = "EINVAL" }
  end
  if type(id) ~= "string" then return bad("a " .. type(id) .. ", not a string") end
  if id == "" then return bad("empty") end
  if id:find("%c") then return bad("it holds a control character") end
  if id:find("/", 1, true) then return bad("it holds a '/'") end
  if id:sub(1, 1) == "." then return bad("it starts with '.'") end
  if #id > 200 then return bad("too long") end
  local hex = id:match("^(" .. ("%x"):rep(16) .. ")%.eml$")
  if hex and hex == hex:lower() then return hex end
  if id:match("%.state$") or id:find(".state.", 1, true) then
    return bad("that is a message's state file")
  end
  return id
end

-- op(name, fn [, takes_dir]): fn(sp, id) after check_id (a bad id is nil,
-- message, info).  takes_dir: a second argument may name the spool folder
-- (default: -s / $MAILHOOK_SPOOL), for a caller serving another spool than
-- the process's default (the console of a service: its own spool).
local function by_id(name, fn, takes_dir)
  return function(...)
    core.check_options(name, {}, {}, select("#", ...), takes_dir and 2 or 1)   -- mh.queue.show(id, x) raises
    local id, dir = ...
    if dir ~= nil and type(dir) ~= "string" then error(name .. ": dir must be a string (got " .. type(dir) .. ")", 2) end
    local sp, err, info = M.spool(dir)
    if not sp then return nil, M.why(err, info, dir), info end
    local good
    good, err, info = M.check_id(id)
    if not good then return nil, err, info end
    return fn(sp, good, dir or core.paths.spool)
  end
end

-- fn(sp, id, dir), then, when id names no message of pickup/ or failed/
-- (ENOTFOUND), md(sp, name, dir) for the file of maildrop/ it names (as
-- `mailhook queue` lists it: state "maildrop"), if there is one.
local function or_maildrop(fn, md)
  return function(sp, id, dir)
    local r, err, info = fn(sp, id, dir)
    if r or not (type(info) == "table" and info.code == "ENOTFOUND") then return r, err, info end
    local name, merr = maildrop_name(dir, id)
    if merr then return nil, merr, { class = "permanent", stage = "queue", code = "EINVAL" } end
    if not name then return r, err, info end
    return md(sp, name, dir, err, info)
  end
end

local show = function(sp, id)
  if not spool.is_id(id) then spool.dropin_settings(sp) end   -- a drop-in's name: read as it will be adopted
  local e, err, info = sp:load(id)
  if not e then
    if info and info.code == "ECORRUPT" and not err:find(id, 1, true) then
      -- read only: what cannot be parsed stays where it is (runtime/spool.c
      -- to_corrupt), named with why and who moves it
      err = (spool.is_id(id) and id or ("pickup/" .. id)) .. " is no message that can be sent: " .. err
            .. " (the service moves it to corrupt/)"
    end
    return nil, err, info
  end
  return with_login(e, {})
end
-- a file of maildrop/ (state "maildrop"), as the listing shows it
M.show = by_id("mh.queue.show", or_maildrop(show, function(sp, name, dir, err, info)
  local e = maildrop_entry(sp, dir, name, { logins = {} })
  if not e then return nil, err, info end
  if e.reason then
    return nil, "maildrop/" .. name .. " is no message that can be sent: " .. e.reason, { class = "permanent",
      stage = "queue", code = "ECORRUPT" }
  end
  return e
end))
-- remove: a file of maildrop/ too (removed as a pickup/ file is: by whoever
-- may write the spool, root or the service's user; the service no longer
-- adopts it).  entry.state "maildrop" in the third value's place: see cmd/queue.
-- A file gone between the listing and the unlink was adopted meanwhile (the
-- service renamed it aside, its copy queued): nil, said so, {code =
-- "ENOTFOUND"}, never "removed" (core.maildrop.done took a file gone as done).
-- A message removed whose adoption left its original behind (maildrop/ID.adopted:
-- a kill, or a failed unlink, between the copy and the original's removal):
-- the original goes too, else the next adopter, finding no copy of ID, queued
-- it again under ID and the message removed was sent.
local function remove_queued(sp, id, dir)
  local ok, err, info = sp:remove(id)
  if ok and spool.is_id(id) then core.maildrop.remove(dir, id .. ".adopted") end   -- (ENOTFOUND: none)
  return ok, err, info
end
M.remove = by_id("mh.queue.remove", or_maildrop(remove_queued,
  function(sp, name, dir)
    -- ID.adopted: the original of an adoption, renamed aside while its copy is
    -- queued as ID.  The adopter reads it from its open descriptor: an unlink
    -- now stops nothing (the copy is queued and sent, and the file's removal
    -- finds nothing), so while a deliverer holds the lock (it is adopting it,
    -- or adopts it at its next scan) it is not removed, and said why; with
    -- none, it is an adoption a kill stopped, and goes.
    local given = name:match("^(%x+)%.adopted$")
    if given and core.spool.is_id(given) and sp:has_copy(given) then   -- its copy queued: that is the message
      return nil, "maildrop/" .. name .. " is what is left of a message queued as " .. given .. ": `mailhook " ..
        "queue rm " .. given .. "` removes both", { class = "permanent", stage = "queue", code = "EEXIST",
        maildrop = name, id = given }
    end
    local pid = given and core.spool.is_id(given) and core.admin.lock_holder(dir)
    if pid then
      return nil, "maildrop/" .. name .. " is being adopted by the process holding the spool's lock (pid " ..
        math.tointeger(pid) .. "): it is queued as " .. given .. " in a moment, and cannot be stopped here; " ..
        "`mailhook queue rm " .. given .. "` then", { class = "temporary", stage = "queue", code = "EBUSY",
        maildrop = name, pid = pid }
    end
    local ok, err, info = core.maildrop.remove(dir, name)
    if not ok and type(info) == "table" and info.code == "ENOTFOUND" then
      return nil, "maildrop/" .. name .. " is no longer in maildrop/: the service adopted it meanwhile (" ..
        "`mailhook queue` lists it under its queue id; `mailhook queue rm` that id removes it)", info
    end
    if not ok then return nil, "maildrop/" .. name .. ": " .. tostring(err), info end
    return true, nil, { maildrop = name }
  end), true)

-- sending(id [, dir]) -> pid | nil (waits, up to a second): the pid of the
-- service running on the spool when id's data is with the server right now,
-- its outcome awaited (removed then, it may be delivered all the same: an SMTP
-- transaction cannot be recalled).  Asked of the service (SIGUSR2 and a fresh
-- SPOOL/status.json: mailhook.status), only when it holds the spool's lock and
-- wrote that file itself; nil otherwise (no service, a `mailhook flush`, no
-- answer).  A message loaded ahead of its turn is no such one: the service
-- looks at it again before it goes (docs/delivery.md).
function M.sending(id, dir)
  dir = dir or core.paths.spool
  local status = require "mailhook.status"
  local pid = core.admin.lock_holder(dir)
  if not pid or pid == status.pid() or not status.running(dir) then return nil end
  local snap, answered = status.ask(dir, pid, 1)
  if not (answered and type(snap) == "table" and type(snap.sending) == "table") then return nil end
  for _, s in ipairs(snap.sending) do
    if s == id then return pid end
  end
  return nil
end
-- retry: a file of maildrop/ is no message of the queue yet: nil, a message
-- saying that it waits for the service to adopt it, info.code "EMAILDROP",
-- info.maildrop its name (adopted at the service's next scan, or by `mailhook
-- flush` when no service runs: the lock holder's job, docs/spool.md).
-- A message retried in pickup/ (deferred: only its sidecar changes) is looked
-- at by the running service now, not at its next idle rescan: SIGUSR2 (its
-- status request, which looks at the queue again), only to a lock holder
-- that wrote status.json itself (a service; a `mailhook flush` has no
-- handler, and the signal would end it).
local function poke(dir)
  local status = require "mailhook.status"
  local pid = core.admin.lock_holder(dir)
  if pid and pid ~= status.pid() and status.running(dir) then core.signal.kill(pid, "USR2") end
end

M.retry = by_id("mh.queue.retry", or_maildrop(function(sp, id, dir)
    local r, err, info = sp:retry(id)
    if r then poke(dir) end
    return r, err, info
  end,
  function(_, name, dir)
    -- a file the running service has tried and cannot take (its status says
    -- why): a retry would wait for ever, so the way out is said instead
    local stuck = (require("mailhook.status").maildrop_stuck(dir) or {})[name]
    if stuck then
      return nil, "maildrop/" .. name .. " is not queued: the service cannot adopt it (" ..
        stuck:gsub("^maildrop: ", ""):gsub("%c", "?") .. "); fix the file (its owner, its mode), or remove it " ..
        "(`mailhook queue rm " .. name .. "`)",
        { class = "temporary", stage = "queue", code = "EMAILDROP", maildrop = name, stuck = stuck }
    end
    return nil, "maildrop/" .. name .. " is not queued yet: it waits in " .. dir .. "/maildrop/ for the service " ..
      "to adopt it (at its next scan; without a service, `mailhook flush` adopts and sends it), and goes then",
      { class = "temporary", stage = "queue", code = "EMAILDROP", maildrop = name }
  end), true)

-- flush(opts): deliver now and wait (mailhook.flush.queue).  Required here,
-- not at load: the hook's intake (mailhook.enqueue) loads this module, and
-- the deliverer is no part of its start-up.
function M.flush(...) return require("mailhook.flush").queue(...) end

return M
