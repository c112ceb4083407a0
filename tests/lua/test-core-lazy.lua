-- The core's bindings are opened on first use (runtime/l_core.c), possibly
-- inside a rule whose memory budget refuses an allocation half-way through an
-- open.  Such an open must leave nothing behind: no class metatable
-- registered but never filled (its objects would have no methods for the
-- rest of the process), and the next read of core.NAME opens the module
-- afresh.  The test sweeps the room left under the budget so that the open
-- of core.rstate (two classes, then its functions) is refused at every step.
local tap = require "tap"
local core = require "mailhook.core"

local CLASSES = { "mailhook.Lock", "mailhook.Ticker" }   -- what rstate's open registers

-- every mailhook class in the registry is whole (a __gc: every class has one)
local function half_made()
  for k, v in pairs(debug.getregistry()) do
    if type(k) == "string" and k:match("^mailhook%.") and type(v) == "table" and v.__gc == nil then
      return k
    end
  end
end

tap.test("an open refused half-way leaves no half-made class, and opens whole later", function(t)
  local dir = os.tmpname()
  os.remove(dir)
  assert(core.rstate.mkdir(dir))
  local refused, inside_ok, broken = 0, 0, {}
  -- the limit must be at least 1 MB: the heap is made that big first (and no
  -- garbage left that an emergency collection could free to make room)
  local filler = string.rep("x", 1 << 20)
  for room = 0, 6000, 4 do                -- bytes left under the limit when the rule starts
    rawset(core, "rstate", nil)           -- not opened yet, as in a fresh process
    for _, c in ipairs(CLASSES) do debug.getregistry()[c] = nil end
    collectgarbage()
    collectgarbage("stop")
    core.budget_limits { memory = core.heap() + room }
    local ok, got = core.rule_call("lazy-open", function()
      return core.rstate ~= nil
    end)
    if ok and got then inside_ok = inside_ok + 1 else refused = refused + 1 end
    local bad = half_made()
    if bad then broken[#broken + 1] = room .. ": " .. bad end
    -- outside any budget: opens whole (a file of its own per step: a Lock left
    -- locked by a failure above must not make the next step wait)
    local lk = core.rstate.lock(dir .. "/l" .. room)
    if not (lk and getmetatable(lk) and getmetatable(lk).__index and getmetatable(lk).__index.unlock) then
      broken[#broken + 1] = room .. ": a Lock without its methods"
    else
      lk:unlock()
    end
  end
  filler = nil
  collectgarbage("restart")
  core.budget_limits { memory = 128 * 1048576 }
  for _, name in ipairs(core.rstate.list(dir) or {}) do os.remove(dir .. "/" .. name) end
  os.remove(dir)
  t:ok(refused > 0 and inside_ok > 0, "the sweep reached both a refused and a whole open inside the budget",
       "refused " .. refused .. ", whole " .. inside_ok)
  t:is(table.concat(broken, "; "), "", "no class left half-made, every Lock has its methods")
end)


-- fsutil.owner's user and group names are looked up when first read: a
-- lookup costs some twenty system calls (nsswitch.conf, passwd, group, nscd),
-- and every intake stats its settings file without ever showing a name.
tap.test("fsutil.owner: names looked up at the first read, numbers as text when none", function(t)
  local o = assert(core.fsutil.owner("/etc/passwd"))
  t:is(rawget(o, "user"), nil, "no user name looked up by owner() itself")
  t:is(rawget(o, "group"), nil, "no group name looked up by owner() itself")
  t:is(o.uid, 0, "uid"); t:is(o.user, "root", "user: root"); t:is(o.group, "root", "group: root")
  t:is(rawget(o, "user"), "root", "kept after the first read")
  t:is(o.nothing, nil, "another missing key is nil")
  local me = core.maildrop.whoami()
  if me.euid ~= 0 then return t:diag("not root: a uid with no name not tried") end
  local f = os.tmpname()
  assert(os.execute("chown 54321:54322 '" .. f .. "'"))
  local n = assert(core.fsutil.owner(f))
  os.remove(f)
  t:is(n.user, "54321", "a uid with no name: its number")
  t:is(n.group, "54322", "a gid with no name: its number")
end)

return tap.done()
