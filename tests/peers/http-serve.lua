-- tests/peers/http-serve.lua — core.http with small limits, for
-- tests/integration/http-server.sh (not a test itself: `mailhook FILE` runs it).
-- Paths under /api/ are served as without it (json_prefix: the server's own
-- errors to them are JSON).  Prints its port, serves until GET /quit, then closes the server (the
-- requests still held get 503, streams end) and prints "closed".
--   /echo      METHOD PATH QUERY BODY          /later   answers after 0.3 s
--   /stream    three chunks                    /tick    a piece every 50 ms until the end
--   /flood     writes until the client is dropped (the result is in /stats)
--   /big       4 MB at once (a client that does not read is dropped: stall)
--   /hold      no answer until the server closes
--   /abandon   a stream whose handler returns without finish()   /gc   collectgarbage
--   /raise     a handler that raises at once  /raise-later   one that raises after a wait
--   /raise-answered   one that raises after it answered
--   /stats     the server's counters           /quit    close the server
-- It trusts the cookie sid=trusted-sid (core.http's trust: see http-server.sh's eviction checks).
local core = require "mailhook.core"
local srv
local quit, flood_result = false, "none"
local T = { ["Content-Type"] = "text/plain" }

local function handler(req)
  local p = req:path()
  if p:sub(1, 5) == "/api/" then p = p:sub(5) end     -- /api/X as X: the server's own errors there are JSON
  if p == "/echo" then
    req:respond(200, T, req:method() .. " " .. p .. " " .. tostring(req:query()) .. " " .. (req:body() or "") .. "\n")
  elseif p == "/later" then
    core.sleep(0.3)
    req:respond(200, T, "later\n")
  elseif p == "/stream" then
    req:stream(200, T)
    for i = 1, 3 do req:write("piece " .. i .. "\n") end
    req:finish()
  elseif p == "/tick" then
    req:stream(200, T)
    while req:write("tick\n") do core.sleep(0.05) end
  elseif p == "/abandon" then              -- a stream its handler leaves without finish()
    req:stream(200, T)
    req:write("left\n")
  elseif p == "/raise" then
    error("raised at once")
  elseif p == "/raise-later" then
    core.sleep(0.05)
    error("raised after a wait")
  elseif p == "/raise-answered" then
    req:respond(200, T, "answered\n")
    error("raised after answering")
  elseif p == "/gc" then
    collectgarbage("collect")
    collectgarbage("collect")
    req:respond(200, T, "collected\n")
  elseif p == "/flood" then
    req:stream(200, T)
    local piece = string.rep("x", 8192)
    while true do
      local ok, err = req:write(piece)
      if not ok then flood_result = err; break end
      core.sleep(0.001)
    end
  elseif p == "/big" then
    req:respond(200, T, string.rep("y", 4 * 1024 * 1024))
  elseif p == "/hold" then
    while req:alive() do core.sleep(0.05) end
  elseif p == "/stats" then
    local out = {}
    for k, v in pairs(srv:stats()) do out[#out + 1] = k .. "=" .. v end
    table.sort(out)
    out[#out + 1] = "flood=" .. flood_result
    req:respond(200, T, table.concat(out, "\n") .. "\n")
  elseif p == "/quit" then
    req:respond(200, T, "bye\n")
    quit = true
  else
    req:respond(404, T, "no\n")
  end
end

srv = assert(core.http.listen { port = 0, max_conns = 4, rate = 1000, burst = 1000, req_timeout = 3, stall = 1,
                                max_stream_buffer = 65536, max_body = 1024, json_prefix = "/api/",
                                trust_cookie = "sid", handler = handler })
-- a credential the server trusts (a request with Cookie: sid=trusted-sid is never
-- evicted while its body arrives; the console trusts its live session ids)
assert(srv:trust("trusted-sid"))
assert(srv:trust("gone-sid") and srv:trust("gone-sid", false))
local _, port = srv:address()
io.stdout:write(port, "\n")
io.stdout:flush()
while not quit do core.sleep(0.05) end
srv:close()
io.stdout:write("closed\n")
io.stdout:flush()
