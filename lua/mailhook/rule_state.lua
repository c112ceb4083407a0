-- mailhook.rule_state — the rule primitives whose state lives on disk next to
-- the spool (SPOOL/state/rules/), so neither a restart nor a second `hook`
-- process resets them: throttle, digest, period (quiet hours in a time zone),
-- hold, and the sweep that sends what fell due.
--
-- Every read-modify-write of the state runs under one exclusive flock
-- (state/rules/lock), taken in turn by the tasks of one process, so concurrent
-- `mailhook hook` processes never lose a count; files are replaced atomically
-- and durably (core.rstate.write).  Mail the state owes (a throttle summary, a
-- digest, a held message) is first written to state/rules/held/ and only
-- removed once mh.enqueue made it durable: nothing is lost if the settings
-- refuse mail for a while, it is sent by a later sweep.
local core = require "mailhook.core"
local rstate = core.rstate
local luaval = require "mailhook.luaval"

local rs = {
  dir = nil,                 -- nil: SPOOL/state/rules (core.paths.spool)
  -- seconds since the epoch, to the microsecond (tests may replace it): os.time's whole
  -- seconds made a window of per seconds end at the second boundary after per - 1 to per
  -- seconds (per = 1: from 0 to 1 s), so two events 0.1 s apart fell in two windows
  clock = core.now,
  enqueue = nil,             -- nil: mh.enqueue (tests may replace it)
  digest_items = 1000,       -- items a digest lists (the rest are counted)
  digest_chunk = 50,         -- items a digest keeps in its state file, then in a chunk file
}

local function state_dir() return rs.dir or (core.paths.spool .. "/state/rules") end
rs.state_dir = state_dir

local function enqueue(msg)
  local f = rs.enqueue or require("mailhook").enqueue
  if not f then return nil, "mh.enqueue is not available in this build" end
  return f(msg)
end

-- Held mail (a summary, a digest, a held message) that the settings refuse
-- stays in held/ for the next sweep: that is no failure of the rule running
-- now, so it is not noted against it (mailhook.enqueue's `note = false`).
local function enqueue_held(msg)
  if rs.enqueue then return rs.enqueue(msg) end
  return require("mailhook.enqueue").enqueue(msg, { note = false })
end

-- check(msg, fn) -> true | nil, err, info: msg as mh.enqueue will take it,
-- checked when it is kept (hold, a throttle's summary, a digest's message),
-- not when it falls due: a misspelt field or a bad address kept in held/ was
-- refused at every sweep for ever, and a raising one stopped the sweep (every
-- rule's held mail, digest and summary after it never went).  A wrong type
-- raises at the rule's line (level: the caller's), as mh.enqueue's does.
local function check(msg, fn, level)
  if rs.enqueue then return true end   -- (a test's enqueue: nothing to check against)
  local ok, r, err, info = pcall(require("mailhook.enqueue").enqueue, msg, { check = true })
  if not ok then error(fn .. ": " .. tostring(r):gsub("^[^\n]-:%d+: ", "", 1):gsub("^mh%.enqueue: ", "", 1), level + 1) end
  if not r then return nil, fn .. ": " .. tostring(err), info end
  return true
end

-- A number as an error message names it: nan and inf as such (tostring gives
-- "-nan" or "nan" by platform), an other type by its name.
local function got(v)
  if type(v) ~= "number" then return type(v) end
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" elseif v == -math.huge then return "-inf" end
  return tostring(v)
end

-- number_option(fn, name, v, min, what): v must be a finite number of at
-- least min (above it when `above`), else "FN: NAME must be a finite number
-- WHAT (got nan)" raised at the rule's line.  NaN passed `max < 0` and went
-- into the state file as "-nan" (unreadable: the window started afresh at
-- every call); per = math.huge made a window end that could not be written,
-- so nothing was ever kept and nothing throttled.
local function number_option(fn, name, v, min, above, what)
  if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge
     or (above and v <= min) or (not above and v < min) then
    error(string.format("%s: %s must be a finite number %s (got %s)", fn, name, what, got(v)), 3)
  end
end

-- Held mail that can never go (a message refused for what it holds, not for
-- settings that may change): set aside beside it as NAME.bad, said once as an
-- error, never retried at every sweep.
local function set_aside(path, what, why)
  os.rename(path, path .. ".bad")
  core.log("error", string.format("rules: %s can never be sent (%s): set aside as %s.bad", what, tostring(why), path))
end

------------------------------------------------------------------ files

local encode = luaval.encode   -- state files are Lua source, read back as data only

local function read(path)
  -- a spool file: read by the core's rule (a regular file, no link followed,
  -- at most limits.config bytes); a FIFO planted there cannot block a hook
  local s, err, info = core.fsutil.read(path)
  if not s then
    if not (info and info.code == "ENOENT") then
      core.log("warn", "rule state " .. tostring(err) .. "; starting afresh")
    end
    return nil
  end
  local v, why = luaval.decode(s)
  if not v then
    core.log("warn", "rule state " .. path .. " is unreadable (" .. tostring(why) .. "); starting afresh")
    return nil
  end
  return v
end

-- The first non-finite number in v (a state table), as "KEY.KEY = nan", or nil.
local function non_finite(v, where, depth)
  if type(v) == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return where .. " = " .. got(v) end
  elseif type(v) == "table" and depth < luaval.MAX_DEPTH then
    for k, x in pairs(v) do
      local bad = non_finite(x, where .. "." .. tostring(k), depth + 1)
      if bad then return bad end
    end
  end
end

-- A state file is written whole or not at all (core.rstate.write: a temporary
-- file, fsync, rename).  A NaN or an infinity is never written: it came out as
-- "-nan" or "inf", which no read takes back, and the key's window was lost at
-- every call; the previous file stays instead, and the caller hears why.
local function write(path, v)
  local bad = non_finite(v, "state", 0)
  if bad then error("rule state: " .. path .. ": not written, it would hold a non-finite number (" .. bad .. ")", 0) end
  local ok, err = rstate.write(path, encode(v))
  if not ok then error("rule state: " .. err, 0) end
end

-- FNV-1a over the bytes of s from i to j by step (64 bits; Lua's integers wrap).
local function fnv(s, i, j, step)
  local h = -3750763034362895579   -- 0xcbf29ce484222325
  for k = i, j, step do h = (h ~ s:byte(k)) * 1099511628211 end
  return h
end

-- A key as a file name: safe characters kept, the rest %XX.  A longer name
-- keeps its first 160 characters and adds "~" and 128 bits of hash (the key read
-- forwards and backwards; "~" never comes out of the escaping, so no short key
-- can name that file).  A key is often an event's field (`"alarm:" ..
-- ev.source`): refusing a long one failed the rule, and the alarm was not sent.
local function fname(key)
  if type(key) ~= "string" or key == "" then error("key must be a non-empty string", 3) end
  local s = key:gsub("[^%w%-_.]", function(c) return string.format("%%%02X", c:byte()) end)
  if #s > 200 then
    s = s:sub(1, 160) .. "~" .. string.format("%016x%016x", fnv(key, 1, #key, 1), fnv(key, #key, 1, -1))
  end
  if s:sub(1, 1) == "." then s = "%2E" .. s:sub(2) end
  return s .. ".lua"
end

local function ensure(sub)
  local d = state_dir() .. "/" .. sub
  local ok, err = rstate.mkdir(d)
  if not ok then error("rule state: " .. err, 0) end
  return d
end

local busy = false  -- one task of this process holds the flock
-- core.monotonic() until which the lock counts as stuck: rstate.lock timed out
-- (10 s, docs/rules.md), so the next users in this process (the hook's sweep
-- after its rules) try once instead of waiting as long again
local stuck_until = -math.huge

-- Runs fn() under the state lock (in-process turn, then flock).  A stop of the
-- running rule's budget is deferred meanwhile (core.budget_hold), so a rule
-- stopped by it never leaves the lock held or an update half-way; the stop
-- lands right after.  (The watchdog still bounds the whole: docs/rules.md.)
local function locked(fn)
  local hold = core.budget_hold()
  local res = table.pack(pcall(function()
    while busy do core.sleep(0.002) end
    busy = true
    local dir = state_dir()
    local ok, err = rstate.mkdir(dir)
    local lk
    local info
    if ok then
      lk, err, info = rstate.lock(dir .. "/lock", core.monotonic() < stuck_until and 0.001 or nil)
      if not lk and info and info.code == "ETIMEDOUT" then stuck_until = core.monotonic() + 10 end
    end
    if not lk then
      busy = false
      error("rule state: " .. tostring(err), 0)
    end
    local r = table.pack(pcall(fn))
    lk:unlock()
    busy = false
    if not r[1] then error(r[2], 0) end
    return table.unpack(r, 2, r.n)
  end))
  if hold then core.budget_release(hold) end
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

------------------------------------------------------------------ held mail

local seq = 0

-- Attachments of a held message are copied beside it (durably), so the
-- application may delete its file once `hook` returned.  Returns the copy of
-- msg pointing at the copies, and the list of copies.
local function keep_attachments(msg, dir, name)
  if type(msg.attachments) ~= "table" or #msg.attachments == 0 then return msg, {} end
  local copies = {}
  local m = {}
  for k, v in pairs(msg) do m[k] = v end
  m.attachments = {}
  for i, a in ipairs(msg.attachments) do
    if type(a) == "string" then a = { path = a } end   -- a bare path, as mh.message takes it
    local c = {}
    for k, v in pairs(a) do c[k] = v end
    if type(a.path) == "string" then
      local data, err = core.fsutil.read(a.path, { follow = true, max = core.fsutil.limits.attachment,
                                                   what = "hold: attachment" })
      if not data then error(err, 0) end
      local copy = string.format("%s/%s.%d.att", dir, name, i)
      write(copy, data)
      c.path = copy
      c.name = c.name or a.path:match("[^/]+$")
      copies[#copies + 1] = copy
    end
    m.attachments[i] = c
  end
  return m, copies
end

-- Writes a message owed for later (or now) to held/; returns its file name.
local function park(msg, due, reason)
  local d = ensure("held")
  seq = seq + 1
  local name = string.format("%012d-%08x-%04d.lua", math.floor(due), math.random(0, 0x7fffffff), seq)
  local copies
  msg, copies = keep_attachments(msg, d, name)
  write(d .. "/" .. name, { due = due, message = msg, reason = reason, parked = rs.clock(), copies = copies })
  return name
end

-- Enqueues every held message due at now; a refused one stays for the next sweep.
-- Returns the number sent.
local function flush_held(now)
  local d = state_dir() .. "/held"
  local names = rstate.list(d) or {}
  local sent = 0
  for _, n in ipairs(names) do
    if n:match("%.lua$") then
      local h = read(d .. "/" .. n)
      if h and (h.due or 0) <= now then
        -- one file's failure is its own: it never stops the others (a raise here
        -- left every later held mail, digest and summary unsent)
        local ok, id, err, info = pcall(enqueue_held, h.message)
        if ok and id then
          os.remove(d .. "/" .. n)
          for _, c in ipairs(h.copies or {}) do os.remove(c) end
          sent = sent + 1
          core.log("info", string.format("rules: sent %s (%s)", h.reason or "held mail", tostring(id)))
        elseif not ok or (type(info) == "table" and info.class == "permanent" and info.stage ~= "settings") then
          set_aside(d .. "/" .. n, h.reason or "held mail", ok and err or id)
        else
          core.log("warn", string.format("rules: %s stays held: %s", h.reason or "mail", tostring(err)))
        end
      elseif not h then
        os.rename(d .. "/" .. n, d .. "/" .. n .. ".bad")
      end
    end
  end
  return sent
end

------------------------------------------------------------------ throttle

-- marked(msg) -> msg: what a `failed` rule keeps for later (held mail, a
-- summary's or a digest's message) carries its notice mark (rules.mark_notice):
-- the sweep that queues it is a rule of its own, and an unmarked notice that
-- failed emitted `failed` again, one more loop each window.
local function marked(msg)
  local rules = package.loaded["mailhook.rules"]
  return rules and rules.mark_notice and rules.mark_notice(msg) or msg
end

local function fmt_time(t) return os.date("!%Y-%m-%d %H:%M:%SZ", math.floor(t)) end

local function message_spec(o, what)
  local spec = type(o[what]) == "table" and o[what] or {}
  local m = {}
  for k, v in pairs(spec) do m[k] = v end
  m.to = m.to or o.to
  m.cc = m.cc or o.cc
  m.from = m.from or o.from
  if m.to == nil then
    error(string.format("%s needs an address: %s = {to = ...} or to = ...", what, what), 4)
  end
  return m
end

-- header: a line of a header (the subject), where a key or item from an event
-- holding a line break is folded to spaces (a summary whose subject held one
-- was refused for ever: "stays held")
-- check_spec(spec, what) -> true | nil, err, info: a summary's or a digest's
-- message as it will go at the window's end (its subject and text are
-- templates rendered then: a non-string one raised then), checked now.
-- Raises at the rule's line (the caller of throttle / digest) for a wrong type.
local function check_spec(spec, what)
  local probe = {}
  for k, v in pairs(spec) do probe[k] = v end
  for _, f in ipairs { "subject", "text" } do
    if probe[f] ~= nil and type(probe[f]) ~= "string" then
      error(string.format("%s.%s must be a string (a template)", what, f), 3)
    end
  end
  probe.subject, probe.text = "summary", "summary"
  return check(probe, what, 3)
end

local function render(src, ctx, header)
  local text = require("mailhook.template")(src, header and { header = true } or nil)(ctx)
  return text
end

local function items_text(items)
  local out = {}
  for _, it in ipairs(items or {}) do
    out[#out + 1] = string.format("- %s  %s", fmt_time(it.t), it.text)
  end
  return table.concat(out, "\n")
end

-- The window kept in path, or nil when there is none or it has ended: an
-- ended one is closed first (close(st) parks its mail), then the held mail
-- that is due goes out, and the caller starts a new window.
local function current(path, now, close)
  local st = read(path)
  if st and now >= st.window_end then
    -- a window whose summary cannot be made (a template that raises) is set
    -- aside, not raised at every later call with its key and every sweep
    local ok, err = pcall(close, st)
    if not ok then set_aside(path, (st.kind or "window") .. " " .. tostring(st.key), err) end
    flush_held(now)
    return nil
  end
  return st
end

-- A throttle window ended: park its summary when something was suppressed.
local function close_throttle(st)
  if (st.suppressed or 0) > 0 and st.summary then
    local m = {}
    for k, v in pairs(st.summary) do m[k] = v end
    local ctx = { key = st.key, suppressed = st.suppressed, sent = st.count, max = st.max,
                  per = st.per, from = fmt_time(st.window_start), ["until"] = fmt_time(st.window_end),
                  items = items_text(st.items) }
    m.subject = render(m.subject or "[mailhook] {{suppressed}} more suppressed: {{key}}", ctx, true)
    m.text = render(m.text or
      "{{suppressed}} more notifications for '{{key}}' were suppressed between {{from}} and " ..
      "{{until}} (limit: {{max}} per {{per}} s).\n{{#if items}}\n{{items}}\n{{/if}}", ctx)
    park(m, st.window_end, "throttle summary for " .. st.key)
  end
end

-- throttle{key=, max=, per= [, summary = true | {to=, subject=, text=}] [, to=]
--          [, item = "one line"] [, critical = bool]} -> allowed, state
-- Up to max events per window of per seconds are allowed; the rest are counted
-- and, with summary, one mail "N more suppressed" is sent at the end of the
-- window (by `mailhook run`, or by the next event after it).  critical = true
-- always allows and is not counted.  Waits (disk).
function rs.throttle(o, ...)
  if type(o) ~= "table" then error("throttle{key=, max=, per=}: expects a table", 2) end
  -- a misspelt option ({pre = 60}, {summery = true}) was silently absent
  core.check_options("throttle", o, { "key", "max", "per", "summary", "to", "cc", "from", "item", "critical" }, select("#", ...) + 1, 1)
  number_option("throttle", "max", o.max, 0, false, ">= 0")
  number_option("throttle", "per", o.per, 0, true, "of seconds > 0")
  local file = fname(o.key)
  if o.critical then return true, { bypass = true } end
  local summary = o.summary and marked(message_spec(o, "summary")) or nil
  if summary then
    local ok, err, info = check_spec(summary, "throttle: summary")
    if not ok then return nil, err, info end
  end
  return locked(function()
    local path = ensure("throttle") .. "/" .. file
    local now = rs.clock()
    local st = current(path, now, close_throttle)
    st = st or { kind = "throttle", key = o.key, window_start = now, window_end = now + o.per,
                 count = 0, suppressed = 0, items = {} }
    st.max, st.per, st.summary = o.max, o.per, summary
    local allowed = st.count < o.max
    if allowed then
      st.count = st.count + 1
    else
      st.suppressed = st.suppressed + 1
      if o.item and #st.items < 100 then st.items[#st.items + 1] = { t = now, text = tostring(o.item) } end
    end
    write(path, st)
    return allowed, st
  end)
end

------------------------------------------------------------------ digest

-- A digest's items are kept in pieces, so that one call costs the same
-- whatever the window holds already: the latest ones (fewer than
-- rs.digest_chunk) in the window's state file KEY.lua, the earlier ones in
-- chunk files beside it, KEY.lua.1.items, KEY.lua.2.items..., each of
-- rs.digest_chunk items, written once when full (st.chunks of them, holding
-- st.spilled items).  The whole list rewritten at every call made a rule
-- calling digest in a loop run out of its instruction budget after ~400 calls.
-- Each file is written atomically and the state file last: a chunk written by
-- a call that ended before its state file was is written again by the next.
local function chunk_path(path, i) return string.format("%s.%d.items", path, i) end

local function digest_items(path, st)
  local all = {}
  for i = 1, st.chunks or 0 do
    local c = read(chunk_path(path, i))
    for _, it in ipairs(c and c.items or {}) do all[#all + 1] = it end
  end
  for _, it in ipairs(st.items or {}) do all[#all + 1] = it end
  return all
end

-- Removes the chunk files of the window in path: its st.chunks ones, and any
-- left past them (a window set aside, a call cut before its state was written).
local function drop_chunks(path, st)
  local i = 1
  while i <= ((st and st.chunks) or 0) or os.remove(chunk_path(path, i)) do
    os.remove(chunk_path(path, i))
    i = i + 1
  end
end

local function close_digest(st, path)
  local m = {}
  for k, v in pairs(st.message) do m[k] = v end
  local kept = path and digest_items(path, st) or st.items
  local count = st.count or #kept
  local items = items_text(kept)
  if count > #kept then
    items = items .. string.format("\n(and %d more, not listed)", count - #kept)
  end
  local ctx = { key = st.key, count = count, from = fmt_time(st.window_start),
                ["until"] = fmt_time(st.window_end), items = items }
  m.subject = render(m.subject or "[mailhook] digest {{key}}: {{count}} events", ctx, true)
  m.text = render(m.text or "{{count}} events for '{{key}}' between {{from}} and {{until}}:\n\n{{items}}\n", ctx)
  park(m, st.window_end, "digest for " .. st.key)
end

-- digest{key=, window=, item = "one line" [, message = {to=, subject=, text=}]
--        [, to=] [, critical = bool]} -> collected, state
-- Collects item; at the end of the window (started by the first item) one mail
-- lists them all.  critical = true returns false at once: send it yourself now.
-- Waits (disk).
function rs.digest(o, ...)
  if type(o) ~= "table" then error("digest{key=, window=, item=}: expects a table", 2) end
  core.check_options("digest", o, { "key", "window", "item", "message", "to", "cc", "from", "critical" }, select("#", ...) + 1, 1)
  number_option("digest", "window", o.window, 0, true, "of seconds > 0")
  local file = fname(o.key)
  if o.critical then return false, { bypass = true } end
  local spec = marked(message_spec(o, "message"))
  do
    local ok, err, info = check_spec(spec, "digest: message")
    if not ok then return nil, err, info end
  end
  return locked(function()
    local path = ensure("digest") .. "/" .. file
    local now = rs.clock()
    local st = current(path, now, function(ended)
      close_digest(ended, path)
      os.remove(path)
      drop_chunks(path, ended)
    end)
    if not st then
      drop_chunks(path, nil)   -- (left by a window set aside, or a call cut short)
      st = { kind = "digest", key = o.key, window_start = now, window_end = now + o.window, items = {},
             chunks = 0, spilled = 0 }
    end
    st.message = spec
    st.chunks, st.spilled = st.chunks or 0, st.spilled or 0
    -- every item counted; the mail lists the first 1000 and says how many more
    st.count = (st.count or #st.items) + 1
    if st.spilled + #st.items < rs.digest_items then
      st.items[#st.items + 1] = { t = now, text = tostring(o.item or o.key) }
      if #st.items >= rs.digest_chunk then   -- full: to a chunk file of its own, written once
        write(chunk_path(path, st.chunks + 1), { items = st.items })
        st.chunks, st.spilled, st.items = st.chunks + 1, st.spilled + #st.items, {}
      end
    end
    write(path, st)
    return true, st
  end)
end

------------------------------------------------------------------ hold & sweep

-- hold(message, until_epoch [, reason]) -> name: the message is enqueued once
-- until_epoch has passed (by `mailhook run`'s sweep or a later event); at once
-- when it already has.  Durable before it returns.  Waits (disk).
function rs.hold(msg, due, reason, ...)
  core.check_options("hold", {}, {}, select("#", ...) + 3, 3)
  if type(msg) ~= "table" then error("hold(message, until): message must be a table", 2) end
  if reason ~= nil and type(reason) ~= "string" then error("hold: reason must be a string (got " .. type(reason) .. ")", 2) end
  if type(due) ~= "number" or due ~= due or due == math.huge or due == -math.huge then
    error("hold: until must be a finite number (an epoch time; got " .. got(due) .. ")", 2)
  end
  msg = marked(msg)
  local ok, err, info = check(msg, "hold", 2)
  if not ok then return nil, err, info end
  return locked(function()
    local name = park(msg, math.floor(due), reason or "held message")
    flush_held(rs.clock())
    return name
  end)
end

-- sweep() -> n_sent: closes ended throttle and digest windows and enqueues the
-- held mail that fell due.  `mailhook run` calls it every few seconds.  Waits.
function rs.sweep()
  return locked(function()
    local now = rs.clock()
    local base = state_dir()
    for _, kind in ipairs { "throttle", "digest" } do
      for _, n in ipairs(rstate.list(base .. "/" .. kind) or {}) do
        if n:match("%.lua$") then
          local path = base .. "/" .. kind .. "/" .. n
          local st = read(path)
          if st and now >= (st.window_end or 0) then
            local ok, err = pcall(kind == "throttle" and close_throttle or close_digest, st, path)
            if ok then
              os.remove(path)
              if kind == "digest" then drop_chunks(path, st) end
            else
              set_aside(path, kind .. " " .. tostring(st.key), err)
            end
          end
        end
      end
    end
    return flush_held(now)
  end)
end

------------------------------------------------------------------ period

local DAYS = { sun = 1, mon = 2, tue = 3, wed = 4, thu = 5, fri = 6, sat = 7 }
local DAY_ORDER = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" }

local function parse_days(w)
  local set = {}
  if w == nil then for i = 1, 7 do set[i] = true end return set end
  if type(w) == "string" then
    local list = {}
    for part in w:gmatch("[^,%s]+") do list[#list + 1] = part end
    w = list
  end
  if type(w) ~= "table" then error("period: weekdays must be a list or a string such as 'mon-fri'", 3) end
  for _, part in ipairs(w) do
    part = tostring(part):lower()
    local a, b = part:match("^(%a+)%-(%a+)$")
    a, b = (a or part):sub(1, 3), (b or part):sub(1, 3)
    if not DAYS[a] or not DAYS[b] then error("period: unknown weekday '" .. part .. "'", 3) end
    local i, j
    for k, d in ipairs(DAY_ORDER) do if d == a then i = k end if d == b then j = k end end
    local k = i
    while true do
      set[DAYS[DAY_ORDER[k]]] = true
      if k == j then break end
      k = k % 7 + 1
    end
  end
  return set
end

local function parse_times(times)
  if times == nil then times = { "00:00-24:00" } end
  if type(times) == "string" then times = { times } end
  local out = {}
  for _, s in ipairs(times) do
    local h1, m1, h2, m2 = tostring(s):match("^%s*(%d%d?):(%d%d)%s*%-%s*(%d%d?):(%d%d)%s*$")
    if not h1 then error("period: times '" .. tostring(s) .. "' is not HH:MM-HH:MM", 3) end
    local a, b = tonumber(h1) * 60 + tonumber(m1), tonumber(h2) * 60 + tonumber(m2)
    if a >= 24 * 60 or b > 24 * 60 or tonumber(m1) > 59 or tonumber(m2) > 59 then
      error("period: times '" .. s .. "' out of range", 3)
    end
    out[#out + 1] = { a, b }
  end
  return out
end

local Period = {}
Period.__index = Period

-- contains([t]) -> whether epoch t (default now) lies in the period, in its zone.
-- A range that crosses midnight ("22:00-07:00") belongs to the weekday it starts on.
-- t of contains and ends: a number (epoch) or nil, else raised at the caller
-- of the method, named (p:contains("now") raised rstate.localtime's error,
-- pointing into this file).
local function period_time(fn, t)
  if t ~= nil and (type(t) ~= "number" or t ~= t or t == math.huge or t == -math.huge) then
    error(string.format("%s: t must be an epoch time (a finite number; got %s)", fn, got(t)), 3)
  end
end

function Period:contains(t, ...)
  core.check_options("period:contains", {}, {}, select("#", ...) + 1, 1)
  period_time("period:contains", t)
  t = t or rs.clock()
  local lt = rstate.localtime(math.floor(t), self.tz)   -- (the clock, and a t given, may hold a fraction)
  local m = lt.hour * 60 + lt.min
  local today, yesterday = lt.wday, (lt.wday + 5) % 7 + 1
  for _, r in ipairs(self.ranges) do
    local a, b = r[1], r[2]
    if a < b then
      if self.days[today] and m >= a and m < b then return true end
    else  -- crosses midnight (or a == b: a whole day from a to a)
      if self.days[today] and m >= a then return true end
      if self.days[yesterday] and m < b then return true end
    end
  end
  return false
end

-- ends([t]) -> the epoch at which the period that contains t ends (t itself when
-- t is outside), honouring daylight saving changes of the zone.
function Period:ends(t, ...)
  core.check_options("period:ends", {}, {}, select("#", ...) + 1, 1)
  period_time("period:ends", t)
  t = t or rs.clock()
  if not self:contains(t) then return t end
  local lt = rstate.localtime(math.floor(t), self.tz)
  local cands = {}
  for d = 0, 8 do
    for _, r in ipairs(self.ranges) do
      local e = r[2]
      local c = rstate.mktime({ year = lt.year, month = lt.month, day = lt.day + d,
                                hour = e // 60, min = e % 60, sec = 0 }, self.tz)
      if c > t then cands[#cands + 1] = c end
    end
  end
  table.sort(cands)
  for _, c in ipairs(cands) do
    if not self:contains(c) then return c end
  end
  return t + 8 * 86400
end

-- route(message [, {critical = bool, elsewhere = {to = ...}}]) -> how, id_or_name
-- Inside the period: held until it ends ("held"), or sent at once to
-- `elsewhere` ("routed"); outside it, or critical: enqueued now ("sent").
function Period:route(msg, opts, ...)
  if opts ~= nil and type(opts) ~= "table" then error("period:route: options must be a table (got " .. type(opts) .. ")", 2) end
  core.check_options("period:route", opts or {}, { "critical", "elsewhere", "reason" }, select("#", ...) + 2, 2)
  if type(msg) ~= "table" then error("period:route: message must be a table (got " .. type(msg) .. ")", 2) end
  if opts and opts.elsewhere ~= nil and type(opts.elsewhere) ~= "table" then
    error("period:route: elsewhere must be a table (got " .. type(opts.elsewhere) .. ")", 2)
  end
  opts = opts or {}
  if opts.critical or not self:contains() then
    return "sent", assert(enqueue(msg))
  end
  if opts.elsewhere then
    local m = {}
    for k, v in pairs(msg) do m[k] = v end
    for k, v in pairs(opts.elsewhere) do m[k] = v end
    return "routed", assert(enqueue(m))
  end
  local name, err, info = rs.hold(msg, self:ends(), opts.reason or "held for the end of a quiet period")
  if not name then return nil, err, info end
  return "held", name
end

-- period{weekdays = "mon-fri" | {"sat", "sun"}, times = "22:00-07:00" | {...},
--        tz = "Europe/Paris"} -> period with :contains(t), :ends(t), :route(msg, opts)
function rs.period(o, ...)
  if type(o) ~= "table" then error("period{weekdays=, times=, tz=}: expects a table", 2) end
  core.check_options("period", o, { "weekdays", "times", "tz" }, select("#", ...) + 1, 1)
  if o.tz ~= nil and type(o.tz) ~= "string" then error("period: tz must be a zone name", 2) end
  local p = setmetatable({ days = parse_days(o.weekdays), ranges = parse_times(o.times), tz = o.tz }, Period)
  if p.tz then   -- an unknown zone is an error now, not at 3 am; named period, at the caller
    local ok, err = pcall(rstate.localtime, 0, p.tz)
    if not ok then error("period: tz: " .. tostring(err):gsub("^rstate%.localtime: ", ""), 2) end
  end
  return p
end

return rs
