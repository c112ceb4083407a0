-- mailhook.smtp's wording of two failures an administrator must act on: a TLS
-- handshake with no version in common (the engine's code, worded), and a plain
-- session refused because the server wants TLS first (530 ... STARTTLS) — and the
-- look-alikes that must not be mistaken for them.  The real servers are in
-- tests/integration/smtp-tls-version.sh and smtp-test-hints.sh.
local tap = require "tap"
local smtp = require "mailhook.smtp"

tap.test("no TLS version in common", function(t)
  -- the engine says it by code (info.why, info.tls_reason), never in OpenSSL's words
  local e = smtp.version_refusal({ why = "tls_version", tls_reason = "alert protocol version",
                                   server = "127.0.0.1", port = 2525 }, "1.2")
  t:is(e, "127.0.0.1:2525: no TLS version in common: mailhook requires TLS 1.2 or later (tls_min_version = 1.2) " ..
    "and the server offers only older versions (OpenSSL: alert protocol version)", "the server's alert")
  e = smtp.version_refusal({ why = "tls_version", tls_reason = "unsupported protocol", server = "h", port = 25 }, "1.3")
  t:like(e, "^h:25: no TLS version in common: mailhook requires TLS 1%.3 %(tls_min_version = 1%.3%)", "a ServerHello below the floor")
  t:like(smtp.version_refusal({ why = "tls_version", tls_reason = "no protocols available" }), "requires TLS 1%.2 or later", "default floor 1.2")
  t:is(smtp.version_refusal({ why = nil, code = "ECERT", stage = "tls" }, "1.2"), nil,
    "a certificate failure is not a version failure")
  t:is(smtp.version_refusal({ why = "tls_closed", stage = "tls" }, "1.2"), nil, "nor a bare close")
  t:is(smtp.version_refusal("h:25: TLS handshake failed: error:0A00042E:SSL routines::tlsv1 alert protocol version", "1.2"),
    nil, "words alone decide nothing")
end)

tap.test("a server that requires TLS before MAIL", function(t)
  local plain = { security = "none", capabilities = { "SIZE", "STARTTLS" } }
  local e = smtp.requires_tls(plain, { stage = "sender", smtp = 530, text = "Must issue a STARTTLS command first" })
  t:is(e, "the server requires TLS before it accepts mail, and this session is in plain text " ..
    "(it answered: 530 Must issue a STARTTLS command first); it offers STARTTLS", "RFC 3207's 530")
  e = smtp.requires_tls({ security = "none" }, { stage = "recipient", smtp = 554, enhanced = "5.7.1",
                                                text = "5.7.1 Encryption required" })
  t:like(e, "requires TLS.*%(it answered: 554 5%.7%.1 Encryption required%)$", "5.7.x naming encryption")
  t:is(smtp.requires_tls(plain, { stage = "sender", smtp = 530, text = "5.7.0 Authentication required" }), nil,
    "530 about authentication is not it")
  t:is(smtp.requires_tls({ security = "starttls" }, { stage = "sender", smtp = 530, text = "STARTTLS first" }), nil,
    "a session already in TLS is not it")
  t:is(smtp.requires_tls(plain, { stage = "sender", smtp = 550, text = "5.1.0 sender rejected (no TLS record)" }), nil,
    "a 550 is not it")
  t:is(smtp.requires_tls(plain, { stage = "sender", text = "timed out" }), nil, "no reply: not it")
end)

return tap.done()
