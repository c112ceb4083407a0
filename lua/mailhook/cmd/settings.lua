-- mailhook settings — print the settings in use, one `key = value` a line,
-- with the password masked.  Exit 0; 1 when the file cannot be read or parsed.
-- --json: the same facts as one JSON document (settings.report: {path,
-- settings = {key = value}, password_set, admin_password_set}).
local settings = require "mailhook.settings"
local args = require "mailhook.args"

return function(...)
  local opts, rest = args.parse({ ... }, { json = "flag" })
  if not opts then return args.fail("settings", rest) end
  if #rest > 0 then return args.fail("settings", "unexpected argument '" .. rest[1] .. "'") end
  local cfg, err = settings.load()
  if opts.json then
    local report = cfg and settings.report(cfg) or { error = err, path = settings.path() }
    report.ok = cfg ~= nil
    io.write(require("mailhook.json").encode(report), "\n")
    return cfg and 0 or 1
  end
  if not cfg then return args.fail("settings", err, 1) end
  io.write("# ", settings.path(), "\n")
  for _, line in ipairs(settings.format(cfg)) do io.write(line, "\n") end
  return 0
end
