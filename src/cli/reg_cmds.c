/* registry and ls: option handling around the registry's network layer (net.h). */
#include "reg_cmds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "hex.h"
#include "hyper_conn.h"
#include "json.h"
#include "net.h"
#include "protocol.h"
#include "run.h"
#include "gateway.h"
#include "web.h"

/* ---- registry ---- */

typedef struct registry_cmd {
  const hsp_options_t *o;
  hsp_dht_io_t *io;
  hsp_store_t *store;
  hsp_reg_host_t *host;
  hsp_agent_web_t *web; /* --web */
  hsp_crypto_keypair_t kp;
  hsp_cli_signals_t signals;
  int rc;
} registry_cmd_t;

static void log_line(void *ud, const char *line) {
  registry_cmd_t *r = ud;
  printf("%s\n", line);
  fflush(stdout);
  /* Every log line is a change of the registry's content: dashboards follow. */
  if (r->web) hsp_agent_web_changed(r->web);
}

static void registry_stop(void *ctx);

static void registry_ready(hsp_dht_io_t *io, void *ctx) {
  registry_cmd_t *r = ctx;
  if (r->host || r->signals.fired) return;
  int err = hsp_reg_host_start(&r->host, io, r->store, &r->kp, log_line, r);
  if (err) {
    fprintf(stderr, "hyperseaport registry: cannot listen on HyperDHT: %s\n",
            hsp_dht_conn_strerror(err));
    r->rc = 1;
    registry_stop(r);
    return;
  }
  char pk[65];
  hsp_hex_encode(pk, r->kp.public_key, 32);
  printf("Registry started.\nregistryPublicKey=%s\n", pk);
  fflush(stdout);
  if (r->o->web_port) {
    hsp_agent_web_config_t cfg = {.io = io, .store = r->store,
                                  .host = r->o->has_host ? r->o->host : "127.0.0.1",
                                  .port = r->o->web_port,
                                  .balance = (hsp_bal_policy_t)r->o->balance,
                                  .out = stdout, .err = stderr};
    const char *what = "";
    err = hsp_agent_web_start(&r->web, &cfg, &what);
    if (err) {
      fprintf(stderr, "hyperseaport registry: --web: %s: %s\n", what,
              err == HSP_GW_ELISTEN ? hsp_gw_strerror(err) : hsp_reg_strerror(err));
      r->rc = 1;
      registry_stop(r);
    }
  }
}

static void host_closed(void *ctx) {
  registry_cmd_t *r = ctx;
  r->host = NULL;
  hsp_dht_io_close(r->io, NULL, NULL);
}

static void web_closed(void *ctx) {
  registry_cmd_t *r = ctx;
  if (r->host) hsp_reg_host_close(r->host, host_closed, r);
  else host_closed(r);
}

static void registry_stop(void *ctx) {
  registry_cmd_t *r = ctx;
  hsp_cli_signals_close(&r->signals);
  if (r->web) {
    hsp_agent_web_t *w = r->web;
    r->web = NULL;
    hsp_agent_web_stop(w, web_closed, r);
    return;
  }
  if (r->host) hsp_reg_host_close(r->host, host_closed, r);
  else host_closed(r);
}

/* <storage>/<prefix>-<registry public key>.db: one file per registry. */
int hsp_cli_storage_path(char *out, size_t cap, const hsp_options_t *o, const char *prefix,
                         const uint8_t pk[32]) {
  if (hsp_cli_mkdirs(o->storage) != 0) {
    fprintf(stderr, "hyperseaport %s: cannot create the storage directory %s: %s\n",
            hsp_command_name(o->command), o->storage, strerror(errno));
    return -1;
  }
  char hex[65];
  hsp_hex_encode(hex, pk, 32);
  int n = snprintf(out, cap, "%s/%s-%s.db", o->storage, prefix, hex);
  if (n < 0 || (size_t)n >= cap) {
    fprintf(stderr, "hyperseaport %s: storage path too long\n", hsp_command_name(o->command));
    return -1;
  }
  return 0;
}

int hsp_cmd_registry(const hsp_options_t *o) {
  registry_cmd_t r = {.o = o, .rc = 0};
  hsp_crypto_keypair_from_seed(&r.kp, o->registry_seed);
  char path[HSP_OPT_TEXT + 128];
  if (hsp_cli_storage_path(path, sizeof path, o, "registry", r.kp.public_key) != 0) {
    hsp_crypto_keypair_wipe(&r.kp);
    return 1;
  }
  int err = hsp_store_open(&r.store, path, r.kp.secret_key);
  if (err) {
    fprintf(stderr, "hyperseaport registry: cannot open %s: %s\n", path, hsp_reg_strerror(err));
    hsp_crypto_keypair_wipe(&r.kp);
    return 1;
  }
  printf("Writer started.\nstoring in %s\n", o->storage);
  fflush(stdout);
  uv_loop_t *loop = uv_default_loop();
  hsp_dht_io_opts_t io_opts;
  hsp_cli_io_opts(o, &io_opts);
  err = hsp_dht_io_create(&r.io, loop, &io_opts);
  if (err) {
    fprintf(stderr, "hyperseaport registry: %s\n", hsp_dht_io_strerror(err));
    hsp_store_close(r.store);
    hsp_crypto_keypair_wipe(&r.kp);
    return 1;
  }
  hsp_cli_signals_start(&r.signals, loop, registry_stop, &r);
  hsp_dht_io_on_ready(r.io, registry_ready, &r);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  hsp_store_close(r.store);
  hsp_crypto_keypair_wipe(&r.kp);
  return r.rc;
}

/* ---- ls ---- */

#define LS_TIMEOUT_MS 15000

typedef struct ls_cmd {
  const hsp_options_t *o;
  hsp_dht_io_t *io;
  hsp_reg_session_t *session;
  hsp_cli_signals_t signals;
  uv_timer_t timer;
  int last_err;
  bool done;
  int rc;
} ls_cmd_t;

static void ls_closed(void *ctx) {
  ls_cmd_t *l = ctx;
  l->session = NULL;
  hsp_dht_io_close(l->io, NULL, NULL);
}

static void ls_finish(ls_cmd_t *l, int rc) {
  if (l->done) return;
  l->done = true;
  l->rc = rc;
  hsp_cli_signals_close(&l->signals);
  uv_close((uv_handle_t *)&l->timer, NULL);
  if (l->session) hsp_reg_session_close(l->session, ls_closed, l);
  else ls_closed(l);
}

static void ls_print(const ls_cmd_t *l, const hsp_reg_msg_t *m) {
  if (l->o->json) {
    char *buf = malloc(HSP_REG_INSTANCE_JSON_MAX);
    if (!buf) return;
    printf("[");
    for (size_t i = 0; i < m->ninstances; i++) {
      hsp_reg_instance_json(buf, HSP_REG_INSTANCE_JSON_MAX, &m->instances[i]);
      printf("%s%s", i ? ",\n " : "", buf);
    }
    printf("]\n");
    free(buf);
    return;
  }
  for (size_t i = 0; i < m->ninstances; i++) {
    const hsp_reg_instance_t *in = &m->instances[i];
    char key[65];
    hsp_hex_encode(key, in->key, 32);
    printf("%s@%s %s %s\n", in->name, in->version, key, in->tags);
  }
}

static void ls_message(void *ud, const uint8_t *msg, size_t len) {
  ls_cmd_t *l = ud;
  hsp_reg_msg_t m;
  if (hsp_reg_msg_decode(&m, msg, len) != 0 || m.id != 1) return;
  int rc = 0;
  if (m.type == HSP_REG_MSG_INSTANCES) {
    ls_print(l, &m);
  } else if (m.type == HSP_REG_MSG_ERROR) {
    fprintf(stderr, "hyperseaport ls: the registry refused: %s\n", m.message);
    rc = 1;
  }
  hsp_reg_msg_free(&m);
  fflush(stdout);
  ls_finish(l, rc);
}

static void ls_up(void *ud) {
  ls_cmd_t *l = ud;
  hsp_reg_msg_t m;
  memset(&m, 0, sizeof m);
  m.id = 1;
  if (l->o->has_role) {
    m.type = HSP_REG_MSG_QUERY;
    /* both were validated against these limits by the option parser */
    snprintf(m.name, sizeof m.name, "%.*s", (int)sizeof m.name - 1, l->o->role_name);
    snprintf(m.range, sizeof m.range, "%.*s", (int)sizeof m.range - 1, l->o->role_version);
  } else {
    m.type = HSP_REG_MSG_LIST;
  }
  uint8_t *buf;
  long n = hsp_reg_msg_encode_alloc(&m, &buf);
  if (n < 0) {
    fprintf(stderr, "hyperseaport ls: %s\n", hsp_reg_strerror((int)n));
    ls_finish(l, 1);
    return;
  }
  hsp_reg_session_send(l->session, buf, (size_t)n); /* lost with the connection: asked again */
  free(buf);
}

static void ls_down(void *ud, int err) {
  ls_cmd_t *l = ud;
  l->last_err = err;
}

static void ls_timeout(uv_timer_t *t) {
  ls_cmd_t *l = t->data;
  char key[65];
  hsp_hex_encode(key, l->o->registry_public_key, 32);
  fprintf(stderr,
          "hyperseaport ls: cannot reach registry %s within %d s (is the key right and the "
          "registry running?): %s\n",
          key, LS_TIMEOUT_MS / 1000, l->last_err ? hsp_dht_conn_strerror(l->last_err) : "no answer");
  ls_finish(l, 1);
}

static void ls_ready(hsp_dht_io_t *io, void *ctx) {
  ls_cmd_t *l = ctx;
  if (l->session || l->done) return;
  hsp_reg_session_cbs_t cbs = {ls_up, ls_down, ls_message};
  int err = hsp_reg_session_start(&l->session, io, l->o->registry_public_key, &cbs, l);
  if (err) {
    fprintf(stderr, "hyperseaport ls: %s\n", hsp_reg_strerror(err));
    ls_finish(l, 1);
  }
}

static void ls_signal(void *ctx) { ls_finish(ctx, 130); }

int hsp_cmd_ls(const hsp_options_t *o) {
  ls_cmd_t l = {.o = o};
  uv_loop_t *loop = uv_default_loop();
  hsp_dht_io_opts_t io_opts;
  hsp_cli_io_opts(o, &io_opts);
  int err = hsp_dht_io_create(&l.io, loop, &io_opts);
  if (err) {
    fprintf(stderr, "hyperseaport ls: %s\n", hsp_dht_io_strerror(err));
    return 1;
  }
  uv_timer_init(loop, &l.timer);
  l.timer.data = &l;
  uv_timer_start(&l.timer, ls_timeout, LS_TIMEOUT_MS, 0);
  hsp_cli_signals_start(&l.signals, loop, ls_signal, &l);
  hsp_dht_io_on_ready(l.io, ls_ready, &l);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return l.rc;
}
