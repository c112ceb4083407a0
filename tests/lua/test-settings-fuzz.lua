-- mailhook.settings: regressions found by fuzzing, then a deterministic
-- property test (fixed seeds, math.randomseed; a few thousand cases, ~2 s):
-- 1. load() of random, often malformed files never raises: a table, or nil and
--    a message naming FILE:LINE (the line being a real `key = value` line), or
--    FILE: cannot read.
-- 2. update() of random valid settings writes a file that load() reads back
--    to the same values; the same update again leaves it byte-identical;
--    comments and blank lines stay on their lines.
-- 3. An invalid update leaves the file byte-identical and names the key.
-- 4. The password appears in no error message, nor in get() or format().
-- A failure prints the seed, the case number and the input.
local tap = require "tap"
local settings = require "mailhook.settings"

local slurp = tap.slurp

-- ------------------------------------------------------------ regressions

tap.test("update: a boolean false is saved, not dropped", function(t)
  local path = tap.tmpfile("tls_required = true\n")
  local cfg, err = settings.update({ tls_verify = false, tls_required = false }, path)
  t:ok(cfg, "update ok", err)
  t:is(cfg and cfg.tls_verify, false, "returned cfg has tls_verify false")
  t:is(slurp(path), "tls_required = false\ntls_verify = false\n", "both written, in place and appended")
  local back = assert(settings.load(path))
  t:is(back.tls_verify, false, "load gives tls_verify false")
  t:ok(settings.update({ tls = "none", auth = true, username = "u", password = "p", tls_required = false }, path),
       "tls = none with auth and tls_required = false is accepted")
  t:ok(settings.update({ tls_required = "OFF" }, path), "OFF")
  t:like(slurp(path), "^tls_required = false\n", "a string boolean is written normalised")
  os.remove(path)
end)

tap.test("load: a value error never shows the password (lone CR line ends)", function(t)
  for _, text in ipairs {
    "port = 25\rpassword = s3cret\n",
    "enabled = yes\rauth = true\rpassword = s3cret\r",
    "tls_verify = no\r#password = s3cret\n",
    "connect_timeout = 16\rpassword = s3cret\1\n",
  } do
    local path = tap.tmpfile(text)
    local cfg, err = settings.load(path)
    t:is(cfg, nil, string.format("%q refused", text))
    t:like(err, "^" .. path:gsub("%p", "%%%0") .. ":1: [%w_]+: must not contain control characters", "names FILE:1 and the key")
    t:ok(not tostring(err):find("s3cret", 1, true), "message does not show the password", err)
    os.remove(path)
  end
  local cfg, err, info = settings.update({ port = "25\r" }, "/nonexistent/dir/mailhook.conf")
  t:is(cfg, nil, "update refuses a CR in a port")
  t:is(info and info.key, "port", "naming the key")
  t:like(err, "control characters", "saying why")
end)

tap.test("update: a tiny numeric duration is written so that load() reads it back", function(t)
  local path = tap.tmpfile("")
  local cfg, err = settings.update({ session_deadline = 1e-5, retry_interval = 0.00012 }, path)
  t:ok(cfg, "update ok", err)
  t:ok(not slurp(path):find("e-", 1, true), "no exponent in the file", slurp(path))
  local back, lerr = settings.load(path)
  t:ok(back, "load() accepts what update() wrote", lerr)
  t:is(back and back.session_deadline, 1e-5, "1e-5 s back")
  t:is(back and back.retry_interval, 0.00012, "0.00012 s back")
  -- smaller than the file can hold: refused, naming the key, nothing written
  local before = slurp(path)
  local ok, err2, info = settings.update({ data_timeout = 1e-300 }, path)
  t:is(ok, nil, "1e-300 refused")
  t:is(info and info.key, "data_timeout", "naming the key")
  t:like(err2, "^data_timeout: ", "message starts with the key")
  t:is(slurp(path), before, "file byte-identical")
  os.remove(path)
end)

tap.test("port and connections: decimal digits only", function(t)
  for _, v in ipairs { "0x19", "1e1", "25.0", "0x1", "99999999999999999999" } do
    local ok, err, info = settings.validate { port = v }
    t:is(ok, nil, string.format("port %q refused", v))
    t:is(info and info.key, "port", "naming the key")
    t:is((settings.validate { connections = v }), nil, string.format("connections %q refused", v))
  end
  t:is(settings.validate { port = " 587 " }.port, 587, "spaces around digits are fine")
  t:is(settings.validate { port = 25.0 }.port, 25, "a whole float from Lua is fine")
  t:is(settings.validate { connections = "064" }.connections, 64, "leading zeros are decimal")
end)

tap.test("update of an empty file adds no blank line", function(t)
  local path = tap.tmpfile("")
  t:ok(settings.update({ enabled = true }, path), "update ok")
  t:is(slurp(path), "enabled = true\n", "just the new line")
  t:ok(settings.update({ enabled = "" }, path), "unset it")
  t:is(slurp(path), "", "empty again")
  t:ok(settings.update({ enabled = true }, path), "set again")
  t:is(slurp(path), "enabled = true\n", "still no blank line")
  os.remove(path)
  path = tap.tmpfile("\n")
  t:ok(settings.update({ enabled = true }, path), "a file of one blank line")
  t:is(slurp(path), "\nenabled = true\n", "keeps its blank line")
  os.remove(path)
end)

-- ------------------------------------------------------------ properties

-- Every password this test writes holds MARK, which nothing else holds.
local MARK = "pw!Q7"

local function R(n) return math.random(n) end
local function pick(list) return list[math.random(#list)] end
local function chance(p) return math.random() < p end

local function q(s)  -- a short printable form of s for diagnostics
  s = string.format("%q", s)
  return #s > 300 and s:sub(1, 300) .. "...(" .. #s .. " bytes)" or s
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- Splits text into lines as the parser does (LF or CRLF; a lone CR is not a break).
local function lines_of(text)
  local out = {}
  if text == "" then return out end
  for l in (text:gsub("\r?\n$", "") .. "\n"):gmatch("(.-)\r?\n") do out[#out + 1] = l end
  return out
end

local function is_comment(l)
  local b = l:match("^%s*(.-)%s*$")
  return b == "" or b:sub(1, 1) == "#"
end

-- a real (self-signed, test-only) certificate: update() checks that tls_ca_file
-- holds one (a text file is refused when saved)
local CA_FILE = tap.tmpfile([[
-----BEGIN CERTIFICATE-----
MIIBjjCCATOgAwIBAgIUTr5Fqixz2W7Cg4zUDZkspxuXc4cwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQbWFpbGhvb2sgdGVzdCBDQTAgFw0yNjEyMDQxNDAyNDBaGA8y
MTI2MTExMDE0MDI0MFowGzEZMBcGA1UEAwwQbWFpbGhvb2sgdGVzdCBDQTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABJT4lg4XUxZiA8mUZJFQijp0PMyfHYFdWaRS
K9xowfih0dWqu09/TrIzjouiwxIZ7EDrjahLlmHzck+m/hZ/G8GjUzBRMB0GA1Ud
DgQWBBS/wjzDhojDs+ERMzrGo1ifHkJ58TAfBgNVHSMEGDAWgBS/wjzDhojDs+ER
MzrGo1ifHkJ58TAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQDi
iDB4oo1ql0oH+x/X8SYSXN07UikKPmzLaXKiMOwr9gIhAOubzoy+1PiOpQHu4sRr
2rDhKefacrVjhMwHAA9MrcaR
-----END CERTIFICATE-----
]])

-- ------------------------------------------------------------ valid values
-- Each generator returns input (as given to update: typed, or a string as on
-- the command line), the value load() gives back, and the text for a file.

local ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
local AWKWARD = { "#", "=", " ", "\"", "\\", "'", "é", "☃", "日本", "==", " # ", "\"\"", "\\\"" }

-- A free string: letters, awkward characters, unicode; maybe spaces around it.
local function free_string(len)
  local parts = {}
  for i = 1, len or R(12) do
    if chance(0.3) then parts[i] = pick(AWKWARD)
    else local k = R(#ALNUM); parts[i] = ALNUM:sub(k, k) end
  end
  local s = table.concat(parts)
  if chance(0.15) then s = "  " .. s end
  if chance(0.15) then s = s .. " " end
  if chance(0.1) then s = "\"" .. s .. "\"" end
  if s == "" then s = "x" end
  return s
end

local function password()
  local s = free_string(R(10))
  local at = R(#s + 1)
  return s:sub(1, at - 1) .. MARK .. s:sub(at)
end

local function host()
  return pick { "mx.example.com", "a.b-c.example", "192.0.2.7", "[2001:db8::1]", "2001:db8::2",
                "localhost", "x" .. R(999) .. ".example.org" }
end

local function duration()
  local c = R(8)
  if c == 1 then local n = R(100000); return n, n end
  if c == 2 then local n = R(1000); return tostring(n), n end
  if c == 3 then local n = R(500); return n .. "m", n * 60 end
  if c == 4 then local n = R(48); return " " .. n .. " h ", n * 3600 end
  if c == 5 then local n = R(30); return n .. "D", n * 86400 end
  if c == 6 then local v = pick { 0.5, 0.25, 2.75, 0.1, 1.5 }; return v, v end
  if c == 7 then return "1.5h", 5400 end
  local v = pick { 0.001, 0.0001, 1e-5, 123.456 }
  return v, v
end

local function bool()
  local b = chance(0.5)
  local forms = b and { true, "true", "yes", "ON", "True" } or { false, "false", "no", "OFF", "No" }
  return pick(forms), b
end

local function enum(list)
  local v = pick(list)
  return chance(0.3) and v:upper() or v, v
end

local HEX = "0123456789abcdef"
local function fingerprint()
  local t = {}
  for i = 1, 64 do local k = R(16); t[i] = HEX:sub(k, k) end
  local hex = table.concat(t)
  local s = hex
  if chance(0.5) then s = s:upper() end
  if chance(0.4) then s = s:gsub("(%x%x)", "%1:"):sub(1, -2) end
  if chance(0.3) then s = "sha256:" .. s end
  return s, hex
end

local VALID = {
  enabled = bool,
  from = function()
    local a = pick { "pbx@example.com", "a.b+c@sub.example.org", "x_y-z@mail.example" }
    return a, a
  end,
  server = function()   -- an IPv6 address is read without its brackets
    local function bare(h) return (h:match("^%[(.*)%]$") or h) end
    local c = R(3)
    if c == 1 then local h = host(); return h, { bare(h) } end
    local list, want = {}, {}
    for i = 1, R(3) do list[i] = host(); want[i] = bare(list[i]) end
    if c == 2 then return list, want end
    return table.concat(list, pick { ",", ", ", " , " }), want
  end,
  port = function() local n = R(65535); return chance(0.5) and n or tostring(n), n end,
  tls = function() return enum { "auto", "implicit", "starttls", "none" } end,
  tls_required = bool,
  tls_min_version = function()
    if chance(0.3) then local v = pick { 1.0, 1.1, 1.2, 1.3 }; return v, string.format("%.1f", v) end
    return enum { "1.0", "1.1", "1.2", "1.3" }
  end,
  tls_verify = bool,
  tls_ca_file = function() return CA_FILE, CA_FILE end,
  tls_fingerprint = fingerprint,
  auth = bool,
  auth_mechanism = function() return enum { "plain", "login" } end,
  username = function() local s = free_string(); return s, s end,
  password = function() local s = password(); return s, s end,
  helo_name = function() local h = host(); return h, h end,
  retry_interval = duration, retry_max = duration, max_queue_age = duration,
  connect_timeout = duration, command_timeout = duration, data_timeout = duration,
  session_deadline = duration,
  connections = function() local n = R(64); return chance(0.5) and n or tostring(n), n end,
  rules = function() local s = free_string(); return s, s end,
  log_level = function() return enum { "debug", "info", "warn", "error" } end,
}
local VALID_KEYS = {}
for _, k in ipairs(settings.keys) do if VALID[k] then VALID_KEYS[#VALID_KEYS + 1] = k end end

-- ------------------------------------------------------------ bad values
local BAD_BY_KIND = {
  bool = { "maybe", "1", "", "tru e", 2, "yes\n", "true\0" },
  port = { "0", "65536", "25x", -1, 1.5, "2 5", "0x19", "" , "25\r" },
  count = { "0", "65", "1.5", -3, "many" },
  duration = { "0", "-1", "5x", "1e3", 0, -5, 1 / 0, 0 / 0, "h", "30 mins", "11000d" },
  enum = { "tls9", "sometimes", "1.4", 9, "" },
  address = { "bad@@x", "no-at", "a@", "@b.example", "a b@c.example" },
  host = { "-bad-", "a..b", ("x"):rep(300), "under_score.example", "a b" },
  hosts = { ",", "a.example,,b.example", "-x-", { "ok.example", "bad host" } },
  fingerprint = { "zz", ("a"):rep(63), ("g"):rep(64) },
  file = { "/nonexistent/ca.pem" },
  string = { "a\nb", "a\0b", "a\rb", "tab\there", {}, true },
}
local KIND = {
  enabled = "bool", tls_required = "bool", tls_verify = "bool", auth = "bool",
  from = "address", server = "hosts", port = "port", connections = "count",
  tls = "enum", tls_min_version = "enum", auth_mechanism = "enum", log_level = "enum",
  tls_ca_file = "file", tls_fingerprint = "fingerprint", helo_name = "host",
  username = "string", password = "string", password_command = "string",
  oauth_token_command = "string", rules = "string",
  retry_interval = "duration", retry_max = "duration", max_queue_age = "duration",
  connect_timeout = "duration", command_timeout = "duration", data_timeout = "duration",
  session_deadline = "duration",
}

local function bad_value(key)
  local v = pick(BAD_BY_KIND[KIND[key]])
  if v == "" then v = "x\1y" end   -- "" unsets: not a bad value
  if key == "password" and type(v) == "string" then v = v .. MARK end
  return v
end

-- ------------------------------------------------------------ random files

-- How a value is written in a file, the way a person might.
local function as_text(v)
  if type(v) == "table" then return table.concat(v, ",") end
  if type(v) == "number" then return math.tointeger(v) and tostring(v) or string.format("%.17g", v) end
  v = tostring(v)
  if v:match("^%s") or v:match("%s$") or v:sub(1, 1) == '"' then
    return '"' .. v:gsub('[\\"]', "\\%0") .. '"'
  end
  return v
end

local GARBAGE_LINES = {
  "colour = red", "Port = 25", "port_ = 1", "just words", "= value", "==", "port",
  "username = a=b=c", "password_command = x=y", 'username = "a \\"b\\" c"',
  'username = "unterminated', 'username = "bad\\"', 'username = "a"b"', 'username = ""',
  "username = José ☃", "username = \xff\xfe\xc3", "\xef\xbb\xbfport = 25", "port = 2\0 5",
  "\0\0\0", "port = \t25\t", "\vport = 25", "port = 25\f", "# comment", "   # indented",
  "#password = " .. MARK .. "commented", "", "   ", "enabled =", "server = ,",
  "tls_fingerprint = sha256:", "[section]", "export port=25", "port: 25", "port == 25",
}

local function random_line(state)
  local c = R(12)
  if c <= 3 then                                   -- a valid line
    local key = pick(VALID_KEYS)
    local input = VALID[key]()
    local l = key .. pick { " = ", "=", "  =\t", " =" } .. as_text(input)
    state.seen[#state.seen + 1] = l
    return l
  elseif c == 4 then                               -- a known key, a bad value
    local key = pick(VALID_KEYS)
    local v = bad_value(key)
    return key .. " = " .. (type(v) == "table" and "" or tostring(v))
  elseif c == 5 then                               -- a password, in many shapes
    local pw = password()
    return pick {
      "password = " .. pw, "  password=" .. pw .. "  ", 'password = "' .. pw:gsub('[\\"]', "\\%0") .. '"',
      'password = "' .. pw, "password = " .. pw .. "\0", "password " .. pw, "password = " .. pw .. "\1",
      "password: " .. pw, "passwrd = " .. pw, "PASSWORD = " .. pw,
    }
  elseif c == 6 and #state.seen > 0 then           -- a duplicate
    return pick(state.seen)
  elseif c == 7 and chance(0.1) then               -- a very long line
    return pick { "username = ", "password = " .. MARK, "", "# " } .. ("x"):rep(100 * 1024)
  elseif c == 8 then                               -- whitespace around
    return pick { " ", "\t", "   " } .. pick(GARBAGE_LINES) .. pick { "", " ", "\t" }
  end
  return pick(GARBAGE_LINES)
end

local function garbage(n)
  local t = {}
  for i = 1, n do t[i] = string.char(R(256) - 1) end
  return table.concat(t)
end

local function random_file()
  local c = R(20)
  if c == 1 then return "" end
  if c == 2 then return "# only\n#  comments\n\n   # here\r\n" end
  if c == 3 then return garbage(R(2000)) end
  if c == 4 then return garbage(R(200)) .. "\npassword = " .. password() .. "\n" .. garbage(R(50)) end
  local state, out = { seen = {} }, {}
  if chance(0.05) then out[1] = "\xef\xbb\xbf" end
  local n = R(12)
  for i = 1, n do
    out[#out + 1] = random_line(state)
    local r = math.random()
    -- LF, CRLF, a lone CR (not a line break: the next line joins this one's value);
    -- none only at the end (two lines written as one are one line, not a leak)
    out[#out + 1] = r < 0.6 and "\n" or r < 0.85 and "\r\n" or (r < 0.95 or i < n) and "\r" or ""
  end
  return table.concat(out)
end

-- Checks a load() result against properties 1 and 4; returns nil or a complaint.
local function check_load(path, text, ok, cfg, err)
  if not ok then return "load raised: " .. tostring(cfg) end
  if cfg ~= nil then
    if type(cfg) ~= "table" then return "load returned a " .. type(cfg) end
    local shown = table.concat(settings.format(cfg), "\n")
    if shown:find(MARK, 1, true) then return "format() shows the password: " .. q(shown) end
    local got = settings.get(path)
    for k, v in pairs(got or {}) do
      if tostring(v):find(MARK, 1, true) then return "get()." .. k .. " shows the password" end
    end
    if settings.password(cfg) and settings.password(cfg):find(MARK, 1, true) and got.password ~= "********" then
      return "get() does not mask the password"
    end
    return nil
  end
  if type(err) ~= "string" then return "nil without a message" end
  if err:find(MARK, 1, true) then return "message shows the password: " .. q(err) end
  local prefix = path .. ":"
  if err:sub(1, #prefix) ~= prefix then return "message does not start with the file: " .. q(err) end
  local n = err:sub(#prefix + 1):match("^(%d+): %S")
  if not n then
    if err:sub(#prefix + 1):match("^ cannot read: ") then return nil end
    return "message names no line: " .. q(err)
  end
  local lines = lines_of(text)
  n = tonumber(n)
  if n < 1 or n > #lines then return "line " .. n .. " out of range (" .. #lines .. " lines): " .. q(err) end
  if is_comment(lines[n]) then return "line " .. n .. " is blank or a comment: " .. q(err) end
  return nil
end

tap.test("load() of random files: never raises, FILE:LINE, no password shown", function(t)
  local path = tap.tmpfile("")
  local failures, cases, loaded = 0, 0, 0
  for seed = 1, 3 do
    math.randomseed(seed)
    for _ = 1, 800 do
      cases = cases + 1
      local text = random_file()
      write(path, text)
      local ok, cfg, err = pcall(settings.load, path)
      if ok and cfg then loaded = loaded + 1 end
      local why = check_load(path, text, ok, cfg, err)
      if why then
        failures = failures + 1
        if failures <= 5 then t:ok(false, "seed " .. seed .. " case " .. cases, why .. "\nfile: " .. q(text)) end
      end
    end
  end
  t:is(failures, 0, cases .. " random files, no property broken")
  t:ok(loaded > cases / 20, "some of them valid: " .. loaded .. " loaded")
  -- and a folder, which cannot be read as a file
  local ok, cfg, err = pcall(settings.load, "/")
  t:ok(ok and cfg == nil and err:match("^/: cannot read: "), "a folder: " .. tostring(err))
  os.remove(path)
end)

-- ------------------------------------------------------------ round trip

-- Random valid changes that keep the rules between keys; returns changes and
-- the values load() must give back.
local function valid_changes()
  local changes, want = {}, {}
  for _ = 1, R(8) do
    local key = pick(VALID_KEYS)
    changes[key], want[key] = VALID[key]()
  end
  if want.auth == true or chance(0.2) then
    changes.auth, want.auth = true, true
    if want.username == nil then changes.username, want.username = VALID.username() end
    if want.password == nil then changes.password, want.password = VALID.password() end
  end
  if want.tls == "none" then changes.tls_required, want.tls_required = false, false end
  return changes, want
end

local STARTS = {
  "", "# mailhook settings\n\n", "# a\r\n# b\r\nlog_level = warn\r\n\r\n# end\r\n",
  "\n\n# top\nport = 2525\n# between\nretry_max = 1h\n\n# bottom\n", "# no newline at end",
  "   # indented\n\t\n# last\n",
}

local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local function show(v)
  if type(v) == "table" then return "{" .. table.concat(v, ",") .. "}" end
  return type(v) == "string" and q(v) or tostring(v)
end

tap.test("update() round-trips random valid settings, idempotent, keeps comments", function(t)
  local path = tap.tmpfile("")
  local failures, cases = 0, 0
  local function fail(seed, why)
    failures = failures + 1
    if failures <= 5 then t:ok(false, "seed " .. seed .. " case " .. cases, why) end
  end
  for seed = 11, 13 do
    math.randomseed(seed)
    for _ = 1, 120 do
      cases = cases + 1
      local start = pick(STARTS)
      write(path, start)
      local changes, want = valid_changes()
      local desc = "start " .. q(start) .. "\nchanges:"
      for k, v in pairs(changes) do desc = desc .. " " .. k .. "=" .. show(v) end
      local cfg, err = settings.update(changes, path)
      if not cfg then
        fail(seed, "valid update refused: " .. tostring(err) .. "\n" .. desc)
      else
        if tostring(err):find(MARK, 1, true) then fail(seed, "update's second result shows the password") end
        local text1 = slurp(path)
        local back, lerr = settings.load(path)
        if not back then
          fail(seed, "update wrote a file load() refuses: " .. lerr .. "\n" .. desc .. "\nfile: " .. q(text1))
        else
          for k, v in pairs(want) do
            local got = k == "password" and settings.password(back) or back[k]
            if k == "auth_mechanism" and v == "auto" then v = nil end
            if not same(got, v) then
              fail(seed, k .. ": got " .. show(got) .. ", want " .. show(v) .. "\n" .. desc .. "\nfile: " .. q(text1))
            end
          end
          local shown = table.concat(settings.format(back), "\n") .. table.concat(settings.format(cfg), "\n")
          if shown:find(MARK, 1, true) then fail(seed, "format() shows the password") end
          for k, v in pairs(settings.get(path)) do
            if tostring(v):find(MARK, 1, true) then fail(seed, "get()." .. k .. " shows the password") end
          end
        end
        -- comments and blank lines of the start stay on their lines
        local old, new = lines_of(start), lines_of(text1)
        for i, l in ipairs(old) do
          if is_comment(l) and new[i] ~= l then
            fail(seed, "line " .. i .. " " .. q(l) .. " became " .. q(tostring(new[i])) .. "\n" .. desc)
          end
        end
        -- the same update again changes nothing
        local cfg2, err2 = settings.update(changes, path)
        if not cfg2 then fail(seed, "second update refused: " .. tostring(err2) .. "\n" .. desc)
        elseif slurp(path) ~= text1 then
          fail(seed, "second update changed the file:\n" .. q(text1) .. "\n" .. q(slurp(path)) .. "\n" .. desc)
        end
      end
    end
  end
  t:is(failures, 0, cases .. " random valid updates round-trip")
  os.remove(path)
end)

-- ------------------------------------------------------------ invalid updates

tap.test("an invalid update leaves the file byte-identical and names the key", function(t)
  local path = tap.tmpfile("")
  local failures, cases = 0, 0
  local function fail(seed, why)
    failures = failures + 1
    if failures <= 5 then t:ok(false, "seed " .. seed .. " case " .. cases, why) end
  end
  local keys = {}
  for k in pairs(KIND) do keys[#keys + 1] = k end
  table.sort(keys)
  for seed = 21, 23 do
    math.randomseed(seed)
    for _ = 1, 150 do
      cases = cases + 1
      -- a valid file to start from, holding a password
      write(path, pick(STARTS))
      assert(settings.update({ auth = true, username = "u", password = password(), server = host() }, path))
      local before = slurp(path)
      local changes = valid_changes()
      changes.password_command, changes.oauth_token_command = nil, nil
      local key = pick(keys)
      local bad = bad_value(key)
      if chance(0.1) then key = pick { "colour", "Port", "password ", "" } ; bad = "x" end
      changes[key] = bad
      local desc = "bad " .. key .. " = " .. show(bad)
      local ok, err, info = settings.update(changes, path)
      if ok then
        fail(seed, "accepted " .. desc)
      else
        if type(info) ~= "table" or info.key ~= key then
          fail(seed, "info.key is " .. show(info and info.key) .. " for " .. desc .. ": " .. tostring(err))
        end
        if type(err) ~= "string" or not err:find(key, 1, true) then
          fail(seed, "message does not name " .. key .. ": " .. tostring(err))
        end
        if tostring(err):find(MARK, 1, true) then fail(seed, "message shows the password: " .. q(err)) end
      end
      if slurp(path) ~= before then fail(seed, "file changed by the invalid update " .. desc) end
    end
  end
  t:is(failures, 0, cases .. " invalid updates write nothing and name the key")
  os.remove(path)
  os.remove(CA_FILE)   -- the last test to use it
end)

return tap.done()
