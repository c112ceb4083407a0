-- mailhook.args — a small getopt for the CLI commands.
--
--   local opts, rest = args.parse({...}, { to = "list", subject = "string", json = "flag", t = "flag" })
--
-- Kinds: "flag" (true when present), "string" (once: given twice is refused,
-- naming it -- `test --to a --to b` took b and dropped a unseen, as `update`
-- refuses a key given twice), "list" (every occurrence, in order).  Long options are --name VALUE or --name=VALUE;
-- one-letter options are -x VALUE.  "--" ends the options.  On a bad option it
-- returns nil and a message naming it.
local M = {}

function M.parse(argv, spec)
  local opts, rest = {}, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      for j = i + 1, #argv do rest[#rest + 1] = argv[j] end
      break
    end
    local name, value = a:match("^%-%-([%w_-]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w_-]+)$") or a:match("^%-(%w)$") end
    if name then
      local key = name:gsub("-", "_")
      local kind = spec[key]
      if not kind then return nil, "unknown option '" .. a .. "'" end
      if kind == "flag" then
        if value then return nil, "option '" .. a .. "' takes no value" end
        opts[key] = true
      else
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then return nil, "option '" .. a .. "' needs a value" end
        end
        if kind == "list" then
          opts[key] = opts[key] or {}
          table.insert(opts[key], value)
        elseif opts[key] ~= nil then
          return nil, "option '" .. a:match("^[^=]*") .. "' given twice (it takes one value)"
        else
          opts[key] = value
        end
      end
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  return opts, rest
end

-- seconds(opt, value [, max]) -> seconds | nil, message: an option's time
-- bound (`--timeout`) by mailhook.duration's one rule (30, 30s, 2m; no
-- exponent, sign, zero, nan or inf), at most max seconds when given.
function M.seconds(opt, value, max)
  local n = require("mailhook.duration").parse(value)
  if not n or (max and n > max) then
    return nil, string.format("%s needs a number of seconds%s, not '%s'", opt,
                              max and string.format(" (up to %d)", max) or "", tostring(value))
  end
  return n
end

-- Prints "mailhook CMD: MESSAGE" on stderr and returns code (2 by default),
-- so a command can `return args.fail("enqueue", err)`.  Under a command whose
-- --json was given (M.json, set by mailhook.cli before it runs one of
-- M.JSON_COMMANDS) the failure is also its JSON document on stdout, {ok =
-- false, error, usage = true for a usage error}: "--json prints one JSON
-- document, same exit status" held only where the command reached its end
-- (`test --json --to bad` printed nothing a script could parse).
M.JSON_COMMANDS = { test = true, update = true, settings = true, queue = true, status = true }
M.json = false

function M.fail(cmd, msg, code)
  io.stderr:write("mailhook ", cmd, ": ", tostring(msg), "\n")
  code = code or 2
  if M.json then
    M.json = false      -- one document
    io.stdout:write(require("mailhook.json").encode { ok = false, error = tostring(msg),
                                                      usage = code == 2 or nil }, "\n")
  end
  return code
end

return M
