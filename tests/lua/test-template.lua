-- Templates: variables, paths, defaults, conditionals, lists, missing keys,
-- escaping by context (html, header), files and the shipped defaults.
local tap = require "tap"
local mh = require "mailhook"

tap.test("variables, dotted paths and defaults", function(t)
  local r = mh.template("Call from {{caller|unknown}} ({{who.name}}, {{who.ext|none}}) {{n}}s")
  local text, missing = r { caller = "+331234", who = { name = "Ann" }, n = 42 }
  t:is(text, "Call from +331234 (Ann, none) 42s", "rendered")
  t:same(missing, {}, "nothing missing")
  text, missing = r {}
  t:is(text, "Call from unknown (, none) s", "a missing key renders empty, a default fills in")
  t:same(missing, { "who.name", "n" }, "missing keys listed once, in order")
  t:is(mh.template("{{a|}}x")({}), "x", "an empty default")
  t:is(mh.template("{{a}}{{a}}")({}), "", "missing twice")
  t:same(select(2, mh.template("{{a}}{{a}}")({})), { "a" }, "listed once")
end)

tap.test("conditionals and lists", function(t)
  local r = mh.template("{{#if urgent}}URGENT {{else}}fyi {{/if}}{{#unless quiet}}loud{{/unless}}")
  t:is(r { urgent = true }, "URGENT loud", "if true, unless false")
  t:is(r { urgent = false, quiet = 1 }, "fyi ", "else branch")
  t:is(r { urgent = "", quiet = 0 }, "fyi loud", "empty string and 0 are false")
  local l = mh.template("{{#each items}}{{@index}}.{{name}}={{value|-}} {{.}}{{else}}none{{/each}}|{{title}}")
  t:is(l { title = "T", items = { { name = "a", value = 1 }, { name = "b" } } },
       "1.a=1 2.b=- |T", "each with fields and index")
  t:is(l { title = "T", items = {} }, "none|T", "else of an empty list")
  t:is(mh.template("{{#each xs}}[{{.}}]{{/each}}")({ xs = { "x", "y" } }), "[x][y]", "list of strings")
  t:is(mh.template("{{#each xs}}{{#if .}}{{.}}{{/if}}{{/each}}")({ xs = { "a", "", "b" } }), "ab", "nested")
  t:is(mh.template("{{#each xs}}{{top}}{{/each}}")({ top = "T", xs = { {}, {} } }), "TT", "outer scope seen")
end)

-- {{#each}} over a map (an object, a table with string keys) walks its keys in
-- sorted order with @key; it rendered the {{else}} part, as if empty.
tap.test("each over a map: sorted keys, @key and @index", function(t)
  local r = mh.template("{{#each m}}{{@index}}:{{@key}}={{.}} {{else}}none{{/each}}")
  t:is(r { m = { b = 2, a = 1, c = "x" } }, "1:a=1 2:b=2 3:c=x ", "keys in byte order, @index from 1")
  t:is(r { m = { z = 1, [10] = "ten", [2] = "two", B = 3 } }, "1:2=two 2:10=ten 3:B=3 4:z=1 ",
       "number keys first, ascending, then strings")
  t:is(r { m = {} }, "none", "an empty map: the else part")
  t:is(r { m = { [true] = 1 } }, "none", "keys that are neither numbers nor strings are skipped")
  -- a mixed table: its list items first, then its other keys as a map's (it
  -- walked the list part alone: k = "v" and [5] were silently left out)
  t:is(r { m = { "x", "y", k = "v", [5] = "five", A = 0 } }, "1:1=x 2:2=y 3:5=five 4:A=0 5:k=v ",
       "a list with other keys: the items, then the other keys, numbers then strings in byte order")
  t:is(r { m = { "x", nil, "z" } }, "1:1=x 2:3=z ", "a list with a hole: the items before it, then the rest by key")
  t:is(r { m = { [1] = "x", [1.5] = "h", [0] = "o", [-1] = "m" } }, "1:1=x 2:-1=m 3:0=o 4:1.5=h ",
       "number keys outside the list part: after it, ascending")
  t:is(r { m = { [2] = "b", [3] = "c" } }, "1:2=b 2:3=c ", "no [1]: a map of numbers (not nothing at all)")
  t:is(r { m = "text" }, "none", "a string is not iterated")
  local f = mh.template("{{#each people}}{{@key}}: {{name}} ({{ext|-}}){{#if boss}} [{{title}}]{{/if}}; {{/each}}")
  local text, missing = f { title = "T", people = { bob = { name = "Bob", ext = 201, boss = true }, al = { name = "Al" } } }
  t:is(text, "al: Al (-); bob: Bob (201) [T]; ", "fields of the values, the outer scope seen")
  t:same(missing, {}, "nothing missing")
  text, missing = f { people = { x = { ext = 1 }, y = {} } }
  t:is(text, "x:  (1); y:  (-); ", "missing fields render empty")
  t:same(missing, { "name" }, "and are listed once")
  text, missing = mh.template("{{@key}}{{#each l}}{{@key}}{{/each}}")({ l = { "a", "b" } })
  t:is(text, "12", "@key of a list item: its index")
  t:same(missing, { "@key" }, "@key outside each: missing")
  -- arrays exactly as before
  t:is(mh.template("{{#each xs}}{{@index}}{{.}}{{/each}}")({ xs = { "a", "b", "c" } }), "1a2b3c", "a list as before")
end)

-- A map's string keys in byte order, never the locale's collation (Lua's <
-- is strcoll: a rule's os.setlocale reordered them; template-locale.sh shows
-- it with a locale that collates otherwise).  The comparator is byte-wise.
tap.test("each: string keys in byte order, whatever the locale", function(t)
  local r = mh.template("{{#each m}}{{@key}} {{/each}}")
  local m = { a = 1, B = 1, _x = 1, ["\xC3\xA9"] = 1, ["a\0b"] = 1, ab = 1, Z = 1, ["0"] = 1 }
  t:is(r { m = m }, "0 B Z _x a a\0b ab \xC3\xA9 ", "byte order: digits, upper case, _, lower case, then UTF-8")
  local lt = require("mailhook.template").key_lt
  t:ok(lt("B", "a") and not lt("a", "B"), "key_lt: 'B' (0x42) before 'a' (0x61)")
  t:ok(lt("a", "a\0") and lt("a\0", "a\1") and not lt("ab", "ab"), "a prefix first, NUL a byte like others")
  t:ok(lt(10, "1") and lt(2, 10) and not lt("1", 10), "numbers before strings, numerically")
  -- the locale changed by a rule: every one this system has
  local before = os.setlocale(nil, "collate")
  for _, loc in ipairs { "C.UTF-8", "C.utf8", "en_US.UTF-8", "de_DE.UTF-8", "fr_FR.UTF-8", "POSIX" } do
    if os.setlocale(loc, "collate") then
      t:is(r { m = m }, "0 B Z _x a a\0b ab \xC3\xA9 ", "the same order under LC_COLLATE=" .. loc)
    end
  end
  os.setlocale(before, "collate")
end)

-- {{!-- ... --}} may hold "}}"; a short comment holding a tag leaked its tail.
tap.test("comments: long ones may hold tags, short ones may not", function(t)
  t:is(mh.template("a{{!-- see {{name}} and }} --}}b")({ name = "N" }), "ab", "a long comment ends at --}}")
  t:is(mh.template("a{{!-- x\n{{#if y}}\n--}}b{{! short }}c")({}), "abc", "over lines, with a block tag; a short one")
  t:same(select(2, mh.template("{{!-- {{who}} --}}")({})), {}, "nothing in a comment is looked up")
  -- short comments that start with "--" (templates written before long ones
  -- existed; Handlebars takes "{{!--}}" too): still comments (review3)
  for _, src in ipairs { "a{{!--}}b", "a{{!----}}b", "a{{!-- TODO: reword }}b" } do
    local ok, r = pcall(mh.template, src)
    t:ok(ok, src .. " compiles: " .. tostring(not ok and r or ""))
    if ok then t:is((r {}), "ab", src .. " renders as a comment") end
  end
  for src, want in pairs {
    ["x\ny{{!-- never {{x}} closed }}"] = "template:2: '{{!' comment holds '{{'",
    ["{{!-- a --}"] = "template:1: unclosed '{{'",
    ["\n\n{{! see {{name}} }}"] = "template:3: '{{!' comment holds '{{'",
  } do
    local ok, err = pcall(mh.template, src)
    t:ok(not ok, "rejected: " .. src:gsub("\n", "\\n"))
    t:like(err, want:gsub("[%(%)%.%-%[%]]", "%%%0"), "message for " .. src:gsub("\n", "\\n"))
  end
end)

-- Names that compiled but raised at render ({{.name}}: a rule failed on every
-- event) or silently matched nothing ({{#if a b}}, {{#each xs as |x|}}).
tap.test("bad names are an error when compiled, in blocks too", function(t)
  for src, want in pairs {
    ["{{.name}}"] = "bad variable name '.name'",
    ["{{..}}"] = "bad variable name '..'",
    ["{{a.}}"] = "bad variable name 'a.'",
    ["{{a..b}}"] = "bad variable name 'a..b'",
    ["{{#if a b}}x{{/if}}"] = "bad variable name 'a b' in '{{#if}}'",
    ["\n{{#each xs as |x|}}{{x}}{{/each}}"] = "template:2: bad variable name 'xs as |x|' in '{{#each}}'",
    ["{{#unless .x}}x{{/unless}}"] = "bad variable name '.x'",
    ["{{{#if a}}}x{{/if}}"] = "triple braces hold a variable only",
  } do
    local ok, err = pcall(mh.template, src)
    t:ok(not ok, "rejected: " .. src:gsub("\n", "\\n"))
    t:like(err, want:gsub("[%(%)%.%-%[%]%|]", "%%%0"), "message for " .. src:gsub("\n", "\\n"))
  end
  t:is(mh.template("{{a.b-c}}{{@index}}{{#each .}}{{.}}{{/each}}")({ a = { ["b-c"] = 1 } }), "1", "good names still compile")
end)

tap.test("malformed templates are an error naming the line", function(t)
  for src, want in pairs {
    ["a\n{{#if x}}never closed"] = "template:2: '{{#if x}}' is never closed",
    ["{{/if}}"] = "without an opening block",
    ["{{#if x}}{{/each}}"] = "closes",
    ["{{x"] = "unclosed",
    ["{{#loop x}}{{/loop}}"] = "unknown block",
    ["{{a b}}"] = "bad variable name",
  } do
    local ok, err = pcall(mh.template, src)
    t:ok(not ok, "rejected: " .. src:gsub("\n", "\\n"))
    t:like(err, want:gsub("[%(%)%.%-%[%]]", "%%%0"), "message for " .. src:gsub("\n", "\\n"))
  end
end)

-- A rule file with several templates: "template:1: ..." alone (hook's one-line
-- message, "rule file x.lua did not load: template:1: ...") did not say which.
tap.test("a malformed template raises at the line that compiles it", function(t)
  local line = debug.getinfo(1, "l").currentline + 1
  local ok, err = pcall(function() local r = mh.template("a\n{{#if x}}never closed"); return r end)
  t:ok(not ok, "rejected")
  t:like(err, "test%-template%.lua:" .. line .. ": mh%.template: template:2: '{{#if x}}' is never closed",
         "the caller's line, then the template's: " .. tostring(err))
end)

tap.test("html templates escape values, raw only with triple braces", function(t)
  local r = mh.template("<b>{{name}}</b> {{{trusted}}}", { html = true })
  t:is(r { name = [[<script>"x" & 'y']], trusted = "<i>ok</i>" },
       "<b>&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;</b> <i>ok</i>", "escaped")
  t:is(mh.template("{{name}}")({ name = "<a>" }), "<a>", "plain text is not escaped")
end)

tap.test("a header value can never add a line", function(t)
  local r = mh.template("Voicemail from {{caller}}", { header = true })
  local text = r { caller = "x\r\nBcc: victim@example.com\0\n" }
  t:ok(not text:find("[\r\n%z]"), "no CR, LF or NUL left")
  t:is(text, "Voicemail from x  Bcc: victim@example.com", "folded to spaces")
  t:is(mh.template("a\nb{{x}}\n", { header = true })({ x = "\r" }), "a b", "nor can the template itself")
  -- the Unicode line breaks: NEL (a C1 control, as U+0080-9F) and U+2028/9, which a
  -- reader of the decoded Subject may show as a new line
  t:is(r { caller = "x\u{85}From: ceo@bank\u{2028}y\u{2029}z\u{9F}\u{80}" },
       "Voicemail from x From: ceo@bank y z", "NEL, U+2028, U+2029 and the C1 controls: spaces")
  t:is(r { caller = "Zoë Ünal" }, "Voicemail from Zoë Ünal", "other non-ASCII letters kept (their C2/C3 bytes)")
  -- a TAB (a legal WSP in a header, but a Subject "a<TAB>b" shows oddly, or
  -- not at all, in readers) was kept: a space, as every other control
  t:is(r { caller = "a\tb\27c" }, "Voicemail from a b c", "TAB and ESC in a value: spaces")
  t:is(mh.template("a\t{{x}}", { header = true })({ x = "\t" }), "a", "TAB in the template's text too; trimmed")
  t:is(mh.template("a\t{{x}}")({ x = "\tb" }), "a\t\tb", "a plain (body) template keeps its TABs")
end)

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(mh.core.rstate.mkdir(d))
  return d
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

tap.test("templates from files, and the shipped defaults", function(t)
  local dir = tmpdir()
  local html = dir .. "/a.html"
  write(html, "<p>{{x}}</p>")
  local r = mh.template.file(html)
  t:is(r { x = "<" }, "<p>&lt;</p>", "a .html file is escaped as html")
  local ok, err = pcall(mh.template.file, dir .. "/missing.txt")
  t:ok(not ok, "a missing file raises")
  t:like(err, "mh%.template%.file: .*missing%.txt: No such file", "naming it and why")
  write(dir .. "/bad.txt", "{{#if x}}")
  ok, err = pcall(mh.template.file, dir .. "/bad.txt")
  t:ok(not ok, "a malformed file raises")
  t:like(err, "bad%.txt:1: '{{#if x}}' is never closed", "naming it and the line")
  for _, name in ipairs { "voicemail", "fax", "alarm" } do
    local m, missing = mh.template.message(name, {})
    t:ok(m.subject and #m.subject > 0 and m.text and #m.text > 0, name .. " renders with no fields at all")
    t:ok(not m.subject:find("[\r\n]"), name .. " subject is one line")
    t:is(type(missing), "table", name .. " reports missing keys")
  end
  local m = mh.template.message("voicemail", { caller = "+33 1 23\r\nBcc: x@y", duration = 12, mailbox = "200",
                                               owner = "Ann", attached = true })
  t:like(m.subject, "^New voicemail from %+33 1 23  Bcc: x@y %(12 s%) for mailbox 200$", "voicemail subject")
  t:like(m.text, "Duration: 12 seconds", "voicemail body")
  t:like(m.html, "%+33 1 23", "voicemail html")
  m = mh.template.message("voicemail", { caller = "<b>", caller_name = "J. & Co" })
  t:like(m.html, "J%. &amp; Co %(&lt;b&gt;%)", "voicemail html escapes")
  local a = mh.template.message("alarm", { severity = "critical", source = "ups1", message = "on battery" })
  t:is(a.subject, "[critical] ups1: on battery", "alarm subject")
  os.execute("rm -rf '" .. dir .. "'")
end)

-- A rule file's template.file("templates/x.txt") is found beside the rule
-- file, whatever the working directory; a missing one fails the file at load.
tap.test("template.file: relative to the rule file, an error at load", function(t)
  local rules = require "mailhook.rules"
  local dir = tmpdir()
  assert(mh.core.rstate.mkdir(dir .. "/rules/templates"))
  write(dir .. "/rules/templates/x.txt", "Hello {{who}}")
  write(dir .. "/rules/10-ok.lua", [[
    local body = mh.template.file("templates/x.txt")
    on("tpl", function(ev) ev.out.text = body(ev) end)
  ]])
  write(dir .. "/rules/20-missing.lua", [[
    local body = template.file("templates/nope.txt")
    on("tpl", function(ev) ev.out.never = true end)
  ]])
  rules.clear()
  local n, errors = rules.load(dir .. "/rules")
  t:is(n, 1, "the file whose template exists loads (the working directory is elsewhere)")
  t:is(#errors, 1, "the other fails at load")
  t:like(errors[1] and errors[1].file, "20%-missing%.lua$", "that file")
  t:like(errors[1] and errors[1].error, "templates/nope%.txt %(.*/rules/templates/nope%.txt%): No such file",
         "naming the path, as written and as resolved")
  local out = {}
  mh.emit("tpl", { who = "Ann", out = out })
  t:is(out.text, "Hello Ann", "the template renders")
  t:is(out.never, nil, "nothing of the failed file runs")
  rules.clear()
  os.execute("rm -rf '" .. dir .. "'")
end)

-- Site templates (settings `templates`, default ./templates beside the
-- settings file) are found before the shipped ones, whole sets at a time.
tap.test("template.message: the site's folder first, then the shipped one", function(t)
  local tpl = mh.template
  local dir = tmpdir()
  local paths = mh.core.paths
  local conf = paths.conf
  paths.conf = dir .. "/mailhook.conf"
  write(paths.conf, "templates = site\n")
  assert(mh.core.rstate.mkdir(dir .. "/site"))
  write(dir .. "/site/voicemail.txt", "SITE voicemail for {{mailbox}}")
  write(dir .. "/site/custom.subject", "custom {{x}}")
  write(dir .. "/site/custom.txt", "body {{x}}")
  t:is(tpl.dirs()[1], dir .. "/site", "the settings' folder, relative to the settings file")
  local m = tpl.message("voicemail", { mailbox = "200" })
  t:is(m.text, "SITE voicemail for 200", "the site's template wins")
  t:is(m.subject, nil, "the set is the site's alone (no shipped subject mixed in)")
  t:is(m.html, nil, "nor a shipped html part")
  t:like(tpl.message("fax", { sender = "+1" }).subject, "^Fax from %+1", "others still come from the shipped set")
  t:is(tpl.message("custom", { x = 1 }).subject, "custom 1", "a site-only template")
  local ok, err = pcall(tpl.message, "nothing-here", {})
  t:like(err, "no template named 'nothing%-here' in .*/site or .*/templates", "a missing one names both folders")
  paths.conf = dir .. "/other.conf"     -- no `templates` key: ./templates beside it
  write(paths.conf, "")
  t:is(tpl.dirs()[1], dir .. "/templates", "default ./templates beside the settings file")
  paths.conf = conf
  os.execute("rm -rf '" .. dir .. "'")
end)

-- Every shipped template renders a well-formed message whatever optional
-- field is missing or empty: no unbalanced or empty brackets, no dangling
-- separator, no stray spaces (the voicemail "From:     <+33...>" class).
local FIELDS = {
  voicemail = { caller = "+33123456789", caller_name = "J. Doe", mailbox = "200", duration = "42",
                owner = "Ann", time = "2024-01-02 10:00", attached = true, file_name = "msg1.wav" },
  fax = { sender = "+33198765432", sender_name = "ACME", pages = "3", plural = true, recipient = "acct",
          status = "ok", time = "2024-01-02 10:00", attached = true, file_name = "f.pdf" },
  alarm = { severity = "major", source = "ups1", message = "on battery", time = "10:00", details = "d",
            fields = { { name = "load", value = "80%" } } },
}

local function problems(text, html)
  local bad = {}
  if html then text = text:gsub("<[^>]*>", ""):gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&amp;", "&") end
  for line in (text .. "\n"):gmatch("(.-)\n") do
    for _, pair in ipairs { { "%(", "%)" }, { "<", ">" }, { "%[", "%]" } } do
      local _, open = line:gsub(pair[1], "")
      local _, close = line:gsub(pair[2], "")
      if open ~= close then bad[#bad + 1] = "unbalanced " .. pair[1]:sub(-1) .. " in '" .. line .. "'" end
    end
    if line:find("%(%s*%)") or line:find("<%s*>") or line:find("%[%s*%]") then
      bad[#bad + 1] = "empty brackets in '" .. line .. "'"
    end
    if line:find("<[^@>]*>") then bad[#bad + 1] = "angle brackets around a non-address in '" .. line .. "'" end
    if line:find("%s$") then bad[#bad + 1] = "trailing space in '" .. line .. "'" end
    if line:find("[^:%s]%s%s") then bad[#bad + 1] = "double space in '" .. line .. "'" end
    if line:find(":%s*$") or line:find("%s[,;:]") or line:find("^%s*[,;]") then
      bad[#bad + 1] = "dangling separator in '" .. line .. "'"
    end
  end
  return bad
end

tap.test("shipped templates stay well-formed with any optional field missing", function(t)
  for name, full in pairs(FIELDS) do
    local cases = { { "all fields", full } }
    for k in pairs(full) do
      for _, v in ipairs { false, "" } do
        local ctx = {}
        for k2, v2 in pairs(full) do ctx[k2] = v2 end
        ctx[k] = v or nil
        cases[#cases + 1] = { (v == "" and "empty " or "no ") .. k, ctx }
      end
    end
    cases[#cases + 1] = { "no fields", {} }
    local bad = {}
    for _, c in ipairs(cases) do
      local m = mh.template.message(name, c[2])
      for _, part in ipairs { "subject", "text", "html" } do
        if m[part] then
          for _, p in ipairs(problems(m[part], part == "html")) do
            bad[#bad + 1] = name .. "." .. part .. " with " .. c[1] .. ": " .. p
          end
        end
      end
      if m.subject and (m.subject:find("^%s") or m.subject:find("%s$")) then
        bad[#bad + 1] = name .. ".subject with " .. c[1] .. ": leading or trailing space"
      end
    end
    t:same(bad, {}, name .. ": " .. #cases .. " cases, every part well-formed")
  end
  local m = mh.template.message("voicemail", { caller = "+33123456789" })
  t:like(m.text, "\nFrom:     %+33123456789\n", "voicemail without caller_name: the number alone")
  m = mh.template.message("voicemail", { caller = "+33123456789", caller_name = "J. Doe" })
  t:like(m.text, "\nFrom:     J%. Doe %(%+33123456789%)\n", "with it: name (number)")
end)

-- Numbers as a person writes them: no "3.0", no "1e+20", no 14-digit cut.
tap.test("numbers render without .0, exponents or lost digits", function(t)
  local r = mh.template("{{a}}|{{b}}|{{c}}|{{d}}|{{e}}|{{f}}|{{g}}|{{h}}")
  t:is(r { a = 3.0, b = 1e20, c = 0.1 + 0.2, d = 19.99, e = -2.0^63, f = 42, g = "9223372036854775808",
           h = math.mininteger },
       "3|100000000000000000000|0.30000000000000004|19.99|-9223372036854775808|42|9223372036854775808|"
       .. "-9223372036854775808", "whole floats as integers, others their shortest exact digits")
  local v = require("mailhook.json").decode('{"id":12345678901234567890123,"n":7.0,"x":1e20}')
  t:is(mh.template("id {{id}} n {{n}} x {{x}}", { header = true })(v),
       "id 12345678901234567890123 n 7 x 100000000000000000000", "a JSON event's numbers in a header template")
  for _, c in ipairs { { 1e300, "1e+300" }, { 1e21, "1e+21" }, { 2.0^63, "9223372036854776000" }, { 1.5e-7, "1.5e-7" },
                       { 0.000001, "0.000001" }, { -0.5, "-0.5" }, { 123.456, "123.456" }, { 1 / 3, "0.3333333333333333" },
                       { 0.0, "0" }, { 5e-324, "5e-324" }, { 1.7976931348623157e308, "1.7976931348623157e+308" } } do
    t:is(mh.template("{{v}}")({ v = c[1] }), c[2], "the float " .. string.format("%.17g", c[1]) .. " as " .. c[2])
  end
end)

-- A JSON document's null (a rule decoding JSON itself: json.null, a sentinel
-- table) is no value: the default applies and it is reported missing; it
-- rendered "" and skipped the default.
tap.test("JSON null is no value: the default applies, reported missing", function(t)
  local json = require "mailhook.json"
  local ev = json.decode('{"caller": null, "who": {"name": null}, "xs": [null, "b"]}')
  local r = mh.template("{{caller|unknown}}/{{who.name|nobody}}/{{caller}}")
  local out, missing = r(ev)
  t:is(out, "unknown/nobody/", "defaults for null values; none: empty")
  t:same(missing, { "caller" }, "a null without a default is reported missing")
  t:is(mh.template("{{#if caller}}yes{{else}}no{{/if}}")(ev), "no", "null is false in a condition")
  t:is(mh.template("{{#each xs}}[{{.|-}}]{{/each}}")(ev), "[-][b]", "a null item: its default")
end)

return tap.done()
