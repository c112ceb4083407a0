-- mailhook sendmail [options] [RCPT...] — the sendmail(8) interface, with
-- Postfix's sendmail(1) as the reference: every flag a caller passes is
-- accepted (docs/sendmail.md has the table), the ones with a meaning here are
-- honoured, the rest ignored; only what cannot be done safely is refused.
-- Also what the binary is called as sendmail, mailq (-bp) or newaliases (-bi)
-- (runtime/main.c).
--
-- The message on stdin streams into the spool in 64 KiB chunks
-- (runtime/intake.c): only its header block (at most 4 MB) is held, to work
-- out the envelope and the headers intake adds (lua/mailhook/submit.lua).  A
-- caller that may not write the spool (not root, not its owner) goes through
-- the setgid drop program into SPOOL/maildrop/, which the service adopts.
--
-- Exit codes are sysexits(3)'s: 0 queued, 64 usage, 65 bad message or
-- address, 69 outgoing mail disabled, 73 spool not writable, 75 temporary
-- failure (disk full, I/O error: try again), 77 the queue is not the caller's
-- to read, 78 bad settings.
local core = require "mailhook.core"
local submit = require "mailhook.submit"

local EX = submit.EX
local EX_NOPERM = 77

local function fail(code, msg)
  io.stderr:write("mailhook sendmail: ", msg, "\n")
  return code
end

local function warn(msg) io.stderr:write("mailhook sendmail: ", msg, "\n") end

-- Postfix's getopt list (sendmail.c GETOPT_LIST) "A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx":
-- the letters that take a value (attached, -fADDR, or the next argument).
local WITH_VALUE = { A = 1, B = 1, C = 1, F = 1, L = 1, N = 1, O = 1, R = 1, V = 1, X = 1, b = 1, e = 1,
                     f = 1, h = 1, o = 1, p = 1, r = 1 }
local FLAG = { G = 1, I = 1, U = 1, c = 1, i = 1, m = 1, n = 1, t = 1, v = 1, x = 1 }

-- parse(argv) -> opts | nil, exit code, message
-- opts: mode ("enqueue", "mailq", "smtp", "newaliases", "verify", "flush",
-- "ignore"), t, dot, from, fullname, notify, ret, envid, verbose, rcpts.
local function parse(argv)
  local o = { mode = "enqueue", dot = true, rcpts = {} }
  local i, only_rcpts = 1, false
  local function value_of(letter, rest)
    if rest ~= "" then return rest end
    i = i + 1
    if argv[i] == nil then return nil end
    return argv[i]
  end
  while i <= #argv do
    local a = argv[i]
    if only_rcpts or a == "-" or a:sub(1, 1) ~= "-" then
      o.rcpts[#o.rcpts + 1] = a
    elseif a == "--" then
      only_rcpts = true
    elseif a:sub(1, 2) == "-q" then
      -- -q, -qTIME (30m: an interval for a daemon), -qR SITE, -qI ID: deliver
      -- now; Postfix's -q is no getopt option (its value only ever attached)
      o.mode = "flush"
    else
      local k = 2
      while k <= #a do
        local c = a:sub(k, k)
        if FLAG[c] then
          if c == "t" then o.t = true
          elseif c == "i" then o.dot = false
          elseif c == "v" then o.verbose = true
          elseif c == "I" then o.mode = "newaliases"
          end   -- G U c m n x: accepted, nothing to do (docs/sendmail.md)
          k = k + 1
        elseif WITH_VALUE[c] then
          local v = value_of(c, a:sub(k + 1))
          if v == nil then return nil, EX.USAGE, "option -" .. c .. " needs a value" end
          if c == "f" or c == "r" then o.from = v
          elseif c == "F" then o.fullname = v
          elseif c == "N" then
            o.notify = submit.dsn_notify(v)
            if not o.notify then warn("bad -N value '" .. submit.shown(v) .. "' (NEVER, or SUCCESS, FAILURE, DELAY): ignored") end
          elseif c == "R" then
            o.ret = submit.dsn_ret(v)
            if not o.ret then warn("bad -R value '" .. submit.shown(v) .. "' (full or hdrs): ignored") end
          elseif c == "V" then
            if #v > 100 or v:find("[%c]") then warn("bad -V value (at most 100 printable characters): ignored")
            else o.envid = v end
          elseif c == "o" then
            if v == "i" then o.dot = false end   -- -oi; -oem, -odb, -oQ...: nothing to do
          elseif c == "b" then
            local m = v:sub(1, 1)
            if m == "m" then o.mode = "enqueue"
            elseif m == "p" then o.mode = "mailq"
            elseif m == "s" then o.mode = "smtp"
            elseif m == "i" then o.mode = "newaliases"
            elseif m == "v" then o.mode = "verify"
            elseif m == "h" or m == "H" then o.mode = "ignore"   -- host status: none kept
            elseif m == "d" or m == "D" or m == "l" then
              return nil, EX.USAGE, "-b" .. m .. " (a daemon receiving mail) is not something mailhook does: " ..
                "it only sends (-bs speaks SMTP on stdin and stdout)"
            else
              return nil, EX.USAGE, "-b" .. submit.shown(v) .. " is not supported (see docs/sendmail.md)"
            end
          end   -- A B C L O X e h p: accepted and ignored
          break
        else
          return nil, EX.USAGE, "unknown option '-" .. submit.shown(c) .. "' (in '" .. submit.shown(a) .. "')"
        end
      end
    end
    i = i + 1
  end
  if o.t and o.mode ~= "enqueue" then return nil, EX.USAGE, "-t can be used only when sending a message" end
  return o
end

-- The settings intake needs, when they allow it: cfg | nil, code, message.
local function settings_for_intake()
  local cfg, err, info = require("mailhook.enqueue").ready()
  if cfg then return require("mailhook.settings").hold(cfg) end   -- read once per process
  if info and info.code == "EINVAL" then
    if tostring(err):find("Permission denied", 1, true) then
      err = err .. " (the settings must be readable by every user who sends mail: chmod 644; " ..
        "the password lives apart, in " .. require("mailhook.settings").secrets_path() .. ")"
    end
    return nil, EX.CONFIG, err
  end
  return nil, EX.UNAVAILABLE, err
end

-- Stores a prepared message: into pickup/ when the caller may write the spool,
-- else through the drop program.  source: a Stream (head set) or bytes.
-- -> id (or true) | nil, exit code, message
local function store(caller, env, source, o)
  if caller.privileged then
    local sp, err, info = require("mailhook.spool").shared()
    if not sp then return nil, EX.CANTCREAT, err end
    -- the items left out of the envelope: recorded refused in the queue (the
    -- mail log's failed line, failed/ once the others got it), where before
    -- they were named on stderr alone, which cron and PHP's mail() drop
    env.refused = submit.left_out(env.left, "mailhook sendmail")
    local id
    id, err, info = sp:enqueue(source, env)
    if not id then
      local code = info and info.code
      if code == "EBADADDR" then return nil, EX.DATAERR, err end
      if code == "ELIMIT" then return nil, EX.DATAERR, err end   -- over limits.message: retrying cannot help
      if code == "EACCES" or code == "EPERM" or code == "EROFS" then return nil, EX.CANTCREAT, err end
      return nil, EX.TEMPFAIL, err
    end
    return id
  end
  local argv = { core.paths.drop, "-s", core.paths.spool }
  if env.from == "" then argv[#argv + 1] = "-f"; argv[#argv + 1] = "" end
  if o.notify then argv[#argv + 1] = "-N"; argv[#argv + 1] = o.notify end
  if o.ret then argv[#argv + 1] = "-R"; argv[#argv + 1] = o.ret end
  if o.envid then argv[#argv + 1] = "-V"; argv[#argv + 1] = o.envid end
  -- the items left out, each as written and why: recorded with the message
  -- (runtime/drop.c's "leftout" lines), refused in the queue once adopted
  for i = 1, math.min(#(env.left or {}), submit.LEFT_MAX) do
    local l = env.left[i]
    argv[#argv + 1] = "-l"; argv[#argv + 1] = l.item ~= "" and l.item or "(empty)"; argv[#argv + 1] = l.why
  end
  argv[#argv + 1] = "--"
  for _, r in ipairs(env.to) do argv[#argv + 1] = r end
  local status, err, info = core.maildrop.submit(argv, source)
  if not status then
    -- the program is not there or cannot run: nothing will change by trying again
    if info and (info.code == "ENOENT" or info.code == "EACCES" or info.code == "ENOEXEC") then
      return nil, EX.CANTCREAT, "this user (uid " .. caller.uid .. ") may not write the spool " .. core.paths.spool ..
        ", and " .. err .. " (unprivileged submission: docs/sendmail.md)"
    end
    return nil, EX.TEMPFAIL, err
  end
  if status ~= 0 then   -- the drop program said why on stderr
    return nil, status < 128 and status or EX.TEMPFAIL,
      status >= 128 and (core.paths.drop .. " was killed by signal " .. (status - 128)) or nil
  end
  return true
end

-- A recipient item left out of the envelope (submit.prepare's env.bad): said
-- on stderr, and in the settings' log when that is syslog or the journal, so
-- an administrator sees it even when the caller (cron) drops stderr.
local function report_bad(cfg, line)
  warn(line)
  if cfg.log == "syslog" or cfg.log == "journal" then
    pcall(function()
      if core.logsink.set(cfg.log, { facility = cfg.syslog_facility }) then
        require("mailhook").log.warn("sendmail (uid " .. tostring(core.maildrop.whoami().uid) .. "): " .. line)
        core.logsink.set("stderr")
      end
    end)
  end
end

-- The whole sendmail intake of one message read from stdin.
local function enqueue(o)
  -- a bad recipient argument is left out by submit.prepare (named on stderr
  -- and in the log), the others still get the message
  if o.from and o.from ~= "" and o.from ~= "<>" then
    -- a line break or group syntax in -f is refused (an injection attempt,
    -- tests/integration/smtp-injection.sh); a sender that is merely no
    -- address (`-f "Some Name"`, two addresses) is ignored with a warning and
    -- the message goes with the sender it would have without -f: a message is
    -- never lost for its sender (DESIGN.md: refused only with no recipient)
    local ok, why = submit.check_arg(o.from)
    if not ok then return fail(EX.DATAERR, "bad sender address " .. why) end
    local items = submit.split(o.from)
    if not items or #items ~= 1 or not items[1].addr then
      warn("bad sender address '" .. submit.shown(o.from) .. "': not one address (-f ignored)")
      o.from = nil
    else
      o.from = items[1].addr
      -- an address the envelope cannot carry (a@example..com: an empty label)
      -- is named and ignored the same way; one written absolute
      -- (a@example.com.) is the address without its dot (submit.valid)
      if o.from:find("@", 1, true) then
        local vok, vwhy = submit.valid(o.from)
        if not vok then
          warn("bad sender address '" .. submit.shown(o.from) .. "': " .. tostring(vwhy) .. " (-f ignored)")
          o.from = nil
        end
      end
    end
  end
  local cfg, code, err = settings_for_intake()
  if not cfg then return fail(code, err) end
  local caller = submit.caller()
  if not o.t and #o.rcpts == 0 then return fail(EX.USAGE, "no recipients (give them, or use -t)") end

  -- only the header block is read now; the body follows into the spool as it comes
  local stream = core.spool.stream(0, { dot = o.dot })
  local head, empty, hinfo = stream:head()
  if not head then
    stream:close()
    if hinfo and hinfo.code == "ECORRUPT" then return fail(EX.DATAERR, "malformed message: " .. empty) end
    return fail(EX.TEMPFAIL, empty)
  end
  -- empty (`cmd | sendmail root` when cmd said nothing, a "." first line): a message of the
  -- headers intake adds, as Postfix and nullmailer send it; head == "" (`echo hi | sendmail
  -- root`): no header at all, all body (runtime/intake.c), headers added

  local env, newhead, why = submit.prepare({ cfg = cfg, caller = caller, rcpts = o.rcpts, t = o.t, from = o.from,
                                        fullname = o.fullname, notify = o.notify, ret = o.ret, envid = o.envid,
                                        received = caller.privileged }, head)
  if not env then stream:close() return fail(newhead, why) end
  for _, line in ipairs(submit.bad_lines(env.bad)) do report_bad(cfg, line) end   -- bounded: 20 named
  stream:set_head(newhead)
  local id
  id, code, err = store(caller, env, stream, o)
  if not id then
    if err then return fail(code, err) end
    return code
  end
  if o.verbose then
    io.stderr:write("mailhook sendmail: ", id == true and "handed to the service (maildrop/)" or ("queued as " .. id),
                    ", from <", env.from, "> to ", table.concat(env.to, ", "), "\n")
  end
  return 0
end

-- -bp, mailq: the queue in Postfix's mailq format (the one monitoring tools
-- parse: Nagios check_mailq, checkmk): long ids, '!' after a message in
-- failed/ (Postfix's hold queue: it waits for an administrator), a deferred
-- message's last reply in parentheses, then "-- N Kbytes in N Requests.".
local function mailq()
  local queue = require "mailhook.queue"
  local sp, err, info = queue.spool()   -- never makes the spool
  if not sp then
    -- no spool there (a mistyped -s, a service never started): said, naming
    -- the folder, EX_NOINPUT; nothing made (it made one, owned by the caller)
    if require("mailhook.spool").no_spool(info) then return fail(EX.NOINPUT, queue.why(err, info)) end
    if tostring(err):find("Permission denied", 1, true) then
      return fail(EX_NOPERM, "the queue " .. core.paths.spool .. " is readable only by root and the " ..
                  "service's user (" .. err .. ")")
    end
    return fail(EX.CANTCREAT, err)
  end
  local out, n, bytes = io.stdout, 0, 0
  -- the running service's outage (SPOOL/status.json, when the lock holder
  -- wrote it; never a signal: mailq is polled by monitors): the reason of a
  -- queued message that carries none of its own (delivery notes it only on
  -- the message it tried), as Postfix's "(delivery temporarily suspended: ...)"
  local outage
  do
    local c = require("mailhook.status").running(core.paths.spool)
    local o = c and type(c.outage) == "table" and c.outage   -- (status.lua clears it once over)
    if o and type(o.error) == "string" then
      outage = "delivery temporarily suspended: " .. (type(o.stage) == "string" and (o.stage .. ": ") or "") .. o.error
    end
    -- no service, or none in an outage: the one the last deliverer (a flush,
    -- sendmail -q) met and has not seen end
    local last = not outage and queue.outage()
    if last then outage = "delivery temporarily suspended: " .. last.error end
  end
  -- a caller's value (a sender, a recipient, a server's reply) for the
  -- terminal, by mailhook.display's rule for text local users wrote (as
  -- `mailhook queue` shows it): control bytes, C1 controls and bytes that are
  -- not UTF-8 as \xNN, direction overrides and U+2028/9 as \u202e (a To
  -- holding U+2028 forged a line of this listing), and a backslash as \x5C
  -- (as mailhook-drop -l records it: a typed "\x1b" is no escaped ESC); esc:
  -- one the spool keeps escaped already (an item left out and why:
  -- submit.printable, a typed backslash \x5C there; a drop-in's reason:
  -- spool.c), its backslashes kept
  local display = require "mailhook.display"
  local vis, esc = display.raw, display.kept
  -- one entry's first line, after the column heads or a blank line; its why, right-aligned
  local function entry(id, size, when, from)
    out:write(n == 0 and string.format("%-17s %8s %-19s %s\n", "----Queue ID-----", "--Size--",
                                       "---Arrival Time----", "--Sender/Recipient------") or "\n")
    n = n + 1
    out:write(string.format("%-17s %8s %19.19s %s\n", vis(id), size, when, vis(from)))
  end
  local function note(why)   -- why: shown already (vis, esc)
    local pad = 76 - #why
    out:write(string.rep(" ", pad > 0 and pad or 0), "(", why, ")\n")
  end
  local ok, lerr = pcall(function()
    for e in queue.list() do
      bytes = bytes + (e.size or 0)
      local id = e.id .. (e.state == "failed" and "!" or "")
      local from = (e.from == nil or e.from == "") and "MAILER-DAEMON" or e.from
      entry(id, e.size or 0, os.date("%a %b %e %H:%M:%S", e.queued_at), from)
      -- recipients refused for good (by the server, or left out of a drop-in as
      -- no address) are not listed below, which lists what is still to go (as
      -- Postfix's mailq): a message with no other reason names them here
      local refused = e.refused and e.refused[1] and
        ("refused: " .. esc(e.refused[1].rcpt) .. (#e.refused > 1 and (" and " .. (#e.refused - 1) .. " more") or "")
         .. " (mailhook queue show " .. vis(e.id) .. ")")
      local why = e.reason and esc(e.reason) or e.last_reply and vis(e.last_reply) or refused or
                  (e.state ~= "failed" and outage and vis(outage)) or nil
      if why then note(why) end
      for _, r in ipairs(e.to or {}) do out:write(string.format("%-17s %8s %-19s %s\n", "", "", "", vis(r))) end
    end
    -- what local users handed over and the service has not adopted yet
    -- (queue.maildrop: what `mailhook queue` lists too): the sender adoption
    -- gives it, who dropped it, the items sendmail left out, the recipients
    -- as given, as Postfix's mailq shows a maildrop file
    for _, e in ipairs(queue.maildrop()) do
      if e.reason then
        -- no drop of mailhook-drop's: listed with why, as an unparsable drop-in
        -- of pickup/ is (it was left out: the queue looked empty until the
        -- service moved it)
        entry(e.id, "-", "", "-")
        note(esc(e.reason))
      else
        bytes = bytes + e.size
        local from = e.from == "" and "MAILER-DAEMON" or e.from or ("uid " .. math.tointeger(e.uid))
        entry(e.id, e.size, os.date("%a %b %e %H:%M:%S", e.queued_at), from)
        local why = (e.stuck and ("in maildrop/: the service cannot adopt it: " .. esc(e.stuck) .. "; from uid ")
                     or "in maildrop/: waits for the service; from uid ") .. math.tointeger(e.uid) ..
                    (e.login and (" (" .. vis(e.login) .. ")") or "")
        if e.refused[1] then
          why = why .. "; refused: " .. esc(e.refused[1].rcpt) ..
                (#e.refused > 1 and (" and " .. (#e.refused - 1) .. " more") or "")
        end
        note(why)
        for _, r in ipairs(e.to) do out:write(string.format("%-17s %8s %-19s %s\n", "", "", "", vis(r))) end
      end
    end
  end)
  if not ok then return fail(EX.TEMPFAIL, tostring(lerr)) end
  if n == 0 then out:write("Mail queue is empty\n")
  else out:write(string.format("\n-- %d Kbytes in %d Request%s.\n", bytes // 1024, n, n == 1 and "" or "s")) end
  return 0
end

-- -bv: how each recipient would be resolved (aliases, admin_address,
-- default_domain), without sending anything.
local function verify(o)
  local cfg, code, err = settings_for_intake()
  if not cfg then return fail(code, err) end
  if #o.rcpts == 0 then return fail(EX.USAGE, "-bv needs the addresses to check") end
  local resolve, status = submit.resolver(cfg), 0
  for _, r in ipairs(o.rcpts) do
    -- the rule intake applies to an argument (no CR/LF, no group syntax), and
    -- what is printed escaped: a caller's value never adds a line
    local ok, cwhy = submit.check_arg(r)
    local items, why = nil, cwhy
    if ok then items, why = submit.split(r) end
    for _, it in ipairs(items or {}) do
      local list, rwhy = it.addr and resolve(it.addr)
      if list then io.stdout:write(submit.shown(it.addr), "... deliverable: ", submit.shown(table.concat(list, ", ")), "\n")
      else
        io.stdout:write(submit.shown(it.addr or it.raw), "... not deliverable: ", submit.shown(rwhy or "not an address"), "\n")
        status = EX.DATAERR
      end
    end
    if not items then io.stdout:write(submit.shown(r), "... not deliverable: ", why, "\n"); status = EX.DATAERR end
  end
  return status
end

-- -bi, newaliases: there is no database to build (the aliases file is read
-- as it is); its syntax is checked, and a problem said, never an error exit
-- (package scripts run newaliases).
local function newaliases()
  local settings = require "mailhook.settings"
  local cfg = settings.load()
  if cfg and cfg.aliases then
    local path = settings.resolve(cfg, cfg.aliases)
    local map, err = submit.read_aliases(path)
    if not map then warn(err) end
  end
  return 0
end

-- -q: deliver the queue now (through a running service when there is one).
local function flush()
  local summary = require("mailhook.flush").run {}
  -- no spool there (none, or a folder without pickup/ nor maildrop/): nothing
  -- to deliver, exit 0 as `mailhook flush`, said on stderr as `mailhook flush`
  -- and `mailq` say it (it said nothing: a cron `sendmail -q` on a mistyped -s
  -- or $MAILHOOK_SPOOL looked like a queue delivered)
  if summary.no_spool then
    warn("nothing to deliver: " .. summary.no_spool)
    return 0
  end
  if summary.spool_error and tostring(summary.error):find("Permission denied", 1, true) then
    -- a local user: the service delivers what it hands over as it arrives
    return fail(EX_NOPERM, "only root and the service's user flush the queue " .. core.paths.spool ..
                " (what a local user sends is delivered as it arrives: docs/sendmail.md)")
  end
  -- a delivery round ran (here or in the service) and what it could not
  -- deliver stays queued for the next: that is done, as Postfix's -q (exit 0
  -- once the flush is asked for; a cron `sendmail -q` mails no error while
  -- the server is down); said on stderr
  -- (a service that stopped answering is no delivery round: a failure, as a
  -- timed-out wait)
  if summary.error and summary.via and summary.left and summary.left > 0 and not summary.service_lost and
     not tostring(summary.error):find("timed out waiting", 1, true) then
    warn(summary.left .. " message(s) stay queued for the next attempt: " .. submit.shown(summary.error))
    return 0
  end
  if summary.error then return fail(EX.TEMPFAIL, summary.error) end
  return 0
end

return function(...)
  local o, code, msg = parse({ ... })
  if not o then return fail(code, msg) end
  if o.verbose then pcall(function() require("mailhook").log.level("debug") end) end
  if o.mode == "mailq" then return mailq() end
  if o.mode == "newaliases" or o.mode == "ignore" then return o.mode == "newaliases" and newaliases() or 0 end
  if o.mode == "verify" then return verify(o) end
  if o.mode == "flush" then return flush() end
  if o.mode == "smtp" then
    local cfg, c2, err = settings_for_intake()
    if not cfg then   -- said on stderr as ever, and to the SMTP client
      return require("mailhook.sendmail_bs").refuse { why = err, code = fail(c2, err) }
    end
    local caller = submit.caller()
    return require("mailhook.sendmail_bs").run {
      cfg = cfg, caller = caller,
      store = function(env, bytes, dsn) return store(caller, env, bytes, dsn) end,
    }
  end
  return enqueue(o)
end
