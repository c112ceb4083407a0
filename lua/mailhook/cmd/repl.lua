-- mailhook.cmd.repl — `mailhook repl`: interactive Lua with the runtime loaded
-- (see mailhook.repl).  From a pipe it runs the lines without prompts and
-- exits 1 when one of them failed.
return function(...)
  local a = ...
  if a == "-h" or a == "--help" then
    print("usage: mailhook repl      (interactive; or: mailhook repl < FILE)")
    return 0
  end
  if a ~= nil then
    io.stderr:write("mailhook repl: unexpected argument '", tostring(a), "' (try 'mailhook repl --help')\n")
    return 2
  end
  return require("mailhook.repl").run()
end
