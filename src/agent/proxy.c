/* hyperseaport proxy (proxy.h). */
#include "proxy.h"

#include <stdlib.h>
#include <string.h>

#include "dataplane.h"
#include "follow.h"
#include "hex.h"
#include "json.h"
#include "net.h"
#include "open.h"

/* Instances of the role handed to the balancer at most (the rest wait their turn). */
#define MAX_INSTANCES 256

struct hsp_agent_proxy {
  hsp_agent_proxy_config_t cfg;
  hsp_agent_follow_t *follow;
  hsp_reg_replica_t *replica; /* the follower's */
  hsp_crypto_keypair_t kp;
  hsp_dp_proxy_t *dp; /* the data path: balancer, sessions, failover, waiting */
  char role[HSP_REG_NAME_MAX + 2 + 256];
  bool dp_open, follow_open, stopping, have_choice, said_none;
  uint8_t choice[32]; /* first candidate last announced */
  void (*stop_cb)(void *);
  void *stop_ctx;
};

static void maybe_stopped(hsp_agent_proxy_t *p) {
  if (!p->stopping || p->dp_open || p->follow_open) return;
  hsp_crypto_keypair_wipe(&p->kp);
  void (*cb)(void *) = p->stop_cb;
  void *ctx = p->stop_ctx;
  free(p);
  if (cb) cb(ctx);
}

/* ---- what to connect to ---- */

static void announce_choice(hsp_agent_proxy_t *p) {
  hsp_reg_instance_t best;
  long n = hsp_agent_select(p->replica, p->cfg.name, p->cfg.range, &best, 1);
  if (n <= 0) {
    if (!p->said_none && (p->have_choice || (p->follow && hsp_agent_follow_was_up(p->follow)))) {
      fprintf(p->cfg.out, "no service matches %s@%s (yet)\n", p->cfg.name, p->cfg.range);
      fflush(p->cfg.out);
      p->said_none = true;
    }
    p->have_choice = false;
    return;
  }
  if (p->have_choice && memcmp(p->choice, best.key, 32) == 0) return;
  p->have_choice = true;
  p->said_none = false;
  memcpy(p->choice, best.key, 32);
  char key[65], json[HSP_REG_INSTANCE_JSON_MAX];
  hsp_hex_encode(key, best.key, 32);
  size_t at = (size_t)snprintf(json, sizeof json,
                               "{\"id\":\"%s\",\"remotePublicKey\":\"%s\",\"meta\":{\"role\":", key, key);
  at = hsp_json_string(json, sizeof json, at, best.name);
  at += (size_t)snprintf(json + at, sizeof json - at, ",\"version\":");
  at = hsp_json_string(json, sizeof json, at, best.version);
  at += (size_t)snprintf(json + at, sizeof json - at, ",\"tags\":");
  at = hsp_json_string(json, sizeof json, at, best.tags);
  snprintf(json + at, sizeof json - at, "}}");
  fprintf(p->cfg.out, "found service %s\nproxy from %d to p2p service %s\n", json, p->cfg.port, key);
  fflush(p->cfg.out);
}

/* ---- the data path ---- */

/* The balancer's instance set follows the replica: after every change the registry pushed
 * (a deregistration or expiry takes the instance out before the next connection). */
static void update_instances(hsp_agent_proxy_t *p) {
  if (!p->dp) return;
  hsp_reg_instance_t *cand = malloc(MAX_INSTANCES * sizeof *cand);
  uint8_t(*keys)[32] = malloc(MAX_INSTANCES * sizeof *keys);
  uint32_t *tiers = malloc(MAX_INSTANCES * sizeof *tiers);
  long n = cand && keys && tiers
               ? hsp_agent_select(p->replica, p->cfg.name, p->cfg.range, cand, MAX_INSTANCES)
               : -1;
  if (n >= 0) {
    /* Candidates come highest version first: each version is a tier, so clients stay on
     * the newest version the range allows and older ones serve only when it cannot. */
    uint32_t tier = 0;
    for (long i = 0; i < n; i++) {
      memcpy(keys[i], cand[i].key, 32);
      if (i > 0 && strcmp(cand[i].version, cand[i - 1].version) != 0) tier++;
      tiers[i] = tier;
    }
    hsp_dp_proxy_sync_tiers(p->dp, (const uint8_t(*)[32])keys, tiers, (size_t)n);
  }
  free(cand);
  free(keys);
  free(tiers);
}

static void log_line(void *ud, const char *line) {
  hsp_agent_proxy_t *p = ud;
  fprintf(p->cfg.err, "hyperseaport %s\n", line);
  fflush(p->cfg.err);
}

/* ---- the replica ---- */

static void on_sync_error(void *ud, int err) {
  hsp_agent_proxy_t *p = ud;
  fprintf(p->cfg.err, "hyperseaport proxy: cannot follow the registry: %s\n", hsp_reg_strerror(err));
  fflush(p->cfg.err);
}

static void on_change(void *ud) {
  announce_choice(ud);
  update_instances(ud);
}

static void on_snapshot(void *ud, uint64_t behind) {
  hsp_agent_proxy_t *p = ud;
  fprintf(p->cfg.out, "replica %llu entries behind the registry: taking a snapshot\n",
          (unsigned long long)behind);
  fflush(p->cfg.out);
}

static void on_up(void *ud, bool again) {
  hsp_agent_proxy_t *p = ud;
  if (again) fprintf(p->cfg.err, "hyperseaport proxy: reconnected to registry\n");
  else if (!hsp_agent_follow_was_up(p->follow)) fprintf(p->cfg.out, "connected to registry\n");
  fflush(p->cfg.out);
  fflush(p->cfg.err);
}

static void on_down(void *ud, bool was_up, int err) {
  hsp_agent_proxy_t *p = ud;
  if (p->stopping) return;
  fprintf(p->cfg.err,
          "hyperseaport proxy: %s registry: %s; serving from the local replica (%zu instances) "
          "and retrying in the background\n",
          was_up ? "lost the connection to the" : "cannot reach the",
          hsp_dht_conn_strerror(err), hsp_reg_replica_count(p->replica));
  fflush(p->cfg.err);
}

/* ---- start / stop ---- */

/* The data path could not start: free the proxy once the follower is gone. */
static void follow_closed_early(void *ctx) {
  hsp_agent_proxy_t *p = ctx;
  p->follow_open = false;
  maybe_stopped(p);
}

int hsp_agent_proxy_start(hsp_agent_proxy_t **out, const hsp_agent_proxy_config_t *cfg,
                          const char **msg) {
  *out = NULL;
  hsp_agent_proxy_t *p = calloc(1, sizeof *p);
  if (!p) return HSP_REG_ENOMEM;
  p->cfg = *cfg;
  *msg = "cannot open the replica or start the registry session";
  hsp_agent_follow_cbs_t cbs = {on_change, on_up, on_down, on_sync_error, on_snapshot};
  int err = hsp_agent_follow_start(&p->follow, cfg->io, cfg->registry, cfg->replica_path, &cbs, p);
  if (err) {
    free(p);
    return err;
  }
  p->follow_open = true;
  p->replica = hsp_agent_follow_replica(p->follow);
  *msg = "cannot listen";
  uv_loop_t *loop = hsp_dht_io_loop(cfg->io);
  hsp_crypto_keypair_random(&p->kp);
  snprintf(p->role, sizeof p->role, "%s@%s", cfg->name, cfg->range);
  hsp_dp_proxy_config_t dcfg = {.host = cfg->host,
                                .port = (uint16_t)cfg->port,
                                .role = p->role,
                                .wait_ms = cfg->wait_ms,
                                .log = log_line,
                                .log_ud = p};
  dcfg.balance.policy = (hsp_bal_policy_t)cfg->balance;
  dcfg.balance.seed = p->kp.public_key[0] | (uint64_t)p->kp.public_key[1] << 8;
  err = hsp_dp_proxy_start(&p->dp, loop, cfg->io, &p->kp, &dcfg);
  if (err) {
    p->stopping = true; /* released once the follower stopped */
    hsp_agent_follow_stop(p->follow, follow_closed_early, p);
    return err;
  }
  p->dp_open = true;
  fprintf(cfg->out, "connecting to registry\n");
  fflush(cfg->out);
  announce_choice(p); /* what the replica on disk already knows */
  update_instances(p);
  *out = p;
  return 0;
}

static void dp_closed(void *ctx) {
  hsp_agent_proxy_t *p = ctx;
  p->dp = NULL;
  p->dp_open = false;
  maybe_stopped(p);
}

static void follow_closed(void *ctx) {
  hsp_agent_proxy_t *p = ctx;
  p->follow_open = false;
  maybe_stopped(p);
}

void hsp_agent_proxy_stop(hsp_agent_proxy_t *p, void (*cb)(void *ctx), void *ctx) {
  if (p->stopping) return;
  p->stopping = true;
  p->stop_cb = cb;
  p->stop_ctx = ctx;
  if (p->follow_open) hsp_agent_follow_stop(p->follow, follow_closed, p);
  if (p->dp) hsp_dp_proxy_close(p->dp, dp_closed, p);
}
