-- lltap.lua — assertions for the Lua programs of tests/integration/lualib.sh,
-- run by a stock lua5.4 (not the mailhook binary, not in a mailhook task).
-- Each prints "ok - DESC" or "not ok - DESC" (and "# " diagnostics); the shell
-- numbers them into its TAP stream (tests/lib/lualib.sh, lua_tap).
local M = { failed = 0 }

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

function M.ok(cond, desc, diag)
  io.write(cond and "ok - " or "not ok - ", (tostring(desc):gsub("\n", " ")), "\n")
  if not cond then
    M.failed = M.failed + 1
    if diag then io.write("#   ", (tostring(diag):gsub("\n", "\n#   ")), "\n") end
  end
  io.flush()
  return cond
end

function M.is(got, want, desc)
  return M.ok(got == want, desc, "got:  " .. show(got) .. "\nwant: " .. show(want))
end

function M.like(got, pat, desc)
  return M.ok(type(got) == "string" and got:find(pat) ~= nil, desc,
              "got:  " .. show(got) .. "\nwant pattern: " .. pat)
end

function M.diag(...) io.write("# ", table.concat({ ... }, " "), "\n"); io.flush() end

-- The file's contents, or nil.
function M.slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

return M
