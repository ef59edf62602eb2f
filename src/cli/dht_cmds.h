/* `hyperseaport dht-node` and `hyperseaport pipe`: the HyperDHT network as user commands. */
#ifndef HSP_CLI_DHT_CMDS_H
#define HSP_CLI_DHT_CMDS_H

#include "options.h"

int hsp_cmd_dht_node(const hsp_options_t *o);
int hsp_cmd_pipe(const hsp_options_t *o);

#endif
