#include "run.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

void hsp_cli_io_opts(const hsp_options_t *o, hsp_dht_io_opts_t *io) {
  hsp_dht_io_opts_default(io);
  if (o->has_bind) io->host = o->bind;
  else if (o->has_host && (o->command == HSP_CMD_DHT_NODE || o->command == HSP_CMD_PIPE))
    io->host = o->host;
  io->bootstrap = o->has_bootstrap ? o->bootstrap : NULL;
}

static void on_signal(uv_signal_t *sig, int signum) {
  (void)signum;
  hsp_cli_signals_t *s = sig->data;
  if (s->fired) return;
  s->fired = true;
  uv_signal_stop(&s->sigint);
  uv_signal_stop(&s->sigterm);
  s->cb(s->ctx);
}

void hsp_cli_signals_start(hsp_cli_signals_t *s, uv_loop_t *loop, void (*cb)(void *ctx), void *ctx) {
  memset(s, 0, sizeof *s);
  s->cb = cb;
  s->ctx = ctx;
  uv_signal_init(loop, &s->sigint);
  uv_signal_init(loop, &s->sigterm);
  s->sigint.data = s->sigterm.data = s;
  uv_signal_start(&s->sigint, on_signal, SIGINT);
  uv_signal_start(&s->sigterm, on_signal, SIGTERM);
}

void hsp_cli_signals_close(hsp_cli_signals_t *s) {
  if (s->closed) return;
  s->closed = true;
  uv_close((uv_handle_t *)&s->sigint, NULL);
  uv_close((uv_handle_t *)&s->sigterm, NULL);
}

int hsp_cli_mkdirs(const char *dir) {
  char path[4096];
  size_t n = strlen(dir);
  if (n == 0 || n >= sizeof path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(path, dir, n + 1);
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(path, 0700) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(path, 0700) != 0 && errno != EEXIST) return -1;
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}
