-- mailhook.message — RFC 5322 / MIME messages built by the C core (runtime/msg.c).
--
--   local msg, err, info = mh.message{from =, to =, cc =, bcc =, reply_to =, subject =,
--                                     text =, html =, attachments = {{path =, type =, name =}},
--                                     headers = {["X-Foo"] = "v"}}
--   msg:envelope() -> {from = "a@b", to = {"x@y", ...}}   (Bcc included)
--   msg:bytes()    -> the whole message (attachments read now; for tests and small messages)
--   msg:id()       -> "<...@domain>"      msg:save(path) -> true | nil, err (blocking)
--
-- Bad values (an invalid address, CR/LF in a header, a missing attachment)
-- return nil, message, info = {code =, class =, field =}; a wrong type raises.
-- Date and Message-ID are fixed when the message is built.  Nothing here yields.
local core = require "mailhook.core"

local M = {
  build = core.msg.build,
  valid_address = core.msg.valid_address,   -- valid_address(s) -> true | nil, reason
  type_for = core.msg.type_for,             -- type_for("x.pdf") -> "application/pdf"
  utf8 = core.msg.utf8,                     -- utf8("Jos\xe9") -> "José" (the builder's rule)
}

-- every argument passed on: an argument too many raises (core.msg.build checks).
-- A misuse raises at the caller's line, as the docs say: called from here the
-- C function's error named this file's line (message.lua:NN) instead.
local build = core.msg.build
local function call(_, ...)
  local ok, m, err, info = pcall(build, ...)
  if not ok then
    if type(m) == "string" then error(m, 2) end
    error(m, 0)
  end
  return m, err, info
end
return setmetatable(M, { __call = call })
