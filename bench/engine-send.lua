-- bench/engine-send.lua N PORT [pipe]: the SMTP engine alone, no spool: N messages of
-- 1 KB over one session to 127.0.0.1:PORT (smtp-sink).  s:send one at a time, or with
-- pipe two in flight (pipelining across messages, as the deliverer does), submitted
-- through smtp.submit_entry, the unchecked internal call the deliverer uses (s:submit
-- checks its table on every call: a cost the deliverer does not pay, so not the baseline).
-- Run by bench/40-smtp.sh, and by bench/50-delivery.sh as the rate a durable drain is
-- measured against.
local smtp = require "mailhook.smtp"
local n, port, mode = tonumber(arg[1]), tonumber(arg[2]), arg[3]
local body = "From: a@example.test\r\nTo: b@example.test\r\nSubject: bench\r\n\r\n" ..
  string.rep(string.rep("x", 62) .. "\r\n", 15)
local s = assert(smtp.connect { server = { "127.0.0.1" }, port = port, tls = "none", tls_required = false,
                               from = "a@example.test" })
local m = { from = "a@example.test", to = { "b@example.test" }, data = body }
if mode == "pipe" then
  local submit = smtp.submit_entry
  assert(submit(s, m))
  for i = 1, n do
    if i < n then assert(submit(s, m)) end
    s:release()
    assert(s:result())
  end
else
  for _ = 1, n do assert(s:send(m)) end
end
s:quit()
