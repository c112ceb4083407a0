-- mailhook.json — a small strict JSON decoder (RFC 8259) for `mailhook hook
-- EVENT --json`: no dependency, exact error positions, nothing lenient (a key
-- given twice in one object is an error, not the last one winning).
--   json.decode(text [, {utf8 = fn}]) -> value | nil, "line L, column C: message"
--     strict by default: a string that is not UTF-8 is an error.  With utf8 (a
--     function: core.msg.utf8, the builder's rule), a string's bytes that are
--     not UTF-8 go through it instead (`mailhook hook --json`: a PBX's Latin-1
--     "Jos\xe9" is read as Windows-1252, "José", not a refused event) and a
--     lone surrogate escape (\ud83d: a UTF-16 string cut in the middle of a
--     pair, which JSON.stringify writes so) is U+FFFD.
-- null decodes to json.null (a unique sentinel), so a caller can tell it from
-- an absent key; objects and arrays become tables.
--   json.encode(value) -> text   (the `--json` of the CLI and the console; below)
local M = { null = setmetatable({}, { __tostring = function() return "null" end }) }

-- Tables that are arrays even when empty (json.array, and every array decode
-- reads): an empty list goes out as [], not {} -- a page's `.length` or
-- `.forEach`, or `jq '.[]'`, fails on {}.  A status file or a rule's data
-- decoded and encoded again keeps its empty lists as lists.
local ARRAY = setmetatable({}, { __mode = "k" })

function M.array(t) t = t or {}; ARRAY[t] = true; return t end
M.list = M.array
-- Whether t is a JSON array: marked, or decoded from [...] (an empty one too).
function M.is_array(t) return type(t) == "table" and (ARRAY[t] == true or t[1] ~= nil) end

local ESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function utf8char(cp) return utf8.char(cp) end

-- The significant digits of a number's text ("-0.01250e3" -> "125"): what a
-- caller wrote, to compare with what a float keeps.
local function digits(t)
  local mant = t:gsub("^-", ""):gsub("[eE].*$", ""):gsub("%.", "")
  return (mant:gsub("^0+", ""):gsub("0+$", ""))
end

-- The shortest text a float reads back from (%.15g, else %.16g, else %.17g).
local function shortest(f)
  for prec = 15, 17 do
    local t = string.format("%." .. prec .. "g", f)
    if tonumber(t) == f then return t end
  end
  return string.format("%.17g", f)
end
M.shortest = shortest

-- number(text) -> the value of a JSON number, exact: an integer when the text
-- is one within 64 bits; a float when the float holds every digit written
-- (19.99, 1.5e3 -> 1500, 1e20); else the text itself, as a string (also one
-- past a float's range, 1e400, or below it, 1e-400), so that a
-- ticket number or caller id of 20 digits (9223372036854775808 and up, past
-- 2^63) or a 25-digit decimal reaches the mail with none of its digits lost
-- instead of as 9.2233720368548e+18 (docs/rules.md).
function M.number(num)
  local v = tonumber(num)
  if math.type(v) == "integer" then return v end
  if not num:find("[.eE]") then return num end   -- an integer past 64 bits: as written, any length
  -- 1e400 would be inf (a value no JSON can hold: encode writes null): as
  -- written, as 1e-400 (which would be 0) is; the event is never refused for it
  if v == math.huge or v == -math.huge then return num end
  if digits(num) ~= digits(shortest(v)) then return num end
  return math.tointeger(v) or v
end

function M.decode(s, opts)
  if type(s) ~= "string" then return nil, "expected a string" end
  local fix = opts and opts.utf8
  if fix ~= nil and type(fix) ~= "function" then error("json.decode: utf8 must be a function", 2) end
  local pos = 1
  local function fail(msg)
    local line, col = 1, 1
    for i = 1, math.min(pos - 1, #s) do
      if s:byte(i) == 10 then line, col = line + 1, 1 else col = col + 1 end
    end
    error({ msg = string.format("line %d, column %d: %s", line, col, msg) }, 0)
  end
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local function str()
    pos = pos + 1
    local out = {}
    while true do
      local a, b = s:find('^[^"\\%z\1-\31]+', pos)
      if a then
        local run = s:sub(a, b)
        -- RFC 8259 8.1: JSON text is UTF-8 (a multi-byte sequence never holds '"'
        -- or '\\', so a run holds whole characters); invalid bytes are refused
        -- where they are, not passed on to the rules as a value, unless the
        -- caller gave its rule for them (utf8)
        local n, bad = utf8.len(run)
        if not n and fix then run = fix(run)
        elseif not n then pos = a + bad - 1; fail("invalid UTF-8 in a string") end
        out[#out + 1] = run; pos = b + 1
      end
      local c = s:sub(pos, pos)
      if c == '"' then pos = pos + 1; return table.concat(out) end
      if c == "" then fail("unterminated string") end
      if c ~= "\\" then fail("control character in a string") end
      local e = s:sub(pos + 1, pos + 1)
      if ESC[e] then out[#out + 1] = ESC[e]; pos = pos + 2
      elseif e == "u" then
        local h = s:match("^%x%x%x%x", pos + 2)
        if not h then fail("bad \\u escape") end
        local cp = tonumber(h, 16)
        pos = pos + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local l = s:match("^\\u(%x%x%x%x)", pos)
          local lo = l and tonumber(l, 16)
          if lo and lo >= 0xDC00 and lo <= 0xDFFF then
            cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
            pos = pos + 6
          elseif fix then cp = 0xFFFD
          else fail("lone surrogate in \\u escape") end
        elseif cp >= 0xDC00 and cp <= 0xDFFF then
          if not fix then fail("lone surrogate in \\u escape") end
          cp = 0xFFFD
        end
        out[#out + 1] = utf8char(cp)
      else
        fail("bad escape '\\" .. e .. "'")
      end
    end
  end
  local depth = 0
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      depth = depth + 1
      if depth > 200 then fail("nested too deeply") end
      pos = pos + 1
      local obj = {}
      ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1; depth = depth - 1; return obj end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then fail("expected a string key") end
        local k = str()
        ws()
        if s:sub(pos, pos) ~= ":" then fail("expected ':' after a key") end
        -- a key twice: one of its values would be dropped unseen (null is
        -- json.null, never nil, so a key already read is never nil here)
        if obj[k] ~= nil then
          fail("duplicate key '" .. k:sub(1, 80):gsub("[%c\\\128-\255]", function(ch) return "\\" .. ch:byte() end) .. "'")
        end
        pos = pos + 1
        obj[k] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then depth = depth - 1; return obj end
        if d ~= "," then pos = pos - 1; fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      depth = depth + 1
      if depth > 200 then fail("nested too deeply") end
      pos = pos + 1
      local arr = M.array {}
      ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1; depth = depth - 1; return arr end
      while true do
        arr[#arr + 1] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then depth = depth - 1; return arr end
        if d ~= "," then pos = pos - 1; fail("expected ',' or ']'") end
      end
    elseif c == '"' then
      return str()
    elseif c == "-" or c:match("%d") then
      local p = pos
      if s:sub(p, p) == "-" then p = p + 1 end
      local int = s:match("^%d+", p)
      if not int or (#int > 1 and int:sub(1, 1) == "0") then fail("bad number") end
      p = p + #int
      if s:sub(p, p) == "." then
        local frac = s:match("^%d+", p + 1)
        if not frac then fail("bad number") end
        p = p + 1 + #frac
      end
      if s:sub(p, p):match("[eE]") then
        local ex = s:match("^[-+]?%d+", p + 1)
        if not ex then fail("bad number") end
        p = p + 1 + #ex
      end
      local num = s:sub(pos, p - 1)
      local v = M.number(num)
      pos = pos + #num
      return v
    elseif s:sub(pos, pos + 3) == "true" then pos = pos + 4; return true
    elseif s:sub(pos, pos + 4) == "false" then pos = pos + 5; return false
    elseif s:sub(pos, pos + 3) == "null" then pos = pos + 4; return M.null
    elseif c == "" then fail("unexpected end of input")
    else fail("unexpected character '" .. (c:match("^[\33-\126]$") and c or ("\\" .. c:byte())) .. "'") end
  end
  local ok, v = pcall(function()
    local r = value()
    ws()
    if pos <= #s then fail("trailing characters after the value") end
    return r
  end)
  if not ok then
    if type(v) == "table" then return nil, v.msg end
    error(v, 0)
  end
  return v
end

-- ------------------------------------------------------------------ encode
-- encode(value) -> one line of JSON.  Tables with keys 1..n only are arrays (an
-- empty table is {} unless marked with json.array(t)); other tables are objects
-- with their keys sorted, so the output is stable (tests and diffs compare it).
-- json.null is null; NaN and infinities (no JSON form) are null.  Strings are
-- made valid UTF-8 (a stray byte becomes U+FFFD: a server's reply may hold
-- anything), and <, >, & are escaped as \u003c... so the text may be put in an
-- HTML page as it is; the C1 controls, direction overrides and isolates and
-- U+2028/9 are \u escapes too (the output is read on terminals).  A function, a cycle or a non-string key is misuse: it raises.

local ESCAPE = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
                 ["<"] = "\\u003c", [">"] = "\\u003e", ["&"] = "\\u0026" }

local function valid_utf8(s)
  if utf8.len(s) then return s end
  local out, i = {}, 1
  while i <= #s do
    local ok, n = pcall(utf8.codepoint, s, i)
    local len = ok and #utf8.char(n) or nil
    if ok and utf8.len(s:sub(i, i + len - 1)) == 1 then
      out[#out + 1] = s:sub(i, i + len - 1)
      i = i + len
    else
      out[#out + 1] = "\u{FFFD}"
      i = i + 1
    end
  end
  return table.concat(out)
end

-- The characters text.h keeps off a terminal besides the controls, as \uNNNN:
-- the C1 controls (U+0080-9F: U+009B is a CSI to xterm, and `mailhook queue
-- --json` is read on terminals too), the direction marks, overrides and
-- isolates (U+061C, U+200E/F, U+202A-E, U+2066-9: a Subject "\u{202E}txt.exe"
-- read reversed) and U+2028/9 (a line break to a terminal and to JavaScript).
-- A decoder gets the same characters back: the data is given as it is.
local function uesc(ch) return string.format("\\u%04x", utf8.codepoint(ch)) end

local function encode_string(s)
  s = valid_utf8(s)
  s = s:gsub('[%c"\\<>&\127]', function(c)
    return ESCAPE[c] or string.format("\\u%04x", c:byte())
  end)
  if s:find("[\194\216\226]") then
    s = s:gsub("\194[\128-\159]", uesc):gsub("\216\156", uesc):gsub("\226\128[\142\143\168-\174]", uesc)
         :gsub("\226\129[\166-\169]", uesc)
  end
  return '"' .. s .. '"'
end

local function encode(v, out, seen)
  local t = type(v)
  if v == nil or v == M.null then out[#out + 1] = "null"
  elseif t == "boolean" then out[#out + 1] = v and "true" or "false"
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then out[#out + 1] = "null"
    elseif math.type(v) == "integer" then out[#out + 1] = string.format("%d", v)
    else out[#out + 1] = string.format("%.17g", v) end
  elseif t == "string" then out[#out + 1] = encode_string(v)
  elseif t == "table" then
    if seen[v] then error("json.encode: a table contains itself", 0) end
    seen[v] = true
    local n = #v
    local keys, count = {}, 0
    for k in pairs(v) do
      count = count + 1
      if type(k) == "string" then keys[#keys + 1] = k
      elseif not (math.type(k) == "integer" and k >= 1 and k <= n) then
        error("json.encode: a key must be a string (got " .. type(k) .. ")", 0)
      end
    end
    if (n > 0 and count == n) or (count == 0 and ARRAY[v]) then
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], out, seen)
      end
      out[#out + 1] = "]"
    else
      if #keys ~= count then error("json.encode: a table mixes a list and keys", 0) end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = encode_string(k)
        out[#out + 1] = ":"
        encode(v[k], out, seen)
      end
      out[#out + 1] = "}"
    end
    seen[v] = nil
  else
    error("json.encode: cannot encode a " .. t, 0)
  end
end

function M.encode(v)
  local out = {}
  encode(v, out, {})
  return table.concat(out)
end

return M
