-- mailhook hook EVENT [KEY=VALUE ...] | EVENT --json [--rules PATH]
-- Runs the rules for EVENT in this process: whatever they enqueue is durable
-- before it exits, so an event becomes mail even while no service runs.
-- Exit: 0 ok; 1 a rule failed (named) or a rule file did not load;
-- 2 a malformed event (bad JSON, KEY without =, a non-object, a bad or
-- reserved field name, a key given twice) or usage.
-- Every rule runs under its budget (docs/rules.md); a rule stuck where no
-- budget check can run (inside one C call) makes the watchdog end the process
-- with exit 1 and a log line naming it: mail already queued stays queued.
local core = require "mailhook.core"
local rules = require "mailhook.rules"

-- The usage names every option, as `mailhook hook --help` does: it left out
-- --rules, so the line a mistake printed hid the way to try another rule file.
local function usage(msg)
  io.stderr:write("mailhook hook: ", msg, "\n",
                  "usage: mailhook hook [--rules PATH] EVENT [KEY=VALUE ...] | mailhook hook EVENT --json < object.json\n")
  return 2
end

-- JSON values as event fields: null means "no value": a key whose value is
-- null is absent.  In a list, a null is "" instead: dropped, it left a hole,
-- and every element after it was lost to ipairs and {{#each}} (["a",null,"c"]
-- showed only a).
local function strip_null(v, null)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    if x ~= null then out[k] = strip_null(x, null)
    elseif math.type(k) == "integer" then out[k] = "" end
  end
  return out
end

-- Limits (docs/spool.md, "Limits"): the JSON document at most limits.event
-- bytes, each field's value (KEY=VALUE, or a string anywhere in the JSON) at
-- most limits.field bytes.  Past them the event is refused, naming what.
local fsutil = require("mailhook.core").fsutil

local function size(n)
  if n % (1 << 20) == 0 then return (n >> 20) .. " MiB" end
  if n % 1024 == 0 then return (n >> 10) .. " KiB" end
  return n .. " bytes"
end

-- nil, or a message naming the first value over the field limit.
local function too_big(name, v, depth)
  if type(v) == "string" and #v > fsutil.limits.field then
    return string.format("field '%s': %d bytes, over the %s limit", name, #v, size(fsutil.limits.field))
  end
  if type(v) == "table" and depth < 300 then
    for k, x in pairs(v) do
      local why = too_big(type(k) == "string" and (name .. "." .. k) or (name .. "[" .. tostring(k) .. "]"), x,
                          depth + 1)
      if why then return why end
    end
  end
end

-- fields_from(argv, json) -> event, fields | nil, message
-- kept(raw, made) -> the value a rule sees: made (raw read as UTF-8 by the
-- builder's rule), except for a path to something that exists, given in bytes
-- that are not UTF-8 (an old PBX's /var/spool/vm/msg\xe9.wav): made UTF-8 it
-- named no file, and the recording was sent without, "No such file".  The
-- message builder makes its name UTF-8 when it is shown (docs/message.md).
local function kept(raw, made)
  if made ~= raw and type(raw) == "string" and raw:sub(1, 1) == "/" and not raw:find("\0", 1, true)
     and fsutil.mode(raw) then
    return raw
  end
  return made
end

local function fields_from(argv)
  local event, fields, json, rules_path = nil, {}, false, nil
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--json" then json = true
    elseif rules_path and (a == "--rules" or a:match("^%-%-rules=")) then
      -- given twice: the first was dropped without a word (its rules never ran)
      return nil, "option '--rules' given twice (it takes one value)"
    elseif a == "--rules" then
      i = i + 1
      rules_path = argv[i]
      if not rules_path or rules_path == "" then return nil, "option '--rules' needs a folder or file" end
    elseif a:match("^%-%-rules=") then
      -- empty (`--rules="$UNSET"`): it resolved to the settings file's folder,
      -- and every *.lua there ran as a rule file
      rules_path = a:sub(9)
      if rules_path == "" then return nil, "option '--rules' needs a folder or file" end
    elseif a:match("^%-%-") then return nil, "unknown option '" .. a .. "'"
    elseif not event then
      local bad = rules.event_problem(a)
      if bad then return nil, bad end
      event = a
    else
      local k, v = a:match("^([^=]*)=(.*)$")
      if not k then return nil, "argument '" .. rules.shown(a) .. "' is not KEY=VALUE" end
      local bad = rules.field_problem(k, fields)
      if bad then return nil, bad .. (rules.valid_field(k) and #k <= rules.max_name and "" or
                                      " in '" .. rules.shown(a) .. "'") end
      local why = too_big(k, v, 0)
      if why then return nil, why end
      fields[k] = kept(v, core.msg.utf8(v))   -- docs/rules.md, "Values": Latin-1 read as Windows-1252
    end
    i = i + 1
  end
  if not event then return nil, "no EVENT given" end
  if json then
    if next(fields) then return nil, "--json reads the fields from stdin; KEY=VALUE cannot be mixed with it" end
    local json_mod = require "mailhook.json"
    local text, rerr, rinfo = fsutil.read(0, { max = fsutil.limits.event, what = "the JSON on stdin" })
    if not text and rinfo and rinfo.code == "EBADF" then text = "" end
    if not text then return nil, rerr end
    -- a string that is not UTF-8 (a PBX's Latin-1 caller name) is read as
    -- KEY=VALUE's are, by the builder's rule: refused, the event was lost.
    -- The field limit is on the bytes given, as KEY=VALUE's and mh_emit's (a
    -- Latin-1 value grows up to 3 times made UTF-8: 30000 bytes of \x80 were
    -- refused as "90000 bytes, over the 64 KiB limit" here and taken there):
    -- read first as given, the sizes checked, then read made UTF-8.
    local converted = false
    local v, err = json_mod.decode(text, { utf8 = function(run) converted = true; return run end })
    if v == nil then return nil, "bad JSON on stdin: " .. err end
    if type(v) ~= "table" or not text:match("^%s*{") then
      return nil, "the JSON on stdin must be an object ({...}), not " ..
        (v == json_mod.null and "null" or type(v) == "table" and "an array" or type(v) == "string" and "a string"
         or tostring(v))
    end
    local given = strip_null(v, json_mod.null)
    if converted then
      v, err = json_mod.decode(text, { utf8 = core.msg.utf8 })
      if v == nil then return nil, "bad JSON on stdin: " .. err end   -- a key given twice once made UTF-8
      fields = strip_null(v, json_mod.null)
      for k, x in pairs(given) do fields[k] = kept(x, fields[k]) end   -- (the top level's paths)
    else
      fields = given
    end
    for k in pairs(fields) do
      local bad = rules.field_problem(k)   -- the keys obey the rule KEY=VALUE obeys
      if bad then return nil, bad .. " in the JSON on stdin" end
    end
    for k, x in pairs(given) do
      local why = too_big(tostring(k), x, 0)
      if why then return nil, why end
    end
  end
  return event, fields, rules_path
end

return function(...)
  local event, fields, rules_path = fields_from({ ... })
  if not event then return usage(fields) end

  local settings = require "mailhook.settings"
  -- as every intake reads them: a typo in a key the hook does not use is warned,
  -- not fatal; its rules, templates and their budgets it does use (a bad
  -- rule_timeout left at its default would run rules under another budget)
  local cfg, err = settings.load_intake(nil, { rules = true, templates = true, rule_timeout = true,
                                              rule_memory = true })
  if not cfg then
    io.stderr:write("mailhook hook: settings: ", tostring(err), "\n")
    return 1
  end
  settings.hold(cfg)   -- read once: the templates' folder and mh.enqueue use these

  -- A --rules path that names nothing is a typo: without this, no rule ran
  -- and hook said only "no rule handles event" with exit 0 (the settings'
  -- folder may be missing: no rules yet). Relative: as rules.load takes it.
  -- One that cannot be reached (EACCES on the way) is not "no such": rules.load
  -- names it and why (exit 1).
  if rules_path then
    local exists = core.rstate.exists
    if exists(rules_path) == false and (rules_path:sub(1, 1) == "/" or
                                        exists(rules.default_paths({ rules = rules_path })) == false) then
      return usage("--rules " .. rules.shown(rules_path) .. ": no such folder or file")
    end
  end
  -- the same typo in the settings' `rules` (set, so no "no rules yet"): every
  -- event was dropped with exit 0, the PBX told all was well
  local folder = not rules_path and rules.missing_folder(cfg)
  if folder then
    io.stderr:write("mailhook hook: settings: rules = ", rules.shown(cfg.rules), ": no such folder or file (",
                    rules.shown(folder), "): no rule ran for event '", rules.shown(event),
                    "'; fix it with `mailhook update rules=FOLDER`\n")
    return 1
  end
  rules.configure(cfg)
  -- this process exists to run rules: the loop itself must never stall either
  core.watchdog { stall = rules.time_budget + rules.grace, exit = 1 }
  local paths = rules_path or rules.default_paths(cfg)
  local loaded, load_errors = rules.load(paths)
  -- where the rules were looked for, should none handle the event: a newcomer
  -- who had not copied a rule yet read only "no rule handles event" (exit 0)
  local where
  if core.rstate.exists(paths) == false then
    where = rules.shown(paths) .. " does not exist yet: put rule files (*.lua) there"
  else
    where = string.format("%d rule file(s) loaded from %s", loaded, rules.shown(paths))
  end
  local status, msgs = rules.dispatch(event, fields, where)
  for _, e in ipairs(load_errors) do
    io.stderr:write("mailhook hook: rule file ", rules.error_text(e.file), " did not load: ",
                    rules.error_text(e.error:match("^[^\n]*")), "\n")
    status = 1
  end
  for _, m in ipairs(msgs) do io.stderr:write("mailhook hook ", event, ": ", m, "\n") end
  -- The rules and every task they started are done and their mail durable.
  -- A handle a rule left open (a watch, a socket) would keep the process
  -- alive for ever: after one more rule_timeout it is left behind.
  core.rstate.ticker(rules.time_budget, function()
    core.log("warn", "mailhook hook " .. event .. ": the rules left something open (a timer, a watch, " ..
             "a connection?); exiting without it")
    io.stderr:flush()
    os.exit(status)
  end)
  return status
end
