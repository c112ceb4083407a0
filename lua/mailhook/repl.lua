-- mailhook.repl — the interactive Lua of `mailhook repl`.
--
-- Reads chunks with core.repl.readline (GNU readline on a terminal, plain
-- lines from a pipe), runs each in its own task so that waiting calls
-- (mh.sleep, mh.resolve, test()) work at the prompt, prints the results with
-- mailhook.pretty, and keeps going after errors.  Ctrl-C interrupts the line
-- that runs (or clears the prompt); Ctrl-D ends.  The environment has `mh`
-- and the admin functions (help() lists them) as globals.
--
-- Passwords: results are printed through mailhook.pretty, which masks secret
-- keys, and the admin functions only ever show settings.get() (masked).  A
-- line mentioning a password, secret or token is not written to the history.
local mh = require "mailhook"
local pretty = require "mailhook.pretty"
local core = require "mailhook.core"

local M = {}

local PROMPT, PROMPT2 = "> ", ">> "

-- An error shown as its message alone (no traceback): "not available".
local Plain = { __tostring = function(e) return e.msg end }
local function plain_error(msg) error(setmetatable({ msg = msg }, Plain), 0) end

-- Loads a module an admin function needs; a missing one is "not available in
-- this build" (a clear message, not a crash), any other failure is raised.
local function need(module, fname)
  local ok, mod = pcall(require, module)
  if ok then return mod end
  if tostring(mod):find("module '" .. module .. "' not found", 1, true) then
    plain_error(fname .. " is not available in this build (no " .. module .. ")")
  end
  error(mod, 0)
end

local QUEUE_ROWS = 100   -- queue() shows this many, then says how many more

local function utc(t)
  return type(t) == "number" and t > 0 and os.date("!%Y-%m-%d %H:%M:%SZ", math.floor(t)) or nil
end

-- queue([which]) -> one row per message ("pickup", "failed" or both): id,
-- state, from, to, attempts, queued and next attempt (UTC), last reply.
local function queue_rows(which)
  local q = need("mailhook.queue", "queue()")
  local rows, n = {}, 0
  for e in q.list(which) do
    n = n + 1
    if n <= QUEUE_ROWS then
      rows[n] = { id = e.id, state = e.state, from = e.from, to = e.to, attempts = e.attempts,
                  queued = utc(e.queued_at), next_attempt = utc(e.next_attempt),
                  last_reply = e.last_reply, reason = e.reason }
    end
  end
  if n > QUEUE_ROWS then
    rows[#rows + 1] = string.format("... and %d more (mh.queue.list() goes through all)", n - QUEUE_ROWS)
  end
  return rows
end

-- The admin functions, in the order help() lists them: name, usage, summary, fn.
M.commands = {
  { "help", "help()", "list these functions",
    function() return M.help() end },
  { "test", "test() / test{to = ADDR}",
    "connect, TLS, auth, check From; with to, send a test message (waits)",
    function(opts)
      if type(opts) == "string" then opts = { to = opts } end
      if opts ~= nil and type(opts) ~= "table" then
        error("test: expected nil, a table {to = ...} or an address, got " .. type(opts), 2)
      end
      return need("mailhook.smtp", "test()").test(opts or {})
    end },
  { "update", "update{KEY = VALUE, ...}", "validate and save settings; returns them, password masked",
    function(changes)
      if type(changes) ~= "table" then
        error("update: expected a table of settings, e.g. update{port = 587}", 2)
      end
      local settings = need("mailhook.settings", "update()")
      local cfg, err, info = settings.update(changes)
      if not cfg then return nil, err, info end
      return settings.get()   -- what was saved, password masked
    end },
  { "settings", "settings()", "the current settings, password masked",
    function() return need("mailhook.settings", "settings()").get() end },
  { "enqueue", "enqueue{to = ..., subject = ..., text = ...}",
    "build a message and queue it durably; returns its id (waits)",
    function(msg)
      if type(msg) ~= "table" then
        error("enqueue: expected a message table, e.g. enqueue{to = 'a@b', subject = 's', text = 't'}", 2)
      end
      local ok, fn = pcall(function() return mh.enqueue end)
      if not ok or type(fn) ~= "function" then
        plain_error("enqueue() is not available in this build (no mh.enqueue)")
      end
      return fn(msg)
    end },
  { "queue", "queue() / queue \"failed\"", "the messages in the spool: id, state, to, attempts, last reply",
    function(which) return queue_rows(which) end },
}

-- help(): prints one line per admin function.
function M.help()
  local lines = { "admin functions (results are printed; Ctrl-C interrupts, Ctrl-D exits):" }
  for _, c in ipairs(M.commands) do
    lines[#lines + 1] = string.format("  %-45s %s", c[2], c[3])
  end
  lines[#lines + 1] = "  mh.*  the runtime: mh.sleep(s), mh.resolve(host), mh.spawn(fn), mh.every(s, fn), mh.log.info(...)"
  M.write(table.concat(lines, "\n") .. "\n")
end

-- write(text): to stdout, above the prompt when one is shown.
function M.write(text) core.repl.write(text) end

-- print for the REPL: as Lua's, but above the prompt when a background task
-- (mh.every) prints while the prompt waits.
local function repl_print(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do parts[i] = tostring((select(i, ...))) end
  M.write(table.concat(parts, "\t") .. "\n")
end

-- environment() -> the globals lines run with: mh, the admin functions, print;
-- everything else from _G.  Assignments stay in this table.
function M.environment()
  local env = setmetatable({}, { __index = _G })
  env.mh = mh
  env.print = repl_print
  env.pretty = pretty.format
  for _, c in ipairs(M.commands) do env[c[1]] = c[4] end
  return env
end

local INTERRUPTED = setmetatable({}, { __tostring = function() return "interrupted" end })

-- The error handler of a line: "interrupted" for Ctrl-C (the hook's string or
-- the scheduler's light-userdata sentinel), else message + traceback of the
-- line's own frames.
local function on_error(e)
  if e == "interrupted" or (type(e) == "userdata" and getmetatable(e) == nil) then
    return INTERRUPTED
  end
  if getmetatable(e) == Plain then return e.msg end
  local msg = e
  if type(e) ~= "string" then
    local mt = getmetatable(e)
    if mt and mt.__tostring then msg = tostring(e)
    else msg = "(error object is a " .. type(e) .. " value)" end
  end
  local tb = debug.traceback(msg, 2)
  -- drop the REPL's own frames (xpcall and below)
  local cut = tb:find("\n%s*%[C%]: in function 'xpcall'")
  if cut then tb = tb:sub(1, cut - 1) end
  return tb
end

-- Compiles a chunk: as an expression first ("return " .. src), then as
-- statements.  Returns fn; or nil, "incomplete" (either form ran out of
-- input: `function f()`, `{1,`); or nil, the statement form's syntax error.
function M.compile(src, env)
  local fn, experr = load("return " .. src, "=stdin", "t", env)
  if fn then return fn end
  local err
  fn, err = load(src, "=stdin", "t", env)
  if fn then return fn end
  if err:sub(-5) == "<eof>" or experr:sub(-5) == "<eof>" then return nil, "incomplete" end
  return nil, err
end

-- Runs fn in its own task; Ctrl-C interrupts it.  Returns ok, results...
local function run(fn)
  local task = mh.spawn(function() return xpcall(fn, on_error) end)
  core.repl.guard(task)
  local r = table.pack(task:wait())
  local hit = core.repl.guard(nil)
  if not r[1] then  -- interrupted before it started, or failed outside xpcall
    return false, (hit or r[2] == "interrupted") and INTERRUPTED or r[2]
  end
  if hit and not r[2] then return false, INTERRUPTED end  -- whatever the message became
  return table.unpack(r, 2, r.n)
end

-- Shows the values a line returned, tab-separated as lua.c does.
local function show(r)
  if r.n < 2 then return end
  local parts = {}
  for i = 2, r.n do parts[#parts + 1] = pretty.format(r[i]) end
  M.write(table.concat(parts, "\t") .. "\n")
end

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in
            local nil not or repeat return then true until while]]):gmatch("%a+") do
  KEYWORDS[#KEYWORDS + 1] = w
end

-- complete(word, env) -> sorted completions of word for Tab: globals and
-- keywords for a bare name; for "a.b.c" or "obj:m" the fields (and methods,
-- through __index tables) of what a.b / obj names.  Never calls a function
-- other than __index metamethods, under pcall.
function M.complete(word, env)
  local base, sep, stem = word:match("^(.-)([.:])([%w_]*)$")
  local out, seen = {}, {}
  local prefix = base and base .. sep or ""
  stem = stem or word
  local function add(k)
    if type(k) == "string" and k:match("^[%a_][%w_]*$") and k:sub(1, #stem) == stem
       and not seen[k] then
      seen[k] = true
      out[#out + 1] = prefix .. k
    end
  end
  local function add_keys(t, depth)
    if type(t) == "table" then for k in next, t do add(k) end end
    local mt = getmetatable(t)
    if type(mt) == "table" and type(mt.__index) == "table" and depth < 4 then
      add_keys(mt.__index, depth + 1)
    end
  end
  if not base then
    add_keys(env, 0)
    for _, kw in ipairs(KEYWORDS) do add(kw) end
  else
    local v = env
    for name in (base .. "."):gmatch("(.-)%.") do
      if not name:match("^[%a_][%w_]*$") then return out end
      local ok, nv = pcall(function() return v[name] end)
      if not ok or nv == nil then return out end
      v = nv
    end
    if sep == "." and type(v) ~= "table" then return out end
    add_keys(v, 0)
  end
  table.sort(out)
  return out
end

local function history_path()
  local p = os.getenv("MAILHOOK_HISTORY")
  if p then return p ~= "" and p or nil end
  local home = os.getenv("HOME")
  return home and home ~= "" and home .. "/.mailhook_history" or nil
end

-- A multi-line chunk goes to the history on one line (so that up-arrow brings
-- back the whole function, also after a restart), unless a comment or a long
-- string makes its line breaks matter.
local function history_entry(src)
  if not src:find("\n", 1, true) or src:find("--", 1, true) or src:find("%[=*%[") then
    return src
  end
  return (src:gsub("%s*\n%s*", " "))
end

local function report(msg)
  io.stderr:write(tostring(msg), "\n")
  io.stderr:flush()
end

-- run([opts]) -> exit status: on a terminal 0; from a pipe 0 when every line
-- ran, 1 when one failed (so a piped script can be checked).  opts.env: the environment to use.
function M.run(opts)
  opts = opts or {}
  local R = core.repl
  local interactive = R.interactive()
  local env = opts.env or M.environment()
  local failed = 0
  if interactive then
    local hist = history_path()
    if hist then
      local ok, err = R.history(hist)
      if not ok then report("mailhook repl: " .. err .. " (history not kept)") end
    end
    R.completer(function(word) return M.complete(word, env) end)
    M.write(string.format("mailhook %s (%s): help() lists the admin functions, Ctrl-D exits\n",
                          mh.version, _VERSION))
  end
  local buffer
  while true do
    local line, why = R.readline(buffer and PROMPT2 or PROMPT)
    if line == nil then
      if why ~= "interrupted" then break end
      buffer = nil                      -- Ctrl-C at the prompt: drop the chunk
    else
      local src = buffer and (buffer .. "\n" .. line) or line
      if not buffer and src:match("^%s*$") then goto continue end
      local fn, err = M.compile(src, env)
      if err == "incomplete" then
        buffer = src
        goto continue
      end
      buffer = nil
      if interactive and not src:lower():find("password") and not src:lower():find("secret")
         and not src:lower():find("token") then
        R.add_history(history_entry(src))
      end
      if not fn then
        report(err)
        failed = failed + 1
      else
        local r = table.pack(run(fn))
        if r[1] then
          show(r)
        else
          if r[2] == INTERRUPTED then
            report(interactive and "\ninterrupted" or "interrupted")  -- after the tty's ^C
          else
            report(r[2])
          end
          failed = failed + 1
        end
      end
    end
    ::continue::
  end
  if buffer then  -- input ended inside an unfinished chunk
    local _, err = load(buffer, "=stdin", "t", env)
    report(err or "stdin: unfinished chunk at end of input")
    failed = failed + 1
  end
  R.close()
  if interactive then return 0 end   -- Ctrl-D: a session, not a script
  return failed == 0 and 0 or 1
end

return M
