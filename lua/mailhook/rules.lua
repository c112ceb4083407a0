-- mailhook.rules — notification rules: handlers by event, rule files loaded
-- each in its own strict environment, and the runner that `mailhook hook`,
-- `mailhook run` and the embedding API share.
--
--   rules.on(event, fn [, name])      (mh.on)   "*" receives every event
--   rules.emit(event, fields) -> ok, failures  (mh.emit; waits for the handlers
--       when called from a task: each handler runs in its own task, under its
--       own budget; a handler that raises, runs out of budget or whose
--       mh.enqueue failed unhandled is logged with its traceback and the others
--       still run; failures = {{handler=, event=, error=}})
--   rules.run(label, fn, ...) -> ok, message, traceback   fn under a fresh budget
--   rules.load(paths) -> n_files, errors   a folder (its *.lua), a file, or a list
--   rules.start(paths) -> service handle   loads the rules and sends due
--       summaries, digests and held mail every rules.sweep_interval s
--   rules.configure(cfg)   the budget from the settings (rule_timeout, rule_memory)
--   rules.throttle / digest / period / hold / sweep   see mailhook.rule_state
--
-- The budget (docs/rules.md): every rule -- a handler, a rule file's top
-- level, an every() tick -- runs under a budget that covers every coroutine
-- and task it starts: instructions, wall-clock seconds (waits included) and
-- Lua memory; a watchdog thread ends the process when a rule is stuck inside
-- one C call past its deadline.  `mailhook run` keeps its rules in a separate
-- process (mailhook.rule_worker) so that nothing a rule does can hold delivery.
local core = require "mailhook.core"

local rules = {
  budget = 50000000,        -- instructions one rule may run (an endless loop is stopped)
  time_budget = 10,         -- seconds of running time one rule may take (settings rule_timeout)
  life_factor = 3,          -- and it must end within life_factor x time_budget, waits included
  memory_limit = 128 * 1048576,  -- bytes of Lua heap while a rule runs (settings rule_memory, MB)
  grace = 1,                -- seconds past time_budget before the watchdog ends a stuck process
  sweep_interval = 5,       -- seconds between sweeps of due summaries in `run`
  on_rule = nil,            -- function(label) called as each rule starts (the rules worker)
  on_loading = nil,         -- function(file) called before each rule file loads (the rules worker)
  max_enqueue = 1000,       -- messages one rule (its tasks included) may queue: a loop
                            -- cannot flood the queue and the mail server (docs/rules.md)
}

local handlers = {}         -- event -> {{fn=, name=, file=}, ...} in registration order
local loading = nil         -- the rule file being loaded (its handlers are tagged with it)
local file_timers = {}      -- file -> {timer...}: the every() timers each rule file made
                            -- (stopped when that file reloads or goes)
local in_use = {}           -- file -> true: the files whose handlers and timers are loaded

local function describe(fn)
  local info = debug.getinfo(fn, "S")
  local src = info.short_src or "?"
  src = src:match("[^/]+$") or src
  return src .. ":" .. (info.linedefined or 0)
end

-- on(event, fn [, name]): fn(ev) runs for every emit of event ("*": all events).
function rules.on(event, fn, name)
  if type(event) ~= "string" or event == "" then
    error("mh.on: event must be a non-empty string", 2)
  end
  if type(fn) ~= "function" then error("mh.on: handler must be a function", 2) end
  if name ~= nil and type(name) ~= "string" then error("mh.on: name must be a string", 2) end
  local list = handlers[event]
  if not list then list = {}; handlers[event] = list end
  list[#list + 1] = { fn = fn, name = name or (event .. "@" .. describe(fn)), file = loading }
end

-- handlers_for(event) -> the list that emit would run (a copy).
function rules.handlers_for(event)
  local out = {}
  for _, h in ipairs(handlers[event] or {}) do out[#out + 1] = h end
  if event ~= "*" then
    for _, h in ipairs(handlers["*"] or {}) do out[#out + 1] = h end
  end
  return out
end

-- clear(): forget every handler (reload, tests).
function rules.clear() handlers = {}; in_use = {} end

-- configure(cfg): the budget from the settings (rule_timeout in seconds,
-- rule_memory in MB); keys that are absent leave the module's values.
function rules.configure(cfg)
  if type(cfg) ~= "table" then return end
  if tonumber(cfg.rule_timeout) then rules.time_budget = tonumber(cfg.rule_timeout) end
  if tonumber(cfg.rule_memory) then rules.memory_limit = tonumber(cfg.rule_memory) * 1048576 end
end

-- What mh.enqueue failures a running rule made: budget id -> {{err=, info=}...};
-- `late` holds those of tasks that outlived their rule (dispatch reports them).
local notes, late = {}, {}

-- note_enqueue_failure(err, info): mailhook.enqueue calls it for every failed
-- mh.enqueue.  Made by a rule (a budget is charged), it is logged at once with
-- the rule's name, and fails the rule unless the rule sets info.handled = true.
function rules.note_enqueue_failure(err, info)
  local id, label = core.budget()
  if not id then return end
  core.log("error", string.format("%s: mh.enqueue failed: %s", label, rules.error_text(err)))
  local rec = { err = tostring(err), info = info, label = label }
  local list = notes[id]
  if list then
    list[#list + 1] = rec
  else
    if #late >= 100 then table.remove(late, 1) end
    late[#late + 1] = rec
  end
end

-- The events each running rule handles: budget id -> {fields...} (its own, and
-- those of the events it emits: their handlers run under its budget).
local events = {}

-- notice_of() -> id | nil: the id of the failed message the running rule
-- handles, when it runs for a `failed` event (or an event a `failed` handler
-- emitted).  mh.enqueue marks the mail such a rule queues (NOTICE_HEADER), and
-- the service emits no `failed` for that mail: a notice sent the same way as
-- the mail that failed fails the same way, and each failure queued another
-- notice, without end (hundreds a second, filling failed/).
rules.NOTICE_HEADER = "X-Mailhook-Notice"
-- A task the rule spawned (mh.spawn) runs under its budget after the handler
-- has returned, when events[id] is gone: the budgets of rules that ran for
-- `failed` are kept here (id -> {about =, till =}) until their lifetime is
-- over, when no task of theirs runs any more.  A notice such a task queued
-- was not marked, and its failure looped as before.
local notice_budgets = {}
local function failed_about(evs)
  for _, ev in ipairs(evs or {}) do
    if type(ev) == "table" and ev.event == "failed" then
      return (tostring(ev.id or "?"):sub(1, 64):gsub("[^%w._-]", "?"))   -- a header value, whatever the id
    end
  end
end
function rules.notice_of()
  local id = core.budget()
  if not id then return nil end
  if events[id] then return failed_about(events[id]) end
  local kept = notice_budgets[id]
  return kept and kept.about
end

-- mark_notice(fields) -> fields: for mail the running rule queues or keeps for
-- later (mh.enqueue, hold()), a copy carrying NOTICE_HEADER when that rule's
-- mail is a notice (notice_of); fields itself otherwise, or when its headers
-- are no table (the builder says what is wrong with them).  A held notice was
-- queued later by the sweep, a rule of its own: unmarked, its failure looped.
function rules.mark_notice(fields)
  local about = rules.notice_of()
  if not about or (fields.headers ~= nil and type(fields.headers) ~= "table") then return fields end
  local f, h = {}, {}
  for k, v in pairs(fields) do f[k] = v end
  for k, v in pairs(fields.headers or {}) do h[k] = v end
  h[rules.NOTICE_HEADER] = "failed " .. about
  f.headers = h
  return f
end

-- explain_header(err, info, t) -> err, info: an mh.enqueue of a rule refused
-- for a CR, LF or NUL in a header (EBADHDR) says which field of the event put
-- it there, and the header: a plain template, not {header = true}, copies a
-- value as it is, so a caller=$'Bob\r\nBcc: x' lost the voicemail's mail with
-- "subject: CR, LF or NUL in the subject" and no word of the field.  The
-- fields are those holding a CR, LF or NUL whose value is in the refused
-- header's; info gets header and event_fields.  Nothing is rewritten.
function rules.explain_header(err, info, t)
  if type(info) ~= "table" or info.code ~= "EBADHDR" or type(t) ~= "table" or type(err) ~= "string" then
    return err, info
  end
  local id = core.budget()
  local evs = id and events[id]
  if not evs then return err, info end
  local vals = {}
  local function collect(v, depth)
    if type(v) == "string" then vals[#vals + 1] = v
    elseif type(v) == "table" and depth < 3 then for _, x in pairs(v) do collect(x, depth + 1) end end
  end
  collect(t[info.field or ""], 0)
  local found, seen = {}, {}
  local function walk(v, path, depth)
    if type(v) == "string" then
      if path and not seen[path] and v:find("[\r\n%z]") then
        for _, h in ipairs(vals) do
          if h:find(v, 1, true) then found[#found + 1], seen[path] = path, true break end
        end
      end
    elseif type(v) == "table" and depth < 4 then
      for k, x in pairs(v) do
        if (type(k) == "string" or math.type(k) == "integer") and k ~= "event" then
          walk(x, (path and (path .. ".") or "") .. tostring(k), depth + 1)
        end
      end
    end
  end
  for _, ev in ipairs(evs) do walk(ev, nil, 0) end
  if #found == 0 then return err, info end
  table.sort(found)
  local more = #found > 5 and (" and " .. (#found - 5) .. " more") or ""
  for i = #found, 6, -1 do found[i] = nil end
  local header = info.field == "headers" and err:match("^header (.-): ") or info.field or "?"
  local names = {}
  for i, f in ipairs(found) do names[i] = "'" .. f:gsub("[%c\127]", "?") .. "'" end
  info.header, info.event_fields = header, found
  return err .. string.format(" (the event's field%s %s%s hold%s a line break or NUL, and the %s copies " ..
    "%s as it is: render the %s with mh.template(src, {header = true}), which keeps a header on one line)",
    #found > 1 and "s" or "", table.concat(names, ", "), more, #found > 1 and "" or "s", header,
    #found > 1 and "them" or "it", header), info
end

-- count_enqueue(): mailhook.enqueue calls it before each mh.enqueue made by
-- a rule; past rules.max_enqueue messages for one rule run (its tasks
-- included) it raises, naming the rule and the limit.  On a disk whose fsync
-- is cheap a loop queued ~200,000 messages within its time budget, every event.
local counts = {}           -- budget id -> messages queued by that rule run
function rules.count_enqueue()
  local id, label = core.budget()
  if not id then return end
  local n = (counts[id] or 0) + 1
  counts[id] = n
  if n > rules.max_enqueue then
    local msg = string.format("over the limit of %d messages for one rule run (an endless loop?); " ..
                              "the %d before it are queued", rules.max_enqueue, rules.max_enqueue)
    -- noted once (logged, and the rule fails even if a pcall swallows the raise)
    if n == rules.max_enqueue + 1 then
      rules.note_enqueue_failure(msg, { code = "ELIMIT", class = "permanent", stage = "rule" })
    end
    error(label .. ": mh.enqueue refused: " .. msg, 3)
  end
end

local function unhandled(list)
  for _, r in ipairs(list or {}) do
    if not (type(r.info) == "table" and r.info.handled == true) then return r end
  end
end

-- error_text(err [, max]) -> a rule's error as one bounded line for stderr and
-- the log.  The text may carry event values (error("bad caller " .. ev.caller))
-- and be any size (3 MB seen): control bytes (CR, LF, ESC...) and C1 controls
-- are escaped (\r, \n, \27, so no line can be forged nor a terminal driven),
-- bytes of invalid UTF-8 too, and past max bytes (1000) the start is kept and
-- the rest counted: "... (2999000 more bytes)".
-- A table raised (error({code = 5})) is shown by its __tostring, else by what
-- it holds (error_value); NUL bytes are shown as \0, not cut there.
rules.max_error = 1000
local ERR_ESC = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

-- error_value(err) -> the text of an error value, as the core shows a task's:
-- a string or number as it is; what its __tostring returns (called protected);
-- else a short description that keeps a table's fields: '(error object: a
-- table {code=5, why="disk"})' (it was "(error object is a table value)" or
-- "table: 0x...", the fields lost).
local DESCRIBED_FIELDS = 8
local function scalar(v, quoted)
  local ty = type(v)
  if ty == "string" then
    if not quoted then return v end
    return '"' .. v:sub(1, 60) .. (#v > 60 and '..."' or '"')
  elseif ty == "number" or ty == "boolean" then
    return tostring(v)
  end
  return "(a " .. ty .. ")"
end
function rules.error_value(err)
  local ty = type(err)
  if ty == "string" or ty == "number" then return tostring(err) end
  local mt = getmetatable(err)
  if type(mt) == "table" and rawget(mt, "__tostring") ~= nil then
    local ok, s = pcall(tostring, err)
    if ok and type(s) == "string" then return s end
  end
  if ty ~= "table" then return "(error object is a " .. ty .. " value)" end
  local parts, n = {}, 0
  for k, v in next, err do   -- raw: no __pairs
    if n == DESCRIBED_FIELDS then parts[#parts + 1] = "..."; break end
    n = n + 1
    parts[#parts + 1] = (type(k) == "string" and k or "[" .. scalar(k, true) .. "]") .. "=" .. scalar(v, true)
  end
  return "(error object: a table {" .. table.concat(parts, ", ") .. "})"
end

function rules.error_text(err, max)
  local s = rules.error_value(err)
  max = max or rules.max_error
  local valid = utf8.len(s) ~= nil   -- else every byte over 127 is escaped
  local out, n, i = {}, 0, 1
  while i <= #s do
    local c = s:byte(i)
    local piece
    if c < 32 or c == 127 then
      piece = ERR_ESC[string.char(c)] or ("\\" .. c)
    elseif c < 128 then
      piece = s:match("^[^%c\128-\255]+", i):sub(1, max - n)   -- a run of plain ASCII, what fits
      if piece == "" then break end
    elseif not valid then
      piece = "\\" .. c
    else
      local len = c >= 0xF0 and 4 or c >= 0xE0 and 3 or 2
      piece = s:sub(i, i + len - 1)
      if c == 0xC2 and s:byte(i + 1) < 0xA0 then piece = "\\194\\" .. s:byte(i + 1) end   -- C1 controls
    end
    local used = (c < 128 and c >= 32 and c ~= 127) and #piece or (c >= 128 and valid and (c >= 0xF0 and 4 or
                 c >= 0xE0 and 3 or 2) or 1)
    if n + #piece > max then break end
    out[#out + 1] = piece
    n = n + #piece
    i = i + used
  end
  local text = table.concat(out)
  if i <= #s then text = text .. " ... (" .. (#s - i + 1) .. " more bytes)" end
  return text
end

-- log_failure(label, err, tb): "LABEL failed: ERROR" in the log, the error as
-- error_text shows it, then the traceback's lines (the log continues an entry
-- on tab-led lines: they cannot pose as entries of their own).
function rules.log_failure(label, err, tb)
  local msg = rules.error_value(err)
  local trace = ""
  if type(tb) == "string" and tb:sub(1, #msg) == msg then trace = tb:sub(#msg + 1)
  elseif type(tb) == "string" and tb ~= msg then trace = "\n" .. tb end
  if #trace > 8 * rules.max_error then trace = trace:sub(1, 8 * rules.max_error) .. "\n..." end
  core.log("error", label .. " failed: " .. rules.error_text(msg) .. trace)
end

-- run(label, fn, ...) -> true, results... | false, message, traceback
-- fn(...) under a fresh budget named label (rules.budget instructions,
-- rules.time_budget seconds, rules.memory_limit bytes); tasks and coroutines
-- it starts share the budget.  A normal return still fails when one of the
-- rule's mh.enqueue calls failed and the rule did not mark it handled.
local set_limits = {}        -- what core.budget_limits was last given
-- run_rule: run, for a rule that stands for a `failed` rule's notice when about
-- (the failed message's id) is set: a tick of an every() timer that a `failed`
-- handler started runs under a fresh budget of its own, after the handler has
-- returned, and the notice it queued was not marked: its failure emitted
-- `failed` again, and the handler started another timer.
local function run_rule(label, about, fn, ...)
  local sl = set_limits
  if sl.instructions ~= rules.budget or sl.seconds ~= rules.time_budget or sl.memory ~= rules.memory_limit
     or sl.life ~= rules.time_budget * rules.life_factor or sl.grace ~= rules.grace then
    set_limits = { instructions = rules.budget, seconds = rules.time_budget,
                   life = rules.time_budget * rules.life_factor,
                   memory = rules.memory_limit, grace = rules.grace }
    core.budget_limits(set_limits)
  end
  if rules.on_rule then rules.on_rule(label) end
  local id
  local res = table.pack(core.rule_call(label, function(...)
    id = core.budget()
    notes[id] = {}
    events[id] = type((...)) == "table" and { (...) } or {}
    if about then table.insert(events[id], { event = "failed", id = about }) end
    return fn(...)
  end, ...))
  local list = id and notes[id]
  local now = core.monotonic()
  for k, v in pairs(notice_budgets) do if v.till < now then notice_budgets[k] = nil end end
  local about = id and failed_about(events[id])
  if about then notice_budgets[id] = { about = about, till = now + set_limits.life + set_limits.grace + 1 } end
  if id then notes[id] = nil; counts[id] = nil; events[id] = nil end
  local bad = unhandled(list)
  if res[1] and bad then
    local msg = "its mail was not queued: mh.enqueue failed: " .. bad.err ..
                " (a rule that dealt with it sets info.handled = true)"
    return false, msg, msg
  end
  return table.unpack(res, 1, res.n)
end
function rules.run(label, fn, ...) return run_rule(label, nil, fn, ...) end

local function copy_fields(event, fields)
  local ev = {}
  if fields ~= nil then
    if type(fields) ~= "table" then error("mh.emit: fields must be a table", 3) end
    -- (the top level: a nested table is the same one for every handler, and
    -- the caller's -- the way a caller hands out a table to collect answers in)
    for k, v in pairs(fields) do ev[k] = v end
  end
  ev.event = event   -- always the event's name: no field can stand in for it
  return ev
end

-- How deep events emitted by rules are nested (a handler's emit, whose handler
-- emits...), per task; past rules.max_emit_depth the emit raises.
local emit_depth = setmetatable({}, { __mode = "k" })
rules.max_emit_depth = 8

-- emit(event, fields) -> ok, failures.  From a task it waits for every handler;
-- elsewhere the handlers are spawned and emit returns true, {} at once.
-- From inside a rule (a handler, or a task it started) each handler runs
-- under that rule's budget, not a fresh one: its time, memory and mail limits
-- count for both, and its failure (a raise, mail not queued) is the rule's.
-- A fresh budget per emit let a handler that emits an event it handles
-- itself (a "*" handler that emits "audit") run for ever, queueing mail
-- without limit, with `hook` never ending; and its failure left `hook` at 0.
function rules.emit(event, fields)
  if type(event) ~= "string" or event == "" then
    error("mh.emit: event must be a non-empty string", 2)
  end
  if fields ~= nil and type(fields) ~= "table" then error("mh.emit: fields must be a table", 2) end
  local in_rule = core.budget() ~= nil
  local me = core.current_task()
  local depth = ((me and emit_depth[me]) or 0) + 1
  if in_rule and depth > rules.max_emit_depth then
    error(string.format("mh.emit: events emitted by rules nested %d deep (a rule that emits an event it " ..
                        "handles itself?): '%s' not emitted", depth - 1, event), 2)
  end
  local list = rules.handlers_for(event)
  local tasks, failures = {}, {}
  for i, h in ipairs(list) do
    local ev = copy_fields(event, fields)   -- a handler cannot change what the next one sees
    local label = string.format("rule %s for event '%s'", h.name, event)
    if in_rule then
      local evs = events[core.budget() or false]
      if evs and #evs < 16 then evs[#evs + 1] = ev end
      tasks[i] = core.spawn(function()   -- (a task of the rule: its budget, its failures)
        emit_depth[core.current_task()] = depth
        local tb
        local ok, err = xpcall(h.fn, function(e) tb = debug.traceback(rules.error_value(e), 2); return e end, ev)
        if not ok then
          rules.log_failure(label, err, tb)
          failures[#failures + 1] = { handler = h.name, event = event, error = rules.error_text(err) }
          error(label .. " failed: " .. rules.error_text(err), 0)
        end
      end)
    else
      tasks[i] = core.spawn(function()
        local ok, err, tb = rules.run(label, h.fn, ev)
        if not ok then
          rules.log_failure(label, err, tb)
          failures[#failures + 1] = { handler = h.name, event = event, error = rules.error_text(err) }
        end
      end)
    end
  end
  if core.current_task() and coroutine.isyieldable() then
    for _, t in ipairs(tasks) do t:wait() end
  end
  return #failures == 0, failures, #list
end

-- nearest(name, ...) -> the one key of the tables given within 2 edits of
-- name (a letter missing, extra, changed or two swapped), or nil: the global a
-- mistyped read meant ("tostrin" -> tostring, "mh.Enqueue" is found by Lua).
-- Run only when the read has already failed.
local function nearest(name, ...)
  if #name < 3 or #name > 40 then return nil end
  local function dist(a, b)   -- optimal string alignment distance, bounded by 2
    if math.abs(#a - #b) > 2 then return 3 end
    local prev2, prev, cur = nil, {}, nil
    for j = 0, #b do prev[j] = j end
    for i = 1, #a do
      cur = { [0] = i }
      local best = i
      for j = 1, #b do
        local cost = a:byte(i) == b:byte(j) and 0 or 1
        local d = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
        if prev2 and i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
          d = math.min(d, prev2[j - 2] + 1)
        end
        cur[j] = d
        if d < best then best = d end
      end
      if best > 2 then return 3 end
      prev2, prev = prev, cur
    end
    return prev[#b]
  end
  local found, best = nil, 3
  for _, t in ipairs { ... } do
    for key in pairs(t) do
      if type(key) == "string" and key ~= name then
        local d = dist(name:lower(), key:lower())
        if d < best or (d == best and found and key < found) then found, best = key, d end
      end
    end
  end
  return best <= 2 and found or nil
end

-- The environment of a rule file: the standard globals and the rule API can be
-- read; reading or assigning any other global is an error (a typo in a rule
-- must not silently make a nil, nor leak state between files).
local function rule_env(path)
  local mh = require "mailhook"
  local function rs() return require "mailhook.rule_state" end
  local own = {
    mh = mh,
    -- (an argument too many raises, as mh.on's and mh.emit's: docs/lua-library.md)
    on = function(event, fn, name, ...)
      core.check_options("on", {}, {}, select("#", ...) + 3, 3)
      return rules.on(event, fn, name)
    end,
    emit = function(event, fields, ...)
      core.check_options("emit", {}, {}, select("#", ...) + 2, 2)
      return rules.emit(event, fields)
    end,
    enqueue = function(...) return mh.enqueue(...) end,
    RULE_FILE = path,
    -- a __gc finalizer set here is named after the rule that set it, so the
    -- watchdog can say whose finalizer never returned
    setmetatable = function(t, mt)
      if type(mt) == "table" then core.gc_guard(mt) end
      return setmetatable(t, mt)
    end,
    SERVICE = rules.is_service(),   -- true under `mailhook run`: start timers only then
    -- os.exit would end `hook` (or the rules worker) with the other rules not
    -- run and their mail not queued, `hook` saying 0: refused, like a raise
    os = setmetatable({
      exit = function()
        error("os.exit is not allowed in a rule (it would end the process before the other rules " ..
              "ran and their mail was queued): return, or raise an error", 2)
      end,
    }, { __index = os }),
    -- every(seconds, fn): a periodic task for the service; it never keeps a
    -- process alive and is stopped when the rules are reloaded
    every = function(seconds, fn, ...)
      core.check_options("every", {}, {}, select("#", ...) + 2, 2)
      if type(fn) ~= "function" then error("every(seconds, fn): fn must be a function", 2) end
      local label = "every@" .. describe(fn)
      local about = rules.notice_of()   -- started by a `failed` rule: its ticks' mail is a notice too
      local h = core.rstate.ticker(seconds, function()
        local ok, err, tb = run_rule(label, about, fn)
        if not ok then rules.log_failure(label, err, tb) end
      end)
      local mine = file_timers[path]
      if not mine then mine = {}; file_timers[path] = mine end
      mine[#mine + 1] = h
      return h
    end,
  }
  -- loaded on first use, so a hook whose rules need neither stays cheap
  local lazy = {
    template = function() return mh.template end,
    throttle = function() return rs().throttle end,
    digest = function() return rs().digest end,
    period = function() return rs().period end,
    hold = function() return rs().hold end,
  }
  return setmetatable({}, {
    __index = function(_, k)
      local v = own[k]
      if v == nil and lazy[k] then v = lazy[k](); own[k] = v end
      if v == nil then v = _G[k] end
      if v == nil then
        local near = type(k) == "string" and nearest(k, own, lazy, _G)
        error(string.format("read of undeclared global '%s' (%s)", tostring(k),
                            near and ("a typo of '" .. near .. "'?") or "declare it with local"), 2)
      end
      return v
    end,
    __newindex = function(_, k)
      error(string.format("assignment to undeclared global '%s' (declare it with local)", tostring(k)), 2)
    end,
  })
end

-- Expands a folder into its *.lua files (sorted), keeps files as they are.
-- A folder that exists but cannot be listed (EACCES: a rules folder of mode
-- 0700 read by another user), or a path that cannot be reached (a folder on
-- its way the user may not search), is an error naming it and why, in
-- unlisted (they read "a folder, not a regular file", and "no such folder").
local function expand(paths, unlisted)
  if type(paths) == "string" then paths = { paths } end
  local files = {}
  for _, p in ipairs(paths) do
    if p:sub(1, 1) ~= "/" and core.rstate.exists(p) == false then
      p = rules.default_paths({ rules = p })   -- the settings' `rules`: beside the settings file
    end
    local there, why, xinfo = core.rstate.exists(p)
    local names, lerr, info
    if there == nil then lerr, info = "cannot reach " .. tostring(why), xinfo
    else names, lerr, info = core.rstate.list(p) end
    local code = type(info) == "table" and info.code
    if not names and code and code ~= "ENOENT" and code ~= "ENOTDIR" and unlisted then
      unlisted[#unlisted + 1] = { file = p, error = tostring(lerr) }
    elseif names then
      for _, n in ipairs(names) do
        if n:match("%.lua$") then files[#files + 1] = p .. "/" .. n end
      end
    elseif p:match("%.lua$") or core.rstate.exists(p) then  -- a missing folder: no rules yet
      files[#files + 1] = p
    end
  end
  return files
end

-- load(paths) -> n_loaded, errors: each file runs in its own environment; a file
-- that fails to load or run is reported in errors ({file=, error=}) and the
-- others still load.  A missing folder is no error (no rules yet).
function rules.load(paths, opts)
  local n, errors = 0, {}
  local skip = opts and opts.skip or {}
  -- A reload (SIGHUP) replaces what each file registered before.  A file that
  -- no longer compiles or runs keeps its previous version (handlers, timers):
  -- a syntax error saved mid-edit must not silence that file's notifications
  -- until someone notices.  A file that went, or can no longer be read or is
  -- now refused (owner, mode), loses them.
  local before = {}         -- file -> {event -> {handler...}} as last loaded
  for file in pairs(in_use) do before[file] = {} end
  in_use = {}
  for event, list in pairs(handlers) do
    local keep = {}
    for _, h in ipairs(list) do
      if h.file then
        local of = before[h.file] or {}
        before[h.file] = of
        of[event] = of[event] or {}
        table.insert(of[event], h)
      else
        keep[#keep + 1] = h
      end
    end
    handlers[event] = keep
  end
  local old_timers = file_timers
  file_timers = {}
  local function stop(timers) for _, h in ipairs(timers or {}) do h:stop() end end
  local function drop_new(file)       -- what a failed run of file registered
    for event, list in pairs(handlers) do
      local keep = {}
      for _, h in ipairs(list) do if h.file ~= file then keep[#keep + 1] = h end end
      handlers[event] = keep
    end
    stop(file_timers[file])
    file_timers[file] = nil
  end
  for _, file in ipairs(expand(paths, errors)) do
    local chunk, err, kept
    if skip[file] then
      err = "skipped: it stopped the rules worker while loading (it loads again after a reload, SIGHUP)"
    else
      -- read by the core's rule for foreign files: a FIFO named *.lua cannot hang `hook`;
      -- and a rule is code run with our rights: a file another user owns, or any
      -- user may write, is refused (owned)
      local src
      src, err = core.fsutil.read(file, { follow = true, owned = true, what = "rule file" })
      if src then
        -- as lua and `mailhook FILE.lua` read a file (luaL_loadfile): a UTF-8 byte
        -- order mark (an editor's) and a first line "#!..." are skipped; the line
        -- is kept empty, so line numbers stay the file's
        src = src:gsub("^\239\187\191", "", 1)
        if src:sub(1, 1) == "#" then src = src:gsub("^[^\n]*", "", 1) end
        chunk, err = load(src, "@" .. file, "t", rule_env(file))
        kept = before[file] and not chunk    -- it read, but does not compile
      end
    end
    if chunk then
      loading = file
      if rules.on_loading then rules.on_loading(file) end
      local ok, e, tb = rules.run("rule file " .. file, chunk)
      loading = nil
      if ok then n = n + 1; in_use[file] = true else chunk, err, kept = nil, tb or e, before[file] ~= nil end
    end
    if kept then
      drop_new(file)
      for event, list in pairs(before[file]) do
        local to = handlers[event] or {}
        handlers[event] = to
        for _, h in ipairs(list) do to[#to + 1] = h end
      end
      file_timers[file], old_timers[file] = old_timers[file], nil
      in_use[file] = true
      err = tostring(err) .. "; its previous version stays in use until the file loads again (SIGHUP)"
    else
      stop(old_timers[file])
      old_timers[file] = nil
    end
    if not chunk then
      errors[#errors + 1] = { file = file, error = tostring(err) }
      core.log("error", "rule file " .. file .. ": " .. tostring(err))
    end
  end
  for _, timers in pairs(old_timers) do stop(timers) end   -- files no longer there
  if rules.is_service() then rules.serve() end
  return n, errors
end

-- Names `hook` and mh_emit accept: an event, a field.
function rules.valid_event(name) return type(name) == "string" and name:match("^[%w_.:-]+$") ~= nil end
function rules.valid_field(name) return type(name) == "string" and name:match("^[%a_][%w_.-]*$") ~= nil end

-- shown(s) -> s as an error message quotes it: control bytes and bytes over
-- 127 escaped (\n, \r, \t, \DDD), at most 80 bytes of it, so a refused name
-- keeps the message on one line and sends no escape sequence to a terminal or
-- a log (a caller's `hook $'x\nFAKE: ...'` cannot forge a line).
local ESCAPED = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ["\\"] = "\\\\" }
function rules.shown(s)
  s = tostring(s)
  local cut = #s > 80
  s = s:sub(1, 80):gsub("[%c\\\128-\255]", function(c) return ESCAPED[c] or ("\\" .. c:byte()) end)
  return cut and (s .. "...") or s
end

-- field_problem(name [, fields]) -> nil | message: why `hook` (KEY=VALUE and
-- the JSON's keys) and mh_emit refuse name as a field of an event whose fields
-- so far are `fields`.  'event' is reserved: ev.event is the event's name, and
-- a field must not make a handler believe it runs for another event.  A key
-- given twice is refused rather than one of its values dropped unseen.
-- A name (an event's, a field's) is at most this many bytes: every input has
-- a limit (docs/spool.md, "Limits"), and a name goes into every log line and
-- failure message of its event.
rules.max_name = 255

-- event_problem(name) -> nil | message: why `hook` and mh_emit refuse name as
-- an event's name.
function rules.event_problem(name)
  if not rules.valid_event(name) then
    return "bad event name '" .. rules.shown(name) .. "' (letters, digits, _ . : - only)"
  end
  if #name > rules.max_name then
    return string.format("event name '%s': %d bytes, over the %d-byte limit", rules.shown(name), #name,
                         rules.max_name)
  end
end

function rules.field_problem(name, fields)
  if not rules.valid_field(name) then return "bad field name '" .. rules.shown(name) .. "'" end
  if #name > rules.max_name then
    return string.format("field name '%s': %d bytes, over the %d-byte limit", rules.shown(name), #name,
                         rules.max_name)
  end
  if name == "event" then
    return "field name 'event' is reserved: ev.event is the event's name (the first argument)"
  end
  if fields and fields[name] ~= nil then return "field '" .. name .. "' is given twice" end
end

-- dispatch(event, fields) -> status (0 ok, 1 a rule failed), {message...}:
-- what `mailhook hook` and mh_emit() do once the rules are loaded: run the
-- handlers (waits), then send mail owed by earlier events that fell due.
-- where: said after the warning when no rule handles the event (which rules
-- were looked at: `hook` names the folder).
function rules.dispatch(event, fields, where)
  late = {}                 -- what tasks of earlier events did was logged then
  core.rule_failures()
  local ok, failures, n = rules.emit(event, fields)
  local msgs = {}
  for _, f in ipairs(failures) do msgs[#msgs + 1] = "rule " .. f.handler .. " failed: " .. f.error end
  if n == 0 then
    core.log("warn", "hook: no rule handles event '" .. event .. "'" .. (where and " (" .. where .. ")" or ""))
  end
  local loaded = package.loaded["mailhook.rule_state"]
  local dir = loaded and loaded.state_dir() or (core.paths.spool .. "/state/rules")
  if core.rstate.exists(dir) then
    local sok, serr, stb = rules.run("rules sweep", require("mailhook.rule_state").sweep)
    if not sok then core.log("warn", "hook: sweep: " .. tostring(stb or serr)) end
  end
  -- tasks the rules started (mh.spawn) finish before the event counts as done:
  -- what they enqueue is durable, and each ends by its rule's deadline
  if core.current_task() and coroutine.isyieldable() then core.rule_tasks_wait() end
  for _, f in ipairs(core.rule_failures()) do
    ok = false
    -- a task's error (an event's value may be in it), its error cut by the core
    msgs[#msgs + 1] = rules.error_text(f, 2 * rules.max_error)
  end
  for _, r in ipairs(late) do
    if not (type(r.info) == "table" and r.info.handled == true) then
      ok = false
      msgs[#msgs + 1] = r.label .. " failed: its mail was not queued: mh.enqueue failed: " .. rules.error_text(r.err)
    end
  end
  late = {}
  return ok and 0 or 1, msgs
end

-- The rules folder of the settings (`rules`, default ./rules): a relative path
-- is taken from the folder of the settings file cfg was read from
-- (settings.resolve; ROOT/rules in the repo).
function rules.default_paths(cfg)
  return require("mailhook.settings").resolve(cfg, (cfg and cfg.rules) or "./rules")
end

-- missing_folder(cfg) -> the folder the settings' `rules` names, when it is
-- not the default one and is not there (a typo: `hook` refuses the event,
-- `update` warns); nil otherwise (the default folder may be missing: no rules
-- yet; one that cannot be reached is not said missing: rules.load names why).
function rules.missing_folder(cfg)
  local folder = rules.default_paths(cfg)
  if folder ~= require("mailhook.settings").resolve(cfg, "./rules") and core.rstate.exists(folder) == false then
    return folder
  end
  return nil
end

-- is_service() -> whether this process is `mailhook run` (the service owns
-- the timers: summaries, digests and held mail are sent by it).
function rules.is_service()
  local a = rawget(_G, "arg")
  return rules.serving or (type(a) == "table" and a[1] == "run")
end

-- serve(): starts (once) the sweep that sends due throttle summaries, digests
-- and held mail every rules.sweep_interval seconds, on a timer that does not keep
-- the process alive (the service's own handles do).  Returns the timer handle.
local sweeper
function rules.serve()
  if sweeper then return sweeper end
  rules.serving = true
  local rs = require "mailhook.rule_state"
  -- A failure that lasts (a full disk, inodes used up) is logged when it
  -- starts, with its traceback, then once every REMIND seconds with a count,
  -- and when it ends: not a 7-line traceback every 5 s.
  local REMIND, failing = 600, nil   -- failing: {err=, since=, n=, said=}
  local function sweep()
    local ok, err, tb = rules.run("rules sweep", rs.sweep)
    local now = core.monotonic()
    if ok then
      if failing then
        core.log("info", string.format("rules: sweep works again (it failed %d time(s))", failing.n))
        failing = nil
      end
    elseif failing and failing.err == tostring(err) then
      failing.n = failing.n + 1
      if now - failing.said >= REMIND then
        failing.said = now
        core.log("warn", string.format("rules: sweep still fails (%d times in %d s): %s", failing.n,
                                       math.floor(now - failing.since), tostring(err)))
      end
    else
      failing = { err = tostring(err), since = now, said = now, n = 1 }
      core.log("warn", "rules: sweep: " .. tostring(tb or err) ..
               " (said again every " .. REMIND .. " s while it lasts)")
    end
  end
  core.spawn(sweep)
  sweeper = core.rstate.ticker(rules.sweep_interval, sweep)   -- never holds the process
  return sweeper
end

-- unserve(): stops the sweep (the service is exiting: no timer may keep it alive).
function rules.unserve()
  if sweeper then sweeper:stop(); sweeper = nil end
  rules.serving = false
end

-- start(paths) -> {loaded=, errors=, stop=}: loads the rules and serves.
function rules.start(paths)
  rules.serving = true
  local n, errors = rules.load(paths)
  local h = rules.serve()
  return { loaded = n, errors = errors, stop = function() h:stop(); sweeper = nil; rules.serving = false end }
end

return rules
