/* What every networked command does the same way: the DHT from the options, SIGINT/SIGTERM
 * handling, and the storage directory. */
#ifndef HSP_CLI_RUN_H
#define HSP_CLI_RUN_H

#include <uv.h>

#include "dht_io.h"
#include "options.h"

/* Bind address and bootstrap list from the options (--bind, or --host for dht-node/pipe). */
void hsp_cli_io_opts(const hsp_options_t *o, hsp_dht_io_opts_t *io);

/* SIGINT and SIGTERM call cb once; the handles are closed by hsp_cli_signals_close. */
typedef struct hsp_cli_signals {
  uv_signal_t sigint, sigterm;
  void (*cb)(void *ctx);
  void *ctx;
  bool fired, closed;
} hsp_cli_signals_t;
void hsp_cli_signals_start(hsp_cli_signals_t *s, uv_loop_t *loop, void (*cb)(void *ctx), void *ctx);
void hsp_cli_signals_close(hsp_cli_signals_t *s);

/* Creates dir and its parents (mode 0700). Returns 0 or -1 with errno. */
int hsp_cli_mkdirs(const char *dir);

#endif
