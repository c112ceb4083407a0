-- mailhook.cmd.rules_worker — `mailhook rules-worker`: the process in which
-- `mailhook run` keeps its rules (mailhook.rule_worker).  Started by the
-- service only, with its channel on fd 3; not a command for people.
return function(...)
  return require("mailhook.rule_worker").serve({ ... })
end
