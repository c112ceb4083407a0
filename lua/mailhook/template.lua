-- mailhook.template — small message templates that never break on a missing
-- value, and never let a value change the shape of a message.
--
--   local render = mh.template(source [, {html = true} | {header = true} | {name = "x"}])
--   local text, missing = render(context)
--
--   {{name}}  {{caller.name}}  {{caller|unknown}}      variables, dotted paths, defaults
--   {{#if x}}...{{else}}...{{/if}}   {{#unless x}}...{{/unless}}
--   {{#each items}}{{@index}}: {{.}} {{name}}{{else}}none{{/each}}
--   {{#each map}}{{@key}}={{.}}{{/each}}              a map: its keys in sorted order
--   {{{raw}}}                                         no HTML escaping (html templates only)
--   {{! comment }}  {{!-- a comment that may hold {{x}} --}}
--
-- each: a list (t[1], t[2], ... up to the first nil) is walked in order; a
-- map by key: the number keys ascending, then the string keys in byte order,
-- whatever the locale (keys of another type are skipped: they have no text
-- nor order).  A mixed table, a list with other keys too ({"a", "b", title =
-- "x"}), is walked whole: its list items first, then its other keys as a
-- map's.  @index counts from 1 over all of it; @key is a map key, a list
-- item's index.  A table with nothing to walk, or a value that is not a
-- table, renders the {{else}} part.
--
-- `missing` lists (once each, in order) the variables that had no value and no
-- default; they render as "".  A value that has no text (a function, a
-- coroutine, a userdata) renders as "" and is listed in `missing` too: its
-- address ("function: 0x55...") is nothing a reader should get.  An unknown
-- option ({htlm = true}), an argument too many or a wrong type raises.  Escaping follows the context: in an html
-- template every value is HTML-escaped; in a header template CR, LF and NUL
-- (and any other control character, TAB too) become spaces, in values and in
-- the result, so a value can never start a new header line.
--
--   mh.template.file(path [, opts]) -> render   (html when path ends in .html)
--       a relative path is taken from the folder of the Lua file that calls it
--       (a rule file: rules/x.lua's "templates/a.txt" is rules/templates/a.txt),
--       not from the working directory; a missing or malformed file raises at
--       once, naming the path, so a rule file fails when it loads
--   mh.template.default(name) -> {subject=, text=, html=} renders: the site's
--       templates first (settings `templates`, default ./templates beside the
--       settings file), then the shipped ones, lua/mailhook/templates/
--       NAME.{subject,txt,html} (voicemail, fax, alarm); a set is taken whole
--       from one folder
--   mh.template.message(name_or_set, context) -> {subject=, text=, html=}, missing
--   mh.template.dirs() -> {site_dir, shipped_dir}: where default() looks
local core = require "mailhook.core"

local M = {}

local OPTIONS = { "html", "header", "name" }

-- The options of compile and file, after core.check_options (called by them:
-- it raises at its caller's caller): each of its type, raised at the caller
-- of compile or file.  A misspelt {htlm = true} was silently a plain
-- template: no HTML escaping.
local function check_opts(fn, opts)
  if opts == nil then return end
  if type(opts) ~= "table" then error(fn .. ": options must be a table (got " .. type(opts) .. ")", 3) end
  for _, k in ipairs { "html", "header" } do
    if opts[k] ~= nil and type(opts[k]) ~= "boolean" then
      error(fn .. ": " .. k .. " must be a boolean (got " .. type(opts[k]) .. ")", 3)
    end
  end
  if opts.name ~= nil and type(opts.name) ~= "string" then
    error(fn .. ": name must be a string (got " .. type(opts.name) .. ")", 3)
  end
end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- A name a template may look up: "." (the current item), or dot-separated
-- parts ("caller.name", "@index"); ".name", "a..b" or "a." would fail at
-- render or silently find nothing.
local function good_path(p)
  if p == "." then return true end
  for part in (p .. "."):gmatch("(.-)%.") do
    if not part:match("^[%w_@%-]+$") then return false end
  end
  return true
end

-- Parses src into a tree; raises "NAME:LINE: message" on a malformed tag.
local function parse(src, name)
  local pos, len = 1, #src
  local root = { kind = "block", children = {} }
  local stack = { root }
  local function line_at(p)
    local n = 1
    for _ in src:sub(1, p):gmatch("\n") do n = n + 1 end
    return n
  end
  local function fail(p, msg) error(string.format("%s:%d: %s", name, line_at(p), msg), 0) end
  local function add(node)
    local top = stack[#stack]
    local list = top.in_else and top.no or top.children
    list[#list + 1] = node
  end
  while pos <= len do
    local s = src:find("{{", pos, true)
    if not s then add({ kind = "text", s = src:sub(pos) }) break end
    if s > pos then add({ kind = "text", s = src:sub(pos, s - 1) }) end
    -- a long comment ends at the first "--}}" (it may hold "}}" and tags);
    -- "{{!--}}" is one, and with no "--}}" after it, "{{!-- note }}" is the
    -- short comment it always was (templates written before keep compiling)
    local long_end = src:sub(s, s + 4) == "{{!--" and src:find("--}}", s + 3, true)
    if long_end then
      pos = long_end + 4
      goto continue
    end
    local raw = src:sub(s, s + 2) == "{{{"
    local close = raw and "}}}" or "}}"
    local e = src:find(close, s + (raw and 3 or 2), true)
    if not e then fail(s, "unclosed '" .. (raw and "{{{" or "{{") .. "'") end
    local tag = trim(src:sub(s + (raw and 3 or 2), e - 1))
    pos = e + #close
    local c = tag:sub(1, 1)
    if raw and (c == "#" or c == "/" or c == "!" or tag == "else") then
      fail(s, "'{{{" .. tag .. "}}}': triple braces hold a variable only")
    end
    if c == "#" then
      local kw, arg = tag:match("^#(%a+)%s+(.-)$")
      if not kw or arg == "" then fail(s, "'{{" .. tag .. "}}' needs a name") end
      if kw ~= "if" and kw ~= "unless" and kw ~= "each" then fail(s, "unknown block '{{#" .. kw .. "}}'") end
      if not good_path(trim(arg)) then fail(s, "bad variable name '" .. trim(arg) .. "' in '{{#" .. kw .. "}}'") end
      local node = { kind = kw, path = trim(arg), children = {}, no = {}, at = s }
      add(node)
      stack[#stack + 1] = node
    elseif c == "/" then
      local kw = trim(tag:sub(2))
      local top = stack[#stack]
      if #stack == 1 then fail(s, "'{{/" .. kw .. "}}' without an opening block") end
      if top.kind ~= kw then
        fail(s, "'{{/" .. kw .. "}}' closes '{{#" .. top.kind .. " " .. top.path .. "}}'")
      end
      stack[#stack] = nil
    elseif tag == "else" then
      local top = stack[#stack]
      if #stack == 1 or top.in_else then fail(s, "'{{else}}' outside a block") end
      top.in_else = true
    elseif c == "!" then
      -- a short comment ends at the first "}}": one holding a tag would end
      -- inside it and show the rest ("{{! see {{x}} }}" printed " }}")
      if tag:find("{{", 1, true) then
        fail(s, "'{{!' comment holds '{{' (it ends at the first '}}'; write '{{!-- ... --}}')")
      end
    else
      if tag == "" then fail(s, "empty '{{}}'") end
      local path, default = tag:match("^(.-)|(.*)$")
      path = trim(path or tag)
      if not good_path(path) then fail(s, "bad variable name '" .. path .. "'") end
      add({ kind = "var", path = path, default = default, raw = raw })
    end
    ::continue::
  end
  if #stack > 1 then
    local top = stack[#stack]
    fail(top.at, "'{{#" .. top.kind .. " " .. top.path .. "}}' is never closed")
  end
  return root
end

-- Looks a path up in the scopes (innermost first): "." is the current item,
-- "@index" its 1-based position, "@key" its key (a list's: its index), "a.b"
-- walks tables.
local function lookup_raw(scopes, path)
  local top = scopes[#scopes]
  if path == "." then return top.item end
  if path == "@index" then return top.index end
  if path == "@key" then return top.key end
  local first, rest = path:match("^([^%.]+)(.*)$")
  local v
  for i = #scopes, 1, -1 do
    local ctx = scopes[i].ctx
    if type(ctx) == "table" and ctx[first] ~= nil then v = ctx[first] break end
  end
  for part in rest:gmatch("[^%.]+") do
    if type(v) ~= "table" then return nil end
    v = v[tonumber(part) or part]
    if v == nil then v = nil end
  end
  return v
end

-- JSON's null (json.null, a decoded document's) is no value: nil, so a
-- default applies and it is reported missing (it rendered "" and skipped the
-- default: {{caller|unknown}} showed nothing for "caller": null).
local function lookup(scopes, path)
  local v = lookup_raw(scopes, path)
  local json = package.loaded["mailhook.json"]   -- (not loaded: no value is its null)
  if json and v == json.null then return nil end
  return v
end

local function truthy(v)
  if v == nil or v == false or v == "" or v == 0 then return false end
  if type(v) == "table" and next(v) == nil then return false end
  return true
end

local HTML = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

-- Every C0 control and DEL become a space, TAB too: legal whitespace in a
-- header, but a value's TAB in a Subject shows as a gap, a box or nothing,
-- as readers please.  The C1 controls (U+0080-9F: NEL, U+0085, among them)
-- and the line and paragraph separators U+2028/9 too: a reader decoding the
-- Subject's RFC 2047 words may show them as a new line ("x<U+2028>From:
-- ceo@bank").
local function fold(s)
  return (s:gsub("[%z\1-\31\127]", " "):gsub("\xC2[\x80-\x9F]", " "):gsub("\xE2\x80[\xA8\xA9]", " "))
end

-- A value as a template shows it.  A number as a person writes it (the rule
-- of JavaScript's Number#toString): Lua's tostring gives 3.0 for a whole float
-- (a sum, a JSON 3.0), 1e+20 for a large one and 14 digits of 0.1 + 0.2; here
-- the shortest digits that read back exactly, written out in full from 1e-6
-- up to 1e21 (3, 100000000000000000000, 0.30000000000000004), with an
-- exponent past them (1e+300, not 301 digits of binary noise).  An integer
-- past 2^63 in the event's JSON is a string already (mailhook.json keeps its digits).
-- NaN and the infinities as JavaScript writes them, not C's "-nan" or "inf"
-- (mh.message writes them the same way).
local function show_float(v)
  if v ~= v then return "NaN" end
  if v == math.huge then return "Infinity" end
  if v == -math.huge then return "-Infinity" end
  local i = math.tointeger(v)
  if i then return string.format("%d", i) end
  local e
  for prec = 0, 16 do   -- the fewest digits that read back as v
    e = string.format("%." .. prec .. "e", v)
    if tonumber(e) == v then break end
  end
  local sign, d1, rest, exp = e:match("^(-?)(%d)%.?(%d*)e([-+]%d+)$")
  local digits = (d1 .. rest):gsub("0+$", "")
  if digits == "" then digits = "0" end
  exp = tonumber(exp)
  local body
  if exp >= 21 or exp < -6 then
    body = digits:sub(1, 1) .. (#digits > 1 and ("." .. digits:sub(2)) or "") ..
           "e" .. (exp >= 0 and "+" or "-") .. math.abs(exp)
  elseif exp >= 0 then
    if #digits <= exp + 1 then body = digits .. string.rep("0", exp + 1 - #digits)
    else body = digits:sub(1, exp + 1) .. "." .. digits:sub(exp + 2) end
  else
    body = "0." .. string.rep("0", -exp - 1) .. digits
  end
  return sign .. body
end
M.number_text = show_float

-- nil for a value that has no text to show (a function, a coroutine, a
-- userdata): tostring would give its address.
local function show(v)
  if math.type(v) == "float" then return show_float(v) end
  local t = type(v)
  if t == "function" or t == "thread" or t == "userdata" then return nil end
  return tostring(v)
end

-- a < b for two strings by their bytes, whatever the locale: Lua's < on
-- strings is strcoll(3), so a rule's os.setlocale("de_DE.UTF-8") reordered
-- every map a template walked ("B" after "a", "_x" anywhere).
local byte = string.byte
local function bytes_lt(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = byte(a, i), byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- map order: the number keys ascending, then the string keys in byte order
local function key_lt(a, b)
  local na, nb = type(a) == "number", type(b) == "number"
  if na ~= nb then return na end
  if na then return a < b end
  return bytes_lt(a, b)
end
M.key_lt = key_lt

-- The keys an {{#each}} walks in t, in order: its list part first, 1..n (as
-- ipairs: t[1], t[2], ... up to the first nil), then every other key as a
-- map's are, the number keys ascending, then the string keys in byte order
-- (other keys skipped: they have no text nor order).  So a mixed table
-- ({"a", "b", title = "x"}) shows all it holds, its items in order first (it
-- walked the items alone, the other keys silently left out).  Empty: the
-- {{else}} part.
local function each_keys(t)
  local keys, n = {}, 0
  for i in ipairs(t) do keys[i], n = i, i end
  local rest = {}
  for k in pairs(t) do
    local kt = type(k)
    if kt == "string" or (kt == "number" and not (math.type(k) == "integer" and k >= 1 and k <= n)) then
      rest[#rest + 1] = k
    end
  end
  if #rest > 1 then table.sort(rest, key_lt) end
  for i = 1, #rest do keys[n + i] = rest[i] end
  return keys
end

local function render(node, scopes, out, missing, seen, opts)
  for _, n in ipairs(node.children) do
    if n.kind == "text" then
      out[#out + 1] = n.s
    elseif n.kind == "var" then
      local v = lookup(scopes, n.path)
      local s
      if v == nil or v == "" then
        if n.default then s = n.default
        else
          if v == nil and not seen[n.path] then seen[n.path] = true; missing[#missing + 1] = n.path end
          s = ""
        end
      else
        s = type(v) == "table" and "" or show(v)
        if not s then   -- no text: reported as a missing value is (its default, if any)
          if n.default then s = n.default
          else
            if not seen[n.path] then seen[n.path] = true; missing[#missing + 1] = n.path end
            s = ""
          end
        end
      end
      if opts.header then s = fold(s)
      elseif opts.html and not n.raw then s = s:gsub("[&<>\"']", HTML) end
      out[#out + 1] = s
    elseif n.kind == "if" or n.kind == "unless" then
      local yes = truthy(lookup(scopes, n.path))
      if n.kind == "unless" then yes = not yes end
      render(yes and n or { children = n.no }, scopes, out, missing, seen, opts)
    elseif n.kind == "each" then
      local list = lookup(scopes, n.path)
      local keys = type(list) == "table" and each_keys(list) or {}
      if #keys > 0 then
        for i, k in ipairs(keys) do
          local item = list[k]
          scopes[#scopes + 1] = { ctx = item, item = item, index = i, key = k }
          render(n, scopes, out, missing, seen, opts)
          scopes[#scopes] = nil
        end
      else
        render({ children = n.no }, scopes, out, missing, seen, opts)
      end
    end
  end
end

-- compile(source [, opts]) -> render(context) -> text, missing.  Raises on a
-- malformed template (a misuse found once, when the rule loads).
function M.compile(source, opts, ...)
  if type(source) ~= "string" then error("mh.template: source must be a string (got " .. type(source) .. ")", 2) end
  core.check_options("mh.template", type(opts) == "table" and opts or {}, OPTIONS, select("#", ...) + 2, 2)
  check_opts("mh.template", opts)
  opts = opts or {}
  -- raised at the caller's line too: "template:2: ..." alone left a rule file
  -- with several templates (and `hook`'s one-line message) without a clue
  local ok, tree = pcall(parse, source, opts.name or "template")
  if not ok then error("mh.template: " .. tostring(tree), 2) end
  return function(context, ...)
    if context ~= nil and type(context) ~= "table" then
      error("mh.template: context must be a table (got " .. type(context) .. ")", 2)
    end
    if select("#", ...) > 0 then
      error("mh.template: a render takes at most 1 argument (got " .. (select("#", ...) + 1) .. ")", 2)
    end
    local out, missing = {}, {}
    render(tree, { { ctx = context or {}, item = context } }, out, missing, {}, opts)
    local text = table.concat(out)
    if opts.header then text = fold(text):gsub("^ +", ""):gsub(" +$", "") end
    return text, missing
  end
end

-- Reads and compiles one file: render | nil, err (never raises).  Read by the
-- core's rule for files we did not create: a regular file (a FIFO or a device
-- is refused, never opened), at most limits.config bytes.
local function load_file(path, opts)
  local fsutil = require("mailhook.core").fsutil
  local src, err = fsutil.read(path, { follow = true, what = "template" })
  if not src then return nil, err end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.name = o.name or path
  if o.html == nil and path:match("%.html?$") then o.html = true end
  local ok, r = pcall(M.compile, src, o)
  if not ok then return nil, (tostring(r):gsub("^mh%.template: ", "", 1)) end
  return r
end

-- The folder of the Lua file running at stack level `level` (nil: not a file).
local function caller_dir(level)
  local info = debug.getinfo(level + 1, "S")
  local src = info and info.source
  if type(src) ~= "string" or src:sub(1, 1) ~= "@" then return nil end
  return src:sub(2):match("^(.*)/[^/]*$") or "."
end

-- file(path [, opts]) -> render.  Raises (at the caller) when the file is
-- missing, unreadable or malformed, naming it.
function M.file(path, opts, ...)
  if type(path) ~= "string" or path == "" then error("mh.template.file: path must be a non-empty string", 2) end
  core.check_options("mh.template.file", type(opts) == "table" and opts or {}, OPTIONS, select("#", ...) + 2, 2)
  check_opts("mh.template.file", opts)
  local full = path
  if path:sub(1, 1) ~= "/" then
    local dir = caller_dir(2)
    if dir then full = dir .. "/" .. path end
  end
  local r, err = load_file(full, opts)
  if not r then
    local why = tostring(err)
    -- the reason alone: the path is said once, as written and as resolved
    for _, prefix in ipairs { full .. ": ", "template " .. full .. ": " } do
      if why:sub(1, #prefix) == prefix then why = why:sub(#prefix + 1) end
    end
    error(string.format("mh.template.file: %s%s: %s", path, full ~= path and (" (" .. full .. ")") or "", why), 2)
  end
  return r
end

local function shipped_dir()
  local core = require "mailhook.core"
  return (core.paths and core.paths.lua or ".") .. "/mailhook/templates"
end

-- The site's folder: M.site_dir when set, else the settings' `templates`
-- (default ./templates), a relative one taken from the settings file's folder.
-- Read once per settings file.
local site_cache = {}
local function site_dir()
  if M.site_dir then return M.site_dir end
  local core = require "mailhook.core"
  local conf = core.paths and core.paths.conf or "./mailhook.conf"
  if site_cache[conf] == nil then
    local folder = "./templates"
    -- settings that cannot be read leave the default folder (the command that
    -- loaded them first, hook or run, has already said why)
    local settings = require "mailhook.settings"
    local cfg = settings.load(conf)
    if type(cfg) == "table" and type(cfg.templates) == "string" and cfg.templates ~= "" then
      folder = cfg.templates
    end
    site_cache[conf] = settings.resolve(type(cfg) == "table" and cfg or nil, folder)
  end
  return site_cache[conf]
end

-- dirs() -> {site, shipped}: where default() looks, in order.
function M.dirs(...)
  core.check_options("mh.template.dirs", {}, {}, select("#", ...), 0)
  return { site_dir(), shipped_dir() }
end

local PARTS = { { "subject", ".subject", { header = true } }, { "text", ".txt" },
                { "html", ".html", { html = true } } }

-- Whether path exists, without opening it (a FIFO named like a template must
-- not block `hook`; load_file then reads it by the core's rule, or refuses it).
-- One that cannot be told (a site folder the caller may not search: EACCES)
-- is not there, said once per folder at error level, naming it and why: the
-- shipped set was used instead without a word.  Not raised: the notification
-- still goes, in the shipped words, rather than not at all.
local unreachable = {}
local function exists(path)
  local core = require "mailhook.core"
  local there, why = core.rstate.exists(path)
  local dir = path:match("^(.*)/") or "."
  if there == nil and not unreachable[dir] then
    unreachable[dir] = true
    core.log("error", "mh.template.default: cannot reach " .. tostring(why) .. ": the templates there are not " ..
             "used (the next folder's are)")
  end
  return there
end

-- default(name) -> {subject=, text=, html=} (renders; html may be nil).  The
-- set comes whole from the first folder holding any NAME.subject, NAME.txt or
-- NAME.html: a site's text is never paired with a shipped HTML part.
function M.default(name, ...)
  core.check_options("mh.template.default", {}, {}, select("#", ...) + 1, 1)
  if type(name) ~= "string" then
    error("mh.template.default: name must be a string (got " .. type(name) .. ")", 2)
  end
  if not name:match("^[%w_%-]+$") then
    error("mh.template.default: bad template name", 2)
  end
  for _, dir in ipairs(M.dirs()) do
    local found = false
    for _, p in ipairs(PARTS) do
      if exists(dir .. "/" .. name .. p[2]) then found = true break end
    end
    if found then
      local set = {}
      for _, p in ipairs(PARTS) do
        local path = dir .. "/" .. name .. p[2]
        if exists(path) then
          local r, err = load_file(path, p[3])
          if not r then error("mh.template.default: " .. tostring(err), 2) end
          set[p[1]] = r
        end
      end
      if not set.subject and not set.text then
        error("mh.template.default: template '" .. name .. "' in " .. dir .. " has neither " ..
              name .. ".subject nor " .. name .. ".txt", 2)
      end
      return set
    end
  end
  error("mh.template.default: no template named '" .. name .. "' in " .. table.concat(M.dirs(), " or "), 2)
end

-- message(name_or_set, context) -> {subject=, text=, html=}, missing (all parts)
local SET = { "subject", "text", "html" }

function M.message(set, context, ...)
  local fn = "mh.template.message"
  core.check_options(fn, {}, {}, select("#", ...) + 2, 2)
  if type(set) == "string" then
    local ok, r = pcall(M.default, set)
    if not ok then error((tostring(r):gsub("^mh%.template%.default: ", fn .. ": ")), 2) end
    set = r
  elseif type(set) == "table" then
    core.check_options(fn, set, SET)
    for _, part in ipairs(SET) do
      if set[part] ~= nil and type(set[part]) ~= "function" then
        error(fn .. ": " .. part .. " must be a function (a render of mh.template; got " .. type(set[part]) .. ")", 2)
      end
    end
    if not (set.subject or set.text or set.html) then
      error(fn .. ": the set holds no subject, text nor html", 2)
    end
  else
    error(fn .. ": name_or_set must be a template name or a set of mh.template.default (got " .. type(set) .. ")", 2)
  end
  if context ~= nil and type(context) ~= "table" then
    error(fn .. ": context must be a table (got " .. type(context) .. ")", 2)
  end
  local out, missing, seen = {}, {}, {}
  for _, part in ipairs { "subject", "text", "html" } do
    if set[part] then
      local text, miss = set[part](context)
      out[part] = text
      for _, k in ipairs(miss) do
        if not seen[k] then seen[k] = true; missing[#missing + 1] = k end
      end
    end
  end
  return out, missing
end

return setmetatable(M, { __call = function(_, ...) return M.compile(...) end })
