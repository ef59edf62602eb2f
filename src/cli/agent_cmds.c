/* service, proxy and web: start the DHT, then hand over to src/agent. */
#include "agent_cmds.h"

#include <stdio.h>
#include <string.h>

#include "hyper_conn.h"
#include "proxy.h"
#include "reg_cmds.h"
#include "registry.h"
#include "run.h"
#include "service.h"
#include "gateway.h"
#include "web.h"

typedef struct agent_cmd {
  const hsp_options_t *o;
  hsp_dht_io_t *io;
  hsp_cli_signals_t signals;
  hsp_agent_service_t *service;
  hsp_agent_proxy_t *proxy;
  hsp_agent_web_t *web;
  char replica_path[HSP_OPT_TEXT + 128];
  bool started;
  int rc;
} agent_cmd_t;

static void stopped(void *ctx) {
  agent_cmd_t *a = ctx;
  a->service = NULL;
  a->proxy = NULL;
  a->web = NULL;
  hsp_dht_io_close(a->io, NULL, NULL);
}

static void stop(void *ctx) {
  agent_cmd_t *a = ctx;
  hsp_cli_signals_close(&a->signals);
  if (a->service) hsp_agent_service_stop(a->service, stopped, a);
  else if (a->proxy) hsp_agent_proxy_stop(a->proxy, stopped, a);
  else if (a->web) hsp_agent_web_stop(a->web, stopped, a);
  else stopped(a);
}

static void ready(hsp_dht_io_t *io, void *ctx) {
  agent_cmd_t *a = ctx;
  if (a->started || a->signals.fired) return;
  a->started = true;
  const hsp_options_t *o = a->o;
  int err;
  if (o->command == HSP_CMD_SERVICE) {
    hsp_agent_service_config_t cfg = {.io = io, .registry = o->registry_public_key,
                                      .name = o->role_name, .version = o->role_version,
                                      .host = o->host, .port = o->port, .ttl_ms = o->ttl_ms,
                                      .check = o->check,
                                      .check_interval_ms = o->check_interval_ms,
                                      .drain_ms = o->drain_ms, .out = stdout, .err = stderr};
    err = hsp_agent_service_start(&a->service, &cfg);
    if (err)
      fprintf(stderr, "hyperseaport service: %s\n",
              err == HSP_REG_EINVAL ? "cannot resolve the service host" : hsp_dht_conn_strerror(err));
  } else if (o->command == HSP_CMD_WEB) {
    hsp_agent_web_config_t cfg = {.io = io, .registry = o->registry_public_key,
                                  .replica_path = a->replica_path,
                                  .host = o->has_host ? o->host : "127.0.0.1", .port = o->port,
                                  .balance = (hsp_bal_policy_t)o->balance,
                                  .out = stdout, .err = stderr};
    const char *what = "";
    err = hsp_agent_web_start(&a->web, &cfg, &what);
    if (err)
      fprintf(stderr, "hyperseaport web: %s: %s\n", what,
              err == HSP_GW_ELISTEN ? hsp_gw_strerror(err) : hsp_reg_strerror(err));
  } else {
    hsp_agent_proxy_config_t cfg = {.io = io, .registry = o->registry_public_key,
                                    .name = o->role_name, .range = o->role_version,
                                    .host = o->has_host ? o->host : "127.0.0.1", .port = o->port,
                                    .replica_path = a->replica_path, .balance = o->balance,
                                    .wait_ms = o->wait_ms, .out = stdout, .err = stderr};
    const char *what = "";
    err = hsp_agent_proxy_start(&a->proxy, &cfg, &what);
    if (err)
      fprintf(stderr, "hyperseaport proxy: %s: %s\n", what,
              strcmp(what, "cannot listen") == 0 ? uv_strerror(err) : hsp_reg_strerror(err));
  }
  if (err) {
    a->rc = 1;
    stop(a);
  }
}

static int run(const hsp_options_t *o) {
  agent_cmd_t a = {.o = o};
  if (o->command == HSP_CMD_PROXY &&
      hsp_cli_storage_path(a.replica_path, sizeof a.replica_path, o, "replica",
                           o->registry_public_key) != 0)
    return 1;
  /* One replica per gateway port: several gateways may follow the same registry. */
  char prefix[32];
  snprintf(prefix, sizeof prefix, "web%d-replica", o->port);
  if (o->command == HSP_CMD_WEB &&
      hsp_cli_storage_path(a.replica_path, sizeof a.replica_path, o, prefix,
                           o->registry_public_key) != 0)
    return 1;
  uv_loop_t *loop = uv_default_loop();
  hsp_dht_io_opts_t io_opts;
  hsp_cli_io_opts(o, &io_opts);
  int err = hsp_dht_io_create(&a.io, loop, &io_opts);
  if (err) {
    fprintf(stderr, "hyperseaport %s: %s\n", hsp_command_name(o->command), hsp_dht_io_strerror(err));
    return 1;
  }
  hsp_cli_signals_start(&a.signals, loop, stop, &a);
  hsp_dht_io_on_ready(a.io, ready, &a);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return a.rc;
}

int hsp_cmd_service(const hsp_options_t *o) { return run(o); }
int hsp_cmd_proxy(const hsp_options_t *o) { return run(o); }
int hsp_cmd_web(const hsp_options_t *o) { return run(o); }
