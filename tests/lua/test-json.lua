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
    ['{"a":1e400}'] = "line 1, column 6: number out of range",
    ["-1E+999"] = "number out of range",
    [string.rep("[", 300) .. string.rep("]", 300)] = "nested too deeply",
  } do
    local v, err = json.decode(text)
    t:is(v, nil, "refused: " .. text:sub(1, 20):gsub("\n", "\\n"))
    t:like(err, want:gsub("[%(%)%.%-%[%]%+]", "%%%0"), "message for " .. text:sub(1, 20):gsub("\n", "\\n"))
  end
end)

return tap.done()
