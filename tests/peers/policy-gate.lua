#!/usr/bin/lua5.4
--[[ tests/peers/policy-gate.lua — a Postfix policy service (SMTPD_POLICY_README's
protocol) that lets a set number of recipients through and then holds every later one
until a file exists.  A test that must stop a real Postfix while mail is still queued
points smtpd's check_policy_service at it: the first N RCPTs are answered at once, the
(N+1)th waits, so the sender is mid-message, and the rest still queued, however fast the
machine runs (a race on timing let the whole queue drain before the stop under load).

    policy-gate.lua --pass N --open FILE [--port 0]

Each request (name=value lines, an empty line at its end) is counted across every
connection; the first N, and every one once FILE exists, get "action=DUNNO" (go on with
the next restriction).  The others are answered when FILE appears (polled every 50 ms),
or never if the connection closes first.  stdout, flushed: "PORT n" once listening, then
"PASS n" per answered request, "HOLD n" per held one.  SIGTERM ends it.
]]
local socket = require "socket"

local pass, open_file, port = nil, nil, 0
local i = 1
while arg[i] do
  local o, v = arg[i], arg[i + 1]
  if o == "--pass" then pass = tonumber(v)
  elseif o == "--open" then open_file = v
  elseif o == "--port" then port = tonumber(v)
  else io.stderr:write("policy-gate.lua: unknown option ", o, "\n") os.exit(2) end
  i = i + 2
end
if not pass or not open_file then
  io.stderr:write("usage: policy-gate.lua --pass N --open FILE [--port 0]\n") os.exit(2)
end

local function say(...) io.stdout:write(table.concat({ ... }, " "), "\n") io.stdout:flush() end
local function is_open() local f = io.open(open_file) if f then f:close() end return f ~= nil end

local server = assert(socket.bind("127.0.0.1", port))
server:settimeout(0)
local _, bound = server:getsockname()
say("PORT", bound)

local conns = {}      -- socket -> { buf = unread bytes, held = requests waiting }
local served = 0      -- requests seen, all connections

local function answer(c) c:send("action=DUNNO\n\n") end

while true do
  local socks = { server }
  for c in pairs(conns) do socks[#socks + 1] = c end
  local ready = socket.select(socks, nil, 0.05)
  for _, s in ipairs(ready) do
    if s == server then
      local c = server:accept()
      if c then c:settimeout(0) conns[c] = { buf = "", held = 0 } end
    else
      local st = conns[s]
      local data, err, part = s:receive(4096)
      data = data or part
      if data and #data > 0 then st.buf = st.buf .. data end
      -- every complete request: name=value lines, then an empty line
      while true do
        local e = st.buf:find("\n\n", 1, true)
        if not e then break end
        st.buf = st.buf:sub(e + 2)
        served = served + 1
        if served <= pass or is_open() then answer(s) say("PASS", served)
        else st.held = st.held + 1 say("HOLD", served) end
      end
      if err == "closed" then s:close() conns[s] = nil end
    end
  end
  if is_open() then
    for c, st in pairs(conns) do
      for _ = 1, st.held do answer(c) end
      st.held = 0
    end
  end
end
