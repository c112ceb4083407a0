-- mailhook.enqueue — intake: mh.enqueue{...} builds a message and queues it
-- durably.  Nothing is generated while outgoing mail is disabled or no server
-- was ever set (the seed's rule).
--
--   mh.enqueue{to = {...}, cc =, bcc =, from =, subject =, text =, html =,
--              attachments = {{path =, type =, name =}}, headers = {...}}
--     -> id | nil, err, info                       (waits until fsynced)
--
-- A failure inside a rule is never silent: it is logged at once with the
-- rule's name, and the rule fails (`hook` exits 1) unless it sets
-- info.handled = true (docs/rules.md, "When mh.enqueue fails").
local settings = require "mailhook.settings"
local message = require "mailhook.message"
local core = require "mailhook.core"

local M = {}

-- ready([path]) -> cfg | nil, err, info: the settings, when they allow intake
-- (settings.load_intake: a problem in a key intake does not use is warned,
-- not a refusal).
function M.ready(path)
  local cfg, err = settings.load_intake(path)
  if not cfg then return nil, err, { code = "EINVAL", class = "permanent", stage = "settings" } end
  local yes, why = settings.ready(cfg)
  if not yes then return nil, why, { code = "EDISABLED", class = "permanent", stage = "settings" } end
  return cfg
end

local enqueue

-- enqueue(t [, opts]) -> id | nil, err, info.  opts.spool: a Spool to use;
-- opts.conf: a settings file other than the -c one; opts.note = false: a
-- failure is not the running rule's (held mail that waits for a later sweep);
-- opts.check = true: built and checked, not queued (-> true | nil, err, info).
-- info is always a table on failure (a rule may set info.handled = true).
-- The options (internal callers': rule_state's hold/check, the tests' spool
-- and conf): an unknown one, an argument too many or a wrong type raises.
local OPTIONS = { "spool", "conf", "note", "check" }

function M.enqueue(t, opts, ...)
  if type(t) ~= "table" then error("mh.enqueue: expects a table of message fields (got " .. type(t) .. ")", 2) end
  core.check_options("mh.enqueue", type(opts) == "table" and opts or {}, OPTIONS, select("#", ...) + 2, 2)
  if opts ~= nil and type(opts) ~= "table" then error("mh.enqueue: options must be a table (got " .. type(opts) .. ")", 2) end
  if opts then
    if opts.conf ~= nil and type(opts.conf) ~= "string" then
      error("mh.enqueue: conf must be a string (got " .. type(opts.conf) .. ")", 2)
    end
    for _, k in ipairs { "note", "check" } do
      if opts[k] ~= nil and type(opts[k]) ~= "boolean" then
        error("mh.enqueue: " .. k .. " must be a boolean (got " .. type(opts[k]) .. ")", 2)
      end
    end
  end
  if not (opts and (opts.note == false or opts.check)) then   -- a rule's own mail: at most rules.max_enqueue
    local rules = package.loaded["mailhook.rules"]
    if rules and rules.count_enqueue then rules.count_enqueue() end
  end
  local id, err, info = enqueue(t, opts)
  if id then return id end
  if type(info) ~= "table" then info = { class = "permanent" } end
  if not (opts and (opts.note == false or opts.check)) then
    local rules = package.loaded["mailhook.rules"]
    -- a header refused for a line break: the event's field that brought it named
    if rules and rules.explain_header then err, info = rules.explain_header(err, info, t) end
    if rules and rules.note_enqueue_failure then rules.note_enqueue_failure(err, info) end
  end
  return nil, err, info
end

-- A recipient written as a bare local name (root, www-data): where `sendmail`
-- sends that name (its alias, admin_address, else NAME@default_domain), as
-- DESIGN.md has default_domain qualify one "in any address"; it was refused
-- ("no @").  In a list, or alone; an address with '@' is left as it is.
local function local_names(cfg, v)
  -- every item with an '@' (the usual case): nothing to resolve, and the
  -- submit module (55 KB of bytecode, a third of enqueue's start) not loaded
  if type(v) == "string" and v:find("@", 1, true) then return v end
  if type(v) == "table" then
    local all = true
    for _, a in ipairs(v) do if type(a) ~= "string" or not a:find("@", 1, true) then all = false break end end
    if all then return v end
  end
  local submit = require "mailhook.submit"
  local resolve
  local function one(a, out)
    if type(a) == "string" and not a:find("@", 1, true) and submit.is_local_name(a) then
      resolve = resolve or submit.resolver(cfg)
      local list, why = resolve(a)
      if not list then return nil, why end
      for _, x in ipairs(list) do out[#out + 1] = x end
    else
      out[#out + 1] = a
    end
    return out
  end
  if type(v) == "string" then
    if v:find("@", 1, true) or not submit.is_local_name(v) then return v end
    return one(v, {})
  end
  if type(v) ~= "table" then return v end
  local out = {}
  for _, a in ipairs(v) do
    local ok, why = one(a, out)
    if not ok then return nil, why end
  end
  return out
end

function enqueue(t, opts)
  local check = opts and opts.check
  local cfg, err, info = M.ready(opts and opts.conf)
  -- check: the message is only built (a rule's hold(), throttle and digest
  -- check what they keep for later as mh.enqueue will take it); settings that
  -- refuse intake now may allow it later, so they are no reason to refuse it
  if not cfg and check then cfg = { from = "postmaster@invalid.example" } end
  if not cfg then return nil, err, info end
  local fields = {}
  for k, v in pairs(t) do fields[k] = v end
  -- mail a `failed` rule queues is marked: its own failure emits no `failed`
  -- (rules.notice_of; a notice sent as the failed mail was looped for ever)
  local rules = package.loaded["mailhook.rules"]
  if rules and rules.mark_notice then fields = rules.mark_notice(fields) end
  if fields.from == nil then fields.from = cfg.from end
  if fields.from == nil and not check then
    -- the builder's "from: no From address" alone did not say where one comes from
    return nil, "from: no From address: the settings (" .. tostring(opts and opts.conf or settings.path()) ..
                ") have no `from` (mailhook update from=ADDRESS), and the message gives none",
           { code = "EINVAL", class = "permanent", stage = "settings", field = "from" }
  end
  for _, k in ipairs { "to", "cc", "bcc" } do
    if fields[k] ~= nil then
      local v, why = local_names(cfg, fields[k])
      if v == nil then return nil, k .. ": " .. tostring(why), { code = "EBADADDR", class = "permanent", stage = "rcpt" } end
      fields[k] = v
    end
  end
  -- a wrong type is the caller's programming error: raised at the caller's
  -- line (level 3: enqueue <- M.enqueue <- caller) and named mh.enqueue, not
  -- at message.lua's line where the builder raised it
  local ok, msg
  ok, msg, err, info = pcall(message, fields)
  if not ok then
    local why = tostring(msg):gsub("^[^\n]-:%d+: ", "", 1):gsub("^mh%.message: ", "", 1)
    error("mh.enqueue: " .. why, 3)
  end
  if not msg then return nil, err, info end
  if check then return true end
  local sp = opts and opts.spool
  if not sp then
    sp, err, info = require("mailhook.spool").shared()   -- mh.queue.spool(), without mh.queue
    if not sp then return nil, err, info end
  end
  local env = msg:envelope()
  if (env.from == nil or env.from == "") and cfg.from then env.from = cfg.from end
  return sp:enqueue(msg, env)
end

return setmetatable(M, { __call = function(_, ...) return M.enqueue(...) end })
