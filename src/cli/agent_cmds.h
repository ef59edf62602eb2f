/* service, proxy and web: option handling around src/agent. */
#ifndef HSP_CLI_AGENT_CMDS_H
#define HSP_CLI_AGENT_CMDS_H

#include "options.h"

int hsp_cmd_service(const hsp_options_t *o);
int hsp_cmd_proxy(const hsp_options_t *o);
int hsp_cmd_web(const hsp_options_t *o);

#endif
