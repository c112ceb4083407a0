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

-- An error shown as its message alone (no traceback): a refusal, not a crash.
local Plain = { __tostring = function(e) return e.msg end }
local function plain_error(msg) error(setmetatable({ msg = msg }, Plain), 0) end


local QUEUE_ROWS = 100   -- queue() shows this many, then says how many more

-- UTC in ISO 8601 with the offset, as log lines and `mailhook queue show` write it.
local function utc(t)
  return type(t) == "number" and t > 0 and os.date("!%Y-%m-%dT%H:%M:%S+00:00", math.floor(t)) or nil
end

-- queue([which]) -> one row per message ("pickup", "failed" or both): id,
-- state, from, to, attempts, queued and next attempt (UTC), last reply.
local function queue_rows(which)
  local q = require("mailhook.queue")
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

-- test(): the report `mailhook test` prints (mailhook.testreport), as an object
-- the REPL shows as that text; its fields (ok, info, error, stage, hint, ...)
-- stay at hand for a script.  Warnings about the settings go to stderr, as the
-- CLI writes them.
local function admin_test(opts)
  if type(opts) == "string" then opts = { to = opts } end
  if opts ~= nil and type(opts) ~= "table" then
    error("test: expected nil, a table {to = ..., timeout = ...} or an address, got " .. type(opts), 2)
  end
  opts = opts or {}
  local settings = require("mailhook.settings")
  local cfg, err = settings.load()
  if not cfg then plain_error("test: " .. tostring(err)) end
  local r = require("mailhook.testreport").run { cfg = cfg, to = opts.to, timeout = opts.timeout }
  for _, w in ipairs(r.warnings) do io.stderr:write("mailhook test: warning: ", w, "\n") end
  return r
end

-- The admin functions, in the order help() lists them: name, usage, summary, fn,
-- and the longer text help(fn) adds.
M.commands = {
  { "help", "help() / help(fn) / help \"name\"", "list these functions; help on one function",
    function(...) return M.help(...) end,
    "help() lists the admin functions; help(fn) or help \"mh.sleep\" explains one function\n" ..
    "(an admin function, or one of mh's: mh.sleep, mh.queue.list, ...); help(mh) lists mh's." },
  { "test", "test() / test{to = ADDR, timeout = S}",
    "connect, TLS, auth, check From; with to, send a test message (waits)",
    admin_test,
    "The Test button, as `mailhook test`: prints the same report (server, security,\n" ..
    "certificate, capabilities, auth, From accepted, result, and on failure the stage,\n" ..
    "the error and a hint).  Returns it as an object: r.ok, r.info (security,\n" ..
    "tls_version, cipher, cert, capabilities, auth_mechanism, ...), r.report; on failure\n" ..
    "r.error, r.stage, r.hint.  test \"ADDR\" also sends a test message.  Each wait is\n" ..
    "bounded by timeout (30 s)." },
  { "update", "update{KEY = VALUE, ...}", "validate and save settings; returns them, password masked",
    function(changes)
      if type(changes) ~= "table" then
        error("update: expected a table of settings, e.g. update{port = 587}", 2)
      end
      local settings = require("mailhook.settings")
      local cfg, err, info = settings.update(changes)
      if not cfg then return nil, err, info end
      for _, w in ipairs(settings.saved_warnings(cfg)) do
        io.stderr:write("mailhook update: warning: ", w, "\n")
      end
      return settings.get()   -- what was saved, password masked
    end,
    "As `mailhook update`: every change validated, then the whole, then saved atomically\n" ..
    "(its mode, owner and group kept).  Returns the saved settings (password masked), or nil, message,\n" ..
    "{key = ...} and nothing is written.  update{password = \"...\"} is kept out of the history." },
  { "settings", "settings()", "the current settings, password masked",
    function() return require("mailhook.settings").get() end,
    "Every key with its default filled in; the password shows as \"********\"." },
  { "enqueue", "enqueue{to = ..., subject = ..., text = ...}",
    "build a message and queue it durably; returns its id (waits)",
    function(msg)
      if type(msg) ~= "table" then
        error("enqueue: expected a message table, e.g. enqueue{to = 'a@b', subject = 's', text = 't'}", 2)
      end
      return mh.enqueue(msg)
    end,
    "As mh.enqueue{...}: from, to, cc, bcc, subject, text, html, attachments =\n" ..
    "{{path = ...}}, headers.  Returns the id once the message is durable, or nil,\n" ..
    "message, info (a refusal names the setting, e.g. enabled = false)." },
  { "queue", "queue() / queue \"failed\"", "the messages in the spool: id, state, to, attempts, last reply",
    function(which) return queue_rows(which) end,
    "One row per message: id, state, from, to, attempts, queued and next attempt\n" ..
    "(UTC, ISO 8601), last reply, reason.  mh.queue.show(id), mh.queue.remove(id),\n" ..
    "mh.queue.retry(id) act on one." },
}

-- Help on the runtime's functions: name -> usage, text.  help(fn) finds fn's
-- name by looking these up in the modules already loaded (a function in hand
-- was loaded), so asking never loads anything.
M.DOCS = {
  ["mh.spawn"] = { "mh.spawn(fn, ...) -> task", "run fn as a new task; task:wait() (waits: true, results... or false, the value raised), task:cancel(), task:status()" },
  ["mh.sleep"] = { "mh.sleep(seconds)", "pause this task (waits); other tasks, timers and the prompt go on" },
  ["mh.every"] = { "mh.every(seconds, fn) -> handle", "run fn every so many seconds, each time as a new task; handle:stop() ends it" },
  ["mh.resolve"] = { "mh.resolve(host) -> {address..., canonical = name} | nil, err, info", "every address of a name, and its canonical name (getaddrinfo; waits)" },
  ["mh.now"] = { "mh.now() -> seconds", "wall-clock time (Unix seconds, with a fraction)" },
  ["mh.monotonic"] = { "mh.monotonic() -> seconds", "a clock that never steps: for measuring durations" },
  ["mh.current_task"] = { "mh.current_task() -> task", "the task running this code" },
  ["mh.enqueue"] = { "mh.enqueue{to =, subject =, text =, ...} -> id | nil, err, info", "build a message and queue it durably (waits until fsynced)" },
  ["mh.on"] = { "mh.on(event, fn)", "call fn(ev) for each mh.emit(event, ...) (rules)" },
  ["mh.emit"] = { "mh.emit(event, fields)", "run the handlers of event with fields" },
  ["mh.log.debug"] = { "mh.log.debug(...)", "a timestamped line on stderr (or syslog), level debug" },
  ["mh.log.info"] = { "mh.log.info(...)", "a timestamped line on stderr (or syslog), level info" },
  ["mh.log.warn"] = { "mh.log.warn(...)", "a timestamped line on stderr (or syslog), level warn" },
  ["mh.log.error"] = { "mh.log.error(...)", "a timestamped line on stderr (or syslog), level error" },
  ["mh.log.level"] = { "mh.log.level([name]) -> name", "the log level; mh.log.level \"debug\" sets it" },
  ["mh.log.syslog"] = { "mh.log.syslog(on [, ident])", "send log lines to syslog instead of stderr" },
  ["mh.settings.get"] = { "mh.settings.get([path]) -> settings | nil, err", "the settings with defaults, password masked" },
  ["mh.settings.load"] = { "mh.settings.load([path]) -> cfg | nil, err", "the settings as the service uses them (no password in the table)" },
  ["mh.settings.update"] = { "mh.settings.update{KEY = VALUE, ...} -> cfg | nil, err, {key =}", "validate and save atomically (mode, owner and group kept)" },
  ["mh.settings.path"] = { "mh.settings.path() -> file", "the settings file in use (-c, $MAILHOOK_CONF or the default)" },
  ["mh.settings.resolve"] = { "mh.settings.resolve(cfg, path) -> path", "a relative path from the folder of the settings file cfg was read from" },
  ["mh.settings.validate"] = { "mh.settings.validate(values) -> cfg | nil, err, {key =}", "check settings without touching a file" },
  ["mh.settings.format"] = { "mh.settings.format(cfg) -> {\"key = value\", ...}", "display lines, password masked" },
  ["mh.settings.warnings"] = { "mh.settings.warnings(cfg) -> {text...}", "what update and test warn about (allow_plaintext_auth = true, ...)" },
  ["mh.queue.list"] = { "mh.queue.list([\"pickup\"|\"failed\"]) -> iterator", "for e in mh.queue.list() do ... end: every message, oldest first" },
  ["mh.queue.maildrop"] = { "mh.queue.maildrop([dir [, limit]]) -> {entry...}, total", "what local users handed over (maildrop/) and no service adopted yet (waits)" },
  ["mh.queue.show"] = { "mh.queue.show(id) -> entry | nil, err, info", "one message: envelope, attempts, last reply, file" },
  ["mh.queue.remove"] = { "mh.queue.remove(id [, dir]) -> true | nil, err, info", "delete a message from pickup/ or failed/, or a file waiting in maildrop/ (of the spool dir, default -s)" },
  ["mh.queue.retry"] = { "mh.queue.retry(id [, dir]) -> true | nil, err, info", "move a failed/ message back to pickup/, due now (spool dir, default -s)" },
  ["mh.queue.flush"] = { "mh.queue.flush([opts]) -> summary | nil, err, summary", "deliver the queue now and wait (asks a running service)" },
  ["mh.queue.check_id"] = { "mh.queue.check_id(id) -> id | nil, err", "whether id is a message id as `mailhook queue` lists them" },
  ["mh.smtp.test"] = { "mh.smtp.test{to = nil, timeout = 30} -> report | nil, err, info", "the Test button's engine (waits); test() prints its report" },
  ["mh.smtp.connect"] = { "mh.smtp.connect(cfg) -> session | nil, err, info", "DNS, TLS, EHLO, AUTH (waits); session:send{from =, to =, data =}, :quit()" },
  ["mh.template"] = { "mh.template(source [, opts])(context) -> text, missing", "fill {{name}} fields; values escaped, never a new header line" },
  ["mh.message"] = { "mh.message{from =, to =, subject =, text =, ...} -> message | nil, err", "build an RFC 5322 message (msg:bytes(), msg:envelope())" },
}

-- The value a dotted name ("mh.queue.list") stands for, through loaded modules
-- only (rawget: never loads one); nil when it is not loaded.
local function loaded_value(name)
  local v = mh
  local first = true
  for part in name:gmatch("[^.]+") do
    if first then
      first = false
      if part ~= "mh" then return nil end
    else
      if type(v) ~= "table" then return nil end
      local nv = rawget(v, part)
      if nv == nil and v == mh then
        local mod = package.loaded["mailhook." .. part]
        if type(mod) == "table" or type(mod) == "function" then nv = mod end
      end
      if nv == nil then
        local mt = getmetatable(v)
        if type(mt) == "table" and type(mt.__index) == "table" then nv = rawget(mt.__index, part) end
      end
      v = nv
    end
  end
  return v
end

-- The documented name of fn (an admin function, or one of M.DOCS: a function,
-- or a callable module such as mh.template), or nil.
local function name_of(fn)
  for _, c in ipairs(M.commands) do if c[4] == fn then return c[1], c end end
  local names = {}
  for name in pairs(M.DOCS) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    if loaded_value(name) == fn then return name end
  end
  return nil
end

-- help([what]): without an argument one line per admin function; with a
-- function (or its name as a string: "test", "mh.sleep") that function's usage
-- and what it does; with mh or one of its modules, the documented functions in it.
function M.help(...)
  local lines = {}
  if select("#", ...) == 0 then
    lines[1] = "admin functions (results are printed; Ctrl-C interrupts, Ctrl-D exits):"
    for _, c in ipairs(M.commands) do
      lines[#lines + 1] = string.format("  %-45s %s", c[2], c[3])
    end
    lines[#lines + 1] = "  mh.*  the runtime: mh.sleep(s), mh.resolve(host), mh.spawn(fn), mh.every(s, fn), mh.log.info(...)"
    lines[#lines + 1] = "help(fn) or help \"name\" explains one function (help(mh.sleep), help \"mh.queue.list\"); help(mh) lists mh's"
    M.write(table.concat(lines, "\n") .. "\n")
    return
  end
  local what = ...
  local name, cmd
  if type(what) == "string" then
    for _, c in ipairs(M.commands) do if c[1] == what then name, cmd = c[1], c end end
    if not name and M.DOCS[what] then name = what end
    if not name and M.DOCS["mh." .. what] then name = "mh." .. what end
  elseif type(what) == "function" or type(what) == "table" then
    name, cmd = name_of(what)
  end
  if cmd then
    lines[1] = cmd[2] .. " — " .. cmd[3]
    if cmd[5] then lines[2] = cmd[5] end
  elseif name then
    lines[1] = M.DOCS[name][1]
    lines[2] = "  " .. M.DOCS[name][2]
  elseif type(what) == "table" then
    -- a module: its documented functions (mh: every one, by module)
    local prefix
    if what == mh then prefix = "mh."
    else
      for k, v in pairs(package.loaded) do
        if v == what and type(k) == "string" and k:match("^mailhook%.[%w_]+$") then
          prefix = "mh." .. k:sub(10) .. "."
        end
      end
    end
    if not prefix then plain_error("help: no help for this table (help() lists what has help)") end
    local names = {}
    for n in pairs(M.DOCS) do if n:sub(1, #prefix) == prefix then names[#names + 1] = n end end
    table.sort(names)
    for _, n in ipairs(names) do lines[#lines + 1] = string.format("  %-52s %s", M.DOCS[n][1], M.DOCS[n][2]) end
    if #lines == 0 then plain_error("help: no help for this table (help() lists what has help)") end
  elseif type(what) == "function" then
    local info = debug.getinfo(what, "S")
    if info.what == "C" then
      lines[1] = "a C function (no help text for it; help() lists the admin functions)"
    else
      lines[1] = string.format("a Lua function defined at %s:%d (no help text for it)", info.short_src,
                               info.linedefined)
    end
  else
    plain_error("help: no help for " .. (type(what) == "string" and ("'" .. what .. "'") or ("a " .. type(what))) ..
                " (help() lists the admin functions)")
  end
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

-- lazy_modules() -> the names of mh's submodules (lua/mailhook/NAME.lua), loaded or not.
function M.lazy_modules()
  local list = {}
  local ok, names = pcall(core.rstate.list, (core.paths and core.paths.lua or ".") .. "/mailhook")
  if ok and type(names) == "table" then
    for _, f in ipairs(names) do
      local n = f:match("^([%a_][%w_]*)%.lua$")
      if n and n ~= "init" then list[#list + 1] = n end
    end
  end
  return list
end

-- Whether base ("mh", "x.y") names the mailhook module in env (rawget only).
local function v_is_mh(env, base)
  local v = env
  for name in (base .. "."):gmatch("(.-)%.") do
    if type(v) ~= "table" then return false end
    local nv = rawget(v, name)
    if nv == nil then
      local mt = getmetatable(v)
      if type(mt) == "table" and type(mt.__index) == "table" then nv = rawget(mt.__index, name) end
    end
    v = nv
  end
  return v == mh
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
  elseif sep == "." and v_is_mh(env, base) then
    -- mh's modules load on first use (mh.smtp): offer them before they are touched,
    -- by their files, without loading any
    add_keys(mh, 0)
    for _, m in ipairs(M.lazy_modules()) do add(m) end
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
