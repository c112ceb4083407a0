-- mailhook.submit: address lists as local programs write them, the aliases
-- file, the resolver's order, the sender rule for privileged and unprivileged
-- callers, the header block intake stores, and the secrets kept apart.
local tap = require "tap"
local submit = require "mailhook.submit"
local settings = require "mailhook.settings"

local function addrs(items)
  local out = {}
  for i, it in ipairs(items or {}) do out[i] = tostring(it.addr) .. "|" .. tostring(it.name) end
  return table.concat(out, " ; ")
end

tap.test("split: what cron, mdadm, mailx and people write", function(t)
  local cases = {
    { "root (Cron Daemon)", "root|Cron Daemon" },
    { "mdadm monitoring <root>", "root|mdadm monitoring" },
    { "root", "root|nil" },
    { '"Doe, John" <john@example.com>, ann@example.com', "john@example.com|Doe, John ; ann@example.com|nil" },
    { "team: a@x.example, b@x.example;", "a@x.example|nil ; b@x.example|nil" },
    { "undisclosed-recipients:;", "" },
    { "<@relay.example:c@d.example>", "c@d.example|nil" },
    { '"a b"@example.com', '"a b"@example.com|nil' },
    { 'X <"<b>"@example.com>', '"<b>"@example.com|X' },       -- a '>' in a quoted local part
    { "a . b @ example.com", "a.b@example.com|nil" },
    { "John Doe", "nil|nil" },
    -- the comma missing (Postfix adds it): each address one item, the other words one that is none
    { "a b@c.example", "b@c.example|nil ; nil|nil" },
    { "a@x.example b@y.example", "a@x.example|nil ; b@y.example|nil" },
    { "=?UTF-8?Q?Z=C3=BCrich?= <z@example.com>", "z@example.com|=?UTF-8?Q?Z=C3=BCrich?=" },
    -- CFWS around '.' and '@' inside <> (a folder breaking before the '@'), comments in it
    { "<b @example.org>", "b@example.org|nil" },
    { "B <b . c @ example.org>", "b.c@example.org|B" },
    { "<b(x)@(y)example.org>", "b@example.org|nil" },
    { '<"a b" @example.org>', '"a b"@example.org|nil' },
    { "<a b@example.org>", "a b@example.org|nil" },           -- refused later by valid()
    -- a domain folded in two: no address at all, never c@exa
    { "c@exa mple.org", "nil|nil" },
    { "a@x.example c@exa mple.org", "a@x.example|nil ; nil|nil" },
  }
  for _, c in ipairs(cases) do t:is(addrs(submit.split(c[1])), c[2], c[1]) end
  t:is(submit.split("a (unclosed"), nil, "an unbalanced comment: nil, why")
  t:is(submit.split('"open'), nil, "an unbalanced quote")
  t:is(submit.split("<open"), nil, "an unbalanced <")
  local v = '"Doe, J" <j@x.example>, k@x.example, "broken, l@x.example'
  local items, why, before, from = submit.split(v)
  t:is(items, nil, "an unbalanced quote last: nil")
  t:like(why, "unbalanced", "why")
  t:is(addrs(before), "j@x.example|Doe, J ; k@x.example|nil", "the items before it, a quoted comma kept")
  t:is(v:sub(from), ' "broken, l@x.example', "and where the broken one starts")
end)

tap.test("check_arg: smtp-interop's command-line checks are kept", function(t)
  t:ok(not submit.check_arg("a@x\nRCPT TO:<e@v>"), "LF refused")
  t:ok(not submit.check_arg("a@x\rRCPT TO:<e@v>"), "CR refused")
  t:ok(not submit.check_arg("a@x RCPT TO:<evil@y>"), "a group in disguise refused")
  t:ok(not submit.check_arg("a@b <c@d>"), "an unquoted @ in a display name refused")
  t:ok(submit.check_arg("root"), "a bare local name is fine")
  t:ok(submit.check_arg('"Ann, A" <ann@example.com>, bob@example.com'), "a real list is fine")
end)

local function tmp(text)
  local p = os.tmpname()
  local f = assert(io.open(p, "wb")); f:write(text); f:close()
  return p
end

tap.test("read_aliases: msmtp's format, continuations, errors with FILE:LINE", function(t)
  local p = tmp("# comment\nroot: a@example.com, ops  # trailing\n  b@example.com\n\nOps: ops@example.org\ndefault: d@example.org\n")
  local map, err = submit.read_aliases(p)
  t:ok(map, "parses", err)
  map = map or {}
  t:is(table.concat(map.root or {}, ","), "a@example.com,ops,b@example.com", "a list and its continuation")
  t:is(table.concat(map.ops or {}, ","), "ops@example.org", "names are case-insensitive")
  t:is(table.concat(map.default or {}, ","), "d@example.org", "default:")
  os.remove(p)
  for _, c in ipairs {
    { "root a@example.com\n", ":1: expected 'name: address, address'" },
    { "x: a@example.com\nx: b@example.com\n", ":2: 'x' set twice" },
    { "x: not an address\n", "alias 'x': 'not an address' is not an address" },
    { "x:\n", "alias 'x' has no address" },
  } do
    p = tmp(c[1])
    local m, e = submit.read_aliases(p)
    t:is(m, nil, "refused: " .. c[2])
    t:like(tostring(e), c[2]:gsub("%p", "%%%0"), "says " .. c[2])
    os.remove(p)
  end
end)

local function cfg_of(extra)
  local values = { enabled = "true", server = "127.0.0.1", from = "pbx@example.com" }
  for k, v in pairs(extra or {}) do values[k] = v end
  return assert(settings.validate(values))
end

tap.test("resolver: alias, default:, admin_address, default_domain; localhost is local", function(t)
  local c = cfg_of { admin_address = "admin@example.org" }
  local r = submit.resolver(c)
  t:is(table.concat(r("root"), ","), "admin@example.org", "a local name without alias: admin_address")
  t:is(table.concat(r("www-data@localhost"), ","), "admin@example.org", "@localhost is local")
  t:is(table.concat(r("x@example.net"), ","), "x@example.net", "an address is itself")
  local c2 = cfg_of {}
  t:is(table.concat(submit.resolver(c2)("root"), ","), "root@example.com", "default_domain: the account's domain")
  local bad, why, code = submit.resolver(c2)("bad name")
  t:is(bad, nil, "a name with a space: refused")
  t:is(code, submit.EX.DATAERR, "EX_DATAERR")
  t:like(why, "not an address", why)
end)

local function prep(ctx, head)
  ctx.cfg = ctx.cfg or cfg_of {}
  ctx.caller = ctx.caller or { uid = 0, login = "root", privileged = true }
  return submit.prepare(ctx, head)
end

-- -t: a header block -> the recipients and the items left out, for every way
-- a header may be folded (RFC 5322 2.2.3: unfolding removes the CRLF, the
-- blank stays) or hold CFWS inside an address.  No case may give a recipient
-- that is a piece of what was written (c@exa of "c@exa<CRLF> mple.org", c@x
-- of "ab<CRLF> c@x": another mailbox, maybe someone's).
tap.test("prepare -t: header -> recipients, folded headers never give a wrong recipient", function(t)
  local cases = {
    -- { header lines (CRLF between them), recipients, left out (a pattern, "" for none) }
    -- CFWS around '@' and '.' (obs-local-part, obs-domain): the normalised address
    { "To: <b @example.org>", "b@example.org", "" },
    { "To: c@example . org", "c@example.org", "" },
    { "To: b @ example.org", "b@example.org", "" },
    { "To: Bee <b . c @ example . org>", "b.c@example.org", "" },
    { "To: <b\r\n @example.org>", "b@example.org", "" },
    { "To: c@example.\r\n org", "c@example.org", "" },
    { "To: c@\r\n example.org", "c@example.org", "" },
    { "To: a(x)@(y)example.org", "a@example.org", "" },
    { "To: a(x\r\n y)@example.org", "a@example.org", "" },
    -- folded inside a domain: left out whole, never the piece before the break
    { "To: a@example.org, c@exa\r\n mple.org", "a@example.org", "'c@exa mple.org' is not an address %(a line break" },
    { "To: a@example.org, c@exa\r\n\tmple.org", "a@example.org", "'c@exa\\x09mple.org' is not an address" },
    { "To: c@exa\r\n mple.org d@example.org", "d@example.org", "'c@exa mple.org' is not an address" },
    { "To: c@exa\r\n mple\r\n .org", "", "'c@exa mple .org' is not an address" },
    { "To: Name <a@exa\r\n mple.org>", "", "'a@exa mple.org': bad character in domain" },
    { "To: team: c@exa\r\n mple.org;\r\nCc: d@example.org", "d@example.org", "'c@exa mple.org' is not an address" },
    -- folded inside a local part: left out whole, never c@example.org
    { "To: ab\r\n c@example.org", "", "'ab c@example.org' is not an address %(a line break" },
    { "To: a.b\r\n c@example.org, d@example.org", "d@example.org", "'a.b c@example.org' is not an address" },
    { "To: <ab\r\n c@example.org>", "", "'ab c@example.org'" },
    { "To: Some Body\r\n a@example.org", "", "'Some Body a@example.org' is not an address %(a line break" },
    -- comments inside an address
    { "To: a@exa(x)mple.org", "", "'a@exa%(x%)mple.org' is not an address %(a comment" },
    { "To: ab(x)c@example.org", "", "'ab%(x%)c@example.org' is not an address %(a comment" },
    { "To: a@exa(\r\n x)mple.org", "", "is not an address %(a line break" },
    { "To: x@example.org (Name\r\n Here)", "x@example.org", "" },
    -- quoted local parts: the blank of the fold is part of the string
    { 'To: "a\r\n b"@example.org', '"a b"@example.org', "" },
    { 'To: "ab"@exa\r\n mple.org', "", "'\"ab\"@exa mple.org' is not an address" },
    -- groups
    { "To: undisclosed-recipients:;\r\nCc: d@example.org", "d@example.org", "" },
    { "To: undisclosed-recipients:\r\n ;\r\nBcc: d@example.org", "d@example.org", "" },
    { "To: team: a@example.org,\r\n b@example.org;", "a@example.org,b@example.org", "" },
    -- an address is no group name (RFC 5322: display-name is a phrase): a ':'
    -- after an address makes the whole item no address, never the mailbox after it
    { "To: e@example.org\r\n\t:\r\n d@example.org", "", "'e@example.org\\x09: d@example.org' is not an address %(a ':' after an address" },
    { "To: c@example.org c@example.org\r\n :d@exa", "", "'c@example.org c@example.org :d@exa' is not an address %(a ':'" },
    { "To: a@example.org:b@example.org, c@example.org", "c@example.org", "'a@example.org:b@example.org' is not an address %(a ':'" },
    { "To: Name <a@example.org>: b@example.org", "", "'Name <a@example.org>: b@example.org' is not an address %(a ':'" },
    { "To: team: a@example.org: b@example.org; c@example.org", "c@example.org", "'a@example.org: b@example.org' is not an address" },
    { "To: @\"a b\":\r\n c@example.org;", "", "'@\"a b\": c@example.org' is not an address %(a ':'" },
    -- a quoted '@' is a phrase's: a group name
    { 'To: "a@b": c@example.org;', "c@example.org", "" },
    -- what touches a word with nothing between is part of it: a quoted string
    -- glued after atoms is no local part of its own, never "q"@x or b@x
    { 'To: ab"q"@example.org', "", "'ab\"q\"@example.org'" },
    { 'To: c@example.org"q"@ab', "", "'c@example.org\"q\"@ab'" },
    { 'To: c@example.org"a b"d@example.org, e@example.org', "e@example.org", "'c@example.org\"a b\"d@example.org'" },
    { "To: a)b@example.org", "", "'a%)b@example.org'" },
    { "To: a>b@example.org", "", "'a>b@example.org'" },
    { "To: [192.0.2.1]b@example.org", "", "'%[192.0.2.1%]b@example.org'" },
    -- a comment stuck to both sides is no blank: "q"(x)c@x is no "q" <c@x>
    { 'To: d@exa"q"(x\r\n y)mple.org(x\r\n y)e@example.org', "", "is not an address %(a line break" },
    { 'To: "a b"mple.org\r\n (x)(x)e@example.org', "e@example.org", "'\"a b\"mple.org'" },
    -- a word whose '@' touches another is no address: it goes with the one before
    { 'To: d@exa (x\r\n y)mple.org@@"a b", e@example.org', "e@example.org", "is not an address %(a line break" },
    -- Name <a@b> across lines
    { "To: Name\r\n <a@example.org>", "a@example.org", "" },
    { 'To: "Doe,\r\n John" <a@example.org>, b@example.org', "a@example.org,b@example.org", "" },
    { "To: Name <a@example.org\r\n >", "a@example.org", "" },
    { "To: root (Cron\r\n Daemon)", "root@example.com", "" },
    -- a break between two whole addresses, or between items: nothing lost
    { "To: a1@example.org\r\n a2@example.org", "a1@example.org,a2@example.org", "" },
    { "To: a1@example.org,\r\n a2@example.org", "a1@example.org,a2@example.org", "" },
    -- no break: a phrase before an address is a phrase, as before
    { "To: John Doe j@example.org", "j@example.org", "'John Doe' is not an address$" },
    -- two angle addresses, or an angle address and an address, with the comma
    -- between them missing: each a recipient, the words right before an angle
    -- address its display name (before, the second took the first one's place)
    { "To: <a@example.org> <b@example.org>", "a@example.org,b@example.org", "" },
    { "To: Ann <a@example.org> Bob <b@example.org>", "a@example.org,b@example.org", "" },
    { "To: <a@example.org> b@example.org", "a@example.org,b@example.org", "" },
    { "To: <a@example.org>\r\n <b@example.org>", "a@example.org,b@example.org", "" },
    { 'To: <a@example.org> "Bob" <b@example.org>', "a@example.org,b@example.org", "" },
    { 'To: <a@example.org> "b"@example.org', 'a@example.org,"b"@example.org', "" },
    { "To: <a@example.org> (Bob) <b@example.org>", "a@example.org,b@example.org", "" },
    { "To: team: <a@example.org> <b@example.org>;", "a@example.org,b@example.org", "" },
    -- words after an angle address that are no address: an item left out,
    -- named (never a local name); a word after an address goes with it
    { "To: <a@example.org> root", "a@example.org", "'root' is not an address$" },
    { "To: <a@example.org> c@exa\r\n mple.org", "a@example.org", "'c@exa mple.org' is not an address %(a line break" },
    { "To: <a@example.org> b@example.org Bob <c@example.org>", "a@example.org,c@example.org", "'b@example.org Bob' is not an address$" },
    -- a ':' after them: that item left out whole, as before
    { "To: <a@example.org> <b@example.org>: c@example.org", "a@example.org", "'<b@example.org>: c@example.org' is not an address %(a ':'" },
    { "To: <a@example.org> team: b@example.org;\r\nCc: d@example.org", "d@example.org", "'<a@example.org> team: b@example.org' is not an address %(a ':'" },
    -- a '<' inside <...> is the address's: never c@example.org, a piece of it
    { "To: <mple.org<c@example.org>, d@example.org", "d@example.org", "'mple.org<c@example.org'" },
    { 'To: "John Doe"\r\n j@example.org', "j@example.org", "'\"John Doe\"' is not an address$" },
  }
  for _, c in ipairs(cases) do
    local env, code, why = prep({ t = true }, c[1] .. "\r\nSubject: s\r\n")
    local shown = c[1]:gsub("\r\n", "<CRLF>")
    local left = {}
    for _, l in ipairs(env and env.left or {}) do left[#left + 1] = l.why end
    if c[2] == "" then
      t:is(env, nil, shown .. ": no recipient, nothing queued")
      t:like(tostring(why), c[3], shown .. ": " .. tostring(why))
    else
      t:is(env and table.concat(env.to, ","), c[2], shown .. ": recipients" .. (env and "" or (" (" .. tostring(why) .. ")")))
      if c[3] == "" then t:is(table.concat(left, " / "), "", shown .. ": nothing left out")
      else t:like(table.concat(left, " / "), c[3], shown .. ": left out, saying why") end
    end
  end
end)

tap.test("prepare: the sender by caller and from_rewrite", function(t)
  local head = "From: someone@other.example\r\nSubject: s\r\n"
  local env = prep({ rcpts = { "x@example.net" }, from = "bounce@other.example" }, head)
  t:is(env.from, "pbx@example.com", "privileged, envelope mode: another domain's -f becomes from")
  env = prep({ rcpts = { "x@example.net" }, from = "alerts@example.com" }, head)
  t:is(env.from, "alerts@example.com", "privileged, envelope mode: the account's domain is kept")
  env = prep({ rcpts = { "x@example.net" }, from = "<>" }, head)
  t:is(env.from, "", "the null sender, always")
  local nobody = { uid = 65534, login = "nobody", privileged = false }
  env = prep({ rcpts = { "x@example.net" }, from = "alerts@example.com", caller = nobody }, head)
  t:is(env.from, "pbx@example.com", "unprivileged, envelope mode: the account's from, whatever -f says")
  env = prep({ rcpts = { "x@example.net" }, from = "root@example.com", caller = nobody, cfg = cfg_of { from_rewrite = "never" } }, head)
  t:is(env.from, "nobody@example.com", "unprivileged, never: its own login, qualified (never another name)")
  env = prep({ rcpts = { "x@example.net" }, from = "<>", caller = nobody }, head)
  t:is(env.from, "", "unprivileged: the null sender is honoured (bounces must not bounce)")
end)

tap.test("prepare: the header block (Received first, Bcc out, From/Date/Message-ID once)", function(t)
  local env, h = prep({ rcpts = { "x@example.net" }, received = true, time = 0 },
                      "X-Sender: evil@example.org\r\nX-Receiver: victim@example.org\r\nBcc: hidden@example.org\r\n")
  t:ok(env, "prepared", h)
  t:like(h, "^Received: by ", "a Received line first: a stored message never starts with X-Sender/X-Receiver lines")
  t:ok(not h:find("Bcc:", 1, true), "Bcc removed")
  t:like(h, "\r\nFrom: pbx@example%.com\r\n", "From added")
  t:like(h, "\r\nDate: ", "Date added")
  t:like(h, "\r\nMessage%-ID: <", "Message-ID added")
  t:is(table.concat(env.to, ","), "x@example.net", "the envelope is the given recipients only")
  local e2, code, why = prep({ rcpts = {}, t = true }, "Subject: none\r\n")
  t:is(e2, nil, "no recipient at all: refused")
  t:is(code, submit.EX.USAGE, "EX_USAGE")
  t:like(why, "no recipients", why)
  local e3, code3 = prep({ rcpts = { "x@example.net" } }, "not a header\r\n")
  t:is(e3, nil, "a line that is not a header: refused")
  t:is(code3, submit.EX.DATAERR, "EX_DATAERR")
end)

tap.test("secrets apart: the settings readable, the password in NAME.secrets (0600)", function(t)
  local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -m 700 " .. dir)
  local path = dir .. "/mailhook.conf"
  local cfg, err = settings.update({ enabled = true, server = "mx.example.com", from = "a@example.com", auth = true,
                                     username = "u", password = "s3cr3t-PW" }, path)
  t:ok(cfg, "update", err)
  local function slurp(p) local f = io.open(p, "rb"); local s = f and f:read("a"); if f then f:close() end; return s end
  t:ok(not slurp(path):find("s3cr3t", 1, true), "the settings file does not hold the password")
  t:like(slurp(dir .. "/mailhook.secrets"), "password = s3cr3t%-PW", "the secrets file does")
  t:is(settings.password(assert(settings.load(path))), "s3cr3t-PW", "load() joins them")
  -- a legacy file with the password in it: the next update moves it
  local f = io.open(path, "ab"); f:write("password_command = echo old\n"); f:close()
  os.remove(dir .. "/mailhook.secrets")
  local f2 = io.open(path, "ab"); f2:write(""); f2:close()
  local legacy = dir .. "/legacy.conf"
  local g = io.open(legacy, "wb"); g:write("auth = true\nusername = u\npassword = old-PW\n"); g:close()
  t:is(settings.password(assert(settings.load(legacy))), "old-PW", "a legacy file still works")
  t:ok(settings.update({ port = 587 }, legacy), "an update of another key")
  t:ok(not slurp(legacy):find("old-PW", 1, true), "moves the password out of the settings file")
  t:like(slurp(dir .. "/legacy.secrets"), "password = old%-PW", "into legacy.secrets")
  local s = io.open(dir .. "/bad.secrets", "wb"); s:write("server = x.example\n"); s:close()
  local b = io.open(dir .. "/bad.conf", "wb"); b:write("port = 25\n"); b:close()
  local nope, why = settings.load(dir .. "/bad.conf")
  t:is(nope, nil, "a non-secret key in the secrets file: refused")
  t:like(why, "bad%.secrets:1: 'server' does not belong in the secrets file", why)
  os.execute("rm -rf " .. dir)
end)

tap.test("each mailbox once: a domain written in other capitals is the same recipient", function(t)
  -- PHP's mail() with the customer's address in To and, as typed into a form, in Bcc;
  -- an argument, -t's To and Cc (root: root@ the default domain here)
  local env = prep({ rcpts = { "customer@example.net", "admin@example.org" }, t = true },
    "To: Customer <customer@EXAMPLE.net>\r\nCc: root, admin@Example.ORG, OPS@example.net, ops@example.net\r\nBcc: customer@example.NET\r\n")
  t:is(env and table.concat(env.to, ","), "customer@example.net,admin@example.org,root@example.com,OPS@example.net,ops@example.net",
       "sent once each, the first spelling; local parts kept as written")
  local e2 = prep({ rcpts = { '"ops"@example.net', "ops@example.net", '"o.ps"@example.net', "o.ps@example.net",
                           '"a b"@example.net', '".x"@example.net', ".x@example.net" } }, "Subject: s\r\n")
  t:is(e2 and table.concat(e2.to, ","), '"ops"@example.net,"o.ps"@example.net,"a b"@example.net,".x"@example.net',
       "quotes a local part does not need: the same mailbox (not around a blank, nor a dot-atom that is none)")
end)

return tap.done()
