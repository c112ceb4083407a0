-- mailhook.queue — the queue as administrators and rules see it (mh.queue):
-- list, show, remove, retry.  Every function waits on the disk (run it in a
-- task: a script, a handler, the REPL).
--
--   for e in mh.queue.list() do print(e.id, e.state, #e.to) end   -- streams
--   mh.queue.show(id) -> entry | nil, err, info
--   mh.queue.remove(id) -> true | nil, err, info
--   mh.queue.retry(id)  -> true | nil, err, info     -- failed/ back to pickup/, due now
--   mh.queue.flush(...)                               -- delivery's (see below)
local spool = require "mailhook.spool"
local core = require "mailhook.core"

local M = {}

local opened = {}

-- spool([dir]) -> the Spool object of dir (default: -s / $MAILHOOK_SPOOL), opened once.
function M.spool(dir)
  dir = dir or core.paths.spool
  local sp = opened[dir]
  if sp then return sp end
  local err, info
  sp, err, info = spool.open(dir)
  if not sp then return nil, err, info end
  opened[dir] = sp
  return sp
end

local function with_spool(fn)
  return function(...)
    local sp, err, info = M.spool()
    if not sp then return nil, err, info end
    return fn(sp, ...)
  end
end

-- list([which]) -> iterator of entries ("pickup", "failed" or both), oldest first
-- (enqueue order), drop-ins not adopted yet last; the ids are read once (8
-- bytes each), then one batch of files at a time, so memory stays small.
function M.list(which)
  local sp, err = M.spool()
  if not sp then error(err, 2) end
  return sp:list(which)
end

M.show = with_spool(function(sp, id) return sp:load(id) end)
M.remove = with_spool(function(sp, id) return sp:remove(id) end)
M.retry = with_spool(function(sp, id) return sp:retry(id) end)

-- flush is the delivery part's: it sets M.flush_impl (function(opts) -> ok, err)
-- when its module loads; mailhook.delivery is tried when nothing did.
function M.flush(...)
  if not M.flush_impl then pcall(require, "mailhook.delivery") end
  if not M.flush_impl then
    return nil, "queue flush is not available: no delivery module in this build",
           { class = "permanent", stage = "flush" }
  end
  return M.flush_impl(...)
end

return M
