/*
 * cmd_version.c - `tmap version`: versions and build flags, for bug reports.
 */
#include "cli/cli.h"

#include <stdio.h>

int cmd_version(int argc, char **argv)
{
    bool json = false;
    const struct cli_option options[] = {
        { "--json", CLI_FLAG, &json, NULL, "print one JSON object", 0, 0, NULL },
        CLI_OPT_END,
    };
    const struct cli_spec spec = { "tmap version [--json]", NULL, options, 0, 0 };
    size_t n_pos;
    int rc = cli_parse(&spec, argc, argv, NULL, &n_pos);
    if (rc >= 0)
        return rc;
    if (json) {
        printf("{\"tmap\": ");
        cli_print_json_string(tmap_version());
        printf(", \"build\": ");
        cli_print_json_string(tmap_build_info());
        printf("}\n");
    } else {
        printf("tmap %s\n%s\n", tmap_version(), tmap_build_info());
    }
    return 0;
}
