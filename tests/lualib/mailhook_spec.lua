-- mailhook_spec.lua — the Lua library as Lua users test code: a busted spec,
-- run by Debian's busted under lua5.4 (tests/integration/lualib-install.sh)
-- against the module LuaRocks installed.  $MAILHOOK_CONF and $MAILHOOK_SPOOL
-- name settings that allow intake and a scratch spool.
local mh = require "mailhook"

describe("mailhook from busted", function()
  it("loads in a stock interpreter", function()
    assert.is_table(mh)
    assert.is_true(mh.paths.library)
    assert.are.equal("block", mh.wait_mode())
  end)

  it("queues a message durably, blocking until it is", function()
    local id, err = mh.enqueue { to = "spec@example.org", subject = "from busted", text = "hello" }
    assert.is_string(id, err)
    local entry = assert(mh.queue.show(id))
    assert.are.equal("spec@example.org", entry.to[1])
  end)

  it("runs tasks concurrently under mh.run", function()
    local order = {}
    mh.run(function()
      local a = mh.spawn(function() order[#order + 1] = "a"; coroutine.yield(); order[#order + 1] = "a" end)
      local b = mh.spawn(function() order[#order + 1] = "b"; coroutine.yield(); order[#order + 1] = "b" end)
      a:wait(); b:wait()
    end)
    assert.are.same({ "a", "b", "a", "b" }, order)
  end)

  it("returns nil, message, info for an expected failure", function()
    local r, err, info = mh.queue.show("../etc/passwd")
    assert.is_nil(r)
    assert.matches("not a message id", err)
    assert.are.equal("permanent", info.class)
  end)

  it("raises on misuse", function()
    assert.has_error(function() mh.enqueue("not a table") end)
  end)
end)
