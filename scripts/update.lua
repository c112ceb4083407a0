-- mailhook update KEY=VALUE ... — the seed's Update button: validate every
-- change, save the settings file atomically (mode 0600), print the settings
-- with the password masked.  `KEY=` unsets KEY; `password=-` reads the
-- password from the first line of stdin (keeps it out of the shell history).
-- Risky settings that are valid (allow_plaintext_auth = true) are warned about
-- on stderr after the save.
-- Exit 0 when saved; 2 when anything is invalid (nothing is written then);
-- 1 when writing failed (I/O error: the old file is left as it was).
local settings = require "mailhook.settings"
local args = require "mailhook.args"

local argv = { ... }
if #argv == 0 then
  io.stderr:write("usage: mailhook update KEY=VALUE ...\nkeys: ", table.concat(settings.keys, " "), "\n")
  return 2
end
local changes = {}
for _, a in ipairs(argv) do
  local key, value = a:match("^([^=]+)=(.*)$")
  if not key then return args.fail("update", "expected KEY=VALUE, got '" .. a .. "'") end
  if changes[key] ~= nil then return args.fail("update", "'" .. key .. "' given twice") end
  if key == "password" and value == "-" then
    -- one line, at most 4 KiB: `update password=- < /dev/zero` is refused, not read forever
    local buf = {}
    while #buf <= 4096 do
      local c = io.read(1)
      if not c or c == "\n" then break end
      buf[#buf + 1] = c
    end
    if #buf > 4096 then return args.fail("update", "password: the line on stdin is over 4 KiB") end
    value = table.concat(buf):gsub("\r$", "")
    if value == "" then return args.fail("update", "password: nothing on stdin") end
  end
  changes[key] = value
end
local cfg, err, info = settings.update(changes)
-- 2: something invalid (a key, a value, the file's syntax); 1: the disk failed
if not cfg then return args.fail("update", err, (info and info.code) and 1 or 2) end
io.write("# saved ", settings.path(), "\n")
for _, line in ipairs(settings.format(cfg)) do io.write(line, "\n") end
-- valid but risky (allow_plaintext_auth = true, ...): said every time, on stderr
for _, w in ipairs(settings.warnings(cfg)) do io.stderr:write("mailhook update: warning: ", w, "\n") end
return 0
