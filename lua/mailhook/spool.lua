-- mailhook.spool — the durable pickup folder (C: runtime/spool.c, l_spool.c).
--
--   local sp = require("mailhook.spool").open([dir])   -- default: the -s / $MAILHOOK_SPOOL folder
--   sp:enqueue(msg_or_bytes [, envelope]) -> id | nil, err, info         (waits until durable)
--   sp:enqueue_many({{msg_or_bytes, envelope}, ...}) -> {id...}          (waits; group commit)
--   sp:lock() -> true | nil, "spool DIR is locked by pid N", {code = "ELOCKED", pid = N}  (waits; sweeps tmp/)
--   sp:scan([limit]) -> {id...} oldest first, total; adopts drop-ins    (waits)
--   sp:new_id() -> id, sp:has_copy(id) -> boolean (waits): for an adoption (maildrop.lua)
--   sp:set_dropin_from(addr | nil [, domain]): the sender a drop-in naming none gets (from the settings:
--     M.dropin_sender(sp, cfg), by the lock holder and at each reload of the deliverer)
--   sp:load(id) -> entry | nil, err, info                                (waits)
--   sp:loader(opts) -> load: load(id) is sp:load(id, opts), the options read once (the deliverer's)
--   sp:pickup_path(id) -> DIR/pickup/ID.eml (a lean loader's entry sent from its data names no path)
--   sp:delivered(id)  sp:defer(id, {reply=, next_attempt=, done={...}, attempts=})  (wait)
--   sp:fail(id, {reason=, reply=})  sp:retry(id)  sp:remove(id)          (wait)
--   for entry in sp:list(["pickup"|"failed"]) do ... end   (oldest first; waits per batch)
--   sp:watch(fn) -> handle:stop()    fn() as a task when files appear in pickup/
--
-- envelope = {from = "a@b", to = {"x@y", ...}}.  Bytes given without an
-- envelope are parsed (From; To/Cc/Bcc) and their Bcc lines left out of the
-- spool file; a Message object without one uses its own envelope (the C
-- binding reads it from the message: runtime/l_msg.h).
local core = require "mailhook.core"

local M = {}

-- (reading core.spool opens the binding, which makes the class: runtime/l_core.c)
local methods = (core.spool and debug.getregistry()["mailhook.Spool"]).__index
local raw_lock, raw_scan, raw_watch, raw_list = methods.lock, methods.scan, methods.watch, methods.list

-- SPOOL/maildrop/ (unprivileged submission, lua/mailhook/maildrop.lua): the
-- lock holder adopts its files into pickup/ at every scan, so whatever runs
-- the queue (run, flush, sendmail -q) takes them in; for everyone else a scan's
-- total counts them, as messages waiting.  A watch covers maildrop/ too.
local holders = setmetatable({}, { __mode = "k" })   -- spools whose lock we hold
local dirs = setmetatable({}, { __mode = "k" })      -- spool -> its folder (M.open)
local adopting = setmetatable({}, { __mode = "k" })  -- spools whose maildrop/ is being adopted
local again = setmetatable({}, { __mode = "k" })     -- spools whose adoption was asked for again meanwhile

function methods.lock(sp, ...)
  local ok, err, info = raw_lock(sp, ...)
  if ok then holders[sp] = true end
  return ok, err, info
end

-- The sender and From a drop-in that names none (no X-Sender, no From) gets
-- at adoption: the settings' `from`, else its owner's login at default_domain
-- (else the host name), as `mailhook sendmail` gives a caller without `from`
-- its login (postfix's pickup/cleanup gives such a message its sender's;
-- docs/spool.md).  The lock holder reads the settings at its first scan; a
-- deliverer given new settings (SIGHUP, a console Save: delivery's reload)
-- sets them again through M.dropin_sender, so a changed `from` needs no restart.
local from_set = setmetatable({}, { __mode = "k" })
function M.dropin_sender(sp, cfg)
  if type(cfg) ~= "table" or type(sp) ~= "userdata" then return end
  from_set[sp] = true
  local ok, set, err = pcall(sp.set_dropin_from, sp, cfg.from, cfg.default_domain)
  if not ok or not set then
    core.log("warn", "spool: drop-ins without a sender: " .. tostring(ok and err or set)
                     .. " (their owner at the host name instead)")
    pcall(sp.set_dropin_from, sp, nil, nil)
  end
  M.dropin_names(sp, cfg)
end

-- Where a drop-in's bare local recipients (`To: root`) go: where `sendmail -t`
-- sends them (submit.dropin_names, handed to the C adoption).  sendmail reads
-- the aliases file at each call; the lock holder reads it again at each scan
-- (one small read, only when an aliases file is set) and sets the table again
-- when it changed, so an edited aliases file needs no reload here either.
local names_of = setmetatable({}, { __mode = "k" })   -- spool -> {cfg, path, text}
local function aliases_text(path)
  local ok, text = pcall(core.fsutil.read, path, { follow = true, max = (1 << 20) + 1 })
  return ok and text or false
end
function M.dropin_names(sp, cfg, text)   -- text: the aliases file as read before (names_follow)
  local rok, names = pcall(require("mailhook.submit").dropin_names, cfg)
  local sok, serr = rok and pcall(sp.set_dropin_names, sp, names)
  if not (rok and sok) then
    core.log("warn", "spool: drop-ins naming a local user (To: root): " .. tostring(rok and serr or names)
                     .. " (such a drop-in goes to corrupt/)")
  end
  local path = rok and names.aliases_path
  names_of[sp] = path and { cfg = cfg, path = path, text = text or aliases_text(path) } or nil
end
local function names_follow(sp)
  local n = names_of[sp]
  local text = n and aliases_text(n.path)
  if n and text ~= n.text then M.dropin_names(sp, n.cfg, text) end
end
local function dropin_from(sp)
  local ok, cfg = pcall(require("mailhook.settings").load_intake)
  from_set[sp] = true
  if ok then M.dropin_sender(sp, cfg) end
end

-- Spool:adopt(): maildrop/'s files into pickup/ (the lock holder's; waits),
-- as every scan does first.  Also for a service that scans nothing (in an
-- outage, with mail disabled: mailhook.delivery's D:adopt), so that a local
-- user's mail is queued when it is dropped, not when the server answers.
function methods.adopt(sp)
  local maildrop = require "mailhook.maildrop"
  local dir = dirs[sp]
  if holders[sp] and not from_set[sp] then dropin_from(sp) end
  if holders[sp] then names_follow(sp) end
  -- one adoption at a time: two workers scanning at once (connections > 1)
  -- must not both take the same file in
  -- An adoption asked for while one runs (a drop's kick to a second worker
  -- in an outage) makes the running one go again once it ends: its look at
  -- maildrop/ may have come before that drop, which then waited out the
  -- retry_interval (the ask returned at once and nothing adopted it)
  if dir and holders[sp] and adopting[sp] then again[sp] = true end
  if dir and holders[sp] and not adopting[sp] then
    adopting[sp] = true
    local ok, err
    repeat
      again[sp] = nil
      ok, err = pcall(maildrop.adopt, sp, dir)
    until not ok or not again[sp]
    adopting[sp], again[sp] = nil, nil
    -- the scheduler's interrupt (a stop while the task waited: a bare
    -- userdata) goes on up, as for any waiting call: it is no failure (a
    -- SIGINT during an adoption logged "adoption failed: userdata: 0x...")
    if not ok and type(err) == "userdata" and getmetatable(err) == nil then error(err, 0) end
    if not ok then core.log("error", "maildrop: adoption failed: " .. tostring(err)) end
  end
end

function methods.scan(sp, ...)
  local maildrop = require "mailhook.maildrop"
  local dir = dirs[sp]
  methods.adopt(sp)
  local ids, total, info = raw_scan(sp, ...)
  if dir and ids and not holders[sp] and type(total) == "number" then total = total + maildrop.count(dir, sp) end
  return ids, total, info
end

-- A listing (or `queue show NAME`) shows a drop-in not adopted yet with the
-- sender and recipients its adoption will give it (not the null sender, not
-- a corrupt `To: root`): the same settings as the lock holder's.
function M.dropin_settings(sp)
  if not from_set[sp] then dropin_from(sp) end
end
function methods.list(sp, ...)
  M.dropin_settings(sp)
  return raw_list(sp, ...)
end

function methods.watch(sp, fn)
  local w, err, info = raw_watch(sp, fn)
  if not w or not dirs[sp] then return w, err, info end
  local md = core.maildrop.watch(dirs[sp] .. "/maildrop", fn)   -- none: no maildrop/ (or a kernel
  if not md then return w end                                 -- without inotify: the scans remain)
  return { stop = function() md:stop(); return w:stop() end }
end

-- open([dir [, how]]) -> spool | nil, err, info; creates tmp/ pickup/ failed/
-- corrupt/ state/ (0700); refuses (MH_EUNSAFE) a spool writable by others or
-- not ours.  how = {existing = true}: the folder and its pickup/ must be there
-- (else nil, "no spool at DIR", {code = "ENOENT"}, nothing made: a deliverer
-- such as flush); {existing = true, create = false}: makes no folder at all
-- (an administrator's look: M.existing).
function M.open(dir, how)
  dir = dir or core.paths.spool
  local sp, err, info = core.spool.open(dir, how)
  if sp then dirs[sp] = dir end
  return sp, err, info
end

-- why(dir, err, info) -> a spool error for an administrator: naming the folder
-- once (the core's error often names it already: "spool S: spool S: ..." was
-- printed), and for a folder this process may not use, who it runs as and the
-- fix (a spool left root's while the service runs as its own user said only
-- "Permission denied").
function M.why(dir, err, info)
  local e = tostring(err)
  if not e:find(dir, 1, true) then e = "spool " .. dir .. ": " .. e end
  if e:find("Permission denied", 1, true) or (type(info) == "table" and info.code == "EACCES") then
    local me = core.maildrop.whoami()
    local who = me.elogin or tostring(me.euid)
    e = e .. string.format(" (this runs as %s, who must own the spool and its folders: chown -R %s %s)",
                           who, who, dir)
  end
  return e
end

-- shared([dir]) -> the Spool object of dir (default: -s / $MAILHOOK_SPOOL),
-- opened once per process and kept: what mh.queue and mh.enqueue use
-- (mailhook.queue.spool is this; intake needs no more of mailhook.queue).
local opened = {}
function M.shared(dir)
  dir = dir or core.paths.spool
  local sp = opened[dir]
  if sp then return sp end
  local err, info
  sp, err, info = M.open(dir)
  if not sp then return nil, err, info end
  opened[dir] = sp
  return sp
end

-- existing([dir]) -> the Spool object of dir for reading the queue (and for
-- rm and retry of a message in it), opened once per process and kept: never
-- makes the spool nor any of its folders (a `mailhook queue` as root on a
-- spool the service never started left root's folders the service could not
-- write; a mistyped -s said "queue is empty" and made a spool there).  nil,
-- "no spool at DIR", {code = "ENOENT"} when the folder or its pickup/ is not
-- there.  The process's intake handle (shared) serves when it is open.
local looked = {}
function M.existing(dir)
  dir = dir or core.paths.spool
  local sp = opened[dir] or looked[dir]
  if sp then return sp end
  local err, info
  sp, err, info = M.open(dir, { existing = true, create = false })
  if not sp then return nil, err, info end
  looked[dir] = sp
  return sp
end

-- no_spool(info) -> whether an open's failure is "no spool at DIR" (ENOENT).
function M.no_spool(info) return type(info) == "table" and info.code == "ENOENT" end

M.parse = core.spool.parse          -- parse(bytes) -> {from, to, offset, canonical} | nil, err
M.addresses = core.spool.addresses  -- addresses("A <a@b>, c@d") -> {"a@b", "c@d"} | nil, err

M.is_id = core.spool.is_id          -- is_id(s): a canonical id (16 lowercase hex digits, spool.c's rule)

return M
