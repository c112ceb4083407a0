#!/usr/bin/lua5.4
--[[ tests/peers/fault.lua — the scripted SMTP peer for the faults no real server
produces on demand (bytes after STARTTLS's 220, a reply cut mid-line, over-long or
mismatched multi-line replies, one byte per second, 421 in the middle of DATA, a
stall after the greeting, a TLS version refused).  Debian's LuaSocket (lua-socket)
carries the connections, LuaSec (lua-sec) the TLS steps.  Run it with lua5.4.

    fault.lua --script FILE [--port 0] [--record FILE] [--cert C --key K] [--idle S] [--once] [--max N] [--refuse-at ehlo]

Every connection runs the script from the top, each in its own coroutine (one
process serves any number at once).  Script lines (# starts a comment):
    send TEXT        send TEXT + CRLF
    raw TEXT         send TEXT as is (no CRLF added)
    repeat N TEXT    send TEXT N times (no CRLF added)
    expect PATTERN   read one line from the client; it must match (a Lua pattern,
                     string.find; P1|P2 matches either), else EXPECT-FAIL is reported
                     and the connection closed
    read             read one line, whatever it is
    data             read up to and including CRLF.CRLF (the end of DATA)
    chunk [PATTERN]  read a "BDAT n [LAST]" line (matching PATTERN too, when given) and
                     its n bytes (RFC 3030 CHUNKING); another line is an EXPECT-FAIL
    sleep SECONDS    pause
    trickle SECONDS  from now on, send one byte every SECONDS (0 = at once)
    starttls [MAX]   TLS handshake as the server (needs --cert/--key); then all
                     reads and writes go through TLS.  MAX (1.0 1.1 1.2 1.3) is the
                     highest version offered (1.0/1.1 at security level 0); with
                     it, a failed handshake prints "TLS-FAIL n REASON" and the raw
                     connection goes on being recorded until the client closes
                     (what a client sends after a refused handshake)
    close            close the connection now
    stall            say nothing more; record until the client closes
TEXT takes the escapes \r \n \t \xNN \\.  After the last line the peer keeps
reading (recording) until the client closes, or --idle seconds pass.

Every byte received is appended to --record FILE (the first connection; the Nth
goes to FILE.N), after TLS the decrypted bytes, written at once so a test can
inspect the wire: dot-stuffing, CRLF only, what was sent after a refusal.
stdout, flushed line by line: "PORT n" once listening, then "CONNECT n",
"EXPECT-FAIL n LINENO got '...'", "TLS-FAIL n REASON", "END n REASON" per
connection.  --max N: a connection while N are open gets "421 4.7.0 too many
connections" at once and is closed (Exim's smtp_accept_max), "REFUSED n" on stdout;
with --refuse-at ehlo it is greeted (220) and gets the 421 in reply to its EHLO
(or HELO) instead, as a server that counts connections at EHLO does.
SIGTERM ends it.
]]
local socket = require "socket"

local function say(...)
  io.stdout:write(table.concat({ ... }, " "), "\n")
  io.stdout:flush()
end

local function die(msg)
  io.stderr:write("fault.lua: ", msg, "\n")
  os.exit(2)
end

-- TEXT escapes: \r \n \t \\ \xNN (as the scripts have always written them).
local ESC = { r = "\r", n = "\n", t = "\t", ["\\"] = "\\", ["'"] = "'", ['"'] = '"', ["0"] = "\0" }
local function unescape(text)
  return (text:gsub("\\(x%x%x)", function(x) return string.char(tonumber(x:sub(2), 16)) end)
              :gsub("\\(.)", function(c) return ESC[c] or ("\\" .. c) end))
end

-- A line as EXPECT-FAIL shows it: single-quoted, control bytes as \xNN.
local function shown(s)
  return "'" .. s:gsub("[\\']", "\\%0"):gsub("[%c\128-\255]", function(c)
    local named = { ["\r"] = "\\r", ["\n"] = "\\n", ["\t"] = "\\t" }
    return named[c] or string.format("\\x%02x", c:byte())
  end) .. "'"
end

local TLS_MAX = { ["1.0"] = "tlsv1", ["1.1"] = "tlsv1_1", ["1.2"] = "tlsv1_2", ["1.3"] = "tlsv1_3" }

-- The script as a list of {lineno, op, arg}; unknown steps are refused at start.
local OPS = { send = true, raw = true, ["repeat"] = true, expect = true, read = true, data = true, chunk = true,
              sleep = true, trickle = true, starttls = true, close = true, stall = true }
local function parse(path)
  local f = io.open(path, "r") or die("cannot read " .. path)
  local steps, n = {}, 0
  for line in f:lines() do
    n = n + 1
    if line:find("%S") and not line:match("^%s*#") then
      local op, arg = line:match("^(%S+) ?(.*)$")
      if not OPS[op] then die(path .. ":" .. n .. ": unknown step '" .. op .. "'") end
      if op == "expect" then
        local alts = {}
        for p in (arg .. "|"):gmatch("([^|]*)|") do
          if not pcall(string.find, "", p) then die(path .. ":" .. n .. ": bad pattern '" .. p .. "'") end
          alts[#alts + 1] = p
        end
        arg = alts
      end
      if op == "starttls" and arg ~= "" and not TLS_MAX[arg] then
        die(path .. ":" .. n .. ": starttls takes 1.0, 1.1, 1.2 or 1.3, not '" .. arg .. "'")
      end
      if op == "repeat" then
        local count, text = arg:match("^(%d+) (.*)$")
        if not count then die(path .. ":" .. n .. ": repeat N TEXT") end
        arg = { tonumber(count), text }
      end
      steps[#steps + 1] = { n, op, arg }
    end
  end
  f:close()
  return steps
end

-- ------------------------------------------------------------ the scheduler
-- Each connection is a coroutine that yields what it waits for: "r" or "w" on
-- a socket (until a deadline), or "t" (a deadline alone).  One socket.select
-- serves them all.

local waiting = {}   -- co -> {kind, sock, deadline}

local function wait(kind, sock, deadline)
  return coroutine.yield(kind, sock, deadline)   -- true when ready, false on the deadline
end

local function sleep(s) wait("t", nil, socket.gettime() + s) end

local function resume(co, ...)
  local ok, kind, sock, deadline = coroutine.resume(co, ...)
  if not ok then io.stderr:write("fault.lua: ", tostring(kind), "\n") end
  if coroutine.status(co) == "dead" then waiting[co] = nil return end
  waiting[co] = { kind, sock, deadline }
end

-- ------------------------------------------------------------ a connection

local Conn = {}
Conn.__index = Conn

function Conn:record(chunk)
  if self.rec and #chunk > 0 then self.rec:write(chunk); self.rec:flush() end
end

-- recv(deadline) -> chunk | nil (silence until the deadline) | "" (closed)
function Conn:recv(deadline)
  while true do
    local data, err, partial = self.sock:receive(65536)
    data = data or partial
    if data and #data > 0 then self:record(data); return data end
    if err == "closed" then return "" end
    if err ~= "timeout" and err ~= "wantread" and err ~= "wantwrite" then return "" end
    if not wait(err == "wantwrite" and "w" or "r", self.sock, deadline) then return nil end
  end
end

-- readuntil(sep) -> bytes up to and including sep | nil (EOF, or --idle of silence)
-- (each chunk searched once, with the sep's length - 1 bytes before it, and
-- the chunks joined once: the whole buffer searched again and copied for every
-- 64 KB read made a 12 MB message cost the peer 6-14 s, and the next session
-- was greeted late)
function Conn:readuntil(sep)
  local i = self.buf:find(sep, 1, true)
  if i then
    local line = self.buf:sub(1, i + #sep - 1)
    self.buf = self.buf:sub(i + #sep)
    return line
  end
  local parts, size = { self.buf }, #self.buf
  local tail = #sep > 1 and self.buf:sub(-(#sep - 1)) or ""
  while true do
    local chunk = self:recv(socket.gettime() + self.idle)
    if not chunk or chunk == "" then self.buf = table.concat(parts); return nil end
    parts[#parts + 1] = chunk
    local probe = tail .. chunk
    local j = probe:find(sep, 1, true)
    if j then
      local all = table.concat(parts)
      local k = size - #tail + j                  -- where sep starts in all
      self.buf = all:sub(k + #sep)
      return all:sub(1, k + #sep - 1)
    end
    size = size + #chunk
    tail = #sep > 1 and probe:sub(-(#sep - 1)) or ""
  end
end

function Conn:put(data)
  local i = 1
  while i <= #data do
    local last, err, partial = self.sock:send(data, i)
    last = last or partial
    if last and last >= i then i = last + 1 end
    if not last or last < #data then
      if err == "closed" or (err and err ~= "timeout" and err ~= "wantwrite" and err ~= "wantread") then
        error("send: " .. tostring(err), 0)
      end
      if err then wait(err == "wantread" and "r" or "w", self.sock, nil) end
    end
  end
end

function Conn:send(data)
  if self.delay <= 0 then return self:put(data) end
  for i = 1, #data do
    self:put(data:sub(i, i))
    sleep(self.delay)
  end
end

-- readbytes(n) -> the next n bytes | nil (EOF, or --idle of silence)
function Conn:readbytes(n)
  while #self.buf < n do
    local chunk = self:recv(socket.gettime() + self.idle)
    if not chunk or chunk == "" then return nil end
    self.buf = self.buf .. chunk
  end
  local bytes = self.buf:sub(1, n)
  self.buf = self.buf:sub(n + 1)
  return bytes
end

-- Record whatever the client still sends until it closes: "eof", or "idle".
function Conn:drain(seconds)
  local deadline = socket.gettime() + seconds
  while true do
    local chunk = self:recv(deadline)
    if not chunk then return "idle" end
    if chunk == "" then return "eof" end
  end
end

-- The TLS handshake as the server; max caps the version offered.  true, or
-- false, reason (the raw connection is then kept, to record what follows).
function Conn:starttls(o, max)
  local ssl = require "ssl"   -- LuaSec: only scripts with a starttls step need it
  local params = { mode = "server", protocol = "any", key = o.key, certificate = o.cert,
                   options = { "all" } }
  if max ~= "" then
    params.protocol = TLS_MAX[max]
    if max == "1.0" or max == "1.1" then params.ciphers = "DEFAULT:@SECLEVEL=0" end
  end
  local ctx, cerr = ssl.newcontext(params)
  if not ctx then die("TLS context: " .. tostring(cerr)) end
  local plain, fd = self.sock, self.sock:getfd()
  local conn, werr = ssl.wrap(plain, ctx)
  if not conn then return false, tostring(werr) end
  conn:settimeout(0)
  local deadline = socket.gettime() + self.idle
  while true do
    local ok, err = conn:dohandshake()
    if ok then self.sock = conn; return true end
    if err ~= "wantread" and err ~= "wantwrite" and err ~= "timeout" then
      -- the connection outlives a refused handshake: the descriptor goes back
      -- to the plain socket (ssl.wrap took it), and the TLS object lets go of it
      local core = require "ssl.core"
      core.setfd(conn, core.SOCKET_INVALID)
      plain:setfd(fd)
      plain:settimeout(0)
      self.sock = plain
      return false, tostring(err)
    end
    if not wait(err == "wantwrite" and "w" or "r", conn, deadline) then
      conn:close()
      return false, "handshake timed out"
    end
  end
end

local function serve(sock, n, steps, o)
  local c = setmetatable({ sock = sock, buf = "", delay = 0, idle = o.idle }, Conn)
  if o.record then
    c.rec = assert(io.open(n == 1 and o.record or (o.record .. "." .. n), "ab"))
  end
  say("CONNECT", n)
  local reason = "done"
  local ok, err = pcall(function()
    for _, step in ipairs(steps) do
      local lineno, op, arg = step[1], step[2], step[3]
      if op == "send" then c:send(unescape(arg) .. "\r\n")
      elseif op == "raw" then c:send(unescape(arg))
      elseif op == "repeat" then c:send(unescape(arg[2]):rep(arg[1]))
      elseif op == "expect" or op == "read" then
        local line = c:readuntil("\n")
        if not line then reason = "eof-at-line-" .. lineno; return end
        local text = line:gsub("\r?\n$", "")
        local matched = op == "read"
        for _, p in ipairs(op == "expect" and arg or {}) do matched = matched or text:find(p) ~= nil end
        if not matched then
          say("EXPECT-FAIL", n, lineno, "got", shown(text))
          reason = "expect-failed"
          return
        end
      elseif op == "data" then
        if not c:readuntil("\r\n.\r\n") then reason = "eof-in-data"; return end
      elseif op == "chunk" then
        local line = c:readuntil("\n")
        if not line then reason = "eof-at-line-" .. lineno; return end
        local text = line:gsub("\r?\n$", "")
        local size = text:match("^BDAT (%d+)$") or text:match("^BDAT (%d+) LAST$")
        if not size or (arg ~= "" and not text:find(arg)) then
          say("EXPECT-FAIL", n, lineno, "got", shown(text))
          reason = "expect-failed"
          return
        end
        if not c:readbytes(tonumber(size)) then reason = "eof-in-chunk"; return end
      elseif op == "sleep" then sleep(tonumber(arg))
      elseif op == "trickle" then c.delay = tonumber(arg)
      elseif op == "starttls" then
        if #c.buf > 0 then say("EXPECT-FAIL", n, lineno, "bytes before handshake", shown(c.buf)) end
        local done, why = c:starttls(o, arg)
        if not done then
          say("TLS-FAIL", n, why)
          reason = "tls-failed-" .. c:drain(o.idle)
          return
        end
      elseif op == "close" then reason = "closed"; return
      elseif op == "stall" then reason = "stalled-" .. c:drain(3600); return
      end
    end
    reason = "done-" .. c:drain(o.idle)
  end)
  if not ok then reason = "error " .. tostring(err):gsub("%s+", "-") end
  c.sock:close()
  if c.rec then c.rec:close() end
  say("END", n, reason)
end

-- ------------------------------------------------------------ main

local o = { host = "127.0.0.1", port = 0, idle = 30 }
do
  local argv, i = arg, 1
  while i <= #argv do
    local a = argv[i]
    if a == "--once" then o.once = true
    elseif a:match("^%-%-") and argv[i + 1] then
      o[a:sub(3)] = argv[i + 1]
      i = i + 1
    else die("usage: fault.lua --script FILE [--port 0] [--record FILE] [--cert C --key K] [--idle S] [--once] [--max N] [--refuse-at ehlo]")
    end
    i = i + 1
  end
end
if not o.script then die("--script FILE is required") end
o.port, o.idle = tonumber(o.port), tonumber(o.idle)
if o["refuse-at"] and o["refuse-at"] ~= "ehlo" then die("--refuse-at: only ehlo (the default is the greeting)") end
local steps = parse(o.script)
for _, s in ipairs(steps) do
  if s[2] == "starttls" and not (o.cert and o.key) then die("the script uses starttls: give --cert and --key") end
end

local server = assert(socket.bind(o.host, o.port))
server:settimeout(0)
local _, bound_port = server:getsockname()
say("PORT", bound_port)

local n, open = 0, 0
o.max = tonumber(o.max)
while true do
  -- what every coroutine waits for, and the soonest deadline
  local recvt, sendt, soonest = { server }, {}, nil
  for _, w in pairs(waiting) do
    if w[1] == "r" then recvt[#recvt + 1] = w[2] elseif w[1] == "w" then sendt[#sendt + 1] = w[2] end
    if w[3] and (not soonest or w[3] < soonest) then soonest = w[3] end
  end
  local timeout = soonest and math.max(0, soonest - socket.gettime()) or nil
  local readable, writable = socket.select(recvt, sendt, timeout)
  local ready = {}
  for _, s in ipairs(readable) do ready[s] = true end
  for _, s in ipairs(writable) do ready[s] = true end
  if ready[server] then
    local sock = server:accept()
    if sock then
      sock:settimeout(0)
      sock:setoption("tcp-nodelay", true)
      n = n + 1
    end
    if sock and o.max and open >= o.max and o["refuse-at"] == "ehlo" then
      -- over the limit, refused in reply to EHLO: served as its own coroutine
      -- (it waits for the client's line), not counted among the open ones
      local co = coroutine.create(function(s, k)
        local c = setmetatable({ sock = s, buf = "", delay = 0, idle = o.idle }, Conn)
        pcall(function()
          c:put("220 fault.example ESMTP\r\n")
          if c:readuntil("\n") then c:put("421 4.7.0 too many connections\r\n") end
        end)
        s:close()
        say("REFUSED", k)
      end)
      resume(co, sock, n)
    elseif sock and o.max and open >= o.max then
      -- over the limit: refused at the greeting, as Exim's smtp_accept_max does
      sock:send("421 4.7.0 too many connections\r\n")
      sock:close()
      say("REFUSED", n)
    elseif sock then
      open = open + 1
      local co = coroutine.create(function(...) serve(...); open = open - 1 end)
      resume(co, sock, n, steps, o)
      if o.once then
        -- one connection: serve it to its end, then exit
        server:close()
        while waiting[co] do
          local w = waiting[co]
          local t = w[3] and math.max(0, w[3] - socket.gettime()) or nil
          local r, wr = socket.select(w[1] == "r" and { w[2] } or {}, w[1] == "w" and { w[2] } or {}, t)
          local got = (#r > 0) or (#wr > 0)
          if got or (w[3] and socket.gettime() >= w[3]) or w[1] == "t" then resume(co, got or w[1] == "t") end
        end
        os.exit(0)
      end
    end
  end
  local now = socket.gettime()
  for co, w in pairs(waiting) do
    if w[2] and ready[w[2]] then resume(co, true)
    elseif w[3] and now >= w[3] then resume(co, w[1] == "t")
    end
  end
end
