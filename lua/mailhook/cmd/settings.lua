-- mailhook settings — print the settings in use, one `key = value` a line,
-- with the password masked.  Exit 0; 1 when the file cannot be read or parsed.
local settings = require "mailhook.settings"
local args = require "mailhook.args"

return function(...)
  local opts, rest = args.parse({ ... }, {})
  if not opts then return args.fail("settings", rest) end
  if #rest > 0 then return args.fail("settings", "unexpected argument '" .. rest[1] .. "'") end
  local cfg, err = settings.load()
  if not cfg then return args.fail("settings", err, 1) end
  io.write("# ", settings.path(), "\n")
  for _, line in ipairs(settings.format(cfg)) do io.write(line, "\n") end
  return 0
end
