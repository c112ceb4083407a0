/* version.h — the one place the version is written. */
#ifndef MH_VERSION
#define MH_VERSION "0.1.0"
#endif
