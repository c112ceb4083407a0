/*
** error.c — messages and names for mailhook's error codes (see error.h).
*/
#include <string.h>
#include "error.h"

static const char *const messages[] = {
#define MH__X(name, msg) msg,
  MH_ERRNO_MAP(MH__X)
#undef MH__X
};

static const char *const names[] = {
#define MH__X(name, msg) "E" #name,
  MH_ERRNO_MAP(MH__X)
#undef MH__X
};

static int is_mh(int code) { return code > MH__ERR_BASE && code < MH__ERR_END; }

const char *mh_strerror(int code) {
  if (is_mh(code)) return messages[code - MH__ERR_BASE - 1];
  if (code < 0) return strerror(-code);
  return "success";
}

const char *mh_err_name(int code) {
  if (is_mh(code)) return names[code - MH__ERR_BASE - 1];
  if (code < 0) {
    const char *n = strerrorname_np(-code);
    return n ? n : "EUNKNOWN";
  }
  return "OK";
}
