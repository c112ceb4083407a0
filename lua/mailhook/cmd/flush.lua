-- mailhook.cmd.flush — `mailhook flush [--timeout S]`: deliver the queue now and wait.
-- On a terminal a progress line (done/total, rate, ETA), then a summary.
-- Exit 0 only when pickup/ is empty at the end.  While a service runs on the
-- spool, it is asked to flush (never two deliverers on one spool).
local mh = require "mailhook"
local args = require "mailhook.args"
local flush = require "mailhook.flush"

local function isatty(fd) return require("mailhook.core").fsutil.isatty(fd) end

return function(...)
  -- a one-shot deliverer whose live heap is small and steady while each
  -- message leaves garbage (its entry, its data string): a collection cycle
  -- when the heap has grown to 4x what is live rather than 2x marks half as
  -- often (some 2,000 instructions a message of the drain's ~62,000)
  collectgarbage("incremental", 400)
  local opts, rest = args.parse({ ... }, { timeout = "string", help = "flag", h = "flag" })
  if not opts then return args.fail("flush", rest) end
  if opts.help or opts.h then
    io.stdout:write("usage: mailhook flush [--timeout SECONDS]\n",
                    "  deliver the queue now (backoff ignored) and wait; exit 0 if nothing is left\n")
    return 0
  end
  if #rest > 0 then return args.fail("flush", "unexpected argument '" .. rest[1] .. "'") end
  local timeout, terr
  if opts.timeout then
    timeout, terr = args.seconds("--timeout", opts.timeout)
    if not timeout then return args.fail("flush", terr) end
  end

  -- settings that cannot be read (a -c naming no file, a syntax error) are an
  -- error before anything is counted, as for `run`
  do
    local cfg, err = require("mailhook.settings").load()
    if not cfg then return args.fail("flush", err, 1) end
  end

  local tty = isatty(2)
  local t0 = mh.monotonic()
  local shown = false
  local function progress(done, total, left)
    if not tty or total == 0 then return end
    local dt = mh.monotonic() - t0
    local rate = dt > 0 and done / dt or 0
    local eta = rate > 0 and (total - done) / rate or nil
    io.stderr:write(string.format("\rflush: %d/%d  %.1f msg/s  ETA %s   ", done, total, rate,
                                  eta and string.format("%ds", math.floor(eta + 0.5)) or "?"))
    io.stderr:flush()
    shown = true
  end

  local ok, s = pcall(flush.run, { progress = progress, timeout = timeout })
  if shown then io.stderr:write("\n") end
  if not ok then return args.fail("flush", s, 1) end
  if s.spool_error then return args.fail("flush", s.error, 1) end
  -- no spool there: nothing to deliver (the queue is empty: 0), nothing made
  if s.no_spool then
    io.stdout:write("flush: nothing to deliver: ", s.no_spool, "\n")
    return 0
  end
  local dt = mh.monotonic() - t0
  -- "N failed": moved to failed/; those some recipients got are said so
  -- (a message 121 of its 123 recipients got is no plain failure)
  local function failed_text(failed)
    local p = math.min(s.partial or 0, failed)
    if p == 0 then return failed .. " failed" end
    return string.format("%d failed (%spartly delivered: %d of %d recipients)", failed,
                         p == failed and "" or (p .. " "), s.partial_delivered or 0, s.partial_recipients or 0)
  end
  if s.via == "service" then
    -- the service reports what pickup/ still holds; what left it went out or
    -- moved to failed/ (counted there by flush.run: a dead letter is neither
    -- delivered nor left)
    io.stdout:write(string.format("flush: asked the service (pid %d): %d delivered, %d deferred, %s, %d left, %.1f s\n",
                                  s.pid, s.delivered, s.deferred, failed_text(s.failed), s.left, dt))
  else
    io.stdout:write(string.format("flush: %d delivered, %d deferred, %s, %d left, %.1f s\n",
                                  s.delivered, s.deferred, failed_text(s.failed), s.left, dt))
  end
  if s.error then io.stderr:write("mailhook flush: ", tostring(s.error), "\n") end
  return (s.left == 0 and not s.listing_error) and 0 or 1   -- pickup/ unlisted: not known empty
end
