-- The strict JSON decoder behind `mailhook hook EVENT --json`.
local tap = require "tap"
local json = require "mailhook.json"

tap.test("values", function(t)
  local v = assert(json.decode([=[ {"s":"a\"b\\c\/d\n\u00e9\ud83d\ude00", "n":[0,-1,2.5,1e3,-0.5E-1],
                                   "b":[true,false], "z":null, "o":{"deep":{"er":[[]]}}} ]=]))
  t:is(v.s, "a\"b\\c/d\né😀", "escapes, BMP and surrogate pairs to UTF-8")
  t:same(v.n, { 0, -1, 2.5, 1000, -0.05 }, "numbers")
  t:is(math.type(v.n[1]), "integer", "integers stay integers")
  t:same(v.b, { true, false }, "booleans")
  t:is(v.z, json.null, "null is a sentinel, not a missing key")
  t:is(type(v.o.deep.er[1]), "table", "nesting")
end)

tap.test("strictness, with positions", function(t)
  for text, want in pairs {
    ["{"] = "line 1, column 2",
    ['{"a":1,}'] = "expected a string key",
    ["[1,]"] = "unexpected character ']'",
    ['{"a":01}'] = "bad number",
    ['{"a":.5}'] = "unexpected character '.'",
    ['{"a":1.}'] = "bad number",
    ['{"a":+1}'] = "unexpected character '+'",
    ["{'a':1}"] = "expected a string key",
    ['{"a":tru}'] = "unexpected character 't'",
    ['"\\x"'] = "bad escape",
    ['"\\ud800"'] = "lone surrogate",
    ['"a\nb"'] = "control character",
    ['{"a":1}\n x'] = "line 2, column 2: trailing characters",
    [""] = "unexpected end of input",
    [string.rep("[", 300) .. string.rep("]", 300)] = "nested too deeply",
  } do
    local v, err = json.decode(text)
    t:is(v, nil, "refused: " .. text:sub(1, 20):gsub("\n", "\\n"))
    t:like(err, want:gsub("[%(%)%.%-%[%]%+]", "%%%0"), "message for " .. text:sub(1, 20):gsub("\n", "\\n"))
  end
end)

-- Strict by default (the console's API); with the builder's rule for text that
-- is not UTF-8 (`mailhook hook --json`), such a string is read by it, not refused.
tap.test("strings that are not UTF-8: refused, or read by the caller's rule", function(t)
  local core = require "mailhook.core"
  local v, err = json.decode('{"a":"Jos\233"}')
  t:is(v, nil, "strict: refused")
  t:like(err, "line 1, column 10: invalid UTF%-8 in a string", "where")
  v = assert(json.decode('{"a":"Jos\233 \\u00e9t\233","b":"\\ud83d","c":"\\udc00x","k":"ok"}', { utf8 = core.msg.utf8 }))
  t:is(v.a, "José été", "Latin-1 read as Windows-1252, around an escape")
  t:is(v.b .. "|" .. v.c, "\u{FFFD}|\u{FFFD}x", "a lone surrogate escape, high or low: U+FFFD")
  t:is(v.k, "ok", "UTF-8 untouched")
  t:is(core.msg.utf8("\147x\148 \128\129"), "“x” €\u{FFFD}", "core.msg.utf8: Windows-1252, an undefined byte U+FFFD")
  local ok, e = pcall(json.decode, "{}", { utf8 = true })
  t:ok(not ok and tostring(e):find("utf8 must be a function", 1, true), "utf8 not a function: misuse, raised")
end)

-- A long numeric id (a caller id, a ticket number) past 64 bits, or a decimal
-- with more digits than a float holds, keeps every digit: the text as written.
tap.test("numbers are exact: past 2^63 and long decimals stay the digits written", function(t)
  local v = assert(json.decode([[{"id":9223372036854775808,"neg":-9223372036854775809,"max":9223372036854775807,
    "min":-9223372036854775808,"ticket":123456789012345678901234567890,"e20":100000000000000000000,
    "pi":3.14159265358979323846264,"price":19.99,"whole":3.0,"e":1.5e3,"big":1e20,"tiny":2.5e-3}]]))
  t:is(v.id, "9223372036854775808", "2^63: the digits, not 9.2233720368548e+18")
  t:is(v.neg, "-9223372036854775809", "below -2^63: the digits")
  t:is(v.max, math.maxinteger, "2^63-1: an integer")
  t:is(math.type(v.max), "integer", "an integer")
  t:is(v.min, math.mininteger, "-2^63: an integer")
  t:is(v.ticket, "123456789012345678901234567890", "30 digits kept")
  t:is(v.e20, "100000000000000000000", "10^20 written out: kept as written")
  t:is(v.pi, "3.14159265358979323846264", "a decimal a float cannot hold: as written")
  t:is(v.price, 19.99, "19.99: a float that holds it")
  t:is(v.whole, 3, "3.0: the integer 3")
  t:is(math.type(v.whole), "integer", "an integer")
  t:is(v.e, 1500, "1.5e3: 1500")
  t:is(v.big, 1e20, "1e20: a float (exact)")
  t:is(v.tiny, 0.0025, "2.5e-3")
  local digits = string.rep("7", 400)
  t:is(json.decode("[" .. digits .. "]")[1], digits, "an integer of 400 digits: as written (not out of range)")
  local r = assert(json.decode('{"a":1e400,"b":-1E+999,"c":1e-400}'))
  t:is(r.a .. " " .. r.b .. " " .. r.c, "1e400 -1E+999 1e-400", "past a float's range either way: as written")
end)

return tap.done()
