-- LuaRocks: mailhook as a Lua 5.4 library (docs/lua-library.md).
--   luarocks --lua-version 5.4 make rockspecs/mailhook-scm-1.rockspec [--local | --tree DIR]
-- builds BUILD/lua/mailhook/core.so with the project's Makefile (`make lualib`) and
-- installs it and lua/mailhook/ into the tree (`make install-lualib`), from the checkout
-- and offline: nothing is fetched.  The C libraries are Debian's libuv1-dev and
-- libssl-dev (or wherever LIBUV_DIR / OPENSSL_DIR say).
rockspec_format = "3.0"
package = "mailhook"
version = "scm-1"
source = {
  url = "git+file:///mailhook",   -- unused by `luarocks make`, which builds the checkout it runs in
}
description = {
  summary = "Outgoing notification mail that is never lost: a durable spool, SMTP with TLS, rules",
  detailed = [[
mailhook's runtime (a libuv loop, an OpenSSL SMTP engine, a crash-safe pickup-folder
queue, notification rules and templates) as a module for any Lua 5.4:
local mh = require "mailhook"; mh.enqueue{...} queues a message durably, and a
waiting call made outside mailhook's tasks blocks, as LuaSocket's do.
]],
  license = "MIT",
  labels = { "mail", "smtp", "libuv" },
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
external_dependencies = {
  LIBUV = { header = "uv.h", library = "uv" },
  OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
}
build = {
  type = "make",
  makefile = "Makefile",
  build_target = "lualib",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LIBUV_INCDIR = "$(LIBUV_INCDIR)",
    LIBUV_LIBDIR = "$(LIBUV_LIBDIR)",
    OPENSSL_INCDIR = "$(OPENSSL_INCDIR)",
    OPENSSL_LIBDIR = "$(OPENSSL_LIBDIR)",
  },
  install_target = "install-lualib",
  install_variables = {
    LUADIR = "$(LUADIR)",
    LIBDIR = "$(LIBDIR)",
  },
}
