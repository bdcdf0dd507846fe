/*
 * fl_log.h — logfmt logging to stderr for the daemons and commands.
 *
 * One line per event: `ts=2026-11-26T04:35:07.123Z level=info msg="round started" round=3`.
 * The message is quoted by the logger; the key=value tail is a printf format
 * written by the caller, who quotes string values that may contain spaces with
 * fl_log_q(). Nothing secret is ever passed here (STYLE.md).
 */
#ifndef FL_LOG_H
#define FL_LOG_H

#include "fl_util.h"

typedef enum { FL_LOG_DEBUG = 0, FL_LOG_INFO, FL_LOG_WARN, FL_LOG_ERROR, FL_LOG_OFF } fl_loglevel_t;

/* Set the lowest level that is printed (default FL_LOG_INFO). */
void fl_log_set_level(fl_loglevel_t level);

/* Parse "debug", "info", "warn", "error", "off". Returns 0 or FL_EINVAL. */
int fl_log_parse_level(const char *s, fl_loglevel_t *out) FL_MUST_CHECK;

/* Name every log line of this process with `component` (e.g. "coordinator"). */
void fl_log_set_component(const char *component);

/* Write one logfmt line. `kvfmt` may be NULL or "" for no key=value tail. */
void fl_log(fl_loglevel_t level, const char *msg, const char *kvfmt, ...) FL_PRINTF(3, 4);

#define fl_debug(msg, ...) fl_log(FL_LOG_DEBUG, msg, __VA_ARGS__)
#define fl_info(msg, ...) fl_log(FL_LOG_INFO, msg, __VA_ARGS__)
#define fl_warn(msg, ...) fl_log(FL_LOG_WARN, msg, __VA_ARGS__)
#define fl_error(msg, ...) fl_log(FL_LOG_ERROR, msg, __VA_ARGS__)

/* Quote `s` as a logfmt value into `buf` (escapes quotes, backslashes and
 * control characters; always quoted). Returns buf. */
const char *fl_log_q(char *buf, size_t size, const char *s);

#endif
