-- core.proc (runtime/l_proc.c): a child of this binary joined by a channel, as the
-- rules worker (rule_worker.lua) and a password_command run off the loop
-- (settings_edit.lua first_line) use it.
local tap = require "tap"
local core = require "mailhook.core"

tap.test("a child answers on its channel, and its exit is seen", function(t)
  local p, ch = assert(core.proc.spawn { "-e", "local ch = require('mailhook.core').proc.channel(); ch:send('+' .. ...); ch:close()", "hi" })
  t:is(ch:recv(), "+hi", "the frame the child sent, with its argument")
  t:is(ch:recv(), nil, "then nil: the child closed its end")
  ch:close()
  t:is(p:wait(), 0, "exit status 0")
end)

-- proc_exit_cb resumes the task waiting in p:wait(); that task may run on until
-- the proc is collected, and its __gc closes the exited handle.  The callback
-- then closed it a second time: libuv's assertion aborted the process
-- (`uv_close: Assertion !uv__is_closing(handle)`), as test-settings-fuzz.lua did
-- once password_command ran in a child.
tap.test("a proc collected by the task its exit resumed is closed once", function(t)
  for i = 1, 3 do
    local p, ch = assert(core.proc.spawn { "-e", "" })
    ch:close()
    t:is(p:wait(), 0, "child " .. i .. " exited 0")
    p = nil   -- luacheck: ignore (dropped so that the collection below takes it)
    collectgarbage()
    collectgarbage()
  end
  t:ok(true, "no abort")
end)

return tap.done()
