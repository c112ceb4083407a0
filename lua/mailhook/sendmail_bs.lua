-- mailhook.sendmail_bs — `sendmail -bs`: an SMTP dialogue on stdin and stdout,
-- no network (the way some programs submit: Exim-style callers, MUAs with a
-- local "SMTP" transport).  Every message a DATA completes goes through the
-- same intake as `sendmail` (lua/mailhook/submit.lua): the envelope is MAIL
-- FROM and RCPT TO (with their RFC 3461 parameters), a missing From, Date
-- and Message-ID are added, and it is stored durably before the 250 is sent.
--
-- The state machine (RFC 5321 §4.1.4 order): greeting -> [HELO/EHLO] ->
-- MAIL -> RCPT... -> DATA -> message -> 250 "queued as" -> MAIL again or
-- QUIT.  RSET goes back to after EHLO; NOOP, VRFY (252), HELP anywhere; what
-- mailhook does not do (STARTTLS, AUTH, BDAT, EXPN, ETRN) is 502.  Lines are
-- read as they come (a client waits for each reply), bounded: a command line
-- over 4096 bytes is refused, a message over the size limit is read to its
-- end and refused with 552 (nothing stored); no line is held beyond those
-- limits, however long (core.fsutil.read_line).
local submit = require "mailhook.submit"

local M = {}

M.MAX_MESSAGE = 100 * 1024 * 1024   -- the drop program's limit (runtime/maildrop.h), for every caller
M.MAX_LINE = 4096
M.MAX_RCPT = 10000

-- The address between < and > of a MAIL/RCPT argument, and the parameters
-- after it: addr ("" for <>), {KEY = value} (keys upper-cased), raw params
-- | nil when malformed.
local function path_and_params(arg)
  local addr, rest = arg:match("^%s*<(.-)>(.*)$")
  if not addr then addr, rest = arg:match("^%s*([^%s<>]+)(.*)$") end   -- without brackets: tolerated
  if not addr then return nil end
  local params = {}
  for w in rest:gmatch("%S+") do
    local k, v = w:match("^([%w-]+)=?(.*)$")
    if not k then return nil end
    params[k:upper()] = v
  end
  return addr:gsub("^@[^:]*:", ""), params, rest:match("^%s*(.-)%s*$")
end

-- A function writing a reply to output: each line of it (EHLO's are several,
-- CRLF between) at most 512 octets with its CRLF (RFC 5321 4.5.3.1.5),
-- whatever it quotes (a 3000-byte address): control characters blanked, cut
local function replier(output)
  return function(text)
    local lines = {}
    for l in (text .. "\r\n"):gmatch("(.-)\r\n") do
      l = l:gsub("%c", " ")
      if #l > 510 then l = l:sub(1, 507) .. "..." end
      lines[#lines + 1] = l
    end
    output:write(table.concat(lines, "\r\n"), "\r\n"); output:flush()
  end
end

-- refuse{why =, code =, input =, output =} -> code: no service (the settings
-- cannot be read, mail is disabled), said in SMTP as RFC 5321 §3.1 has it: a
-- 554 greeting naming why, 503 to every command but QUIT (221), until QUIT or
-- the end of input.  It closed without a word on stdout: Symfony Mailer
-- (Laravel's `sendmail -bs -i`) reported "Connection to process ... has been
-- closed unexpectedly", the reason lost on a stderr it does not read.
function M.refuse(o)
  local input, reply = o.input or io.stdin, replier(o.output or io.stdout)
  local read_line = require("mailhook.core").fsutil.read_line
  local why = tostring(o.why)
  reply("554 5.3.2 mailhook: " .. why)
  while true do
    local line = read_line(input, M.MAX_LINE + 2)
    if not line then return o.code end
    if line:match("^[Qq][Uu][Ii][Tt]%s*$") then reply("221 2.0.0 Bye"); return o.code end
    reply("503 5.5.1 No service: " .. why)
  end
end

-- run{cfg =, caller =, store = fn(env, bytes, dsn) -> id | nil, code, msg,
--     input = file (io.stdin), output = file (io.stdout)} -> exit status
function M.run(o)
  local input, output = o.input or io.stdin, o.output or io.stdout
  -- the next line, at most max bytes of it held (true second when it was
  -- longer: the rest read and dropped).  input:read("L") held a line whole
  -- before its length was looked at: a 200 MB line without a newline took
  -- 590 MB to be refused, and nothing bounded it
  local read_line = require("mailhook.core").fsutil.read_line
  local host = o.cfg.helo_name or "localhost"
  local reply = replier(output)
  -- one resolver for the session (RCPT and each message's prepare): a broken
  -- aliases file is warned about once.  A resolver per RCPT warned at every
  -- local name and again at each message, on a stderr Symfony Mailer never
  -- reads: 169 of them filled its 64 KiB pipe and sendmail, and the PHP
  -- worker waiting on its reply, hung for good
  local resolve = submit.resolver(o.cfg)
  local tx
  local function reset() tx = nil end
  reply("220 " .. host .. " ESMTP mailhook (sendmail -bs)")
  while true do
    local line, long = read_line(input, M.MAX_LINE + 2)   -- its CRLF too
    if not line then return 0 end                     -- the client went away: nothing half-stored
    line = line:gsub("\r?\n$", "")
    if long or #line > M.MAX_LINE then
      reply("500 5.5.2 Line too long")
    else
      local verb, arg = line:match("^(%a+)%s*(.*)$")
      verb = verb and verb:upper() or ""
      if verb == "HELO" or verb == "EHLO" then
        reset()
        if arg == "" then reply("501 5.5.4 Syntax: " .. verb .. " hostname")
        elseif verb == "HELO" then reply("250 " .. host)
        else
          reply("250-" .. host .. "\r\n250-PIPELINING\r\n250-SIZE " .. M.MAX_MESSAGE .. "\r\n250-8BITMIME\r\n" ..
                "250-DSN\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES")
        end
      elseif verb == "MAIL" then
        local a = arg:match("^[Ff][Rr][Oo][Mm]:(.*)$")
        local addr, params
        if a then addr, params = path_and_params(a) end
        if tx then reply("503 5.5.1 Error: nested MAIL command")
        elseif not addr then reply("501 5.5.4 Syntax: MAIL FROM:<address>")
        elseif addr ~= "" and not submit.check_arg(addr) then reply("553 5.1.7 Bad sender address syntax")
        elseif addr:find("@", 1, true) and not submit.valid(addr) then
          -- a@example..com, a@.example.com: named, as RCPT names a bad recipient (it
          -- was taken, then replaced by `from` without a word); a@example.com. is fine
          local _, why = submit.valid(addr)
          reply("553 5.1.7 '" .. submit.shown(addr) .. "': " .. tostring(why):gsub("%c", " "))
        elseif addr ~= "" and not addr:find("@", 1, true) and not submit.is_local_name(addr) then
          -- <a b>, <.>: no address nor a local name to qualify; named too (it was
          -- taken, then replaced by `from` without a word)
          reply("553 5.1.7 '" .. submit.shown(addr) .. "': not an address (no @) nor a local name")
        elseif params.SIZE and tonumber(params.SIZE) and tonumber(params.SIZE) > M.MAX_MESSAGE then
          reply("552 5.3.4 Message size exceeds fixed limit")
        else
          tx = { from = addr == "" and "<>" or addr, rcpts = {}, rcpt_params = {},
                 ret = params.RET and submit.dsn_ret(params.RET), envid = params.ENVID }
          if tx.envid then   -- xtext (RFC 3461 §4): decoded here, encoded again when sent
            tx.envid = tx.envid:gsub("%+(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
            if #tx.envid > 100 or tx.envid:find("%c") then tx.envid = nil end
          end
          reply("250 2.1.0 Ok")
        end
      elseif verb == "RCPT" then
        local a = arg:match("^[Tt][Oo]:(.*)$")
        local addr, params
        if a then addr, params = path_and_params(a) end
        if not tx then reply("503 5.5.1 Error: need MAIL command")
        elseif not addr or addr == "" then reply("501 5.5.4 Syntax: RCPT TO:<address>")
        elseif #tx.rcpts >= M.MAX_RCPT then reply("452 4.5.3 Error: too many recipients")
        else
          local ok = submit.check_arg(addr)
          local list, rwhy, code
          if ok then list, rwhy, code = resolve(addr) end
          if not ok then reply("553 5.1.3 Bad recipient address syntax")
          elseif not list then
            reply((code == submit.EX.TEMPFAIL and "451 4.3.0 " or "553 5.1.3 ") .. tostring(rwhy):gsub("%c", " "))
          else
            local p = {}
            if params.NOTIFY and submit.dsn_notify(params.NOTIFY) then p[#p + 1] = "NOTIFY=" .. submit.dsn_notify(params.NOTIFY) end
            if params.ORCPT and params.ORCPT:match("^[!-~]+$") and not params.ORCPT:find("[<>]") then
              p[#p + 1] = "ORCPT=" .. params.ORCPT
            end
            tx.rcpts[#tx.rcpts + 1] = addr
            if #p > 0 then tx.rcpt_params[addr] = table.concat(p, " ") end
            reply("250 2.1.5 Ok")
          end
        end
      elseif verb == "DATA" then
        if not tx then reply("503 5.5.1 Error: need MAIL command")
        elseif #tx.rcpts == 0 then reply("554 5.5.1 Error: no valid recipients")
        else
          reply("354 End data with <CR><LF>.<CR><LF>")
          local parts, size, over, ended = {}, 0, false, false
          while true do
            -- held up to what the size limit leaves, and a command line's
            -- worth for its CR* LF (a "." ending in CRs still ends the data):
            -- a longer line makes the message too large, and is never held
            local l, long = read_line(input, math.max(M.MAX_MESSAGE - size, 0) + M.MAX_LINE)
            if not l then break end
            if long then size, l = M.MAX_MESSAGE + 1, "" end   -- over: nothing more is kept
            -- the line ends of runtime/intake.c (eol.h), so -bs splits lines
            -- as `sendmail` and the data writer do: CR* LF is one line end
            -- ("To: x\r\r\n" keeps the next field in the header block), a bare
            -- CR inside a line ends a line of its own (never stored raw: the
            -- writer would split there, and "Subject: hi\rBcc: x" would send a
            -- Bcc that prepare never saw)
            l = l:gsub("\r*\n$", "")
            if l == "." then ended = true break end
            if l:sub(1, 1) == "." then l = l:sub(2) end   -- dot-stuffing undone
            size = size + #l + 2
            if size > M.MAX_MESSAGE then over = true
            else
              for piece in (l .. "\r"):gmatch("([^\r]*)\r") do parts[#parts + 1] = piece end
            end
          end
          if not ended then return 0 end                 -- cut off: nothing stored
          if over then
            reply("552 5.3.4 Message size exceeds fixed limit")
          else
            -- the header block: the lines up to the first empty one or the
            -- first that is no header field (it starts the body, as in
            -- runtime/intake.c: Postfix's rule); no header at all: all body
            local head, body = {}, {}
            local n = 1
            while n <= #parts and (parts[n]:match("^[!-9;-~]+[ \t]*:") or
                                   (n > 1 and parts[n]:match("^[ \t]"))) do
              head[#head + 1] = parts[n]; n = n + 1
            end
            if parts[n] == "" then n = n + 1 end
            for k = n, #parts do body[#body + 1] = parts[k] end
            local headtext = #head > 0 and (table.concat(head, "\r\n") .. "\r\n") or ""
            local env, newhead, why = submit.prepare({ cfg = o.cfg, caller = o.caller, rcpts = tx.rcpts,
              rcpt_params = tx.rcpt_params, from = tx.from, ret = tx.ret, envid = tx.envid,
              received = o.caller.privileged, resolver = resolve }, headtext)
            if not env then
              reply((newhead == submit.EX.TEMPFAIL and "451 4.3.0 " or "554 5.6.0 ") .. tostring(why):gsub("%c", " "))
            else
              local bytes = newhead .. "\r\n" .. table.concat(body, "\r\n") .. (#body > 0 and "\r\n" or "")
              local notify
              for _, p in pairs(tx.rcpt_params) do notify = notify or p:match("NOTIFY=(%S+)") end
              local id, scode, err = o.store(env, bytes, { ret = tx.ret, envid = tx.envid, notify = notify })
              if id == true then
                -- through the drop program: the queue id is given at pickup.  Not "Ok:
                -- queued": Symfony Mailer (Laravel's sendmail -bs) reads the word after
                -- "Ok: " as the id when " as ID" is missing, and every message a web
                -- app sent was logged as id "queued"
                reply("250 2.0.0 Accepted: queued, its id given at pickup")
              elseif id then
                reply("250 2.0.0 Ok: queued as " .. id)
              else
                local why = tostring(err or "the message could not be stored"):gsub("%c", " ")
                reply(((scode == submit.EX.TEMPFAIL or scode == submit.EX.CANTCREAT) and "451 4.3.0 " or "554 5.3.0 ") .. why)
              end
            end
          end
          reset()
        end
      elseif verb == "RSET" then reset(); reply("250 2.0.0 Ok")
      elseif verb == "NOOP" then reply("250 2.0.0 Ok")
      elseif verb == "QUIT" then reply("221 2.0.0 Bye"); return 0
      elseif verb == "VRFY" then reply("252 2.0.0 Cannot VRFY user; try RCPT")
      elseif verb == "HELP" then reply("214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY")
      elseif verb == "STARTTLS" or verb == "AUTH" or verb == "BDAT" or verb == "EXPN" or verb == "ETRN" then
        reply("502 5.5.1 Error: command not implemented")
      else
        reply("500 5.5.2 Error: command not recognized")
      end
    end
  end
end

return M
