/*
 * fl_cli.c — command-line helpers. See fl_cli.h.
 */
#include "fl_cli.h"

#include <stdarg.h>
#include <string.h>

static char s_prog[64] = "covey";

void
fl_cli_set_prog(const char *prog)
{
    snprintf(s_prog, sizeof s_prog, "%s", prog);
}

const char *
fl_cli_prog(void)
{
    return s_prog;
}

int
fl_cli_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", s_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

int
fl_cli_fail(int code)
{
    const char *msg = fl_errmsg();
    fprintf(stderr, "%s: %s\n", s_prog, msg[0] ? msg : fl_strerror(code));
    return 1;
}

int
fl_cli_u64(const char *arg, const char *opt, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v;
    if (fl_parse_u64(arg, opt, &v) != 0) {
        fl_cli_error("%s (try --help)", fl_errmsg());
        return FL_EINVAL;
    }
    if (v < min || v > max) {
        fl_cli_error("%s: %llu is out of range %llu..%llu", opt, (unsigned long long)v,
                     (unsigned long long)min, (unsigned long long)max);
        return FL_EINVAL;
    }
    *out = v;
    return 0;
}

int
fl_cli_size(const char *arg, const char *opt, size_t min, size_t max, size_t *out)
{
    uint64_t v;
    int rc = fl_cli_u64(arg, opt, min, max, &v);
    if (rc == 0)
        *out = (size_t)v;
    return rc;
}

int
fl_cli_double(const char *arg, const char *opt, double min, double max, double *out)
{
    double v;
    if (fl_parse_double(arg, opt, &v) != 0) {
        fl_cli_error("%s (try --help)", fl_errmsg());
        return FL_EINVAL;
    }
    if (v < min || v > max) {
        fl_cli_error("%s: %g is out of range %g..%g", opt, v, min, max);
        return FL_EINVAL;
    }
    *out = v;
    return 0;
}

int
fl_cli_float(const char *arg, const char *opt, double min, double max, float *out)
{
    double v;
    int rc = fl_cli_double(arg, opt, min, max, &v);
    if (rc == 0)
        *out = (float)v;
    return rc;
}

static void
s_usage(FILE *f, const char *prog, const char *about, const fl_cli_cmd_t *cmds, size_t n)
{
    fprintf(f, "usage: %s COMMAND [OPTIONS]\n\n%s\n\nCommands:\n", prog, about);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "  %-9s %s\n", cmds[i].name, cmds[i].help);
    fprintf(f, "\nRun '%s COMMAND --help' for a command's options.\n"
               "  -h, --help     show this help\n"
               "  --version      print the version\n",
            prog);
}

int
fl_cli_dispatch(const char *prog, const char *version, const char *about,
                const fl_cli_cmd_t *cmds, size_t n, int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr, prog, about, cmds, n);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        s_usage(stdout, prog, about, cmds, n);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("%s %s\n", prog, version);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(argv[1], cmds[i].name) == 0)
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown command '%s' (try --help)\n", prog, argv[1]);
    return 2;
}
