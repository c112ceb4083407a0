-- mailhook.repl's pieces that need no terminal: compiling a chunk (expression,
-- statement, incomplete, error), Tab completion, the environment.
local tap = require "tap"
local repl = require "mailhook.repl"

tap.test("compile: expression first, then statement, incomplete, error", function(t)
  local env = repl.environment()
  local fn = repl.compile("1 + 2", env)
  t:is(select(2, pcall(fn)), 3, "an expression returns its value")
  fn = repl.compile("x = 5", env)
  t:is(select("#", fn()), 0, "a statement returns nothing")
  t:is(env.x, 5, "globals go to the REPL environment")
  t:is(rawget(_G, "x"), nil, "not to _G")
  t:same({ repl.compile("function f()", env) }, { nil, "incomplete" }, "an unfinished function")
  t:same({ repl.compile("t = {", env) }, { nil, "incomplete" }, "an unfinished table")
  t:same({ repl.compile("s = [[", env) }, { nil, "incomplete" }, "an unfinished long string")
  t:same({ repl.compile("{1,", env) }, { nil, "incomplete" }, "an unfinished table expression")
  fn = repl.compile("{1,\n2}", env)
  t:same(fn(), { 1, 2 }, "completed on the next line it is an expression")
  local f2, err = repl.compile("x = = 1", env)
  t:is(f2, nil, "a syntax error")
  t:like(err, "^stdin:1: unexpected symbol near '='", "named as in lua")
  fn = repl.compile("return 1, nil, 3", env)
  t:is(select("#", fn()), 3, "every value is kept, nils included")
end)

tap.test("environment: mh and the admin functions", function(t)
  local env = repl.environment()
  t:is(env.mh, require "mailhook", "mh")
  for _, name in ipairs { "help", "test", "update", "settings", "enqueue", "queue" } do
    t:is(type(env[name]), "function", name)
  end
  t:is(env.string, string, "the standard library through _G")
  t:ok(not pcall(env.update, "port=25"), "update with a string raises")
  t:ok(not pcall(env.enqueue), "enqueue without a table raises")
  t:ok(not pcall(env.test, 42), "test with a number raises")
end)

tap.test("complete: globals, keywords, fields, methods", function(t)
  local env = repl.environment()
  env.triple = function() end
  env.obj = setmetatable({}, { __index = { send = 1, stop = 2 } })
  t:same(repl.complete("tri", env), { "triple" }, "a global set at the prompt")
  t:same(repl.complete("whi", env), { "while" }, "a keyword")
  t:same(repl.complete("mh.sle", env), { "mh.sleep" }, "a field of mh")
  t:same(repl.complete("string.for", env), { "string.format" }, "a field of a library")
  t:same(repl.complete("obj:s", env), { "obj:send", "obj:stop" }, "methods through __index")
  t:same(repl.complete("nosuch.x", env), {}, "an unknown table: nothing")
  t:same(repl.complete("(1).x", env), {}, "not a name: nothing")
end)

tap.test("complete: mh's lazily loaded modules, before they are touched", function(t)
  local env = repl.environment()
  t:is(package.loaded["mailhook.smtp"], nil, "mailhook.smtp is not loaded yet")
  t:same(repl.complete("mh.sm", env), { "mh.smtp" }, "mh.sm -> mh.smtp")
  t:same(repl.complete("mh.que", env), { "mh.queue" }, "mh.que -> mh.queue")
  t:same(repl.complete("mh.sle", env), { "mh.sleep" }, "loaded fields still complete")
  t:is(package.loaded["mailhook.smtp"], nil, "completing loaded nothing")
  t:same(repl.complete("mh:sm", env), {}, "not after ':'")
  env.alias = env.mh
  t:same(repl.complete("alias.sm", env), { "alias.smtp" }, "through another name for mh too")
end)

tap.test("help(fn): per-function help", function(t)
  local env = repl.environment()
  local written = {}
  local real = repl.write
  repl.write = function(text) written[#written + 1] = text end
  local function help(...)
    written = {}
    local ok, err = pcall(env.help, ...)
    return ok and table.concat(written) or nil, err
  end
  local all = help()
  t:like(all, "admin functions", "help() lists the admin functions")
  t:like(all, "help%(fn%)", "and says how to get help on one")
  local h = help(env.test)
  t:like(h, "^test%(%) / test{to = ADDR, timeout = S} — ", "help(test): its usage")
  t:like(h, "r%.ok, r%.info", "and what it returns")
  t:ok(h ~= all, "not the whole list")
  t:like(help(env.update), "^update{KEY = VALUE", "help(update)")
  t:like(help(env.mh.sleep), "^mh%.sleep%(seconds%)\n  pause this task", "help(mh.sleep)")
  t:like(help("mh.sleep"), "^mh%.sleep%(seconds%)", "help \"mh.sleep\"")
  t:like(help("queue"), "^queue%(%) / queue \"failed\"", "help \"queue\": an admin function by name")
  local q = env.mh.queue
  t:like(help(q.show), "^mh%.queue%.show%(id%)", "help(mh.queue.show)")
  t:like(help(q), "mh%.queue%.retry%(id %[, dir%]%)", "help(mh.queue) lists the module's functions")
  t:like(help(env.mh.log.warn), "^mh%.log%.warn", "help(mh.log.warn)")
  t:like(help(function() end), "^a Lua function defined at ", "a function of one's own: where it is defined")
  t:like(help(string.format), "^a C function", "a C function without help says so")
  local none, err = help(42)
  t:is(none, nil, "help(42) is an error")
  t:like(tostring(err), "no help for a number", "saying so")
  repl.write = real
end)

return tap.done()
