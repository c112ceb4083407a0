-- core.text.cut(s, n): at most n bytes, never inside a UTF-8 character (the
-- queue's and status's columns, the log's long values).  A run of bytes
-- 0x80-0xBF that belong to no character is not UTF-8, and the display shows
-- each as '?': the old walk back over every continuation byte cut such a run,
-- and all the text before it, to "" (a server's reply of stray bytes showed
-- as nothing).
local tap = require "tap"
local text = require("mailhook.core").text

tap.test("cut keeps whole characters", function(t)
  t:is(text.cut("abcdef", 3), "abc", "ASCII: n bytes")
  t:is(text.cut("abc", 10), "abc", "shorter than n: as is")
  t:is(text.cut("ab\xc3\xbc", 3), "ab", "a 2-byte character that would be cut: left out")
  t:is(text.cut("ab\xc3\xbcx", 4), "ab\xc3\xbc", "one that fits: kept")
  t:is(text.cut("a\xe2\x80\xae", 3), "a", "a 3-byte one cut after 2 of its bytes")
  t:is(text.cut("a\xf0\x9f\x98\x80b", 4), "a", "a 4-byte one cut after 3")
  t:is(text.cut("a\xf0\x9f\x98\x80b", 5), "a\xf0\x9f\x98\x80", "a 4-byte one whole")
  t:is(text.cut("abc", 0), "", "n = 0")
end)

tap.test("stray continuation bytes are bytes", function(t)
  local s = "reply " .. string.rep("\x80", 40)
  t:is(text.cut(s, 20), s:sub(1, 20), "a run of them after text: cut at n, the text kept")
  t:is(#text.cut(string.rep("\xbf", 10), 5), 5, "a run alone: n bytes, not none")
  t:is(text.cut("x\xc3\xbc\x80\x80\x80y", 5), "x\xc3\xbc\x80\x80", "after a whole character: cut at n")
  t:is(text.cut("\xe2\x80\x80\x80\x80", 4), "\xe2\x80\x80\x80", "a lead byte 4 back is no character reaching past n")
end)

return tap.done()
