-- mailhook update KEY=VALUE ... — the seed's Update button: validate every
-- change, save the settings file atomically (its mode, owner and group kept),
-- print the settings
-- with the password masked.  `KEY=` unsets KEY; `password=-` reads the
-- password from the first line of stdin (keeps it out of the shell history).
-- Risky settings that are valid (allow_plaintext_auth = true) are warned about
-- on stderr after the save.
-- Exit 0 when saved; 2 when anything is invalid (nothing is written then);
-- 1 when writing failed (I/O error: the old file is left as it was).
-- `admin_password=-` reads the console's password on stdin and stores only its
-- salted hash.  --json: the result as one JSON document ({ok, path, settings,
-- password_set} or {ok = false, error, key}); the console runs this script with
-- a table, {changes = {key = value}}, and gets that result table back.
local settings = require "mailhook.settings"
local args = require "mailhook.args"

local api = type((...)) == "table" and (...) or nil
local argv = api and {} or { ... }
local json = false
for i = #argv, 1, -1 do
  if argv[i] == "--json" then json = true; table.remove(argv, i) end
end
if not api and #argv == 0 then
  -- [--json] as in `mailhook update --help` (this line left it out)
  io.stderr:write("usage: mailhook update [--json] KEY=VALUE ...\nkeys: ", table.concat(settings.keys, " "), "\n")
  if json then io.write(require("mailhook.json").encode { ok = false, usage = true, error = "no KEY=VALUE given" }, "\n") end
  return 2
end
-- typed(key, read) -> what read() returns: on a terminal, a prompt on stderr and
-- the echo off while it reads (the README's `password=-` waited in silence, and
-- showed the password as it was typed); from a pipe, read() as it is.
local function typed(key, read)
  local fsutil = require("mailhook.core").fsutil
  if not fsutil.isatty(0) then return read() end
  -- the echo off first, then the prompt (as getpass(3) does): what is typed
  -- once the prompt shows is neither echoed nor dropped (turning echo off
  -- flushes what the terminal holds unread: after the prompt, a quick typist's
  -- password was shown, then lost)
  -- (a stop, Ctrl-Z then `fg`, gives the terminal back as it was while stopped, drops
  -- what was typed before it and says so, with the prompt again: core.fsutil.echo)
  local was = fsutil.echo(0, false, "\nmailhook update: " .. key ..
                          " (what was typed before the stop is dropped: type it again): ")
  io.stderr:write("mailhook update: ", key, " (not shown as you type; Enter ends it): ")
  io.stderr:flush()
  local ok, v = pcall(read)
  if was then fsutil.echo(0, true) end
  io.stderr:write("\n")
  if not ok then error(v, 0) end
  return v
end

-- one_line() -> the bytes of stdin's first line (a table of them), at most
-- 4097: one more says the line is over 4 KiB.  `update password=- < /dev/zero`
-- is refused, not read forever (admin_password=- read it with io.read("l"):
-- memory until it ran out, then a traceback).
local function one_line()
  local buf = {}
  while #buf <= 4096 do
    local c = io.read(1)
    if not c or c == "\n" then break end
    buf[#buf + 1] = c
  end
  return buf
end

local changes = {}
for _, a in ipairs(argv) do
  local key, value = a:match("^([^=]+)=(.*)$")
  if not key then return args.fail("update", "expected KEY=VALUE, got '" .. a .. "'") end
  if changes[key] ~= nil then return args.fail("update", "'" .. key .. "' given twice") end
  if key == "password" and value == "-" then
    local buf = typed(key, one_line)
    if #buf > 4096 then return args.fail("update", "password: the line on stdin is over 4 KiB") end
    value = table.concat(buf):gsub("\r$", "")
    if value == "" then return args.fail("update", "password: nothing on stdin") end
  end
  if key == "admin_password" and value == "-" then
    local buf = typed(key, one_line)
    if #buf > 4096 then return args.fail("update", "admin_password: the line on stdin is over 4 KiB") end
    value = table.concat(buf)
    if value == "" then return args.fail("update", "admin_password: nothing on stdin") end
  end
  changes[key] = value
end
if api then changes = api.changes or {} end
-- the console's password: only its hash is ever stored (a hash given as it is stays)
local core = require "mailhook.core"
local admin_pw = changes.admin_password
if type(admin_pw) == "string" and admin_pw ~= "" and not core.pwhash.valid(admin_pw) then
  local h, herr = core.pwhash.make(admin_pw)
  if not h then return args.fail("update", "admin_password: " .. tostring(herr), 1) end
  changes.admin_password = h
end
-- api.guard: the console's version check, made under the update's own lock
-- api.nowait: the console's, which must not stop the service while another
-- process holds the lock (the result says locked; it retries)
local cfg, err, info = settings.update(changes, nil, api and api.guard, api and api.nowait)
if api or json then
  local result = cfg and settings.report(cfg) or { ok = false, error = err, key = info and info.key, path = settings.path(),
                                                   conflict = info and info.conflict or nil,
                                                   locked = info and info.locked or nil, lock = info and info.lock }
  result.ok = cfg ~= nil
  -- what the CLI says on stderr, as data: the console's Save shows it on the page
  if cfg then
    result.warnings = require("mailhook.json").array(settings.saved_warnings(cfg))
    for _, w in ipairs(settings.file_warnings(cfg)) do result.warnings[#result.warnings + 1] = w end
  end
  if api then return result end
  io.write(require("mailhook.json").encode(result), "\n")
  return cfg and 0 or ((info and info.code) and 1 or 2)
end
-- 2: something invalid (a key, a value, the file's syntax); 1: the disk failed
if not cfg then return args.fail("update", err, (info and info.code) and 1 or 2) end
io.write("# saved ", settings.path(), "\n")
for _, line in ipairs(settings.format(cfg)) do io.write(line, "\n") end
-- valid but risky (allow_plaintext_auth = true, ...): said every time, on stderr
for _, w in ipairs(settings.saved_warnings(cfg)) do io.stderr:write("mailhook update: warning: ", w, "\n") end
-- A service running on this spool keeps the settings it loaded until SIGHUP
-- (the console's Save reloads it; this command does not signal a process it
-- may not own): say so, or a new password saved at 3 a.m. is not used and the
-- queue keeps waiting on the old one.
local pid = core.admin.lock_holder(core.paths.spool)
if pid then
  io.stderr:write(string.format("mailhook update: note: the service running on %s (pid %d) uses the new " ..
    "settings once reloaded: systemctl reload mailhook (or kill -HUP %d)\n", core.paths.spool, pid, pid))
end
return 0
