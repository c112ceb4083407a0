-- mailhook.display: the one rule for text that local users wrote (a queued
-- message's sender, recipients, Subject and body, the items sendmail left
-- out, a drop-in's reason, a process's name) on the administrator's terminal
-- or page.  Anyone who may run sendmail writes these bytes; nothing in them
-- may drive the terminal (ESC, the C1 controls U+0080-9F: U+009B is a CSI to
-- xterm and VTE), add a line (CR, LF, U+2028/9), turn what follows around
-- (the direction marks, overrides and isolates: a Subject "\u{202E}txt.exe"
-- reads "exe.txt") or be no text at all (bytes that are not UTF-8).  They are
-- shown as visible escapes, never dropped, so the administrator sees what is
-- there: a byte as \xNN (a C1 control as the two bytes of its UTF-8 form,
-- \xc2\x9b), a direction or separator character as \u202e; hex digits
-- lower-case.  The rule is runtime/text.c's (mh_text_visible), the same
-- characters as a server's words, which are shown as '?' (mh_text_shown).
-- --json gives the data itself (mailhook.json escapes these characters as
-- \u202e, a stray byte is U+FFFD), for a script to read.
local text = require("mailhook.core").text

local M = {}

-- raw(s) -> a caller's value as it came (a sender, a recipient, a Subject, a
-- server's reply in a queue listing): a backslash as \x5C too, as
-- mailhook-drop -l records it, so a typed "\x1b" never reads as an ESC.
function M.raw(s) return (text.visible(tostring(s), "b")) end

-- kept(s) -> a value the spool keeps escaped already (the items intake left
-- out and why: submit.printable, a typed backslash is \x5C there; a drop-in's
-- reason, spool.c): its backslashes are the escapes' own, so they stay; what
-- is still unsafe in it is escaped.
function M.kept(s) return (text.visible(tostring(s), "")) end

-- cut(s, n) -> s cut to at most n bytes, never inside a UTF-8 character (a
-- column's width: a stray lead byte is no text on a terminal).
M.cut = text.cut

-- lines() -> a function(chunk) returning the shown text of a stream read in
-- pieces (a message's text for `queue show`), and, called with nil at the
-- end, what is left: its lines and tabs as they are, CR LF a line end, and a
-- CR LF or a UTF-8 character cut by a piece's end shown whole.
function M.lines()
  local carry = ""
  return function(chunk)
    if chunk == nil then
      local s = carry
      carry = ""
      return (text.visible((s:gsub("\r\n", "\n")), "l"))
    end
    chunk = carry .. chunk
    local shown, rest = text.visible((chunk:gsub("\r\n", "\n")), "lp")
    -- a CR last: perhaps the first half of a CR LF
    if rest == "" and chunk:sub(-1) == "\r" then
      shown, rest = text.visible((chunk:sub(1, -2):gsub("\r\n", "\n")), "lp")
      rest = rest .. "\r"
    end
    carry = rest
    return shown
  end
end

return M
