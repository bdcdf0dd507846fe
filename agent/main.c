/*
 * main.c — covey-agent: command dispatch. The federation daemon and its
 * operator commands arrive with the federation issue.
 */
#include <stdio.h>
#include <string.h>

static void
s_usage(FILE *f)
{
    fprintf(f, "usage: covey-agent COMMAND [OPTIONS]\n"
               "\n"
               "The Covey agent trains on local data.\n"
               "\n"
               "Options:\n"
               "  -h, --help     show this help\n"
               "  --version      print the version\n");
}

int
main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        s_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("covey-agent 0.1.0\n");
        return 0;
    }
    fprintf(stderr, "covey-agent: unknown command '%s' (try --help)\n", argv[1]);
    return 2;
}
