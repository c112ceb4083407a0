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
end)

tap.test("templates from files, and the shipped defaults", function(t)
  local dir = os.tmpname()
  os.remove(dir)
  local html = dir .. ".html"
  local f = assert(io.open(html, "w")); f:write("<p>{{x}}</p>"); f:close()
  local r = assert(mh.template.file(html))
  t:is(r { x = "<" }, "<p>&lt;</p>", "a .html file is escaped as html")
  os.remove(html)
  local none, err = mh.template.file(dir .. ".missing")
  t:is(none, nil, "a missing file fails")
  t:like(err, "missing", "naming it")
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
  t:like(m.html, "&lt;%+33 1 23", "voicemail html escapes")
  local a = mh.template.message("alarm", { severity = "critical", source = "ups1", message = "on battery" })
  t:is(a.subject, "[critical] ups1: on battery", "alarm subject")
end)

return tap.done()
