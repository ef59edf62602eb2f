/* Registry-side commands: the registry itself and ls. */
#ifndef HSP_CLI_REG_CMDS_H
#define HSP_CLI_REG_CMDS_H

#include <stddef.h>
#include <stdint.h>

#include "options.h"

int hsp_cmd_registry(const hsp_options_t *o);
int hsp_cmd_ls(const hsp_options_t *o);
/* <storage>/<prefix>-<hex of pk>.db, creating the storage directory; prints and returns -1
 * on failure. */
int hsp_cli_storage_path(char *out, size_t cap, const hsp_options_t *o, const char *prefix,
                         const uint8_t pk[32]);

#endif
