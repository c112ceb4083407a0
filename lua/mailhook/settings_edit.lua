-- mailhook.settings_edit — the editing half of mailhook.settings: update,
-- preview, the secret commands (password, token), get, format, report,
-- validate, warnings.  Not a module of its own: mailhook/settings.lua loads it
-- the first time one of these names is read, and the function it returns adds
-- them to the settings module (M), sharing that module's tables (the schema,
-- each cfg's private data, the settings held).  Use require "mailhook.settings".
local core = require "mailhook.core"
local duration = require "mailhook.duration"

return function(M, shared)
local MASK, SCHEMA, SECRET, BY_NAME, ORDER = shared.MASK, shared.SCHEMA, shared.SECRET, shared.BY_NAME, shared.ORDER
local private, admin_hashes, held = shared.private, shared.admin_hashes, shared.held
local parse_value, validate, parse_text, read_both =
  shared.parse_value, shared.validate, shared.parse_text, shared.read_both
local arg = shared.arg   -- arg(fn, name, v, "string"|"table"): a wrong type raises at fn's caller

-- Kinds written to the file in their normalised form; the others (strings,
-- durations such as "1h") are written as the user gave them.
local NORMALISE = { bool = true, enum = true, hosts = true, port = true, count = true, fingerprint = true,
                    listen = true, addresses = true }

-- Checks made when a value is saved (update), beyond parsing: what a load
-- only needs to find again.  tls_ca_file must hold a PEM certificate OpenSSL
-- can load (a folder, /dev/zero, a FIFO or a text file is refused now, not at
-- the first connection).  nil, reason when refused.
local SAVE_CHECK = {
  tls_ca_file = function(path)
    local n, err = core.fsutil.check_ca_file(path)
    if not n then return nil, (tostring(err):gsub("^tls_ca_file ", "")) end
    return true
  end,
}

-- password(cfg) -> the password (from the file, or password_command's first line) | nil, err

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- What a command wrote on stderr, fit for a message or a log: its first
-- non-blank line, the secret it printed (when known) masked, control
-- characters dropped, at most 200 characters.  nil when it wrote nothing.
local function stderr_excerpt(text, secret)
  if not text then return nil end
  local line = text:match("([^\r\n]*%S[^\r\n]*)")
  if not line then return nil end
  if secret and #secret >= 1 then
    local i = 1
    while true do
      local a, b = line:find(secret, i, true)
      if not a then break end
      line = line:sub(1, a - 1) .. MASK .. line:sub(b + 1)
      i = a + #MASK
    end
  end
  line = line:gsub("[%z\1-\31\127]", "")
  if #line > 200 then line = line:sub(1, 200) .. "..." end
  return line
end

-- How long a secret command may run and how long its line may be.  It runs
-- where the password is needed -- inside the service's delivery loop -- and
-- nothing else moves meanwhile: `sleep 1000` (a vault waiting for a prompt)
-- froze `run` and `flush`, `cat /dev/zero` grew a 600 MB line.  Past these it
-- is ended (coreutils timeout: TERM to its process group, KILL 2 s later).
M.command_limits = { seconds = 10, bytes = 65536 }

-- The first line a command prints (a secret: password_command,
-- oauth_token_command).  Its stderr is captured in a private temporary file
-- (os.tmpname: mkstemp, 0600) and never passed through: a failure is named with
-- an excerpt of it (stderr_excerpt); on success it is logged at debug level,
-- masked.
local function run_first_line(cmd, what)
  -- no temporary file possible (a read-only /tmp): stderr is dropped instead
  local made, errfile = pcall(os.tmpname)
  if not made then errfile = nil end
  local lim, t0 = M.command_limits, os.time()
  local p = io.popen("exec 2>" .. shell_quote(errfile or "/dev/null") .. "\nexec timeout -k 2 " ..
                     string.format("%d", lim.seconds) .. " /bin/sh -c " .. shell_quote(cmd), "r")
  if not p then
    if errfile then os.remove(errfile) end
    return nil, what .. " could not be started"
  end
  -- the first line, at most lim.bytes: read(1) takes what the pipe holds
  -- (stdio's buffer), so a line is returned as soon as it is complete
  local buf, n, long = {}, 0, false
  while true do
    local c = p:read(1)
    if c == nil or c == "\n" then break end
    n = n + 1
    if n > lim.bytes then long = true break end
    buf[n] = c
  end
  local line = table.concat(buf)
  local ok, how, code = p:close()
  local ef = errfile and io.open(errfile, "rb")
  local errtext = ef and ef:read(4096)
  if ef then ef:close() end
  if errfile then os.remove(errfile) end
  if line then line = line:gsub("\r$", "") end
  local said = stderr_excerpt(errtext, line ~= "" and line or nil)
  if long then
    return nil, string.format("%s printed a line over %d bytes (a password or token is shorter; ended)",
                              what, lim.bytes)
  end
  -- 124: timeout ended it with TERM; KILL, 2 s later, ends timeout itself too
  if not ok and ((how == "exit" and code == 124) or
                 ((how == "signal" and code == 9 or how == "exit" and code == 137) and
                  os.time() - t0 >= lim.seconds)) then
    return nil, string.format("%s did not finish within %d s (ended)%s", what, lim.seconds,
                              said and (": " .. said) or "")
  end
  if not ok then
    return nil, string.format("%s failed (%s %s)%s", what, tostring(how), tostring(code),
                              said and (": " .. said) or "")
  end
  if not line or line == "" then return nil, what .. " printed nothing" .. (said and (": " .. said) or "") end
  if said then core.log("debug", what .. " wrote on stderr: " .. said) end
  return line
end

-- first_line(cmd, what): run_first_line, off the caller's event loop when it
-- can wait.  In a task of a running loop (the service: a delivery's login, a
-- console Test) io.popen would stop the whole loop, deliveries and console
-- included, for as long as the command runs (up to command_limits.seconds + 2 s:
-- a `pass` waiting on gpg-agent, a vault CLI on a slow network).  There the
-- command runs in a child of this binary (core.proc.spawn) that answers on its
-- channel, and this task waits for it while the loop goes on.  Elsewhere (no
-- task, a C boundary in between, or a host program that is not mailhook) in
-- this process, as before.
local FIRST_LINE_CHILD = [[
local cmd, what, seconds, bytes = ...
local settings = require "mailhook.settings"
local run = settings.run_first_line   -- (loads the editing half, then its limits are the parent's)
settings.command_limits = { seconds = tonumber(seconds), bytes = tonumber(bytes) }
local line, err = run(cmd, what)
local ch = require("mailhook.core").proc.channel()
ch:send(line and ("+" .. line) or ("-" .. tostring(err)))
ch:close()
]]

local function first_line(cmd, what)
  -- (core.loadscript: set by the mailhook program's main.c only; in a host
  -- program, the Lua library or the C embedding, proc.spawn would start the host)
  if core.loadscript and core.proc and core.current_task() and coroutine.isyieldable() then
    local lim = M.command_limits
    local proc, chan = core.proc.spawn { "-e", FIRST_LINE_CHILD, cmd, what,
                                         string.format("%d", lim.seconds), string.format("%d", lim.bytes) }
    if proc then
      local ok, msg = pcall(chan.recv, chan)
      chan:close()
      if not ok then proc:kill("KILL") end   -- (the waiting task was cancelled)
      pcall(proc.wait, proc)
      if not ok then error(msg, 0) end
      if msg and msg:sub(1, 1) == "+" then return msg:sub(2) end
      if msg then return nil, msg:sub(2) end
      return nil, what .. " could not be run: the process that runs it ended without an answer"
    end
  end
  return run_first_line(cmd, what)
end
M.run_first_line = run_first_line   -- (the child's)

-- A command named by the settings runs with this process's rights (root's,
-- the service's): only when the settings file is one no other user could have
-- changed, owned by the running user or root and not writable by every user.
-- nil, err otherwise (a missing file: a command given directly, as preview).
local function command_allowed(cfg, what)
  local p = private[cfg]
  if not (p and p.path) then return true end
  local ok, err, info = core.fsutil.check(p.path, { follow = true, owned = true, what = "settings" })
  if ok or (info and info.code == "ENOENT") then return true end
  return nil, what .. " not run: " .. tostring(err)
end

function M.password(cfg, ...)
  core.check_options("mh.settings.password", {}, {}, select("#", ...) + 1, 1)
  arg("mh.settings.password", "cfg", cfg, "table")
  local p = private[cfg]
  if p and p.password then return p.password end
  if cfg.password_command then
    local ok, err = command_allowed(cfg, "password_command")
    if not ok then return nil, err end
    return first_line(cfg.password_command, "password_command")
  end
  if p and p.hidden then
    return nil, "the password is in " .. M.unreadable(M.secrets_path(p.path))
  end
  return nil, "no password is set (mailhook update password=... or password_command=...)"
end

-- unreadable(spath [, bare]) -> "SPATH, which this process (running as U) cannot
-- read: it is O's, mode M; ..." with the fix: the service's user (the spool's
-- owner) must read the secrets.  It said "(the service's user and root can)"
-- to root's commands, which act as the spool's owner (privdrop), and to the
-- service, whose user was the one that could not (a root:root 0600 file).
function M.unreadable(spath, bare)
  local o = core.fsutil.owner(spath)
  local me = core.maildrop.whoami() or {}
  local who = me.elogin or ("uid " .. tostring(me.euid))
  if me.uid == 0 and me.euid ~= 0 then who = who .. ", as root's commands do on this spool" end
  local sp = core.fsutil.owner(core.paths.spool)
  local svc = sp and sp.user or "the service's user"
  local what = o and string.format("it is %s's, mode %04o", o.user, o.mode) or "it cannot be looked at"
  local fix = string.format("the service's user (%s, the spool's owner) must read it: chown %s %s; chmod 600 %s",
                            svc, svc, spath, spath)
  -- a local user (not root, not the service's user): the password is not theirs to read
  if me.uid ~= 0 and me.euid ~= 0 and not (sp and sp.uid == me.euid) then
    fix = string.format("only root and the service's user (%s) may read it: run this as one of them", svc)
  end
  if bare then return string.format("this process runs as %s; %s; %s", who, what:gsub("^it is", "the file is"), fix) end
  return string.format("%s, which this process (running as %s) cannot read: %s; %s", spath, who, what, fix)
end

-- stored_password(cfg) -> the password written in the settings file | nil; never
-- runs password_command (the console masks this value in whatever it sends).
function M.stored_password(cfg)
  local p = private[cfg]
  return p and p.password or nil
end

-- token(cfg) -> a fresh OAuth token from oauth_token_command | nil, err
function M.token(cfg, ...)
  core.check_options("mh.settings.token", {}, {}, select("#", ...) + 1, 1)
  arg("mh.settings.token", "cfg", cfg, "table")
  if not cfg.oauth_token_command then
    return nil, "no oauth_token_command is set (mailhook update oauth_token_command=...)"
  end
  local ok, err = command_allowed(cfg, "oauth_token_command")
  if not ok then return nil, err end
  return first_line(cfg.oauth_token_command, "oauth_token_command")
end

-- get([path]) -> cfg for display (password = "********" when one is set) | nil, err
function M.get(path, ...)
  core.check_options("mh.settings.get", {}, {}, select("#", ...) + 1, 1)
  arg("mh.settings.get", "path", path, "string")
  local cfg, err = M.load(path)
  if not cfg then return nil, err end
  local out = {}
  for k, v in pairs(cfg) do out[k] = v end
  if private[cfg].password then out.password = MASK end
  if admin_hashes[cfg] then out.admin_password = MASK end
  return out
end

-- check_change(key, value, path) -> true, parsed | nil, err, {key =}: one change given
-- to preview or update is a known setting with a value it can take.
local function check_change(key, value, path)
  if type(key) ~= "string" or not BY_NAME[key] then
    return nil, "unknown setting '" .. tostring(key) .. "'" .. shared.near_key(key), { key = tostring(key) }
  end
  local parsed, perr = parse_value(key, value, nil, path)
  if perr then return nil, key .. ": " .. perr, { key = key } end
  return true, parsed
end

-- preview(changes [, path]) -> cfg | nil, err, {key = bad key}: what update()
-- would save, validated the same way, without writing anything (the console's
-- Test of values not saved yet).  settings.password(cfg) works on the result.
function M.preview(changes, path, ...)
  core.check_options("mh.settings.preview", {}, {}, select("#", ...) + 2, 2)
  arg("mh.settings.preview", "changes", changes, "table")
  arg("mh.settings.preview", "path", path, "string")
  path = path or M.path()
  local doc, sdoc, values = read_both(path)
  if not doc then return nil, sdoc, values or {} end   -- (values: the info, its code when unreadable)
  for key, value in pairs(changes) do
    local ok, err, info = check_change(key, value, path)
    if not ok then return nil, err, info end
    if value == "" then values[key] = nil else values[key] = value end
  end
  local cfg, secret_or_key, reason = validate(values, sdoc.hidden, path)
  if not cfg then return nil, secret_or_key .. ": " .. reason, { key = secret_or_key } end
  private[cfg] = { password = secret_or_key, path = path, hidden = sdoc.hidden }
  return cfg
end

-- warnings(cfg) -> {text...}: what `update` and `test` say on stderr about
-- valid but risky settings (empty when there is nothing to say).
function M.warnings(cfg, ...)
  core.check_options("mh.settings.warnings", {}, {}, select("#", ...) + 1, 1)
  arg("mh.settings.warnings", "cfg", cfg, "table")
  local out = require("mailhook.json").array {}   -- [] in the JSON when none (the console, --json)
  if cfg.allow_plaintext_auth then
    out[#out + 1] = "allow_plaintext_auth = true: the username and password cross the network " ..
      "in the clear whenever a session has no TLS (anyone on the path can read them); " ..
      "set allow_plaintext_auth=false once the server offers TLS"
  elseif cfg.auth and cfg.tls == "none" then
    out[#out + 1] = "auth = true with tls = none: mailhook will not send the credentials in plain " ..
      "text, so authentication fails; set tls=auto (or starttls/implicit), or, for a server " ..
      "that cannot do TLS, allow_plaintext_auth=true"
  end
  if cfg.tls_verify == false and not cfg.tls_fingerprint then
    out[#out + 1] = "tls_verify = false: the server's certificate is not checked, so anyone on " ..
      "the path can pose as the server and read the mail" .. (cfg.auth and " and the credentials" or "") ..
      "; give its CA in tls_ca_file or pin it with tls_fingerprint, and set tls_verify=true"
  end
  return out
end

-- saved_warnings(cfg) -> {text...}: what an update (the CLI's, the REPL's) says
-- once saved: warnings(cfg), and whether the settings stop mail -- `update
-- enabled=false` or `server=` at 3 a.m. made every sendmail refuse (exit 69)
-- and the queue wait, and said nothing.
function M.saved_warnings(cfg)
  local out = M.warnings(cfg)
  local ready, why = M.ready(cfg)
  if not ready then
    out[#out + 1] = why .. ": new mail is refused (sendmail exits 69) and the queue waits until this is set"
  end
  -- a `rules` set to a folder that is not there (a typo): `hook` refuses every event
  local folder = require("mailhook.rules").missing_folder(cfg)
  if folder then
    out[#out + 1] = "rules = " .. cfg.rules .. ": no such folder (" .. folder .. "): `mailhook hook` " ..
      "runs no rule and exits 1 until it exists"
  end
  return out
end

-- file_warnings(cfg) -> {text...}: what the update that returned cfg said in
-- the log about the files themselves (a group that could not be kept, a
-- secrets file narrowed from a mode open to others), for a caller with no
-- stderr to show (the console's Save puts them on the page).
function M.file_warnings(cfg)
  local p = private[cfg]
  return require("mailhook.json").array(p and p.file_warnings or {})
end

-- validate(values) -> cfg | nil, err, {key = bad key}: checks a whole table of
-- raw values (as in the file) without touching any file.
function M.validate(values)
  local cfg, secret_or_key, reason = validate(values)
  if not cfg then return nil, secret_or_key .. ": " .. reason, { key = secret_or_key } end
  private[cfg] = { password = secret_or_key }
  return cfg
end

-- How a value is written in the file.
local function format_value(key, v)
  if type(v) == "table" then
    local parts = {}
    for i, h in ipairs(v) do parts[i] = tostring(h) end
    return table.concat(parts, ", ")
  end
  if type(v) == "number" then
    if math.tointeger(v) then return string.format("%d", v) end
    local s = string.format("%.17g", v)
    -- the file has no exponents (a duration of 1e-05 would read back as an error)
    if s:find("[eE]") and v > -1 and v < 1 then s = string.format("%.99f", v):gsub("0+$", "") end
    return s
  end
  v = tostring(v)
  if v:match("^%s") or v:match("%s$") or v:sub(1, 1) == '"' then
    return '"' .. v:gsub('[\\"]', "\\%0") .. '"'
  end
  return v
end

-- update(changes [, path]) -> cfg | nil, err, {key = bad key}
-- changes: key -> value (typed, or strings as on the command line; "" unsets).
-- Everything is validated first; then the file is rewritten atomically
-- keeping its comments, the order of its lines, its mode, owner and group
-- (write_kept).  On any error nothing
-- is written.
local update, what_was_saved

-- guard(path) -> true | nil, err, info: run under the same lock, before the
-- files are read: a check of what is saved (the console's version) that no
-- other writer can slip past between the check and the write.  It must not
-- yield (the lock is held by this thread).  nowait: when another process holds
-- the lock, nil, err, {locked = true, lock = folder} at once, nothing done (the
-- service: its loop must not wait on a `mailhook update` or a script's flock;
-- the console retries on a timer).
function M.update(changes, path, guard, nowait, ...)
  -- guard(path) -> ok | nil, err, info and nowait: scripts/update.lua's (the console's lock)
  core.check_options("mh.settings.update", {}, {}, select("#", ...) + 4, 4)
  arg("mh.settings.update", "changes", changes, "table")
  arg("mh.settings.update", "path", path, "string")
  if guard ~= nil and type(guard) ~= "function" then
    error("mh.settings.update: guard must be a function (got " .. type(guard) .. ")", 2)
  end
  path = path or M.path()
  held[path] = nil   -- this process changes them: it reads them again from now on
  -- one update at a time per folder: two concurrent updates both take effect
  return (nowait and core.fsutil.try_lock or core.fsutil.with_lock)(path, update, changes, path, guard)
end

-- The text of doc with the keys of `set` given their value (values, or its
-- normalised form in norm: changed lines in place, new ones appended), and the
-- keys of `drop` removed (unset, or moved to the other file).
local function rewrite(doc, set, values, norm, drop)
  local lines, gone = {}, {}
  for i, l in ipairs(doc.lines) do lines[i] = l end
  for _, key in ipairs(set) do
    local v = norm[key]
    if v == nil then v = values[key] end
    local line = v ~= nil and (key .. " = " .. format_value(key, v)) or nil
    if doc.where[key] then
      if line then lines[doc.where[key]] = line else gone[doc.where[key]] = true end
    elseif line then
      lines[#lines + 1] = line
    end
  end
  for key in pairs(drop) do
    if doc.where[key] then gone[doc.where[key]] = true end
  end
  local out = {}
  for i, l in ipairs(lines) do
    if not gone[i] then out[#out + 1] = l end
  end
  return #out > 0 and table.concat(out, "\n") .. "\n" or ""
end

-- write_kept(file, text, secret [, conf]) -> true | nil, err, info
-- Rewrites file keeping the mode, owner and group an administrator gave it
-- (a settings file made 0640 root:daemon stays so; an update used to make it
-- 0644 and the updater's own, and a reader of that group lost it).  A file
-- not there yet: the settings 0644 (every user's sendmail reads it); the
-- secrets get the settings file's owner and group, 0600, or 0640 when the
-- settings file itself is kept from others and open to its group (that group
-- is then the service's).  The secrets never keep a bit for others: such a
-- file is written without it (0644 -> 0640), with a warning.  When the owner
-- cannot be kept (EPERM: not root) nothing is written and the error says so.
-- A symbolic link is followed: its target is rewritten, the link kept.
-- The file warnings of the update under way (update fills it, write_kept adds
-- to it, update keeps it with its cfg: file_warnings); updates are one at a
-- time (with_lock) and synchronous, so one list serves.
local file_notes

local function file_warn(text)
  core.log("warn", text)
  if file_notes then file_notes[#file_notes + 1] = text end
end

local function write_kept(file, text, secret, conf)
  -- a settings file that is a symbolic link (to a folder under configuration
  -- management, say): the file it names is rewritten, the link stays.  Only a
  -- link root or this user made: one planted by another user (who may write
  -- the folder) is replaced as before, never followed to /etc/shadow.
  local l = core.fsutil.owner(file, true)
  if l and l.link and (l.uid == 0 or l.uid == core.maildrop.whoami().euid) then
    local target = core.fsutil.realpath(file)
    local tst = target and core.fsutil.owner(target)
    if tst and tst.regular then file = target end    -- never a rename over /dev/null
  end
  local st = core.fsutil.owner(file)
  local mode, opts = secret and 384 or 420, {}
  if st then
    mode, opts.uid, opts.gid = st.mode & 511, st.uid, st.gid      -- 0777: no setuid, setgid, sticky
    if secret and mode & 7 ~= 0 then
      file_warn(string.format("%s was readable by other users (mode %04o): written %04o " ..
                                     "(the secrets are for the service alone)", file, mode, mode & 504))
      mode = mode & 504                                             -- 0770
    end
    if not secret and mode & 2 ~= 0 then
      -- a settings file any user may write is refused by the service (settings.unsafe)
      file_warn(string.format("%s was writable by any user (mode %04o): written %04o (it decides where " ..
                              "the password is sent)", file, mode, mode & ~2))
      mode = mode & ~2
    end
  elseif secret and conf then
    local cst = core.fsutil.owner(conf)
    if cst then
      opts.uid, opts.gid = cst.uid, cst.gid
      if cst.mode & 4 == 0 and cst.mode & 32 ~= 0 then mode = 416 end  -- 0640 when the conf is 0640-ish
    end
  end
  local ok, err, info = core.fsutil.write_atomic(file, text, mode, opts)
  if not ok and info and info.code == "EPERM" and st and st.uid == core.maildrop.whoami().euid then
    -- the file is this user's own; only its group cannot be kept (this user is
    -- not a member: root's update, run as the spool's owner, of a file chowned
    -- to that owner alone).  The file stays this user's, in this user's group,
    -- which is given none of the old group's rights it did not have: no group
    -- bit for the secrets, no group write for the settings.
    local m2 = secret and (mode & ~56) or (mode & ~16)                 -- ~0070, ~0020
    ok, err, info = core.fsutil.write_atomic(file, text, m2, { uid = st.uid })
    if ok then
      local now = core.fsutil.owner(file)
      file_warn(string.format("%s: its group %s could not be kept (this update runs as %s, not a member): " ..
                                     "now %s:%s, mode %04o", file, st.group, now and now.user or "?",
                                     now and now.user or "?", now and now.group or "?", m2))
    end
  end
  if not ok and info and info.code == "EPERM" and (st or opts.uid) then
    local o = st or core.fsutil.owner(conf)
    local me = core.maildrop.whoami()
    local who = me.elogin or tostring(me.euid)
    return nil, string.format("%s: cannot keep its owner %s:%s: this update runs as %s, which may " ..
      "not give a file to another user or group (root works as the spool's owner: give the file to " ..
      "%s with chown, or run the update as %s); nothing was changed", file, o.user, o.group, who, who,
      o.user), info
  end
  if not ok and info and (info.code == "EACCES" or info.code == "EROFS") then
    -- "FILE: Permission denied" for a file this user may well write: what is
    -- written is a new copy in the folder, renamed over the file
    local dir = file:match("^(.*)/[^/]*$") or "."
    if dir == "" then dir = "/" end
    local me = core.maildrop.whoami()
    return nil, string.format("%s: cannot write: %s (a new copy is made in %s and renamed over it: " ..
      "that folder must be writable%s); nothing was changed", file,
      info.code == "EROFS" and "read-only file system" or "Permission denied", dir,
      info.code == "EACCES" and (" by " .. (me.elogin or tostring(me.euid))) or ""), info
  end
  return ok, err, info
end

-- what_was_saved(err, info, failed, other) -> err with which file holds what:
-- a write that failed before its rename left the old file whole (said, unless
-- write_kept said "nothing was changed" already); one whose folder fsync failed
-- has the new file in place, not yet durable.  other: the file saved before
-- (the secrets, written first), or the settings file not written because the
-- secrets failed.  The caller then knows it must not take the update as lost
-- or as made: "mailhook update: FILE: No space left on device" said neither.
function what_was_saved(err, info, failed, other)
  local msg = err
  if info and info.replaced then
    msg = msg .. "; the new file is in place, but may not survive a power cut: run the update again"
  elseif not tostring(err):find("nothing was changed", 1, true) then
    msg = msg .. "; not saved: the old file is kept, whole"
  end
  if other and other ~= failed then
    if failed:find("%.secrets$") and not (info and info.replaced) then
      msg = msg .. " (" .. other .. " was not written either)"
    elseif not failed:find("%.secrets$") then
      msg = msg .. " (" .. other .. " was saved already: its new values are in use)"
    end
  end
  return msg
end

function update(changes, path, guard)
  file_notes = {}
  if guard then
    local ok, gerr, ginfo = guard(path)
    if not ok then return nil, gerr, ginfo or {} end
  end
  local doc, sdoc, values = read_both(path)
  if not doc then return nil, sdoc, values or {} end   -- (values: the info, its code when unreadable)
  local spath = M.secrets_path(path)
  if sdoc.hidden then
    return nil, spath .. ": cannot read: Permission denied: " .. M.unreadable(spath, true), { code = "EACCES" }
  end
  local keys, norm = {}, {}
  for key, value in pairs(changes) do
    local ok, parsed, info = check_change(key, value, path)
    if not ok then return nil, parsed, info end
    if parsed ~= nil and SAVE_CHECK[key] then
      local ok, why = SAVE_CHECK[key](parsed)
      if not ok then return nil, key .. ": " .. why, { key = key } end
    end
    keys[#keys + 1] = key
    if NORMALISE[BY_NAME[key][2]] and parsed ~= nil then norm[key] = parsed end
  end
  table.sort(keys, function(a, b) return ORDER[a] < ORDER[b] end)
  -- the new set of values, validated as a whole
  for _, key in ipairs(keys) do
    local v = changes[key]
    if v == "" then values[key] = nil else values[key] = v end   -- false is a value, not "unset"
  end
  local cfg, secret_or_key, reason = validate(values, nil, path)
  if not cfg then return nil, secret_or_key .. ": " .. reason, { key = secret_or_key } end
  -- the settings file gets the other keys and loses every secret one (a file
  -- written before the split had the password: it moves to the secrets file)
  local plain, secret, moved = {}, {}, {}
  for _, key in ipairs(keys) do
    if SECRET[key] then secret[#secret + 1] = key else plain[#plain + 1] = key end
  end
  for key in pairs(SECRET) do
    if doc.where[key] then
      moved[key] = true
      if changes[key] == nil and not sdoc.where[key] then secret[#secret + 1] = key end
    end
  end
  table.sort(secret, function(a, b) return ORDER[a] < ORDER[b] end)
  local textv = rewrite(doc, plain, values, norm, moved)
  local stext = (#secret > 0 or next(sdoc.where)) and rewrite(sdoc, secret, values, norm, {}) or nil
  -- what we write must read back, and load() must accept it
  local again, perr = parse_text(textv, path)
  if not again then return nil, perr, {} end
  local sagain = { values = {} }
  if stext then
    sagain, perr = parse_text(stext, spath, true)
    if not sagain then return nil, perr, {} end
  end
  local merged = {}
  for k, v in pairs(again.values) do merged[k] = v end
  for k, v in pairs(sagain.values) do merged[k] = v end
  local ok2, bad, why = validate(merged, nil, path)
  if not ok2 then return nil, bad .. ": " .. why .. " (as it would be written)", { key = bad } end
  -- the secrets first: a crash in between leaves the password in both files
  -- (the secrets file wins on load), never in neither
  if stext and (#secret > 0 or next(moved)) then
    local ok, werr, info = write_kept(spath, stext, true, path)
    if not ok then return nil, what_was_saved(werr, info, spath, path), info end
  end
  local ok, werr, info = write_kept(path, textv, false)
  if not ok then
    return nil, what_was_saved(werr, info, path, stext and (#secret > 0 or next(moved)) and spath), info
  end
  -- a hand-written `port =` line this update kept (it removes only the keys it
  -- sets): unset, as load() warns (the console's Save shows it: file_warnings)
  for _, t in ipairs(shared.empty_warnings(again, path, cfg)) do file_warn(t) end
  for _, t in ipairs(shared.empty_warnings(sagain, spath, cfg)) do file_warn(t) end
  private[cfg] = { password = secret_or_key, path = path, file_warnings = file_notes }
  return cfg
end

-- report(cfg [, path]) -> {path =, settings = {key = value, ...}, password_set =,
-- admin_password_set =}: the facts `mailhook settings` prints, as data (its
-- --json, update --json, the console).  Durations in seconds; the password and
-- the admin hash never appear, only whether they are set.
function M.report(cfg, path)
  local p = private[cfg]
  local out = { path = path or (p and p.path) or M.path(), settings = {},
                password_set = (p and p.password ~= nil) or cfg.password == MASK,
                admin_password_set = admin_hashes[cfg] ~= nil or cfg.admin_password == MASK }
  for _, sch in ipairs(SCHEMA) do
    local key = sch[1]
    if key ~= "password" and key ~= "admin_password" then out.settings[key] = cfg[key] end
  end
  return out
end

-- lines(cfg_or_display) -> {"key = value", ...} in display order, password masked.
function M.format(cfg)
  local out = {}
  local secret = private[cfg] and private[cfg].password or (cfg.password and MASK)
  for _, s in ipairs(SCHEMA) do
    local key, v = s[1], cfg[s[1]]
    if key == "password" then v = secret and MASK or nil end
    if key == "admin_password" then v = (admin_hashes[cfg] or cfg.admin_password) and MASK or nil end
    local shown
    if v == nil then
      shown = key == "auth_mechanism" and "auto (strongest offered)" or "(not set)"
    elseif s[2] == "duration" then
      shown = duration.format(v)
    elseif key == "helo_name" and v == core.fsutil.hostname() and not v:find("[.%[]") then
      -- a short host name is not what EHLO says (smtp.helo: its full name,
      -- RFC 5321 4.1.1.1); `settings` showed "vm" where the server saw
      -- "vm.localdomain".  Not looked up here: `settings` never waits on DNS.
      shown = format_value(key, v) .. " (a short name: EHLO sends the full one, from /etc/hosts or DNS, else " ..
              v .. ".localdomain)"
    else
      shown = format_value(key, v)
    end
    out[#out + 1] = key .. " = " .. shown
  end
  return out
end

end
