-- json.encode (lua/mailhook/json.lua), what every --json and the console print:
-- arrays and objects (keys sorted: stable output), empty tables, null, numbers
-- (integers exact, floats round-trip, NaN/inf as null), strings escaped for
-- JSON and for HTML (<, >, & as \u escapes), invalid UTF-8 replaced, misuse raises;
-- and whatever it writes, json.decode reads back.
local tap = require "tap"
local json = require "mailhook.json"

tap.test("shapes", function(t)
  t:is(json.encode { 1, 2, 3 }, "[1,2,3]", "a list is an array")
  t:is(json.encode { b = 1, a = { x = true } }, '{"a":{"x":true},"b":1}', "an object, keys sorted")
  t:is(json.encode {}, "{}", "an empty table is an object")
  t:is(json.encode(json.array {}), "[]", "unless marked as an array")
  -- decoded and encoded again (a status file, a rule's data): an empty list stays a list
  t:is(json.encode(json.decode '{"a":[],"b":{},"c":[[]]}'), '{"a":[],"b":{},"c":[[]]}',
       "an empty array decoded goes out as [] again, an empty object as {}")
  t:is(json.encode { a = json.null, b = false }, '{"a":null,"b":false}', "null and false")
  t:is(json.encode(nil), "null", "nil is null")
  t:is(json.encode(42), "42", "integer")
  t:is(json.encode(-0.5), "-0.5", "float")
  t:is(json.decode(json.encode(0.1 + 0.2)), 0.1 + 0.2, "a float reads back exactly")
  t:is(json.encode { 0 / 0, math.huge, -math.huge }, "[null,null,null]", "NaN and infinities: null")
  t:is(json.encode(9007199254740993), "9007199254740993", "a large integer is exact")
end)

tap.test("strings", function(t)
  t:is(json.encode 'a"b\\c', '"a\\"b\\\\c"', "quote and backslash")
  t:is(json.encode "l1\nl2\r\t", '"l1\\nl2\\r\\t"', "line breaks and tab")
  t:is(json.encode "\0\1\31\127", '"\\u0000\\u0001\\u001f\\u007f"', "control characters as \\u")
  t:is(json.encode "</script><b>&", '"\\u003c/script\\u003e\\u003cb\\u003e\\u0026"', "HTML-safe: < > &")
  -- what text.h keeps off a terminal (`queue --json` is read on one too), as \u
  -- escapes: the data given as it is, nothing that drives the terminal or turns
  -- the text around
  local hostile = "a\194\155b\226\128\174c\226\128\168d\226\128\169\216\156\226\128\142\226\129\166\226\129\169é€"
  t:is(json.encode(hostile), '"a\\u009bb\\u202ec\\u2028d\\u2029\\u061c\\u200e\\u2066\\u2069é€"',
       "C1 controls, direction overrides and isolates, U+2028/9 as \\u; other UTF-8 kept")
  t:is(json.decode(json.encode(hostile)), hostile, "  and read back the same")
  t:is(json.encode "café ✓ 😀", '"café ✓ 😀"', "UTF-8 kept as it is")
  t:is(json.encode "a\255b\192", '"a\u{FFFD}b\u{FFFD}"', "invalid bytes become U+FFFD")
  t:is(json.encode "\237\160\128", '"\u{FFFD}\u{FFFD}\u{FFFD}"', "a lone surrogate is invalid too")
  local s = "x\1y\"<\n\u{10FFFF}"
  t:is(json.decode(json.encode(s)), s, "round trip")
end)

tap.test("misuse raises", function(t)
  t:ok(not pcall(json.encode, { 1, 2, x = 3 }), "a list with keys")
  t:ok(not pcall(json.encode, { [true] = 1 }), "a boolean key")
  t:ok(not pcall(json.encode, { f = print }), "a function")
  local cyc = {}
  cyc.me = cyc
  t:ok(not pcall(json.encode, cyc), "a cycle")
  local shared = { 1 }
  t:is(json.encode { a = shared, b = shared }, '{"a":[1],"b":[1]}', "the same table twice is not a cycle")
end)

tap.test("round trip of a nested value", function(t)
  local v = { ok = true, list = { 1, "two", { three = 3 } }, empty = json.array {}, n = -12 }
  t:same(json.decode(json.encode(v)), v, "decode(encode(v)) == v")
end)

return tap.done()
