/* hyperseaport web and --web (web.h). */
#include "web.h"

#include <stdlib.h>

#include "follow.h"
#include "gateway.h"
#include "hyper_conn.h"

struct hsp_agent_web {
  hsp_agent_web_config_t cfg;
  hsp_crypto_keypair_t kp;
  hsp_agent_follow_t *follow;
  hsp_gw_registry_t *reg;
  hsp_gw_t *gw;
  bool stopping, gw_open, follow_open, reg_open;
  void (*stop_cb)(void *);
  void *stop_ctx;
};

static void maybe_stopped(hsp_agent_web_t *w);

static void reg_closed(void *ctx) {
  hsp_agent_web_t *w = ctx;
  w->reg_open = false;
  maybe_stopped(w);
}

static void maybe_stopped(hsp_agent_web_t *w) {
  if (!w->stopping || w->gw_open || w->follow_open) return;
  if (w->reg) { /* after the gateway: its streams are channels on the registry upstream's sessions */
    hsp_gw_registry_t *reg = w->reg;
    w->reg = NULL;
    w->reg_open = true;
    hsp_gw_registry_close(reg, reg_closed, w);
    return;
  }
  if (w->reg_open) return;
  hsp_crypto_keypair_wipe(&w->kp);
  void (*cb)(void *) = w->stop_cb;
  void *ctx = w->stop_ctx;
  free(w);
  if (cb) cb(ctx);
}

static void on_change(void *ud) {
  hsp_agent_web_t *w = ud;
  if (w->gw) hsp_gw_changed(w->gw);
}

static void on_up(void *ud, bool again) {
  hsp_agent_web_t *w = ud;
  if (again) fprintf(w->cfg.err, "hyperseaport web: reconnected to registry\n");
  else fprintf(w->cfg.out, "connected to registry\n");
  fflush(w->cfg.out);
  fflush(w->cfg.err);
}

static void on_down(void *ud, bool was_up, int err) {
  hsp_agent_web_t *w = ud;
  if (w->stopping) return;
  fprintf(w->cfg.err,
          "hyperseaport web: %s registry: %s; serving from the local replica and retrying in "
          "the background\n",
          was_up ? "lost the connection to the" : "cannot reach the", hsp_dht_conn_strerror(err));
  fflush(w->cfg.err);
}

static void on_sync_error(void *ud, int err) {
  hsp_agent_web_t *w = ud;
  fprintf(w->cfg.err, "hyperseaport web: cannot follow the registry: %s\n", hsp_reg_strerror(err));
  fflush(w->cfg.err);
}

int hsp_agent_web_start(hsp_agent_web_t **out, const hsp_agent_web_config_t *cfg,
                        const char **msg) {
  *out = NULL;
  hsp_agent_web_t *w = calloc(1, sizeof *w);
  if (!w) return HSP_GW_ENOMEM;
  w->cfg = *cfg;
  hsp_crypto_keypair_random(&w->kp);
  hsp_reg_replica_t *replica = NULL;
  int err = 0;
  if (!cfg->store) {
    *msg = "cannot open the replica or start the registry session";
    hsp_agent_follow_cbs_t cbs = {on_change, on_up, on_down, on_sync_error, NULL};
    err = hsp_agent_follow_start(&w->follow, cfg->io, cfg->registry, cfg->replica_path, &cbs, w);
    if (err) {
      free(w);
      return err;
    }
    w->follow_open = true;
    replica = hsp_agent_follow_replica(w->follow);
  }
  *msg = "out of memory";
  hsp_bal_config_t bal = {.policy = cfg->balance};
  err = hsp_gw_registry_new(&w->reg, replica, cfg->store, cfg->io, &w->kp, &bal);
  hsp_gw_upstream_t up;
  if (!err) {
    hsp_gw_registry_upstream(w->reg, &up);
    err = hsp_gw_new(&w->gw, hsp_dht_io_loop(cfg->io), NULL, &up);
  }
  if (!err) {
    hsp_gw_registry_set_gateway(w->reg, w->gw);
    w->gw_open = true;
    *msg = "cannot listen";
    err = hsp_gw_listen(w->gw, cfg->host, cfg->port);
  }
  if (err) {
    hsp_agent_web_stop(w, NULL, NULL);
    return err;
  }
  fprintf(cfg->out, "HTTP gateway on http://%s:%d/ (/role/NAME@RANGE/..., /list/..., "
          "/instance/KEY/..., /metrics)\n", cfg->host, hsp_gw_port(w->gw));
  fflush(cfg->out);
  *out = w;
  return 0;
}

void hsp_agent_web_changed(hsp_agent_web_t *w) {
  if (w->gw) hsp_gw_changed(w->gw);
}

static void gw_closed(void *ctx) {
  hsp_agent_web_t *w = ctx;
  w->gw_open = false;
  maybe_stopped(w);
}

static void follow_closed(void *ctx) {
  hsp_agent_web_t *w = ctx;
  w->follow_open = false;
  maybe_stopped(w);
}

void hsp_agent_web_stop(hsp_agent_web_t *w, void (*cb)(void *ctx), void *ctx) {
  if (w->stopping) return;
  w->stopping = true;
  w->stop_cb = cb;
  w->stop_ctx = ctx;
  /* The gateway first: its connections hold streams; the follower after. */
  hsp_gw_t *gw = w->gw;
  w->gw = NULL;
  if (w->reg) hsp_gw_registry_set_gateway(w->reg, NULL);
  if (w->follow_open) hsp_agent_follow_stop(w->follow, follow_closed, w);
  if (gw) hsp_gw_close(gw, gw_closed, w);
  else maybe_stopped(w);
}
