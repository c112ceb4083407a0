-- mailhook sendmail [-t] [-f FROM] [-i] [RCPT...] — the sendmail(8) interface:
-- a whole RFC 5322 message on stdin is queued durably.  stdin streams into the
-- spool file in 64 KiB chunks (runtime/intake.c): only the header block (at
-- most 4 MB) is held in memory, to work out the envelope; a 200 MB fax costs
-- no more memory than a one-line alarm.
--   -t        recipients from To, Cc and Bcc (added to any given as arguments);
--             Bcc is removed from the copy that is sent (always)
--   -f FROM   envelope sender (default: the `from` setting, else the From header)
--   -i, -oi   a line with a single dot does not end the message
--   -F NAME, -oX, -bm, -v: accepted and ignored, as sendmail's callers expect
-- Exit codes are sysexits(3)'s, as sendmail's: 0 queued, 64 usage, 65 bad
-- message or address, 69 outgoing mail disabled, 73 spool not writable,
-- 75 temporary failure (disk full, I/O error: try again), 78 bad settings.
local spool = require "mailhook.spool"
local intake = require "mailhook.enqueue"

local EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_CANTCREAT, EX_TEMPFAIL, EX_CONFIG =
  64, 65, 69, 73, 75, 78

local function fail(code, msg)
  io.stderr:write("mailhook sendmail: ", msg, "\n")
  return code
end

local function strip_bcc(head)
  local out, skip = {}, false
  for line in head:gmatch("[^\n]*\n") do
    if line:match("^[ \t]") then
      if not skip then out[#out + 1] = line end
    else
      skip = line:lower():match("^bcc%s*:") ~= nil
      if not skip then out[#out + 1] = line end
    end
  end
  return table.concat(out)
end

-- An address from the command line (a RCPT argument or -f) gets the checks
-- `mailhook enqueue` gives its --to (mh.message): no CR, LF or NUL (issue 10.4:
-- "a@x<LF>RCPT TO:<evil@y>" must not become a second recipient), each item of
-- the list a valid address, and no group syntax ("a@x RCPT TO:<evil@y>" would
-- read as the group "a@x RCPT TO" holding evil@y) or unquoted "@" in a display
-- name.  Non-ASCII addresses pass: delivery decides (SMTPUTF8, docs/smtp.md).
-- Returns the bare addresses, or nil and why.
local function printable(a) return (a:gsub("[%c]", function(c) return string.format("\\x%02X", c:byte()) end)) end
local function arg_addresses(a)
  if a:find("[%z\r\n]") then return nil, "'" .. printable(a) .. "': CR, LF or NUL in an address" end
  local depth, quote, angle, phrase_at = 0, false, false, false
  local i = 1
  while i <= #a do
    local c = a:sub(i, i)
    if quote then
      if c == "\\" then i = i + 1 elseif c == '"' then quote = false end
    elseif depth > 0 then
      if c == "\\" then i = i + 1 elseif c == "(" then depth = depth + 1 elseif c == ")" then depth = depth - 1 end
    elseif c == '"' then quote = true
    elseif c == "(" then depth = 1
    elseif c == "<" then angle = true
    elseif c == ">" then angle = false
    elseif not angle and (c == ":" or c == ";") then
      return nil, "'" .. a .. "': group syntax is not an address"
    elseif c == "," then phrase_at = false
    elseif not angle and c == "@" then phrase_at = true
    end
    if angle and phrase_at and c == "<" then
      return nil, "'" .. a .. "': an unquoted '@' in the display name"
    end
    i = i + 1
  end
  local list, why = spool.addresses(a)
  if not list then return nil, why end
  local valid = require("mailhook.message").valid_address
  for _, x in ipairs(list) do
    local ok, bad = valid(x)
    if not ok and not tostring(bad):find("non%-ASCII") then return nil, "'" .. x .. "': " .. tostring(bad) end
  end
  return list
end

local function has(head, name)
  return ("\n" .. head:lower()):find("\n" .. name .. "%s*:") ~= nil
end

local function message_id(domain)
  local r = io.open("/dev/urandom", "rb")
  local bytes = r and r:read(12) or tostring(os.time())
  if r then r:close() end
  return string.format("<%s.%s@%s>", os.date("!%Y%m%d%H%M%S"),
                       (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end)),
                       domain)
end

return function(...)
  local argv = { ... }
  local from, dot, t = nil, true, false
  local rcpts = {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      for j = i + 1, #argv do rcpts[#rcpts + 1] = argv[j] end
      break
    elseif a == "-t" then t = true
    elseif a == "-i" or a == "-oi" then dot = false
    elseif a == "-f" or a == "-r" or a == "-F" then
      i = i + 1
      if not argv[i] then return fail(EX_USAGE, "option " .. a .. " needs a value") end
      if a ~= "-F" then from = argv[i] end
    elseif a:match("^%-[fr].") then from = a:sub(3)
    elseif a:match("^%-F") or a:match("^%-o") or a == "-bm" or a == "-v" or a == "-U" then
      -- accepted, ignored
    elseif a:match("^%-") then
      return fail(EX_USAGE, "unknown option '" .. a .. "'")
    else
      rcpts[#rcpts + 1] = a
    end
    i = i + 1
  end

  local cfg, err, info = intake.ready()
  if not cfg then
    return fail(info and info.code == "EINVAL" and EX_CONFIG or EX_UNAVAILABLE, err)
  end

  -- recipients given as arguments may be address lists ("a@b, C <c@d>")
  local to = {}
  for _, r in ipairs(rcpts) do
    local list, why = arg_addresses(r)
    if not list then return fail(EX_DATAERR, "recipient " .. why) end
    for _, x in ipairs(list) do to[#to + 1] = x end
  end

  -- only the header block is read now (CRLF lines; a lone dot ends the
  -- message unless -i); the body follows into the spool file as it comes
  local stream = require("mailhook.core").spool.stream(0, { dot = dot })
  local head, empty, hinfo = stream:head()
  if not head then
    stream:close()
    if hinfo and hinfo.code == "ECORRUPT" then return fail(EX_DATAERR, "malformed message: " .. empty) end
    return fail(EX_TEMPFAIL, empty)
  end
  if empty then stream:close() return fail(EX_DATAERR, "empty message on stdin") end

  local parsed
  parsed, err = spool.parse(head .. "\r\n")
  -- a header block without recipients is fine here: they may come from the arguments
  if not parsed and not err:find("no recipients", 1, true) then
    return fail(EX_DATAERR, "malformed message: " .. err)
  end
  if parsed and parsed.canonical then
    return fail(EX_DATAERR, "malformed message: starts with X-Sender/X-Receiver lines")
  end
  if t and parsed then
    for _, x in ipairs(parsed.to) do to[#to + 1] = x end
  end
  if #to == 0 then
    return fail(EX_USAGE, t and "no recipients in To, Cc or Bcc" or "no recipients (give them, or use -t)")
  end
  if from and from ~= "" and from ~= "<>" then
    local ok, why = arg_addresses(from)
    if not ok or #ok ~= 1 then
      return fail(EX_DATAERR, "bad sender address " .. (why or ("'" .. from .. "': not one address")))
    end
    from = ok[1]
  elseif from == "<>" then
    from = ""
  end
  from = from or cfg.from or (parsed and parsed.from) or ""

  head = strip_bcc(head)
  -- Date and Message-ID fixed now, so every retry sends the same bytes
  local extra = ""
  if not has(head, "date") then extra = extra .. "Date: " .. os.date("%a, %d %b %Y %H:%M:%S %z") .. "\r\n" end
  if not has(head, "message%-id") then
    extra = extra .. "Message-ID: " .. message_id((from:match("@(.+)$")) or "localhost") .. "\r\n"
  end

  local sp
  sp, err, info = require("mailhook.queue").spool()
  if not sp then
    return fail(EX_CANTCREAT, err)
  end
  local id
  stream:set_head(extra .. head)
  id, err, info = sp:enqueue(stream, { from = from, to = to })
  if not id then
    local code = info and info.code
    if code == "EBADADDR" then return fail(EX_DATAERR, err) end
    if code == "EACCES" or code == "EPERM" or code == "EROFS" then return fail(EX_CANTCREAT, err) end
    return fail(EX_TEMPFAIL, err)
  end
  return 0
end
