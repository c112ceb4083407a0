-- mailhook.submit — what sendmail's intake does to a message before it is
-- stored (docs/sendmail.md): the envelope (recipients from the command line
-- or the headers, local names through aliases, admin_address or
-- default_domain, the sender by from_rewrite and by who the caller is), the
-- headers intake adds (From when missing, Date, Message-ID, a Received line
-- naming the caller's uid) and the ones it removes (Bcc, Resent-Bcc).  Used by `mailhook
-- sendmail` (arguments and -t), its -bs dialogue, and the service when it
-- adopts a file of SPOOL/maildrop/ (lua/mailhook/maildrop.lua): one rule for
-- every way in.
--
-- "Intake accepts, delivery decides" (DESIGN.md): header addresses are
-- carried as the caller wrote them (cron's `From: root (Cron Daemon)`,
-- mdadm's `From: mdadm monitoring <root>`); only what goes into the envelope
-- is checked, and a message is refused only when it has no usable recipient.
local core = require "mailhook.core"

local M = {}

-- sysexits(3), as sendmail's callers expect them
M.EX = { USAGE = 64, DATAERR = 65, NOINPUT = 66, UNAVAILABLE = 69, SOFTWARE = 70, OSERR = 71,
         CANTCREAT = 73, TEMPFAIL = 75, CONFIG = 78 }

-- ------------------------------------------------------------ addresses

local function printable(a)
  return (a:gsub("[%c\\]", function(c) return c == "\\" and "\\x5C" or string.format("\\x%02X", c:byte()) end))
end
-- printable(s) -> s with its control characters as \xNN and a backslash as
-- \x5C, as mailhook-drop -l records it (not cut): a "\x0A" the caller typed
-- is \x5Cx0A, never the escaped newline \x0A (the items left out are kept
-- in the spool in this form, and `mailhook queue` shows them as they are)
M.printable = printable

-- shown(s) -> s as an error message may quote it: control characters
-- escaped (\x0A: a caller's value never adds a line to a terminal, a log or
-- an SMTP reply), at most 200 bytes of it (then "...").
function M.shown(s)
  s = tostring(s)
  if #s > 200 then return printable(s:sub(1, 200)) .. "..." end
  return printable(s)
end

-- split(value[, folds[, base]]) -> {{addr =, name =}, ...} | nil, why
-- The mailboxes of an RFC 5322 address list as written in a header or on the
-- command line, tolerant of what local programs write: a bare local name
-- (`root`), a comment as the name (`root (Cron Daemon)`), `Name <root>`, quoted
-- local parts, groups (`team: a@x, b@y;`, their members listed; a ':' after an
-- address starts none: the item is no address, why saying so), an obsolete
-- source route (`<@a,@b:c@d>`).  addr is the addr-spec as written (quotes kept,
-- without <>), name the display name (phrase unquoted, or the comment); an item
-- that is no address at all (`foo bar`) has addr = nil, raw = its text and
-- maybe why (what to say instead of "is not an address").  folds: the
-- positions (+ base) in value where a header's continuation line began
-- (M.fields), so that a word and an address a line break stands between are
-- one item that is no address (see finish).
-- An unbalanced '(', '"' or '<': nil, why, the items read before the one it is
-- in, and where that one starts in value (so a caller may keep those).
-- The addr-spec inside <...> without the CFWS RFC 5322 allows around its
-- '.' and '@' (obs-local-part, obs-domain: "b @example.org" is what a folder
-- breaking before the '@' leaves, "a.(x)b@c" a comment): comments dropped,
-- blanks next to '.', '@' or the ends dropped; quoted strings and domain
-- literals kept as written; any other blank ("a b@c") stays, and the address
-- is refused by valid() as it was.
local function angle_spec(s)
  local out, i, n, blank = {}, 1, #s, false
  local function put(piece)
    local last = out[#out]
    if blank and last and not last:find("[.@]$") and not piece:find("^[.@]") then out[#out + 1] = " " end
    blank = false
    out[#out + 1] = piece
  end
  while i <= n do
    local c = s:sub(i, i)
    if c == '"' then
      local j = i + 1
      while j <= n and s:sub(j, j) ~= '"' do j = j + (s:sub(j, j) == "\\" and 2 or 1) end
      put(s:sub(i, j)); i = j + 1
    elseif c == "[" then
      local j = s:find("]", i + 1, true) or n
      put(s:sub(i, j)); i = j + 1
    elseif c == "(" then
      local depth, j = 1, i + 1
      while j <= n and depth > 0 do
        local d = s:sub(j, j)
        if d == "\\" then j = j + 1 elseif d == "(" then depth = depth + 1 elseif d == ")" then depth = depth - 1 end
        j = j + 1
      end
      blank = true; i = j
    elseif c:match("%s") then
      blank = true; i = i + 1
    else
      local j = i
      while j <= n and not s:sub(j, j):match('[%s"%[%(]') do j = j + 1 end
      put(s:sub(i, j - 1)); i = j
    end
  end
  return table.concat(out)
end

-- The why of an item made no address because a line break (a fold) or a
-- comment (cause) stands between an address and a word it may have been cut from.
local function cut_why(cause)
  return "is not an address (" .. cause .. " inside it: the part with an '@' may be another mailbox)"
end

function M.split(value, folds, base)
  local items, i, n = {}, 1, #value
  local start = 1   -- where the item being read began (after the last ',', ';' or group name)
  base = base or 0
  local function folded(k) return folds ~= nil and folds[k + base] == true end
  local cur
  -- fb[k]: "a line break" (a fold) or "a comment" (stuck to both) between
  -- word k-1 and word k, else false; fold: one seen since the last word;
  -- st[k]: that only a comment stuck to both stood there (stuck; with or
  -- without a fold in it; bfold: a fold in a blank or another comment), so
  -- the two are no display name and an address;
  -- at: an '@' outside quotes, literals and comments seen; colon: a ':' that
  -- starts no group (after an address) seen; wend: where the last piece of a
  -- word ended
  local function reset()
    cur = { words = {}, text = {}, comment = nil, angle = nil, raw = {}, fb = {}, fold = false, st = {},
            stuck = false, bfold = false, at = false, colon = false }
  end
  -- a word or piece of one: a new word, or glued to the last (a quoted local
  -- part, "a . b @ c"); a new word records whether a fold came before it.
  -- A piece with nothing between it and the one before (no blank, no
  -- comment: ab"q"@x, a)b@x, [1.2.3.4]b@x) is always glued to it: one word,
  -- as the drop-in's parser reads it, never a word cut off its start.
  local function word(piece, glue, pos)
    if pos == cur.wend then glue = true end
    -- an angle address ends the word before it: "@<a@x>@y" glues no "@y" to "@"
    if cur.post and #cur.words == cur.post.w then glue = false end
    cur.wend = pos + #piece
    if #cur.words > 0 and glue then
      cur.words[#cur.words] = cur.words[#cur.words] .. piece
    else
      cur.words[#cur.words + 1] = piece
      cur.fb[#cur.words] = cur.fold
      cur.st[#cur.words] = cur.stuck and not cur.bfold
    end
    cur.fold = false
    cur.stuck, cur.bfold = false, false
  end
  -- an address word: an '@' inside with none next to it (c@x, "a b"@x; not
  -- @x, x@, a@@b)
  local function is_addr(w) return w:find("[^@]@[^@]") and not w:find("^@") and not w:find("@$") end
  -- the words after the angle address's '>' (cur.post, where they start) cut
  -- off cur into a new item, returned; cur keeps the angle address and the
  -- words before it, its display name
  local function cut()
    local old, p = cur, cur.post
    reset()
    local post = cur
    cur = old
    for k = p.w + 1, #old.words do
      local m = #post.words + 1
      post.words[m], post.fb[m], post.st[m] = old.words[k], old.fb[k], old.st[k]
      old.words[k], old.fb[k], old.st[k] = nil, nil, nil
    end
    post.fb[1] = false
    for k = p.t + 1, #old.text do post.text[#post.text + 1] = old.text[k]; old.text[k] = nil end
    for k = p.r + 1, #old.raw do post.raw[#post.raw + 1] = old.raw[k]; old.raw[k] = nil end
    post.wend, post.glue, post.fold, post.stuck, post.bfold = old.wend, old.glue, old.fold, old.stuck, old.bfold
    for _, w in ipairs(post.words) do if is_addr(w) then post.has_addr = true end end
    return post
  end
  local finish
  -- words after an angle address (`<a@x> b@y`, `Ann <a@x> Bob <b@y>`, a
  -- comma missing): the angle address is an item, a recipient, ended at its
  -- '>'; the words after it, when one is an address, are items of their own
  -- as words without a comma between are ("a@x b@y"); else, before a second
  -- angle address (at_angle), its display name, and at the item's end an
  -- item that is no address (left out, named: never a local name).
  -- Without this the second address took the first one's place, a recipient
  -- lost unnamed.
  local function split_angle(at_angle)
    local post = cut()
    finish()
    cur = post
    if post.has_addr then finish()
    elseif not at_angle then
      items[#items + 1] = { raw = table.concat(post.raw):match("^%s*(.-)%s*$") }
      reset()
    end
  end
  function finish()
    if cur.angle and cur.post and not cur.colon and #cur.words > cur.post.w then return split_angle(false) end
    local raw = table.concat(cur.raw):match("^%s*(.-)%s*$")
    if raw == "" and not cur.angle then reset() return end
    local item = { raw = raw }
    if cur.colon then
      -- "e@x: d@y", "Name <e@x>: d@y": group syntax whose name is an address
      -- (RFC 5322: a group's name is a phrase); which word was meant as a
      -- mailbox is unclear, so the whole item is left out, named
      item.why = "is not an address (a ':' after an address: an address is no group name)"
      items[#items + 1] = item
      reset()
      return
    end
    if cur.angle then
      local a = angle_spec(cur.angle):gsub("^@[^:]*:", "")   -- source route
      item.addr = a
      item.name = #cur.text > 0 and table.concat(cur.text, " ") or cur.comment
    else
      -- one word (the tokenizer glued "a . b @ c" into one): an addr-spec;
      -- more ("a b@c", "John Doe") is a phrase without its address
      if #cur.words == 1 then item.addr = cur.words[1] end
      item.name = cur.comment
      -- addresses with the comma between them missing ("To: a@x b@y", a
      -- script's "$ADMINS", "John Doe john@x"): each word with an '@' an
      -- address, as Postfix's parser adds the commas; the words without one
      -- ("John Doe") together an item that is no address (left out, named)
      -- A word without one right after an address ("c@exa mple.org", a
      -- domain folded in two) is no phrase: the address may be cut short, so
      -- the two go together as an item that is no address (sending to c@exa
      -- would be a wrong recipient, not a left-out one).
      -- The same the other way round when a line break (a fold) or a comment
      -- stuck to both stands between a word and the address after it
      -- ("ab<CRLF> c@x" is what a mailer wrapping at 78 columns leaves of
      -- abc@x): c@x would be someone else; without the break ("John Doe
      -- j@x") the words are a phrase, as before.
      local ats, rest, why = {}, {}, nil
      if #cur.words > 1 then
        local after_at, prev_rest = false, false
        for k, w in ipairs(cur.words) do
          local at = is_addr(w)
          -- a quoted string before is a display name only with a blank
          -- between ("q"(x)c@d is not "q" <c@d>)
          if at and prev_rest and cur.fb[k] and not (cur.words[k - 1]:find('^"') and not cur.st[k]) then
            rest[#rest] = rest[#rest] .. " " .. w; at = false; why = cut_why(cur.fb[k])
          elseif at then ats[#ats + 1] = w
          elseif after_at then
            rest[#rest + 1] = table.remove(ats) .. " " .. w; at = false
            if cur.fb[k] then why = cut_why(cur.fb[k]) end
          else rest[#rest + 1] = w end
          prev_rest = not at
          after_at = at
        end
      end
      if #ats == 0 and why then
        item.why = why       -- the item as written (raw), saying why
      elseif #ats > 0 then
        for _, w in ipairs(ats) do items[#items + 1] = { raw = w, addr = w } end
        if #rest > 0 then items[#items + 1] = { raw = table.concat(rest, " "), why = why } end
        reset()
        return
      end
    end
    if item.addr == "" then item.addr = nil end
    items[#items + 1] = item
    reset()
  end
  reset()
  while i <= n do
    local c = value:sub(i, i)
    if c == "(" then                    -- a comment, nested, with escapes
      local depth, j, buf = 1, i + 1, {}
      while j <= n and depth > 0 do
        local d = value:sub(j, j)
        if d == "\\" and j < n then buf[#buf + 1] = value:sub(j + 1, j + 1); j = j + 1
        elseif d == "(" then depth = depth + 1; buf[#buf + 1] = d
        elseif d == ")" then depth = depth - 1; if depth > 0 then buf[#buf + 1] = d end
        else buf[#buf + 1] = d end
        j = j + 1
      end
      if depth > 0 then return nil, "unbalanced '(' in '" .. M.shown(value) .. "'", items, start end
      local text = table.concat(buf):match("^%s*(.-)%s*$")
      if text ~= "" and not cur.comment then cur.comment = text end
      -- a fold inside it, or the comment stuck between two words ("ab(x)c@d"):
      -- the words on either side are not one phrase and one address
      local stuck = i > 1 and value:sub(i - 1, i - 1):match("[^%s,;:]") and value:sub(j, j):match("[^%s,;:<]")
      if stuck then
        cur.fold = cur.fold or "a comment"
        cur.stuck = true
      end
      for k = i, j - 1 do
        if folded(k) then cur.fold = "a line break"; cur.bfold = cur.bfold or not stuck end
      end
      cur.raw[#cur.raw + 1] = value:sub(i, j - 1)
      i = j
    elseif c == '"' then                -- a quoted string: a word of the phrase or local part
      local j, buf = i + 1, {}
      while j <= n and value:sub(j, j) ~= '"' do
        if value:sub(j, j) == "\\" and j < n then j = j + 1 end
        buf[#buf + 1] = value:sub(j, j)
        j = j + 1
      end
      if j > n then return nil, "unbalanced '\"' in '" .. M.shown(value) .. "'", items, start end
      local quoted = value:sub(i, j)
      -- a quoted local part glues to what touches it ("a b"@x, ab"q"@x): one word
      word(quoted, cur.glue, i)
      cur.text[#cur.text + 1] = table.concat(buf)
      cur.glue = false   -- what follows it with nothing between glues (word); after a comment it does not
      cur.raw[#cur.raw + 1] = quoted
      i = j + 1
    elseif c == "[" then                -- a domain literal ([IPv6:2001:db8::1]): one piece of a word, its ':' no group
      local j = value:find("]", i + 1, true)
      if not j then return nil, "unbalanced '[' in '" .. M.shown(value) .. "'", items, start end
      local lit = value:sub(i, j)
      word(lit, cur.glue, i)
      cur.text[#cur.text + 1] = lit
      cur.glue = false
      cur.raw[#cur.raw + 1] = lit
      i = j + 1
    elseif c == "<" then                -- an angle address; a quoted local part in it may hold '>'
      if cur.angle and cur.post and not cur.colon then
        -- a second one in the item (`<a@x> <b@y>`, `Ann <a@x> Bob <b@y>`): the
        -- first ends at its '>' (split_angle), the words between are the
        -- second's display name, or items of their own when one is an address
        local post_start, loose = cur.post.pos, false
        for k = cur.post.w + 1, #cur.words do if is_addr(cur.words[k]) then loose = true end end
        split_angle(true)
        start = loose and i or post_start
      end
      local j, quoted = i + 1, false
      while j <= n do
        local d = value:sub(j, j)
        if quoted then
          if d == "\\" then j = j + 1 elseif d == '"' then quoted = false end
        elseif d == '"' then quoted = true
        elseif d == ">" then break end
        j = j + 1
      end
      if j > n then return nil, "unbalanced '<' in '" .. M.shown(value) .. "'", items, start end
      cur.angle = value:sub(i + 1, j - 1)
      cur.raw[#cur.raw + 1] = value:sub(i, j)
      cur.post = { w = #cur.words, t = #cur.text, r = #cur.raw, pos = j + 1 }
      i = j + 1
    elseif c == "," or c == ";" then
      finish()
      i = i + 1
      start = i
    elseif c == ":" and not cur.angle and not cur.at and not cur.colon then
      reset()                           -- "group name:" starts a group
      i = i + 1
      start = i
    elseif c == ":" then                -- after an address: no group (see finish)
      cur.colon = true
      cur.raw[#cur.raw + 1] = c
      i = i + 1
    elseif c:match("%s") then
      -- a blank separates words, but not after a '.' or '@' (obs-local-part:
      -- "a . b @ example.com" is one address)
      local last = cur.words[#cur.words]
      cur.glue = last ~= nil and (last:sub(-1) == "." or last:sub(-1) == "@")
      if folded(i) then cur.fold = "a line break"; cur.bfold = true end
      cur.raw[#cur.raw + 1] = c
      i = i + 1
    else
      local j = i
      while j <= n and not value:sub(j, j):match('[%s%(%)<>,;:"%[]') do j = j + 1 end
      if j == i then j = i + 1 end      -- a stray special (a ')' or '>' outside its pair)
      local w = value:sub(i, j - 1)
      word(w, cur.glue or w:sub(1, 1) == "@" or w:sub(1, 1) == ".", i)
      if w:find("@", 1, true) then cur.at = true end
      cur.text[#cur.text + 1] = w
      cur.glue = w:sub(-1) == "@" or w:sub(-1) == "."
      cur.raw[#cur.raw + 1] = w
      i = j
    end
  end
  finish()
  return items
end

-- A bare local name a program may use as an address (root, www-data, cron.d).
local function is_local_name(s)
  return s:match("^[%w!#$%%&'*+/=?^_`{|}~.-]+$") ~= nil and not s:find("^%.") and not s:find("%.$")
end
M.is_local_name = is_local_name

-- The checks smtp-interop gave command-line addresses (issue 10.4), kept:
-- no CR, LF or NUL ("a@x<LF>RCPT TO:<evil@y>" must not become two
-- recipients), no group syntax ("a@x RCPT TO:<evil@y>" would read as a group
-- holding evil@y), no unquoted '@' in a display name.  nil, why | true.
function M.check_arg(a)
  if a:find("[%z\r\n]") then return nil, "'" .. M.shown(a) .. "': CR, LF or NUL in an address" end
  local depth, quote, angle, phrase_at = 0, false, false, false
  local i = 1
  while i <= #a do
    local c = a:sub(i, i)
    if quote then
      if c == "\\" then i = i + 1 elseif c == '"' then quote = false end
    elseif depth > 0 then
      if c == "\\" then i = i + 1 elseif c == "(" then depth = depth + 1 elseif c == ")" then depth = depth - 1 end
    elseif c == '"' then quote = true
    elseif c == "(" then depth = 1
    elseif c == "[" and a:find("]", i + 1, true) then
      i = a:find("]", i + 1, true)        -- a domain literal: its ':' is no group syntax
    elseif c == "<" then angle = true
    elseif c == ">" then angle = false
    elseif not angle and (c == ":" or c == ";") then
      return nil, "'" .. M.shown(a) .. "': group syntax is not an address"
    elseif c == "," then phrase_at = false
    elseif not angle and c == "@" then phrase_at = true
    end
    if angle and phrase_at and c == "<" then
      return nil, "'" .. M.shown(a) .. "': an unquoted '@' in the display name"
    end
    i = i + 1
  end
  return true
end

-- valid(addr) -> the address as the envelope carries it | nil, why: an
-- address the envelope may carry: the message builder's rules (non-ASCII
-- passes: delivery decides, SMTPUTF8) and the spool's (runtime/spool.c
-- mh_addr_check, through core.spool.addresses).  A domain written absolute
-- (ops@example.com.) is the address without the root's dot, as Postfix's
-- trivial-rewrite makes it (runtime/msg.c mh_msg_addr_unroot: one rule for
-- every way in); two dots or an empty label stay an error.
local function valid(addr)
  local ok, why = core.msg.valid_address(addr)
  if not ok and not tostring(why):find("non%-ASCII") then return nil, why end
  local env = core.msg.envelope_address(addr)
  local list = core.spool.addresses(addr)
  if not list or #list ~= 1 or list[1] ~= env then return nil, "not a usable address" end
  return env
end
M.valid = valid

-- ----------------------------------------------------- local names, aliases

-- The domains that mean "this machine": a recipient there is a local user.
local function local_domains(cfg)
  local set = { ["localhost"] = true, ["localhost.localdomain"] = true }
  local h = core.fsutil.hostname()
  if h then set[h:lower()] = true; set[(h:match("^[^.]+") or h):lower()] = true end
  if cfg.helo_name then set[cfg.helo_name:lower()] = true end
  return set
end

-- read_aliases(path) -> {name = {entries...}} | nil, "FILE:LINE: why"
-- msmtp's format (`name: addr, addr`; `default: addr`; `#` to the end of a
-- line is a comment), plus /etc/aliases' continuation lines (starting with
-- a blank).  Names are case-insensitive; an entry is an address or a local name.
function M.read_aliases(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, "aliases " .. tostring(err) end
  local text = f:read(1 << 20)
  local more = f:read(1)
  f:close()
  if more then return nil, "aliases " .. path .. ": over 1 MiB" end
  local map, last, n = {}, nil, 0
  for line in ((text or "") .. "\n"):gmatch("(.-)\r?\n") do
    n = n + 1
    local body = line:gsub("#.*$", "")
    if body:match("^%s*$") then
      last = nil
    elseif body:match("^%s") and last then          -- continuation
      for e in body:gmatch("[^,]+") do
        e = e:match("^%s*(.-)%s*$")
        if e ~= "" then last[#last + 1] = e end
      end
    else
      local name, rest = body:match("^%s*([^:%s]+)%s*:(.*)$")
      if not name or not is_local_name(name) then
        return nil, string.format("%s:%d: expected 'name: address, address'", path, n)
      end
      name = name:lower()
      if map[name] then return nil, string.format("%s:%d: '%s' set twice", path, n, name) end
      local list = {}
      for e in rest:gmatch("[^,]+") do
        e = e:match("^%s*(.-)%s*$")
        if e ~= "" then list[#list + 1] = e end
      end
      map[name], last = list, list
    end
  end
  for name, list in pairs(map) do
    for _, e in ipairs(list) do
      local items = M.split(e)
      local a = items and #items == 1 and items[1].addr
      if not a or (a:find("@", 1, true) and not valid(a)) or (not a:find("@", 1, true) and not is_local_name(a)) then
        return nil, string.format("%s: alias '%s': '%s' is not an address", path, name, e)
      end
    end
    if #list == 0 then return nil, string.format("%s: alias '%s' has no address", path, name) end
  end
  return map
end

-- resolver(cfg) -> resolve(addr) -> {addr...} | nil, why, exit code
-- A local recipient (no '@', or @localhost / this host) goes, in this order,
-- to: its alias (entries that are local names again are expanded, a loop
-- stops at the name itself), the aliases file's `default:`, admin_address,
-- else NAME@default_domain.  Other addresses are themselves.
function M.resolver(cfg)
  local locals = local_domains(cfg)
  local aliases, aerr, awarned
  local domain = cfg.default_domain or core.fsutil.hostname() or "localhost"
  local function aliases_path()
    -- relative: from the folder of the settings file that names it
    return cfg.aliases and require("mailhook.settings").resolve(cfg, cfg.aliases)
  end
  local function load_aliases()
    if aliases == nil and cfg.aliases then
      local path = aliases_path()
      aliases, aerr = M.read_aliases(path)
      if not aliases then aliases = false end
    end
    return aliases
  end
  local function localpart(a)
    if not a:find("@", 1, true) then return a end
    local lp, dom = a:match("^(.*)@([^@]+)$")
    if lp and locals[dom:lower()] and is_local_name(lp) then return lp end
    return nil
  end
  local resolve
  resolve = function(a, seen, depth)
    -- the root's dot a domain may be written with (a@example.com.): dropped,
    -- as Postfix's address rewriting drops it (root@localhost. is local too)
    a = core.msg.envelope_address(a)
    local name = localpart(a)
    if not name then
      local env, why = valid(a)
      if not env then return nil, "'" .. a .. "': " .. tostring(why), M.EX.DATAERR end
      return { env }
    end
    if not is_local_name(name) then return nil, "'" .. a .. "' is not an address", M.EX.DATAERR end
    local key = name:lower()
    if cfg.aliases and load_aliases() == false and not awarned then
      -- an unreadable or broken aliases file: a refusal (75) lost cron's
      -- mail (cron never retries); the names go where a name without an
      -- alias goes (admin_address, else NAME@default_domain), said loudly
      awarned = true
      M.warn(cfg, "warning: " .. tostring(aerr) .. ": the aliases file is not used; local names go to " ..
             (cfg.admin_address and ("admin_address (" .. table.concat(cfg.admin_address, ", ") .. ")")
                                 or ("NAME@" .. domain .. " (default_domain)")) .. " until it is fixed")
    end
    seen = seen or {}
    local list = aliases and (aliases[key] or (not seen[key] and depth == 0 and aliases.default))
    if list and not seen[key] and depth < 8 then
      seen[key] = true
      local out = {}
      for _, e in ipairs(list) do
        local items = M.split(e)
        local r, why, code = resolve(items[1].addr, seen, depth + 1)
        if not r then return nil, why, code end
        for _, x in ipairs(r) do out[#out + 1] = x end
      end
      return out
    end
    if cfg.admin_address then return { table.unpack(cfg.admin_address) } end
    local q = name .. "@" .. domain
    local ok, why = valid(q)
    if not ok then return nil, "'" .. q .. "': " .. tostring(why), M.EX.DATAERR end
    return { q }
  end
  return function(a) return resolve(a, nil, 0) end, { locals = locals, aliases = load_aliases, domain = domain,
                                                          path = aliases_path }
end

-- dropin_names(cfg) -> the table Spool:set_dropin_names takes: where the bare
-- local recipients of a drop-in in pickup/ go.  Adoption runs in C (on the
-- thread pool), so the answers of the resolver above are worked out here, once
-- per settings, for every name the aliases file has and for any other name:
-- the same recipients `sendmail -t` gives for the same file.  A name whose
-- answer is an error carries it (the drop-in goes to corrupt/ saying why).
function M.dropin_names(cfg)
  local resolve, parts = M.resolver(cfg)
  local out = { domain = parts.domain, locals = {}, names = {}, aliases_path = parts.path() }
  for d in pairs(parts.locals) do out.locals[#out.locals + 1] = d end
  local aliases = parts.aliases() or {}
  for name in pairs(aliases) do
    local list, why = resolve(name)
    out.names[name] = list or why
  end
  -- any other name: what a name the aliases file does not have gets (its
  -- `default:`, else admin_address); only NAME@default_domain depends on the
  -- name, and C qualifies it itself when `other` is nil
  local probe = "mailhook-dropin-probe"
  while aliases[probe] do probe = probe .. "-" end
  local list, why = resolve(probe)
  if not list then out.other = why
  elseif not (#list == 1 and list[1] == probe .. "@" .. parts.domain) then out.other = list end
  return out
end

-- warn(cfg, line): a problem intake worked around, said where the caller
-- sees it (stderr: cron mails it) and in the log: the service's sink when
-- this runs inside it (maildrop adoption), else the sink the settings name
-- (syslog, the journal) for this line alone.
function M.warn(cfg, line)
  local sink = core.logsink.get()
  local other = sink == "stderr" and cfg.log and cfg.log ~= "stderr" and
                pcall(core.logsink.set, cfg.log, { facility = cfg.syslog_facility })
  if sink == "stderr" then io.stderr:write("mailhook: ", line, "\n") end
  if sink ~= "stderr" or other then core.logsink.entry("warn", line) end
  if other then core.logsink.set("stderr") end
end

-- qualify(cfg, addr) -> addr with a bare local name given default_domain (a
-- sender is qualified, never aliased).
function M.qualify(cfg, a)
  if a:find("@", 1, true) then return a end
  return a .. "@" .. (cfg.default_domain or core.fsutil.hostname() or "localhost")
end

-- unprivileged_sender(cfg, caller, from) -> the envelope sender of a message
-- of a caller that may not write the spool (docs/sendmail.md, "The sender"):
-- the null sender when it asked for it (from "" or "<>": bounces must not
-- bounce), else the settings' from (from_rewrite envelope, always) or its own
-- login qualified (never), never a name it gave.  prepare's rule, which the
-- adoption of a maildrop/ file follows; mailq shows it for one still waiting.
function M.unprivileged_sender(cfg, caller, from)
  if from == "" or from == "<>" then return "" end
  local own = M.qualify(cfg, caller.login or ("uid" .. tostring(caller.uid)))
  local sender = ((cfg.from_rewrite or "envelope") ~= "never" and cfg.from) or own
  return valid(sender) or cfg.from or own
end

-- ---------------------------------------------------------------- headers

-- fields(head) -> {{name =, lname =, value =, raw =, folds =}, ...} | nil, why
-- The header block (CRLF lines, as core.spool.stream's head() gives it) as
-- fields: raw keeps the field's lines exactly; value is unfolded (RFC 5322
-- 2.2.3: only the CRLF removed, the blank after it kept); folds (nil when
-- the field is one line) the positions in value of the blanks that began a
-- continuation line, for split().
function M.fields(head)
  local out, n = {}, 0
  for line in head:gmatch("[^\n]*\n") do
    n = n + 1
    if line:match("^[ \t]") and #out > 0 then
      local f = out[#out]
      f.raw = f.raw .. line
      f.folds = f.folds or {}
      f.folds[#f.value + 1] = true     -- the blank that began the continuation line
      f.value = f.value .. line:gsub("\r?\n$", "")
    else
      -- "Name:", or the obsolete "Name :" (RFC 5322 4.5.8) as runtime/intake.c reads it
      local name, value = line:match("^([!-9;-~]+)[ \t]*:(.-)\r?\n$")
      if not name then
        return nil, string.format("line %d is not a header ('%s')", n,
                                  printable(line:gsub("\r?\n$", ""):sub(1, 60)))
      end
      out[#out + 1] = { name = name, lname = name:lower(), value = value, raw = line }
    end
  end
  for _, f in ipairs(out) do
    local lead = #f.value:match("^%s*")
    f.value = f.value:match("^%s*(.-)%s*$")
    if f.folds then   -- where the folds are in the trimmed value
      local at = {}
      for p in pairs(f.folds) do if p - lead >= 1 then at[p - lead] = true end end
      f.folds = at
    end
  end
  return out
end

local function find(fields, lname)
  for _, f in ipairs(fields) do if f.lname == lname then return f end end
end

-- A display name as a header phrase: kept when it is one already (atoms, an
-- encoded word), else quoted.
local function phrase(name)
  if name:match("^[%w!#$%%&'*+/=?^_`{|}~%- ]+$") or name:match("^=%?.*%?=$") then return name end
  return '"' .. name:gsub('[\\"]', "\\%0") .. '"'
end

local function domain_of(a) return a and (a:match("@([^@]+)$") or ""):lower() end
-- what two spellings of one mailbox have in common: the domain is not case-sensitive
-- (RFC 5321 2.4), so `ops@example.net` and `ops@EXAMPLE.net` are one recipient, sent
-- once, and quotes around a local part that needs none say nothing (`"ops"@x` is
-- `ops@x`: RFC 5321 4.1.2, RFC 5322 3.2.4); the local part's case is kept as
-- written: a server may tell its cases apart
local function mailbox_key(a)
  local lp, d = a:match("^(.*)@([^@]*)$")
  if not lp then return a end
  local q = lp:match('^"([%w!#$%%&\'*+/=?^_`{|}~.-]+)"$')
  if q and not (q:find("^%.") or q:find("%.$") or q:find("..", 1, true)) then lp = q end
  return lp .. "@" .. d:lower()
end

-- The caller's identity, decided by the kernel (never $USER): uid, its login
-- name, and whether it may write the spool itself (root, or the spool's
-- owner: the service's user) — everyone else is unprivileged and goes
-- through mailhook-drop.
function M.caller(spool_dir)
  local who = core.maildrop.whoami()
  local owner = core.maildrop.owner(spool_dir or core.paths.spool)
  who.privileged = who.uid == 0 or (owner ~= nil and owner == who.uid) or
                   (owner == nil and who.euid == 0)
  return who
end

-- The xtext of RFC 3461 §4 (ENVID, ORCPT): '+', '=' and what is not
-- printable ASCII as +XX; so are '<' and '>', which xtext allows as they are
-- but the spool never carries in a parameter (spool.c mh_spool_params_ok: a
-- server that reads the path loosely could take them for its end).
local function xtext(s)
  return (s:gsub("[^!-*,-;?-~]", function(c) return string.format("+%02X", c:byte()) end))
end

local NOTIFY = { never = "NEVER", success = "SUCCESS", failure = "FAILURE", delay = "DELAY" }

-- dsn_notify("success,delay") -> "SUCCESS,DELAY" | nil (sendmail -N's value;
-- NEVER alone, else any of SUCCESS, FAILURE, DELAY).
function M.dsn_notify(v)
  local out = {}
  for w in (v or ""):gmatch("[^,%s]+") do
    local k = NOTIFY[w:lower()]
    if not k then return nil end
    out[#out + 1] = k
  end
  if #out == 0 or (#out > 1 and table.concat(out, ","):find("NEVER")) then return nil end
  return table.concat(out, ",")
end

-- dsn_ret("hdrs") -> "HDRS" | "FULL" | nil
function M.dsn_ret(v)
  v = (v or ""):upper()
  if v == "FULL" or v == "HDRS" then return v end
end

-- ---------------------------------------------------------------- prepare

-- Header fields never carried into the queued copy (M.prepare): the list of
-- runtime/spool.c's never_sent, for a header that reaches the spool with its
-- envelope (sendmail -bs) and so is not filtered there.
local DROPPED = { bcc = true, ["resent-bcc"] = true, ["return-path"] = true, ["content-length"] = true }

-- The Resent- fields (RFC 5322 3.6.6; Postfix's HDR_OPT_RR set): one of them
-- makes a message resent, for -t.
local RESENT = { ["resent-date"] = 1, ["resent-from"] = 1, ["resent-sender"] = 1, ["resent-to"] = 1,
                 ["resent-cc"] = 1, ["resent-bcc"] = 1, ["resent-message-id"] = 1, ["resent-reply-to"] = 1 }

-- The Date rule of every message mailhook queues (runtime/msg.c mh_msg_date):
-- os.date's %z wrote a zone of whole seconds (Monrovia's -00:44:30) as -0044,
-- 30 seconds off, and one of 24 hours or more as +2430, which readers refuse;
-- the core writes those in UTC.  A time it cannot write (a maildrop record's):
-- now.
local function rfc_date(t)
  local ok, d = pcall(core.msg.date, math.tointeger(t) or os.time())
  return ok and d or core.msg.date(os.time())
end

local function message_id(domain, t)
  local r = io.open("/dev/urandom", "rb")
  local bytes = r and r:read(12) or tostring(os.clock())
  if r then r:close() end
  return string.format("<%s.%s@%s>", os.date("!%Y%m%d%H%M%S", t),
                       (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end)), domain)
end

-- left_out(left, by) -> {{rcpt =, reply =}...} | nil: the items an intake left
-- out of the envelope (prepare's env.left, or a maildrop record's), as the
-- spool records them refused (sp:enqueue's envelope.refused; docs/sendmail.md,
-- "Recipients and local names"): rcpt the item as written, reply its line and
-- who left it out (by: "mailhook sendmail", ...), ending as a drop-in's (spool.c
-- dropin_refused) in " by mailhook, never sent", which the deliverer reads as a
-- refusal made at intake: the mail log's failed line once the others got it.
-- At most LEFT_MAX (the spool's bound, MH_ENV_BAD_MAX); each string cut to
-- LEFT_LEN bytes (MH_SPOOL_REFUSED_LEN is 1000).
M.LEFT_MAX, M.LEFT_LEN = 100, 600
local function cut(s, n)
  s = tostring(s):gsub("%c", " ")
  if #s > n then s = s:sub(1, n - 3) .. "..." end
  return s
end
function M.left_out(left, by)
  if not left or #left == 0 then return nil end
  local out = {}
  for i = 1, math.min(#left, M.LEFT_MAX) do
    local l = left[i]
    local item = cut(l.item, M.LEFT_LEN)
    out[i] = { rcpt = item ~= "" and item or "(empty)",
               reply = cut(l.why, M.LEFT_LEN) .. ": left out at intake (" .. by .. ") by mailhook, never sent" }
  end
  return out
end

-- bad_lines(bad) -> the lines that report prepare's env.bad: the first
-- M.BAD_SAID named, the rest counted in one more line.  Bounded: a local
-- user's one drop of 1.4 MB of '@,@,...' (700,000 items) wrote as many warn
-- lines into the service's log at its adoption (journald's rate limit then
-- drops everyone's lines), where sendmail said 20 of them.
M.BAD_SAID = 20
function M.bad_lines(bad)
  local out = {}
  for k, b in ipairs(bad or {}) do
    if k > M.BAD_SAID then
      out[#out + 1] = "and " .. (#bad - M.BAD_SAID) .. " more recipient item(s) left out"
      break
    end
    out[k] = b
  end
  return out
end

-- prepare(ctx, head) -> env, newhead | nil, exit code, why
-- ctx: cfg (the settings), caller ({uid, login, privileged}), rcpts (strings
-- from the command line, -bs's RCPT, a maildrop record: each an address list),
-- t (-t: To, Cc, Bcc of the header block too), from (-f as given, "<>" or ""
-- for the null sender, nil), fullname (-F), notify, ret, envid (-N -R -V),
-- rcpt_params ({[rcpt as given] = "NOTIFY=.."}: -bs), from_params (more MAIL
-- parameters, as they are sent), time (when submitted),
-- received (add the Received line: the process that writes into pickup/),
-- max_items (at most that many recipient items in rcpts and -t's headers,
-- addresses and items left out alike, else nil, EX.DATAERR: a maildrop
-- record's, MAX_ITEMS; the work they cost is bounded by it), resolver (the
-- M.resolver(cfg) to use: -bs's one for its whole session, so a broken
-- aliases file is read and warned about once, not at every RCPT and message).
-- env = {from =, to = {...}, from_params =, to_params = {[addr] =}, bad = {why...}
-- or nil: the recipient items left out, each a line naming it, escaped; left =
-- {{item =, why =}...} or nil: the same items, each as written (escaped, cut:
-- M.shown) with its line, for the queue (M.left_out)}; newhead:
-- the header block to store (CRLF lines, no blank line).
-- A key of ctx not listed above, or an argument too many, raises, naming it
-- ({recieved = true} was taken and no Received line written).
local PREPARE = { "cfg", "caller", "rcpts", "t", "from", "fullname", "notify", "ret", "envid", "rcpt_params",
                  "from_params", "time", "received", "max_items", "resolver" }
function M.prepare(ctx, head, ...)
  if type(ctx) ~= "table" then error("submit.prepare: ctx must be a table (got " .. type(ctx) .. ")", 2) end
  core.check_options("submit.prepare", ctx, PREPARE, select("#", ...) + 2, 2)
  if type(head) ~= "string" then error("submit.prepare: head must be a string (got " .. type(head) .. ")", 2) end
  local cfg, caller = ctx.cfg, ctx.caller
  local t = ctx.time or os.time()
  local fields, ferr = M.fields(head)
  if not fields then return nil, M.EX.DATAERR, "malformed message: " .. ferr end
  local resolve = ctx.resolver or M.resolver(cfg)

  -- recipients: the given ones, then (-t) the header's; each resolved, once.
  -- An item that is no usable address (`To: a@x, Some Name`, an unbalanced
  -- quote, "a@x<LF>RCPT TO:<e@y>" as an argument) is left out and reported in
  -- env.bad, never turned into a recipient; the others still get the message
  -- (DESIGN.md: intake refuses only a message with no recipient left; Postfix
  -- accepts it too and bounces the bad item)
  local to, seen, to_params, bad, left = {}, {}, nil, {}, {}
  -- the items met so far, against ctx.max_items: a record's "to" line is an
  -- address list, and one drop of 1.4 MB of 'a@b,' made 90,000 recipients of
  -- the 10,000 mailhook-drop allows, or 700,000 items left out, 12 s of the
  -- service's adoption, every delivery waiting
  local items, max_items = 0, ctx.max_items
  local function counted(n)
    items = items + n
    if max_items and items > max_items then
      return nil, M.EX.DATAERR, "over " .. max_items .. " recipient items (addresses and items left out)"
    end
    return true
  end
  -- each item left out: its line (env.bad), and the item with why (env.left)
  local function leave(item, line)
    bad[#bad + 1] = line .. " (left out)"
    left[#left + 1] = { item = M.shown(item), why = line }
  end
  local function reject(where, item, why)
    leave(item, where .. ": '" .. M.shown(item) .. "' " .. why)
  end
  local function add_items(where, list_items, params)
    local ok, code, why = counted(#list_items)
    if not ok then return nil, code, why end
    for _, it in ipairs(list_items) do
      if not it.addr then
        reject(where, it.raw, it.why or "is not an address")
      else
        local list, rwhy, code = resolve(it.addr)
        if not list then
          if code == M.EX.TEMPFAIL then return nil, code, "recipient " .. rwhy end
          leave(it.addr, where .. ": " .. M.shown(rwhy))
        end
        for _, a in ipairs(list or {}) do
          local key = mailbox_key(a)
          if not seen[key] then
            seen[key] = true
            to[#to + 1] = a
            if params then to_params = to_params or {}; to_params[a] = params end
          end
        end
      end
    end
    return true
  end
  local function add(where, raw, params, arg, folds)
    if arg then   -- a command-line argument: one address list, checked as a whole first
      local ok, why = M.check_arg(raw)
      if not ok then
        local cok, code, cwhy = counted(1)
        if not cok then return nil, code, cwhy end
        leave(raw, where .. ": " .. why)
        return true
      end
    end
    local items, _, before, from = M.split(raw, folds)
    if items then return add_items(where, items, params) end
    -- an unbalanced quote, '(' or '<': the items before it as parsed, the rest
    -- comma-separated piece by piece, so one broken item costs only itself
    -- (`"Doe, J" <j@x>, "broken` keeps j@x; `"Broken, c@x` keeps c@x)
    local ok, code, why = add_items(where, before or {}, params)
    if not ok then return nil, code, why end
    local off = (from or 1) - 1
    for at, piece in (raw:sub(off + 1) .. ","):gmatch("()([^,]*),") do
      if piece:find("%S") then
        local pitems = M.split(piece, folds, off + at - 1)
        if pitems then
          local ok, code, why = add_items(where, pitems, params)
          if not ok then return nil, code, why end
        else
          local cok, code, cwhy = counted(1)
          if not cok then return nil, code, cwhy end
          reject(where, piece:match("^%s*(.-)%s*$"), "is not an address")
        end
      end
    end
    return true
  end
  local default_params = ctx.notify and ("NOTIFY=" .. ctx.notify) or nil
  for _, r in ipairs(ctx.rcpts or {}) do
    local ok, code, why = add("recipient", r, (ctx.rcpt_params and ctx.rcpt_params[r]) or default_params, true)
    if not ok then return nil, code, why end
  end
  -- a message that was resent (any Resent- field of RFC 5322 3.6.6) goes to its
  -- Resent-To, Resent-Cc, Resent-Bcc, not again to its first recipients: Postfix's
  -- and sendmail's -t
  local resent = false
  for _, f in ipairs(fields) do resent = resent or RESENT[f.lname] ~= nil end
  local pre = resent and "resent-" or ""
  if ctx.t then
    for _, f in ipairs(fields) do
      if f.lname == pre .. "to" or f.lname == pre .. "cc" or f.lname == pre .. "bcc" then
        local ok, code, why = add(f.name .. " header", f.value, default_params, nil, f.folds)
        if not ok then return nil, code, f.name .. " header: " .. why end
      end
    end
  end
  if #to == 0 and #bad > 0 then
    local shown = { table.unpack(bad, 1, math.min(#bad, 10)) }   -- bounded: 10 named, the rest counted
    if #bad > 10 then shown[#shown + 1] = "and " .. (#bad - 10) .. " more" end
    return nil, M.EX.DATAERR, "no usable recipient, nothing queued: " .. table.concat(shown, "; ")
  end
  if #to == 0 then
    return nil, M.EX.USAGE, not ctx.t and "no recipients (give them, or use -t)" or
      (resent and "no recipients in Resent-To, Resent-Cc or Resent-Bcc (the message has Resent- fields)"
               or "no recipients in To, Cc or Bcc")
  end

  -- the sender (docs/sendmail.md, "The sender")
  local mode = cfg.from_rewrite or "envelope"
  local from_field = find(fields, "from")
  local header_from
  if from_field then
    local items = M.split(from_field.value)
    for _, it in ipairs(items or {}) do
      if it.addr then header_from = header_from or it end
    end
  end
  local own = M.qualify(cfg, caller.login or ("uid" .. tostring(caller.uid)))
  local asked = ctx.from and ctx.from:gsub("^<(.*)>$", "%1")
  -- -f bench@example.com.: its domain compared and sent without the root's dot
  asked = asked and asked ~= "" and M.qualify(cfg, core.msg.envelope_address(asked)) or nil
  local sender
  if ctx.from == "" or ctx.from == "<>" then
    sender = ""                                         -- the null sender, as asked
  elseif not caller.privileged then
    sender = M.unprivileged_sender(cfg, caller, ctx.from)   -- its own name, or the account's
  elseif mode == "always" and cfg.from then
    sender = cfg.from
  elseif mode == "envelope" and cfg.from then
    -- a sender of the account's own domain is kept: the server takes those
    sender = (asked and domain_of(asked) == domain_of(cfg.from)) and asked or cfg.from
  else
    local hf = header_from and header_from.addr
    sender = asked or (hf and M.qualify(cfg, hf)) or cfg.from or own
  end
  if sender ~= "" then sender = valid(sender) or cfg.from or own end

  -- the header block
  local out = {}
  if ctx.received then
    out[#out + 1] = string.format("Received: by %s (mailhook, from userid %s);\r\n\t%s\r\n",
                                  cfg.helo_name or core.fsutil.hostname() or "localhost",
                                  tostring(caller.uid), rfc_date(t))
  end
  local reply_to = find(fields, "reply-to")
  local F = cfg.from
  for _, f in ipairs(fields) do
    if DROPPED[f.lname] then
      -- removed from the copy that is sent, always, as Postfix's cleanup does
      -- (message_drop_headers): Bcc, Resent-Bcc; a Return-Path is the final
      -- MDA's to add (RFC 5321 §4.4), and a Content-Length stops being true as
      -- soon as a header is added or a line end changed (an mbox reader that
      -- trusts it cut the body: a message replayed from a mailbox brings both)
    elseif f.lname == "from" and f ~= from_field and F and mode ~= "never" then
      -- a second From (a script that adds one to a template that has one):
      -- RFC 5322 allows one, and the providers that check it against the
      -- account refuse the message; carried, under another name
      out[#out + 1] = (f.raw:gsub("^[^:]*:", "X-Original-From:", 1))
    elseif f == from_field and F and mode ~= "never" then
      local a = header_from and header_from.addr
      -- kept when written with the account's own domain (envelope) or as the
      -- account itself (always); a bare local name never is: it has no domain
      local same = a and a:find("@", 1, true) and (mode == "envelope" and domain_of(a) == domain_of(F)
                                                  or a:lower() == F:lower())
      if same then
        out[#out + 1] = f.raw
      else
        local name = header_from and header_from.name
        out[#out + 1] = "From: " .. (name and name ~= "" and (phrase(name) .. " <" .. F .. ">") or F) .. "\r\n"
        -- the original, where replies go (a local name resolved as a recipient would be)
        if not reply_to and a then
          local r = resolve(a)
          if r and #r > 0 and r[1]:lower() ~= F:lower() then
            out[#out + 1] = "Reply-To: " .. table.concat(r, ", ") .. "\r\n"
          end
        end
      end
    else
      out[#out + 1] = f.raw
    end
  end
  if not from_field then
    local a = (sender ~= "" and sender) or F or own
    local name = ctx.fullname and ctx.fullname:gsub("[%c]", "") or ""
    out[#out + 1] = "From: " .. (name ~= "" and (phrase(name) .. " <" .. a .. ">") or a) .. "\r\n"
  end
  if not find(fields, "date") then out[#out + 1] = "Date: " .. rfc_date(t) .. "\r\n" end
  if not find(fields, "message-id") then
    local dom = domain_of(sender ~= "" and sender or F or own)
    out[#out + 1] = "Message-ID: " .. message_id(dom ~= "" and dom or "localhost", t) .. "\r\n"
  end

  local env = { from = sender, to = to, to_params = to_params, bad = #bad > 0 and bad or nil,
                left = #left > 0 and left or nil }
  local mp = {}
  if ctx.ret then mp[#mp + 1] = "RET=" .. ctx.ret end
  if ctx.envid then mp[#mp + 1] = "ENVID=" .. xtext(ctx.envid) end
  if ctx.from_params then mp[#mp + 1] = ctx.from_params end
  if #mp > 0 then env.from_params = table.concat(mp, " ") end
  return env, table.concat(out)
end

return M
