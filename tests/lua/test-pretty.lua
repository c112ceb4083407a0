-- The pretty printer the REPL shows results with: scalars, nesting, sorted
-- keys, cycles, depth and size limits, line breaking, secret masking.
local tap = require "tap"
local pretty = require "mailhook.pretty"
local f = pretty.format

tap.test("scalars", function(t)
  t:is(f(nil), "nil", "nil")
  t:is(f(true), "true", "boolean")
  t:is(f(42), "42", "integer")
  t:is(f(2.0), "2.0", "a whole float stays a float")
  t:is(f(0.5), "0.5", "float")
  t:is(f("a\"b\\c\n\0"), [["a\"b\\c\n\000"]], "strings are quoted, control bytes escaped")
  t:like(f(print), "^function: ", "functions as tostring")
end)

tap.test("tables: array part, sorted keys, key syntax", function(t)
  t:is(f({}), "{}", "empty")
  t:is(f({ 1, 2, 3 }), "{ 1, 2, 3 }", "a list has no keys")
  t:is(f({ b = 2, a = 1, c = 3 }), "{ a = 1, b = 2, c = 3 }", "string keys sorted")
  t:is(f({ [10] = "x", [2] = "y", z = 1, [1.5] = 0 }), '{ [1.5] = 0, [2] = "y", [10] = "x", z = 1 }',
       "numbers before strings, ascending; non-list numbers bracketed")
  t:is(f({ "a", "b", n = 2 }), '{ "a", "b", n = 2 }', "list and hash parts")
  t:is(f({ ["end"] = 1, ["a-b"] = 2, _ok = 3 }), '{ _ok = 3, ["a-b"] = 2, ["end"] = 1 }',
       "keywords and non-identifiers bracketed")
  t:is(f({ [true] = 1, [false] = 0 }), "{ [false] = 0, [true] = 1 }", "boolean keys")
end)

tap.test("nesting and line breaking", function(t)
  t:is(f({ a = { b = { c = 1 } } }), "{ a = { b = { c = 1 } } }", "short nesting stays on one line")
  local long = {}
  for i = 1, 30 do long[i] = i * 1000 end
  local out = f({ name = "list", items = long })
  t:like(out, "^{\n  items = {\n    1000,\n", "a long table breaks one entry per line, indented")
  t:like(out, "\n  },\n  name = \"list\"\n}$", "closing braces line up with their key")
  local _, lines = out:gsub("\n", "")
  t:is(lines, 34, "one line per entry (35 lines)")
  t:is(f({ x = 1 }, { width = 4 }), "{\n  x = 1\n}", "width is an option")
end)

tap.test("cycles are marked, shared tables are not cycles", function(t)
  local a = { name = "a" }
  a.self = a
  t:is(f(a), '{ name = "a", self = <cycle> }', "a table containing itself")
  local b = { }
  local c = { b = b }
  b.c = c
  t:is(f(b), "{ c = { b = <cycle> } }", "an indirect cycle")
  local shared = { 1 }
  t:is(f({ x = shared, y = shared }), "{ x = { 1 }, y = { 1 } }", "the same table twice is printed twice")
  local k = {}
  k[k] = 1
  t:is(f(k), "{ [<cycle>] = 1 }", "a table used as its own key")
end)

tap.test("depth and size limits", function(t)
  local deep = { 1 }
  for _ = 1, 10 do deep = { deep } end
  t:is(f(deep), "{ { { { { {...} } } } } }", "max_depth 5 by default")
  t:is(f(deep, { max_depth = 2 }), "{ { {...} } }", "max_depth is an option")
  t:is(f({ {} }, { max_depth = 1 }), "{ {} }", "an empty table is shown even past the limit")
  local big = {}
  for i = 1, 500 do big[i] = i end
  local out = f(big)
  t:like(out, "200,\n  %.%.%.\n}$", "max_items 200 by default, then ...")
  t:is(f({ 1, 2, 3, 4 }, { max_items = 2 }), "{ 1, 2, ... }", "max_items is an option")
  t:ok(not pcall(f, {}, { bogus = 1 }), "an unknown option raises")
end)

tap.test("secrets are masked, __tostring honoured", function(t)
  t:is(f({ user = "bob", password = "hunter2" }), '{ password = "********", user = "bob" }',
       "password masked")
  t:is(f({ Token = "abc", secret = "x" }), '{ Token = "********", secret = "********" }',
       "token and secret masked, any case")
  t:is(f({ password = false }), "{ password = false }", "a non-string password is shown")
  t:is(f({ password = "x" }, { mask = false }), '{ password = "x" }', "mask = false shows it")
  local obj = setmetatable({}, { __tostring = function() return "Obj<1>" end })
  t:is(f({ o = obj }), "{ o = Obj<1> }", "a table with __tostring prints as its text")
  local raising = setmetatable({}, { __tostring = function() error("boom", 0) end })
  t:is(f(raising), "<table: __tostring raised: boom>", "a __tostring that raises: said, no error (the REPL exited)")
  local esc = setmetatable({}, { __tostring = function() return "\27[2Jx" end })
  t:is(f(esc), "\\027[2Jx", "what a __tostring returns: control bytes escaped (it cleared the terminal)")
end)

return tap.done()
