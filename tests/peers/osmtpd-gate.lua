#!/usr/bin/lua5.4
--[[ tests/peers/osmtpd-gate.lua — an OpenSMTPD proc-exec filter (smtpd-filters(7)) that
lets the first N RCPTs of its smtpd through and holds every later one until FILE exists:
a queue that cannot drain before the test stops the server (tests/lib/mta.sh,
start_opensmtpd --gate; policy-gate.lua is Postfix's, an ACL delay Exim's).

    lua5.4 osmtpd-gate.lua N FILE      (run by smtpd: requests on stdin, answers on stdout)

smtpd starts it with its own start and ends it with its own end.  While it holds a
request it answers nothing else: the tests it serves hold one session at a time.
]]
local socket = require "socket"
local pass, file = tonumber(arg[1]), arg[2]
assert(pass and file, "usage: osmtpd-gate.lua N FILE")
local function exists() local f = io.open(file) if f then f:close() end return f ~= nil end
local seen = 0
io.stdout:setvbuf("line")
for line in io.lines() do
  if line == "config|ready" then
    io.stdout:write("register|filter|smtp-in|rcpt-to\n", "register|ready\n")
  else
    local version, sid, token = line:match("^filter|([^|]*)|[^|]*|smtp%-in|rcpt%-to|([^|]*)|([^|]*)|")
    if version then
      seen = seen + 1
      while seen > pass and not exists() do socket.sleep(0.05) end
      -- (the order of the two ids changed with protocol 0.5)
      if version < "0.5" then sid, token = token, sid end
      io.stdout:write("filter-result|", sid, "|", token, "|proceed\n")
    end
  end
end
