/*
 * fl_log.c — logfmt lines to stderr; one write(2) per line so that lines from
 * several threads or processes sharing a terminal do not interleave.
 */
#include "fl_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static fl_loglevel_t s_level = FL_LOG_INFO;
static char s_component[32] = "";

void
fl_log_set_level(fl_loglevel_t level)
{
    s_level = level;
}

int
fl_log_parse_level(const char *s, fl_loglevel_t *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (fl_loglevel_t)i;
            return 0;
        }
    }
    return fl_fail(FL_EINVAL, "log level '%s': expected debug, info, warn, error or off", s);
}

void
fl_log_set_component(const char *component)
{
    snprintf(s_component, sizeof s_component, "%s", component);
}

const char *
fl_log_q(char *buf, size_t size, const char *s)
{
    size_t j = 0;
    if (size < 3) {
        if (size)
            buf[0] = 0;
        return buf;
    }
    buf[j++] = '"';
    for (; *s && j + 3 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[j++] = '\\';
            buf[j++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            buf[j++] = '?';
        } else {
            buf[j++] = (char)c;
        }
    }
    buf[j++] = '"';
    buf[j] = 0;
    return buf;
}

void
fl_log(fl_loglevel_t level, const char *msg, const char *kvfmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char line[2048], qmsg[512], ts[40];
    struct timespec now;
    struct tm tm;
    int n;

    if (level < s_level || level >= FL_LOG_OFF)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line, sizeof line, "ts=%s.%03ldZ level=%s%s%s msg=%s", ts,
                 now.tv_nsec / 1000000, names[level], s_component[0] ? " component=" : "",
                 s_component, fl_log_q(qmsg, sizeof qmsg, msg));
    if (n < 0)
        return;
    if (kvfmt && *kvfmt && (size_t)n + 1 < sizeof line) {
        va_list ap;
        line[n++] = ' ';
        va_start(ap, kvfmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n, kvfmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
