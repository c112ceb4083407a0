-- mailhook.cli — what `mailhook COMMAND [ARGS]` runs.
-- A command is, in order: scripts/COMMAND.lua (an admin action a site may
-- edit; it gets the arguments as `...` and returns the exit status), or the
-- module mailhook.cmd.COMMAND (a function(...) returning the exit status).
local core = require "mailhook.core"

local M = {}

-- name, arguments, summary[, script]: the help text, in the order an administrator
-- meets them.  script = true: the command is an admin action in scripts/NAME.lua
-- (a site may edit it), so its absence is a broken installation, said as such.
M.commands = {
  { "run", "[--connections N] [RULES.lua ...]", "the service: watch the pickup folder and deliver the queue" },
  { "test", "[--to ADDR] [--timeout S] [--json]", "connect, negotiate TLS, authenticate, check the From address; report",
    true },
  { "update", "[--json] KEY=VALUE ...", "validate and save settings (password masked in the output)", true },
  { "settings", "[--json]", "print the settings, password masked" },
  { "enqueue", "--to A [--cc A] [--bcc A] [--from A] [--subject S]\n" ..
                "            [--attach F]... [--html F]",
    "queue a message (body on stdin) durably; print its id", true },
  { "sendmail", "[-t] [-i] [-f FROM] [-F NAME] [-N DSN] [-bp|-bs|-bv|-q] [RCPT...]",
    "queue a full message from stdin, as Postfix's sendmail(1) does" },
  { "hook", "[--rules PATH] EVENT [KEY=VALUE ...] | EVENT --json", "run the rules for EVENT" },
  { "queue", "[--json] | show ID | rm ID | retry ID", "inspect and manage the queue" },
  { "flush", "[--timeout S]", "deliver the queue now and wait" },
  { "status", "[--json] [--timeout S]", "is mail flowing, and if not why (exit 0 only when it flows)" },
  { "repl", "", "interactive Lua with the runtime loaded" },
  { "version", "", "print the version" },
  { "help", "[COMMAND]", "this text; with COMMAND, that command's --help" },
}

-- The commands whose --help is answered here (M.main): they parse no options
-- of their own that --help could be.
M.HELP_HERE = { update = true, settings = true, hook = true, sendmail = true }

function M.help(out)
  out = out or io.stdout
  out:write("usage: mailhook [-c FILE] [-s DIR] [-v|-q] COMMAND [ARGS]\n",
            "       mailhook [-c FILE] [-s DIR] SCRIPT.lua [ARGS] | -e CODE [ARGS]\n\ncommands:\n")
  for _, c in ipairs(M.commands) do
    -- (a command without arguments, repl: its name alone, no padding left at the end)
    out:write((string.format("  %-9s %s", c[1], c[2]):gsub("%s+$", "")), "\n            ", c[3], "\n")
  end
  out:write("\noptions:\n",
            "  -c FILE   settings file (now ", core.paths.conf, ")\n",
            "  -s DIR    spool folder (now ", core.paths.spool, ")\n",
            "  -v / -q   debug / errors-only logging\n")
end

local function file_exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

local dispatch, command_help

-- wants_json(cmd, ...) -> whether a command printing JSON (args.JSON_COMMANDS)
-- was given --json before any "--" (--json=VALUE too: a usage error of its
-- own, said as JSON); its failures are then printed as JSON too (args.fail).
local function wants_json(cmd, ...)
  if not require("mailhook.args").JSON_COMMANDS[cmd] then return false end
  for i = 1, select("#", ...) do
    local a = select(i, ...)
    if a == "--" then break end
    if a == "--json" or a:sub(1, 7) == "--json=" then return true end
  end
  return false
end

-- main(cmd, ...) -> the exit status of mailhook COMMAND ARGS.  Under --json
-- (mailhook.args.JSON_COMMANDS) a command that raises instead of failing said
-- nothing on stdout: its error is still one JSON document ({ok = false, error}),
-- on stdout, and the error raised on as before (stderr, exit 1).
function M.main(cmd, ...)
  local args = require "mailhook.args"
  -- (without --json nothing is wrapped: the error and its traceback as ever)
  if not wants_json(cmd, ...) then return dispatch(cmd, ...) end
  args.json = true
  local raised
  local ok, r = xpcall(dispatch, function(e)
    raised = e
    return debug.traceback(tostring(e), 2)
  end, cmd, ...)
  if ok then return r end
  if args.json then
    args.json = false
    io.stdout:write(require("mailhook.json").encode { ok = false, error = tostring(raised) }, "\n")
    io.stdout:flush()
  end
  error(r, 0)
end

-- A command's line of the help, as its --help (exit 0).
function command_help(cmd)
  for _, c in ipairs(M.commands) do
    if c[1] == cmd then
      io.stdout:write("usage: mailhook ", c[1], c[2] ~= "" and " " or "", c[2], "\n  ", c[3], "\n",
                      "(mailhook help: every command; man mailhook)\n")
    end
  end
  return 0
end

function dispatch(cmd, ...)
  if cmd == nil then M.help(io.stderr) return 2 end   -- no command: a usage error
  if cmd == "help" then
    -- `help COMMAND` is that command's --help (as git's, ip's); anything
    -- else after help is a usage error, never ignored
    local topic, extra = ...
    if topic == nil then M.help() return 0 end
    if (topic == "--help" or topic == "-h") and extra == nil then return command_help("help") end
    local known = false
    for _, c in ipairs(M.commands) do known = known or c[1] == topic end
    if extra ~= nil or not known then
      io.stderr:write("mailhook help: ", known and "one command at most" or
                      ("unknown command '" .. tostring(topic):gsub("[%c\128-\255]", "?") .. "'"),
                      " (try 'mailhook help')\n")
      return 2
    end
    if topic == "help" or topic == "version" then return command_help(topic) end
    return dispatch(topic, "--help")
  end
  if cmd == "version" then
    local first, extra = ...
    if (first == "--help" or first == "-h") and extra == nil then return command_help("version") end
    if first ~= nil then
      io.stderr:write("mailhook version: takes no argument\n")
      return 2
    end
    print("mailhook " .. core.version)
    return 0
  end
  if not cmd:match("^[%w_-]+$") then
    io.stderr:write("mailhook: unknown command '", cmd, "' (try 'mailhook help')\n")
    return 2
  end
  -- `--help` to a command that reads no options of its own (update takes
  -- KEY=VALUE, settings none, hook an EVENT, sendmail only sendmail's flags):
  -- its line of the help, exit 0, where it was a usage error ("expected
  -- KEY=VALUE, got '--help'"; sendmail: "unknown option '--'").  -h too, but
  -- for sendmail, whose -h N is the hop count.
  local first = ...
  if M.HELP_HERE[cmd] and (first == "--help" or (first == "-h" and cmd ~= "sendmail")) then
    return command_help(cmd)
  end
  local script = core.paths.scripts .. "/" .. cmd .. ".lua"
  if core.loadscript then      -- the binary's: precompiled when it matches (main.c), one open
    local chunk, err, unopened = core.loadscript(script)
    if chunk then return chunk(...) end
    if not unopened then error(err, 0) end
  elseif file_exists(script) then
    local chunk, err = loadfile(script)
    if not chunk then error(err, 0) end
    return chunk(...)
  end
  local name = "mailhook.cmd." .. cmd:gsub("-", "_")
  local ok, mod = pcall(require, name)
  if not ok then
    if tostring(mod):find("module '" .. name .. "' not found", 1, true) then
      for _, c in ipairs(M.commands) do
        if c[1] == cmd and c[4] then
          io.stderr:write("mailhook: the '", cmd, "' command is the script ", script,
                          ", which is missing (restore it from the source tree or reinstall)\n")
          return 1
        end
      end
      io.stderr:write("mailhook: unknown command '", cmd, "' (try 'mailhook help')\n")
      return 2
    end
    error(mod, 0)
  end
  return mod(...)
end

return M
