-- mailhook.spool — the durable pickup folder (C: runtime/spool.c, l_spool.c).
--
--   local sp = require("mailhook.spool").open([dir])   -- default: the -s / $MAILHOOK_SPOOL folder
--   sp:enqueue(msg_or_bytes [, envelope]) -> id | nil, err, info         (waits until durable)
--   sp:enqueue_many({{msg_or_bytes, envelope}, ...}) -> {id...}          (waits; group commit)
--   sp:lock() -> true | nil, "spool DIR is locked by pid N", {code = "ELOCKED", pid = N}  (waits; sweeps tmp/)
--   sp:scan([limit]) -> {id...} oldest first, total; adopts drop-ins    (waits)
--   sp:load(id) -> entry | nil, err, info                                (waits)
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

-- open([dir]) -> spool | nil, err, info; creates tmp/ pickup/ failed/ corrupt/
-- state/ (0700); refuses (MH_EUNSAFE) a spool writable by others or not ours.
function M.open(dir)
  return core.spool.open(dir or core.paths.spool)
end

M.parse = core.spool.parse          -- parse(bytes) -> {from, to, offset, canonical} | nil, err
M.addresses = core.spool.addresses  -- addresses("A <a@b>, c@d") -> {"a@b", "c@d"} | nil, err

M.is_id = core.spool.is_id          -- is_id(s): a canonical id (16 lowercase hex digits, spool.c's rule)

return M
