-- tap.lua — a small TAP producer for Lua tests run by the mailhook runtime.
--
--   local tap = require "tap"
--   tap.test("sleep waits", function(t)
--     local cb = t:expect(2, function() end)   -- must be called exactly twice
--     ...
--     t:ok(cond, "what"); t:is(got, want, "what"); t:like(s, "pattern", "what")
--   end)
--   tap.done()
--
-- Each test runs in its own task, one after another.  A test fails when an
-- assertion fails, when it raises, when an expected callback was not called
-- the expected number of times, or when it leaves a libuv handle open.
local mh = require "mailhook"

local tap = { n = 0, failed = 0 }
local tests = {}

local function emit(ok, msg, diag)
  tap.n = tap.n + 1
  if not ok then tap.failed = tap.failed + 1 end
  io.write(ok and "ok " or "not ok ", tap.n, " - ", (tostring(msg or ""):gsub("\n", " ")), "\n")
  if not ok and diag then io.write("#   ", (tostring(diag):gsub("\n", "\n#   ")), "\n") end
  io.flush()
  return ok
end

local T = {}
T.__index = T

function T:ok(cond, msg, diag) return emit(not not cond, self.name .. ": " .. tostring(msg), diag) end

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

function T:is(got, want, msg)
  return self:ok(got == want, msg, "got:  " .. show(got) .. "\nwant: " .. show(want))
end

function T:isnt(got, bad, msg)
  return self:ok(got ~= bad, msg, "got: " .. show(got))
end

function T:like(got, pat, msg)
  return self:ok(type(got) == "string" and got:find(pat) ~= nil, msg,
                 "got:  " .. show(got) .. "\nwant pattern: " .. pat)
end

-- Deep comparison of tables, for lists of ids and the like.
local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
function T:same(got, want, msg)
  local function dump(x)
    if type(x) ~= "table" then return show(x) end
    local out = {}
    for k, v in pairs(x) do out[#out + 1] = tostring(k) .. "=" .. dump(v) end
    table.sort(out)
    return "{" .. table.concat(out, ", ") .. "}"
  end
  return self:ok(same(got, want), msg, "got:  " .. dump(got) .. "\nwant: " .. dump(want))
end

function T:diag(...) io.write("# ", table.concat({...}, " "), "\n") end

-- expect(n, fn): a wrapper of fn that must be called exactly n times by the
-- end of the test.
function T:expect(n, fn, what)
  local e = { want = n, got = 0, what = what or ("callback #" .. (#self.expects + 1)) }
  self.expects[#self.expects + 1] = e
  return function(...)
    e.got = e.got + 1
    if fn then return fn(...) end
  end
end

-- File helpers the tests share: the whole content of a file (nil when absent),
-- and a fresh temporary file holding text (its path).
function tap.slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function tap.tmpfile(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text or "")
  f:close()
  return path
end

function tap.test(name, fn) tests[#tests + 1] = { name = name, fn = fn } end

function tap.skip(name, why) tests[#tests + 1] = { name = name, skip = why } end

-- Runs the tests in order, each in its own task, then prints the plan.
-- Returns (as the script's exit status) 0 or 1.
function tap.done()
  local base = mh.core.handles()
  for _, test in ipairs(tests) do
    if test.skip then
      tap.n = tap.n + 1
      io.write("ok ", tap.n, " - ", test.name, " # SKIP ", test.skip, "\n")
    else
      local t = setmetatable({ name = test.name, expects = {} }, T)
      local task = mh.spawn(test.fn, t)
      local ok, err = task:wait()
      if not ok then emit(false, test.name .. ": raised", err) end
      for _, e in ipairs(t.expects) do
        emit(e.got == e.want, test.name .. ": " .. e.what .. " called " .. e.want .. " time(s)",
             "called " .. e.got .. " time(s)")
      end
      mh.sleep(0)  -- let closing handles finish closing
      local left = mh.core.handles() - base
      if left > 0 then emit(false, test.name .. ": left " .. left .. " handle(s) open") end
    end
  end
  io.write("1..", tap.n, "\n")
  io.flush()
  return tap.failed == 0 and 0 or 1
end

return tap
